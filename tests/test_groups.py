"""group_report / group_metric_frame: per-group flip-set statistics, checked against a plain loop."""
import numpy as np
import pandas as pd
import pytest

from cfdkit import RelabelAudit
from cfdkit.linear import group_metric_frame, group_report
from conftest import make_problem


@pytest.fixture(scope="module")
def case():
    X, y, Xt, _ = make_problem(n=300, d=6, n_test=40, seed=3, noise=1.0)
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    fs = a.flip_sets(Xt)
    ver = a.verify(fs)
    rng = np.random.default_rng(0)
    g_test = rng.choice(["a", "b", "c"], len(Xt))
    g_train = np.where(X[:, 0] > 0.3, "high", "low")      # correlated with the features: uneven shares
    return fs, ver, g_test, g_train


def _by_loop(fs, ver, g_test, g_train):
    rows = {}
    for g in sorted(set(g_test)):
        idx = [i for i in range(len(fs)) if g_test[i] == g]
        found = [i for i in idx if fs.size[i] > 0]
        sizes = [fs.size[i] for i in found]
        fl = [float(ver.flipped[i]) for i in idx]
        share_high = [np.mean([g_train[j] == "high" for j in fs.indices(i)]) for i in found]
        rows[g] = {"n_test": len(idx), "found_rate": len(found) / len(idx), "flip_rate": np.mean(fl),
                   "mean_size": np.mean(sizes) if sizes else np.nan,
                   "median_size": np.median(sizes) if sizes else np.nan,
                   "share_from_high": np.mean(share_high) if share_high else np.nan}
    return pd.DataFrame(rows).T


def test_group_report_matches_a_loop(case):
    fs, ver, g_test, g_train = case
    assert fs.found.sum() >= 10 and ver.flip_known.all()
    rep = group_report(ver, g_test, train_sensitive_features=g_train)
    ref = _by_loop(fs, ver, g_test, g_train)
    assert list(rep.index) == ["a", "b", "c"] and rep.index.name == "group"
    for col in ref.columns:
        np.testing.assert_allclose(rep[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12, err_msg=col)
    ok = rep["mean_size"].notna()
    np.testing.assert_allclose(rep.loc[ok, "share_from_high"] + rep.loc[ok, "share_from_low"], 1.0)
    assert rep.attrs["train_group_share"]["high"] == pytest.approx(np.mean(g_train == "high"))
    assert rep["n_test"].sum() == len(fs) and rep["n_test"].dtype == np.int64


def test_flip_sets_alone_have_no_flip_rate(case):
    fs, _, g_test, _ = case
    rep = group_report(fs, pd.Series(g_test, name="region"))
    assert rep.index.name == "region"
    assert "flip_rate" not in rep and not any(c.startswith("share_from") for c in rep)
    np.testing.assert_allclose(rep.loc["a", "found_rate"], fs.found[g_test == "a"].mean())


def test_intersectional_groups(case):
    fs, ver, g_test, _ = case
    sex = np.where(np.arange(len(fs)) % 2 == 0, "f", "m")
    rep = group_report(ver, pd.DataFrame({"region": g_test, "sex": sex}))
    assert rep.index.names == ["region", "sex"]
    assert rep["n_test"].sum() == len(fs)
    m = (g_test == "b") & (sex == "m")
    assert rep.loc[("b", "m"), "found_rate"] == pytest.approx(fs.found[m].mean())


def test_bad_input(case):
    fs, ver, g_test, g_train = case
    with pytest.raises(ValueError, match="sensitive_features has 39 entries but there are 40 test rows"):
        group_report(ver, g_test[:-1])
    with pytest.raises(ValueError, match="train_sensitive_features has 10 entries"):
        group_report(ver, g_test, train_sensitive_features=g_train[:10])
    with pytest.raises(ValueError, match="missing values"):
        group_report(ver, np.where(np.arange(40) == 3, None, g_test))
    with pytest.raises(TypeError, match="array-like"):
        group_report(ver, "a")
    with pytest.raises(TypeError, match="FlipSets"):
        group_report(fs.to_frame(), g_test)


def test_metric_frame_agrees(case):
    pytest.importorskip("fairlearn", reason="fairlearn is optional (pip install 'cfdkit[fairness]')")
    fs, ver, g_test, g_train = case
    mf = group_metric_frame(ver, g_test, train_sensitive_features=g_train)
    rep = group_report(ver, g_test, train_sensitive_features=g_train)
    pd.testing.assert_frame_equal(mf.by_group.astype(float), rep.astype(float), check_names=False)
    assert mf.overall["found_rate"] == pytest.approx(fs.found.mean())
    assert mf.difference()["found_rate"] == pytest.approx(rep["found_rate"].max() - rep["found_rate"].min())
