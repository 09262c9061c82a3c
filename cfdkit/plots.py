"""Figures of the paper's studies (matplotlib; the compute code never imports it).

Each function takes the DataFrame a :mod:`cfdkit.studies` function returns
(with the studies' own column names) and returns a :class:`matplotlib.figure.Figure`;
the single-panel ones also draw into a given ``ax``.  :func:`probability_path`
draws one test point's greedy path (``FlipSets.path(i)``).  The explorers of
``cfdkit_widgets`` draw with these functions.  Install ``cfdkit[plots]``.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["table2", "size_distribution", "size_vs_confidence", "bow_vs_embedding", "figure2", "noise_sweep",
           "tag_bias", "relabel_vs_remove", "probability_path", "estimated_vs_minimal", "save"]


def _plt():
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg",) and not _interactive():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise ImportError("cfdkit.plots needs matplotlib: pip install 'cfdkit[plots]'") from e
    return plt


def _interactive() -> bool:
    import sys

    return "ipykernel" in sys.modules


def _axes(ax, figsize):
    """``(fig, ax)``: a new figure of ``figsize``, or the figure of the given ``ax``."""
    if ax is None:
        return _plt().subplots(figsize=figsize)
    if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
        raise TypeError(f"ax must be a matplotlib Axes (or None for a new figure), got {type(ax).__name__}.")
    return ax.figure, ax


def _need(df, cols, what: str) -> None:
    missing = [c for c in cols if c not in getattr(df, "columns", ())]
    if missing:
        raise ValueError(f"{what}: the frame has no column(s) {missing}; pass the DataFrame that "
                         f"cfdkit.studies.{what} returns (it has {list(getattr(df, 'columns', []))}).")


def _label(row) -> str:
    return f"{row['dataset']}\n{row['features']}"


def table2(df):
    """Table 2 as bars: found_rate and flip_rate per (dataset, features)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(df)), 3.2))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["found_rate"], 0.4, label="found $S_t$")
    if "flip_rate" in df:
        ax.bar(x + 0.2, df["flip_rate"], 0.4, label="flip successful")
    ax.set_xticks(x, [_label(r) for _, r in df.iterrows()], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of test points")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def size_distribution(df, bins: int = 30):
    """Figure 3: histogram of |S_t| (found sets) per feature set, x in % of the training set."""
    plt = _plt()
    groups = list(df.groupby(["dataset", "features"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3), squeeze=False)
    for ax, ((d, f), g) in zip(axes[0], groups):
        s = g.loc[g["found"], "size_pct"]
        ax.hist(s, bins=bins, color="C0")
        ax.axvline(2.0, color="C3", ls="--", lw=1, label="2 % of training set")
        ax.set_title(f"{d} / {f}", fontsize=9)
        ax.set_xlabel("estimated set size, % of the training set")
        ax.set_ylabel("test points")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def size_vs_confidence(df):
    """Figure 5: |S_t| against the confidence, one panel per feature set (Spearman in the title).

    The paper plots ``|p - 0.5|``; where the frame has ``margin`` (``|p - tau|``) that is used
    instead, because with a threshold other than 0.5 (hate speech: 0.25) the distance to the
    decision boundary is what a set has to overcome.
    """
    from scipy.stats import spearmanr

    plt = _plt()
    d = df[df["size"] > 0] if "size" in df else df
    xcol, xlabel = (("margin", "distance of P(y=1) from the threshold")
                    if "margin" in d else ("abs_p_minus_half", "distance of P(y=1) from 0.5"))
    groups = list(d.groupby(["dataset", "features"], sort=False))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4 * max(1, len(groups)), 3), squeeze=False)
    for ax, ((ds, f), g) in zip(axes[0], groups):
        rho = spearmanr(g["size"], g[xcol]).statistic if len(g) > 2 else np.nan
        ax.scatter(g[xcol], g["size"], s=6, alpha=0.6)
        ax.set_yscale("log")
        ax.set_title(f"{ds} / {f}  (Spearman {rho:.2f})", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("estimated set size (labels)")
    fig.tight_layout()
    return fig


def estimated_vs_minimal(df, ax=None):
    """Each test point's minimal set size against Algorithm 1's estimated set size (log-log; the diagonal is
    "the estimate was already minimal").  ``df``: the frame ``cfdkit audit`` builds (columns ``size``, the
    estimated set's size, and ``minimal_size``); points need both sets."""
    _need(df, ["size", "minimal_size"], "audit_points")
    d = df[(df["size"] > 0) & (df["minimal_size"] > 0)]
    fig, ax = _axes(ax, (5.5, 4.2))
    if len(d):
        ax.scatter(d["size"], d["minimal_size"], s=12, alpha=0.6)
        hi = float(max(d["size"].max(), d["minimal_size"].max()))
        ax.plot([1, hi], [1, hi], color="C3", ls="--", lw=1, label="minimal = estimate")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("estimated set size (Algorithm 1), labels")
    ax.set_ylabel("minimal set size (verified), labels")
    ax.set_title("How many labels really suffice", fontsize=10)
    fig.tight_layout()
    return fig


def bow_vs_embedding(df):
    """Figure 4: mean |S_t| on shared flipped test points, BoW vs embeddings."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.5, 1.8 * len(df)), 3))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["mean_size_bow"], 0.4, label="BoW LR")
    ax.bar(x + 0.2, df["mean_size_embeddings"], 0.4, label="embeddings LR ('BERT')")
    ax.set_xticks(x, [f"{r.dataset}\n(n={r.n_shared})" for r in df.itertuples()], fontsize=8)
    ax.set_ylabel("mean $|S_t|$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure2(df, ax=None):
    """Figure 2: mean |Δp| after relabeling the top-k of each ranking, vs k (``sem_abs_delta`` as error bars)."""
    _need(df, ["method", "k", "mean_abs_delta"], "figure2")
    fig, ax = _axes(ax, (5, 3.4))
    for m, g in df.groupby("method", sort=False):
        g = g.sort_values("k")
        ax.errorbar(g["k"], g["mean_abs_delta"], yerr=g.get("sem_abs_delta"), marker="o", ms=3, capsize=2,
                    lw=2.5 if m == "ip_relabel" else 1.2, label=m)
    ax.set_xscale("log")
    ks = sorted({int(k) for k in df["k"]})
    ax.set_xticks(ks)                                   # the k values themselves (5, 10, 20), not 6×10⁰, 10¹, 2×10¹
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("k (training labels relabeled)")
    ax.set_ylabel("mean |Δp| (real refit)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def noise_sweep(df, ax=None):
    """Figure 6: mean |S_t| (solid) and accuracy (dashed) against the noise ratio, ± std over seeds.

    The bands are drawn where the frame has ``mean_size_std`` / ``accuracy_std`` (the study's frame has both).
    """
    _need(df, ["noise", "mean_size", "accuracy"], "noise_sweep")
    fig, ax = _axes(ax, (5, 3.4))
    x = df["noise"]
    ax.plot(x, df["mean_size"], "-o", color="C0", label="mean $|S_t|$")
    if "mean_size_std" in df:
        ax.fill_between(x, df["mean_size"] - df["mean_size_std"], df["mean_size"] + df["mean_size_std"], color="C0",
                        alpha=0.2)
    ax.set_xlabel("noise ratio")
    ax.set_ylabel("mean $|S_t|$", color="C0")
    ax2 = ax.twinx()
    ax2.plot(x, df["accuracy"], "--s", color="C1", label="accuracy")
    if "accuracy_std" in df:
        ax2.fill_between(x, df["accuracy"] - df["accuracy_std"], df["accuracy"] + df["accuracy_std"], color="C1",
                         alpha=0.2)
    ax2.set_ylabel("test accuracy", color="C1")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    return fig


def tag_bias(df, ax=None):
    """§3.4: mean share of S_t inside the biased set B, tag X vs tag Y (the share written over each bar)."""
    _need(df, ["tag", "mean_share_in_biased"], "tag_bias")
    fig, ax = _axes(ax, (3.5, 3))
    share = np.asarray(df["mean_share_in_biased"], dtype=float)
    ax.bar(df["tag"].map(lambda t: f"tag {t}"), share, color=["C3", "C0"][: len(df)])
    for x, v in enumerate(share):
        if np.isfinite(v):
            ax.text(x, v + 0.01, f"{v:.0%}", ha="center", fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean share of $S_t$ in B")
    fig.tight_layout()
    return fig


def relabel_vs_remove(df):
    """Tables 4/7: mean set sizes per method (stacked noisy / normal on a linear axis where there is noise,
    else on a log axis).

    One panel per (``noise``, ``dataset``) of the frame; a frame without those columns (one
    data set at one noise level) gets one panel, stacked where it has ``mean_noisy``.
    """
    _need(df, ["method", "mean_size"], "relabel_vs_remove")
    plt = _plt()
    keys = [c for c in ("noise", "dataset") if c in df.columns]
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(keys, sort=False)] if keys else [((), df)]
    fig, axes = plt.subplots(1, len(groups), figsize=(3 * len(groups), 3), squeeze=False)
    for ax, (key, g) in zip(axes[0], groups):
        x = np.arange(len(g))
        at = dict(zip(keys, key))
        nz = at.get("noise")
        if "mean_noisy" in g and "mean_normal" in g and (nz is None or nz > 0):
            ax.bar(x, g["mean_noisy"], color="C3", label="noisy")
            ax.bar(x, g["mean_normal"], bottom=g["mean_noisy"], color="C0", label="normal")
            ax.legend(fontsize=7)   # linear axis: on a log axis the stacked noisy part would hide below the limit
        else:
            ax.bar(x, g["mean_size"], color="C0")
            ax.set_yscale("log")
        ax.set_xticks(x, [m.replace("removal_", "rm ") for m in g["method"]], fontsize=8)
        title = ", ".join(([str(at["dataset"])] if "dataset" in at else []) + ([f"noise {nz:g}"] if nz is not None else []))
        if title:
            ax.set_title(title, fontsize=9)
        ax.set_ylabel("mean $|S_t|$")
    fig.tight_layout()
    return fig


def probability_path(path, threshold: float, ax=None, title: str | None = None):
    """One test point's estimated ``P(y=1)`` as the greedy set grows (``FlipSets.path(i)``), with ``tau``.

    Parameters
    ----------
    path : (|S_t| + 1,) array of float
        Estimated ``P(y=1)`` after relabeling the first ``k`` members, ``k = 0..|S_t|``.
    threshold : float
        The decision threshold ``tau``; the first ``k`` whose prediction differs from ``k = 0`` is marked.
    ax : matplotlib Axes, optional
        Draw into it (else a new figure).
    title : str, optional
    """
    p = np.asarray(path, dtype=float).ravel()
    if p.size == 0:
        raise ValueError("path is empty: pass FlipSets.path(i), which starts with the original probability (k = 0).")
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number (the decision threshold tau), got {threshold!r}.")
    if not np.isfinite(float(threshold)):
        raise ValueError(f"threshold must be finite (the decision threshold tau), got {threshold!r}.")
    tau = float(threshold)
    fig, ax = _axes(ax, (5.5, 3.0))
    k = np.arange(p.size)
    ax.plot(k, p, marker="o" if p.size <= 40 else None, ms=3, lw=1.5, label="estimated P(y=1)")
    ax.axhline(tau, color="crimson", ls="--", lw=1, label=f"τ = {tau:g}")
    crossed = np.nonzero((p > tau) != (p[0] > tau))[0]
    if crossed.size:
        kc = int(crossed[0])
        ax.axvline(kc, color="grey", ls=":", lw=1)
        ax.annotate(f"flips at k={kc}", (kc, tau), textcoords="offset points", xytext=(-60, 8), fontsize=8)
    ax.set_xlabel("k (greedy set size)")
    ax.set_ylabel("P(y=1)")
    ax.set_ylim(min(float(p.min()), tau) - 0.05, max(float(p.max()), tau) + 0.05)
    ax.set_title(title or "probability path")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def save(fig, path, dpi: int = 90) -> str:
    """Save ``fig`` as PNG and close it; returns the path."""
    plt = _plt()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------- spurious bias (IFBiD / "Mirror, mirror")
def bias_trend_figure(report, ax=None):
    """Unbiased accuracy and colour-score per member against sigma2 (means joined by lines).

    Parameters
    ----------
    report : DataFrame from :func:`cfdkit.spurious.bias_report` / ``IFBiDResult.report``
        (columns sigma2, accuracy, color_score).

    Returns
    -------
    matplotlib Figure
    """
    plt = _plt()

    for col in ("sigma2", "accuracy", "color_score"):
        if col not in report:
            raise ValueError(f"report lacks column {col!r}; pass the DataFrame returned by bias_report.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.4))
    else:
        fig = ax.figure
    rng = np.random.default_rng(0)
    for col, colour in (("accuracy", "C0"), ("color_score", "C1")):
        x = report["sigma2"].to_numpy() + rng.uniform(-0.0015, 0.0015, len(report))
        ax.scatter(x, report[col], s=8, alpha=0.4, color=colour)
        m = report.groupby("sigma2")[col].mean()
        ax.plot(m.index, m.values, "o-", color=colour, label=col.replace("_", "-"))
    ax.set_xlabel("colour jitter σ² (0.02 very high bias … 0.05 very low)")
    ax.set_ylabel("unbiased test accuracy / colour-score")
    ax.legend()
    fig.tight_layout()
    return fig


def detector_figure(detectors, paper: dict | None = None, ax=None):
    """Bar chart of 4-level held-out accuracy per detector (``IFBiDResult.detectors``), paper values as markers."""
    plt = _plt()

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
    else:
        fig = ax.figure
    x = np.arange(len(detectors))
    ax.bar(x - 0.2, detectors["acc_4level"], 0.4, label="4 levels (chance 0.25)")
    ax.bar(x + 0.2, detectors["acc_2level"], 0.4, label="2 levels (chance 0.5)")
    if paper:
        pv = [paper.get(f"detector_accuracy_4level_{k}") for k in detectors["detector"]]
        ax.scatter([xi - 0.2 for xi, v in zip(x, pv) if v is not None], [v for v in pv if v is not None],
                   marker="_", s=300, color="k", label="paper, 4 levels")
    ax.set_xticks(x, detectors["detector"], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
