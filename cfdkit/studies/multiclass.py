"""Study: relabel sets for more than two classes (the relabeling paper's future work).

Data: scikit-learn's bundled handwritten digits (``load_digits``: 1,797 8x8 images, 10
classes; loaded through :func:`cfdkit.spurious.data.load_gray_digits`, no download) with
simple features: the 16 leading principal components of the pixels (PCA fitted on the
training part only).  Two label sets: all ten digits (K = 10) and the look-alike digits
3 / 5 / 8 (K = 3).  A seeded split: 60 % training, the rest test; the audited test points
are the first ``n_test`` test rows.  The model is multinomial L2 logistic regression with
``l2 = 1`` (scikit-learn ``C = 1``).

Per label set: test accuracy; agreement of the fit with scikit-learn (largest absolute
difference of the test probabilities to ``LogisticRegression(C=1, solver="newton-cholesky")``);
Algorithm 1's found rate, flip rate and success ratio under exact refits and the median
/ mean ``|S_t|`` (any change of the predicted class), the same for a named target class
(the runner-up class of each test point is not fixed; the target is class ``0`` of the
label set); and :meth:`RelabelAudit.minimal_sets` on the first ``n_minimal`` points:
verified found rate, median verified size, median certified lower bound.
"""

from __future__ import annotations

import time

import numpy as np

NOTES = [
    "Data: scikit-learn's bundled digits (1,797 8×8 images; no download), features = 16 principal components of "
    "the pixels (PCA fitted on the 60 % training split, seed 0). K = 10 uses all digits, K = 3 the digits 3 / 5 / 8. "
    "Multinomial L2 logistic regression, l2 = 1 (scikit-learn C = 1). No paper number exists for this setting "
    "(the relabeling paper names more than two classes as future work).",
    "flip_rate / success_ratio: exact refits of Algorithm 1's sets (any change of the predicted class; "
    "'_target' rows: the set must make class 0 of the label set the prediction). minimal_*: "
    "RelabelAudit.minimal_sets (every 'verified' set flips under a converged exact refit; lower bounds are "
    "certified only by exhaustive single / pair refits, else 1).",
]


def _features(X_pix, y, seed):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_tr = int(0.6 * len(y))
    tr, te = perm[:n_tr], perm[n_tr:]
    pca = PCA(n_components=16, random_state=seed).fit(X_pix[tr])
    scale = np.sqrt(pca.explained_variance_[0])
    return pca.transform(X_pix[tr]) / scale, y[tr], pca.transform(X_pix[te]) / scale, y[te]


def run_label_set(name, X_pix, y, *, n_test, n_minimal, seed=0, progress=False, device="cpu"):
    """Records for one label set (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    from ..linear.audit import RelabelAudit

    Xtr, ytr, Xte, yte = _features(X_pix, y, seed)
    Xq = Xte[:n_test] if n_test else Xte
    t0 = time.perf_counter()
    a = RelabelAudit(l2=1.0, device=device, progress=progress).fit(Xtr, ytr)
    fit_s = time.perf_counter() - t0
    sk = LogisticRegression(C=1.0, tol=1e-12, max_iter=1000, solver="newton-cholesky").fit(Xtr, ytr)
    recs = []

    def add(metric, value):
        recs.append({"dataset": name, "features": "pca16", "metric": metric, "cfdkit": value, "paper": None})

    P = a.predict_proba(Xte)
    add("n_train", int(len(ytr)))
    add("n_classes", int(a.n_classes_))
    add("test_accuracy", float((a.classes_[P.argmax(1)] == yte).mean()))
    add("max_abs_prob_diff_sklearn", float(np.abs(P - sk.predict_proba(Xte)).max()))
    add("fit_seconds", fit_s)
    add("n_test", int(len(Xq)))
    for suffix, target in (("", None), ("_target", a.classes_[0])):
        t0 = time.perf_counter()
        fs = a.flip_sets(Xq, target_class=target)
        v = a.verify(fs)
        s = v.summary()
        add("found_rate" + suffix, s["found_rate"])
        add("flip_rate" + suffix, s["flip_rate"])
        add("success_ratio" + suffix, s["success_ratio"])
        add("median_size" + suffix, s["median_size"])
        add("mean_size" + suffix, s["mean_size"])
        add("n_not_converged" + suffix, s["n_not_converged"])
        add("seconds" + suffix, time.perf_counter() - t0)
    if n_minimal:
        t0 = time.perf_counter()
        ms = a.minimal_sets(Xq[:n_minimal])
        m = ms.summary()
        add("minimal_n_test", int(len(ms)))
        add("minimal_found_rate", m["minimal_found_rate"])
        add("median_verified_size", m["median_verified_size"])
        add("median_lower_bound", m["median_lower_bound"])
        add("minimal_seconds", time.perf_counter() - t0)
    return recs


def multiclass_records(fast: bool = False, seed: int = 0, progress: bool = False, device="cpu"):
    """Every record of the study; ``fast`` audits fewer test points."""
    from ..spurious.data import load_gray_digits

    gray, digit = load_gray_digits(8)
    X_pix = gray.reshape(len(digit), -1)
    n_test, n_min = (30, 8) if fast else (200, 40)
    recs = run_label_set("digits (K=10)", X_pix, digit, n_test=n_test, n_minimal=n_min, seed=seed, progress=progress,
                         device=device)
    keep = np.isin(digit, (3, 5, 8))
    recs += run_label_set("digits 3/5/8 (K=3)", X_pix[keep], digit[keep], n_test=n_test, n_minimal=n_min, seed=seed,
                          progress=progress, device=device)
    return recs


if __name__ == "__main__":  # python -m cfdkit.studies.multiclass [--fast]
    import sys

    for r in multiclass_records(fast="--fast" in sys.argv):
        print(f"{r['dataset']:20s} {r['metric']:28s} {r['cfdkit']}")
