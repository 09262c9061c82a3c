"""The IFBiD learning-curve study on tiny stores: intervals, sizes, records."""
import math

import pytest

from cfdkit.studies.ifbid_curve import CurveConfig, curve_records, curve_stores, learning_curve, wilson
from cfdkit.studies.spurious_seeds import aggregate, mean_ci, separated

TINY = CurveConfig(sizes=(8, 16, 64), n_test=8, n_train_digits=60, epochs=2, chunk_size=8,
                   detectors=("stats", "pca_knn"), detector_epochs=2)


def test_wilson_known_values():
    lo, hi = wilson(8, 10)
    assert math.isclose(lo, 0.4902, abs_tol=1e-3) and math.isclose(hi, 0.9433, abs_tol=1e-3)
    assert abs(wilson(0, 10)[0]) < 1e-12 and abs(wilson(10, 10)[1] - 1.0) < 1e-12


def test_mean_ci_and_separation():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and math.isclose(hi - m, 4.302653 * 1.0 / math.sqrt(3), rel_tol=1e-5)
    assert separated({"ci_low": 0.5, "ci_high": 0.6}, {"ci_low": 0.1, "ci_high": 0.4})
    assert not separated({"ci_low": 0.3, "ci_high": 0.6}, {"ci_low": 0.1, "ci_high": 0.4})
    agg = aggregate([[{"study": "s", "dataset": "d", "features": "f", "metric": "m", "cfdkit": v}] for v in (1, 2, 3)])
    assert agg[0]["n_seeds"] == 3 and agg[0]["values"] == [1.0, 2.0, 3.0] and agg[0]["cfdkit"] == 2.0


def test_curve_on_tiny_stores(tmp_path):
    train, test = curve_stores(TINY, root=tmp_path)
    with pytest.raises(ValueError, match="held-out zoo"):
        learning_curve(TINY, root=tmp_path)
    test.ensure(8, progress=False)
    train.ensure(16, progress=False)
    df = learning_curve(TINY, root=tmp_path)
    assert sorted(set(df.n_train_models)) == [8, 16]  # 64 is not stored yet: not evaluated, not invented
    assert set(df.detector) == {"stats", "pca_knn"}
    for lv in ("4level", "2level"):
        assert ((df[f"acc_{lv}_lo"] <= df[f"acc_{lv}"]) & (df[f"acc_{lv}"] <= df[f"acc_{lv}_hi"])).all()
    recs = curve_records(df)
    assert len(recs) == 2 * len(df) and all(r["n_test_models"] == 8 for r in recs)


def test_seeded_table_calls_a_win_only_where_intervals_separate():
    from cfdkit.studies.spurious_seeds import seeded_table_markdown, verdict

    def rec(metric, vals):
        return [{"study": "s", "dataset": "d", "features": "f", "metric": metric, "cfdkit": v} for v in vals]

    runs = [rec("a", [a]) + rec("b", [b]) + rec("c", [c])
            for a, b, c in zip([0.8, 0.82, 0.79, 0.81, 0.8], [0.5, 0.52, 0.49, 0.51, 0.5], [0.6, 0.9, 0.5, 0.95, 0.7])]
    agg = {r["metric"]: r for r in aggregate(runs)}
    assert verdict(agg["a"], agg["b"]) == "win" and verdict(agg["b"], agg["a"]) == "loss"
    assert verdict(agg["c"], agg["b"]) == "no separable difference"  # mean 0.73 > 0.5, but a wide interval
    md = seeded_table_markdown(list(agg.values()), ["a", "b"], [("a vs b", "a", "b")])
    assert "| d | f | 5 | 0.804 [" in md and md.rstrip().endswith("win |")


