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


def plain(name: str):
    """The raw table, one-hot (categoricals) + StandardScaler (all columns), fit on the training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from cfdkit.data import load_fairness

    ds = load_fairness(name)
    tr = make_pipeline(ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                           list(ds.categorical))], remainder="passthrough"), StandardScaler())
    return np.asarray(tr.fit_transform(ds.X_train), dtype=np.float64), np.asarray(ds.y_train, dtype=np.int64)


def project(name: str):
    """:func:`cfdkit.data.load_arrays` (the project's preparation)."""
    from cfdkit.data import load_arrays

    X, y, _, _ = load_arrays(name)
    return X, y


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
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
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
