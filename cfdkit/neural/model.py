"""Two-hidden-layer ReLU networks with one logit, and their deterministic training.

The paper trains "ReLU networks with 2x4 to 2x32 hidden neurons" in "PyTorch using Adam
optimizer" (Kim, Mitchell, Wang, NLDL 2026, slide 13).  Everything else here is a cfdkit
choice, because the paper's hyper-parameters are not public:

* **Full-batch Adam** (lr ``1e-2``, betas ``(0.9, 0.999)``, eps ``1e-8``, no weight decay)
  on the mean binary cross-entropy with logits, for ``epochs`` steps (default 300).  With
  full-batch training there is no batch order, so a seed fixes the whole run.
* **float64** by default (``dtype=torch.float32`` is accepted and faster, but flips whose
  logit lies within float32 round-off of 0 are then less trustworthy).
* Initial weights follow PyTorch's default ``nn.Linear`` rule, ``U(-1/sqrt(fan_in),
  1/sqrt(fan_in))`` for weights and biases, drawn from a private ``torch.Generator`` seeded
  with ``seed`` on the CPU in float64 and then cast/moved, so CPU and GPU start identically.
* A retrain on altered labels re-uses the *same* initial weights (``init_params`` with the
  same seed), so a changed prediction is caused by the labels alone.

Parameters are a plain tuple ``(W1, b1, W2, b2, w3, b3)`` with shapes
``(d, h1), (h1,), (h1, h2), (h2,), (h2,), ()``; :class:`ReLUNet` is a thin wrapper.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .validation import check_param

Params = Tuple[torch.Tensor, ...]

#: Largest ``epochs`` (steps) and ``check_every`` a :class:`TrainConfig` accepts: every training loop is bounded.
MAX_STEPS = 1_000_000
#: Largest ``lr`` accepted (Adam's step per coordinate is about lr; larger values only diverge).
MAX_LR = 10.0
#: Largest ``weight_decay`` / ``tol`` accepted (beyond these the objective or the stop rule is meaningless).
MAX_WEIGHT_DECAY = 1e4
MAX_TOL = 1e6

__all__ = [
    "TrainConfig", "ReLUNet", "init_params", "forward", "preactivations", "loss_fn",
    "adam_step", "run_adam", "train_params", "as_relu_net",
]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the learning algorithm L (cfdkit's choice; see module doc).

    Attributes
    ----------
    epochs : int
        Number of full-batch Adam steps; with ``tol`` set, the **largest** number of steps.
    lr, beta1, beta2, eps : float
        Adam settings (PyTorch defaults except ``lr=1e-2``).
    dtype : torch.dtype
        ``torch.float64`` (default) or ``torch.float32``.
    weight_decay : float
        L2 penalty ``weight_decay / 2 * ||theta||^2`` (all weights and biases) added to the mean
        BCE: the objective is regularized, so its optimum is better defined (default 0 = off).
    lr_min : float or None
        If set, the step size decays from ``lr`` to ``lr_min`` along a cosine over ``epochs``
        steps, ``lr_t = lr_min + (lr - lr_min) (1 + cos(pi (t-1) / epochs)) / 2``; None = constant.
    tol : float or None
        Stop on the gradient norm: every ``check_every`` steps (and at the last one) the 2-norm of a
        bias-corrected exponential average of the gradient of the regularized objective (factor
        ``stop_beta``, over about ``1 / (1 - stop_beta)`` steps) is computed, and training stops (per
        ensemble member, before that step's update) once it is ``<= tol``.
        The average, not the last gradient: a ReLU network's objective is only piecewise smooth,
        and at a minimum on a kink the one-sided gradient does not vanish (German, weight decay
        3e-2: it stalls at ~5e-3 while the averaged gradient keeps falling).  Members that never reach it are reported
        as not converged (``converged=False``), never silently passed off as converged.  None
        = run exactly ``epochs`` steps (the old recipe; convergence is then not checked).
    stop_beta : float in (0, 1) or None
        Averaging factor of the stop rule's gradient average.  None (default here) reads Adam's own
        first moment ``m_hat`` (``stop_beta = beta1 = 0.9``, a ~10-step average: the earlier rule, which
        the recorded studies keep).  :class:`~cfdkit.neural.NeuralCFD` uses 0.97 (a
        ~33-step average, kept in a separate buffer): at a minimum on a kink the iterates chatter
        across the kink, and a 10-step average of the one-sided gradients does not settle where the
        rare-category columns of a fully standardized one-hot table are large (German or Student
        standardized column by column: it stalls at 4.6e-3 / 6.7e-3 > 3e-3 for 3,000 steps), while a
        33-step average does (benchmarks/RESULTS_neural.md).
    check_every : int
        Steps between gradient-norm checks.
    stop_after : int or None
        Run the schedule of ``epochs`` steps but stop after this many (the step count chosen by
        held-out early stopping, :func:`holdout_steps`); None = no such cut.
    min_epochs : int
        No stop before this many steps (guards against stopping on an early plateau; measured
        with 500 on German/Student/Compas it did not help, see cfdkit/neural/NOTES.md).
    """

    epochs: int = 300
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    dtype: torch.dtype = torch.float64
    weight_decay: float = 0.0
    lr_min: float | None = None
    tol: float | None = None
    check_every: int = 25
    min_epochs: int = 0
    stop_after: int | None = None
    stop_beta: float | None = None

    def __post_init__(self):
        num = check_param                           # core.validation.check_number, refusals as ValueError
        if not isinstance(self.dtype, torch.dtype) or self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype!r}"
                             " (pass the torch dtype object, e.g. dtype=torch.float64).")
        epochs = num(self.epochs, "epochs", low=1, high=MAX_STEPS, integer=True,
                     fix=f"Pass e.g. epochs=3000 (the training loop runs at most {MAX_STEPS:,} steps).")
        lr = num(self.lr, "lr", low=0, low_inclusive=False, high=MAX_LR, fix="Pass e.g. lr=1e-2.")
        vals = {"epochs": epochs, "lr": lr,
                "beta1": num(self.beta1, "beta1", low=0, high=1, low_inclusive=False, high_inclusive=False,
                             fix="Pass e.g. beta1=0.9."),
                "beta2": num(self.beta2, "beta2", low=0, high=1, low_inclusive=False, high_inclusive=False,
                             fix="Pass e.g. beta2=0.999."),
                "eps": num(self.eps, "eps", low=0, high=1, low_inclusive=False, fix="Pass e.g. eps=1e-8."),
                "weight_decay": num(self.weight_decay, "weight_decay", low=0, high=MAX_WEIGHT_DECAY,
                                    fix="Pass e.g. weight_decay=1e-3 (or 'auto' to NeuralCFD)."),
                "lr_min": num(self.lr_min, "lr_min", low=0, high=lr, low_inclusive=False, allow_none=True,
                              fix=f"The cosine schedule decays from lr={lr!r} down to lr_min: pass e.g. lr_min=1e-4 "
                                  "(or None for a constant step)."),
                "tol": num(self.tol, "tol", low=0, high=MAX_TOL, low_inclusive=False, allow_none=True,
                           fix="Pass e.g. tol=3e-3 (or None for a fixed step count)."),
                "stop_beta": num(self.stop_beta, "stop_beta", low=0, high=1, low_inclusive=False,
                                 high_inclusive=False, allow_none=True,
                                 fix="Pass e.g. stop_beta=0.97 (a ~33-step gradient average), or None for Adam's "
                                     "first moment."),
                "check_every": num(self.check_every, "check_every", low=1, high=MAX_STEPS, integer=True,
                                   fix="Pass e.g. check_every=25."),
                "min_epochs": num(self.min_epochs, "min_epochs", low=0, high=epochs, integer=True,
                                  fix="Pass e.g. min_epochs=0 (no stop before that many steps)."),
                "stop_after": num(self.stop_after, "stop_after", low=1, high=epochs, integer=True, allow_none=True,
                                  fix=f"Pass None or an int in [1, epochs={epochs}].")}
        for nm, v in vals.items():
            object.__setattr__(self, nm, v)

    @property
    def n_steps(self) -> int:
        """Largest number of steps actually run: ``stop_after`` or ``epochs``."""
        return self.epochs if self.stop_after is None else self.stop_after

    @property
    def separate_stop_average(self) -> bool:
        """Whether the stop rule keeps its own gradient average (``stop_beta`` set and not ``beta1``)."""
        return self.tol is not None and self.stop_beta is not None and self.stop_beta != self.beta1

    def stop_bias(self, t: int) -> float:
        """Bias correction ``1 - beta^t`` of the stop rule's average at step ``t``."""
        return 1 - (self.beta1 if self.stop_beta is None else self.stop_beta) ** t

    def lr_at(self, t: int) -> float:
        """Step size of step ``t`` (1-based): ``lr``, or the cosine decay to ``lr_min``."""
        if self.lr_min is None:
            return self.lr
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * (t - 1) / self.epochs))

    def checks_at(self, t: int) -> bool:
        """Whether the stop rule is checked at step ``t`` (1-based): every ``check_every`` steps and at the last."""
        return self.tol is not None and t >= self.min_epochs and (t % self.check_every == 0 or t == self.epochs)


