"""Benchmark: RelabelAudit.minimal_sets on hate speech (BoW, l2=10, tau=0.25) vs sequential scikit-learn refits.

    CFDKIT_DATA_HOME=... python benchmarks/bench_minimal.py [--n-test N] [--device cuda] [--sample 20]

cfdkit's time is measured on ``--n-test`` rows (default all 1,071), with the audit of the studies
(``cfdkit.studies.linear.make_audit``: refits converge to a summed-gradient norm of 1e-6).  The scikit-learn
figure is the same search done with sequential refits: the number of refits minimal_sets made times the mean
time of one ``LogisticRegression(C=1/l2, tol=1e-6)`` fit (lbfgs, from scratch, as a search loop would call it)
on a sample of the relabelings it found.  Prints both times, the ratio and the targets (issue 10: under
5 minutes for all 1,071 rows on 2 cores; >= 20x faster than sequential scikit-learn), then one JSON record.

The reference is looser than cfdkit: scikit-learn scales the loss by 1/N for lbfgs, so ``tol=1e-6`` stops
its refits at a summed-gradient norm of ~2e-2 (2026-11-29, hate speech), 10^4 times cfdkit's tolerance, and
no ``tol`` takes it below ~3e-4 (L-BFGS-B's relative-reduction test, ``ftol = 64 eps``, ends it first).
The script measures the sample's summed-gradient norms (outside the timing) and also times the most
accurate reference scikit-learn gives (``tol=1e-8``), so the ratio can be read against both.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def summed_gradient_norm(X, y, clf, l2) -> float:
    """``||grad||_2`` of cfdkit's objective (summed log-loss + l2/2 ||coef||^2, intercept free) at clf's fit."""
    w, b = clf.coef_[0], float(clf.intercept_[0])
    r = 1.0 / (1.0 + np.exp(-(X @ w + b))) - y
    g = np.r_[X.T @ r + l2 * w, r.sum()]
    return float(np.linalg.norm(g))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--sample", type=int, default=20)
    args = ap.parse_args(argv)
    import torch
    from sklearn.linear_model import LogisticRegression

    from cfdkit.data.prepare import prepare
    from cfdkit.studies.linear import make_audit

    prep = prepare("hate-speech", "bow")
    X_test = prep.X_test if args.n_test is None else prep.X_test[:args.n_test]
    audit = make_audit(prep, device=args.device, progress=True)
    print(f"hate speech BoW: N={prep.X_train.shape[0]}, p={prep.X_train.shape[1]}, test rows={X_test.shape[0]}, "
          f"l2={prep.l2}, tau={prep.threshold}, tol={audit.tol}; device {audit.device_}, "
          f"torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    ms = audit.minimal_sets(X_test)
    t_cfd = time.perf_counter() - t0
    s = ms.summary()
    print(f"cfdkit minimal_sets: {t_cfd:.1f} s, {ms.refits} refits ({t_cfd / max(ms.refits, 1) * 1e3:.2f} ms per refit); "
          f"phases " + ", ".join(f"{k} {v:.1f} s" for k, v in ms.timings.items()))
    print(f"    found {s['minimal_found_rate']:.1%}, median size {s['median_verified_size']} "
          f"(Algorithm 1: {s['median_estimated_size']}), 1-minimal {s['one_minimal_rate']:.1%}")
    rng = np.random.default_rng(0)
    found = np.nonzero(ms.found)[0]
    pick = rng.choice(found, size=min(args.sample, found.size), replace=False)
    times, gnorms = {1e-6: [], 1e-8: []}, {1e-6: [], 1e-8: []}
    for i in pick:
        y = prep.y_train.copy()
        idx = ms.indices(int(i))
        y[idx] = 1 - y[idx]
        for tol in times:
            t = time.perf_counter()
            clf = LogisticRegression(C=1.0 / prep.l2, tol=tol, max_iter=1000).fit(prep.X_train, y)
            times[tol].append(time.perf_counter() - t)
            gnorms[tol].append(summed_gradient_norm(prep.X_train, y, clf, prep.l2))
    per = float(np.mean(times[1e-6]))
    t_ref = per * ms.refits
    per_tight = float(np.mean(times[1e-8]))
    for tol in times:
        print(f"sequential scikit-learn (lbfgs, tol={tol:g}): {np.mean(times[tol]) * 1e3:.1f} ms per refit (mean of "
              f"{len(times[tol])}) x {ms.refits} refits = {np.mean(times[tol]) * ms.refits:.1f} s; its refits end at a "
              f"summed-gradient norm of median {np.median(gnorms[tol]):.1e}, max {np.max(gnorms[tol]):.1e} "
              f"(cfdkit: <= {audit.tol:g})")
    scale = 1071 / X_test.shape[0]
    print(f"ratio against tol=1e-8 (scikit-learn's most accurate): {per_tight * ms.refits / t_cfd:.1f}x")
    print(f"ratio: {t_ref / t_cfd:.1f}x  (target >= 20x); cfdkit time {t_cfd:.1f} s"
          + (f", scaled to 1,071 rows ~{t_cfd * scale:.0f} s" if scale != 1 else "") + "  (target < 300 s on 2 cores)")
    rec = {"n_test": int(X_test.shape[0]), "device": str(audit.device_), "threads": torch.get_num_threads(),
           "seconds_cfdkit": t_cfd, "refits": ms.refits, "timings": ms.timings, "sklearn_s_per_refit": per,
           "sklearn_scaled_seconds": t_ref, "ratio": t_ref / t_cfd, "summary": s,
           "sklearn_grad_norm_median": float(np.median(gnorms[1e-6])),
           "sklearn_tight_s_per_refit": per_tight, "ratio_tight": per_tight * ms.refits / t_cfd,
           "sklearn_tight_grad_norm_median": float(np.median(gnorms[1e-8]))}
    print(json.dumps(rec, indent=1))
    return rec


if __name__ == "__main__":
    main()
