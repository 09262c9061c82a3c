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
* **Compaction** (with a gradient-norm stop, ``cfg.tol``): at a check where some members have
  converged, their weights are stored and the still-training members (weights and Adam moments)
  are copied into smaller buffers, so a batch costs the sum of its members' steps, not ``B ×``
  the slowest member's.  Each member's arithmetic is row-wise, so the results are the same bits
  as without compaction -- provided the BLAS sums each GEMM row the same way whatever the number
  of rows (MKL does for the seven fairness sets' shapes, checked by benchmarks/bench_compaction.py;
  its small-matrix path, e.g. n = 48, d <= 9, differs in the last bits).

Members agree with sequential (autograd) retrains to float64 round-off: only the summation
order inside the matmuls differs.  Same inputs, same chunking and same thread count → same
bits, run to run.
"""
from __future__ import annotations

import math

import torch

from .model import Params, TrainConfig

__all__ = ["train_ensemble", "train_single", "COMPACT"]

#: Default of ``train_ensemble(compact=None)``: drop converged members from the batch (benchmarks switch it off
#: to measure the saving; the results are the same bits either way).
COMPACT = True


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


class _Ensemble:
    """Preallocated buffers and views for ``B`` members (one flat ``theta``/``grad``/``m``/``v``)."""

    def __init__(self, B: int, n: int, d: int, h1: int, h2: int, dt, dev):
        self.B, self.n, self.d, self.h1, self.h2 = B, n, d, h1, h2
        P = d * h1 + h1 + h1 * h2 + h2 + h2 + 1
        self.theta = torch.empty(B * P, dtype=dt, device=dev)
        self.grad, self.m, self.v = (torch.zeros(B * P, dtype=dt, device=dev) for _ in range(3))
        self.tmp = torch.empty(B * P, dtype=dt, device=dev)
        self.T, G = _views(self.theta, B, d, h1, h2), _views(self.grad, B, d, h1, h2)
        T = self.T
        self.W1f = T["W1T"].view(B * h1, d); self.b1c = T["b1"].view(B * h1, 1)
        self.W2, self.b2c, self.w3r = T["W2"], T["b2"].view(B, h2, 1), T["w3"].view(B, 1, h2)
        self.b3c = T["b3"].view(B, 1)
        self.gW1f = G["W1T"].view(B * h1, d); self.gb1 = G["b1"].view(B * h1)
        self.gW2, self.gb2, self.gw3c, self.gb3 = G["W2"], G["b2"], G["w3"].view(B, h2, 1), G["b3"]
        self.Z1 = torch.empty(B * h1, n, dtype=dt, device=dev)        # pre-activation
        self.A1 = torch.empty(B * h1, n, dtype=dt, device=dev)
        self.M1 = torch.empty(B * h1, n, dtype=dt, device=dev)         # 1. where unit active, else 0.
        self.Z2 = torch.empty(B, h2, n, dtype=dt, device=dev)
        self.A2 = torch.empty(B, h2, n, dtype=dt, device=dev)
        self.M2 = torch.empty(B, h2, n, dtype=dt, device=dev)
        self.F = torch.empty(B, 1, n, dtype=dt, device=dev)
        self.A1v = self.A1.view(B, h1, n)
        self.W2T = self.W2.transpose(1, 2)                             # (B, h2, h1) view
        self.row_groups = {key: [g.reshape(B, -1) for g in _views(buf, B, d, h1, h2).values()]
                           for key, buf in (("theta", self.theta), ("m", self.m), ("v", self.v))}

    def load(self, params0):
        """Copy initial parameters (unbatched, or stacked with a leading ``B`` axis) into ``theta``."""
        W1_0, b1_0, W2_0, b2_0, w3_0, b3_0 = params0
        T = self.T
        T["W1T"].copy_(W1_0.transpose(-1, -2)); T["b1"].copy_(b1_0); T["W2"].copy_(W2_0)
        T["b2"].copy_(b2_0); T["w3"].copy_(w3_0); T["b3"].copy_(b3_0)

    def take(self, other: "_Ensemble", keep: torch.Tensor):
        """Copy members ``keep`` of ``other`` (theta, Adam moments) into this (smaller) ensemble."""
        for key in ("theta", "m", "v"):
            for dst, src in zip(self.row_groups[key], other.row_groups[key]):
                torch.index_select(src, 0, keep, out=dst)

    def step_moments(self, XT, Yv, t: int, cfg: TrainConfig):
        """Gradient of every member's (regularized) loss, then Adam's moment updates at step ``t``."""
        B, n, h1 = self.B, self.n, self.h1
        Z1, A1, M1, Z2, A2, M2, F, A1v = self.Z1, self.A1, self.M1, self.Z2, self.A2, self.M2, self.F, self.A1v
        # forward
        torch.addmm(self.b1c, self.W1f, XT, out=Z1)                 # (B·h1, n): ONE GEMM for layer 1
        torch.clamp_min(Z1, 0, out=A1)
        torch.sign(A1, out=M1)
        torch.baddbmm(self.b2c, self.W2T, A1v, out=Z2)              # (B, h2, n)
        torch.clamp_min(Z2, 0, out=A2)
        torch.sign(A2, out=M2)
        torch.baddbmm(self.b3c.view(B, 1, 1), self.w3r, A2, out=F)   # (B, 1, n) logits
        # backward of mean BCE-with-logits: dF = (sigmoid(F) - Y) / n
        torch.sigmoid(F, out=F)
        F.sub_(Yv).mul_(1.0 / n)
        torch.sum(F.view(B, n), dim=1, out=self.gb3)
        torch.bmm(A2, F.transpose(1, 2), out=self.gw3c)              # (B, h2, 1)
        dZ2 = torch.mul(self.w3r.transpose(1, 2), F, out=Z2)         # (B, h2, n) = w3 ⊗ dF
        dZ2.mul_(M2)                                                 # ReLU backward: 0 where z <= 0
        torch.sum(dZ2, dim=2, out=self.gb2)
        torch.bmm(A1v, dZ2.transpose(1, 2), out=self.gW2)            # (B, h1, h2)
        dZ1 = torch.bmm(self.W2, dZ2, out=A1v).view(B * h1, n)       # (B, h1, n), overwrites A1
        dZ1.mul_(M1)
        torch.sum(dZ1, dim=1, out=self.gb1)
        torch.mm(dZ1, XT.t(), out=self.gW1f)                         # (B·h1, d): ONE GEMM for dW1
        if cfg.weight_decay:
            self.grad.add_(self.theta, alpha=cfg.weight_decay)       # gradient of wd/2 ||theta||^2
        # fused Adam on the flat buffers (same elementwise rule as model.adam_step)
        b1_, b2_ = cfg.beta1, cfg.beta2
        self.m.mul_(b1_).add_(self.grad, alpha=1 - b1_)
        self.v.mul_(b2_).addcmul_(self.grad, self.grad, value=1 - b2_)

    def avg_grad_norm(self, t: int, cfg: TrainConfig) -> torch.Tensor:
        """Per-member 2-norm of the bias-corrected first moment (the stop rule), float64 CPU ``(B,)``."""
        return torch.sqrt(sum((g * g).sum(1) for g in self.row_groups["m"])).double().cpu() / (1 - cfg.beta1 ** t)

    def step_params(self, t: int, cfg: TrainConfig, act: torch.Tensor | None = None):
        """Adam's parameter update at step ``t`` (``act``: 1./0. per entry, 0. = frozen member)."""
        bc1, bc2 = 1 - cfg.beta1 ** t, 1 - cfg.beta2 ** t
        torch.sqrt(self.v, out=self.tmp)
        self.tmp.div_(math.sqrt(bc2)).add_(cfg.eps)
        if act is None:
            self.theta.addcdiv_(self.m, self.tmp, value=-cfg.lr_at(t) / bc1)
        else:                                                        # frozen members: m * 0 = 0, exact 1. * m otherwise
            self.theta.addcdiv_(torch.mul(self.m, act, out=self.grad), self.tmp, value=-cfg.lr_at(t) / bc1)

    def params(self, idx: torch.Tensor | None = None):
        """Stacked ``(W1 (B,d,h1), b1, W2, b2, w3, b3)`` (copies), optionally of members ``idx`` only."""
        T = self.T
        sel = (lambda a: a.clone()) if idx is None else (lambda a: a.index_select(0, idx))
        return (sel(T["W1T"].transpose(1, 2)).contiguous(), sel(T["b1"]), sel(T["W2"]), sel(T["b2"]),
                sel(T["w3"]), sel(T["b3"]))


