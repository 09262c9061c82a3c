"""The paper's studies at small size: synthetic always, real data when present."""

import math
import os

import numpy as np
import pandas as pd
import pytest

from cfdkit import studies as E
from cfdkit.studies import paper

from conftest import shared_data_dir

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="no shared data (CFDKIT_DATA_HOME or ../shared/data)")


@pytest.fixture(autouse=True)
def _data_home(monkeypatch):
    if DATA is not None:
        monkeypatch.setenv("CFDKIT_DATA_HOME", str(DATA))
    yield


def _rate(x):
    return 0.0 <= x <= 1.0


def test_prepare_synthetic_and_table6_settings():
    prep = E.prepare("synthetic", n_test=30, seed=3)
    X_train, y_train, X_test, y_test, t_tr, t_te, l2, thr, info = prep
    assert X_test.shape[0] == 30 == len(y_test) and X_train.shape[0] == len(y_train)
    assert t_tr is None and thr == 0.5 and l2 > 0
    assert E.L2[("hate-speech", "bow")] == 10 and E.L2[("sst2", "bow")] == 1000 and E.L2[("loan", "tabular")] == 100
    assert E.L2[("sst2", "embeddings")] == 500 and E.THRESHOLD["hate-speech"] == 0.25
    noisy = E.prepare("synthetic", noise=0.2, seed=3)
    assert noisy.info["noisy_idx"].size == round(0.2 * len(noisy.y_train))
    assert (noisy.y_train != prep.y_train).sum() == noisy.info["noisy_idx"].size
    with pytest.raises(ValueError, match="unknown dataset"):
        E.prepare("no-such-data")
    with pytest.raises(ValueError, match="features"):
        E.prepare("synthetic", "embeddings")


def test_table2_synthetic():
    df = E.table2(datasets=("synthetic",), features=("dense",), n_test=25, seed=1, progress=False)
    assert len(df) == 1
    r = df.iloc[0]
    assert r.n_test == 25 and _rate(r.found_rate) and _rate(r.flip_rate)
    assert r.flip_rate <= r.found_rate + 1e-12
    assert r.found_rate > 0 and r.mean_size >= r.median_size * 0 + 1
    assert math.isclose(r.success_ratio, r.flip_rate / r.found_rate)


def test_size_distribution_and_confidence_synthetic():
    sd = E.size_distribution("synthetic", features=("dense",), n_test=25, seed=1)
    assert len(sd) == 25 and set(sd["features"]) == {"dense"}
    assert ((sd["size"] > 0) == sd["found"]).all()
    np.testing.assert_allclose(sd["size_pct"], 100 * sd["size"] / 800)
    sc = E.size_vs_confidence("synthetic", features=("dense",), n_test=25, seed=1)
    assert len(sc) == sd["found"].sum() and (sc["size"] > 0).all()
    rho = sc.attrs["spearman"]["dense"]
    assert -1 <= rho <= 1
    # flipping a confident prediction needs more relabels on clean, separable data
    assert rho > 0


def test_figure2_synthetic():
    df = E.figure2("synthetic", "dense", ks=(1, 20, 100), n_test=8, seed=0, progress=False)
    assert set(df["method"]) == set(E.RANK_DIRECTION) and len(df) == 3 * len(E.RANK_DIRECTION)
    assert (df["mean_abs_delta"] >= 0).all() and df["flip_rate"].between(0, 1).all()
    ip = df[df.method == "ip_relabel"].set_index("k")["mean_abs_delta"]
    rnd = df[df.method == "random"].set_index("k")["mean_abs_delta"]
    assert ip.is_monotonic_increasing
    assert (ip > rnd).all()
    tf = df[df.method == "ip_relabel"]["mean_delta_toward_flip"]
    assert (tf > 0).all()  # ranked toward flipping: the probability moves toward the threshold


def test_noise_sweep_synthetic():
    df = E.noise_sweep("synthetic", "dense", noise_ratios=(0.0, 0.3), seeds=(0, 1), n_test=30, progress=False)
    assert list(df["noise"]) == [0.0, 0.3] and (df["n_seeds"] == 2).all()
    assert df["accuracy"].between(0, 1).all() and (df["accuracy_std"] >= 0).all()
    assert len(df.attrs["runs"]) == 4
    # label noise makes predictions easier to flip
    assert df.loc[1, "mean_size"] < df.loc[0, "mean_size"]


def test_tag_bias_constructed():
    df = E.tag_bias("synthetic", seed=0)
    assert list(df["tag"]) == ["X", "Y"]
    x, y = df.set_index("tag")["mean_share_in_biased"][["X", "Y"]]
    assert 0 <= y <= 1 and 0 <= x <= 1
    assert x > y
    pts = df.attrs["points"]
    assert len(pts) == df["n_misclassified"].sum()