#: ``weight_decay="auto"`` (:func:`auto_weight_decay`) = AUTO_DECAY_MAX (3e-2), clipped so that the prior
#: strength on the *summed* loss, ``n_train * wd`` (mean BCE + wd/2 ||θ||² = (sum BCE + n wd/2 ||θ||²) / n), lies in
#: [AUTO_DECAY_MIN, AUTO_DECAY] = [2.4, 24]: larger training sets are regularized less (24 / n from n = 800 on),
#: very small ones more (2.4 / n below n = 80).  Tuned on the seven fairness sets (cfdkit/neural/NOTES.md):
#: 3e-2 is needed on German (800 rows; 2.5e-2 leaves 3.1 % of predictions moved by one random flip), 3e-2 on
#: Compas or Bank (2,000 rows) sends some seeds / the network to a constant prediction, 4e-2 sends Student
#: (519 rows) to a constant, and Salary (41 rows) needs 5e-2 to 7e-2 (3e-2: one random flip moves 5.1 % of its
#: test predictions; 8e-2: seeds disagree on 11 %): 2.4 / 41 = 5.9e-2.
AUTO_DECAY = 24.0
AUTO_DECAY_MIN = 2.4
AUTO_DECAY_MAX = 3e-2


def auto_weight_decay(n_train: int) -> float:
    """``weight_decay="auto"``: ``clip(3e-2, 2.4 / n_train, 24 / n_train)`` (see :data:`AUTO_DECAY`)."""
    n = int(n_train)
    if n < 1:
        raise ValueError(f"n_train must be a positive int, got {n_train!r}.")
    return float(min(AUTO_DECAY / n, max(AUTO_DECAY_MAX, AUTO_DECAY_MIN / n)))


