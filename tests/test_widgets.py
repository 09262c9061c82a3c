"""Widgets built headlessly: pure functions directly, then each explorer driven from Python.

Run: PYTHONPATH=.:.shim pytest tests/test_widgets.py   (``.shim/cfdkit_widgets -> ../widgets``)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("ipywidgets")
import matplotlib

matplotlib.use("Agg")

from cfdkit import RelabelAudit
from cfdkit.data import make_synthetic
import cfdkit_widgets as cw


@pytest.fixture(scope="module")
def setup():
    ds = make_synthetic(n_train=300, n_test=30, n_features=5, noise=0.1, seed=3)
    audit = RelabelAudit(l2=1.0).fit(ds.X_train, ds.y_train)
    res = audit.flip_sets(ds.X_test)
    texts = [f"test point number {i} {'alpha' if i % 2 else 'beta'}" for i in range(ds.n_test)]
    train_texts = [f"train row {j}" for j in range(ds.n_train)]
    return ds, audit, res, texts, train_texts


# --------------------------------------------------------------- pure functions
def test_search_texts():
    texts = ["The quick brown fox", "a lazy dog", "Quick dog!", "nothing"]
    assert cw.search_texts(texts, "quick") == [0, 2]
    assert cw.search_texts(texts, "DOG quick") == [2]
    assert cw.search_texts(texts, "") == []
    assert cw.search_texts(texts, "zebra") == []
    assert cw.search_texts(texts, "3") == [3]
    assert cw.search_texts(texts * 10, "dog", limit=3) == [1, 2, 5]


def test_describe_rows_dataframe_dense_sparse():
    df = pd.DataFrame({"Income": [1.5, 2.0], "Married": ["yes", "no"]})
    assert cw.describe_rows(df) == ["Income=1.5, Married=yes", "Income=2, Married=no"]
    A = np.array([[0.0, -3.0, 1.0], [2.0, 0.0, 0.0]])
    assert cw.describe_rows(A, ["a", "b", "c"], max_items=2) == ["b=-3, c=1", "a=2, b=0"]
    S = sp.csr_matrix(A)
    assert cw.describe_rows(S, ["a", "b", "c"]) == ["b=-3, c=1", "a=2"]


def test_point_summary_and_table(setup):
    ds, audit, res, texts, train_texts = setup
    i = int(np.nonzero(res.size > 0)[0][0])
    s = cw.point_summary(res, i, texts, ds.y_test, ("neg", "pos"))
    assert s["size"] == res.size[i] and s["found"]
    assert s["prob"] == pytest.approx(res.prob[i])
    assert s["text"] == texts[i] and s["label_name"].endswith(f"({ds.y_test[i]})")
    tab = cw.flip_set_table(res, i, ds.y_train, train_texts, max_rows=None)
    assert list(tab.columns) == ["rank", "train_index", "text", "label", "new_label", "effect", "prob_after"]
    assert len(tab) == res.size[i]
    np.testing.assert_array_equal(tab["train_index"], res.indices(i))
    np.testing.assert_allclose(tab["effect"], res.effects(i))
    assert tab["text"].iloc[0] == train_texts[res.indices(i)[0]]
    assert (tab["label"].astype(int) + tab["new_label"].astype(int) == 1).all()
    np.testing.assert_allclose(tab["prob_after"].iloc[-1], res.path(i)[-1])
    assert len(cw.flip_set_table(res, i, ds.y_train, max_rows=2)) == min(2, res.size[i])


def test_probability_path_crosses_threshold(setup):
    _, _, res, _, _ = setup
    i = int(np.nonzero(res.size > 0)[0][0])
    p = cw.probability_path(res, i)
    assert list(p["k"]) == list(range(res.size[i] + 1))
    assert not p["crossed"].iloc[:-1].any() and p["crossed"].iloc[-1]
    fig = cw.path_figure(res, i)
    assert fig.axes[0].get_xlabel().startswith("k")


def test_bad_selections_raise_readable_errors(setup):
    ds, audit, res, _, _ = setup
    with pytest.raises(cw.ExplorerError, match="No test point selected"):
        cw.point_summary(res, None)
    with pytest.raises(cw.ExplorerError, match="does not exist"):
        cw.flip_set_table(res, 10_000, ds.y_train)


def test_verify_point_matches_verify(setup):
    ds, audit, res, _, _ = setup
    i = int(np.nonzero(res.size > 0)[0][0])
    out = cw.verify_point(audit, ds.X_test, res, i)
    ver = audit.verify(res, certify=False)  # the explorer shows a converged refit's probability
    assert out["new_prob"] == pytest.approx(ver.new_prob[i], abs=1e-8)
    assert out["flipped"] == bool(ver.flipped[i])
    cer = audit.verify(res)  # the default: certified where possible; the same answer, the value in its interval
    assert bool(cer.flipped[i]) == out["flipped"]
    assert cer.new_prob_low[i] - 1e-9 <= out["new_prob"] <= cer.new_prob_high[i] + 1e-9


# --------------------------------------------------------------- FlipExplorer
def test_flip_explorer_renders_and_verifies(setup):
    ds, audit, res, texts, train_texts = setup
    ex = cw.FlipExplorer(audit, ds.X_test, texts=texts, labels=ds.y_test, train_texts=train_texts,
                         result=res, label_names=("neg", "pos"))
    i = ex.index
    assert res.size[i] > 0
    assert f"Test point #{i}" in ex.header.value and texts[i] in ex.header.value
    assert f"<b>{res.size[i]}</b>" in ex.header.value
    assert ex.table.value.count("<tr") == min(res.size[i], 50) + 1  # header + rows
    assert len(ex.path_data) == res.size[i] + 1
    ex.verify_button.click()
    assert "Retrained with" in ex.status.value
    assert ("flipped ✔" in ex.status.value) == ex.verified[i]["flipped"]
    assert ex.progress.layout.visibility == "hidden" and not ex.verify_button.disabled
    # move with the slider
    j = (i + 1) % len(res.size)
    ex.slider.value = j
    assert f"Test point #{j}" in ex.header.value and ex.status.value == ""
    ex.slider.value = i  # verified results are remembered
    assert "Retrained with" in ex.status.value


def test_flip_explorer_search_box(setup):
    ds, audit, res, texts, train_texts = setup
    ex = cw.FlipExplorer(audit, ds.X_test, texts=texts, result=res, train_texts=train_texts)
    ex.search.value = "number 7 alpha"
    assert ex.matches.options[0][1] == 7 and ex.index == 7
    assert "Test point #7" in ex.header.value
    ex.search.value = "no such words"
    assert "No test text contains" in ex.message.value


def test_flip_explorer_bad_selections_show_messages(setup):
    ds, audit, res, texts, _ = setup
    ex = cw.FlipExplorer(audit, ds.X_test, result=res)
    ex.show(None)
    assert "No test point selected" in ex.message.value
    ex.show(999)
    assert "does not exist" in ex.message.value
    empty = [k for k in range(len(res.size)) if res.size[k] == 0]
    if empty:
        ex.slider.value = empty[0]
        assert ex.verify_button.disabled and "none found" in ex.header.value
    assert ex.run_verify(empty[0] if empty else 999) is None
    assert "cfd-error" in ex.message.value


def test_flip_explorer_failed_refit_shows_message(setup):
    ds, audit, res, _, _ = setup

    class Broken:
        y_train_ = audit.y_train_

        def flip_sets(self, X):
            return res

        def retrain_probabilities(self, *a, **k):
            raise RuntimeError("solver exploded")

    ex = cw.FlipExplorer(Broken(), ds.X_test)
    assert ex.run_verify() is None
    assert "Retraining failed" in ex.message.value and "solver exploded" in ex.message.value
    assert "Traceback" not in ex.message.value


def test_minimal_sentence():
    m = {"estimated_size": 61, "size": 7, "status": "verified", "lower_bound": 3}
    assert cw.minimal_sentence(m) == "Algorithm 1 says 61 labels; 7 really suffice; no fewer than 3 can"
    m = {"estimated_size": 0, "size": 0, "status": "not_found", "lower_bound": 1}
    assert cw.minimal_sentence(m) == ("Algorithm 1 finds no set; no set that really flips it was found; "
                                      "no certificate rules out fewer")
    # one label is trivially minimal: no clause that makes it sound uncertain
    assert cw.minimal_sentence({"estimated_size": 1, "size": 1, "status": "verified", "lower_bound": 1}) == \
        "Algorithm 1 says 1 label; 1 really suffices"
    assert cw.minimal_sentence({"estimated_size": 9, "size": 4, "status": "verified", "lower_bound": 4}) == \
        "Algorithm 1 says 9 labels; 4 really suffice; proven minimal: no fewer can"
    assert cw.minimal_sentence({"estimated_size": 9, "size": 4, "status": "verified", "lower_bound": 1}) == \
        "Algorithm 1 says 9 labels; 4 really suffice; no certificate rules out fewer"


def test_minimal_table_ranks_rows_by_their_place_in_st():
    m = {"indices": np.array([3, 7, 9, 12])}
    tab = cw.minimal_set_table(m, np.zeros(20, dtype=int), None, ("neg", "pos"), estimated=[12, 5, 3, 8])
    assert list(tab.columns) == ["rank_in_S_t", "in_S_t", "train_index", "label", "new_label"]
    assert list(tab["train_index"]) == [12, 3, 7, 9]          # rows of S_t first, by their rank there
    assert list(tab["rank_in_S_t"]) == ["1", "3", "", ""] and list(tab["in_S_t"]) == ["✓", "✓", "", ""]
    assert list(cw.minimal_set_table(m, np.zeros(20, dtype=int)).columns) == ["train_index", "label", "new_label"]


def test_minimal_point_is_verified_for_that_row(setup):
    ds, audit, res, _, train_texts = setup
    i = int(np.nonzero(res.size > 0)[0][0])
    m = cw.minimal_point(audit, ds.X_test, res, i)
    assert m["index"] == i and m["estimated_size"] == res.size[i]
    assert m["status"] == "verified" and m["size"] == m["indices"].size > 0
    assert 1 <= m["lower_bound"] <= m["size"]
    # the set really flips: an independent refit of the audited model with those labels changed
    new = audit.retrain_probabilities(ds.X_test[i:i + 1], [m["indices"]])[0]
    assert (new > res.threshold) != (res.prob[i] > res.threshold)
    assert new == pytest.approx(m["new_prob"], abs=1e-5)
    assert str(m["size"]) in m["sentence"] and str(res.size[i]) in m["sentence"]
    tab = cw.minimal_set_table(m, audit.y_train_, train_texts, ("neg", "pos"))
    assert list(tab["train_index"]) == list(m["indices"]) and tab["text"].iloc[0] == train_texts[m["indices"][0]]
    assert (tab["label"] != tab["new_label"]).all()
    with pytest.raises(cw.ExplorerError, match="does not exist"):
        cw.minimal_point(audit, ds.X_test, res, 999)


def test_flip_explorer_shows_minimal_set_beside_st(setup):
    ds, audit, res, texts, train_texts = setup
    ex = cw.FlipExplorer(audit, ds.X_test, texts=texts, train_texts=train_texts, result=res)
    i = ex.index
    assert ex.minimal_status.value == "" and ex.minimal_table.value == ""
    ex.minimal_button.click()
    m = ex.minimal[i]
    assert f"Algorithm 1: <b>{res.size[i]}</b>" in ex.minimal_status.value
    assert f"minimal set: <b>{m['size']}</b>" in ex.minimal_status.value
    assert f"certified lower bound: <b>{m['lower_bound']}</b>" in ex.minimal_status.value
    assert ex.minimal_table.value.count("<tr") == min(m["size"], 50) + 1
    both = int(np.isin(m["indices"], res.indices(i)).sum())
    assert f"{both} of its {m['size']} rows are also in S<sub>t</sub>" in ex.minimal_table.value
    assert ex.minimal_table.value.count("<td>✓</td>") == min(both, 50)
    # the minimal set leads; the plot and S_t share a row of their own (the minimal table never squeezes them)
    kids = list(ex.widget.children)
    row = kids[-1]
    assert kids.index(ex.minimal_table) < kids.index(row)
    assert ex.plot in row.children and ex.table in row.children and ex.minimal_table not in row.children
    for b in (ex.minimal_button, ex.verify_button):
        assert b.layout.width == "auto" and b.layout.min_width == "max-content"
    assert ex.table.value.count("<tr") == min(res.size[i], 50) + 1     # S_t still shown beside it
    assert not ex.minimal_button.disabled
    j = (i + 1) % len(res.size)
    ex.slider.value = j
    assert ex.minimal_status.value == "" and ex.minimal_table.value == ""
    ex.slider.value = i      # remembered, not searched again
    assert f"minimal set: <b>{m['size']}</b>" in ex.minimal_status.value


def test_flip_explorer_failed_minimal_search_shows_message(setup):
    ds, audit, res, _, _ = setup

    class Broken:
        y_train_ = audit.y_train_

        def flip_sets(self, X):
            return res

        def minimal_sets(self, *a, **k):
            raise RuntimeError("search exploded")

    ex = cw.FlipExplorer(Broken(), ds.X_test)
    assert ex.run_minimal() is None
    assert "minimal-set search failed" in ex.message.value and "search exploded" in ex.message.value
    assert ex.minimal_status.value == "" and not ex.minimal_button.disabled


# --------------------------------------------------------------- study explorers
def fake_noise_sweep(noise_ratios, seeds, n_test, dataset="hate-speech", features=None, progress=False):
    """Shaped like cfdkit.studies.noise_sweep: one row per ratio, per-run rows in attrs["runs"] (no std columns)."""
    runs = pd.DataFrame([{"noise": r, "seed": s, "accuracy": 0.9 - r / 2, "found_rate": 1.0,
                          "mean_size": 100 * (1 - r) + s, "median_size": 90.0}
                         for r in noise_ratios for s in seeds])
    g = runs.groupby("noise")
    out = pd.DataFrame({"mean_size": g["mean_size"].mean(), "accuracy": g["accuracy"].mean(),
                        "n_seeds": g["seed"].count()}).reset_index()
    out.attrs["runs"] = runs
    return out


def fake_tag_bias(points):
    out = pd.DataFrame({"tag": ["X", "Y"], "n_found": [1, 1]})
    out.attrs["points"] = pd.DataFrame(points)
    return out


# --------------------------------------------------------------- summaries read the studies' frames (one vocabulary)
def test_summarize_noise_sweep_reads_the_study_frame():
    df = fake_noise_sweep([0.0, 0.3], [0, 1], 10)
    s = cw.summarize_noise_sweep(df)
    assert list(s.columns[:2]) == ["noise", "mean_size"] and len(s) == 2     # the study's names, one row per ratio
    assert list(s["n_seeds"]) == [2, 2]
    with pytest.raises(ValueError, match="attrs\\['runs'\\]"):                  # per-(ratio, seed) rows are refused
        cw.summarize_noise_sweep(df.attrs["runs"])
    with pytest.raises(ValueError, match="noise"):
        cw.summarize_noise_sweep(pd.DataFrame({"x": [1]}))


def test_summarize_tag_bias_reads_the_points():
    df = fake_tag_bias({"test_row": [3, 5], "tag": ["X", "Y"], "size": [4, 0], "found": [True, False],
                        "share_in_biased": [0.5, np.nan]})
    t = cw.summarize_tag_bias(df)                                          # from attrs["points"]
    assert list(t.columns) == ["tag", "n_found", "mean_size", "mean_share_in_biased"]
    assert list(t["tag"]) == ["X"] and list(t["mean_share_in_biased"]) == [0.5]
    with pytest.raises(ValueError, match="attrs"):
        cw.summarize_tag_bias(pd.DataFrame({"tag": ["X"]}))


def test_summarize_relabel_remove_reads_the_study_frame():
    exp = pd.DataFrame({"dataset": ["loan"] * 2 + ["sst2"] * 2, "noise": 0.3,
                        "method": ["relabel", "removal_alg1"] * 2, "n_found": [10, 9, 8, 7],
                        "mean_size": [3.0, 6.0, 4.0, 8.0], "mean_noisy": [2.0, 4.0, 3.0, 5.0],
                        "mean_normal": [1.0, 2.0, 1.0, 3.0], "seconds": 0.1})
    t = cw.summarize_relabel_remove(exp)
    assert list(t.columns) == ["dataset", "method", "n_found", "mean_size", "mean_noisy", "mean_normal"]
    assert list(t["n_found"]) == [10, 9, 8, 7]
    one = cw.summarize_relabel_remove(exp[exp.dataset == "loan"])
    assert "dataset" not in one.columns and list(one["mean_noisy"]) == [2.0, 4.0]
    with pytest.raises(ValueError, match="mean_noisy"):
        cw.summarize_relabel_remove(exp.drop(columns="mean_noisy"))


def test_summaries_read_the_real_studies():
    from cfdkit import studies as E

    ns = E.noise_sweep(dataset="synthetic", features="dense", noise_ratios=[0.0, 0.2], seeds=[0, 1], n_test=20,
                       progress=False)
    s = cw.summarize_noise_sweep(ns)
    assert list(s["noise"]) == [0.0, 0.2] and list(s["n_seeds"]) == [2, 2]
    np.testing.assert_allclose(s["mean_size"], ns["mean_size"])
    rr = E.relabel_vs_remove(datasets=("synthetic",), noise=0.3, n_test=10, progress=False)
    t = cw.summarize_relabel_remove(rr)
    assert list(t["method"]) == ["relabel", "removal_alg1", "removal_alg2"]
    tb = E.tag_bias(dataset="synthetic", n_test=60)
    g = cw.summarize_tag_bias(tb)
    assert set(g["tag"]) <= {"X", "Y"} and (g["mean_share_in_biased"].dropna().between(0, 1)).all()
    # the study's per-tag rows and its per-point rows summarize to the same numbers
    from_points = cw.summarize_tag_bias(tb.attrs["points"])
    pd.testing.assert_frame_equal(g[g["n_found"] > 0][list(from_points.columns)].reset_index(drop=True),
                                  from_points, check_dtype=False)
    # group_report's columns (attrs["groups"]): found rate over the misclassified points, share of S_t by tag;
    # B lies inside tag X, so a set's share in B cannot exceed its share from tag X
    assert {"found_rate", "share_from_X", "share_from_Y"} <= set(g.columns)
    n_mis = tb.set_index("tag").loc[g["tag"], "n_misclassified"].to_numpy()
    assert (n_mis > 0).any() and g.loc[n_mis == 0, "found_rate"].isna().all()   # no audited point: no rate
    np.testing.assert_allclose((g["found_rate"] * n_mis)[n_mis > 0], g["n_found"][n_mis > 0])
    ok = g["n_found"] > 0
    assert (g.loc[ok, "mean_share_in_biased"] <= g.loc[ok, "share_from_X"] + 1e-12).all()
    np.testing.assert_allclose(g.loc[ok, "share_from_X"] + g.loc[ok, "share_from_Y"], 1.0)
    f2 = E.figure2(dataset="synthetic", features="dense", ks=[2, 4], n_test=4, methods=("ip_relabel", "random"),
                   progress=False)
    assert list(cw.summarize_method_comparison(f2).columns) == [2, 4]


def test_parse_float_list():
    assert cw.parse_float_list("0, 0.1 0.25") == [0.0, 0.1, 0.25]
    with pytest.raises(ValueError, match="outside"):
        cw.parse_float_list("0.5, 2")
    with pytest.raises(ValueError, match="Could not read"):
        cw.parse_float_list("a, b")


def test_summaries():
    s = cw.summarize_noise_sweep(fake_noise_sweep([0.0, 0.2], [0, 1], 10))
    assert list(s["noise"]) == [0.0, 0.2]
    np.testing.assert_allclose(s["mean_size"], [100.5, 80.5])
    assert list(s["n_seeds"]) == [2, 2]
    tb = pd.DataFrame({"tag": ["X", "X", "Y", "Y"], "size": [4, 2, 5, 0], "share_in_biased": [0.5, 1.0, 0.2, np.nan]})
    t = cw.summarize_tag_bias(tb)
    assert list(t["tag"]) == ["X", "Y"] and list(t["n_found"]) == [2, 1]
    np.testing.assert_allclose(t["mean_share_in_biased"], [0.75, 0.2])
    mc = pd.DataFrame({"method": ["a", "a", "b", "b"], "k": [1, 2, 1, 2], "mean_abs_delta": [.1, .2, .3, .4]})
    m = cw.summarize_method_comparison(mc)
    assert list(m.index) == ["b", "a"] and list(m.columns) == [1, 2]
    rr = pd.DataFrame({"method": ["relabel", "removal_alg1"], "n_found": [2, 1], "mean_size": [4.0, 10.0],
                       "mean_noisy": [3.0, 6.0], "mean_normal": [1.0, 4.0]})
    r = cw.summarize_relabel_remove(rr)
    assert list(r["method"]) == ["relabel", "removal_alg1"]
    np.testing.assert_allclose(r["mean_size"], [4, 10])
    with pytest.raises(ValueError, match="no column"):
        cw.summarize_noise_sweep(pd.DataFrame({"x": [1]}))


def test_noise_sweep_explorer_run():
    calls = []

    def run(**kw):
        calls.append(kw)
        return fake_noise_sweep(**kw)

    ex = cw.NoiseSweepExplorer(run=run, noise_ratios=[0.0, 0.3], seeds=2, n_test=20)
    ex.controls["noise_ratios"].value = "0, 0.1, 0.2"
    ex.run_button.click()
    assert calls == [{"dataset": "hate-speech", "features": None, "noise_ratios": [0.0, 0.1, 0.2],
                      "seeds": [0, 1], "n_test": 20, "progress": False}]
    assert "done: 3 result rows" in ex.status.value
    assert ex.table.value.count("<tr") == 1 + 3 and "0.100" in ex.table.value
    assert ex.message.value == ""
    ex.controls["noise_ratios"].value = "0, 7"
    assert ex.run() is None and "outside" in ex.message.value and "Traceback" not in ex.message.value


def test_study_explorer_failed_run_shows_message():
    def boom(**kw):
        raise RuntimeError("refit diverged")

    ex = cw.GroupBiasExplorer(run=boom)
    ex.run_button.click()
    assert "refit diverged" in ex.message.value and not ex.run_button.disabled


def test_group_bias_and_method_and_relabel_explorers():
    seen = {}

    def tag_bias(**kw):
        seen["tag"] = kw
        return fake_tag_bias({"tag": ["X", "Y"], "size": [3, 4], "share_in_biased": [0.6, 0.25]})

    g = cw.GroupBiasExplorer(run=tag_bias, n_test=50)
    g.controls["bias"].value = 0.8
    g.run_button.click()
    assert seen["tag"] == {"bias": 0.8, "share_x": 0.4, "n_test": 50, "seed": 0}
    assert "0.600" in g.table.value and "0.250" in g.table.value

    def fig2(methods, ks, n_test, seed, dataset, progress):
        return pd.DataFrame([{"method": m, "k": k, "mean_abs_delta": k / 100 * (i + 1)}
                             for i, m in enumerate(methods) for k in ks])

    m = cw.MethodComparisonExplorer(run=fig2)
    m.controls["methods"].value = ("ip_relabel", "random")
    m.controls["ks"].value = "5, 10"
    m.run_button.click()
    assert list(m.summary.index) == ["random", "ip_relabel"] and list(m.summary.columns) == [5, 10]
    m.controls["methods"].value = ()
    assert m.run() is None and "Select at least one method" in m.message.value

    r = cw.RelabelRemoveExplorer(result=pd.DataFrame({"method": ["relabel"], "n_found": [1], "mean_size": [3.0],
                                                      "mean_noisy": [2.0], "mean_normal": [1.0]}))
    assert "relabel" in r.table.value
    kw = {}

    def rvr(**k):
        kw.update(k)
        return pd.DataFrame({"dataset": "sst2", "noise": 0.3, "method": ["relabel", "removal_alg2"],
                             "n_found": [5, 4], "mean_size": [3.0, 7.0], "mean_noisy": [2.0, 5.0],
                             "mean_normal": [1.0, 2.0]})

    r = cw.RelabelRemoveExplorer(run=rvr, dataset="sst2", n_test=20)
    r.run_button.click()
    assert kw == {"datasets": ("sst2",), "noise": 0.3, "n_test": 20, "seed": 0, "progress": False}
    assert list(r.summary["mean_noisy"]) == [2.0, 5.0] and "removal_alg2" in r.table.value


def test_method_choices_are_the_score_registry():
    from cfdkit.linear.scores import METHODS

    m = cw.MethodComparisonExplorer()
    assert list(m.controls["methods"].options) == list(METHODS)
    assert list(m.controls["methods"].value) == list(METHODS)
    m = cw.MethodComparisonExplorer(methods=("random", "no_such_score"))
    assert m.controls["methods"].value == ("random",)
    assert not hasattr(cw.MethodComparisonExplorer, "METHODS")


def test_method_comparison_shows_every_method_and_plain_k_labels():
    """Every registered method is in view (no scrolling a 4-row list), and the log axis is labelled with the
    k values themselves (5, 10, 20), not 6×10⁰, 10¹, 2×10¹."""
    import matplotlib

    matplotlib.use("Agg")
    from cfdkit import plots
    from cfdkit.linear.scores import METHODS

    m = cw.MethodComparisonExplorer()
    assert m.controls["methods"].rows == len(METHODS) >= 7
    df = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "k": [5, 10, 20] * 2,
                       "mean_abs_delta": [0.1, 0.2, 0.3, 0.05, 0.1, 0.2], "sem_abs_delta": [0.01] * 6})
    fig = plots.figure2(df)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "10", "20"]
    assert [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()] == []


def test_buttons_are_sized_to_their_labels():
    from cfdkit_widgets.studies import MethodComparisonExplorer

    for b in (MethodComparisonExplorer().run_button,):
        assert b.layout.width == "auto" and b.layout.min_width == "max-content"


def test_study_explorers_draw_with_cfdkit_plots(monkeypatch):
    from cfdkit import plots

    drawn = []
    for name in ("noise_sweep", "tag_bias", "figure2", "relabel_vs_remove"):
        real = getattr(plots, name)
        monkeypatch.setattr(plots, name, lambda df, _f=real, _n=name: drawn.append(_n) or _f(df))
    ns = cw.NoiseSweepExplorer(result=fake_noise_sweep([0.0, 0.3], [0, 1], 10))
    assert ns.figure.axes[0].get_xlabel() == "noise ratio"
    tb = cw.GroupBiasExplorer(result=fake_tag_bias({"tag": ["X", "Y"], "size": [3, 4], "share_in_biased": [.6, .25]}))
    assert [t.get_text() for t in tb.figure.axes[0].texts] == ["60%", "25%"]
    f2 = pd.DataFrame({"method": ["a", "a", "b", "b"], "k": [1, 2, 1, 2], "mean_abs_delta": [.1, .2, .3, .4]})
    mc = cw.MethodComparisonExplorer(result=f2)
    assert sorted(t.get_text() for t in mc.figure.axes[0].get_legend().get_texts()) == ["a", "b"]
    rr = pd.DataFrame({"dataset": "sst2", "noise": 0.3, "method": ["relabel", "removal_alg2"], "n_found": [5, 4],
                       "mean_size": [3.0, 7.0], "mean_noisy": [2.0, 5.0], "mean_normal": [1.0, 2.0]})
    re = cw.RelabelRemoveExplorer(result=rr)
    assert re.figure.axes[0].get_title() == "sst2, noise 0.3"
    assert drawn == ["noise_sweep", "tag_bias", "figure2", "relabel_vs_remove"]


def test_path_figure_is_the_plots_probability_path(setup):
    _, _, res, _, _ = setup
    i = int(np.nonzero(res.size > 0)[0][0])
    fig = cw.path_figure(res, i)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), res.path(i))
    assert fig.axes[0].get_title() == f"Test point {i}: probability path"
    with pytest.raises(cw.ExplorerError, match="does not exist"):
        cw.path_figure(res, 10_000)


def test_default_run_missing_experiment_is_a_message(monkeypatch):
    import cfdkit_widgets.studies as st

    monkeypatch.setattr(st.NoiseSweepExplorer, "experiment", "no_such_function_xyz")
    ex = cw.NoiseSweepExplorer()
    ex.run_button.click()
    assert "cfdkit.studies" in ex.message.value


# --------------------------------------------------------------- NeuralCFDExplorer
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def neural_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(70, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=70) > 0).astype(np.int64)
    tr = pd.DataFrame({"a": X[:60, 0], "b": X[:60, 1], "c": X[:60, 2]})
    te = pd.DataFrame({"a": X[60:, 0], "b": X[60:, 1], "c": X[60:, 2]})
    return cw.NeuralData(X[:60], y[:60], X[60:], y[60:], tr, te, "toy", ("no", "yes"))


def test_neural_pure_functions(neural_data):
    d = neural_data
    assert cw.check_index(3, 10) == 3
    for bad, msg in ((None, "No test case"), (10, "does not exist"), ("x", "not a number"), (-1, "does not exist")):
        with pytest.raises(cw.ExplorerError, match=msg):
            cw.check_index(bad, 10)
    idx, sc = cw.top_ranked([0.1, 0.9, 0.5, 0.9, -1.0], mask=[True, True, False, True, True], top=3)
    assert idx.tolist() == [1, 3, 0] and sc.tolist() == [0.9, 0.9, 0.1]           # ties keep training order
    assert cw.top_ranked([1.0, 2.0], mask=[False, False])[0].size == 0
    t = cw.ranking_table([4, 1], [2.0, 1.0], d.y_train, d.train_rows, d.label_names, max_features=2)
    assert list(t.columns) == ["rank", "train_index", "score", "label", "a", "b"]
    assert t["label"].tolist() == [d.label_names[d.y_train[4]], d.label_names[d.y_train[1]]]
    assert t["a"].iloc[0] == d.train_rows["a"].iloc[4]
    comp = cw.flip_comparison(d.test_rows.iloc[2], d.train_rows, [5, 7], d.y_train, d.label_names, test_label=1)
    assert list(comp.index) == ["a", "b", "c"] and comp.shape == (3, 3)
    assert comp.columns[0] == "test row (true: yes)"
    y5 = d.y_train[5]
    assert comp.columns[1] == f"train #5: {d.label_names[y5]} → {d.label_names[1 - y5]}"
    np.testing.assert_allclose(comp.iloc[:, 2], d.train_rows.iloc[7])


def test_neural_explorer_search_headless(neural_data):
    from cfdkit.neural import NeuralCFD

    d = neural_data
    cfd = NeuralCFD(hidden=(4, 4), budget=6, seed=0, progress=False, placebo_draws=5).fit(d.X_train, d.y_train)
    ex = cw.NeuralCFDExplorer(cfd=cfd, data=d, top=5)
    assert ex.dataset.options == ("toy",) and ex.budget.value == 6
    assert "test case #0 of 10" in ex.header.value and ex.ranking_html.value.count("<tr") == 1 + 5
    # the search must agree with NeuralCFD.search on that row
    ref = cfd.search(d.X_test, budget=6)
    hits = np.nonzero(ref.found)[0]
    assert hits.size, "the toy problem should have at least one CFD"
    j = int(hits[0])
    ex.test_index.value = j
    assert f"test case #{j}" in ex.header.value
    ex.search_button.click()
    s = ex.last
    assert s["found"] and s["k"] == ref.k[j] and s["flipped_indices"] == ref.indices(j).tolist()
    assert s["logit_before"] == pytest.approx(ref.logit[j]) and s["logit_after"] == pytest.approx(ref.new_logit[j])
    assert np.sign(s["logit_before"]) != np.sign(s["logit_after"])
    assert s["specificity"] == pytest.approx(ref.specificity[j]) and s["verdict"] == ref.verdict[j]
    word = "CFD found" if s["verdict"] == "finding" else "indistinguishable from noise"
    assert word in ex.status.value and "specificity" in ex.status.value and "Is it meaningful?" in ex.result_html.value
    assert ex.comparison.shape == (3, 1 + s["k"])
    assert ex.progress.layout.visibility == "hidden" and not ex.search_button.disabled
    # a case without a CFD within budget 1 (if any) says so; changing the budget clears the result
    ex.budget.value = 1
    assert ex.result_html.value == "" and ex.last is None
    miss = [i for i in range(len(d.y_test)) if not (ref.found[i] and ref.k[i] == 1)]
    if miss:
        ex.test_index.value = miss[0]
        ex.search_button.click()
        assert "No CFD within budget m = 1" in ex.status.value and ex.result_html.value == ""
    # another ranking re-ranks without retraining
    ex.ranking.value = "l2_distance"
    assert ex.ranking_html.value.count("<tr") == 1 + 5


def test_neural_explorer_bad_selections_are_messages(neural_data):
    d = neural_data
    ex = cw.NeuralCFDExplorer(datasets=("toy", "broken"), loader=lambda name: d if name == "toy" else 1 / 0,
                              budget=3, top=4)
    ex.test_index.value = 99
    assert "does not exist" in ex.message.value and ex.ranking_html.value == ""
    assert ex.run_search() is None and "does not exist" in ex.message.value
    ex.test_index.value = 1
    assert ex.message.value == "" and "test case #1" in ex.header.value
    ex.dataset.value = "broken"
    assert "ZeroDivisionError" in ex.message.value and "Traceback" not in ex.message.value
    ex.search_button.click()
    assert "Search failed" in ex.message.value and not ex.search_button.disabled
    ex.dataset.value = "toy"
    ex.budget.max = 100
    ex.budget.value = 61
    assert ex.run_search() is None and "exceeds the 60 training rows" in ex.message.value


def test_load_neural_data_salary():
    from conftest import shared_data_dir

    home = shared_data_dir()
    if home is None or not (home / "fairness" / "salary").exists():
        pytest.skip("shared salary data not available")
    d = cw.load_neural_data("salary", home)
    assert len(d.train_rows) == len(d.y_train) == len(d.X_train) and list(d.train_rows.columns)[:2] == ["Degree", "Rank"]
    assert d.label_names == cw.LABEL_NAMES["salary"]
    with pytest.raises(cw.ExplorerError, match="Could not load"):
        cw.load_neural_data("no_such_set", home)
