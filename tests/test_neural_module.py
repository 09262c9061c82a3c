"""NeuralCFD(model=module): any torch classifier (issue 15, part 2).

The torch.func ensemble must equal per-member sequential torch.optim retrains (to round-off), the module path
on the built-in architecture must reproduce the built-in trainer, the hooked internals must reproduce the
built-in rankings, and non-converged members must be reported.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone

from cfdkit.neural import NeuralCFD, exhaustive_cfd, ranking_recall
from cfdkit.neural.model import ReLUNet, TrainConfig, init_params
from cfdkit.neural.module import (ModuleNet, check_module, iter_batches, module_config, train_module_ensemble,
                                  train_module_sequential)
from conftest import make_neural_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    X, y = make_neural_data(n=48, d=3, seed=0)
    Xt = np.random.default_rng(1).normal(size=(6, 3))
    return X, y, Xt


def builtin_module(d=3, hidden=(4, 4), seed=0):
    """The built-in architecture as an nn.Sequential carrying the built-in initial weights."""
    return ReLUNet(init_params(d, hidden, seed)).to_module()


class TanhNet(torch.nn.Module):
    """A custom (non-Sequential) classifier: a frozen input scale (parameter without grad), a buffer, tanh."""

    def __init__(self, d=3, h=5, out=1):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.scale = torch.nn.Parameter(torch.ones(d, dtype=torch.float64) * 0.9, requires_grad=False)
        self.register_buffer("shift", torch.full((d,), 0.1, dtype=torch.float64))
        self.hidden = torch.nn.Linear(d, h).double()
        self.act = torch.nn.Tanh()
        self.head = torch.nn.Linear(h, out).double()
        with torch.no_grad():
            for p in self.parameters():
                if p.requires_grad:
                    p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64) - 0.5)

    def forward(self, x):
        return self.head(self.act(self.hidden((x - self.shift) * self.scale)))


def _cfd(model, **kw):
    return NeuralCFD(**{"model": model, "budget": 3, "progress": False, "placebo_draws": None, **kw})


def _max_diff(P, Q):
    return max(float((P[k] - Q[k]).abs().max()) for k in P)


# ----------------------------------------------------------------------------- training
ENSEMBLE_CASES = {
    "adam-1logit-full": (lambda: builtin_module(), dict(optimizer="adam", batch_size=None)),
    "adam-custom-full": (lambda: TanhNet(), dict(optimizer="adam", batch_size=None)),
    "adam-2logits-full": (lambda: TanhNet(out=2), dict(optimizer="adam", batch_size=None)),
    "adam-1logit-minibatch": (lambda: builtin_module(), dict(optimizer="adam", batch_size=10)),
    "sgd-custom-full": (lambda: TanhNet(), dict(optimizer="sgd", batch_size=None)),
    "sgd-2logits-minibatch": (lambda: TanhNet(out=2), dict(optimizer="sgd", batch_size=16)),
}


@pytest.mark.parametrize("case", list(ENSEMBLE_CASES))
@pytest.mark.parametrize("tol, stop_beta", [(None, None), (2e-2, None), (2e-2, 0.97)])
def test_ensemble_members_equal_sequential_torch_optim(data, case, tol, stop_beta):
    """Each torch.func member = its own torch.optim retrain on a deep copy (params to 1e-10, same stop step);
    also with the stop rule's own ~33-step gradient average (stop_beta=0.97, the NeuralCFD default)."""
    X, y, _ = data
    make, kw = ENSEMBLE_CASES[case]
    Xt_ = torch.as_tensor(X)
    spec = check_module(make(), Xt_, "cpu")
    lr = 0.2 if kw["optimizer"] == "sgd" else 2e-2
    cfg, _ = module_config(40 if kw["batch_size"] else 150, lr, 1e-2, 1e-3, tol, 0, torch.float64, len(X),
                           kw["batch_size"], stop_beta)
    rng = np.random.default_rng(0)
    Y = torch.as_tensor(np.stack([y] + [np.where(rng.random(len(y)) < 0.15, 1 - y, y) for _ in range(4)]),
                        dtype=torch.float64)
    P, info = train_module_ensemble(spec, Xt_, Y, cfg, seed=5, **kw)
    steps = []
    for b in range(len(Y)):
        p, inf = train_module_sequential(spec, Xt_, Y[b], cfg, seed=5, **kw)
        assert _max_diff({k: P[k][b] for k in p}, p) < 1e-10, case
        assert inf["converged"] == info["converged"][b] and inf["steps"] == info["steps"][b]
        if tol is not None:
            assert abs(inf["grad_norm"] - info["grad_norm"][b]) < 1e-10
        steps.append(inf["steps"])
    if tol is None:
        assert info["converged"].all() and (info["steps"] == cfg.n_steps).all()
    # the user's module is untouched: its parameters are still the initial weights
    for k, v in spec.params0.items():
        assert torch.equal(v, dict(make().named_parameters())[k].detach())


