"""NeuralCFD(model=module): the torch.func ensemble vs the hand-written fast trainer vs sequential torch.optim.

One command, every figure printed with its reference.  Part 1 trains the same candidate datasets (the
``combined`` ranking's prefixes k = 1..m of ``--n-test`` test inputs of the built-in (8, 8) ReLU network) for a
fixed number of full-batch Adam steps (stable recipe's weight decay and cosine step, no early stop, so every
trainer does the same work) three ways, interleaved over ``--rounds`` groups so load changes hit all alike:

* ``fast``    -- the hand-written ensemble trainer of the built-in network (``cfdkit.neural.fast``), auto chunks;
* ``func``    -- the torch.func ensemble over the same network as an ``nn.Sequential`` (``stack_module_state`` +
  ``vmap(functional_call)``, functional Adam; ``cfdkit.neural.module``), chunks of ``--chunk``;
* ``optim``   -- one ``torch.optim.Adam`` retrain at a time on a deep copy of the module (the reference).

and checks that all three give the same networks (max |Δ logit| on the test inputs).  Part 2 runs
``NeuralCFD.search`` end to end (stable recipe, early stop per member, ``placebo_draws=None``) on
``--n-search`` test inputs for the built-in network and for ``model=`` the same network, and compares the CFDs.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_neural_module.py --data-home /work/shared/data

``--smoke`` runs a tiny synthetic case (seconds; the test suite checks that the script runs).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

import numpy as np
import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="german", help="fairness name (needs --data-home) or synthetic")
    ap.add_argument("--data-home", default=None)
    ap.add_argument("--n-test", type=int, default=4, help="part 1: test inputs (x budget members)")
    ap.add_argument("--n-search", type=int, default=6, help="part 2: test inputs searched end to end (0: skip)")
    ap.add_argument("--budget", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300, help="part 1: fixed Adam steps per network")
    ap.add_argument("--chunk", type=int, default=None, help="torch.func members per chunk (default: module.DEFAULT_CHUNK)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny synthetic run (checks that the script works)")
    a = ap.parse_args(argv)
    if a.smoke:
        a.dataset, a.n_test, a.n_search, a.budget, a.epochs, a.rounds = "synthetic", 1, 1, 2, 20, 1
    torch.set_num_threads(a.threads)

    from cfdkit.neural import NeuralCFD
    from cfdkit.neural.batched import auto_chunk, forward_batched, train_batched
    from cfdkit.neural.module import (DEFAULT_CHUNK, ModuleNet, check_module, forward_members, train_module_ensemble,
                                      train_module_sequential)
    from cfdkit.neural.model import ReLUNet
    from cfdkit.neural.search import labels_for, member_table
    from cfdkit.studies.neural_table import load_arrays

    Xtr, ytr, Xte, _ = load_arrays(a.dataset, a.data_home, a.seed)
    cfd = NeuralCFD(budget=a.budget, seed=a.seed, device=a.device, progress=False, placebo_draws=None).fit(Xtr, ytr)
    dev = cfd.device_
    print(f"python {platform.python_version()}  torch {torch.__version__}  {platform.machine()}  "
          f"os.cpu_count {os.cpu_count()}  torch threads {torch.get_num_threads()}  device {dev}  "
          f"loadavg {' '.join('%.2f' % v for v in os.getloadavg())}")
    print(f"dataset {a.dataset}: n_train={len(ytr)} d={Xtr.shape[1]}  hidden=(8, 8) float64  "
          f"weight_decay={cfd.config_.weight_decay:.3g}")

    # ---------------------------------------------------------------- part 1: same work, three trainers
    Xq = Xte[: a.n_test]
    res = cfd.search(Xq)
    t_idx, k = member_table(res.order, np.arange(len(Xq)))
    Y = labels_for(cfd.y_train_t_, res.order, t_idx, k)
    cfg = replace(cfd.config_, tol=None, epochs=a.epochs)
    spec = check_module(ReLUNet(cfd.params0_).to_module(), cfd.X_train_t_, dev)
    X, XT, Xt_t = cfd.X_train_t_, cfd.X_train_t_.t().contiguous(), cfd.as_tensor(Xq)
    mb_fast, mb_func = auto_chunk(len(ytr), (8, 8)), a.chunk or DEFAULT_CHUNK
    B = len(Y)
    L = {nm: np.zeros((B, len(Xq))) for nm in ("fast", "func", "optim")}
    T = dict.fromkeys(L, 0.0)
    groups = [g for g in np.array_split(np.arange(B), max(1, min(a.rounds, B))) if len(g)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for g in groups:
        for s in range(0, len(g), mb_fast):
            sync(); t0 = time.perf_counter()
            P = train_batched(X, Y[g[s:s + mb_fast]], cfd.params0_, cfg, XT=XT)
            sync(); T["fast"] += time.perf_counter() - t0
            L["fast"][g[s:s + mb_fast]] = forward_batched(P, Xt_t).double().cpu().numpy()
        for s in range(0, len(g), mb_func):
            sync(); t0 = time.perf_counter()
            P, _ = train_module_ensemble(spec, X, Y[g[s:s + mb_func]], cfg)
            sync(); T["func"] += time.perf_counter() - t0
            L["func"][g[s:s + mb_func]] = forward_members(spec, P, Xt_t).double().cpu().numpy()
        for b in g:
            sync(); t0 = time.perf_counter()
            p, _ = train_module_sequential(spec, X, Y[b], cfg)
            sync(); T["optim"] += time.perf_counter() - t0
            L["optim"][b] = ModuleNet(spec, p).logit(Xq)
    print(f"\npart 1: {B} networks (candidate datasets k = 1..{a.budget} of {len(Xq)} test inputs), {a.epochs} "
          f"full-batch Adam steps each, {len(groups)} interleaved rounds")
    names = {"fast": f"hand-written ensemble (built-in net, chunks of {mb_fast})",
             "func": f"torch.func ensemble (model=, chunks of {mb_func})",
             "optim": "sequential torch.optim (model=, one at a time)"}
    for nm in ("fast", "func", "optim"):
        print(f"  {names[nm]:<52s} {T[nm]:8.2f} s  {T[nm] / B * 1e3:8.1f} ms/network  "
              f"{T['optim'] / T[nm]:5.1f}x vs torch.optim  {T['fast'] / T[nm]:5.2f}x of fast")
    print(f"  torch.func ensemble vs hand-written fast path: the fast path is {T['func'] / T['fast']:.1f}x faster")
    print(f"  max |delta logit| on the test inputs: func vs optim {np.abs(L['func'] - L['optim']).max():.2e}, "
          f"fast vs optim {np.abs(L['fast'] - L['optim']).max():.2e}")

    # ---------------------------------------------------------------- part 2: NeuralCFD.search end to end
    if a.n_search:
        Xs = Xte[: a.n_search]
        mod = NeuralCFD(model=ReLUNet(cfd.params0_).to_module(), layer=("0", "2"), budget=a.budget, seed=a.seed,
                        device=a.device, progress=False, placebo_draws=None).fit(Xtr, ytr)
        out = {}
        for nm, est in (("built-in (fast path)", cfd), ("model= (torch.func)", mod)):
            est.set_params(cache=False)            # part 1 filled the built-in cache; same work for both
            t0 = time.perf_counter()
            r = est.search(Xs)
            out[nm] = (time.perf_counter() - t0, r)
        (tb, rb), (tm, rm) = out.values()
        print(f"\npart 2: NeuralCFD.search on {len(Xs)} test inputs, stable recipe (tol={cfd.config_.tol}, up to "
              f"{cfd.config_.epochs} steps, early stop per member), m={a.budget}, no placebo")
        for nm, (t, r) in out.items():
            print(f"  {nm:<24s} {t:8.2f} s  networks {r.info['n_trained']:4d}  CFDs {r.n_found}/{len(Xs)}  "
                  f"k {r.k.tolist()}")
        print(f"  model= / built-in time: {tm / tb:.1f}x   same CFDs: "
              f"{bool(np.array_equal(rb.found, rm.found) and np.array_equal(rb.k, rm.k))}")
    print("loadavg after " + " ".join("%.2f" % v for v in os.getloadavg()) + "  (timings on a shared machine)")


if __name__ == "__main__":
    main()