def test_confusion_and_behaviour_reference_on_tiny_stores(tmp_path):
    from cfdkit.studies.ifbid_curve import behaviour_reference, confusion

    train, test = curve_stores(TINY, root=tmp_path)
    test.ensure(8, progress=False)
    train.ensure(16, progress=False)
    cm = confusion(TINY, root=tmp_path, n_train_models=16)
    assert int(cm.to_numpy().sum()) == 8                       # every held-out model counted once
    assert list(cm.index) == sorted(cm.index) and set(cm.index) <= {0.02, 0.03, 0.04, 0.05}
    br = behaviour_reference(TINY, root=tmp_path, n_train_models=16, n_images=40)
    assert br["n_train_models"] == 16 and br["n_test_models"] == 8
    for lv in ("4level", "2level"):
        assert br[f"acc_{lv}_lo"] <= br[f"acc_{lv}"] <= br[f"acc_{lv}_hi"]
        assert (br[f"acc_{lv}"] * 8).is_integer()               # a share of the 8 held-out models


def test_alignment_vs_outcome_reads_the_order_per_seed():
    from cfdkit.studies.spurious_seeds import alignment_vs_outcome

    def recs(ds, rc, wga):
        out = []
        for m, r, w in zip(("erm", "groupdro", "jtt", "flac"), rc, wga):
            out += [{"study": "alignment", "dataset": ds, "features": "f", "metric": f"rc_{m}", "cfdkit": 0.0,
                     "values": r},
                    {"study": "alignment", "dataset": ds, "features": "f", "metric": f"wga_{m}", "cfdkit": 0.0,
                     "values": w}]
        return out

    # seed-wise: the less aligned, the better (exactly reversed order) in every seed
    r = recs("d", [[0.9, 0.8, 0.7], [0.5, 0.4, 0.3], [0.3, 0.2, 0.1], [0.1, 0.0, 0.05]],
             [[0.0, 0.1, 0.2], [0.3, 0.3, 0.4], [0.5, 0.6, 0.6], [0.7, 0.8, 0.9]])
    res = alignment_vs_outcome(r, "d")
    assert res["per_seed"] == [-1.0, -1.0, -1.0] and res["mean"] == -1.0 and res["n_pairs"] == 12
    assert res["pooled"] < -0.8
    # an order that agrees in one seed and not in another: the interval contains 0
    r2 = recs("e", [[0.9, 0.1, 0.5], [0.5, 0.4, 0.3], [0.3, 0.7, 0.1], [0.1, 0.9, 0.05]],
              [[0.0, 0.9, 0.9], [0.3, 0.3, 0.6], [0.5, 0.1, 0.4], [0.7, 0.0, 0.2]])
    res2 = alignment_vs_outcome(r2, "e")
    assert res2["per_seed"] == [-1.0, -1.0, 1.0]
    assert res2["ci_low"] < 0 < res2["ci_high"] and -1 <= res2["ci_low"]
    with pytest.raises(ValueError, match="lack"):
        alignment_vs_outcome(r, "d", outcome="auc")


def test_merge_seeded_equals_one_aggregate_over_all_seeds():
    from cfdkit.studies.spurious_seeds import merge_seeded

    def run(v):
        return [{"study": "s", "dataset": "d", "features": "f", "metric": "m", "cfdkit": v},
                {"study": "s", "dataset": "d", "features": "f", "metric": "k", "cfdkit": 2 * v}]

    vals = [0.1, 0.4, 0.35, 0.8, 0.5]
    whole = aggregate([run(v) for v in vals])
    merged = merge_seeded(aggregate([run(v) for v in vals[:3]]), aggregate([run(v) for v in vals[3:]]))
    assert [r["values"] for r in merged] == [r["values"] for r in whole]
    for a, b in zip(merged, whole):
        assert (a["cfdkit"], a["ci_low"], a["ci_high"], a["n_seeds"]) == (b["cfdkit"], b["ci_low"], b["ci_high"], 5)
    with pytest.raises(ValueError, match="different metrics"):
        merge_seeded(aggregate([run(0.1)]), aggregate([run(0.2)[:1]]))
