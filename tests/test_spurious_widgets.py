"""Tests for cfdkit_widgets.spurious (the SpuriousExplorer and its pure functions)."""
import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from cfdkit.studies.ifbid import IFBiDConfig, run_ifbid  # noqa: E402
from cfdkit_widgets.flip import ExplorerError  # noqa: E402
from cfdkit_widgets.spurious import (SpuriousExplorer, apply_mitigation, digits_figure, member_summary,  # noqa: E402
                                     summary_html, wrong_digits)


@pytest.fixture(scope="module")
def res():
    cfg = IFBiDConfig(per_level_train=3, per_level_test=2, per_level_other=1, per_level_deeper=2, n_train=150,
                      epochs=4, detector_epochs=5, perm_repeats=1, n_images=60)
    return run_ifbid(seed=0, config=cfg)


def test_member_summary_and_wrong_digits(res):
    s = member_summary(res, 1)
    assert s["sigma2"] == res.zoo_test.sigma2[1] and 0 <= s["accuracy"] <= 1
    assert s["blamed_layer"] in res.zoo_test.spec.layers
    assert set(s["verdicts"]) == {"stats", "conv1x1_dense", "pca_knn"}
    imgs, t, p, c = wrong_digits(res, 1, max_n=5)
    assert imgs.shape[1:] == (8, 8, 3) and len(imgs) <= 5
    assert np.all(t != p) and np.all(c != t)  # wrong, and painted in another class's colour
    html = summary_html(s)
    assert "colour-score" in html and s["blamed_layer"] in html
    fig = digits_figure(imgs, t, p, c)
    assert len(fig.axes) >= 6
    with pytest.raises(ExplorerError, match="not in the held-out zoo"):
        member_summary(res, 999)


def test_apply_mitigation_changes_only_that_model(res):
    z, drop = apply_mitigation(res, 2, "reset_layer")
    for k in z.params:
        for j in range(len(z)):
            if j != 2:
                assert np.array_equal(z.params[k][j].numpy(), res.zoo_test.params[k][j].numpy())
    assert any(not np.array_equal(z.params[k][2].numpy(), res.zoo_test.params[k][2].numpy()) for k in z.params)
    after = member_summary(res, 2, zoo=z)
    assert after["accuracy"] != member_summary(res, 2)["accuracy"] or after["color_score"] != member_summary(res, 2)["color_score"]
    with pytest.raises(ExplorerError, match="mitigation"):
        apply_mitigation(res, 2, "prune")


def test_explorer_builds_selects_and_applies(res):
    ex = SpuriousExplorer(res)
    assert len(ex.model.options) == 2  # two held-out models per level
    ex.level.value = ex.level.options[-1][1]
    assert all(np.isclose(res.zoo_test.sigma2[v], ex.level.value) for _, v in ex.model.options)
    assert "colour-score" in ex.info.value
    ex.mitigation.value = "dropout"
    ex.apply()
    assert "before" in ex.info.value and "dropout" in ex.message.value


def test_study_figures(res):
    from cfdkit.plots import bias_trend_figure, detector_figure
    from cfdkit.studies.ifbid import PAPER

    fig = bias_trend_figure(res.report)
    assert len(fig.axes[0].lines) == 2
    fig2 = detector_figure(res.detectors, PAPER)
    assert len(fig2.axes[0].patches) == 2 * len(res.detectors)
    with pytest.raises(ValueError, match="color_score"):
        bias_trend_figure(res.report.drop(columns="color_score"))
