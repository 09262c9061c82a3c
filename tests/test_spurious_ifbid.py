"""Tests for cfdkit.spurious.ifbid (weight detectors), .mitigation (localisation, mitigation) and .study."""
import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from cfdkit.spurious.data import colored_digits
from cfdkit.spurious.ifbid import DETECTORS, WeightDetector, _Conv1x1Block, stats_features, two_level
from cfdkit.spurious.mitigation import MITIGATIONS, mitigate, permutation_importance, weight_step
from cfdkit.studies.ifbid import IFBiDConfig, PAPER, records_from_result, run_ifbid
from cfdkit.spurious.zoo import CNNSpec, ModelZoo, TrainSettings, train_zoo

ST = TrainSettings(n_train=200, epochs=4, batch_size=50)


@pytest.fixture(scope="module")
def zoo():
    return train_zoo(np.tile([0.02, 0.03, 0.04, 0.05], 5), settings=ST, progress=False)


@pytest.fixture(scope="module")
def det(zoo):
    return WeightDetector("conv1x1_dense", epochs=30).fit(zoo.subset(np.arange(16)))


def _permute_hidden(zoo, i, perm):
    """Permute conv1 filters (and conv2's input channels) and dense1 units of member i: same function."""
    p = {k: v.clone() for k, v in zoo.params.items()}
    c1 = torch.as_tensor(perm["conv1"])
    p["conv1.weight"][i] = p["conv1.weight"][i][c1]
    p["conv1.bias"][i] = p["conv1.bias"][i][c1]
    p["conv2.weight"][i] = p["conv2.weight"][i][:, c1]
    h = torch.as_tensor(perm["dense1"])
    p["dense1.weight"][i] = p["dense1.weight"][i][h]
    p["dense1.bias"][i] = p["dense1.bias"][i][h]
    p["dense2.weight"][i] = p["dense2.weight"][i][:, h]
    return ModelZoo(zoo.spec, p, zoo.meta, zoo.settings)


def test_stats_features_are_permutation_invariant_and_function_preserving(zoo):
    rng = np.random.default_rng(0)
    perm = {"conv1": rng.permutation(8), "dense1": rng.permutation(32)}
    z2 = _permute_hidden(zoo, 3, perm)
    X = colored_digits("jitter", sigma2=0.05).X_test[:50]
    np.testing.assert_allclose(z2.predict_proba(X)[3].numpy(), zoo.predict_proba(X)[3].numpy(), atol=1e-5)
    np.testing.assert_allclose(stats_features(z2), stats_features(zoo), rtol=1e-9, atol=1e-12)
    # raw flattened weights are not invariant: what defeats PCA/kNN on small zoos
    assert not torch.allclose(z2.weights()["dense1"][3], zoo.weights()["dense1"][3])


def test_conv1x1_block_ignores_filter_order():
    torch.manual_seed(0)
    blk = _Conv1x1Block(3, 3)
    W, b = torch.randn(2, 8, 3, 3, 3), torch.randn(2, 8)
    perm = torch.randperm(8)
    torch.testing.assert_close(blk(W[:, perm], b[:, perm]), blk(W, b))


@pytest.mark.parametrize("kind", DETECTORS)
def test_every_detector_fits_predicts_and_is_seeded(zoo, kind):
    tr, te = zoo.subset(np.arange(16)), zoo.subset(np.arange(16, 20))
    d = WeightDetector(kind, epochs=20, seed=1).fit(tr)
    P = d.predict_proba(te)
    assert P.shape == (4, 4)
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-6)
    assert set(d.predict(te)) <= {0, 1, 2, 3}
    P2 = WeightDetector(kind, epochs=20, seed=1).fit(tr).predict_proba(te)
    np.testing.assert_array_equal(P, P2)
    if kind != "pca_knn":  # flexible detectors fit their training zoo
        assert d.score(tr) >= 0.5
    d2 = WeightDetector(kind, epochs=20).fit(tr, two_level(tr.levels))
    assert set(d2.classes_) == {0, 1}


def test_detector_bad_input(zoo, det):
    deeper = train_zoo([0.02, 0.05], spec=CNNSpec(hidden=(64, 32)), settings=ST, progress=False)
    with pytest.raises(ValueError, match="architecture"):
        det.predict(deeper)
    with pytest.raises(ValueError, match="kind="):
        WeightDetector("svm").fit(zoo)
    with pytest.raises(ValueError, match="layers="):
        WeightDetector("stats", layers="first").fit(zoo)
    with pytest.raises(NotFittedError):
        WeightDetector("stats").predict(zoo)
    with pytest.raises(TypeError, match="ModelZoo"):
        WeightDetector("stats").fit(np.zeros((4, 10)))
    with pytest.raises(ValueError, match="single bias level"):
        WeightDetector("stats").fit(zoo, np.zeros(len(zoo), dtype=int))
    with pytest.raises(ValueError, match="one label per member"):
        WeightDetector("stats").fit(zoo, [0, 1])
    with pytest.raises(ValueError, match="not differentiable"):
        WeightDetector("stats").fit(zoo).logits_from_params(zoo.params)
    with pytest.raises(ValueError, match="levels"):
        two_level([0, 4])


