"""Hand-written forward/backward + fused Adam for an ensemble of 2-hidden-layer ReLU nets.

Same learning algorithm as :func:`cfdkit.neural.model.train_params` (full-batch Adam on the
mean BCE-with-logits, every member from the same initial weights), without autograd:

* **Member-major, transposed layout.**  Hidden activations are kept as ``(B·h1, n)`` and
  ``(B, h2, n)``.  Layer 1 of all ``B`` members is **one GEMM**
  ``Z1ᵀ = W1ᵀ_stack (B·h1, d) @ Xᵀ (d, n)`` and its weight gradient is **one GEMM**
  ``dW1ᵀ_stack = dZ1ᵀ (B·h1, n) @ X (n, d)``; layer 2 and the output are contiguous ``bmm``.
* **One flat parameter buffer** ``theta (B·P,)`` grouped by parameter (all members' ``W1ᵀ``,
  then all ``b1``, ...), with matching flat ``grad``, ``m``, ``v`` buffers; gradients are
  written straight into views of ``grad`` (``out=``), and Adam is six in-place ops on the flat
  buffers per step, elementwise exactly the rule of :func:`cfdkit.neural.model.adam_step`.
* All work buffers are preallocated once per call; the step loop allocates (almost) nothing.

Members agree with sequential (autograd) retrains to float64 round-off: only the summation
order inside the matmuls differs.  Same inputs, same chunking and same thread count → same
bits, run to run.
"""
from __future__ import annotations

import math

import torch

from .model import Params, TrainConfig

__all__ = ["train_ensemble", "train_single"]


def _layout(d: int, h1: int, h2: int):
    """Per-member sizes of the parameter groups, in buffer order."""
    return [("W1T", (h1, d)), ("b1", (h1,)), ("W2", (h1, h2)), ("b2", (h2,)), ("w3", (h2,)), ("b3", ())]


def _views(buf: torch.Tensor, B: int, d: int, h1: int, h2: int):
    """Group views ``{name: (B, *shape)}`` into a flat buffer of size ``B·P``."""
    out, off = {}, 0
    for name, shape in _layout(d, h1, h2):
        size = B * math.prod(shape)
        out[name] = buf[off:off + size].view((B,) + shape)
        off += size
    return out


