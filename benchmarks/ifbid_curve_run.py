"""Evaluate the IFBiD learning curve on whatever the zoo stores hold (no zoo training here).

    python benchmarks/ifbid_curve_run.py OUT.json [FIGURE.png] [--sizes N ...] [--detectors KIND ...]
    python benchmarks/ifbid_curve_run.py --extras OUT.json [N_BEHAVIOUR N_CONFUSION]
    python benchmarks/ifbid_curve_run.py --figure OUT.json FIGURE.png      (redraw from the stored rows)

``--extras`` adds, to the rows OUT.json already holds, the behaviour reference (a classifier on each model's
accuracies and colour-score, fitted on N_BEHAVIOUR training models, default 2,048) and the 4-level confusion
matrix of the ``stats`` detector fitted on N_CONFUSION models (default 8,192): where and why the curve flattens.

With ``--sizes`` only those training sizes are evaluated and merged into the rows OUT.json already holds
(detector fits at 1,024+ models take long on 2 cores, so each size is computed once).

Detectors (4- and 2-level) fitted on the first 256 / 1,024 / 4,096 / 8,192 training models (the sizes the
training store holds), scored on the held-out test zoo with Wilson 95 % intervals; the test zoo's unbiased
accuracy and colour-score per sigma2 with Student-t 95 % intervals over its models.
"""
import json
import os
import sys
import time

import numpy as np
import torch

from cfdkit.spurious.data import SIGMA2_LEVELS, colored_digits
from cfdkit.spurious.scores import bias_report
from cfdkit.studies.ifbid_curve import IFBID_CURVE, curve_records, curve_stores, learning_curve
from cfdkit.studies.spurious_seeds import mean_ci


def draw(df, fig_path):
    """The curve with Wilson intervals, 4 and 2 levels (the figure of REPRODUCTION.md)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for ax, lv, chance in ((axes[0], "4level", 0.25), (axes[1], "2level", 0.5)):
        for kind, g in df.groupby("detector", sort=False):
            y = g[f"acc_{lv}"].to_numpy()
            err = np.vstack([y - g[f"acc_{lv}_lo"], g[f"acc_{lv}_hi"] - y])
            ax.errorbar(g.n_train_models, y, yerr=err, marker="o", capsize=3, label=kind)
        ax.axhline(chance, color="grey", ls=":", lw=1)
        if lv == "4level":
            ax.axhline(0.9, color="k", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training-zoo size (models)")
        ax.set_ylabel(f"{lv[0]}-level accuracy on {IFBID_CURVE.n_test} held-out models")
    axes[0].legend(fontsize=7)
    plt.tight_layout()
    fig.savefig(fig_path + ".tmp.png", dpi=110)
    os.replace(fig_path + ".tmp.png", fig_path)


args = sys.argv[1:]
if args and args[0] == "--extras":
    import torch as _torch

    from cfdkit.studies.ifbid_curve import behaviour_reference, confusion

    _torch.set_num_threads(1)
    out = args[1]
    nb = int(args[2]) if len(args) > 2 else 2048
    nc = int(args[3]) if len(args) > 3 else 8192
    meta = json.loads(open(out).read())
    t0 = time.perf_counter()
    meta["behaviour_reference"] = behaviour_reference(n_train_models=nb)
    meta["behaviour_reference"]["seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cm = confusion(n_train_models=nc)
    meta["confusion_stats"] = {"n_train_models": nc, "true_sigma2": [float(v) for v in cm.index],
                               "pred_sigma2": [float(v) for v in cm.columns], "counts": cm.to_numpy().tolist(),
                               "seconds": time.perf_counter() - t0}
    with open(out + ".tmp", "w") as fh:
        json.dump(meta, fh, indent=1)
    os.replace(out + ".tmp", out)
    print(json.dumps({k: meta[k] for k in ("behaviour_reference", "confusion_stats")}, indent=1))
    sys.exit(0)
if args and args[0] == "--figure":      # redraw the figure from the rows OUT.json holds
    import pandas as pd

    draw(pd.DataFrame(json.loads(open(args[1]).read())["table"]).sort_values("n_train_models", kind="stable"),
         args[2])
    sys.exit(0)
only = None
kinds = None
if "--detectors" in args:
    k = args.index("--detectors")
    kinds = args[k + 1:]
    args = args[:k]
if "--sizes" in args:
    k = args.index("--sizes")
    only = [int(v) for v in args[k + 1:]]
    args = args[:k]
out = args[0]
fig_path = args[1] if len(args) > 1 else None
t0 = time.perf_counter()
train, test = curve_stores()
chunk_times = []
for st in (train, test):
    for k in st.done():
        chunk_times.append(os.stat(st.chunk_path(k)).st_mtime)
df = learning_curve(progress=True, sizes=only, detectors=kinds)
t_curve = time.perf_counter() - t0
if only is not None and os.path.exists(out):
    import pandas as pd

    old = pd.DataFrame(json.loads(open(out).read())["table"])
    df = pd.concat([old[~old.n_train_models.isin(df.n_train_models)], df]).sort_values(
        ["n_train_models"], kind="stable").reset_index(drop=True)
recs = curve_records(df)
zte = test.load(IFBID_CURVE.n_test)
data = colored_digits("jitter", sigma2=0.05, seed=777)
rep = bias_report(zte, data, n_images=400, seed=0)
for s in SIGMA2_LEVELS:
    g = rep[np.isclose(rep.sigma2, s)]
    for col in ("accuracy", "color_score"):
        m, lo, hi = mean_ci(g[col].to_numpy())
        recs.append({"study": "ifbid-curve", "dataset": "colored-digits", "features": f"held-out zoo, {len(g)} models",
                     "metric": f"{col}_sigma2_{s}", "paper": None, "cfdkit": m, "ci_low": lo, "ci_high": hi,
                     "n_models": int(len(g))})
ct = np.sort(np.asarray(chunk_times))
meta = {"n_train_models_stored": train.n_models, "n_test_models": test.n_models, "sizes_evaluated":
        sorted(set(df.n_train_models.tolist())), "seconds_curve": t_curve,
        "seconds_total": time.perf_counter() - t0, "threads": torch.get_num_threads(),
        "median_seconds_between_chunks": float(np.median(np.diff(ct))) if len(ct) > 2 else None,
        "chunk_size": train.chunk_size, "records": recs, "table": df.to_dict(orient="records")}
with open(out + ".tmp", "w") as fh:
    json.dump(meta, fh, indent=1)
os.replace(out + ".tmp", out)
print(df.to_string())


if fig_path:
    draw(df, fig_path)
