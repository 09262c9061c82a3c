"""Bad-input suite for cfdkit.neural: a user's own torch module, numeric parameters, untouched user objects.

Every case ends in a correct answer (asserted) or a ``ValueError`` / ``TypeError`` whose message names the
argument and the fix -- never a raw exception from torch or Python internals, never a silently wrong answer,
never a hang (each case runs under a time limit).  ``test_case_counts`` prints tried / clear error / correct
answer.  The cases marked ``[regression]`` in their id failed on the code before this suite (no error, a raw
error, or an accepted value that makes a loop run for days); ``[new]`` cases exercise a parameter or behaviour
added with them (the stop rule's ``stop_beta``, integral floats for integer counts); the others are guards.
"""

from __future__ import annotations

import copy
import re
import signal
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from cfdkit.neural import NeuralCFD, TrainConfig, as_relu_net, exhaustive_cfd, ranking_recall
from cfdkit.neural.module import module_config
from cfdkit.neural.placebo import check_n_draws

# ------------------------------------------------------------------ shared inputs
_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 3))
Y = (X[:, 0] + 0.4 * _rng.normal(size=40) > 0).astype(int)
XT = _rng.normal(size=(6, 3))
NAN, INF = float("nan"), float("inf")

#: Seconds any one case may take (a case that runs longer is a hang).
LIMIT = 60


@contextmanager
def time_limit(seconds):
    """Fail (as a hang) when the body runs longer than ``seconds`` (SIGALRM; the trainers are Python loops)."""
    def on_alarm(*_):
        raise TimeoutError(f"hang: still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _cfd(**kw):
    return NeuralCFD(**{"hidden": (3, 3), "budget": 2, "epochs": 5, "tol": None, "weight_decay": 0.0, "lr_min": None,
                        "progress": False, "placebo_draws": None, **kw})


def _mcfd(model, **kw):
    return _cfd(**{"model": model, "hidden": (8, 8), **kw})


# ------------------------------------------------------------------ modules
def _seq(*layers):
    torch.manual_seed(0)
    return torch.nn.Sequential(*layers).double()


class Centered(torch.nn.Module):
    """Output of a row depends on the batch: x - x.mean(0)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(3, 6), torch.nn.Linear(6, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x - x.mean(0))))


class BranchOnBatch(torch.nn.Module):
    """A Python branch on the batch's values (the sign of a column sum)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(3, 1)

    def forward(self, x):
        if x[:, 0].sum() > 0:
            return self.a(x)
        return -self.a(x)


class BranchOnValues(torch.nn.Module):
    """Data-dependent control flow that never fires on the data (same output alone and in a batch), but cannot
    run under torch.func.vmap over rows."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(3, 1)

    def forward(self, x):
        if x.abs().max() > 1e6:
            x = x / 1e6
        return self.a(x)


class ItemCall(torch.nn.Module):
    """``.item()`` inside forward."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.a(x) * (1.0 + 0.0 * x.norm().item())


def _bn(track=True, train=True):
    m = _seq(torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6, track_running_stats=track), torch.nn.ReLU(),
             torch.nn.Linear(6, 1))
    return m.train(train)


def _layernorm():
    return _seq(torch.nn.Linear(3, 6), torch.nn.LayerNorm(6), torch.nn.ReLU(), torch.nn.Linear(6, 1))


CASES: list = []


def err(case_id, fn, exc, word):
    CASES.append(pytest.param(fn, ("error", exc, word), id=case_id))


def ok(case_id, fn, check):
    CASES.append(pytest.param(fn, ("ok", check, None), id=case_id))


# ---- batch-dependent outputs and data-dependent control flow: refused in fit, with the fix
err("module-centered-x-minus-mean [regression]", lambda: _mcfd(Centered().double()).fit(X, Y), TypeError,
    r"depends on the other rows.*model\.eval\(\)")
err("module-centered-float32 [regression]", lambda: _mcfd(Centered().float()).fit(X, Y), TypeError,
    "depends on the other rows")
err("module-batchnorm-no-running-stats-train [regression]", lambda: _mcfd(_bn(track=False)).fit(X, Y), TypeError,
    r"model\.eval\(\)")
err("module-batchnorm-train-mode", lambda: _mcfd(_bn()).fit(X, Y), TypeError, r"model\.eval\(\)")
err("module-branch-on-batch-values [regression]", lambda: _mcfd(BranchOnBatch().double()).fit(X, Y), TypeError,
    "other rows|branch")