@torch.no_grad()
def train_ensemble(X: torch.Tensor, Y: torch.Tensor, params0: Params, cfg: TrainConfig,
                   XT: torch.Tensor | None = None, return_info: bool = False, compact: bool | None = None):
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
    compact : bool or None (None = :data:`COMPACT`, True)
        With ``cfg.tol`` set, drop converged members from the batch (their weights are stored
        and the still-training members are copied into smaller buffers), so a batch costs what
        its members need, not ``B ×`` its slowest member.  Each member's arithmetic does not
        depend on the others, so the result is the same, bit for bit, as ``compact=False``
        (which keeps converged members in the batch with a zero step; the test suite checks
        the equality), where the BLAS sums a GEMM row independently of the row count (see the
        module notes).

    Returns
    -------
    Stacked parameters ``(W1 (B,d,h1), b1 (B,h1), W2 (B,h1,h2), b2 (B,h2), w3 (B,h2), b3 (B,))``
    [, info dict].
    """
    compact = COMPACT if compact is None else bool(compact)
    B, n = Y.shape
    W1_0, _, W2_0, _, _, _ = params0
    d, h1 = W1_0.shape[-2:]
    h2 = W2_0.shape[-1]
    dt, dev = X.dtype, X.device
    XT = X.t().contiguous() if XT is None else XT          # (d, n); XT.t() as GEMM operand is ~20 % faster
    ens = _Ensemble(B, n, d, h1, h2, dt, dev)
    ens.load(params0)
    steps = torch.full((B,), cfg.n_steps, dtype=torch.int64)
    gnorm = torch.full((B,), float("nan"), dtype=torch.float64)
    conv = torch.full((B,), cfg.tol is None, dtype=torch.bool)
    ids = torch.arange(B)                                       # original member of each batch row (compact)
    Yb = Y
    out = None                                                  # compact: final weights of frozen members
    act = None                                                  # no compaction: (B·P,) 1./0. once some member froze
    for t in range(1, cfg.n_steps + 1):
        ens.step_moments(XT, Yb.view(ens.B, 1, n), t, cfg)
        if cfg.checks_at(t):                                    # per-member averaged-gradient norm (stop rule)
            gn = ens.avg_grad_norm(t, cfg)
            if compact:
                gnorm[ids] = gn; steps[ids] = t - 1
                newly = gn <= cfg.tol
                if bool(newly.any()):
                    if out is None:
                        out = _Ensemble(B, 0, d, h1, h2, dt, dev)
                    done = torch.nonzero(newly).flatten()
                    conv[ids[done]] = True
                    _scatter(out, ens, done.to(dev), ids[done].to(dev))
                    keep = torch.nonzero(~newly).flatten()
                    if len(keep) == 0:
                        ens = None
                        break
                    small = _Ensemble(len(keep), n, d, h1, h2, dt, dev)
                    small.take(ens, keep.to(dev))
                    ids, Yb, ens = ids[keep], Yb.index_select(0, keep.to(Yb.device)), small
            else:
                live = ~conv
                gnorm[live] = gn[live]; steps[live] = t - 1
                newly = live & (gn <= cfg.tol)
                if bool(newly.any()):
                    conv |= newly
                    if act is None:
                        act = torch.ones(ens.theta.numel(), dtype=dt, device=dev)
                        A_groups = [a.reshape(B, -1) for a in _views(act, B, d, h1, h2).values()]
                    idx = torch.nonzero(newly).flatten().to(dev)
                    for a in A_groups:
                        a[idx] = 0.0
                if bool(conv.all()):
                    break
        ens.step_params(t, cfg, act)
    if compact and out is not None:
        if ens is not None:                                     # members still training at the last step
            _scatter(out, ens, torch.arange(ens.B, device=dev), ids.to(dev))
        res = out.params()
    else:
        res = ens.params()
    if return_info:
        return res, {"steps": steps.numpy(), "grad_norm": gnorm.numpy(), "converged": conv.numpy()}
    return res


def _scatter(out: _Ensemble, ens: _Ensemble, rows: torch.Tensor, dest: torch.Tensor):
    """Store the weights of ``ens``'s batch rows ``rows`` as members ``dest`` of ``out``."""
    for dst, src in zip(out.row_groups["theta"], ens.row_groups["theta"]):
        dst.index_copy_(0, dest, src.index_select(0, rows))


def train_single(X: torch.Tensor, y: torch.Tensor, params0: Params, cfg: TrainConfig,
                 XT: torch.Tensor | None = None, return_info: bool = False):
    """One network with the hand-written trainer (``B = 1``); unbatched parameters [, info]."""
    P, info = train_ensemble(X, y.view(1, -1), params0, cfg, XT=XT, return_info=True)
    out = tuple(p[0] for p in P)
    if return_info:
        return out, {"steps": int(info["steps"][0]), "grad_norm": float(info["grad_norm"][0]),
                     "converged": bool(info["converged"][0])}
    return out