def test_float32_module(data):
    """A float32 module trains in float32 (its own dtype); members still match torch.optim to float32 round-off."""
    X, y, Xt = data
    cfd = _cfd(TanhNet().float(), tol=None, epochs=100, weight_decay=1e-2).fit(X, y)
    assert cfd.model_.dtype == torch.float32 and cfd.X_train_t_.dtype == torch.float32
    Y = torch.stack([cfd.y_train_t_, 1 - cfd.y_train_t_])
    P, _ = train_module_ensemble(cfd.module_spec_, cfd.X_train_t_, Y, cfd.config_)
    p, _ = train_module_sequential(cfd.module_spec_, cfd.X_train_t_, Y[1], cfd.config_)
    assert _max_diff({k: P[k][1] for k in p}, p) < 1e-4


def test_module_path_reproduces_builtin_trainer(data):
    """model = the built-in architecture with the built-in initial weights → the built-in fit and search."""
    X, y, Xt = data
    ref = NeuralCFD(hidden=(4, 4), budget=3, progress=False, placebo_draws=None).fit(X, y)
    mod = _cfd(builtin_module(), layer=("0", "2")).fit(X, y)   # both hidden layers, as the built-in "combined"
    assert mod.convergence_["converged"] and mod.convergence_["steps"] == ref.convergence_["steps"]
    np.testing.assert_allclose(mod.model_.logit(Xt), ref.model_.logit(Xt), atol=1e-10)
    r0, r1 = ref.search(Xt), mod.search(Xt)
    np.testing.assert_array_equal(r0.found, r1.found)
    np.testing.assert_array_equal(r0.k, r1.k)
    np.testing.assert_allclose(r0.new_logit, r1.new_logit, atol=1e-9)
    assert r1.n_found > 0 and r1.converged.all()


def test_batched_search_equals_sequential_loop(data):
    """The torch.func search (both schedules, with and without the cache) = the literal torch.optim loop."""
    X, y, Xt = data
    cfd = _cfd(TanhNet(), cache=False).fit(X, y)
    seq = cfd.search(Xt, sequential=True)
    for schedule in ("rounds", "all"):
        cfd.set_params(schedule=schedule)
        res = cfd.search(Xt)
        np.testing.assert_array_equal(res.found, seq.found)
        np.testing.assert_array_equal(res.k, seq.k)
        np.testing.assert_allclose(res.new_logit, seq.new_logit, atol=1e-9)
    assert seq.n_found > 0
    # a reported CFD really flips: retrain() (torch.optim) on its flip set
    i = int(np.flatnonzero(seq.found)[0])
    net = cfd.retrain(seq.indices(i))
    assert isinstance(net, ModuleNet)
    assert (net.logit(Xt[i:i + 1])[0] > 0) != (seq.logit[i] > 0)


def test_two_logit_module_and_minibatch_search(data):
    X, y, Xt = data
    cfd = _cfd(TanhNet(out=2), batch_size=16, epochs=400, lr=2e-2).fit(X, y)
    assert cfd.batch_size_ == 16 and cfd.config_.epochs == 400 * 3 and cfd.config_.check_every == 3
    out = cfd.model_.module(torch.as_tensor(Xt))
    np.testing.assert_allclose(cfd.model_.logit(Xt), (out[:, 1] - out[:, 0]).detach().numpy(), atol=1e-12)
    assert ((cfd.model_.predict(X) == y).mean()) > 0.7
    res, seq = cfd.search(Xt[:3]), cfd.search(Xt[:3], sequential=True)
    np.testing.assert_array_equal(res.k, seq.k)


