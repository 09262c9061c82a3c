"""Any torch classifier for counterfactual datasets.

``NeuralCFD(model=module, epochs=..., lr=..., optimizer="adam", batch_size=None, seed=0)`` audits a
user's own ``torch.nn.Module``: one logit for two classes (output ``(n,)`` or ``(n, 1)``, trained on the
mean binary cross-entropy) or one logit per class (output ``(n, 2)``, trained on the mean softmax
cross-entropy).  The module's **current parameters are the initial weights of every retrain** (the
original network and each candidate dataset start from them), so a changed prediction is caused by the
labels alone.  The module itself is never modified: a private deep copy is trained.

Learning algorithm L (the built-in stable recipe of :class:`~cfdkit.neural.model.TrainConfig`, for any
module): objective = mean loss + ``weight_decay / 2 ||θ||²`` over the trainable parameters (those with
``requires_grad``; frozen parameters and buffers are constants); ``optimizer="adam"`` (same rule as
``torch.optim.Adam`` with L2 ``weight_decay``) or ``"sgd"`` (``torch.optim.SGD``, no momentum); the step
decays from ``lr`` to ``lr_min`` along a cosine.  ``batch_size=None`` is full batch (``epochs`` = steps);
otherwise every epoch visits the rows in a seeded random order (``torch.Generator`` seeded with ``seed``),
**the same order for every ensemble member**, in minibatches of ``batch_size`` (``epochs`` = passes).

Convergence (per member, never silently assumed): full-batch training stops, exactly like the built-in
recipe, once the 2-norm of a bias-corrected exponential average of the gradient of the regularized
objective (factor ``stop_beta``: 0.97 by default, about 33 steps; ``None``: Adam's own first moment, about
10 steps, or for SGD the gradient itself) is ``<= tol``, checked every 25 steps; minibatch training checks the **full-batch** gradient norm of the regularized objective at the end
of every epoch.  Members that never meet it are reported (``converged=False``).

Batched retraining (:func:`train_module_ensemble`): the ensemble's weights are stacked with
``torch.func.stack_module_state``, the forward pass is ``vmap(functional_call)`` over the member axis,
per-member gradients come from ``vmap(grad(loss))``, and the optimizer is implemented functionally over
the stacked parameters (elementwise the rule of ``torch.optim``).  Each member equals its own sequential
retrain (:func:`train_module_sequential`, ``torch.optim`` on a deep copy of the module) to floating-point
round-off: only the summation order inside the batched matmuls differs.

Evaluation rule: a row's logit is the module applied to that row **alone** (a batch of one row,
:func:`logit_of_row`) -- the prediction, every retrained member and every placebo member alike, all rows
at once under ``torch.func.vmap``.  ``fit`` probes the module (:func:`probe_rows`: a few training rows
alone, in the training batch and in the reversed training batch) and refuses, with a ``TypeError`` naming
the fix, modules whose output for a row depends on the rest of the batch (batch norm in training mode:
call ``model.eval()``; ``x - x.mean(0)``) and modules that cannot run under ``vmap`` (:func:`probe_vmap`:
Python branches on tensor values), so on an accepted module row-wise and batch evaluation agree up to
round-off.

Network internals for the rankings (``activation_pattern``, ``activation_gradient`` and the ``combined``
rankings) come from forward hooks on the module: ``layer=None`` takes the **input of the last**
``nn.Linear`` (the last hidden representation); ``layer="name"`` takes the **output** of that named
submodule (a name from ``module.named_modules()``); a list of names concatenates their outputs.  For the
built-in architecture as an ``nn.Sequential`` (``ReLUNet.to_module()``), ``layer=("0", "2")`` (both hidden
pre-activations) reproduces the built-in ``activation_pattern``, ``activation_gradient`` and ``combined``
exactly (tested).  On the default layer of a ReLU network the gradient of the logit is the last weight
vector, the same for every row, so ``activation_gradient`` there cannot tell rows apart: hook a
pre-activation (a ``Linear`` output) for it.  ``activation_pattern`` compares the on/off patterns
(feature > 0) there; ``activation_gradient`` the gradients of the logit with respect to those features.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from .model import MAX_STEPS, TrainConfig

__all__ = ["ModuleSpec", "ModuleNet", "OPTIMIZERS", "check_module", "module_config", "iter_batches",
           "train_module_ensemble", "train_module_sequential", "logit_of_row", "row_logits", "forward_members",
           "forward_members_at", "reinit_params"]

OPTIMIZERS = ("adam", "sgd")

#: Members per chunk of the torch.func ensemble when ``max_batch`` is None.
DEFAULT_CHUNK = 64

_SHAPE_FIX = ("make the module's last layer output one logit per row (shape (n,) or (n, 1), trained with "
              "binary cross-entropy) or one logit per class (shape (n, 2), trained with softmax cross-entropy)")


@dataclass
class ModuleSpec:
    """A user's module prepared for functional training.

    Attributes
    ----------
    module : torch.nn.Module
        A private deep copy of the user's module on the working device; its parameters are the
        initial weights (never modified).
    names : tuple of str
        Trainable parameter names (``requires_grad=True``), in ``named_parameters`` order.
    consts : dict name -> tensor
        Frozen parameters and buffers, shared (unbatched) by every member.
    n_outputs : int
        1 (one logit) or 2 (one logit per class).
    layer : str, tuple of str or None
        Hooked layer(s) for the internal rankings (None: input of the last ``nn.Linear``; names: the
        outputs of those submodules, concatenated).
    """

    module: torch.nn.Module
    names: tuple
    consts: dict
    n_outputs: int
    layer: str | None = None

    @property
    def params0(self) -> dict:
        """Initial trainable parameters, ``{name: tensor}`` (detached views of the module's)."""
        p = dict(self.module.named_parameters())
        return {k: p[k].detach() for k in self.names}

    @property
    def dtype(self):
        return self.params0[self.names[0]].dtype

    @property
    def device(self):
        return self.params0[self.names[0]].device

    def outputs(self, params: dict, X: torch.Tensor) -> torch.Tensor:
        """The module's raw output on ``X`` with ``params`` (one member, unbatched)."""
        return functional_call(self.module, {**self.consts, **params}, (X,))


# ----------------------------------------------------------------------------- loss / logit
def to_logit(out: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """Binary logit ``(n,)`` of the class-1 side: the output itself, or ``out[:, 1] - out[:, 0]``."""
    return out.reshape(out.shape[0]) if n_outputs == 1 else out[:, 1] - out[:, 0]


def loss_of(out: torch.Tensor, y: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """Mean BCE-with-logits (one output) or mean softmax cross-entropy (two outputs) for 0./1. labels."""
    if n_outputs == 1:
        return torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(out.shape[0]), y)
    lp = torch.log_softmax(out, dim=-1)
    return -(y * lp[:, 1] + (1.0 - y) * lp[:, 0]).mean()


# ----------------------------------------------------------------------------- validation
def check_module(model, X: torch.Tensor, device, layer=None) -> ModuleSpec:
    """Validate the user's module against the training inputs and prepare it (a deep copy).

    Raises
    ------
    TypeError
        ``model`` is not an ``nn.Module``; its output for a row depends on the other rows of the
        batch (batch norm in training mode, ``x - x.mean(0)``, a branch on the batch's values:
        :func:`probe_rows`); or it cannot run under ``torch.func.vmap`` (dropout in training mode,
        in-place buffer updates, data-dependent Python control flow: :func:`probe_vmap`).

    Notes
    -----
    Every forward pass here runs on private copies under ``torch.random.fork_rng``: the user's module
    (parameters, buffers, ``training`` flags, ``requires_grad``) and the global RNG state are unchanged.
    ValueError
        No (trainable) parameters, non-float or mixed-dtype parameters, an output shape that does
        not match the two classes of the labels, non-finite outputs, an unknown ``layer``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a classifier with one logit, or one per class), got "
                        f"{type(model).__name__}; or leave model=None for the built-in ReLU network (hidden=...).")
    params = list(model.named_parameters())
    if not params:
        raise ValueError(f"model has no parameters ({type(model).__name__}); NeuralCFD retrains the module on "
                         "altered labels, so pass a module with trainable weights (e.g. torch.nn.Linear(d, 1)).")
    names = tuple(k for k, p in params if p.requires_grad)
    if not names:
        raise ValueError("model has no trainable parameters (all have requires_grad=False); unfreeze the "
                         "weights that retraining may change (p.requires_grad_(True)).")
    dts = {p.dtype for _, p in params}
    if len(dts) != 1 or next(iter(dts)) not in (torch.float32, torch.float64):
        raise ValueError(f"model parameters must all be float32 or all float64, got {sorted(map(str, dts))}; "
                         "call model.double() (recommended) or model.float().")
    dtype = next(iter(dts))
    mod = copy.deepcopy(model).to(device=device)
    if layer is not None:
        known = dict(mod.named_modules())
        names_ = (layer,) if isinstance(layer, str) else tuple(layer) if isinstance(layer, (tuple, list)) else None
        if not names_ or any(not isinstance(nm, str) or nm not in known or nm == "" for nm in names_):
            raise ValueError(f"layer={layer!r} is not a submodule name of model (or a list of them); use one of "
                             f"{[k for k in known if k]} (its output is hooked), or layer=None for the input of "
                             "the last nn.Linear.")
        layer = names_[0] if len(names_) == 1 else names_
    pmap = dict(mod.named_parameters())
    consts = {k: p.detach() for k, p in pmap.items() if k not in names}
    consts.update({k: b for k, b in mod.named_buffers()})
    Xc = X.to(device=device, dtype=dtype)
    devs = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devs):       # the user's global RNG state is left as it was
        before = {kk: v.clone() for kk, v in mod.state_dict().items()}
        try:
            with torch.no_grad():
                out = copy.deepcopy(mod)(Xc)
        except Exception as e:  # the user's forward: report which call failed and why
            raise ValueError(f"model could not run on X_train of shape {tuple(X.shape)}: {type(e).__name__}: {e}; "
                             "check the module's input width (n_features) and dtype.") from None
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"model must return a tensor of logits, got {type(out).__name__}; {_SHAPE_FIX}.")
        n = X.shape[0]
        if out.dim() == 1 and out.shape[0] == n:
            k = 1
        elif out.dim() == 2 and out.shape[0] == n and out.shape[1] in (1, 2):
            k = int(out.shape[1])
        else:
            raise ValueError(f"model output has shape {tuple(out.shape)} for {n} training rows and 2 classes in "
                             f"y_train; {_SHAPE_FIX}.")
        if not bool(torch.isfinite(out).all()):
            raise ValueError("model returns non-finite outputs (NaN/inf) on X_train at its initial weights; check "
                             "the module and rescale X_train.")
        probe_rows(mod, Xc, out)
        spec = ModuleSpec(mod, names, consts, k, layer)
        probe_vmap(spec, Xc)
        if any(isinstance(b, torch.Tensor) and b.is_floating_point() for b in consts.values()):
            with torch.no_grad():
                mod(Xc)
            if any(not torch.equal(before[kk], v) for kk, v in mod.state_dict().items()):
                raise TypeError("model changes its own buffers in forward (e.g. batch norm in training mode), so "
                                "retrains would not be reproducible; call model.eval() first.")
    return spec


#: Rows the batch-dependence probe of :func:`probe_rows` compares (spread over the training set).
PROBE_ROWS = 8

_BATCH_FIX = ("NeuralCFD reads every prediction and every retrained network one row at a time (a row's logit is the "
              "module applied to that row alone), so a module whose output for a row depends on the other rows of "
              "the batch has no well-defined prediction to flip.  Call model.eval() if it has batch norm (running "
              "statistics instead of batch statistics), or remove batch statistics (x - x.mean(0), "
              "BatchNorm with track_running_stats=False, anything that mixes rows) and Python branches on the "
              "batch's values from forward")


def probe_rows(mod: torch.nn.Module, X: torch.Tensor, out: torch.Tensor, n_rows: int = PROBE_ROWS):
    """Refuse a module whose output for a row depends on the rest of the batch (``TypeError``).

    The same ``n_rows`` training rows (spread evenly over ``X``) are evaluated in three batch compositions:
    each row alone, in the full batch ``X`` (``out``, already computed) and in the full batch in reversed
    order; their outputs must agree to round-off (relative ``1e-9`` in float64, ``1e-4`` in float32).  Runs on
    a private copy of ``mod`` (a module that updates buffers in forward is refused later, not here).  Cost: one
    forward pass over ``X`` and ``n_rows`` one-row passes.
    """
    n = X.shape[0]
    idx = sorted({int(round(v)) for v in np.linspace(0, n - 1, min(n, n_rows))})
    probe = copy.deepcopy(mod)
    rtol = 1e-9 if X.dtype == torch.float64 else 1e-4
    try:
        with torch.no_grad():
            alone = torch.cat([probe(X[i:i + 1]).reshape(1, -1) for i in idx])
            rev = probe(X.flip(0)).reshape(n, -1).flip(0)
    except Exception as e:
        raise TypeError(f"model cannot evaluate a single row (a batch of one row): {type(e).__name__}: "
                        f"{str(e)[:200]}.  {_BATCH_FIX}.") from None
    full = out.reshape(n, -1)
    if alone.shape != full[idx].shape or rev.shape != full.shape:
        raise TypeError(f"model's output shape depends on the batch size ({tuple(alone.shape)} for {len(idx)} "
                        f"single rows, {tuple(full.shape)} for {n} rows).  {_BATCH_FIX}.")
    for name, other in (("in the whole training batch", full[idx]), ("in the training batch in reversed order",
                                                                      rev[idx])):
        gap = (alone - other).abs()
        scale = torch.clamp(torch.maximum(alone.abs(), other.abs()), min=1.0)
        if not bool(torch.isfinite(alone).all()) or bool((gap > rtol * scale).any()):
            j = int((gap / scale).amax(1).argmax())
            raise TypeError(f"model's output for a row depends on the other rows of the batch: training row "
                            f"{idx[j]} gives {alone[j].tolist()} alone but {other[j].tolist()} {name}.  "
                            f"{_BATCH_FIX}.")


def probe_vmap(spec: ModuleSpec, X: torch.Tensor):
    """Run the functions the ensemble calls under ``torch.func.vmap`` on a few rows and refuse the module with a
    ``TypeError`` naming the fix if one fails: per-member gradients (members and labels batched), each member on
    shared rows (row by row) and each member on its own row.  Catches data-dependent Python control flow
    (``if x.sum() > 0``, ``.item()``), dropout in training mode and in-place buffer updates."""
    k = spec.n_outputs
    try:
        P, _ = stack_module_state([spec.module, spec.module])
        P = {kk: P[kk].detach() for kk in spec.names}
        Xs = X[:3]
        Y = torch.stack([torch.zeros(Xs.shape[0], dtype=X.dtype, device=X.device),
                         torch.ones(Xs.shape[0], dtype=X.dtype, device=X.device)])
        vmap(grad(lambda p, y, x: loss_of(spec.outputs(p, x), y, k)), in_dims=(0, 0, None))(P, Y, Xs)
        forward_members(spec, P, Xs)
        forward_members_at(spec, P, Xs[:2].expand(2, -1) if Xs.shape[0] < 2 else Xs[:2])
        row_logits(spec, spec.params0, Xs)
    except Exception as e:
        raise TypeError(f"model cannot be trained and evaluated as a batched ensemble with torch.func.vmap "
                        f"({type(e).__name__}: {str(e)[:200]}).  Write branches on tensor values in forward "
                        "without Python control flow (torch.where(cond, a, b) instead of `if x.sum() > 0:`; no "
                        ".item(), float(tensor) or bool(tensor)), put dropout and batch norm in eval mode "
                        "(model.eval()), and avoid in-place buffer updates.") from None


def module_config(epochs, lr, weight_decay, lr_min, tol, min_epochs, dtype, n: int, batch_size,
                  stop_beta=None) -> tuple:
    """The :class:`TrainConfig` of the module recipe and the number of minibatches per epoch.

    Full batch: ``epochs`` steps, checks every 25 steps.  Minibatches of ``batch_size``: ``epochs``
    passes of ``nb = ceil(n / batch_size)`` steps (``epochs * nb`` steps in all, the cosine over all of
    them), ``min_epochs`` in passes, a check at the end of every pass.
    """
    if batch_size is None:
        return TrainConfig(epochs=epochs, lr=lr, dtype=dtype, weight_decay=weight_decay, lr_min=lr_min, tol=tol,
                           min_epochs=min_epochs, stop_beta=stop_beta), 1
    nb = -(-n // batch_size)
    cfg = TrainConfig(epochs=epochs, lr=lr, dtype=dtype, weight_decay=weight_decay, lr_min=lr_min, tol=tol,
                      min_epochs=min_epochs, stop_beta=stop_beta)   # validates the user's values
    if cfg.epochs * nb > MAX_STEPS:
        raise ValueError(f"epochs={cfg.epochs} passes of {nb} minibatches (batch_size={batch_size}, {n} rows) are "
                         f"{cfg.epochs * nb:,} steps, more than the {MAX_STEPS:,} a training run may take; lower "
                         "epochs or raise batch_size.")
    return replace(cfg, epochs=cfg.epochs * nb, min_epochs=cfg.min_epochs * nb, check_every=nb), nb


def iter_batches(n: int, batch_size, n_steps: int, seed: int, device="cpu"):
    """Row indices of each step: None (full batch) or the next minibatch of a seeded per-epoch shuffle.

    The order depends only on ``(n, batch_size, seed)``, so every ensemble member and the sequential
    reference see the same minibatches (a private ``torch.Generator``; the global RNG is untouched).
    """
    if batch_size is None:
        for _ in range(n_steps):
            yield None
        return
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    t = 0
    while t < n_steps:
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            if t >= n_steps:
                return
            yield perm[s:s + batch_size].to(device)
            t += 1


# ----------------------------------------------------------------------------- trainers
def _own_stop_average(cfg: TrainConfig, adam: bool) -> bool:
    """Whether full-batch training keeps the stop rule's own gradient average (``cfg.stop_beta``): always with
    SGD when it is set (SGD has no first moment), with Adam when it differs from ``beta1``."""
    return cfg.tol is not None and cfg.stop_beta is not None and (not adam or cfg.separate_stop_average)


def train_module_ensemble(spec: ModuleSpec, X: torch.Tensor, Y: torch.Tensor, cfg: TrainConfig,
                          optimizer: str = "adam", batch_size=None, seed: int = 0, params0: dict | None = None):
    """Train ``B = Y.shape[0]`` copies of the module at once with ``torch.func`` (one label vector each).

    Parameters
    ----------
    spec : ModuleSpec
    X : (n, d) tensor, shared inputs.
    Y : (B, n) tensor of 0./1. labels, one row per member.
    cfg : TrainConfig from :func:`module_config`.
    optimizer : ``"adam"`` or ``"sgd"``.
    batch_size : None (full batch) or int; seed : seeds the minibatch order (same for all members).
    params0 : optional stacked starts ``{name: (B, ...)}`` (e.g. other initializations); default: every
        member starts from the module's current parameters (``stack_module_state``).

    Returns
    -------
    params : dict name -> (B, ...) tensor, the trained trainable parameters.
    info : dict with ``steps`` (B,) int64, ``grad_norm`` (B,) float64, ``converged`` (B,) bool.
    """
    B = Y.shape[0]
    if params0 is None:
        P, _ = stack_module_state([spec.module] * B)
        P = {k: P[k].detach().clone() for k in spec.names}
    else:
        P = {k: params0[k].detach().clone() for k in spec.names}
    Y = Y.to(dtype=X.dtype)
    k_out, wd, full = spec.n_outputs, cfg.weight_decay, batch_size is None
    gfn = vmap(grad(lambda p, y, x: loss_of(spec.outputs(p, x), y, k_out)), in_dims=(0, 0, None))
    adam = optimizer == "adam"
    M = {k: torch.zeros_like(v) for k, v in P.items()} if adam else None
    V = {k: torch.zeros_like(v) for k, v in P.items()} if adam else None
    S = {k: torch.zeros_like(v) for k, v in P.items()} if full and _own_stop_average(cfg, adam) else None
    steps = np.full(B, cfg.n_steps, np.int64)
    gnorm = np.full(B, np.nan)
    conv = np.full(B, cfg.tol is None, bool)
    act = None                                    # {name: (B, 1, ...)} 1./0. once a member froze

    def norms(D):
        return torch.sqrt(sum((v.reshape(B, -1) ** 2).sum(1) for v in D.values())).double().cpu().numpy()

    def freeze(newly):
        nonlocal act
        if act is None:
            act = {k: torch.ones((B,) + (1,) * (v.dim() - 1), dtype=v.dtype, device=v.device) for k, v in P.items()}
        idx = torch.as_tensor(np.flatnonzero(newly), device=X.device)
        for a in act.values():
            a[idx] = 0.0

    for t, idx in enumerate(iter_batches(X.shape[0], batch_size, cfg.n_steps, seed, X.device), 1):
        G = gfn(P, Y, X) if idx is None else gfn(P, Y[:, idx], X[idx])
        if wd:
            G = {k: G[k].add(P[k], alpha=wd) for k in P}
        lr_t = cfg.lr_at(t)
        if adam:
            b1, b2 = cfg.beta1, cfg.beta2
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
            for k in P:
                M[k].lerp_(G[k], 1 - b1)
                V[k].mul_(b2).addcmul_(G[k], G[k], value=1 - b2)
        if S is not None:
            for k in P:
                S[k].lerp_(G[k], 1 - cfg.stop_beta)
        if full and cfg.checks_at(t):             # built-in rule: averaged gradient (Adam) / gradient (SGD)
            gn = (norms(S) / cfg.stop_bias(t) if S is not None else norms(M) / (1 - cfg.beta1 ** t) if adam
                  else norms(G))
            live = ~conv
            gnorm[live] = gn[live]; steps[live] = t - 1
            newly = live & (gn <= cfg.tol)
            if newly.any():
                conv |= newly; freeze(newly)
            if conv.all():
                break
        for k in P:
            if adam:
                denom = (V[k].sqrt() / math.sqrt(bc2)).add_(cfg.eps)
                P[k].addcdiv_(M[k] if act is None else M[k] * act[k], denom, value=-lr_t / bc1)
            else:
                P[k].add_(G[k] if act is None else G[k] * act[k], alpha=-lr_t)
        if not full and cfg.checks_at(t):          # minibatches: full-batch gradient at the end of an epoch
            Gf = gfn(P, Y, X)
            if wd:
                Gf = {k: Gf[k].add(P[k], alpha=wd) for k in P}
            gn = norms(Gf)
            live = ~conv
            gnorm[live] = gn[live]; steps[live] = t
            newly = live & (gn <= cfg.tol)
            if newly.any():
                conv |= newly; freeze(newly)
            if conv.all():
                break
    return P, {"steps": steps, "grad_norm": gnorm, "converged": conv}


def train_module_sequential(spec: ModuleSpec, X: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                            optimizer: str = "adam", batch_size=None, seed: int = 0):
    """Reference: one retrain with ``torch.optim`` on a deep copy of the module (same recipe and stop rule).

    Returns ``(params {name: tensor}, info {"steps", "grad_norm", "converged"})``.
    """
    mod = copy.deepcopy(spec.module)
    pm = dict(mod.named_parameters())
    ps = [pm[k] for k in spec.names]
    wd = cfg.weight_decay
    if optimizer == "adam":
        opt = torch.optim.Adam(ps, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=wd,
                               foreach=False)
    else:
        opt = torch.optim.SGD(ps, lr=cfg.lr, weight_decay=wd, foreach=False)
    y = y.to(X.dtype)
    info = {"steps": cfg.n_steps, "grad_norm": float("nan"), "converged": cfg.tol is None}
    full = batch_size is None
    S = [torch.zeros_like(p) for p in ps] if full and _own_stop_average(cfg, optimizer == "adam") else None

    def gnorm_of(gs):
        return math.sqrt(sum(float((g * g).sum()) for g in gs))

    for t, idx in enumerate(iter_batches(X.shape[0], batch_size, cfg.n_steps, seed, X.device), 1):
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(t)
        opt.zero_grad(set_to_none=True)
        Xb, yb = (X, y) if idx is None else (X[idx], y[idx])
        loss_of(mod(Xb), yb, spec.n_outputs).backward()
        if S is not None:
            for si, p in zip(S, ps):
                si.lerp_(p.grad.add(p.detach(), alpha=wd) if wd else p.grad, 1 - cfg.stop_beta)
        if full and cfg.checks_at(t):
            gs = [p.grad.add(p.detach(), alpha=wd) if wd else p.grad for p in ps]
            if S is not None:
                gn = gnorm_of(S) / cfg.stop_bias(t)
            elif optimizer == "adam":
                ms = [(opt.state[p]["exp_avg"] if p in opt.state and "exp_avg" in opt.state[p]
                       else torch.zeros_like(p)).lerp(g, 1 - cfg.beta1) for p, g in zip(ps, gs)]
                gn = gnorm_of(ms) / (1 - cfg.beta1 ** t)
            else:
                gn = gnorm_of(gs)
            info.update(grad_norm=gn, steps=t - 1)
            if gn <= cfg.tol:
                info["converged"] = True
                break
        opt.step()
        if not full and cfg.checks_at(t):
            gs = torch.autograd.grad(loss_of(mod(X), y, spec.n_outputs), ps)
            gn = gnorm_of([g.add(p.detach(), alpha=wd) if wd else g for g, p in zip(gs, ps)])
            info.update(grad_norm=gn, steps=t)
            if gn <= cfg.tol:
                info["converged"] = True
                break
    return {k: pm[k].detach().clone() for k in spec.names}, info


def logit_of_row(spec: ModuleSpec, params: dict, x: torch.Tensor) -> torch.Tensor:
    """**The evaluation rule**: the binary logit of one input row ``x (d,)`` is the module applied to that row
    alone (a batch of one row).  The prediction, every retrained member and every placebo member is read this
    way (:func:`row_logits`, :func:`forward_members`, :func:`forward_members_at`), all rows at once with
    ``torch.func.vmap``; :func:`check_module` refuses modules whose output for a row depends on the other rows
    of a batch, so on the modules it accepts this equals a batch evaluation up to round-off."""
    return to_logit(spec.outputs(params, x[None]), spec.n_outputs)[0]


@torch.no_grad()
def row_logits(spec: ModuleSpec, params: dict, X: torch.Tensor) -> torch.Tensor:
    """Binary logits ``(n,)`` of one member, each row alone (:func:`logit_of_row`)."""
    return vmap(lambda x: logit_of_row(spec, params, x))(X)


@torch.no_grad()
def forward_members(spec: ModuleSpec, P: dict, X: torch.Tensor) -> torch.Tensor:
    """Binary logits ``(B, n)`` of every member of stacked ``P`` on shared inputs ``X (n, d)``, each row alone."""
    return vmap(lambda p: vmap(lambda x: logit_of_row(spec, p, x))(X))(P)


@torch.no_grad()
def forward_members_at(spec: ModuleSpec, P: dict, Xb: torch.Tensor) -> torch.Tensor:
    """Logit of member ``b`` at its own input ``Xb[b]`` (alone): ``(B, d)`` → ``(B,)``."""
    return vmap(lambda p, x: logit_of_row(spec, p, x))(P, Xb)


# ----------------------------------------------------------------------------- the trained network
class ModuleNet:
    """A trained user module: binary logits, predictions and hooked internals for the rankings.

    Parameters
    ----------
    spec : ModuleSpec
    params : dict name -> tensor, trained trainable parameters.
    """

    is_module_net = True

    def __init__(self, spec: ModuleSpec, params: dict):
        self.spec, self.params = spec, params

    @property
    def device(self):
        return self.spec.device

    @property
    def dtype(self):
        return self.spec.dtype

    def _t(self, X) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X, dtype=np.float64)).to(self.device, self.dtype)

    @torch.no_grad()
    def logit(self, X) -> np.ndarray:
        """Binary logits ``(n,)`` float64 (class 1 where > 0), each row evaluated alone (:func:`logit_of_row`,
        the rule of the prediction and of every retrained network)."""
        Xt = self._t(X)
        if Xt.shape[0] == 0:
            return np.zeros(0)
        return row_logits(self.spec, self.params, Xt).double().cpu().numpy()

    def logit_fn(self):
        """``f(params_tuple, X) -> (n,)`` binary logits, the trainable parameters in ``spec.names`` order
        (for :func:`cfdkit.neural.influence.influence`; two logits: ``o1 - o0``, whose BCE is the 2-class CE)."""
        spec = self.spec
        return lambda ps, X: to_logit(spec.outputs(dict(zip(spec.names, ps)), X), spec.n_outputs)

    def predict(self, X) -> np.ndarray:
        """Classes ``(n,)`` int64."""
        return (self.logit(X) > 0).astype(np.int64)

    @property
    def module(self) -> torch.nn.Module:
        """A deep copy of the user's module carrying the trained weights."""
        mod = copy.deepcopy(self.spec.module)
        with torch.no_grad():
            pm = dict(mod.named_parameters())
            for k, v in self.params.items():
                pm[k].copy_(v)
        return mod

    def _hooked(self, X: torch.Tensor, need_grad: bool):
        """Forward with a hook on the chosen layer → ``(features (n, h), logit (n,))``."""
        mod, layer = self.spec.module, self.spec.layer
        box, hooks = {}, []
        if layer is None:
            lins = [m for m in mod.modules() if isinstance(m, torch.nn.Linear)]
            if not lins:
                raise ValueError("the internal rankings hook the input of the last nn.Linear, but model has no "
                                 "nn.Linear; pass layer='<submodule name>' to NeuralCFD to hook that layer's output.")
            hooks.append(lins[-1].register_forward_pre_hook(lambda m, inp: box.__setitem__(0, inp[0])))
            names = (None,)
        else:
            names = (layer,) if isinstance(layer, str) else tuple(layer)
            mods = dict(mod.named_modules())
            for j, nm in enumerate(names):
                hooks.append(mods[nm].register_forward_hook(lambda m, inp, out, j=j: box.__setitem__(j, out)))
        try:
            params = {k: v.detach().requires_grad_(need_grad) for k, v in self.params.items()}
            with torch.set_grad_enabled(need_grad):
                lg = to_logit(self.spec.outputs(params, X), self.spec.n_outputs)
        finally:
            for h in hooks:
                h.remove()
        feats = [box.get(j) for j in range(len(names))]
        if any(not isinstance(f, torch.Tensor) or f.shape[:1] != X.shape[:1] for f in feats):
            raise ValueError(f"the hooked layer ({layer or 'input of the last nn.Linear'}) did not yield one feature "
                             "row per input; choose another layer= (a submodule whose output is (n, ...)).")
        return feats, lg

    def layer_features(self, X) -> np.ndarray:
        """Features of the hooked layer ``(n, h)`` float64."""
        fs, _ = self._hooked(self._t(X), False)
        return np.hstack([f.detach().reshape(f.shape[0], -1).double().cpu().numpy() for f in fs])

    def activation_codes(self, X) -> np.ndarray:
        """On/off pattern ``(n, h)`` bool of the hooked layer (feature > 0)."""
        return self.layer_features(X) > 0

    def activation_gradients(self, X) -> np.ndarray:
        """``∂ logit / ∂ features`` of the hooked layer, ``(n, h)`` float64 (rows do not interact)."""
        fs, lg = self._hooked(self._t(X), True)
        live = [f for f in fs if f.requires_grad]
        gs = iter(torch.autograd.grad(lg.sum(), live, allow_unused=True) if live else ())
        out = []
        for f in fs:
            g = next(gs) if f.requires_grad else None
            out.append(np.zeros((f.shape[0], int(np.prod(f.shape[1:])))) if g is None
                       else g.reshape(g.shape[0], -1).double().cpu().numpy())
        return np.hstack(out)

    def __repr__(self):
        return f"ModuleNet({type(self.spec.module).__name__}, outputs={self.spec.n_outputs}, layer={self.spec.layer!r})"


# ----------------------------------------------------------------------------- other initializations
def reinit_params(spec: ModuleSpec, seed: int) -> dict:
    """Fresh initial weights: every submodule's ``reset_parameters()`` under ``torch.manual_seed(seed)``
    (the global RNG state is restored).  Raises ValueError when the module has no ``reset_parameters``."""
    mod = copy.deepcopy(spec.module)
    resettable = [m for m in mod.modules() if callable(getattr(m, "reset_parameters", None))]
    if not resettable:
        raise ValueError("the seed placebo re-initializes the module with reset_parameters(), which none of its "
                         "submodules has; use the random-label placebo only (it does not need another init).")
    devs = [spec.device] if spec.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devs):
        torch.manual_seed(int(seed))
        for m in resettable:
            m.reset_parameters()
    pm = dict(mod.named_parameters())
    return {k: pm[k].detach() for k in spec.names}
