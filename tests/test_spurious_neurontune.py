"""Tests for cfdkit.spurious.neurontune, cfdkit.spurious.planted, cfdkit.spurious.nets and the study
(cfdkit.studies.neurontune)."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from cfdkit.spurious.nets import MLP, DigitCNN, train_classifier
from cfdkit.spurious.neurontune import (NeuronTune, NeuronTuneWarning, flag_neurons, lambda_grid, neuron_scores,
                                        select_by_sfit, sfit, split_model, spuriousness_scores, worst_group_accuracy,
                                        group_accuracies)
from cfdkit.studies.neurontune import _records_from, halves, mlp_model, neurontune_study
from cfdkit.spurious.planted import planted_tabular, planted_text, plant_attribute, PLANTED_TOKEN


# ---------------------------------------------------------------------------------------------- linear data model

def _linear_world(n=400, seed=0):
    """The linear data model, noiseless: embedding = [core, red, green, nuisance].

    core = 2y − 1 exactly (constant within class), red = 1{a = 0}, green = 1{a = 1}, nuisance = 0.5 for all.
    The head leans on colour more than on shape, so exactly the bias-conflicting samples (a ≠ y) are wrong.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.5, y, 1 - y)
    V = np.c_[2.0 * y - 1, (a == 0).astype(float), (a == 1).astype(float), np.full(n, 0.5)]
    head = torch.nn.Linear(4, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.5, -2.0, 2.0, 0.0]]))
        head.bias.zero_()
    return V, y, a, head


def test_exact_linear_data_model_flags_exactly_the_spurious_dims():
    V, y, a, head = _linear_world()
    sm = split_model((lambda X: X, head))
    pred = sm.predict_from_embedding(V)
    assert np.array_equal(pred == y, a == y)          # errors = exactly the bias-conflicting samples
    delta, counts = spuriousness_scores(V, y, pred == y)
    # red unit: errors of class 1 are red (δ = +1), errors of class 0 are green (δ = −1); green the mirror
    np.testing.assert_array_equal(delta, [[0, -1, 1, 0], [0, 1, -1, 0]])
    assert np.array_equal(flag_neurons(delta, 0.0, "any"), [False, True, True, False])
    # the literal "all" rule misses a unit that is spurious for one class only
    assert not flag_neurons(delta, 0.0, "all").any()
    assert sfit(delta) == 4.0
    nt = NeuronTune((lambda X: X, head), rule="any").identify(V, y)
    assert nt.flagged_.tolist() == [False, True, True, False] and nt.rule_ == "any"


def test_all_rule_flags_a_unit_spurious_for_every_class():
    V, y, a, head = _linear_world()
    # a unit that is high on *every* error (e.g. "conflict detector") is flagged by both rules
    V = np.c_[V, (a != y).astype(float)]
    pred = (V[:, :4] @ np.array([0.5, -2.0, 2.0, 0.0]) > 0).astype(int)
    delta, _ = spuriousness_scores(V, y, pred == y)
    assert flag_neurons(delta, 0.0, "all").tolist() == [False, False, False, False, True]
    assert flag_neurons(delta, 0.0, "any").tolist() == [False, True, True, False, True]
    assert flag_neurons(delta, 0.99, "all").tolist() == [False] * 4 + [True]
    assert not flag_neurons(delta, 1.0, "any").any()  # strict >


def test_neuron_scores_and_lambda_grid():
    d = np.array([[1.0, -2.0, 0.5], [-1.0, 3.0, 0.2]])
    np.testing.assert_array_equal(neuron_scores(d, "all"), [-1.0, -2.0, 0.2])
    np.testing.assert_array_equal(neuron_scores(d, "any"), [1.0, 3.0, 0.5])
    g = lambda_grid(d, "any")
    assert g[0] == 0.0 and np.all(np.diff(g) > 0) and g[-1] < 3.0
    # NaN rows (class without errors) are skipped
    d2 = np.array([[np.nan, np.nan, np.nan], [-1.0, 3.0, 0.2]])
    np.testing.assert_array_equal(neuron_scores(d2, "all"), [-1.0, 3.0, 0.2])


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_lambda_rule_and_mask_value():
    d = np.zeros((2, 3))
    for lam in (np.inf, np.nan, -np.inf):
        with pytest.raises(ValueError, match="lam"):
            flag_neurons(d, lam)
    with pytest.raises(TypeError, match="lam"):
        flag_neurons(d, "0")
    with pytest.raises(ValueError, match="rule"):
        flag_neurons(d, 0.0, "union")
    V, y, a, head = _linear_world()
    for mv in (-0.1, 1.5):
        with pytest.raises(ValueError, match="mask_value"):
            NeuronTune((lambda X: X, head), mask_value=mv).fit(V, y, V, y)
    with pytest.raises(ValueError, match="lam"):
        NeuronTune((lambda X: X, head), lam=float("nan")).identify(V, y)


def test_one_class_identification_set_is_an_error():
    V, y, a, head = _linear_world()
    keep = y == 1
    with pytest.raises(ValueError, match="single class"):
        NeuronTune((lambda X: X, head)).identify(V[keep], y[keep])