def test_minibatch_order_is_seeded_and_shared():
    a = [i.tolist() for i in iter_batches(10, 4, 6, seed=1)]
    b = [i.tolist() for i in iter_batches(10, 4, 6, seed=1)]
    c = [i.tolist() for i in iter_batches(10, 4, 6, seed=2)]
    assert a == b and a != c
    assert sorted(sum(a[:3], [])) == list(range(10)) and [len(i) for i in a] == [4, 4, 2, 4, 4, 2]
    assert list(iter_batches(10, None, 3, seed=0)) == [None, None, None]


# ----------------------------------------------------------------------------- convergence
def test_nonconverged_members_are_reported_not_hidden(data):
    X, y, _ = data
    spec = check_module(TanhNet(), torch.as_tensor(X), "cpu")
    cfg, _ = module_config(60, 2e-2, 1e-2, None, 1e-6, 0, torch.float64, len(X), None)
    Y = torch.as_tensor(np.stack([y, 1 - y]), dtype=torch.float64)
    _, info = train_module_ensemble(spec, torch.as_tensor(X), Y, cfg)
    assert not info["converged"].any() and (info["grad_norm"] > 1e-6).all() and (info["steps"] == 59).all()
    with pytest.raises(ValueError, match="did not converge"):
        _cfd(TanhNet(), epochs=60, tol=1e-6).fit(X, y)
    # a search whose retrains cannot converge: the CFD is labelled "not converged", never a finding
    cfd = _cfd(TanhNet(), placebo_draws=3).fit(X, y)
    cfd.config_ = TrainConfig(**{**cfd.config_.__dict__, "epochs": cfd.convergence_["steps"] + 1})
    cfd.set_params(cache=False)
    res = cfd.search(np.random.default_rng(1).normal(size=(6, 3)))
    bad = res.found & ~res.converged
    assert bad.any() and res.info["retrain_not_converged"] == int(bad.sum())
    assert set(res.verdict[bad]) <= {"not converged"}
    assert (res.verdict[res.found & res.converged] != "not converged").all()


# ----------------------------------------------------------------------------- hooks / rankings
def test_hooked_internals_reproduce_builtin_rankings(data):
    X, y, Xt = data
    ref = NeuralCFD(hidden=(4, 4), budget=3, progress=False, placebo_draws=None).fit(X, y)
    both = _cfd(builtin_module(), layer=("0", "2")).fit(X, y)      # both hidden pre-activations (Linear outputs)
    for name in ("activation_pattern", "activation_gradient", "combined", "lr_surrogate", "combined_gradient"):
        np.testing.assert_allclose(both.rank(Xt, name), ref.rank(Xt, name), atol=1e-9, err_msg=name)
    relu = _cfd(builtin_module(), layer=("1", "3")).fit(X, y)      # ReLU outputs: same on/off pattern
    np.testing.assert_array_equal(relu.rank(Xt, "activation_pattern"), ref.rank(Xt, "activation_pattern"))
    last = _cfd(builtin_module()).fit(X, y)                         # default: input of the last nn.Linear
    z1, z2 = ref.model_.hidden_preactivations(Xt)
    np.testing.assert_array_equal(last.model_.activation_codes(Xt), z2 > 0)
    np.testing.assert_allclose(last.model_.layer_features(Xt), np.maximum(z2, 0), atol=1e-10)
    w3 = ref.model_.params[4].numpy()
    np.testing.assert_allclose(last.model_.activation_gradients(Xt), np.broadcast_to(w3, (len(Xt), 4)), atol=1e-10)


def test_named_layer_of_custom_module(data):
    X, y, Xt = data
    cfd = _cfd(TanhNet(), layer="act").fit(X, y)
    feats = cfd.model_.layer_features(Xt)
    m = cfd.model_.module
    with torch.no_grad():
        ref = torch.tanh(m.hidden((torch.as_tensor(Xt) - m.shift) * m.scale)).numpy()
    np.testing.assert_allclose(feats, ref, atol=1e-12)
    S = cfd.rank(Xt, "activation_gradient")
    assert S.shape == (6, 48) and np.isfinite(S).all() and np.abs(S).max() <= 1 + 1e-12
    res = cfd.search(Xt, ranking="combined")
    assert res.found.shape == (6,)


