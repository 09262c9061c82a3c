"""Benchmark: RelabelAudit.minimal_sets on hate speech (BoW, l2=10, tau=0.25) vs sequential scikit-learn refits.

    CFDKIT_DATA_HOME=... python benchmarks/bench_minimal.py [--n-test N] [--device cuda] [--sample 20]

cfdkit's time is measured on ``--n-test`` rows (default all 1,071).  The scikit-learn figure repeats the same
search's refits one by one: the number of refits minimal_sets made times the mean time of a
``LogisticRegression(C=1/l2, tol=1e-6)`` fit (warm-started, lbfgs) on a sample of the same relabelings.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--sample", type=int, default=20)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    from cfdkit.data.prepare import prepare
    from cfdkit.studies.linear import make_audit

    prep = prepare("hate-speech", "bow")
    X_test = prep.X_test if args.n_test is None else prep.X_test[:args.n_test]
    audit = make_audit(prep, device=args.device, progress=True)
    t0 = time.perf_counter()
    ms = audit.minimal_sets(X_test)
    t_cfd = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    found = np.nonzero(ms.found)[0]
    pick = rng.choice(found, size=min(args.sample, found.size), replace=False)
    times = []
    for i in pick:
        y = prep.y_train.copy()
        idx = ms.indices(int(i))
        y[idx] = 1 - y[idx]
        t = time.perf_counter()
        LogisticRegression(C=1.0 / prep.l2, tol=1e-6, max_iter=1000).fit(prep.X_train, y)
        times.append(time.perf_counter() - t)
    per = float(np.mean(times))
    rec = {"n_test": int(X_test.shape[0]), "device": str(audit.device_), "seconds_cfdkit": t_cfd,
           "refits": ms.refits, "timings": ms.timings, "sklearn_s_per_refit": per,
           "sklearn_scaled_seconds": per * ms.refits, "ratio": per * ms.refits / t_cfd,
           "summary": ms.summary()}
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
