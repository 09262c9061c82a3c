"""Compaction in the batched trainer (issue 16 speed item): converged members leave the batch.

One command prints every figure::

    PYTHONPATH=. CFDKIT_DATA_HOME=/work/shared/data OMP_NUM_THREADS=1 python benchmarks/bench_compaction.py [names]

Per data set (default: the seven fairness sets; sets > 2,000 rows subsampled as in the neural table) and
NeuralCFD's default recipe (weight_decay "auto", cosine lr, tol 3e-3, <= 3000 steps):

1. **Trainer**: the placebo / specificity workload -- 20 random label sets for each size k = 1..10 (200
   networks) trained in chunks of ``auto_chunk`` members, with ``compact=False`` (converged members stay in
   the batch with a zero step, the former behaviour) and ``compact=True``, interleaved, best of 2 each.
   Prints both times, the ratio, the ideal ratio (sum over chunks of B x slowest member's steps, over the
   sum of every member's steps), and whether the parameters and convergence records are bit-identical.
2. **Search + placebo** (German only, 40 seeded test rows, m = 10, combined ranking, 20 placebo draws):
   ``NeuralCFD.search`` end to end with ``cfdkit.neural.fast.COMPACT`` False / True; the results
   (found, k, flip sets, specificity) must be identical.

Timings on a shared machine are noisy; the ratio within one run is what to read.  ``CFDKIT_BENCH_SMOKE=1``: the
synthetic set, 8 members, 40 steps, 2 test rows (checks that the script runs; no data needed).
"""
import os
import sys
import time

import numpy as np
import torch

import cfdkit.neural.fast as fast
from cfdkit.neural.batched import auto_chunk, train_batched
from cfdkit.neural.model import TrainConfig, auto_weight_decay, init_params
from cfdkit.studies.neural_table import FAIRNESS, load_arrays, subsample_train

#: ``CFDKIT_BENCH_SMOKE=1``: a tiny run that only checks the script works (tests/test_benchmarks_smoke.py).
SMOKE = os.environ.get("CFDKIT_BENCH_SMOKE") == "1"
MEMBERS, REPS, EPOCHS = (8, 1, 40) if SMOKE else (200, 2, 3000)


def trainer(name):
    Xtr, ytr, _, _ = load_arrays(name, None, 0)
    Xtr, ytr, _ = subsample_train(Xtr, ytr, 2000, 0)
    X, y = torch.as_tensor(Xtr), torch.as_tensor(ytr, dtype=torch.float64)
    n, d = X.shape
    cfg = TrainConfig(epochs=EPOCHS, lr_min=1e-4, tol=3e-3, weight_decay=auto_weight_decay(n))
    rng = np.random.default_rng(0)
    Y = y.repeat(MEMBERS, 1)
    for b in range(MEMBERS):
        idx = rng.choice(n, min(n, 1 + b // 20), replace=False)
        Y[b, idx] = 1 - Y[b, idx]
    p0 = init_params(d, (8, 8), 0)
    mb = auto_chunk(n, (8, 8))
    XT = X.t().contiguous()
    best, res = {False: np.inf, True: np.inf}, {}
    for rep in range(REPS):
        for c in (False, True):
            t0 = time.perf_counter()
            outs = [train_batched(X, Y[s:s + mb], p0, cfg, XT=XT, return_info=True, compact=c)
                    for s in range(0, len(Y), mb)]
            best[c] = min(best[c], time.perf_counter() - t0)
            res[c] = outs
    same = all(all(torch.equal(a, b) for a, b in zip(pa, pb)) and np.array_equal(ia["steps"], ib["steps"])
               and np.array_equal(ia["converged"], ib["converged"]) for (pa, ia), (pb, ib) in zip(res[False], res[True]))
    st = [i["steps"] for _, i in res[True]]
    ideal = sum(len(s) * s.max() for s in st) / sum(s.sum() for s in st)
    print(f"trainer  {name:8s} n={n:5d} d={d:3d} chunk={mb:2d}  no compaction {best[False]:7.2f} s  compaction "
          f"{best[True]:7.2f} s  speed-up {best[False] / best[True]:4.2f}x (ideal {ideal:4.2f}x)  steps "
          f"{min(s.min() for s in st)}-{max(s.max() for s in st)}  bit-identical {same}", flush=True)


def search():
    from cfdkit.neural import NeuralCFD
    Xtr, ytr, Xte, _ = load_arrays("synthetic" if SMOKE else "german", None, 0)
    Xq = Xte[np.sort(np.random.default_rng(0).permutation(len(Xte))[:2 if SMOKE else 40])]
    cfd = NeuralCFD(budget=2 if SMOKE else 10, progress=False, num_threads=1).fit(Xtr, ytr)
    best, res = {False: np.inf, True: np.inf}, {}
    for rep in range(REPS):
        for c in (False, True):
            fast.COMPACT = c
            cfd.set_params(cache=False)
            t0 = time.perf_counter()
            res[c] = cfd.search(Xq)
            best[c] = min(best[c], time.perf_counter() - t0)
    fast.COMPACT = True
    a, b = res[False], res[True]
    same = (np.array_equal(a.found, b.found) and np.array_equal(a.k, b.k) and np.array_equal(a.order, b.order)
            and np.array_equal(a.specificity, b.specificity, equal_nan=True)
            and np.array_equal(a.new_logit, b.new_logit, equal_nan=True))
    print(f"search   german   40 test rows, m=10, combined + specificity (20 draws): no compaction "
          f"{best[False]:7.2f} s  compaction {best[True]:7.2f} s  speed-up {best[False] / best[True]:4.2f}x  "
          f"found {b.n_found}  identical {same}", flush=True)


def main(argv):
    torch.set_num_threads(1)
    for name in argv or (("synthetic",) if SMOKE else FAIRNESS):
        trainer(name)
    search()


if __name__ == "__main__":
    main(sys.argv[1:])