def test_weight_step_fgsm_gm_lowers_detector_loss(zoo, det):
    te = zoo.subset(np.arange(16, 20))
    for mode in ("fgsm", "gm"):
        loc = weight_step(det, te, target=3, eps=0.02, mode=mode)
        d = loc["delta"]
        assert all(torch.count_nonzero(d[k]) == 0 for k in d if k.endswith(".bias"))
        if mode == "fgsm":
            vals = torch.cat([v.abs().flatten() for k, v in d.items() if k.endswith(".weight")]).unique()
            assert np.all(np.isclose(vals.double().numpy(), 0.0) | np.isclose(vals.double().numpy(), 0.02, rtol=1e-6))
        else:
            mx = torch.stack([d[k].reshape(4, -1).abs().max(1).values for k in d if k.endswith(".weight")], 1).max(1).values
            np.testing.assert_allclose(mx.numpy(), 0.02, rtol=1e-5)
        assert set(loc["most_biased"]) <= set(te.spec.layers)
        np.testing.assert_array_equal(loc["most_biased"], np.array(te.spec.layers)[loc["layer_score"].to_numpy().argmax(1)])
        new, _ = mitigate(te, loc, "step")
        lo = lambda z: torch.nn.functional.cross_entropy(det.logits_from_params(z.params), torch.full((4,), 3)).item()
        assert lo(new) < lo(te)
    with pytest.raises(ValueError, match="mode="):
        weight_step(det, te, mode="pgd")
    with pytest.raises(ValueError, match="target="):
        weight_step(det, te, target=7)


def test_permutation_importance_zero_for_unused_layers(zoo):
    tr, te = zoo.subset(np.arange(16)), zoo.subset(np.arange(16, 20))
    d = WeightDetector("dense", epochs=20).fit(tr)  # conv layers only
    imp = permutation_importance(d, te, n_repeats=3)
    assert list(imp.index) == te.spec.layers
    assert imp.loc["dense1", "importance_mean"] == 0 and imp.loc["dense2", "importance_mean"] == 0
    assert (imp.baseline == d.score(te)).all()


def test_mitigations_touch_only_what_they_should(zoo, det):
    te = zoo.subset(np.arange(16, 20))
    loc = weight_step(det, te, mode="gm")
    data = colored_digits("jitter", sigma2=0.05, seed=3)
    mb = loc["most_biased"]
    for method in MITIGATIONS:
        new, drop = mitigate(te, loc, method, data=data, seed=0)
        for i in range(4):
            for k in te.params:
                same = torch.equal(new.params[k][i], te.params[k][i])
                layer = k.split(".")[0]
                if method in ("reset_layer", "finetune") and layer != mb[i]:
                    assert same, (method, k)
                if method == "reset_layer" and k.endswith(".bias"):
                    assert same
                if method == "dropout":
                    assert same
        if method == "reset_layer":
            assert any(not torch.equal(new.params[f"{mb[i]}.weight"][i], te.params[f"{mb[i]}.weight"][i]) for i in range(4))
        if method == "finetune":
            assert any(not torch.equal(new.params[f"{mb[i]}.weight"][i], te.params[f"{mb[i]}.weight"][i]) for i in range(4))
        if method == "dropout":
            assert drop and all(np.isin(v, [0.0, 0.3]).all() for v in drop.values())
            P1 = new.predict_proba(data.X_test[:20], dropout=drop, seed=1)
            P2 = new.predict_proba(data.X_test[:20], dropout=drop, seed=1)
            assert torch.equal(P1, P2) and not torch.equal(P1, new.predict_proba(data.X_test[:20]))
        if method == "step":
            for k in te.params:
                torch.testing.assert_close(new.params[k], te.params[k] + loc["delta"][k])
    with pytest.raises(ValueError, match="method="):
        mitigate(te, loc, "prune")
    with pytest.raises(ValueError, match="data="):
        mitigate(te, loc, "finetune")


def test_study_records_have_the_issue_metric_names():
    cfg = IFBiDConfig(per_level_train=3, per_level_test=2, per_level_other=1, per_level_deeper=2, n_train=100,
                      epochs=2, detector_epochs=3, perm_repeats=1, n_images=40)
    res = run_ifbid(seed=0, config=cfg)
    recs = records_from_result(res)
    names = {r["metric"] for r in recs}
    for s in (0.02, 0.03, 0.04, 0.05):
        assert f"accuracy_sigma2_{s}" in names and f"color_score_sigma2_{s}" in names
    for d in ("pca_knn", "dense", "dense_dense", "conv1x1", "conv1x1_dense", "rnn", "stats"):
        assert f"detector_accuracy_4level_{d}" in names and f"detector_accuracy_2level_{d}" in names
    for lo in ("fgsm", "gm"):
        for me in MITIGATIONS:
            assert f"mitigation_delta_accuracy_{lo}_{me}" in names
            assert f"mitigation_delta_color_score_{lo}_{me}" in names
    for r in recs:
        assert r["study"] == "ifbid" and r["dataset"] == "colored-digits" and r["features"] == "pixels"
        assert isinstance(r["cfdkit"], float) and r["paper"] == PAPER.get(r["metric"])
    assert sum(r["paper"] is not None for r in recs) >= 30