err("module-branch-on-values-vmap [regression]", lambda: _mcfd(BranchOnValues().double()).fit(X, Y), TypeError,
    r"control flow|torch\.where")
err("module-item-in-forward [regression]", lambda: _mcfd(ItemCall().double()).fit(X, Y), TypeError,
    r"\.item\(\)|torch\.where")
err("module-branch-minibatch [regression]", lambda: _mcfd(BranchOnValues().double(), batch_size=8).fit(X, Y),
    TypeError, "torch.where")
ok("module-batchnorm-eval-accepted", lambda: _mcfd(_bn(train=False)).fit(X, Y).search(XT),
   lambda r: r.found.shape == (len(XT),))
ok("module-layernorm-rowwise-accepted", lambda: _mcfd(_layernorm()).fit(X, Y).search(XT),
   lambda r: r.found.shape == (len(XT),))


def _flips_hold_rowwise(model, **kw):
    """Every reported CFD flips when the retrained module is evaluated on that row alone, and the reported
    prediction is the fitted module on that row alone (one evaluation rule)."""
    cfd = _mcfd(model, budget=6, epochs=60, lr=5e-2, **kw).fit(X, Y)
    res = cfd.search(XT)
    mod0 = cfd.model_.module
    with torch.no_grad():
        alone0 = np.array([float(mod0(torch.as_tensor(XT[t:t + 1])).reshape(-1)[0]) for t in range(len(XT))])
    bad = []
    for t in np.flatnonzero(res.found):
        net = cfd.retrain(res.order[t, :res.k[t]]).module
        with torch.no_grad():
            lg = float(net(torch.as_tensor(XT[t:t + 1])).reshape(-1)[0])
        if (lg > 0) == (alone0[t] > 0) or abs(lg - res.new_logit[t]) > 1e-8:
            bad.append(t)
    return res.found.sum(), bad, float(np.abs(alone0 - res.logit).max())


ok("module-cfds-flip-rowwise", lambda: _flips_hold_rowwise(_seq(torch.nn.Linear(3, 6), torch.nn.ReLU(),
                                                                  torch.nn.Linear(6, 1))),
   lambda r: r[0] >= 1 and r[1] == [] and r[2] < 1e-12)
ok("module-cfds-flip-rowwise-bn-eval", lambda: _flips_hold_rowwise(_bn(train=False)),
   lambda r: r[0] >= 1 and r[1] == [] and r[2] < 1e-12)

# ---- numeric parameters: finite and in range (NeuralCFD and TrainConfig), refused with the argument's name
_NUMERIC = [
    ("epochs", 10**12), ("epochs", 2_000_000), ("lr", 1e6), ("lr", 11.0), ("weight_decay", 1e300),
    ("weight_decay", INF), ("tol", 1e300), ("stop_beta", NAN), ("stop_beta", INF), ("stop_beta", 1.0),
    ("stop_beta", 0.0), ("stop_beta", -0.5), ("stop_beta", 1.5), ("stop_beta", "0.99"), ("stop_beta", True),
    ("lr_min", NAN), ("lr_min", -1e-4), ("tol", NAN), ("tol", -1.0), ("min_epochs", NAN), ("min_epochs", -1),
]
for k, v in _NUMERIC:
    reg = (" [new]" if k == "stop_beta" else " [regression]" if (k, v) in (("epochs", 10**12), ("epochs", 2_000_000),
           ("lr", 1e6), ("lr", 11.0), ("weight_decay", 1e300), ("tol", 1e300)) else "")
    err(f"neuralcfd-{k}={v!r}{reg}", lambda k=k, v=v: _cfd(**{k: v}).fit(X, Y), ValueError, k)
    err(f"trainconfig-{k}={v!r}{reg}", lambda k=k, v=v: TrainConfig(**{k: v}), ValueError, k)
for k, v in [("epochs", 10**12), ("lr", 1e6), ("stop_beta", NAN), ("stop_beta", 1.0)]:
    err(f"module-{k}={v!r} {'[new]' if k == 'stop_beta' else '[regression]'}", lambda k=k, v=v: _mcfd(_seq(torch.nn.Linear(3, 1)), **{k: v}).fit(X, Y),
        ValueError, k)
err("module-minibatch-steps-over-cap [regression]",
    lambda: module_config(600_000, 1e-2, 0.0, None, None, 0, torch.float64, 24, 1), ValueError, "epochs")
