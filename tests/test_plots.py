"""cfdkit.plots: the functions the explorers draw with (headless, Agg)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cfdkit import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_probability_path_marks_the_first_crossing():
    path = [0.8, 0.7, 0.55, 0.45, 0.3]
    fig = plots.probability_path(path, 0.5, title="t")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), path)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(5))
    assert ax.lines[1].get_ydata()[0] == 0.5                         # the threshold line
    assert ax.lines[2].get_xdata()[0] == 3                           # first k whose prediction differs
    assert [t.get_text() for t in ax.texts] == ["flips at k=3"] and ax.get_title() == "t"
    lo, hi = ax.get_ylim()
    assert lo <= 0.3 and hi >= 0.8


def test_probability_path_without_crossing_and_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = plots.probability_path(np.array([0.2]), 0.25, ax=axes[1])
    assert out is fig and len(axes[1].lines) == 2 and not axes[1].texts and not axes[0].lines


@pytest.mark.parametrize("path, tau, exc, arg", [([], 0.5, ValueError, "path"),
                                                 ([0.2], float("nan"), ValueError, "threshold"),
                                                 ([0.2], "0.5", TypeError, "threshold"),
                                                 ([0.2], True, TypeError, "threshold")])
def test_probability_path_bad_input(path, tau, exc, arg):
    with pytest.raises(exc, match=arg):
        plots.probability_path(path, tau)


def test_probability_path_bad_ax():
    with pytest.raises(TypeError, match="ax"):
        plots.probability_path([0.2, 0.7], 0.5, ax="left")


def test_single_panel_study_plots_draw_into_a_given_ax():
    ns = pd.DataFrame({"noise": [0.0, 0.5], "mean_size": [3.0, 2.0], "accuracy": [0.9, 0.5]})   # no std columns
    tb = pd.DataFrame({"tag": ["X", "Y"], "mean_share_in_biased": [0.6, np.nan]})
    f2 = pd.DataFrame({"method": ["a", "a"], "k": [1, 2], "mean_abs_delta": [0.1, 0.2]})
    fig, axes = plt.subplots(1, 3)
    assert plots.noise_sweep(ns, ax=axes[0]) is fig
    assert not axes[0].collections                                   # no band without mean_size_std
    assert plots.tag_bias(tb, ax=axes[1]) is fig
    assert [t.get_text() for t in axes[1].texts] == ["60%"]          # NaN share: no label
    assert plots.figure2(f2, ax=axes[2]) is fig
    band = plots.noise_sweep(ns.assign(mean_size_std=[0.1, 0.2], accuracy_std=[0.0, 0.1]))
    assert isinstance(band, Figure) and len(band.axes[0].collections) == 1


def test_relabel_vs_remove_panels():
    rr = pd.DataFrame({"dataset": ["loan", "loan", "sst2", "sst2"], "noise": 0.3,
                       "method": ["relabel", "removal_alg1"] * 2, "mean_size": [3.0, 6.0, 4.0, 8.0],
                       "mean_noisy": [2.0, 4.0, 3.0, 5.0], "mean_normal": [1.0, 2.0, 1.0, 3.0]})
    fig = plots.relabel_vs_remove(rr)
    assert [a.get_title() for a in fig.axes] == ["loan, noise 0.3", "sst2, noise 0.3"]
    assert len(fig.axes[0].patches) == 4                             # stacked noisy + normal
    assert fig.axes[0].get_yscale() == "linear"                      # stacked bars: every segment visible
    assert fig.axes[0].get_ylim()[0] <= 0
    one = plots.relabel_vs_remove(rr[rr.dataset == "loan"].drop(columns=["dataset", "noise"]))
    assert len(one.axes) == 1 and len(one.axes[0].patches) == 4 and one.axes[0].get_title() == ""
    clean = plots.relabel_vs_remove(rr.assign(noise=0.0)[rr.dataset == "sst2"])
    assert len(clean.axes[0].patches) == 2 and clean.axes[0].get_yscale() == "log"   # no noise: plain mean sizes


@pytest.mark.parametrize("fn, missing", [(plots.noise_sweep, "accuracy"), (plots.tag_bias, "mean_share_in_biased"),
                                         (plots.figure2, "mean_abs_delta"), (plots.relabel_vs_remove, "mean_size")])
def test_study_plots_name_the_missing_column(fn, missing):
    df = pd.DataFrame({"noise": [0.0], "mean_size": [1.0], "tag": ["X"], "method": ["a"], "k": [1],
                       "accuracy": [0.9], "mean_share_in_biased": [0.5], "mean_abs_delta": [0.1]})
    with pytest.raises(ValueError, match=missing):
        fn(df.drop(columns=missing))
