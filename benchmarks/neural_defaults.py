"""Do ``NeuralCFD()``'s default training settings converge on the tables a user brings?

Seven fairness sets x two preparations = 14 fits of ``NeuralCFD()`` with every training parameter at its
default (``progress=False``, ``num_threads=1`` only):

* ``plain``: the raw training table through scikit-learn, the obvious way -- the loader's categorical
  columns one-hot encoded (``OneHotEncoder(handle_unknown="ignore")``), the other columns passed through,
  then every column standardized (``StandardScaler``);
* ``cfdkit``: the project's own preparation, :func:`cfdkit.data.load_arrays` (one-hot + standardized
  numerics, 0/1 indicators left as they are).

Each row reports n x p, whether the original network converged (the averaged gradient norm reached
``tol`` within ``epochs`` steps), the final averaged gradient norm, the steps and the wall time of ``fit``.

Usage::

    CFDKIT_DATA_HOME=/path/to/data python benchmarks/neural_defaults.py [--out benchmarks/RESULTS_neural.md]
        [--datasets german adult] [--preparations plain cfdkit]

One seed (0); the table is printed as Markdown (and, with ``--out``, written between the markers
``<!-- neural_defaults:begin -->`` / ``<!-- neural_defaults:end -->`` of that file, replacing the block).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import time

import numpy as np
import torch


def plain(name: str, with_test: bool = False):
    """The raw table, one-hot (categoricals) + StandardScaler (all columns), fit on the training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from cfdkit.data import load_fairness

    ds = load_fairness(name)
    tr = make_pipeline(ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                           list(ds.categorical))], remainder="passthrough"), StandardScaler())
    X, y = np.asarray(tr.fit_transform(ds.X_train), dtype=np.float64), np.asarray(ds.y_train, dtype=np.int64)
    if with_test:
        return X, y, np.asarray(tr.transform(ds.X_test), dtype=np.float64), np.asarray(ds.y_test, dtype=np.int64)
    return X, y


def project(name: str, with_test: bool = False):
    """:func:`cfdkit.data.load_arrays` (the project's preparation)."""
    from cfdkit.data import load_arrays

    X, y, Xt, yt = load_arrays(name)
    return (X, y, Xt, yt) if with_test else (X, y)


PREPARATIONS = {"plain": plain, "cfdkit": project}


def run(datasets, preps, **params):
    from cfdkit.neural import NeuralCFD

    rows = []
    for name in datasets:
        for prep in preps:
            X, y = PREPARATIONS[prep](name)
            cfd = NeuralCFD(progress=False, num_threads=1, **params)
            t0 = time.perf_counter()
            err = None
            try:
                cfd.fit(X, y)
            except ValueError as e:            # not converged (fit says so, with the fix)
                err = str(e)
            sec = time.perf_counter() - t0
            info = getattr(cfd, "convergence_", {})
            rows.append({"data": name, "preparation": prep, "n": X.shape[0], "p": X.shape[1],
                         "converged": err is None and bool(info.get("converged")),
                         "grad_norm": float(info.get("grad_norm", np.nan)), "steps": int(info.get("steps", -1)),
                         "seconds": sec, "error": err})
            r = rows[-1]
            print(f"{name:8s} {prep:7s} {r['n']:6d} x {r['p']:3d}  converged={r['converged']!s:5s}  "
                  f"grad_norm={r['grad_norm']:.3g}  steps={r['steps']}  {sec:.1f} s", flush=True)
    return rows