def init_params(d: int, hidden=(8, 8), seed: int = 0, dtype=torch.float64, device="cpu") -> Params:
    """Deterministic initial weights (PyTorch ``nn.Linear`` default rule).

    Parameters
    ----------
    d : int
        Input dimension.
    hidden : tuple of two int
        Hidden widths ``(h1, h2)``.
    seed : int
        Seed of a private ``torch.Generator``; the global RNG is untouched.

    Returns
    -------
    tuple of tensors
        ``(W1 (d,h1), b1 (h1,), W2 (h1,h2), b2 (h2,), w3 (h2,), b3 ())``.
    """
    h1, h2 = hidden
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    out = []
    for fan_in, fan_out in ((d, h1), (h1, h2), (h2, 1)):
        bound = 1.0 / math.sqrt(fan_in)
        W = (torch.rand(fan_in, fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound
        out += [W, b]
    out[4] = out[4][:, 0].contiguous()  # w3 (h2,)
    out[5] = out[5][0].clone()  # b3 scalar
    return tuple(t.to(device=device, dtype=dtype) for t in out)


def preactivations(params: Params, X: torch.Tensor):
    """Hidden pre-activations ``z1 (n, h1)``, ``z2 (n, h2)`` and the logit ``f (n,)``."""
    W1, b1, W2, b2, w3, b3 = params
    z1 = X @ W1 + b1
    z2 = torch.relu(z1) @ W2 + b2
    f = torch.relu(z2) @ w3 + b3
    return z1, z2, f


def forward(params: Params, X: torch.Tensor) -> torch.Tensor:
    """Logits ``(n,)`` of the network on ``X (n, d)``; class = logit > 0."""
    return preactivations(params, X)[2]


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Training objective: mean binary cross-entropy with logits over the last axis."""
    return F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=-1)


@torch.no_grad()
def adam_step(params, grads, m, v, t: int, cfg: TrainConfig, info: dict | None = None, s=None):
    """One in-place Adam update (elementwise only, so batched and single runs agree).

    Same rule as ``torch.optim.Adam`` (no amsgrad) with the step size ``cfg.lr_at(t)``; the
    weight decay is part of the gradient (see :func:`run_adam`), not decoupled.  With
    ``cfg.tol`` set and ``info`` given, the stop rule of :class:`TrainConfig` is checked after
    the moment updates; returns ``"stop"`` (parameters untouched) once it holds.  ``s``: the stop
    rule's own gradient averages (one per parameter) when ``cfg.separate_stop_average``.
    """
    bc1 = 1 - cfg.beta1 ** t
    bc2 = 1 - cfg.beta2 ** t
    for g, mi, vi in zip(grads, m, v):
        mi.mul_(cfg.beta1).add_(g, alpha=1 - cfg.beta1)
        vi.mul_(cfg.beta2).addcmul_(g, g, value=1 - cfg.beta2)
    if s is not None:
        for g, si in zip(grads, s):
            si.mul_(cfg.stop_beta).add_(g, alpha=1 - cfg.stop_beta)
    if info is not None and cfg.checks_at(t):
        gn = math.sqrt(sum(float((mi * mi).sum()) for mi in (m if s is None else s))) / cfg.stop_bias(t)
        info["grad_norm"], info["steps"] = gn, t - 1
        if gn <= cfg.tol:
            info["converged"] = True
            return "stop"
    for p, mi, vi in zip(params, m, v):
        denom = (vi.sqrt() / math.sqrt(bc2)).add_(cfg.eps)
        p.addcdiv_(mi, denom, value=-cfg.lr_at(t) / bc1)


def run_adam(params: list, objective, cfg: TrainConfig, return_info: bool = False):
    """Full-batch Adam with autograd: up to ``cfg.epochs`` steps of :func:`adam_step` on
    ``objective + cfg.weight_decay / 2 * ||params||^2``, stopping once the gradient norm is
    ``<= cfg.tol`` (checked every ``cfg.check_every`` steps; see :class:`TrainConfig`).

    Parameters
    ----------
    params : list of leaf tensors with ``requires_grad=True`` (updated in place).
    objective : callable ``params -> scalar tensor`` (the loss to minimise).
    cfg : TrainConfig
    return_info : bool
        Also return ``{"steps", "grad_norm", "converged"}`` (grad_norm NaN and converged True
        when ``cfg.tol`` is None: nothing was checked).

    Returns
    -------
    tuple of tensors, the trained parameters (detached) [, info dict].
    """
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    s = [torch.zeros_like(p) for p in params] if cfg.separate_stop_average else None
    wd = cfg.weight_decay
    info = {"steps": cfg.n_steps, "grad_norm": float("nan"), "converged": cfg.tol is None}
    for t in range(1, cfg.n_steps + 1):
        grads = torch.autograd.grad(objective(params), params)
        if wd:
            grads = tuple(g + wd * p.detach() for g, p in zip(grads, params))
        if adam_step(params, grads, m, v, t, cfg, info, s) == "stop":
            break
    out = tuple(p.detach() for p in params)
    return (out, info) if return_info else out


@torch.no_grad()
def _val_loss(params, X, y) -> float:
    return float(loss_fn(forward(params, X), y))


def holdout_steps(X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor, params0: Params,
                  cfg: TrainConfig, patience: int = 10) -> tuple:
    """Early stopping on held-out data: the step count with the lowest held-out BCE.

    Trains on ``(X, y)`` with ``cfg`` (its stop rule ignored), evaluates the mean BCE on
    ``(X_val, y_val)`` every ``cfg.check_every`` steps, and stops after ``patience`` checks
    without improvement.

    Returns
    -------
    (best_step int, best_val_loss float, trace list of (step, val_loss))
    """
    params = [p.detach().clone().requires_grad_(True) for p in params0]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    best, best_t, bad, trace = _val_loss(params, X_val, y_val), 0, 0, []
    for t in range(1, cfg.epochs + 1):
        grads = torch.autograd.grad(loss_fn(forward(params, X), y), params)
        if cfg.weight_decay:
            grads = tuple(g + cfg.weight_decay * p.detach() for g, p in zip(grads, params))
        adam_step(params, grads, m, v, t, cfg)
        if t % cfg.check_every == 0 or t == cfg.epochs:
            vl = _val_loss(params, X_val, y_val)
            trace.append((t, vl))
            if vl < best:
                best, best_t, bad = vl, t, 0
            else:
                bad += 1
                if bad >= patience:
                    break
    return max(best_t, 1), best, trace


def train_params(X: torch.Tensor, y: torch.Tensor, params0: Params, cfg: TrainConfig, return_info: bool = False):
    """Train one network from ``params0`` (copied) with full-batch Adam.

    Parameters
    ----------
    X : tensor (n, d)
    y : tensor (n,) of 0./1.
    params0 : initial parameters (not modified).
    cfg : TrainConfig
    return_info : bool, also return the convergence record of :func:`run_adam`.

    Returns
    -------
    tuple of tensors, the trained parameters [, info dict].
    """
    params = [p.detach().clone().requires_grad_(True) for p in params0]
    return run_adam(params, lambda ps: loss_fn(forward(ps, X), y), cfg, return_info=return_info)


@dataclass
class ReLUNet:
    """A trained 2-hidden-layer ReLU network with one logit output.

    Attributes
    ----------
    params : tuple of tensors ``(W1, b1, W2, b2, w3, b3)``.
    """

    params: Params

    @property
    def hidden(self):
        return (int(self.params[0].shape[1]), int(self.params[2].shape[1]))

    @property
    def n_features(self):
        return int(self.params[0].shape[0])

    @property
    def device(self):
        return self.params[0].device

    @property
    def dtype(self):
        return self.params[0].dtype

    def _t(self, X) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X, dtype=np.float64)).to(self.device, self.dtype)

    @torch.no_grad()
    def logit(self, X) -> np.ndarray:
        """Logits, float64 array ``(n,)``."""
        return forward(self.params, self._t(X)).double().cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Classes ``(n,)`` int64: 1 where logit > 0."""
        return (self.logit(X) > 0).astype(np.int64)

    @torch.no_grad()
    def hidden_preactivations(self, X):
        """``(z1 (n, h1), z2 (n, h2))`` as float64 arrays."""
        z1, z2, _ = preactivations(self.params, self._t(X))
        return z1.double().cpu().numpy(), z2.double().cpu().numpy()

    def to_module(self) -> torch.nn.Sequential:
        """An equivalent ``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)``."""
        W1, b1, W2, b2, w3, b3 = self.params
        mod = torch.nn.Sequential(
            torch.nn.Linear(W1.shape[0], W1.shape[1]), torch.nn.ReLU(),
            torch.nn.Linear(W2.shape[0], W2.shape[1]), torch.nn.ReLU(),
            torch.nn.Linear(W2.shape[1], 1)).to(W1.device, W1.dtype)
        with torch.no_grad():
            mod[0].weight.copy_(W1.T); mod[0].bias.copy_(b1)
            mod[2].weight.copy_(W2.T); mod[2].bias.copy_(b2)
            mod[4].weight.copy_(w3[None, :]); mod[4].bias.copy_(b3.reshape(1))
        return mod


def as_relu_net(model) -> ReLUNet:
    """Accept a :class:`ReLUNet` or an ``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear(., 1))``.

    Raises
    ------
    TypeError
        For anything else, naming what is supported.
    """
    if isinstance(model, ReLUNet):
        return model
    fix = ("pass a cfdkit.neural.ReLUNet (e.g. NeuralCFD(...).fit(X, y).model_) or "
           "torch.nn.Sequential(Linear(d,h1), ReLU(), Linear(h1,h2), ReLU(), Linear(h2,1))")
    if not isinstance(model, torch.nn.Sequential):
        raise TypeError(f"model must be a supported feedforward ReLU net, got {type(model).__name__}; {fix}.")
    kinds = [type(m) for m in model]
    want = [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    if kinds != want or model[4].out_features != 1 or any(model[i].bias is None for i in (0, 2, 4)):
        raise TypeError(f"model must be Linear-ReLU-Linear-ReLU-Linear with one output and biases, "
                        f"got layers {[k.__name__ for k in kinds]}; {fix}.")
    with torch.no_grad():
        p = (model[0].weight.T, model[0].bias, model[2].weight.T, model[2].bias,
             model[4].weight[0], model[4].bias[0])
        return ReLUNet(tuple(t.detach().clone().contiguous() for t in p))