def test_no_misclassified_samples_warns_and_flags_nothing():
    V, y, a, head = _linear_world()
    aligned = a == y                                   # the model is right on all of them
    with pytest.warns(NeuronTuneWarning, match="flags no neuron"):
        nt = NeuronTune((lambda X: X, head), rule="any").identify(V[aligned], y[aligned])
    assert nt.n_flagged_ == 0 and np.isnan(nt.delta_).all() and nt.sfit_ == 0.0


def test_models_without_a_separable_head_are_rejected():
    for bad in (torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()), torch.nn.Conv2d(3, 3, 1), object(),
                (lambda X: X, torch.nn.ReLU())):
        with pytest.raises(TypeError, match="separable linear head"):
            split_model(bad)
    with pytest.raises(TypeError, match="separable"):
        NeuronTune(torch.nn.ReLU()).identify(np.ones((4, 2)), np.array([0, 1, 0, 1]))


def test_not_fitted_and_bad_neurons():
    V, y, a, head = _linear_world()
    nt = NeuronTune((lambda X: X, head))
    with pytest.raises(NotFittedError):
        nt.predict(V)
    with pytest.raises(NotFittedError):
        nt.fit(V, y)                                   # no identification yet
    with pytest.raises(ValueError, match="neurons"):
        NeuronTune((lambda X: X, head), neurons="some").fit(V, y, V, y)
    with pytest.raises(ValueError, match="neurons"):
        NeuronTune((lambda X: X, head), neurons=[7]).fit(V, y, V, y)


# ---------------------------------------------------------------------------------------------- regulation

def test_regulation_on_linear_world_removes_the_colour_and_controls_differ():
    V, y, a, head = _linear_world(n=600, seed=1)
    # tuning set biased like a training set: colour agrees with the label 95 % of the time
    rng = np.random.default_rng(2)
    yt = rng.integers(0, 2, 600)
    at = np.where(rng.random(600) < 0.95, yt, 1 - yt)
    # ... and its shape feature is noisy (alone ~75 % right), so an unmasked head keeps leaning on colour
    Vt = np.c_[2.0 * yt - 1 + 1.5 * rng.normal(size=600), (at == 0), (at == 1), np.full(600, 0.5)].astype(float)
    g = 2 * y + a
    kw = dict(rule="any", epochs=30, seed=0)
    nt = NeuronTune((lambda X: X, head), **kw).fit(Vt, yt, V, y)
    assert nt.masked_.tolist() == [False, True, True, False]
    assert worst_group_accuracy(nt.predict(V), y, g) == 1.0          # shape alone is right
    assert np.all(nt.transform(V)[:, 1:3] == 0)
    nomask = NeuronTune((lambda X: X, head), neurons="none", **kw).fit(Vt, yt, V, y)
    assert nomask.masked_.sum() == 0
    assert worst_group_accuracy(nomask.predict(V), y, g) < 1.0      # the head starts (and stays) colour-biased
    rnd = NeuronTune((lambda X: X, head), neurons="random", **kw).fit(Vt, yt, V, y)
    assert rnd.masked_.sum() == 2
    half = NeuronTune((lambda X: X, head), mask_value=0.5, **kw).fit(Vt, yt, V, y)
    np.testing.assert_allclose(half.transform(V)[:, 1:3], 0.5 * V[:, 1:3])
    s = nt.summary()
    assert s["rule"] == "any" and s["n_flagged"] == 2 and s["sfit_before"] == 4.0


def test_same_seed_same_head_and_balanced_sampling_matters():
    V, y, a, head = _linear_world(n=300)
    rng = np.random.default_rng(0)
    yt = (rng.random(300) < 0.9).astype(int)                          # 90 % class 1
    Vt = np.c_[2.0 * yt - 1, rng.random((300, 3))]
    f = lambda **k: NeuronTune((lambda X: X, head), rule="any", epochs=5, **k).fit(Vt, yt, V, y)
    a1, a2, a3 = f(seed=3), f(seed=3), f(seed=4)
    assert np.array_equal(a1.W_, a2.W_) and np.array_equal(a1.b_, a2.b_)
    assert not np.array_equal(a1.W_, a3.W_)
    bal, unb = f(seed=3), f(seed=3, balanced=False)
    assert not np.array_equal(bal.W_, unb.W_)


def test_select_by_sfit_returns_the_max():
    V, y, a, head = _linear_world(n=300)
    best, rows = select_by_sfit((lambda X: X, head), V, y, V, y, [0.0, 0.5, 2.0], rule="any", epochs=5)
    assert [r["lam"] for r in rows] == [0.0, 0.5, 2.0]
    assert best.sfit_after_ == max(r["sfit_after"] for r in rows)
    assert rows[2]["n_flagged"] == 0 and rows[0]["n_flagged"] == 2