def stability(datasets, preps, stop_betas=(None, 0.97, 0.99)):
    """Placebo targets of the default recipe under each stop rule (``stop_beta``), with the measurement of
    ``benchmarks/bench_placebo_targets.py`` (training sets subsampled to 2,000 rows, seeded and stratified; 200
    seeded test rows; 8 seeds; 60 seeded single-label flips, every one where n <= 60): seed = share of test
    predictions of seeds 1..7 that differ from seed 0 (target <= 5 %), flip1 = mean (max) share changed by one
    flipped label (target <= 2 %), conv = share of the 68 networks that met the stop rule."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_placebo_targets import measure

    from cfdkit.neural.model import TrainConfig, auto_weight_decay
    from cfdkit.studies.neural_table import subsample_train

    rows = []
    for name in datasets:
        for prep in preps:
            Xtr, ytr, Xte, yte = PREPARATIONS[prep](name, with_test=True)
            Xtr, ytr, _ = subsample_train(Xtr, ytr, 2000, 0)
            ti = np.sort(np.random.default_rng(0).permutation(len(Xte))[:200])
            X, y = torch.as_tensor(Xtr), torch.as_tensor(ytr, dtype=torch.float64)
            for sb in stop_betas:
                cfg = TrainConfig(epochs=3000, lr_min=1e-4, tol=3e-3, weight_decay=auto_weight_decay(len(ytr)),
                                  stop_beta=sb)
                t0 = time.perf_counter()
                r = measure(X, y, torch.as_tensor(Xte[ti]), yte[ti], cfg)
                r.update(data=name, preparation=prep, n=len(ytr), stop_beta=sb, seconds=time.perf_counter() - t0)
                rows.append(r)
                print(f"{name:8s} {prep:7s} stop_beta={sb!s:5s} seed {100 * r['seed']:5.2f} %  flip1 "
                      f"{100 * r['flip1']:5.2f} % (max {100 * r['flip1_max']:4.1f})  acc {r['acc']:.3f}  conv "
                      f"{r['conv']:.2f}  steps {r['steps'][0]}-{r['steps'][1]}  {r['seconds']:.0f} s", flush=True)
    lines = ["| data set | preparation | n | stop rule | seed % | 1 flip % (max) | test acc | converged | steps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rule = "None (Adam's moment, ~10 steps)" if r["stop_beta"] is None else f"{r['stop_beta']} (~{1 / (1 - r['stop_beta']):.0f} steps)"
        lines.append(f"| {r['data']} | {r['preparation']} | {r['n']:,} | {rule} | {100 * r['seed']:.2f} | "
                     f"{100 * r['flip1']:.2f} ({100 * r['flip1_max']:.1f}) | {r['acc']:.3f} | {r['conv']:.2f} | "
                     f"{r['steps'][0]}-{r['steps'][1]} |")
    return "\n".join(lines)


def markdown(rows) -> str:
    lines = ["| data set | preparation | n x p | converged | final averaged gradient norm | steps | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['preparation']} | {r['n']:,} x {r['p']} | "
                     f"{'yes' if r['converged'] else '**no**'} | {r['grad_norm']:.2e} | {r['steps']} | "
                     f"{r['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    from cfdkit.data import FAIRNESS_NAMES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(FAIRNESS_NAMES))
    ap.add_argument("--preparations", nargs="+", default=list(PREPARATIONS), choices=list(PREPARATIONS))
    ap.add_argument("--out", default=None, help="Markdown file whose neural_defaults block is replaced")
    ap.add_argument("--stability", action="store_true",
                    help="instead: placebo targets (seed / one-flip shares) under the old and the new stop rule")
    ap.add_argument("--stop-betas", nargs="+", default=["None", "0.97", "0.99"],
                    help="stop rules compared by --stability (None = Adam's first moment)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.stability:
        print(stability(a.datasets, a.preparations, [None if v == "None" else float(v) for v in a.stop_betas]))
        return
    t0 = time.perf_counter()
    rows = run(a.datasets, a.preparations)
    table = markdown(rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = (f"\n\n{sum(r['converged'] for r in rows)} of {len(rows)} converged; {time.perf_counter() - t0:.0f} s in all, "
            f"torch {torch.__version__}, 1 thread, {platform.machine()}, load average {load:.1f} at the end.")
    print(table + note)
    if a.out:
        text = open(a.out).read() if os.path.exists(a.out) else ""
        block = f"<!-- neural_defaults:begin -->\n{table}{note}\n<!-- neural_defaults:end -->"
        pat = re.compile(r"<!-- neural_defaults:begin -->.*?<!-- neural_defaults:end -->", re.S)
        text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