err("hidden-too-wide [regression]", lambda: _cfd(hidden=(70_000, 1)).fit(X, Y), ValueError, "hidden")
err("num_threads-huge [regression]", lambda: _cfd(num_threads=10**6)._search_params(), ValueError, "num_threads")
err("num_threads-nan", lambda: _cfd(num_threads=NAN)._search_params(), ValueError, "num_threads")
err("placebo_draws-huge [regression]", lambda: _cfd(placebo_draws=10**9).fit(X, Y), ValueError, "placebo_draws")
err("n_draws-huge [regression]", lambda: check_n_draws(10**9), ValueError, "n_draws")
for v in (NAN, -1.0, INF, "big"):
    err(f"ranking-ridge={v!r} [regression]",
        lambda v=v: _cfd(ranking="lr_surrogate", ranking_options={"ridge": v}).fit(X, Y).search(XT), ValueError,
        "ridge")
    err(f"influence-damping={v!r}{'' if v == -1.0 else ' [regression]'}",
        lambda v=v: _cfd(ranking="influence", ranking_options={"damping": v}).fit(X, Y).search(XT), ValueError,
        "damping")
for k, v in [("validation_fraction", NAN), ("validation_fraction", INF), ("min_specificity", NAN),
             ("min_specificity", INF), ("lr", NAN), ("lr", INF), ("lr", -INF), ("weight_decay", NAN),
             ("patience", NAN), ("budget", NAN), ("budget", INF), ("seed", NAN), ("max_batch", INF),
             ("placebo_draws", NAN)]:
    err(f"neuralcfd-{k}={v!r}", lambda k=k, v=v: _cfd(**{k: v}).fit(X, Y), (ValueError, TypeError), k)
err("not-converged-names-the-fixes [new]", lambda: _cfd(epochs=25, tol=1e-9, lr_min=1e-4).fit(X, Y), ValueError,
    r"did not converge.*raise epochs.*stop_beta")
err("module-not-converged-names-the-fixes [new]",
    lambda: _mcfd(_seq(torch.nn.Linear(3, 1)), epochs=25, tol=1e-9).fit(X, Y), ValueError,
    r"did not converge.*raise epochs.*stop_beta")
ok("epochs-integral-float-accepted [new]", lambda: _cfd(epochs=5.0).fit(X, Y),
   lambda m: m.config_.epochs == 5 and isinstance(m.config_.epochs, int))
ok("stop_beta-none-is-adam-moment [new]", lambda: (NeuralCFD(hidden=(3, 3), stop_beta=None, progress=False).fit(X, Y),
                                             NeuralCFD(hidden=(3, 3), stop_beta=0.9, progress=False).fit(X, Y)),
   lambda ab: all(torch.equal(p, q) for p, q in zip(ab[0].model_.params, ab[1].model_.params)))


@pytest.mark.parametrize("fn, expect", CASES)
def test_bad_input(fn, expect):
    kind, a, b = expect
    with time_limit(LIMIT):
        if kind == "ok":
            out = fn()
            assert a(out), f"wrong answer: {out!r}"
            return
        exc, word = a, b
        with pytest.raises(Exception) as info:
            fn()
    assert isinstance(info.value, exc), f"{type(info.value).__name__} instead of {exc}: {info.value}"
    assert re.search(word, str(info.value), flags=re.I | re.S), f"message does not name {word!r}: {info.value}"