@torch.no_grad()
def train_ensemble(X: torch.Tensor, Y: torch.Tensor, params0: Params, cfg: TrainConfig,
                   XT: torch.Tensor | None = None, return_info: bool = False):
    """Train ``B = Y.shape[0]`` networks from ``params0`` with full-batch Adam (no autograd).

    Parameters
    ----------
    X : (n, d) shared inputs.
    Y : (B, n) one 0./1. label vector per member (same dtype/device as ``X``).
    params0 : unbatched initial ``(W1 (d,h1), b1, W2 (h1,h2), b2, w3, b3)`` shared by every
        member, or stacked ones with a leading ``B`` axis (one start per member, e.g. other seeds).
    cfg : TrainConfig (epochs, lr, betas, eps, weight_decay, lr_min, tol, check_every).
    XT : optional contiguous ``X.T`` (to reuse across chunks).
    return_info : bool
        Also return the per-member convergence record ``{"steps" (B,) int64, "grad_norm" (B,)
        float64, "converged" (B,) bool}`` (as :func:`cfdkit.neural.model.run_adam`).  With
        ``cfg.tol`` set, a member stops (its weights freeze) at the first check where its
        gradient norm is ``<= tol``, exactly where a single run would stop.

    Returns
    -------
    Stacked parameters ``(W1 (B,d,h1), b1 (B,h1), W2 (B,h1,h2), b2 (B,h2), w3 (B,h2), b3 (B,))``
    [, info dict].
    """
    B, n = Y.shape
    W1_0, b1_0, W2_0, b2_0, w3_0, b3_0 = params0
    d, h1 = W1_0.shape[-2:]
    h2 = W2_0.shape[-1]
    dt, dev = X.dtype, X.device
    XT = X.t().contiguous() if XT is None else XT          # (d, n); XT.t() as GEMM operand is ~20 % faster
    P = d * h1 + h1 + h1 * h2 + h2 + h2 + 1
    theta = torch.empty(B * P, dtype=dt, device=dev)
    grad, m, v = (torch.zeros(B * P, dtype=dt, device=dev) for _ in range(3))
    tmp = torch.empty(B * P, dtype=dt, device=dev)
    T, G = _views(theta, B, d, h1, h2), _views(grad, B, d, h1, h2)
    T["W1T"].copy_(W1_0.transpose(-1, -2)); T["b1"].copy_(b1_0); T["W2"].copy_(W2_0)
    T["b2"].copy_(b2_0); T["w3"].copy_(w3_0); T["b3"].copy_(b3_0)
    W1f = T["W1T"].view(B * h1, d); b1c = T["b1"].view(B * h1, 1)
    W2, b2c, w3r = T["W2"], T["b2"].view(B, h2, 1), T["w3"].view(B, 1, h2)
    b3c = T["b3"].view(B, 1)
    gW1f = G["W1T"].view(B * h1, d); gb1 = G["b1"].view(B * h1)
    gW2, gb2, gw3c, gb3 = G["W2"], G["b2"], G["w3"].view(B, h2, 1), G["b3"]

    Z1 = torch.empty(B * h1, n, dtype=dt, device=dev)        # pre-activation
    A1 = torch.empty(B * h1, n, dtype=dt, device=dev)
    M1 = torch.empty(B * h1, n, dtype=dt, device=dev)         # 1. where unit active, else 0.
    Z2 = torch.empty(B, h2, n, dtype=dt, device=dev)
    A2 = torch.empty(B, h2, n, dtype=dt, device=dev)
    M2 = torch.empty(B, h2, n, dtype=dt, device=dev)
    F = torch.empty(B, 1, n, dtype=dt, device=dev)
    Yv = Y.view(B, 1, n)
    A1v = A1.view(B, h1, n)
    W2T = W2.transpose(1, 2)                                   # (B, h2, h1) view
    b1_, b2_, eps = cfg.beta1, cfg.beta2, cfg.eps
    wd = cfg.weight_decay
    inv_n = 1.0 / n
    steps = torch.full((B,), cfg.n_steps, dtype=torch.int64)
    gnorm = torch.full((B,), float("nan"), dtype=torch.float64)
    conv = torch.full((B,), cfg.tol is None, dtype=torch.bool)
    act = None                                                  # (B·P,) 1./0. once some member froze
    M_groups = [g.reshape(B, -1) for g in _views(m, B, d, h1, h2).values()]
    for t in range(1, cfg.n_steps + 1):
        # forward
        torch.addmm(b1c, W1f, XT, out=Z1)                      # (B·h1, n): ONE GEMM for layer 1
        torch.clamp_min(Z1, 0, out=A1)
        torch.sign(A1, out=M1)
        torch.baddbmm(b2c, W2T, A1v, out=Z2)                   # (B, h2, n)
        torch.clamp_min(Z2, 0, out=A2)
        torch.sign(A2, out=M2)
        torch.baddbmm(b3c.view(B, 1, 1), w3r, A2, out=F)        # (B, 1, n) logits
        # backward of mean BCE-with-logits: dF = (sigmoid(F) - Y) / n
        torch.sigmoid(F, out=F)
        F.sub_(Yv).mul_(inv_n)
        torch.sum(F.view(B, n), dim=1, out=gb3)
        torch.bmm(A2, F.transpose(1, 2), out=gw3c)              # (B, h2, 1)
        dZ2 = torch.mul(w3r.transpose(1, 2), F, out=Z2)         # (B, h2, n) = w3 ⊗ dF
        dZ2.mul_(M2)                                            # ReLU backward: 0 where z <= 0
        torch.sum(dZ2, dim=2, out=gb2)
        torch.bmm(A1v, dZ2.transpose(1, 2), out=gW2)            # (B, h1, h2)
        dZ1 = torch.bmm(W2, dZ2, out=A1v).view(B * h1, n)       # (B, h1, n), overwrites A1
        dZ1.mul_(M1)
        torch.sum(dZ1, dim=1, out=gb1)
        torch.mm(dZ1, XT.t(), out=gW1f)                         # (B·h1, d): ONE GEMM for dW1
        if wd:
            grad.add_(theta, alpha=wd)                          # gradient of wd/2 ||theta||^2
        # fused Adam on the flat buffers (same elementwise rule as model.adam_step)
        bc1 = 1 - b1_ ** t
        bc2 = 1 - b2_ ** t
        m.mul_(b1_).add_(grad, alpha=1 - b1_)
        v.mul_(b2_).addcmul_(grad, grad, value=1 - b2_)
        if cfg.checks_at(t):                                    # per-member averaged-gradient norm (stop rule)
            gn = torch.sqrt(sum((g * g).sum(1) for g in M_groups)).double().cpu() / bc1
            live = ~conv
            gnorm[live] = gn[live]; steps[live] = t - 1
            newly = live & (gn <= cfg.tol)
            if bool(newly.any()):
                conv |= newly
                if act is None:
                    act = torch.ones(B * P, dtype=dt, device=dev)
                    A_groups = [a.reshape(B, -1) for a in _views(act, B, d, h1, h2).values()]
                idx = torch.nonzero(newly).flatten().to(dev)
                for a in A_groups:
                    a[idx] = 0.0
            if bool(conv.all()):
                break
        torch.sqrt(v, out=tmp)
        tmp.div_(math.sqrt(bc2)).add_(eps)
        if act is None:
            theta.addcdiv_(m, tmp, value=-cfg.lr_at(t) / bc1)
        else:                                                   # frozen members: m * 0 = 0, exact 1. * m otherwise
            theta.addcdiv_(torch.mul(m, act, out=grad), tmp, value=-cfg.lr_at(t) / bc1)
    out = (T["W1T"].transpose(1, 2).contiguous(), T["b1"].clone(), T["W2"].clone(), T["b2"].clone(),
           T["w3"].clone(), T["b3"].clone())
    if return_info:
        return out, {"steps": steps.numpy(), "grad_norm": gnorm.numpy(), "converged": conv.numpy()}
    return out


def train_single(X: torch.Tensor, y: torch.Tensor, params0: Params, cfg: TrainConfig,
                 XT: torch.Tensor | None = None, return_info: bool = False):
    """One network with the hand-written trainer (``B = 1``); unbatched parameters [, info]."""
    P, info = train_ensemble(X, y.view(1, -1), params0, cfg, XT=XT, return_info=True)
    out = tuple(p[0] for p in P)
    if return_info:
        return out, {"steps": int(info["steps"][0]), "grad_norm": float(info["grad_norm"][0]),
                     "converged": bool(info["converged"][0])}
    return out
