"""flip_sets + verify on hate speech: one process, then a Dask LocalCluster of 1 and 2 worker processes.

The same code runs on a real cluster: replace the LocalCluster by ``Client("tcp://scheduler:8786")``.
Results must be bit-for-bit those of one process (checked here); the score blocks and refit
batches (``memory_budget``) are the units of work, so the budget is set to give several of each.

Usage::

    CFDKIT_DATA_HOME=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_dask.py [--blocks 8] [--test-rows 1071]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _flip_and_verify(audit, X_test):
    """``flip_sets`` then ``verify`` of its sets: (sets, verification, seconds of each)."""
    t0 = time.perf_counter()
    fs = audit.flip_sets(X_test)
    t_flip = time.perf_counter() - t0
    t0 = time.perf_counter()
    ver = audit.verify(fs)
    return fs, ver, t_flip, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=8, help="score blocks the test set is cut into")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--test-rows", type=int, default=None, help="use only the first test rows (default: all 1,071)")
    args = ap.parse_args(argv)

    import distributed
    from joblib import parallel_backend

    from bench_flip import hate_speech_features, machine
    from cfdkit import RelabelAudit

    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}")
    Xtr, y, Xte = hate_speech_features()
    if args.test_rows is not None:
        Xte = Xte[:args.test_rows]
    n, p, T = Xtr.shape[0], Xtr.shape[1] + 1, Xte.shape[0]
    budget = 8 * 4 * max(n, p) * -(-T // args.blocks)  # test rows per block = T / blocks
    audit = RelabelAudit(l2=10.0, threshold=0.25, device="cpu", memory_budget=budget).fit(Xtr, y)
    print(f"hate speech BoW: N={n}, vocabulary={p - 1}, test={T}; memory_budget={budget / 2**20:.0f} MiB "
          f"-> {audit._block_rows(T)} test rows per block")

    ref, ref_v, t_flip, t_ver = _flip_and_verify(audit, Xte)
    print(f"one process: flip_sets {t_flip:.2f} s, verify {t_ver:.2f} s ({int(ref.found.sum())} sets), "
          f"total {t_flip + t_ver:.2f} s")
    base = t_flip + t_ver
    for k in args.workers:
        with distributed.LocalCluster(n_workers=k, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster):
            with parallel_backend("dask"):
                audit.flip_sets(Xte[:5])  # warm-up: workers import cfdkit and torch
                fs, ver, tf, tv = _flip_and_verify(audit, Xte)
        same = (np.array_equal(fs.flat_indices, ref.flat_indices) and np.array_equal(fs.flat_effects, ref.flat_effects)
                and np.array_equal(ver.new_prob, ref_v.new_prob, equal_nan=True))
        print(f"Dask {k} worker(s): flip_sets {tf:.2f} s, verify {tv:.2f} s, total {tf + tv:.2f} s "
              f"(one process / this = {base / (tf + tv):.2f}x); bit-for-bit equal to one process: {same}")


if __name__ == "__main__":
    main()
