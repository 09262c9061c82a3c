"""Batched vs sequential retraining for the same Algorithm-1 candidates.

Trains the m prefix datasets (k = 1..m flips of the ``combined`` ranking) of each of
``--n-test`` test inputs twice in one run: as one vectorised ensemble (cfdkit's batched path)
and one network at a time (the literal loop, here without early stopping so both do the same
work), checks that both give the same first-flip k, and prints the speed ratio.

    PYTHONPATH=. python benchmarks/bench_neural.py --dataset german --data-home /work/shared/data
    PYTHONPATH=. python benchmarks/bench_neural.py --dataset synthetic --device cuda
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch


def machine_info(device) -> str:
    lines = [f"python {platform.python_version()}  torch {torch.__version__}  numpy {np.__version__}",
             f"platform {platform.platform()}  cpu {platform.processor() or platform.machine()}",
             f"os.cpu_count {os.cpu_count()}  torch threads {torch.get_num_threads()}",
             f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")]
    try:
        lines.append("loadavg %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="german", help="fairness name (needs --data-home), breast_cancer or synthetic")
    ap.add_argument("--data-home", default=None)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--budget", type=int, default=10)
    ap.add_argument("--hidden", type=int, nargs=2, default=(8, 8))
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: cuda if present)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--max-batch", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    from cfdkit.experiments.neural_table import load_arrays
    from cfdkit.neural import NeuralCFD
    from cfdkit.neural.search import search_batched, search_sequential

    Xtr, ytr, Xte, _ = load_arrays(a.dataset, a.data_home, a.seed)
    Xq = Xte[: a.n_test]
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    cfd = NeuralCFD(hidden=tuple(a.hidden), budget=a.budget, epochs=a.epochs, seed=a.seed, device=a.device,
                    dtype=dtype, progress=False, max_batch=a.max_batch).fit(Xtr, ytr)
    print(machine_info(cfd.device))
    print(f"dataset {a.dataset}: n_train={len(ytr)} d={Xtr.shape[1]}  test inputs={len(Xq)}  m={a.budget}  "
          f"hidden={tuple(a.hidden)} epochs={a.epochs} dtype={a.dtype}  full-batch Adam")

    res = cfd.search(Xq)                       # ranking + batched retraining, as the library runs it
    order, rows = res.order, np.flatnonzero(res.searched)
    n_members = int((order[rows] >= 0).sum())
    Xt = cfd._t(Xq)

    def sync():
        if cfd.device.type == "cuda":
            torch.cuda.synchronize()

    sync(); t0 = time.perf_counter()
    fb, kb, _, nb = search_batched(cfd._X, cfd._y, cfd.params0_, cfd.config, Xt, order, rows, res.logit,
                                   max_batch=a.max_batch)
    sync(); tb = time.perf_counter() - t0
    sync(); t0 = time.perf_counter()
    fs, ks, _, ns = search_sequential(cfd._X, cfd._y, cfd.params0_, cfd.config, Xt, order, rows, res.logit,
                                      early_stop=False)
    sync(); ts = time.perf_counter() - t0
    same = bool(np.array_equal(fb, fs) and np.array_equal(kb, ks))
    print(f"networks trained: batched {nb}, sequential {ns} (same candidate datasets)")
    print(f"batched    {tb:8.2f} s   ({tb / nb * 1e3:7.2f} ms / network)")
    print(f"sequential {ts:8.2f} s   ({ts / ns * 1e3:7.2f} ms / network)")
    print(f"speed-up (sequential / batched): {ts / tb:.1f}x   same first-flip k: {same}   "
          f"CFDs found: {int(fb.sum())}/{len(rows)}")
    return ts / tb


if __name__ == "__main__":
    main()
