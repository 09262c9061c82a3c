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

Params = Tuple[torch.Tensor, ...]

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
        Number of full-batch Adam steps.
    lr, beta1, beta2, eps : float
        Adam settings (PyTorch defaults except ``lr=1e-2``).
    dtype : torch.dtype
        ``torch.float64`` (default) or ``torch.float32``.
    """

    epochs: int = 300
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    dtype: torch.dtype = torch.float64

    def __post_init__(self):
        if (isinstance(self.epochs, (bool, np.bool_)) or not isinstance(self.epochs, numbers.Integral)
                or self.epochs < 1):
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}; pass e.g. epochs=300.")
        for nm in ("lr", "beta1", "beta2", "eps"):
            v = getattr(self, nm)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{nm} must be a positive finite float, got {v!r}" +
                                 ("; pass e.g. lr=1e-2." if nm == "lr" else "."))
        for nm in ("beta1", "beta2"):
            if not getattr(self, nm) < 1:
                raise ValueError(f"{nm} must lie in (0, 1), got {getattr(self, nm)!r}.")
        if not isinstance(self.dtype, torch.dtype) or self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype!r}"
                             " (pass the torch dtype object, e.g. dtype=torch.float64).")
        object.__setattr__(self, "epochs", int(self.epochs))
        for nm in ("lr", "beta1", "beta2", "eps"):
            object.__setattr__(self, nm, float(getattr(self, nm)))


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
def adam_step(params, grads, m, v, t: int, cfg: TrainConfig) -> None:
    """One in-place Adam update (elementwise only, so batched and single runs agree).

    Same rule as ``torch.optim.Adam`` (no amsgrad, no weight decay).
    """
    bc1 = 1 - cfg.beta1 ** t
    bc2 = 1 - cfg.beta2 ** t
    for p, g, mi, vi in zip(params, grads, m, v):
        mi.mul_(cfg.beta1).add_(g, alpha=1 - cfg.beta1)
        vi.mul_(cfg.beta2).addcmul_(g, g, value=1 - cfg.beta2)
        denom = (vi.sqrt() / math.sqrt(bc2)).add_(cfg.eps)
        p.addcdiv_(mi, denom, value=-cfg.lr / bc1)


def run_adam(params: list, objective, cfg: TrainConfig) -> Params:
    """Full-batch Adam with autograd: ``cfg.epochs`` steps of :func:`adam_step` on ``objective``.

    Parameters
    ----------
    params : list of leaf tensors with ``requires_grad=True`` (updated in place).
    objective : callable ``params -> scalar tensor`` (the loss to minimise).
    cfg : TrainConfig

    Returns
    -------
    tuple of tensors, the trained parameters (detached).
    """
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, cfg.epochs + 1):
        grads = torch.autograd.grad(objective(params), params)
        adam_step(params, grads, m, v, t, cfg)
    return tuple(p.detach() for p in params)


def train_params(X: torch.Tensor, y: torch.Tensor, params0: Params, cfg: TrainConfig) -> Params:
    """Train one network from ``params0`` (copied) with full-batch Adam.

    Parameters
    ----------
    X : tensor (n, d)
    y : tensor (n,) of 0./1.
    params0 : initial parameters (not modified).
    cfg : TrainConfig

    Returns
    -------
    tuple of tensors, the trained parameters.
    """
    params = [p.detach().clone().requires_grad_(True) for p in params0]
    return run_adam(params, lambda ps: loss_fn(forward(ps, X), y), cfg)


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
