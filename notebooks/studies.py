"""The studies behind notebooks 02-05 and explorer.ipynb, on the public cfdkit API.

Stand-in until ``cfdkit.experiments`` (branch ``experiments``) is merged: each
function returns a DataFrame in the column contract that the explorers in
:mod:`cfdkit_widgets.studies` read, so ``run=studies.noise_sweep`` can later be
replaced by ``cfdkit.experiments.noise_sweep`` (through a column adapter if needed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfdkit import RelabelAudit
from cfdkit.datasets import flip_labels, load, make_synthetic
from cfdkit.features import tabular_features


# ---------------------------------------------------------------- noise sweep (§3.3, Fig. 6)
def noise_sweep(noise_ratios=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), seeds=(0,), n_test=100, n_train=2000,
                n_features=20, l2=1.0):
    """Mean ``|S_t|`` (over test points with a set) and test accuracy per noise ratio and seed (synthetic)."""
    rows = []
    for seed in seeds:
        for r in noise_ratios:
            ds = make_synthetic(n_train=n_train, n_test=n_test, n_features=n_features, noise=float(r), seed=int(seed))
            a = RelabelAudit(l2=l2).fit(ds.X_train, ds.y_train)
            fs = a.flip_sets(ds.X_test)
            acc = float(((fs.prob > 0.5) == ds.y_test).mean())
            s = fs.summary()
            rows.append({"noise_ratio": float(r), "seed": int(seed), "mean_size": s["mean_size"],
                         "median_size": s["median_size"], "found_rate": s["found_rate"], "accuracy": acc})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- tag bias (§3.4)
def loan_with_tags(bias_rate=0.9, tag_x_share=0.4, seed=0):
    """Loan data with a random tag (X with prob ``tag_x_share``), and ``bias_rate`` of the
    qualified (non-default, y=0) tag-X training rows relabeled as default: the biased set B."""
    ds = load("loan", seed=seed)
    rng = np.random.default_rng(seed)
    tag_tr = rng.random(ds.n_train) < tag_x_share
    tag_te = rng.random(ds.n_test) < tag_x_share
    Xtr, Xte, names = tabular_features(ds)
    Xtr = np.column_stack([Xtr, tag_tr.astype(float)])
    Xte = np.column_stack([Xte, tag_te.astype(float)])
    y = ds.y_train.copy()
    qualified_x = np.nonzero(tag_tr & (y == 0))[0]
    B = np.sort(rng.choice(qualified_x, size=int(round(bias_rate * qualified_x.size)), replace=False))
    y[B] = 1
    return ds, Xtr, Xte, y, B, tag_tr, tag_te, names + ["tag=X"]


def tag_bias(bias_rate=0.9, tag_x_share=0.4, n_test=None, seed=0, l2=1.0):
    """One row per misclassified test point (among the first ``n_test``): its tag, ``|S_t|`` and the share of ``S_t`` in B."""
    ds, Xtr, Xte, y, B, _, tag_te, _ = loan_with_tags(bias_rate, tag_x_share, seed)
    n = ds.n_test if n_test is None else min(int(n_test), ds.n_test)
    a = RelabelAudit(l2=l2).fit(Xtr, y)
    fs = a.flip_sets(Xte[:n])
    inB = np.zeros(len(y), bool)
    inB[B] = True
    wrong = np.nonzero((fs.prob > 0.5) != ds.y_test[:n])[0]
    rows = []
    for i in wrong:
        idx = fs.indices(int(i))
        rows.append({"test_index": int(i), "tag": "X" if tag_te[i] else "Y", "true_label": int(ds.y_test[i]),
                     "prob": float(fs.prob[i]), "size": int(idx.size),
                     "share_in_B": float(inB[idx].mean()) if idx.size else np.nan})
    return pd.DataFrame(rows, columns=["test_index", "tag", "true_label", "prob", "size", "share_in_B"])


# ---------------------------------------------------------------- relabel vs remove (§3.5, Table 4)
def relabel_vs_remove(noise=0.3, n_test=30, seed=0, n_train=1000, n_features=20, l2=1.0,
                      methods=("relabel", "removal_alg1", "removal_alg2")):
    """For misclassified test points (first ``n_test``): ``|S_t|`` by relabeling and by removal
    (Alg1, Alg2), split into points in the noise set N and clean points."""
    ds = make_synthetic(n_train=n_train, n_test=400, n_features=n_features, noise=noise,
                        seed=seed, class_sep=2.0)
    a = RelabelAudit(l2=l2).fit(ds.X_train, ds.y_train)
    p = a.predict_proba(ds.X_test)
    wrong = np.nonzero((p > 0.5) != ds.y_test)[0][: int(n_test)]
    X = ds.X_test[wrong]
    noisy = np.zeros(ds.n_train, bool)
    noisy[ds.meta["flipped_idx"]] = True
    found = {"relabel": lambda: a.flip_sets(X), "removal_alg1": lambda: a.removal_sets(X, "alg1"),
             "removal_alg2": lambda: a.removal_sets(X, "alg2")}
    rows = []
    for m in methods:
        fs = found[m]()
        for j, i in enumerate(wrong):
            idx = fs.indices(j)
            rows.append({"method": m, "test_index": int(i), "size": int(idx.size),
                         "in_noise": int(noisy[idx].sum()), "not_in_noise": int((~noisy[idx]).sum())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- method comparison (§3.2, Fig. 2)
#: sign that makes "larger = pushes the prediction toward the other side" for each score
#: (see cfdkit.scores: ip_* are changes of P(y=1); influence > 0 = harmful to the predicted label;
#: relatif / grad_dot / grad_cos > 0 = supports the predicted label, so relabeling it pushes away).
METHODS = ("ip_relabel", "ip_remove", "influence", "relatif", "grad_dot", "grad_cos", "random")


def ranking(audit, X, method):
    """Training indices per test row, most flip-promoting first."""
    sc = audit.scores(X, method)
    pred = audit.predict_proba(X) > audit.threshold
    if method in ("ip_relabel", "ip_remove"):
        key = np.where(pred[:, None], -sc, sc)       # push P(y=1) away from the prediction
    elif method == "influence":
        key = -sc                                     # most helpful to the predicted label first
    else:
        key = sc                                      # most supportive first
    return np.argsort(-key, axis=1, kind="stable")


def figure2(methods=METHODS, ks=(5, 10, 20, 40), n_test=20, seed=0, n_train=2000, n_features=20, l2=1.0):
    """Mean ``|Δp|`` of ``n_test`` random test points after relabeling each method's top-k and retraining
    (synthetic two-Gaussian data, seed ``seed``)."""
    ds = make_synthetic(n_train=n_train, n_test=200, n_features=n_features, seed=seed)
    a = RelabelAudit(l2=l2, seed=seed).fit(ds.X_train, ds.y_train)
    rng = np.random.default_rng(seed)
    rows_t = rng.permutation(ds.n_test)[: int(n_test)]
    X = ds.X_test[rows_t]
    p0 = a.predict_proba(X)
    out = []
    for m in methods:
        order = ranking(a, X, m)
        for k in ks:
            sets = [order[j, :k] for j in range(len(rows_t))]
            p1 = a.retrain_probabilities(X, sets)
            out.append({"method": m, "k": int(k), "mean_abs_delta": float(np.abs(p1 - p0).mean())})
    return pd.DataFrame(out)
