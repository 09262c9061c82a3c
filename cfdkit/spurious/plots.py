"""Figures of the IFBiD study (matplotlib imported lazily; needs the ``plots`` extra)."""
from __future__ import annotations

import numpy as np

__all__ = ["bias_trend_figure", "detector_figure"]


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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