def test_split_model_adapters_agree_with_forward():
    torch.manual_seed(0)
    X = np.random.default_rng(0).random((20, 3, 8, 8)).astype(np.float32)
    cnn = DigitCNN(n_classes=2, width=16).eval()
    sm = split_model(cnn)
    with torch.no_grad():
        ref = cnn(torch.as_tensor(X)).double().numpy()
    np.testing.assert_allclose(sm.logits(sm.embed(X)), ref, rtol=1e-5, atol=1e-6)
    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    sm2 = split_model(seq)
    assert sm2.embed(X).shape == (20, 8) and sm2.n_classes == 3
    from cfdkit.neural import NeuralCFD
    Xf = X.reshape(20, -1).astype(np.float64)
    yb = (Xf[:, 0] > 0.5).astype(int)
    net = NeuralCFD(hidden=(4, 6), epochs=5, weight_decay=0.0, lr_min=None, tol=None, progress=False).fit(Xf, yb).model_
    sm3 = split_model(net)
    np.testing.assert_allclose(sm3.logits(sm3.embed(Xf))[:, 0], net.logit(Xf), atol=1e-10)
    assert sm3.n_classes == 2


def test_group_accuracies_and_wga():
    pred = np.array([0, 1, 1, 0])
    y = np.array([0, 1, 0, 0])
    g = np.array([0, 1, 2, 2])
    assert group_accuracies(pred, y, g) == {0: 1.0, 1: 1.0, 2: 0.5}
    assert worst_group_accuracy(pred, y, g) == 0.5


# ---------------------------------------------------------------------------------------------- planted data

def test_planted_attribute_and_synthetic_table():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20000)
    a = plant_attribute(y, 0.9, rng)
    assert abs(np.mean(a == y) - 0.9) < 0.01
    b = plant_attribute(y, 0.9, rng, balanced=True)
    for c in (0, 1):
        assert abs(b[y == c].mean() - 0.5) < 1e-3
    d = planted_tabular(0.95, source="synthetic", n_train=400, n_val=200, n_test=200, seed=1)
    assert d.X_train.shape == (400, 11) and d.feature_names[d.planted_index] == "planted"
    np.testing.assert_array_equal(d.X_train[:, -1], d.a_train)
    assert 0.9 < np.mean(d.a_train == d.y_train) < 0.99
    assert set(np.unique(d.groups_test)) == {0, 1, 2, 3}
    assert abs(np.mean(d.a_test == d.y_test) - 0.5) < 0.02
    d2 = planted_tabular(0.95, source="synthetic", n_train=400, n_val=200, n_test=200, seed=1)
    assert np.array_equal(d.X_train, d2.X_train)
    with pytest.raises(ValueError, match="rho"):
        planted_tabular(1.0, source="synthetic")
    with pytest.raises(ValueError, match="source"):
        planted_tabular(0.9, source="csv")


def test_planted_text_token_column():
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "great", "awful", "movie", "actor"]
    T = [" ".join(rng.choice(words, 6)) for _ in range(300)]
    yy = np.array([int("good" in t or "great" in t) for t in T])
    d = planted_text(0.9, n_train=150, n_val=60, n_test=60, texts=(T[:240], yy[:240], T[240:], yy[240:]))
    assert d.feature_names[d.planted_index] == PLANTED_TOKEN
    np.testing.assert_array_equal(d.X_train[:, d.planted_index], d.a_train)
    assert all((PLANTED_TOKEN in t) == bool(ai) for t, ai in zip(d.texts_test, d.a_test))
    with pytest.raises(ValueError, match="token"):
        planted_text(0.9, token="Not a word", texts=(T[:240], yy[:240], T[240:], yy[240:]))
    with pytest.raises(ValueError, match="already occurs"):
        planted_text(0.9, token="good", n_train=150, n_val=60, n_test=60, texts=(T[:240], yy[:240], T[240:], yy[240:]))


def test_study_on_synthetic_planted_table_runs_and_is_consistent():
    torch.set_num_threads(1)
    d = planted_tabular(0.95, source="synthetic", n_train=600, n_val=300, n_test=400, seed=0, spurious_scale=3.0)
    m = mlp_model(d, seed=0, hidden=(16, 16), epochs=15)
    out = neurontune_study(m, d, seed=0, head_epochs=10, mask_values=(0.0, 1.0))
    for rule in ("all", "any"):
        assert 0 <= out[f"wga_neurontune@{rule}"] <= 1
        assert out[f"wga_neurontune_oracle_lam@{rule}"] >= out[f"wga_neurontune_sfit@{rule}"]
    # the planted column is learnt: ERM is worse on some group than on average
    assert out["wga_erm"] < out["mean_acc_erm"]
    # mask value 1.0 leaves every neuron untouched: identical to the no-mask control
    assert out["wga_mask1.0@any"] == out["wga_control_nomask@any"]
    recs = _records_from("planted-tabular", "synthetic", [out])
    assert {r["metric"] for r in recs} >= {"wga_erm", "wga_neurontune", "wga_control_nomask",
                                           "wga_control_randommask", "n_flagged", "mean_acc_neurontune"}
    assert all(r["study"] == "neurontune" for r in recs)
    assert [r["paper"] for r in recs if r["metric"] == "wga_erm"][0] == pytest.approx(0.472)  # CelebA ERM (context)
