"""Batched vs sequential retraining for the same Algorithm-1 candidates.

Trains the m prefix datasets (k = 1..m flips of the ``combined`` ranking) of each of
``--n-test`` test inputs three times in one run: as one vectorised ensemble (cfdkit's batched
path, hand-written trainer), and one network at a time (the literal loop, here without early
stopping so all do the same work) with (a) the library's autograd single-network trainer
``model.train_params`` and (b) the same hand-written trainer with B = 1.  The test rows are
split into ``--rounds`` groups and the three runs are interleaved group by group, so load
changes on a shared machine hit all three alike.  Checks that all give the same first-flip k
and prints both speed ratios.  Every network runs ``--epochs`` full-batch Adam steps of the fixed-step recipe
(:data:`cfdkit.neural.FIXED_STEP_RECIPE`: no weight decay, constant step, no convergence stop), the setting
of the recorded numbers, so all three trainers do the same work.  ``--smoke`` runs a tiny synthetic case
(seconds; used by the test suite to check that the script runs).

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
    ap.add_argument("--rounds", type=int, default=4, help="interleave the three runs over this many row groups")
    ap.add_argument("--skip-autograd", action="store_true", help="skip the (slow) autograd sequential run")
    ap.add_argument("--smoke", action="store_true", help="tiny synthetic run (checks that the script works)")
    a = ap.parse_args(argv)
    if a.smoke:
        a.dataset, a.n_test, a.budget, a.epochs, a.rounds, a.threads = "synthetic", 2, 2, 20, 1, a.threads or 1
    if a.threads:
        torch.set_num_threads(a.threads)

    from cfdkit.studies.neural_table import load_arrays
    from cfdkit.neural import FIXED_STEP_RECIPE, NeuralCFD
    from cfdkit.neural.search import search_batched, search_sequential

    Xtr, ytr, Xte, _ = load_arrays(a.dataset, a.data_home, a.seed)
    Xq = Xte[: a.n_test]
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    cfd = NeuralCFD(hidden=tuple(a.hidden), budget=a.budget, epochs=a.epochs, seed=a.seed, device=a.device,
                    dtype=dtype, progress=False, max_batch=a.max_batch, **FIXED_STEP_RECIPE).fit(Xtr, ytr)
    print(machine_info(cfd.device_))
    print(f"dataset {a.dataset}: n_train={len(ytr)} d={Xtr.shape[1]}  test inputs={len(Xq)}  m={a.budget}  "
          f"hidden={tuple(a.hidden)} epochs={a.epochs} dtype={a.dtype}  full-batch Adam, fixed steps")

    res = cfd.search(Xq)                       # ranking + batched retraining, as the library runs it
    order, rows = res.order, np.flatnonzero(res.searched)
    n_members = int((order[rows] >= 0).sum())
    Xt = cfd.as_tensor(Xq)

    def sync():
        if cfd.device_.type == "cuda":
            torch.cuda.synchronize()

    groups = [g for g in np.array_split(rows, max(1, min(a.rounds, len(rows)))) if len(g)]
    tb = ts = tm = 0.0
    fb = np.zeros(len(Xq), bool); kb = np.zeros(len(Xq), np.int64); nb = ns = nm = 0
    fs, ks, fm, km = fb.copy(), kb.copy(), fb.copy(), kb.copy()
    args = (cfd.X_train_t_, cfd.y_train_t_, cfd.params0_, cfd.config_, Xt, order)
    for g in groups:            # interleaved: batched, sequential-autograd, sequential-manual per group
        sync(); t0 = time.perf_counter()
        f, k, _, nn, _ = search_batched(*args, g, res.logit, max_batch=a.max_batch)
        sync(); tb += time.perf_counter() - t0; fb[g], kb[g], nb = f[g], k[g], nb + nn
        if not a.skip_autograd:
            sync(); t0 = time.perf_counter()
            f, k, _, nn, _ = search_sequential(*args, g, res.logit, early_stop=False, trainer="autograd")
            sync(); ts += time.perf_counter() - t0; fs[g], ks[g], ns = f[g], k[g], ns + nn
        sync(); t0 = time.perf_counter()
        f, k, _, nn, _ = search_sequential(*args, g, res.logit, early_stop=False, trainer="manual")
        sync(); tm += time.perf_counter() - t0; fm[g], km[g], nm = f[g], k[g], nm + nn
    same = bool(np.array_equal(fb, fm) and np.array_equal(kb, km)
                and (a.skip_autograd or (np.array_equal(fb, fs) and np.array_equal(kb, ks))))
    try:
        load = "  loadavg after %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    print(f"networks trained: batched {nb}, sequential {nm} (same candidate datasets; {len(groups)} interleaved rounds)")
    print(f"batched (hand-written, chunks of {a.max_batch or 'auto'})  {tb:8.2f} s   ({tb / nb * 1e3:7.2f} ms / network)")
    if not a.skip_autograd:
        print(f"sequential, autograd train_params     {ts:8.2f} s   ({ts / ns * 1e3:7.2f} ms / network)")
    print(f"sequential, hand-written B=1          {tm:8.2f} s   ({tm / nm * 1e3:7.2f} ms / network)")
    if not a.skip_autograd:
        print(f"speed-up vs sequential autograd:      {ts / tb:.1f}x")
    print(f"speed-up vs sequential hand-written:  {tm / tb:.1f}x")
    print(f"same first-flip k: {same}   CFDs found: {int(fb[rows].sum())}/{len(rows)}{load}")
    return (ts / tb if not a.skip_autograd else None), tm / tb


if __name__ == "__main__":
    main()