def test_influence_through_functional_call(data):
    """The exact-Hessian influence ranking on the module's parameters = the built-in one (a permutation /
    transposition of the same parameters), and runs on custom two-logit modules."""
    X, y, Xt = data
    ref = NeuralCFD(hidden=(4, 4), budget=3, progress=False, placebo_draws=None).fit(X, y)
    mod = _cfd(builtin_module()).fit(X, y)
    np.testing.assert_allclose(mod.rank(Xt, "influence"), ref.rank(Xt, "influence"), rtol=1e-6, atol=1e-9)
    S = _cfd(TanhNet(out=2)).fit(X, y).rank(Xt, "influence")
    assert S.shape == (6, 48) and np.isfinite(S).all() and np.abs(S).max() > 0


# ----------------------------------------------------------------------------- estimator contract, placebo
def test_sklearn_contract_and_module_untouched(data):
    X, y, Xt = data
    user = TanhNet()
    before = copy.deepcopy(user.state_dict())
    cfd = _cfd(user, batch_size=None)
    assert cfd.get_params()["model"] is user and cfd.get_params()["optimizer"] == "adam"
    cl = clone(cfd)
    assert cl.model is not user and isinstance(cl.model, TanhNet)
    cfd.fit(X, y)
    for k, v in user.state_dict().items():
        assert torch.equal(v, before[k])
    a = cfd.model_.logit(Xt)
    b = cl.fit(X, y).model_.logit(Xt)
    np.testing.assert_array_equal(a, b)                  # same inputs → same bits
    # a failed switch to the built-in network leaves no module network behind a built-in config
    with pytest.raises(ValueError, match="hidden"):
        cfd.set_params(model=None, hidden=(4,)).fit(X, y)
    assert not hasattr(cfd, "model_") and not hasattr(cfd, "module_spec_")
    # switching back to the built-in network drops the module state
    cfd.set_params(model=None, hidden=(4, 4)).fit(X, y)
    assert not hasattr(cfd, "module_spec_") and isinstance(cfd.model_, ReLUNet)


def test_placebo_and_specificity_for_module(data):
    X, y, Xt = data
    cfd = _cfd(TanhNet(), placebo_draws=4).fit(X, y)
    res = cfd.search(Xt)
    assert res.info["placebo_networks"] > 0
    assert np.isnan(res.specificity[~res.found]).all()
    assert ((res.specificity[res.found] >= 0) & (res.specificity[res.found] <= 1)).all()
    df = cfd.placebo(Xt, sizes=(1, 2), n_draws=3)
    assert {"flip_rate_random_k1", "flip_rate_random_k2", "flip_rate_seed"} <= set(df.columns)
    assert df.attrs["n_networks"] > 0 and df.attrs["n_not_converged"] >= 0
    df2 = cfd.placebo(Xt, sizes=(1, 2), n_draws=3)
    np.testing.assert_array_equal(df.drop(columns=[]).to_numpy(), df2.to_numpy())


def test_seed_placebo_needs_reset_parameters(data):
    X, y, Xt = data

    class Bare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

        def forward(self, x):
            return x @ self.w

    cfd = _cfd(Bare(), weight_decay=1e-2).fit(X, y)
    with pytest.raises(ValueError, match="reset_parameters"):
        cfd.placebo(Xt, sizes=1, n_draws=2)


def test_exhaustive_ground_truth_for_module(data):
    """Exhaustive ground truth through the torch.func ensemble: every true CFD of size 1 really flips
    (torch.optim retrain), and a ranking never finds a smaller CFD than the truth."""
    X, y, Xt = data
    cfd = _cfd(TanhNet(), placebo_draws=None).fit(X, y)
    truth = exhaustive_cfd(cfd, Xt[:3], max_k=1)
    assert truth.n_subsets > 0
    for t in np.flatnonzero(truth.found):
        net = cfd.retrain(list(truth.witness[t]))
        assert (net.logit(Xt[t:t + 1])[0] > 0) != (cfd.model_.logit(Xt[t:t + 1])[0] > 0)
    rec = ranking_recall(cfd, Xt[:3], truth, rankings=("lr_surrogate", "activation_pattern"))
    assert len(rec) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_module_matches_cpu(data):
    X, y, Xt = data
    cpu = _cfd(TanhNet(), device="cpu").fit(X, y)
    gpu = _cfd(TanhNet(), device="cuda").fit(X, y)
    assert gpu.device_.type == "cuda"
    np.testing.assert_allclose(cpu.model_.logit(Xt), gpu.model_.logit(Xt), atol=1e-8)
    rc, rg = cpu.search(Xt), gpu.search(Xt)
    keep = np.abs(rc.logit) > 1e-6
    np.testing.assert_array_equal(rc.k[keep], rg.k[keep])


