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
  are copied into smaller buffers (each at a row with the same residue modulo 8, the batch size
  keeping its residue too, free rows zero "fillers"), so a batch costs about the sum of its
  members' steps, not ``B ×`` the slowest member's.  Each member's arithmetic is row-wise, so
  the results are the same bits as without compaction.  Two things make a member's arithmetic
  independent of its batch row and of the batch size: rows keep their residue mod 8 (vectorised
  row sums split a row the same way), and the sigmoid runs over a logit buffer padded to a
  multiple of 64 entries (a vectorised sigmoid and its scalar tail loop round differently; the
  last member's last logits used to fall into the tail).  Checked: the test suite (shared and
  per-member starts, float64 and float32) and benchmarks/bench_compaction.py on the data sets.

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
#: to measure the saving; the results are the same bits either way, see the module notes).
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


#: Padding of the logit buffer (entries): a multiple of every CPU vector loop's stride (2 x 512-bit of float32).
_PAD = 64


class _Ensemble:
    """Preallocated buffers and views for ``B`` members (one flat ``theta``/``grad``/``m``/``v``)."""

    def __init__(self, B: int, n: int, d: int, h1: int, h2: int, dt, dev, separate_stop: bool = False):
        self.B, self.n, self.d, self.h1, self.h2 = B, n, d, h1, h2
        P = d * h1 + h1 + h1 * h2 + h2 + h2 + 1
        self.theta = torch.empty(B * P, dtype=dt, device=dev)
        self.grad, self.m, self.v = (torch.zeros(B * P, dtype=dt, device=dev) for _ in range(3))
        self.s = self.m if not separate_stop else torch.zeros(B * P, dtype=dt, device=dev)   # stop rule's average
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
        # Logits / dF live at the front of a buffer padded to a multiple of _PAD entries, and the sigmoid runs over
        # the whole buffer: a vectorised sigmoid and its scalar tail loop round differently, so without the padding
        # the last member's last entries (the tail) would depend on the batch size (compaction moves members).
        self.Fbuf = torch.zeros(-(-B * n // _PAD) * _PAD, dtype=dt, device=dev)
        self.F = self.Fbuf[:B * n].view(B, 1, n)
        self.A1v = self.A1.view(B, h1, n)
        self.W2T = self.W2.transpose(1, 2)                             # (B, h2, h1) view
        self.row_groups = {key: [g.reshape(B, -1) for g in _views(buf, B, d, h1, h2).values()]
                           for key, buf in (("theta", self.theta), ("m", self.m), ("v", self.v), ("s", self.s))}
        self.moving = ("theta", "m", "v") + (("s",) if separate_stop else ())

    def load(self, params0):
        """Copy initial parameters (unbatched, or stacked with a leading ``B`` axis) into ``theta``."""
        W1_0, b1_0, W2_0, b2_0, w3_0, b3_0 = params0
        T = self.T
        T["W1T"].copy_(W1_0.transpose(-1, -2)); T["b1"].copy_(b1_0); T["W2"].copy_(W2_0)
        T["b2"].copy_(b2_0); T["w3"].copy_(w3_0); T["b3"].copy_(b3_0)

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
        torch.sigmoid(self.Fbuf, out=self.Fbuf)                      # = sigmoid(F), no scalar tail (see __init__)
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
        if self.s is not self.m:                                     # the stop rule's own average (cfg.stop_beta)
            self.s.mul_(cfg.stop_beta).add_(self.grad, alpha=1 - cfg.stop_beta)

    def avg_grad_norm(self, t: int, cfg: TrainConfig) -> torch.Tensor:
        """Per-member 2-norm of the bias-corrected gradient average of the stop rule, float64 CPU ``(B,)``."""
        return torch.sqrt(sum((g * g).sum(1) for g in self.row_groups["s"])).double().cpu() / cfg.stop_bias(t)

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
        and the still-training members are copied into smaller buffers, each at a row with the
        same residue modulo 8 so that its memory alignment is kept), so a batch costs about what
        its members need, not ``B ×`` its slowest member.  Each member's arithmetic does not
        depend on the others, so the result is the same, bit for bit, as ``compact=False``
        (which keeps converged members in the batch with a zero step; see the module notes).

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
    ens = _Ensemble(B, n, d, h1, h2, dt, dev, cfg.separate_stop_average)
    ens.load(params0)
    steps = torch.full((B,), cfg.n_steps, dtype=torch.int64)
    gnorm = torch.full((B,), float("nan"), dtype=torch.float64)
    conv = torch.full((B,), cfg.tol is None, dtype=torch.bool)
    ids = torch.arange(B)                                       # member trained in each batch row; -1 = frozen / filler
    Yb = Y
    out = None                                                  # final weights of the members that stopped
    act = None                                                  # (B·P,) 1. for training rows, 0. for frozen / filler
    for t in range(1, cfg.n_steps + 1):
        ens.step_moments(XT, Yb.view(ens.B, 1, n), t, cfg)
        if cfg.checks_at(t):                                    # per-member averaged-gradient norm (stop rule)
            gn = ens.avg_grad_norm(t, cfg)
            live = ids >= 0
            gnorm[ids[live]] = gn[live]; steps[ids[live]] = t - 1
            newly = live & (gn <= cfg.tol)
            if bool(newly.any()):
                rows = torch.nonzero(newly).flatten()
                conv[ids[rows]] = True
                if out is None:
                    out = _Ensemble(B, 0, d, h1, h2, dt, dev)
                _scatter(out, ens, rows.to(dev), ids[rows].to(dev))
                ids = ids.clone(); ids[rows] = -1
                if act is None:
                    act = torch.ones(ens.theta.numel(), dtype=dt, device=dev)
                _zero_rows(act, ens, rows.to(dev))
                if not bool((ids >= 0).any()):
                    ens = None
                    break
                if compact:
                    ens, ids, Yb, act = _compact(ens, ids, Yb, act)
        ens.step_params(t, cfg, act)
    if out is None:
        res = ens.params()
    else:
        if ens is not None and bool((ids >= 0).any()):            # members still training at the last step
            rows = torch.nonzero(ids >= 0).flatten()
            _scatter(out, ens, rows.to(dev), ids[rows].to(dev))
        res = out.params()
    if return_info:
        return res, {"steps": steps.numpy(), "grad_norm": gnorm.numpy(), "converged": conv.numpy()}
    return res


#: Compaction keeps every training member at a batch row with the same residue modulo ``_ALIGN`` and the batch
#: size's residue too, so each member's rows keep their memory alignment (row offsets change by multiples of
#: 8 x 8 bytes = 64 bytes): vectorised reductions (``torch.sum`` over a row, the GEMMs) split a row into the same
#: aligned head / body / tail.  Free rows are zero "fillers" with a zero step.
_ALIGN = 8


def _zero_rows(act: torch.Tensor, ens: _Ensemble, rows: torch.Tensor):
    """Set the step mask of batch rows ``rows`` to 0. (frozen)."""
    for a in _views(act, ens.B, ens.d, ens.h1, ens.h2).values():
        a.reshape(ens.B, -1)[rows] = 0.0


def _compact(ens: _Ensemble, ids: torch.Tensor, Yb: torch.Tensor, act: torch.Tensor):
    """Move the training rows (``ids >= 0``) into a smaller ensemble, alignment-preserving (see :data:`_ALIGN`);
    returns ``(ens, ids, Y, act)`` unchanged when no smaller batch fits."""
    keep = torch.nonzero(ids >= 0).flatten()
    res = keep % _ALIGN
    counts = torch.bincount(res, minlength=_ALIGN)
    R, Q, e = int(counts.max()), ens.B // _ALIGN, ens.B % _ALIGN
    if R >= Q:                                                  # B' = 8 R + e would not be smaller than B
        return ens, ids, Yb, act
    B2 = _ALIGN * R + e
    slots = torch.empty_like(keep)
    for r in range(_ALIGN):
        sel = torch.nonzero(res == r).flatten()
        slots[sel] = r + _ALIGN * torch.arange(len(sel))
    dev = ens.theta.device
    small = _Ensemble(B2, ens.n, ens.d, ens.h1, ens.h2, ens.theta.dtype, dev, ens.s is not ens.m)
    small.theta.zero_()
    for key in ens.moving:
        for dst, src in zip(small.row_groups[key], ens.row_groups[key]):
            dst.index_copy_(0, slots.to(dev), src.index_select(0, keep.to(dev)))
    ids2 = torch.full((B2,), -1, dtype=ids.dtype)
    ids2[slots] = ids[keep]
    Y2 = torch.zeros((B2, Yb.shape[1]), dtype=Yb.dtype, device=Yb.device)
    Y2[slots.to(Yb.device)] = Yb[keep.to(Yb.device)]
    act2 = torch.ones(small.theta.numel(), dtype=act.dtype, device=dev)
    _zero_rows(act2, small, torch.nonzero(ids2 < 0).flatten().to(dev))
    return small, ids2, Y2, act2


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