def test_relabel_smaller_than_removal():
    df = E.relabel_vs_remove(("synthetic",), noise=(0.3, 0.0), n_test=10, seed=0, progress=False)
    assert set(df["method"]) == {"relabel", "removal_alg1", "removal_alg2"} and set(df["noise"]) == {0.0, 0.3}
    for nz, g in df.groupby("noise"):
        m = g.set_index("method")
        if m.loc["relabel", "n_common"] == 0:
            continue
        assert m.loc["relabel", "mean_size_common"] <= m.loc["removal_alg2", "mean_size_common"]
        assert m.loc["removal_alg2", "mean_size_common"] <= m.loc["removal_alg1", "mean_size_common"]
        if nz > 0:
            np.testing.assert_allclose(g["mean_noisy"] + g["mean_normal"], g["mean_size"])


def test_paper_numbers():
    recs = paper.paper_records()
    keys = {(r["study"], r["dataset"], r["features"], r["metric"]): r["paper"] for r in recs}
    assert keys[("table2", "loan", "tabular", "found_rate")] == 0.61
    assert keys[("table2", "hate-speech", "embeddings", "flip_rate")] == 0.86
    assert keys[("table4", "hate-speech", "bow", "mean_noisy_removal_alg1")] == 146.8
    assert keys[("table7", "sst2", "bow", "mean_size_relabel")] == 138.5
    assert keys[("tag-bias", "loan", "tabular", "share_in_biased_tag_x")] == 0.60
    assert keys[("tag-bias", "loan", "tabular", "share_in_biased_tag_y")] == 0.23
    assert sum(r["study"] == "table2" for r in recs) == 27 and sum(r["study"] == "table4" for r in recs) == 18
    assert sum(r["study"] == "table7" for r in recs) == 9


def test_plots_return_figures():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from cfdkit import plots

    t2 = E.table2(datasets=("synthetic",), features=("dense",), n_test=25, seed=1, progress=False)
    sd = E.size_distribution("synthetic", features=("dense",), n_test=25, seed=1)
    sc = E.size_vs_confidence("synthetic", features=("dense",), n_test=25, seed=1)
    ns = pd.DataFrame({"noise": [0, .5], "mean_size": [3., 2.], "mean_size_std": [0., .1], "accuracy": [.9, .5],
                       "accuracy_std": [0, .1]})
    for f, d in [(plots.table2, t2), (plots.size_distribution, sd), (plots.size_vs_confidence, sc),
                 (plots.noise_sweep, ns)]:
        fig = f(d)
        assert isinstance(fig, Figure)
        matplotlib.pyplot.close(fig)


@needs_data
def test_real_hate_speech_small():
    df = E.table2(datasets=("hate-speech",), features=("bow",), n_test=15, seed=0, progress=False)
    r = df.iloc[0]
    assert r.threshold == 0.25 and r.l2 == 10 and r.n_train == 9632
    assert _rate(r.found_rate) and r.flip_rate <= r.found_rate and r.found_rate > 0.8


@needs_data
def test_real_loan_tag_bias_small():
    df = E.tag_bias("loan", n_test=300, seed=0)
    x, y = df.set_index("tag")["mean_share_in_biased"][["X", "Y"]]
    assert x > y


def test_l2_conventions():
    assert set(E.L2_CONVENTIONS) == {"sum", "mean", "per_sample"}
    assert E.resolve_l2(10, 200, "sum") == 10.0
    assert E.resolve_l2(10, 200, "mean") == 2000.0
    assert E.resolve_l2(10, 200, "per_sample") == 0.05
    for bad in ("avg", None, 1):
        with pytest.raises(ValueError, match="l2_convention"):
            E.resolve_l2(10, 200, bad)
    with pytest.raises(ValueError, match="n_train"):
        E.resolve_l2(10, 0)
    base = E.audit_points("synthetic", "dense", n_test=20, seed=2, verify=False, cache=False)
    per = E.audit_points("synthetic", "dense", n_test=20, seed=2, verify=False, cache=False,
                         l2_convention="per_sample")
    assert base.attrs["l2"] == base.attrs["paper_l2"] == 1.0 and base.attrs["l2_convention"] == "sum"
    assert per.attrs["l2"] == 1.0 / per.attrs["n_train"] and per.attrs["paper_l2"] == 1.0
    # weaker regularization: more confident predictions
    assert per["abs_p_minus_half"].mean() > base["abs_p_minus_half"].mean()
    with pytest.raises(ValueError, match="l2_convention"):
        E.table2(datasets=("synthetic",), l2_convention="C", progress=False)