# ----------------------------------------------------------------------------- one network= argument
def test_network_argument_is_the_same_as_hidden_or_model(data):
    """``network=(h1, h2)`` is ``hidden=(h1, h2)`` and ``network=module`` is ``model=module``, bit for bit."""
    X, y, Xt = data
    kw = dict(budget=3, progress=False, placebo_draws=2, seed=1)
    a, b = NeuralCFD(hidden=(4, 4), **kw).fit(X, y), NeuralCFD(network=(4, 4), **kw).fit(X, y)
    assert all(torch.equal(p, q) for p, q in zip(a.model_.params, b.model_.params))
    ra, rb = a.search(Xt), b.search(Xt)
    for f in ("found", "k", "new_logit", "specificity"):
        np.testing.assert_array_equal(getattr(ra, f), getattr(rb, f))
    assert type(b.ensemble()).__name__ == "ReLUEnsemble" and b.hidden_ == (4, 4)
    user = TanhNet()
    c, d = _cfd(user, **kw).fit(X, y), NeuralCFD(network=user, **kw).fit(X, y)
    assert isinstance(d.model_, ModuleNet) and type(d.ensemble()).__name__ == "ModuleEnsemble"
    assert all(torch.equal(c.model_.params[k], d.model_.params[k]) for k in c.model_.params)
    rc, rd = c.search(Xt), d.search(Xt)
    for f in ("found", "k", "new_logit", "specificity"):
        np.testing.assert_array_equal(getattr(rc, f), getattr(rd, f))
    assert d.get_params()["network"] is user and isinstance(clone(d).network, TanhNet)
    assert "network" not in repr(NeuralCFD())


@pytest.mark.parametrize("kw, match", [
    ({"network": (4, 4), "hidden": (3, 3)}, r"network=\(4, 4\) and hidden= both choose"),
    ({"network": "model", "model": "x"}, r"and model= both choose.*drop hidden= / model="),
    ({"network": "tiny"}, r"network must be two positive int widths .* or a torch.nn.Module"),
    ({"network": (0, 4)}, r"network must be two positive int widths"),
])
def test_network_argument_errors_name_it_and_the_fix(data, kw, match):
    X, y, _ = data
    with pytest.raises(ValueError, match=match):
        NeuralCFD(progress=False, **kw).fit(X, y)


def test_ensemble_interface_is_the_same_for_both_networks(data):
    """Both ensembles answer the protocol: train on flipped labels, read logits, retrain one network."""
    X, y, Xt = data
    for cfd in (NeuralCFD(network=(4, 4), budget=2, progress=False).fit(X, y),
                NeuralCFD(network=builtin_module(), budget=2, progress=False).fit(X, y)):
        ens = cfd.ensemble()
        P, info = ens.train(ens.flipped([[0], [1, 2]]))
        lg = ens.logits(P, cfd.as_tensor(Xt))
        assert lg.shape == (2, len(Xt)) and lg.dtype == np.float64 and info["converged"].shape == (2,)
        one, _ = ens.train_one(ens.flipped([[0]])[0])
        # the batched member and the sequential retrain agree to round-off
        np.testing.assert_allclose(ens.net(ens.member(P, 0)).logit(Xt), ens.net(one).logit(Xt), atol=1e-7)
        np.testing.assert_array_equal(ens.logits(ens.stack([ens.member(P, 1)]), cfd.as_tensor(Xt))[0], lg[1])
        assert ens.logit_one(one, cfd.as_tensor(Xt[:1])) == pytest.approx(float(cfd.retrain([0]).logit(Xt[:1])[0]))
