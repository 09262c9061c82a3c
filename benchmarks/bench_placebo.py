"""Cost of the placebo controls relative to the CFD search itself (issue 16; target <= 2x).

Fits one network with the stable recipe and times, for the same seeded test rows:
(1) the search (ranking + batched Algorithm-1 retraining, ``placebo_draws=None``);
(2) the specificity placebo of the found CFDs (``n_draws`` random label sets per pool and CFD size);
(3) ``cfd.placebo(X, sizes=(1, m), n_draws)`` (random sets of size 1 and m, plus ``n_draws`` seeds).
Prints the ratios (2)/(1) and (3)/(1).  Timings on a shared machine: label them with the load.

    PYTHONPATH=. CFDKIT_DATA_HOME=/work/shared/data python benchmarks/bench_placebo.py --dataset german
    PYTHONPATH=. python benchmarks/bench_placebo.py --dataset synthetic --device cuda
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="german")
    ap.add_argument("--data-home", default=None)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--budget", type=int, default=10)
    ap.add_argument("--n-draws", type=int, default=20)
    ap.add_argument("--ranking", default="combined")
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from cfdkit.neural import NeuralCFD
    from cfdkit.studies.neural_table import load_arrays, subsample_train

    Xtr, ytr, Xte, _ = load_arrays(a.dataset, a.data_home, 0)
    Xtr, ytr, _ = subsample_train(Xtr, ytr, a.max_train, 0)
    Xq = Xte[np.sort(np.random.default_rng(0).permutation(len(Xte))[:a.n_test])]
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    print(f"{a.dataset}: {len(ytr)} train x {Xtr.shape[1]}, {len(Xq)} test rows, m = {a.budget}, "
          f"{a.n_draws} draws, device {a.device}, threads {a.threads}, load {load}")
    cfd = NeuralCFD(budget=a.budget, ranking=a.ranking, device=a.device, progress=False, placebo_draws=None,
                    cache=False).fit(Xtr, ytr)
    t0 = time.perf_counter(); res = cfd.search(Xq); t_search = time.perf_counter() - t0
    cfd.set_params(placebo_draws=a.n_draws)
    t0 = time.perf_counter(); res2 = cfd.search(Xq); t_both = time.perf_counter() - t0
    t_spec = res2.placebo_seconds
    t0 = time.perf_counter(); pf = cfd.placebo(Xq, n_draws=a.n_draws); t_plc = time.perf_counter() - t0
    assert np.array_equal(res.found, res2.found) and np.array_equal(res.k, res2.k)
    print(f"search: {t_search:.2f} s, {res.info['n_trained']} networks, {res.n_found} CFDs")
    print(f"specificity placebo: {t_spec:.2f} s, {res2.info['placebo_networks']} networks "
          f"({res2.n_findings} of {res2.n_found} CFDs beat it) -> {t_spec / t_search:.2f}x the search")
    print(f"cfd.placebo(sizes=(1, {a.budget}), n_draws={a.n_draws}): {t_plc:.2f} s, {pf.attrs['n_networks']} networks "
          f"-> {t_plc / t_search:.2f}x the search")
    print(pf.attrs["summary"].to_string())
    try:
        print("load after %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass


if __name__ == "__main__":
    main()
