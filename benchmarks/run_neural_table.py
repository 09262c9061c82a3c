"""The full neural table (Kim, Mitchell & Wang, Tables 1-3) under the stable recipe, with placebo columns.

Runs :func:`cfdkit.studies.neural_table.neural_cfd_table` one data set at a time with the settings of
``cfdkit reproduce --only neural-table`` (full size: seven fairness sets, up to 200 seeded test rows,
m = 10, (8, 8), <= 3000 steps, sets > 2,000 rows subsampled, all seven rankings, 20 placebo draws, NeuralCFD
defaults) and writes, atomically after each data set, ``OUT/records_<name>.csv``, ``OUT/records.csv`` (all
sets so far), ``OUT/meta.json`` and ``OUT/section.md`` (the REPRODUCTION.md section, rendered by
:func:`cfdkit.studies.neural_table.reproduction_section`).  Data sets whose records file exists are skipped
(restart-safe).  Long (> 1 h on a quiet machine); run it in the background::

    cd <repo> && CFDKIT_DATA_HOME=/work/shared/data PYTHONPATH=$PWD OMP_NUM_THREADS=1 nohup \\
        python benchmarks/run_neural_table.py /work/runs/neuraltable > /work/runs/neuraltable/run.log 2>&1 &

Re-render later with ``python benchmarks/run_neural_table.py OUT --render``; ``--splice REPRODUCTION.md`` also
replaces that file's neural section (from its ``## Neural networks`` heading to the next ``---`` line) with
``OUT/section.md``, atomically.
"""
import json
import os
import platform
import sys
import time

import pandas as pd
import torch

from cfdkit.studies.neural_table import FAIRNESS, neural_cfd_table, reproduction_section
from cfdkit.studies.reproduce import SIZES

#: ``CFDKIT_BENCH_SMOKE=1``: the synthetic set, 2 test rows, m = 2, one ranking, 2 placebo draws (checks that
#: the script runs; tests/test_benchmarks_smoke.py).
SMOKE = os.environ.get("CFDKIT_BENCH_SMOKE") == "1"
SMOKE_SIZES = {"neural_datasets": ("synthetic",), "neural_n_test": 2, "neural_budget": 2, "neural_max_train": 200,
               "neural_epochs": 3000, "neural_rankings": ("combined",)}


def _atomic_write(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def render(out):
    parts = [pd.read_csv(os.path.join(out, f"records_{d}.csv")) for d in FAIRNESS
             if os.path.exists(os.path.join(out, f"records_{d}.csv"))]
    if not parts:
        return None
    df = pd.concat(parts, ignore_index=True)
    meta = json.load(open(os.path.join(out, "meta.json"))) if os.path.exists(os.path.join(out, "meta.json")) else {}
    _atomic_write(os.path.join(out, "records.csv"), df.to_csv(index=False))
    _atomic_write(os.path.join(out, "section.md"), reproduction_section(df, meta))
    return df


def splice(section: str, path: str):
    """Replace the neural section of ``path`` (``## Neural networks`` heading up to the next ``---`` line)."""
    lines = open(path).read().split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("## Neural networks"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "---")
    _atomic_write(path, "\n".join(lines[:start] + section.rstrip("\n").split("\n") + [""] + lines[end:]))


def main(argv):
    out = argv[0] if argv else "/work/runs/neuraltable"
    os.makedirs(out, exist_ok=True)
    if "--render" in argv or "--splice" in argv:
        render(out)
        if "--splice" in argv:
            splice(open(os.path.join(out, "section.md")).read(), argv[argv.index("--splice") + 1])
        return
    sz = SMOKE_SIZES if SMOKE else SIZES["full"]
    draws = 2 if SMOKE else 20
    torch.set_num_threads(1)
    meta_path = os.path.join(out, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {
        "command": "python benchmarks/run_neural_table.py " + out, "settings": {k: v for k, v in sz.items()
                                                                               if k.startswith("neural_")},
        "placebo_draws": draws, "seed": 0, "hidden": [8, 8], "num_threads": 1, "host": platform.node(),
        "torch": torch.__version__, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "seconds": {}}
    for name in sz["neural_datasets"]:
        path = os.path.join(out, f"records_{name}.csv")
        if os.path.exists(path):
            print(f"{name}: records exist, skipped", flush=True)
            continue
        t0 = time.perf_counter()
        df = neural_cfd_table(datasets=(name,), n_test=sz["neural_n_test"], budget=sz["neural_budget"],
                              rankings=sz["neural_rankings"], max_train=sz["neural_max_train"],
                              epochs=sz["neural_epochs"], placebo_draws=draws, num_threads=1, verbose=True)
        meta["seconds"][name] = time.perf_counter() - t0
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        _atomic_write(path, df.to_csv(index=False))
        _atomic_write(meta_path, json.dumps(meta, indent=1))
        render(out)
        print(f"{name}: {meta['seconds'][name]:.0f} s, records in {path}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
