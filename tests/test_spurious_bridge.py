"""Tests for cfdkit.spurious.bridge (CFDs vs NeuronTune neurons vs input counterfactuals)."""
import numpy as np
import pytest
import torch

from cfdkit.neural import RANKINGS, NeuralCFD
from cfdkit.neural.model import ReLUNet
from cfdkit.spurious.autoencoder import IdentityAutoencoder
from cfdkit.spurious.bridge import (cfd_neuron_bridge, colour_reliance, flatten_digits, input_counterfactual_bridge,
                                    jaccard, latent_shift_counterfactual, ls_colour_rc, neurontune_activation)
from cfdkit.spurious.latent_shift import linear_classifier


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


def _linear_relunet(w, b=0.0):
    """A ReLUNet whose logit is exactly w·x + b for x > -10 (ReLUs stay in their linear part)."""
    w = np.asarray(w, np.float64)
    d = len(w)
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    return ReLUNet((t(np.eye(d)), t(np.full(d, 10.0)), t(np.eye(d)), t(np.zeros(d)), t(w), t(b - 10.0 * w.sum())))


def test_ls_colour_rc_closed_forms():
    # identity autoencoder + a linear network: Latent Shift is a gradient step in input space and RC is exact:
    # colour classifier = the network (1), orthogonal to it (0), its complement (-1), for either base class
    net = _linear_relunet([1.0, 0.0, 0.0])
    X = np.array([[2.0, 0.5, -0.3], [-1.5, 0.2, 0.4]])
    ae = IdentityAutoencoder((3,))
    opts = {"max_pixel_frac": 100.0}
    for u, b, want in (([1.0, 0, 0], 0.0, 1.0), ([0, 1.0, 0], 0.3, 0.0), ([-1.0, 0, 0], 0.0, -1.0)):
        out = ls_colour_rc(net, X, ae, linear_classifier(u, b), ls_options=opts)
        assert out["classes"].tolist() == [1, 0]                       # base class = the prediction
        assert np.all(out["base_change"] > 0.3) and out["x_cf"].shape == X.shape
        np.testing.assert_allclose(out["rc"], [want, want], atol=1e-6)
    # a fixed base class: for the first point P(class 0) starts at 0.12, can only fall a little, and the same
    # colour classifier still gives RC = 1 (P(red) = P(class 0))
    out = ls_colour_rc(net, X[:1], ae, linear_classifier([1.0, 0, 0]), classes=[0], ls_options=opts)
    np.testing.assert_allclose(out["rc"], [1.0], atol=1e-6)
    assert out["base_change"][0] < 0.12
    with pytest.raises(ValueError, match="classes"):
        ls_colour_rc(net, X, ae, linear_classifier([1.0, 0, 0]), classes=[0, 2])
    with pytest.raises(ValueError, match="autoencoder was fitted"):
        ls_colour_rc(net, np.zeros((2, 4)), ae, linear_classifier([1.0, 0, 0]))
    with pytest.raises(TypeError, match="colour"):
        ls_colour_rc(net, X, ae, "green")
    with pytest.raises(TypeError, match="encode"):
        ls_colour_rc(net, X, object(), linear_classifier([1.0, 0, 0]))


def test_latent_shift_through_the_hook():
    net = _linear_relunet([1.0, 0.0, 0.0])
    X = np.array([[2.0, 0.5, -0.3], [-1.5, 0.2, 0.4], [0.8, -0.1, 0.0]])
    cf = latent_shift_counterfactual(IdentityAutoencoder((3,)), max_pixel_frac=100.0, pred_diff=0.45)
    Xc = cf(net, X)
    # the gradient step moves only the network's direction, against each prediction
    np.testing.assert_allclose(Xc[:, 1:], X[:, 1:], atol=1e-12)
    assert np.all(np.sign(Xc[:, 0] - X[:, 0]) == -np.sign(X[:, 0]))
    rows = input_counterfactual_bridge(cf, net, X, np.array([True, False, False]))
    assert len(rows) == 3 and all(r["shift_other"] == 0 and r["shift_flagged"] > 0 for r in rows)
    assert sum(r["flipped"] for r in rows) >= 1
    with pytest.raises(TypeError, match="encode"):
        latent_shift_counterfactual("vqgan")


def test_cfd_neuron_bridge_with_latent_shift():
    torch.set_num_threads(1)
    X, y, a = _toy(n=100)
    Xi, yi, _ = _toy(n=80, seed=1)
    ae = IdentityAutoencoder((4,))
    colour = linear_classifier([0.0, 3.0, 0.0, 0.0])      # P(a = 1) from the spurious column
    kw = dict(hidden=(4, 8), budget=4, epochs=40, rankings=("combined",), lam=0.0)
    probe = cfd_neuron_bridge(X, y, Xi, yi, X[:1], **kw)["cfd"].model_
    pts = np.argsort(np.abs(probe.logit(X)))[:4]          # the points nearest the boundary have CFDs
    out = cfd_neuron_bridge(X, y, Xi, yi, X[pts], autoencoder=ae, colour=colour,
                            ls_options={"max_pixel_frac": 100.0}, **kw)
    s = out["summary"]
    assert s["n_cfd_found"] >= 2 and len(out["per_point"]) == s["n_cfd_found"]
    for key in ("ls_rc_colour_before", "ls_n", "ls_implicates_colour", "ls_flipped", "delta_rc_colour_after_cfd",
                "delta_rc_colour_after_random", "n_delta_rc_cfd", "n_delta_rc_random"):
        assert key in s
    assert out["ls_before"]["rc"].shape == (4,) and np.all(np.isfinite(out["ls_before"]["rc"]))
    assert 0 <= s["n_delta_rc_cfd"] <= len(out["per_point"]) and 0 <= s["n_delta_rc_random"] <= len(out["per_point"])
    for r in out["per_point"]:
        # the random-flip control sits beside every CFD retrain, with the same base class
        for tag in ("cfd", "random"):
            assert np.isfinite(r[f"ls_rc_after_{tag}"]) and np.isfinite(r[f"ls_base_change_after_{tag}"])
            d = r[f"delta_rc_colour_{tag}"]
            kept = r["ls_base_change_before"] > 0.3 and r[f"ls_base_change_after_{tag}"] > 0.3
            assert np.isnan(d) == (not kept)
            if kept:
                assert d == pytest.approx(r[f"ls_rc_after_{tag}"] - r["ls_rc_before"])
    with pytest.raises(ValueError, match="both autoencoder"):
        cfd_neuron_bridge(X, y, Xi, yi, X[:2], autoencoder=ae)