# ------------------------------------------------------------------ the user's objects are never changed
class Probe(torch.nn.Module):
    """Mixed train/eval submodules, a frozen parameter, a float buffer used in forward."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.a, self.bn, self.b = torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.Linear(6, 1)
        self.register_buffer("scale", torch.tensor(0.7))
        self.bn.eval()                                  # parent in train mode, batch norm in eval mode
        self.b.bias.requires_grad_(False)

    def forward(self, x):
        return self.b(torch.relu(self.bn(self.a(x)))) * self.scale


def _state(m: torch.nn.Module):
    return {"tensors": {k: v.detach().clone() for k, v in m.state_dict().items()},
            "training": [(n, s.training) for n, s in m.named_modules()],
            "requires_grad": [(n, p.requires_grad) for n, p in m.named_parameters()],
            "grad": [(n, p.grad is None) for n, p in m.named_parameters()],
            "ids": [(n, id(p)) for n, p in m.named_parameters()],
            "dtype": [(n, p.dtype, p.device) for n, p in m.named_parameters()],
            "torch_rng": torch.get_rng_state().clone(), "numpy_rng": np.random.get_state()[1].copy(),
            "threads": torch.get_num_threads(), "grad_mode": torch.is_grad_enabled()}


def _same(a, b):
    assert a["tensors"].keys() == b["tensors"].keys()
    for k in a["tensors"]:
        assert torch.equal(a["tensors"][k], b["tensors"][k]), f"{k} changed"
    for key in ("training", "requires_grad", "grad", "ids", "dtype", "threads", "grad_mode"):
        assert a[key] == b[key], key
    assert torch.equal(a["torch_rng"], b["torch_rng"]), "global torch RNG state changed"
    assert np.array_equal(a["numpy_rng"], b["numpy_rng"]), "global numpy RNG state changed"


def _probe_model():
    m = Probe().double().train()
    m.bn.eval()                                         # .train() above set every submodule's flag
    return m


def _fitted_probe(model):
    return _mcfd(model, budget=3, epochs=20, placebo_draws=3, num_threads=1).fit(X, Y)


ENTRY_POINTS = {
    "fit": lambda m: _fitted_probe(m),
    "fit-minibatch": lambda m: _mcfd(m, epochs=3, batch_size=8).fit(X, Y),
    "search": lambda m: _fitted_probe(m).search(XT),
    "search-sequential": lambda m: _fitted_probe(m).search(XT[:2], sequential=True),
    "placebo": lambda m: _fitted_probe(m).placebo(XT, n_draws=2),
    "retrain": lambda m: _fitted_probe(m).retrain([0, 5]).module,
    "rank-combined": lambda m: _fitted_probe(m).rank(XT, "combined"),
    "rank-activation_gradient": lambda m: _fitted_probe(m).rank(XT, "activation_gradient"),
    "rank-influence": lambda m: _fitted_probe(m).rank(XT, "influence"),
    "rank-random": lambda m: _fitted_probe(m).rank(XT, "random"),
    "exhaustive_cfd": lambda m: exhaustive_cfd(_fitted_probe(m), XT[:2], max_k=1, candidates=[0, 1, 2]),
    "ranking_recall": lambda m: ranking_recall(_fitted_probe(m), XT[:2],
                                               exhaustive_cfd(_fitted_probe(m), XT[:2], max_k=1, candidates=[0, 1]),
                                               "random"),
    "model_.module": lambda m: _fitted_probe(m).model_.module,
    "refused-module": lambda m: pytest.raises(TypeError, _mcfd(m).fit, X, Y),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_user_module_and_global_state_unchanged(entry):
    """Each entry point of cfdkit.neural that takes a user's module leaves it (parameters, buffers, train/eval
    flags, requires_grad, .grad) and the global torch / numpy RNG state, thread count and grad mode as they were."""
    if entry == "refused-module":
        model = Centered().double().train()
        model.a.weight.requires_grad_(False)
    else:
        model = _probe_model()
    np.random.seed(11)
    torch.manual_seed(12)
    before = _state(model)
    with time_limit(LIMIT):
        ENTRY_POINTS[entry](model)
    _same(before, _state(model))


def test_as_relu_net_leaves_user_sequential_unchanged():
    seq = _seq(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    seq[2].train(False)
    before = _state(seq)
    net = as_relu_net(seq)
    _same(before, _state(seq))
    with torch.no_grad():
        net.params[0].add_(1.0)                          # the returned network does not share storage
    _same(before, _state(seq))


def test_fitting_twice_from_one_module_gives_the_same_bits():
    """Nothing of the first fit leaks into the module: a second fit from it gives the same bits."""
    model = _probe_model()
    a = _mcfd(model, epochs=30).fit(X, Y)
    b = _mcfd(copy.deepcopy(model), epochs=30).fit(X, Y)
    c = _mcfd(model, epochs=30).fit(X, Y)
    for k in a.model_.params:
        assert torch.equal(a.model_.params[k], b.model_.params[k]) and torch.equal(a.model_.params[k],
                                                                                      c.model_.params[k])


def test_case_counts(capsys):
    n_err = sum(1 for p in CASES if p.values[1][0] == "error")
    n_ok = sum(1 for p in CASES if p.values[1][0] == "ok")
    n_reg = sum(1 for p in CASES if "[regression]" in p.id) + 1       # + the refused-module untouched test
    assert n_err + n_ok == len(CASES) >= 80
    with capsys.disabled():
        print(f"\nneural bad-input suite: tried {len(CASES)} (+{len(ENTRY_POINTS) + 2} untouched-object tests), "
              f"clear error {n_err}, correct answer {n_ok}, silent wrong 0, hang 0 ({n_reg} regression cases)")
