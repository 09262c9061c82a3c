"""Tests for cfdkit.neural (tiny data; the whole file runs in well under a minute on 2 cores)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import make_neural_data

from cfdkit.neural import (RANKINGS, NeuralCFD, as_relu_net, exhaustive_cfd, masked_order,
                           ranking_recall, same_label_as_prediction)
from cfdkit.neural.batched import member, train_batched
from cfdkit.neural.influence import influence, training_hessian
from cfdkit.neural.model import TrainConfig, init_params, train_params
from cfdkit.neural.rankings import activation_pattern, lr_surrogate

EPOCHS = 150
#: The old fixed-step recipe (no weight decay, constant lr, no convergence check, no placebo): these tests
#: exercise the search machinery and the trainer equalities on tiny problems; the stable recipe (the
#: defaults) has its own tests in tests/test_placebo.py.
OLD = dict(weight_decay=0.0, lr_min=None, tol=None, min_epochs=0, placebo_draws=None)


def _cfd(**kw):
    return NeuralCFD(**{**OLD, **kw})


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def make_data(n=48, d=3, seed=0, noise=0.7):
    return make_neural_data(n, d, seed, noise)


@pytest.fixture(scope="module")
def data():
    X, y = make_data()
    Xt = make_data(n=12, seed=1)[0]
    return X, y, Xt


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _ = data
    return _cfd(hidden=(4, 4), budget=4, epochs=EPOCHS, progress=False).fit(X, y)


# ---------------------------------------------------------------- determinism / batching
def test_fit_is_deterministic(data):
    X, y, Xt = data
    a = _cfd(hidden=(4, 4), budget=3, epochs=EPOCHS, progress=False, seed=3).fit(X, y)
    b = _cfd(hidden=(4, 4), budget=3, epochs=EPOCHS, progress=False, seed=3).fit(X, y)
    c = _cfd(hidden=(4, 4), budget=3, epochs=EPOCHS, progress=False, seed=4).fit(X, y)
    assert all(torch.equal(p, q) for p, q in zip(a.model_.params, b.model_.params))
    assert not all(torch.equal(p, q) for p, q in zip(a.model_.params, c.model_.params))
    ra, rb = a.search(Xt), b.search(Xt)
    np.testing.assert_array_equal(ra.found, rb.found)
    np.testing.assert_array_equal(ra.k, rb.k)
    np.testing.assert_array_equal(ra.order, rb.order)
    np.testing.assert_array_equal(ra.new_logit, rb.new_logit)   # NaN == NaN here


def test_retrain_without_flips_reproduces_original(fitted):
    m = fitted.retrain([])
    assert all(torch.equal(p, q) for p, q in zip(m.params, fitted.model_.params))


def test_batched_members_equal_sequential_retrains(data):
    X, y, _ = data
    Xt_, yt = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.float64)
    cfg = TrainConfig(epochs=EPOCHS)
    p0 = init_params(X.shape[1], (5, 3), seed=2)
    flips = [[], [0], [3, 7], [1, 2, 5, 11]]
    Y = yt.repeat(len(flips), 1)
    for b, f in enumerate(flips):
        Y[b, f] = 1 - Y[b, f]
    P = train_batched(Xt_, Y, p0, cfg)
    for b in range(len(flips)):
        ps = train_params(Xt_, Y[b], p0, cfg)
        diff = max(float((u - v).abs().max()) for u, v in zip(member(P, b), ps))
        assert diff < 1e-12, diff       # float64 round-off (seen ~1e-15), not necessarily bit for bit
    # members differ from each other (labels matter)
    assert float((P[0][0] - P[0][3]).abs().max()) > 1e-6


@pytest.mark.parametrize("stop_beta", [None, 0.97, 0.99])
def test_stop_rule_members_equal_autograd_runs(data, stop_beta):
    """With the gradient-norm stop, every hand-written ensemble member stops at the step a single autograd run
    (train_params) stops at, with the same averaged gradient norm and weights to round-off -- for Adam's first
    moment (stop_beta=None) and for the stop rule's own longer average (stop_beta=0.97, NeuralCFD's default)."""
    X, y, _ = data
    Xt_, yt = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.float64)
    cfg = TrainConfig(epochs=1500, lr_min=1e-4, weight_decay=3e-2, tol=3e-3, stop_beta=stop_beta)
    p0 = init_params(X.shape[1], (6, 5), seed=3)
    flips = [[], [0], [3, 7], [1, 2, 5, 11], list(range(0, 40, 3))]
    Y = yt.repeat(len(flips), 1)
    for b, f in enumerate(flips):
        Y[b, f] = 1 - Y[b, f]
    P, info = train_batched(Xt_, Y, p0, cfg, return_info=True)
    assert info["converged"].all() and len(np.unique(info["steps"])) > 1
    for b in range(len(flips)):
        ps, inf = train_params(Xt_, Y[b], p0, cfg, return_info=True)
        assert inf["steps"] == info["steps"][b] and inf["converged"]
        assert abs(inf["grad_norm"] - info["grad_norm"][b]) < 1e-12
        assert max(float((u - v).abs().max()) for u, v in zip(member(P, b), ps)) < 1e-12
    if stop_beta is not None:            # the rule is really another one: other stop steps than Adam's moment
        _, old = train_batched(Xt_, Y, p0, replace(cfg, stop_beta=None), return_info=True)
        assert not np.array_equal(old["steps"], info["steps"])


def test_fast_trainer_matches_autograd_ensemble_and_is_bitwise_deterministic(data):
    from cfdkit.neural.batched import train_batched_autograd
    from cfdkit.neural.fast import train_single
    X, y, _ = data
    Xt_, yt = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.float64)
    cfg = TrainConfig(epochs=EPOCHS)
    p0 = init_params(X.shape[1], (6, 5), seed=3)       # h1 != h2 exercises the layouts
    Y = yt.repeat(3, 1); Y[1, [0, 4]] = 1 - Y[1, [0, 4]]; Y[2, :9] = 1 - Y[2, :9]
    P = train_batched(Xt_, Y, p0, cfg)
    assert all(torch.equal(a, b) for a, b in zip(P, train_batched(Xt_, Y, p0, cfg)))   # same bits run to run
    Pa = train_batched_autograd(Xt_, Y, p0, cfg)
    assert [a.shape for a in P] == [a.shape for a in Pa]
    assert max(float((a - b).abs().max()) for a, b in zip(P, Pa)) < 1e-12
    for b in range(3):      # one member alone (B = 1) = the same member in the ensemble, to round-off
        ps = train_single(Xt_, Y[b], p0, cfg)
        assert max(float((u - v).abs().max()) for u, v in zip(member(P, b), ps)) < 1e-12


@pytest.mark.parametrize("stop_beta", [None, 0.97])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("per_member_start", [False, True])
def test_compaction_drops_converged_members_bit_for_bit(dtype, per_member_start, stop_beta, monkeypatch):
    """compact=True (converged members leave the batch) = compact=False (they stay with a zero step), bit for bit,
    with one shared start (search, random-label placebo) and one start per member (seed placebo), including the
    convergence record and members that never converge.  (Before the padded sigmoid buffer, the member moved to
    the last batch row differed in the last bit here: its last logits fell into the scalar tail of the sigmoid.)

    Compaction keeps each member's memory alignment (rows stay at the same residue modulo 8), so row sums split the
    same way; n = 161 (odd) makes rows misaligned.  It also needs each GEMM row to be summed the same way whatever
    the number of rows: MKL does so for the data sets' shapes (benchmarks/bench_compaction.py checks all seven),
    not in its small-matrix path (n = 48, d = 3 differs in the last bits), so the test uses d = 16."""
    from cfdkit.neural.fast import train_ensemble
    X, y = make_data(n=161, d=16, seed=5)
    Xt_, yt = torch.as_tensor(X, dtype=dtype), torch.as_tensor(y, dtype=dtype)
    cfg = TrainConfig(epochs=400, lr_min=1e-4, weight_decay=3e-2, tol=1e-2, check_every=1, dtype=dtype,
                      stop_beta=stop_beta)
    B = 40
    Y = yt.repeat(B, 1)
    for b in range(B):
        f = np.random.default_rng(b).choice(len(y), b % 7, replace=False)
        Y[b, f] = 1 - Y[b, f]
    if per_member_start:
        inits = [init_params(X.shape[1], (8, 4), seed=s, dtype=dtype) for s in range(B)]
        p0 = tuple(torch.stack([p[g] for p in inits]) for g in range(6))
    else:
        p0 = init_params(X.shape[1], (8, 4), seed=2, dtype=dtype)
    import cfdkit.neural.fast as fast
    sizes, real = [], fast._compact

    def spy(ens, *a):
        r = real(ens, *a)
        sizes.append((ens.B, r[0].B))
        return r
    monkeypatch.setattr(fast, "_compact", spy)
    Pc, ic = train_ensemble(Xt_, Y, p0, cfg, return_info=True, compact=True)
    assert any(b2 < b1 for b1, b2 in sizes), sizes  # the batch did shrink
    Pn, inn = train_ensemble(Xt_, Y, p0, cfg, return_info=True, compact=False)
    assert len(np.unique(ic["steps"])) > 1          # members stop at different steps
    assert all(torch.equal(a, b) for a, b in zip(Pc, Pn))
    np.testing.assert_array_equal(ic["steps"], inn["steps"])
    np.testing.assert_array_equal(ic["converged"], inn["converged"])
    np.testing.assert_array_equal(ic["grad_norm"], inn["grad_norm"])
    # a step cap that stops some members short: the non-converged ones are returned as they are, still equal
    short = TrainConfig(epochs=400, stop_after=int(np.median(ic["steps"])) + 1, lr_min=1e-4, weight_decay=3e-2, tol=1e-2,
                        check_every=1, dtype=dtype, stop_beta=stop_beta)
    Pc, ic = train_ensemble(Xt_, Y, p0, short, return_info=True, compact=True)
    Pn, inn = train_ensemble(Xt_, Y, p0, short, return_info=True, compact=False)
    assert ic["converged"].any() and not ic["converged"].all()
    assert all(torch.equal(a, b) for a, b in zip(Pc, Pn))
    np.testing.assert_array_equal(ic["steps"], inn["steps"])
    np.testing.assert_array_equal(ic["converged"], inn["converged"])


# ---------------------------------------------------------------- rankings
# "neurontune_activation" (registered by cfdkit.spurious when it is imported, so present or not depending on
# which tests ran first) needs the flagged neurons as an option: tests/test_spurious_bridge.py covers it
@pytest.mark.parametrize("name", sorted(n for n in RANKINGS if n != "neurontune_activation"))
def test_ranking_shape_and_finite(fitted, data, name):
    X, y, Xt = data
    S = fitted.rank(Xt[:5], name)
    assert S.shape == (5, len(X)) and S.dtype == np.float64
    assert np.isfinite(S).all()


def test_lr_surrogate_matches_least_squares_relabel_change(fitted, data):
    X, y, Xt = data
    S = lr_surrogate(fitted.model_, X, y, Xt, ridge=0.0)
    Xa = np.hstack([X, np.ones((len(X), 1))])
    Ta = np.hstack([Xt, np.ones((len(Xt), 1))])
    pred0 = Ta @ np.linalg.lstsq(Xa, y, rcond=None)[0]
    direction = np.where(fitted.model_.logit(Xt) > 0, -1.0, 1.0)
    for i in (0, 5, 17):
        y2 = y.copy(); y2[i] = 1 - y2[i]
        pred1 = Ta @ np.linalg.lstsq(Xa, y2, rcond=None)[0]
        np.testing.assert_allclose(S[:, i], (pred1 - pred0) * direction, atol=1e-9)
    # the top-scored flip pushes every test surrogate towards the other class
    top = S.argmax(1)
    assert (S[np.arange(len(Xt)), top] > 0).all()


def test_activation_pattern_identical_point_is_most_similar(fitted, data):
    X, y, _ = data
    S = activation_pattern(fitted.model_, X, y, X[:6])
    np.testing.assert_allclose(S[np.arange(6), np.arange(6)], 1.0)
    z1, z2 = fitted.model_.hidden_preactivations(X)
    B = np.hstack([z1, z2]) > 0
    np.testing.assert_allclose(S[2], 1 - (B[2][None] != B).mean(1))
    G = fitted.rank(X[:6], "activation_gradient")
    assert np.allclose(G[np.arange(6), np.arange(6)], 1.0) or np.all(G[np.arange(6), np.arange(6)] == 0)


def test_l2_and_random(fitted, data):
    X, y, Xt = data
    S = fitted.rank(Xt, "l2_distance")
    d = ((Xt[:, None, :] - X[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(S.argmax(1), d.argmin(1))
    r0 = RANKINGS["random"](fitted.model_, X, y, Xt, seed=0)
    np.testing.assert_array_equal(r0, RANKINGS["random"](fitted.model_, X, y, Xt, seed=0))
    assert not np.array_equal(r0, RANKINGS["random"](fitted.model_, X, y, Xt, seed=1))


def test_combined_is_rank_mean_and_respects_mask(fitted, data):
    X, y, Xt = data
    pred = fitted.model_.predict(Xt)
    mask = same_label_as_prediction(X, y, Xt, pred)
    S = fitted.rank(Xt, "combined", mask=mask)
    order, n_cand = masked_order(S, mask, budget=len(X))
    for t in range(len(Xt)):
        valid = order[t][order[t] >= 0]
        assert len(valid) == n_cand[t] and mask[t, valid].all()
    # the best combined point is never worse than last in both component rankings
    a = lr_surrogate(fitted.model_, X, y, Xt); b = activation_pattern(fitted.model_, X, y, Xt)
    best = order[:, 0]
    assert all(a[t, best[t]] >= np.min(a[t][mask[t]]) for t in range(len(Xt)))
    # a training point that is top in both components is top combined
    a2 = a.copy(); b2 = b.copy(); j = np.flatnonzero(mask[0])[0]
    a2[0, j] = a.max() + 1; b2[0, j] = b.max() + 1
    from cfdkit.neural.rankings import _rank_mean
    assert np.argmax(_rank_mean(a2, b2, mask)[0]) == j


def test_masked_order_pads(fitted):
    S = np.array([[3.0, 1.0, 2.0, 0.0]])
    mask = np.array([[True, False, True, False]])
    order, n = masked_order(S, mask, budget=3)
    np.testing.assert_array_equal(order, [[0, 2, -1]]); assert n[0] == 2


def test_influence_hessian_and_formula(data):
    X, y, Xt = data
    cfd = _cfd(hidden=(3, 3), budget=2, epochs=EPOCHS, progress=False).fit(X[:20], y[:20])
    params = cfd.model_.params
    Xs, ys = torch.as_tensor(X[:20]), torch.as_tensor(y[:20], dtype=torch.float64)
    H = training_hessian(params, Xs, ys, chunk=7)
    from cfdkit.neural.influence import flat_params
    from cfdkit.neural.model import forward
    theta, unflat = flat_params(params)
    J = lambda t: torch.nn.functional.binary_cross_entropy_with_logits(forward(unflat(t), Xs), ys)
    Href = torch.autograd.functional.hessian(J, theta)
    assert torch.allclose(H, Href, atol=1e-10)
    S, info = influence(cfd.model_, X[:20], y[:20], Xt[:2], damping=0.5, return_info=True)
    # independent: Δlogit = -∇f(x_t)ᵀ (H+λI)⁻¹ ∇θ[L(x_i,1-y_i) - L(x_i,y_i)] / n
    i = 4
    y_flip = ys.clone(); y_flip[i] = 1 - y_flip[i]
    Li = lambda t, yy: torch.nn.functional.binary_cross_entropy_with_logits(forward(unflat(t), Xs[i:i + 1]), yy[i:i + 1])
    gdiff = torch.autograd.functional.jacobian(lambda t: Li(t, y_flip) - Li(t, ys), theta) / 20
    gt = torch.autograd.functional.jacobian(lambda t: forward(unflat(t), torch.as_tensor(Xt[:1]))[0], theta)
    delta = float(-gt @ torch.linalg.solve(Href + 0.5 * torch.eye(len(theta), dtype=H.dtype), gdiff))
    direction = -1.0 if cfd.model_.logit(Xt[:1])[0] > 0 else 1.0
    assert abs(S[0, i] - direction * delta) < 1e-8 * max(1.0, abs(delta))
    assert info["damping"] == 0.5


# ---------------------------------------------------------------- Algorithm 1
def test_search_stops_at_first_flip_and_really_flips(fitted, data):
    X, y, Xt = data
    res = fitted.search(Xt, ranking="lr_surrogate")
    assert res.found.any(), "constructed data should give at least one CFD"
    for i in np.flatnonzero(res.found):
        flip = res.indices(i)
        assert len(flip) == res.k[i] >= 1
        new = fitted.retrain(flip).logit(Xt[i:i + 1])[0]
        assert (new > 0) != (res.logit[i] > 0)
        assert abs(new - res.new_logit[i]) < 1e-8
        if res.k[i] > 1:        # the previous prefix did not flip
            prev = fitted.retrain(flip[:-1]).logit(Xt[i:i + 1])[0]
            assert (prev > 0) == (res.logit[i] > 0)
        assert (y[flip] == (res.logit[i] > 0)).all()      # default ψ: same label as prediction
    assert np.isnan(res.new_logit[~res.found]).all() and (res.k[~res.found] == 0).all()
    seq = fitted.search(Xt[:6], ranking="lr_surrogate", sequential=True)
    np.testing.assert_array_equal(seq.found, res.found[:6])
    np.testing.assert_array_equal(seq.k, res.k[:6])
    from cfdkit.neural.search import search_sequential
    rows = np.flatnonzero(res.searched[:3])
    man = search_sequential(fitted.X_train_t_, fitted.y_train_t_, fitted.params0_, fitted.config_, fitted.as_tensor(Xt[:3]), res.order[:3],
                            rows, res.logit[:3], trainer="manual")
    np.testing.assert_array_equal(man[0], res.found[:3]); np.testing.assert_array_equal(man[1], res.k[:3])
    np.testing.assert_allclose(man[2], res.new_logit[:3], atol=1e-10)
    df = res.to_frame()
    assert len(df) == len(Xt) and {"found", "k", "flipped_indices", "logit", "new_logit"} <= set(df.columns)


def test_phi_filter_skips_rows(fitted, data):
    X, y, Xt = data
    cfd = _cfd(hidden=(4, 4), budget=2, epochs=EPOCHS, progress=False,
                    phi=lambda Xq, lg: np.arange(len(Xq)) % 2 == 0).fit(X, y)
    res = cfd.search(Xt)
    assert not res.found[1::2].any() and (res.order[1::2] == -1).all() and res.searched[::2].all()


# ---------------------------------------------------------------- ground truth
def test_ground_truth_recall_on_tiny_set():
    X, y = make_data(n=14, d=2, seed=5, noise=1.0)
    Xt = make_data(n=8, d=2, seed=6)[0]
    cfd = _cfd(hidden=(4, 4), budget=2, epochs=120, progress=False).fit(X, y)
    gt = exhaustive_cfd(cfd, Xt, max_k=2)
    assert gt.n_subsets == 14 + 91
    for t in np.flatnonzero(gt.found):      # witnesses really flip
        new = cfd.retrain(list(gt.witness[t])).logit(Xt[t:t + 1])[0]
        assert (new > 0) != (cfd.model_.logit(Xt[t:t + 1])[0] > 0)
        assert len(gt.witness[t]) == gt.k[t]
    tab = ranking_recall(cfd, Xt, gt, rankings=("combined", "random", "l2_distance"))
    assert (tab.found_not_in_truth == 0).all()      # truth is exhaustive
    assert ((tab.recall >= 0) & (tab.recall <= 1)).all()
    res = cfd.search(Xt, ranking="combined", budget=2)
    both = res.found & gt.found
    assert (res.k[both] >= gt.k[both]).all()        # truth is minimal


# ---------------------------------------------------------------- bad input
def test_bad_inputs(data):
    X, y, Xt = data
    mk = lambda **kw: _cfd(**{"hidden": (4, 4), "budget": 2, "epochs": 5, "progress": False, **kw})
    with pytest.raises(ValueError, match="y_train"):
        mk().fit(X, np.where(y == 1, 2, 0))
    with pytest.raises(ValueError, match="budget"):
        mk(budget=0).fit(X, y)
    with pytest.raises(ValueError, match="budget"):
        mk(budget=len(X) + 1).fit(X, y)
    Xn = X.copy(); Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mk().fit(Xn, y)
    Xi = X.copy(); Xi[1, 1] = np.inf
    with pytest.raises(ValueError, match="X_train"):
        mk().fit(Xi, y)
    with pytest.raises(ValueError, match="length"):
        mk().fit(X, y[:-1])
    with pytest.raises(ValueError, match="ranking"):
        mk(ranking="nope").fit(X, y)
    with pytest.raises(ValueError, match="hidden"):
        mk(hidden=(4, 4, 4)).fit(X, y)
    fitted = mk().fit(X, y)
    with pytest.raises(ValueError, match="X_test"):
        fitted.search(Xt[:, :2])
    Xtn = Xt.copy(); Xtn[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        fitted.search(Xtn)
    with pytest.raises(ValueError, match="budget"):
        fitted.search(Xt, budget=-1)
    with pytest.raises(ValueError, match="ranking"):
        fitted.search(Xt, ranking="unknown")
    with pytest.raises(TypeError, match="model"):
        activation_pattern("not a net", X, y, Xt)
    bad = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 1))
    with pytest.raises(TypeError, match="ReLU"):
        as_relu_net(bad)
    with pytest.raises(TypeError, match="model"):
        lr_surrogate(torch.nn.Linear(3, 1), X, y, Xt)
    with pytest.raises(RuntimeError, match="fit"):
        mk().search(Xt)
    with pytest.raises(TypeError, match="psi"):
        mk(psi="same").fit(X, y).search(Xt)


def test_sequential_module_roundtrip(fitted, data):
    X, _, _ = data
    mod = fitted.model_.to_module()
    with torch.no_grad():
        ref = mod(torch.as_tensor(X)).squeeze(-1).numpy()
    np.testing.assert_allclose(ref, fitted.model_.logit(X), atol=1e-12)
    np.testing.assert_allclose(as_relu_net(mod).logit(X), fitted.model_.logit(X), atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu(data):
    X, y, Xt = data
    cpu = _cfd(hidden=(4, 4), budget=3, epochs=EPOCHS, progress=False, device="cpu").fit(X, y)
    gpu = _cfd(hidden=(4, 4), budget=3, epochs=EPOCHS, progress=False, device="cuda").fit(X, y)
    np.testing.assert_allclose(cpu.model_.logit(Xt), gpu.model_.logit(Xt), atol=1e-8)
    rc, rg = cpu.search(Xt), gpu.search(Xt)
    np.testing.assert_array_equal(rc.k[np.abs(rc.logit) > 1e-6], rg.k[np.abs(rc.logit) > 1e-6])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_compaction_matches_no_compaction():
    """Compaction on CUDA (index tensors moved to the device): same convergence record, weights to round-off
    (GPU kernels' rounding by batch size was not checked)."""
    from cfdkit.neural.fast import train_ensemble
    X, y = make_data(n=161, d=16, seed=5)
    Xt_, yt = torch.as_tensor(X, device="cuda"), torch.as_tensor(y, dtype=torch.float64, device="cuda")
    Y = yt.repeat(40, 1)
    for b in range(40):
        f = torch.as_tensor(np.random.default_rng(b).choice(len(y), b % 7, replace=False), device="cuda")
        Y[b, f] = 1 - Y[b, f]
    cfg = TrainConfig(epochs=400, lr_min=1e-4, weight_decay=3e-2, tol=1e-2, check_every=1)
    p0 = init_params(X.shape[1], (8, 4), seed=2, device="cuda")
    Pc, ic = train_ensemble(Xt_, Y, p0, cfg, return_info=True, compact=True)
    Pn, inn = train_ensemble(Xt_, Y, p0, cfg, return_info=True, compact=False)
    assert all(p.device.type == "cuda" for p in Pc)
    np.testing.assert_array_equal(ic["converged"], inn["converged"])
    assert max(float((a - b).abs().max()) for a, b in zip(Pc, Pn)) < 1e-12


def test_rounds_schedule_and_cache_match_training_all_prefixes(data):
    X, y, Xt = data
    a = _cfd(hidden=(4, 4), budget=4, epochs=60, progress=False, schedule="all", cache=False).fit(X, y)
    b = _cfd(hidden=(4, 4), budget=4, epochs=60, progress=False).fit(X, y)     # rounds + cache
    for r in ("lr_surrogate", "l2_distance"):
        ra, rb = a.search(Xt, ranking=r), b.search(Xt, ranking=r)
        np.testing.assert_array_equal(ra.found, rb.found); np.testing.assert_array_equal(ra.k, rb.k)
        np.testing.assert_allclose(ra.new_logit, rb.new_logit, atol=1e-10)
        assert rb.info["n_trained"] <= ra.info["n_trained"]
    assert b.search(Xt, ranking="l2_distance").info["n_trained"] == 0      # all flip sets cached


# ---------------------------------------------------------------- scikit-learn contract (issue 9)
def test_init_stores_params_as_given_and_clone_works(data):
    from sklearn.base import clone
    X, y, Xt = data
    opts = {"ridge": 1e-4}
    kw = dict(hidden=[4, np.int64(3)], budget=np.int64(3), ranking="lr_surrogate", seed=np.int64(5), epochs=40,
              lr=np.float32(0.02), dtype=torch.float32, device="cpu", max_batch=7, progress=False,
              ranking_options=opts, num_threads=1, schedule="all", cache=False)
    cfd = _cfd(**kw)
    params = cfd.get_params()
    assert set(params) == set(kw) | {"phi", "psi"} | set(OLD) | {"min_specificity", "validation_fraction", "patience"} | {"model", "optimizer", "batch_size", "layer", "stop_beta", "network"}   # every __init__ argument
    assert all(params[k] is v for k, v in kw.items())       # stored as given: no validation, no conversion
    assert params["psi"] is same_label_as_prediction and params["phi"] is None
    assert not hasattr(cfd, "config") and not hasattr(cfd, "device_")
    twin = clone(cfd)                                        # raises if __init__ altered a parameter
    assert type(twin) is NeuralCFD and twin is not cfd
    assert twin.get_params()["ranking_options"] == opts and twin.get_params()["ranking_options"] is not opts
    a, b = cfd.fit(X, y), twin.fit(X, y)
    assert not hasattr(clone(a), "model_")                   # clone drops the fitted state
    assert all(torch.equal(p, q) for p, q in zip(a.model_.params, b.model_.params))
    ra, rb = a.search(Xt), b.search(Xt)
    np.testing.assert_array_equal(ra.k, rb.k); np.testing.assert_array_equal(ra.order, rb.order)
    assert a.hidden_ == (4, 3) and a.seed_ == 5 and a.config_ == TrainConfig(epochs=40, lr=float(np.float32(0.02)), dtype=torch.float32, stop_beta=0.97)
    assert a.device_ == torch.device("cpu") and a.n_features_in_ == X.shape[1]
    assert not hasattr(a, "feature_names_in_")                # numpy input has no names
    assert a.get_params()["hidden"] == [4, 3]                 # fit leaves the parameters as given


def test_get_params_set_params_round_trip_and_repr():
    cfd = NeuralCFD(hidden=(4, 4), budget=3, progress=False)
    assert repr(cfd) == "NeuralCFD(budget=3, hidden=(4, 4), progress=False)"   # scikit-learn's repr
    assert repr(NeuralCFD()) == "NeuralCFD()"
    p = cfd.get_params()
    other = _cfd().set_params(**p)
    assert other.get_params() == p
    assert other.set_params(budget=7, lr=0.5) is other and other.budget == 7 and other.lr == 0.5
    with pytest.raises(ValueError, match="budgett"):
        other.set_params(budgett=7)


def test_not_fitted_error_is_sklearns_and_a_runtime_error(data):
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted
    from cfdkit.core.validation import NotFittedError
    X, y, Xt = data
    cfd = _cfd(hidden=(3, 3), budget=2, epochs=5, progress=False)
    for call in (lambda: cfd.search(Xt), lambda: cfd.rank(Xt), lambda: cfd.retrain([0]),
                 lambda: exhaustive_cfd(cfd, Xt, max_k=1)):
        with pytest.raises(NotFittedError, match="fit") as info:
            call()
        assert isinstance(info.value, SkNotFitted) and isinstance(info.value, RuntimeError)
    with pytest.raises(SkNotFitted):
        check_is_fitted(cfd)
    check_is_fitted(cfd.fit(X, y))


@pytest.mark.parametrize("name, value, exc", [
    ("hidden", (4, 4, 4), ValueError), ("budget", 0, ValueError), ("seed", "3", TypeError),
    ("epochs", 0, ValueError), ("lr", -1.0, ValueError), ("dtype", torch.float16, ValueError),
    ("device", "meta", ValueError), ("device", 2.5, TypeError), ("ranking", "nope", ValueError),
    ("psi", "same", TypeError), ("max_batch", 0, ValueError), ("progress", "no", TypeError),
    ("ranking_options", [1], TypeError), ("num_threads", -1, ValueError), ("schedule", "x", ValueError),
    ("cache", None, TypeError),
])
def test_parameter_set_after_construction_is_validated_in_fit(data, name, value, exc):
    X, y, _ = data
    cfd = _cfd(hidden=(3, 3), budget=2, epochs=5, progress=False)
    cfd.set_params(**{name: value})                     # stored, not checked
    assert cfd.get_params()[name] is value
    with pytest.raises(exc, match=name):
        cfd.fit(X, y)
    assert not hasattr(cfd, "model_")


def test_search_params_set_after_fit_are_checked_and_used(fitted, data):
    from sklearn.base import clone
    X, y, Xt = data
    cfd = clone(fitted).fit(X, y)
    ref = cfd.search(Xt, budget=2)
    cfd.set_params(budget=2)
    res = cfd.search(Xt)
    assert res.budget == 2
    np.testing.assert_array_equal(res.k, ref.k); np.testing.assert_array_equal(res.order, ref.order)
    cfd.set_params(schedule="sometimes")
    with pytest.raises(ValueError, match="schedule"):
        cfd.search(Xt)


def test_feature_names_in_from_dataframe(data):
    pd = pytest.importorskip("pandas")
    X, y, Xt = data
    cols = ["a", "b", "c"]
    cfd = _cfd(hidden=(3, 3), budget=2, epochs=20, progress=False).fit(pd.DataFrame(X, columns=cols), y)
    assert list(cfd.feature_names_in_) == cols and cfd.n_features_in_ == 3
    ref = cfd.rank(pd.DataFrame(Xt, columns=cols), "lr_surrogate")
    shuffled = pd.DataFrame(Xt, columns=cols)[["c", "a", "b"]]
    np.testing.assert_array_equal(cfd.rank(shuffled, "lr_surrogate"), ref)    # reordered by name
    with pytest.raises(ValueError, match="X_test.*missing"):
        cfd.rank(pd.DataFrame(Xt, columns=["a", "b", "z"]))
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_array_equal(cfd.rank(Xt, "lr_surrogate"), ref)     # by position, with a warning
    cfd.fit(X, y)
    assert not hasattr(cfd, "feature_names_in_")                              # a refit without names drops them


@pytest.mark.parametrize("device, exc, word", [
    (True, TypeError, "device"), (2.5, TypeError, "device"), ([0], TypeError, "device"),
    ("mps", ValueError, "device='mps'"), ("meta", ValueError, "device='meta'"), ("xyz", ValueError, "device='xyz'"),
    (-1, ValueError, "device=-1"), (torch.cuda.device_count(), ValueError, "device="),
    (f"cuda:{torch.cuda.device_count()}", ValueError, "device='cuda"),
])
def test_one_resolve_device(device, exc, word):
    import cfdkit.neural.model as nm
    from cfdkit.core.arrays import resolve_device
    assert not hasattr(nm, "resolve_device")            # one resolver, in cfdkit.core.arrays
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(exc, match=word):
        resolve_device(device)