def test_table2_minimal_synthetic():
    df = E.table2_minimal(datasets=("synthetic",), features=("bow",), n_test=8, seed=0, progress=False)
    assert len(df) == 1
    r = df.iloc[0]
    pts = df.attrs["points"]["synthetic/bow"]
    assert r.n_test == 8 == len(pts) and r.l2_convention == "sum"
    for m in ("found_rate", "flip_rate", "minimal_found_rate", "minimal_flip_rate"):
        assert _rate(getattr(r, m)), m
    found = (pts["minimal_status"] == "verified").to_numpy()
    assert r.minimal_found_rate == found.mean() and r.found_rate == (pts["estimated_size"] > 0).mean()
    # every verified set flips again when refit separately from the search
    assert (pts.loc[found, "minimal_flipped"] == 1.0).all() and r.minimal_flip_rate == r.minimal_found_rate
    assert pts.loc[~found, "minimal_flipped"].isna().all()
    assert (pts.loc[found, "lower_bound"] <= pts.loc[found, "minimal_size"]).all()
    assert r.median_verified_size == np.median(pts.loc[found, "minimal_size"])
    est = pts["estimated_size"].to_numpy()
    assert r.median_estimated_size == np.median(est[est > 0])
    # where Algorithm 1's own set flips, the verified minimal set is never larger (it is a candidate, then shrunk)
    ok = pts["estimated_flipped"].to_numpy(float) == 1.0
    assert (pts.loc[ok, "minimal_size"] <= pts.loc[ok, "estimated_size"]).all()


def test_reproduce_renders_minimal_columns(tmp_path):
    from cfdkit.studies.reproduce import SIZES, run_reproduction

    assert SIZES["fast"]["minimal_n_test"] == 5 and SIZES["full"]["l2_convention"] == "sum"
    recs = run_reproduction(tmp_path, only=["table2"], fast=True, synthetic=True, progress=False, plot=False)
    md = (tmp_path / "REPRODUCTION.md").read_text()
    assert "**Verified minimal sets**" in md and "on the same 5 seeded test row(s)" in md
    head = next(line for line in md.splitlines() if line.startswith("| dataset | features | n_test |"))
    for h in ("minimal found", "minimal flipped (refit)", "median Alg. 1 size", "median verified size",
              "median lower bound"):
        assert h in head
    rows = [line for line in md.splitlines() if line.startswith("| synthetic | dense | 5 |")]
    assert len(rows) == 1
    mets = {(r["features"], r["metric"]): r["cfdkit"] for r in recs}
    assert mets[("dense", "minimal_n_test")] == 5 and 0 <= mets[("dense", "minimal_found_rate")] <= 1
    for m in ("minimal_found_rate", "minimal_flip_rate", "median_estimated_size", "median_verified_size",
              "median_lower_bound"):
        assert m in paper.METRICS
    assert "minimal_n_test" in paper.METRICS


def test_imbalanced_minimal_bad_input():
    for kw, word in [({"dataset": "synthetic"}, "dataset"), ({"positive_share": 0.7}, "positive_share"),
                     ({"n_test": 1}, "n_test"), ({"n_train": 2.5}, "n_train"), ({"l2s": [-1.0]}, "l2s"),
                     ({"thresholds": [1.5]}, "thresholds")]:
        with pytest.raises(ValueError, match=word):
            E.imbalanced_minimal(**kw, progress=False)


@needs_data
def test_imbalanced_minimal_small_adult():
    df = E.imbalanced_minimal("adult", positive_share=0.05, n_train=600, n_test=6, l2s=(1.0,), thresholds=(0.5,),
                              progress=False)
    assert len(df) == 1
    r = df.iloc[0]
    assert r.positive_share == 30 / 600 and r.n_train == 600 and r.n_test == 6 and r.threshold == 0.5
    pts = df.attrs["points"]["l2=1/tau=0.5"]
    found = (pts["minimal_status"] == "verified").to_numpy()
    assert r.minimal_found_rate == found.mean() and (pts.loc[found, "minimal_flipped"] == 1.0).all()
    assert (pts.loc[found, "lower_bound"] <= pts.loc[found, "minimal_size"]).all()
    assert 0 <= r.share_0_to_1 <= 1 and 0 <= r.share_predicted_positive <= 1


def test_reproduce_imbalanced_is_registered(tmp_path):
    from cfdkit.studies.reproduce import STUDIES, STUDY_ORDER, run_reproduction

    assert "imbalanced" in STUDIES and "imbalanced" in STUDY_ORDER
    run_reproduction(tmp_path / "syn", only=["imbalanced"], fast=True, synthetic=True, progress=False, plot=False)
    assert "Skipped with --synthetic" in (tmp_path / "syn" / "REPRODUCTION.md").read_text()
    if DATA is None:
        return
    recs = run_reproduction(tmp_path / "real", only=["imbalanced"], fast=True, progress=False, plot=False)
    md = (tmp_path / "real" / "REPRODUCTION.md").read_text()
    assert "**adult, subsampled to 5.0% positives** (1,000 training rows" in md
    assert "| l2 | τ | n_test |" in md
    mets = {r["metric"]: r["cfdkit"] for r in recs}
    assert mets["n_test"] == 5 and mets["positive_share"] == 0.05
    for m in ("minimal_found_rate", "minimal_flip_rate", "share_0_to_1", "share_predicted_positive"):
        assert m in paper.METRICS and (mets[m] is None or 0 <= mets[m] <= 1)
