"""Placebo targets of a training recipe (issue 16): how much do another seed or random label flips move?

For one data set (training sets > 2,000 rows subsampled, seeded and stratified, as in the neural table)
and 200 seeded test rows, per recipe ``epochs,lr,lr_min,weight_decay,tol`` (``None`` for lr_min / tol):
seed = mean share of test predictions of seeds 1..4 that differ from seed 0; flip1 = mean (max) over 10
random single-label flips (seed 0) of the share of changed predictions; flip10 = same for 10-label sets;
acc = mean test accuracy over 5 seeds; pos = share predicted positive (a collapsed network predicts a
constant); steps / conv / gn = convergence of every member.  The table in cfdkit/neural/NOTES.md.

    PYTHONPATH=. CFDKIT_DATA_HOME=/work/shared/data python benchmarks/bench_stability.py german \\
        300,1e-2,None,0,None 3000,1e-2,1e-4,3e-2,3e-3
"""
import sys
import time

import numpy as np
import torch

from cfdkit.neural.batched import forward_batched, train_batched
from cfdkit.neural.model import TrainConfig, init_params
from cfdkit.studies.neural_table import load_arrays, subsample_train


def main(argv):
    torch.set_num_threads(1)
    name, recipes = argv[0], argv[1:]
    Xtr, ytr, Xte, yte = load_arrays(name, None, 0)
    Xtr, ytr, _ = subsample_train(Xtr, ytr, 2000, 0)
    ti = np.sort(np.random.default_rng(0).permutation(len(Xte))[:200])
    Xte, yte = Xte[ti], yte[ti]
    X, y, Xq = torch.as_tensor(Xtr), torch.as_tensor(ytr, dtype=torch.float64), torch.as_tensor(Xte)
    d = X.shape[1]
    for rec in recipes:
        ep, lr, lrmin, wd, tol = rec.split(",")
        cfg = TrainConfig(epochs=int(ep), lr=float(lr), lr_min=None if lrmin == "None" else float(lrmin),
                          weight_decay=float(wd), tol=None if tol == "None" else float(tol))
        t0 = time.perf_counter()
        preds, infos = [], []
        for s in range(5):
            P, inf = train_batched(X, y[None], init_params(d, (8, 8), s), cfg, return_info=True)
            preds.append((forward_batched(P, Xq)[0] > 0).numpy()); infos.append(inf)
        seed_rate = np.mean([np.mean(preds[0] != p) for p in preds[1:]])
        acc = np.mean([np.mean(p == yte) for p in preds])
        Y = y.repeat(10, 1)
        for b, i in enumerate(np.random.default_rng(1).choice(len(ytr), 10, replace=False)):
            Y[b, i] = 1 - Y[b, i]
        P, inf = train_batched(X, Y, init_params(d, (8, 8), 0), cfg, return_info=True)
        fl = (forward_batched(P, Xq) > 0).numpy() != preds[0][None]
        Y = y.repeat(10, 1)
        for b in range(10):
            idx = np.random.default_rng(100 + b).choice(len(ytr), 10, replace=False)
            Y[b, idx] = 1 - Y[b, idx]
        fl10 = (forward_batched(train_batched(X, Y, init_params(d, (8, 8), 0), cfg), Xq) > 0).numpy() != preds[0][None]
        steps = np.concatenate([i["steps"] for i in infos] + [inf["steps"]])
        conv = np.concatenate([i["converged"] for i in infos] + [inf["converged"]])
        gn = np.concatenate([i["grad_norm"] for i in infos] + [inf["grad_norm"]])
        print(f"{name} {rec:32s} seed {seed_rate:.3f} flip1 mean {fl.mean():.4f} max {fl.mean(1).max():.3f} "
              f"flip10 {fl10.mean():.3f} acc {acc:.3f} pos {preds[0].mean():.2f} base {yte.mean():.2f} "
              f"conv {conv.mean():.2f} steps {steps.min()}-{steps.max()} "
              f"gn {np.nanmax(gn) if np.isfinite(gn).any() else float('nan'):.1e} {time.perf_counter() - t0:.0f}s",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
