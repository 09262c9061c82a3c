"""Relabel influence through the network, with the exact Hessian of the training objective.

For the objective ``J(θ) = (1/n) Σ_i L(x_i, y_i; θ)`` (mean BCE with logits), flipping
``y_i`` changes ``J`` by ``(1/n)[L(x_i, 1-y_i) - L(x_i, y_i)] = -(1/n)(1 - 2y_i) f(x_i)``, so
the first-order (influence-function) change of the test logit is

    Δlogit_{t,i} ≈ -∇_θ f(x_t)ᵀ H⁻¹ ∇_θ (1/n)[L(x_i, 1-y_i) - L(x_i, y_i)]
                 = (1/n)(1 - 2y_i) ∇_θ f(x_t)ᵀ H⁻¹ ∇_θ f(x_i)

(Koh & Liang 2017; relabel form as in Yang, Xu, Yu 2024).  ``H = ∇²J`` is formed exactly by
Hessian-vector products (``torch.func.jvp`` of ``torch.func.grad``, vmapped over chunks of
basis vectors) — feasible for 2×(4..32) nets (p ≤ a few thousand).  The networks are trained
with a finite number of Adam steps and ReLUs, so ``H`` need not be positive definite:
**damping** (``damping="auto"``): if ``λ_min(H) ≤ 1e-10 · λ_max``, add
``(max(0, -λ_min) + 1e-3 · λ_max) I``; a float fixes the damping instead.  The solve
``H⁻¹ [∇f(x_t)]_t`` uses :class:`cfdkit.core.solvers.InverseHVP` when available (default
``solver="cholesky"``) and a ``torch.linalg.cholesky`` fallback otherwise.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, grad, jvp, vmap  # noqa: F401

from .validation import check_param
from .model import as_relu_net, forward
from .rankings import push_direction, register_ranking

__all__ = ["flat_params", "training_hessian", "damp_hessian", "inverse_hvp", "influence"]


def flat_params(params):
    """Flatten ``params`` to ``θ (p,)`` and return ``(θ, unflatten)``."""
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    theta = torch.cat([p.reshape(-1) for p in params]).detach()

    def unflatten(t):
        return tuple(c.reshape(s) for c, s in zip(torch.split(t, sizes), shapes))

    return theta, unflatten


def training_hessian(params, X: torch.Tensor, y: torch.Tensor, chunk: int | None = None, fwd=forward) -> torch.Tensor:
    """Exact Hessian ``(p, p)`` of the mean-BCE training objective at ``params``.

    Built column block by column block from Hessian-vector products; ``chunk`` basis vectors
    per vmap call (auto: keeps ``chunk · n · (h1 + h2)`` numbers around 2e7).
    """
    theta, unflat = flat_params(params)
    p = theta.numel()

    def J(t):
        f = fwd(unflat(t), X)
        return torch.nn.functional.binary_cross_entropy_with_logits(f, y)

    gJ = grad(J)

    def hvp(v):
        return jvp(gJ, (theta,), (v,))[1]

    if chunk is None:
        width = params[0].shape[1] + params[2].shape[1] + 2 if fwd is forward else 64
        chunk = int(max(1, min(p, 2e7 // max(1, X.shape[0] * width))))
    eye = torch.eye(p, dtype=theta.dtype, device=theta.device)
    cols = [vmap(hvp)(eye[s:s + chunk]) for s in range(0, p, chunk)]
    H = torch.cat(cols, 0)
    return (H + H.T) / 2


def damp_hessian(H: torch.Tensor, damping="auto"):
    """Return ``(H + λI, λ, eigen-range)``; see the module doc for the ``"auto"`` rule."""
    ev = torch.linalg.eigvalsh(H)
    lmin, lmax = float(ev[0]), float(ev[-1])
    if isinstance(damping, str) and damping == "auto":
        lam = 0.0 if lmin > 1e-10 * max(abs(lmax), 1e-300) else max(0.0, -lmin) + 1e-3 * abs(lmax)
    else:
        lam = check_param(damping, "damping", low=0, fix="Pass damping='auto' (the default) or a finite float >= 0, "
                          "e.g. ranking_options={'damping': 1e-3}.")
    Hd = H + lam * torch.eye(H.shape[0], dtype=H.dtype, device=H.device) if lam else H
    return Hd, lam, (lmin, lmax)


def inverse_hvp(H: torch.Tensor, B: torch.Tensor, solver: str = "cholesky", **opts):
    """Solve ``H X = B`` for ``B (p,)`` or ``(p, m)``; returns ``(X, diagnostics)``.

    Uses ``cfdkit.core.solvers.InverseHVP(solver=..., **opts).fit(H).solve(B)`` when the core
    solver module exists, else a Cholesky solve (only ``solver="cholesky"``).
    """
    try:
        from cfdkit.core.solvers import InverseHVP  # core engine, lands on main
    except ImportError:
        InverseHVP = None
    if InverseHVP is not None:
        res = InverseHVP(solver=solver, **opts).fit(H).solve(B)
        d = res.diagnostics
        return res.x, {"backend": "cfdkit.core.solvers", "solver": d.solver, "converged": bool(d.converged),
                       "summary": d.summary()}
    if solver != "cholesky":
        raise ValueError(f"solver={solver!r} needs cfdkit.core.solvers (not available here); use solver='cholesky'.")
    L = torch.linalg.cholesky(H)
    Bm = B if B.dim() == 2 else B[:, None]
    Xs = torch.cholesky_solve(Bm, L)
    return (Xs if B.dim() == 2 else Xs[:, 0]), {"backend": "torch.linalg.cholesky"}


def _logit_grads(params, X: torch.Tensor, fwd=forward) -> torch.Tensor:
    """Per-example gradients ``∇_θ f(x)``, shape ``(n, p)``."""
    theta, unflat = flat_params(params)

    def f1(t, x):
        return fwd(unflat(t), x[None, :])[0]

    return vmap(grad(f1), in_dims=(None, 0))(theta, X)


@register_ranking("influence")
def influence(model, X_train, y_train, X_test, *, damping="auto", solver: str = "cholesky",
              solver_options=None, chunk: int = 4096, mask=None, return_info: bool = False, **_):
    """Relabel-influence ranking (see module doc); score = predicted Δlogit × push direction.

    Returns
    -------
    (n_test, n_train) float64 (and a diagnostics dict if ``return_info``).
    """
    if getattr(model, "is_module_net", False):     # model=: the trainable parameters of the user's module
        net, fwd = model, model.logit_fn()
        params = tuple(p.detach() for p in net.params.values())
    else:
        net, fwd = as_relu_net(model), forward
        params = tuple(p.detach() for p in net.params)
    dev, dt = net.device, net.dtype
    Xtr = torch.as_tensor(np.asarray(X_train, float), dtype=dt, device=dev)
    Xte = torch.as_tensor(np.asarray(X_test, float), dtype=dt, device=dev)
    ytr = torch.as_tensor(np.asarray(y_train, float), dtype=dt, device=dev)
    H = training_hessian(params, Xtr, ytr, fwd=fwd)
    Hd, lam, (lmin, lmax) = damp_hessian(H, damping)
    Gt = _logit_grads(params, Xte, fwd)                                  # (n_test, p)
    V, diag = inverse_hvp(Hd, Gt.T.contiguous(), solver, **(solver_options or {}))  # (p, n_test)
    n = Xtr.shape[0]
    sign = (1.0 - 2.0 * ytr) / n
    out = torch.empty(Xte.shape[0], n, dtype=dt, device=dev)
    for s in range(0, n, chunk):
        Gi = _logit_grads(params, Xtr[s:s + chunk], fwd)                 # (c, p)
        out[:, s:s + chunk] = (Gi @ V).T * sign[s:s + chunk]
    delta = out.double().cpu().numpy()
    scores = delta * push_direction(net, X_test)[:, None]
    if return_info:
        return scores, {"damping": lam, "eig_min": lmin, "eig_max": lmax, **diag}
    return scores
