"""Tests for cfdkit.spurious.bridge (CFDs vs NeuronTune neurons vs input counterfactuals)."""
import numpy as np
import pytest
import torch

from cfdkit.neural import RANKINGS, NeuralCFD
from cfdkit.spurious.bridge import (cfd_neuron_bridge, colour_reliance, flatten_digits, input_counterfactual_bridge,
                                    jaccard, neurontune_activation)


def _toy(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.9, y, 1 - y)
    X = np.c_[y + 0.8 * rng.normal(size=n), 2.0 * a - 1 + 0.1 * rng.normal(size=n), rng.normal(size=(n, 2))]
    return X, y, a


def test_ranking_is_registered_and_matches_definition():
    assert "neurontune_activation" in RANKINGS
    X, y, _ = _toy()
    net = NeuralCFD(hidden=(4, 6), epochs=30, weight_decay=0.0, lr_min=None, tol=None, progress=False).fit(X, y).model_
    S = neurontune_activation(net, X, y, X[:5], neurons=[0, 2])
    v = np.maximum(net.hidden_preactivations(X)[1], 0)[:, [0, 2]]
    ref = -np.linalg.norm(v[:5, None, :] - v[None, :, :], axis=2)
    np.testing.assert_allclose(S, ref, atol=1e-9)
    assert S.shape == (5, len(X)) and np.allclose(np.diag(S[:, :5]), 0.0, atol=1e-6)
    # a boolean mask gives the same scores
    m = np.zeros(6, bool); m[[0, 2]] = True
    np.testing.assert_allclose(neurontune_activation(net, X, y, X[:5], neurons=m), S)


def test_ranking_bad_neurons():
    X, y, _ = _toy()
    net = NeuralCFD(hidden=(4, 6), epochs=10, weight_decay=0.0, lr_min=None, tol=None, progress=False).fit(X, y).model_
    with pytest.raises(ValueError, match="ranking_options"):
        neurontune_activation(net, X, y, X[:2])
    with pytest.raises(ValueError, match="empty"):
        neurontune_activation(net, X, y, X[:2], neurons=[])
    with pytest.raises(ValueError, match="last hidden layer"):
        neurontune_activation(net, X, y, X[:2], neurons=[6])


def test_jaccard_and_colour_reliance():
    assert jaccard([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(1 / 3)
    assert jaccard([0, 0], [0, 0]) == 1.0
    with pytest.raises(ValueError):
        jaccard([1, 0], [1, 0, 0])
    X = np.arange(6.0)[:, None]
    assert colour_reliance(lambda Z: (Z[:, 0] > 2).astype(int), X, X) == 0.0
    assert colour_reliance(lambda Z: (Z[:, 0] > 2).astype(int), X, X[::-1]) == 1.0
    assert flatten_digits(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 192)


def test_cfd_neuron_bridge_small_run():
    torch.set_num_threads(1)
    X, y, a = _toy(n=100)
    Xi, yi, ai = _toy(n=80, seed=1)
    swapped = X.copy(); swapped[:, 1] *= -1
    out = cfd_neuron_bridge(X, y, Xi, yi, X[:3], X_colour=X, X_colour_swapped=swapped, hidden=(4, 8), budget=4,
                            epochs=40, rankings=("combined", "random", "neurontune_activation"), lam=0.0)
    s = out["summary"]
    assert s["n_points"] == 3 and out["rule"] == "any"
    assert set(k for k in s if k.startswith("cfd_mean_size_")) == {
        "cfd_mean_size_combined", "cfd_mean_size_random", "cfd_mean_size_neurontune_activation"}
    for r in out["per_point"]:
        assert 0.0 <= r["jaccard"] <= 1.0 and 1 <= r["k"] <= 4
        # the retrain really used the CFD: its prediction on the point flipped
        net = out["cfd"].retrain(out["results"]["combined"].indices(r["point"]))
        assert net.predict(X[[r["point"]]])[0] != out["cfd"].model_.predict(X[[r["point"]]])[0]
    assert s["n_cfd_found"] == len(out["per_point"])
    with pytest.raises(ValueError, match="X_points"):
        cfd_neuron_bridge(X, y, Xi, yi, np.zeros((0, 4)))


def test_input_counterfactual_hook():
    X, y, _ = _toy()
    net = NeuralCFD(hidden=(4, 6), epochs=30, weight_decay=0.0, lr_min=None, tol=None, progress=False).fit(X, y).model_
    flagged = np.array([True, False, True, False, False, False])
    same = input_counterfactual_bridge(lambda m, Z: Z.copy(), net, X[:4], flagged)
    assert all(not r["flipped"] and r["shift_flagged"] == 0 for r in same)
    swap = input_counterfactual_bridge(lambda m, Z: Z * np.array([1, -1, 1, 1]), net, X[:4], flagged)
    assert len(swap) == 4 and all(np.isfinite(r["shift_other"]) for r in swap)
    with pytest.raises(TypeError, match="callable"):
        input_counterfactual_bridge("latent shift", net, X[:4], flagged)
    with pytest.raises(ValueError, match="shape"):
        input_counterfactual_bridge(lambda m, Z: Z[:1], net, X[:4], flagged)


def test_explorer_pure_functions():
    import matplotlib
    matplotlib.use("Agg")
    from cfdkit_widgets.spurious_neurontune import accuracy_table, delta_figure, flag_table, point_view, prepare_state

    st = prepare_state(n_train=200, hidden=(6, 8), epochs=80, budget=4)
    t = flag_table(st.base.delta_, 0.0, "any")
    assert list(t.columns) == ["delta_class0", "delta_class1", "score", "flagged"] and len(t) == 8
    assert t["flagged"].tolist() == (t["score"] > 0).tolist()
    fig = delta_figure(st.base.delta_, 0.0, "any")
    assert len(fig.axes) == 2
    acc = accuracy_table(st, 0.0, "any")
    assert acc["model"].tolist() == ["ERM", "NeuronTune", "control: no mask", "control: random mask"]
    assert acc["masked neurons"].iloc[1] == acc["masked neurons"].iloc[3] == int(t["flagged"].sum())
    with pytest.raises(ValueError, match="tune"):
        accuracy_table(st, tune="val")
    if len(st.points):
        pv = point_view(st, 0, counterfactual=lambda m, X: X.copy())
        assert pv["label"] != pv["prediction"] and pv["counterfactual_prediction"] == pv["prediction"]
        assert len(pv["activation_flagged"]) == len(pv["flagged"])
    with pytest.raises(ValueError, match="point index"):
        point_view(st, 10_000)
