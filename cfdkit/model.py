"""L2-regularized logistic regression in torch, float64.

Objective (one parameter vector ``w`` of length ``p + 1``, intercept last and
unpenalized)::

    R(w) = sum_i L(x_i, y_i; w) + l2/2 * ||w[:-1]||^2,
    L(x, y; w) = log(1 + exp(z)) - y z,   z = w . [x, 1]

which has the same minimizer as scikit-learn's
``LogisticRegression(C=1/l2)`` (lbfgs / newton-cg / newton-cholesky, whose
intercept is not penalized).  The relabeling paper writes the objective as
``1/N sum L + lambda/2 ||w||^2``; with ``lambda = l2 / N`` the two coincide,
and the paper's Table 6 values are the scikit-learn ``1/C`` values.

Fitting is Newton's method with conjugate-gradient inner solves (Jacobi
preconditioned) and a backtracking line search, to a gradient norm of
``tol`` (default 1e-10).  :func:`refit_many` solves many problems at once —
the same features, different label vectors — as one batched Newton
iteration, which is how flip sets are verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ._backend import DTYPE, Design


@dataclass
class FitInfo:
    """How a fit ended.

    Attributes
    ----------
    grad_norm : np.ndarray (m,) — final gradient norms ``||grad R(w)||``
    iterations : np.ndarray (m,) — Newton iterations per problem
    converged : np.ndarray[bool] (m,)
    """

    grad_norm: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def _penalty_mask(p: int, device) -> torch.Tensor:
    m = torch.ones(p, 1, dtype=DTYPE, device=device)
    m[-1] = 0.0
    return m


def objective(design: Design, Y: torch.Tensor, W: torch.Tensor, l2: float) -> torch.Tensor:
    """``R(w)`` for each column of W (p, m) against labels Y (n, m); returns (m,)."""
    return objective_from_z(design.matvec(W), Y, W, l2)


def gradient(design: Design, Y: torch.Tensor, W: torch.Tensor, l2: float, Z: torch.Tensor | None = None,
             S: torch.Tensor | None = None):
    """Gradient (p, m) and the probabilities (n, m); ``S`` (n, m) are optional sample weights."""
    if Z is None:
        Z = design.matvec(W)
    P = torch.sigmoid(Z)
    G = design.rmatvec(P - Y if S is None else S * (P - Y))
    G[:-1] += l2 * W[:-1]
    return G, P


def hvp(design: Design, D: torch.Tensor, V: torch.Tensor, l2: float) -> torch.Tensor:
    """Hessian-vector products ``(X~^T diag(d_j) X~ + l2 I') v_j`` for each column j."""
    out = design.rmatvec(D * design.matvec(V))
    out[:-1] += l2 * V[:-1]
    return out


def hessian(design: Design, w: torch.Tensor, l2: float) -> torch.Tensor:
    """Dense Hessian (p, p) of ``R`` at ``w`` (p,)."""
    s = torch.sigmoid(design.matvec(w))
    H = design.gram(s * (1 - s))
    H.diagonal()[:-1] += l2
    return H


def _pcg(apply_H: Callable, G: torch.Tensor, precond: Callable, rtol: torch.Tensor, maxiter: int):
    """Batched preconditioned CG for ``H_j d_j = -g_j`` with per-column relative tolerances.

    ``apply_H(V, idx)`` and ``precond(R, idx)`` receive the columns still
    iterating and their indices into ``G``'s columns.
    """
    B = -G
    X = torch.zeros_like(B)
    R = B.clone()
    all_idx = torch.arange(B.shape[1], device=B.device)
    Z = precond(R, all_idx)
    P = Z.clone()
    rz = (R * Z).sum(0)
    bn = torch.linalg.vector_norm(B, dim=0)
    active = torch.linalg.vector_norm(R, dim=0) > rtol * bn
    for _ in range(maxiter):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        Pa = P[:, idx]
        HP = apply_H(Pa, idx)
        curv = (Pa * HP).sum(0)
        alpha = rz[idx] / curv
        X[:, idx] += alpha * Pa
        Ra = R[:, idx] - alpha * HP
        R[:, idx] = Ra
        Za = precond(Ra, idx)
        rz_new = (Ra * Za).sum(0)
        P[:, idx] = Za + (rz_new / rz[idx]) * Pa
        rz[idx] = rz_new
        active[idx] = torch.linalg.vector_norm(Ra, dim=0) > rtol[idx] * bn[idx]
    return X


def newton(design: Design, Y: torch.Tensor, W0: torch.Tensor, l2: float, *, tol: float = 1e-10,
           max_iter: int = 100, precond: Callable | None = None, cg_maxiter: int = 500,
           S: torch.Tensor | None = None) -> tuple[torch.Tensor, FitInfo]:
    """Minimize ``R`` for every column of ``Y`` (n, m), starting from ``W0`` (p, m).

    Inexact Newton: each step solves ``H d = -g`` by preconditioned CG to a
    relative residual ``min(0.1, sqrt(||g||))`` (superlinear convergence),
    followed by a backtracking line search.  ``precond(R)`` applies an
    approximate inverse Hessian to (p, k) residuals; default Jacobi.  ``S``
    (n, m) are optional per-problem sample weights (0 removes a point).

    Returns
    -------
    W : torch.Tensor (p, m)
    info : FitInfo
    """
    W = W0.clone()
    p, m = W.shape
    mask = _penalty_mask(p, W.device)
    Z = design.matvec(W)
    G, P = gradient(design, Y, W, l2, Z, S)
    gnorm = torch.linalg.vector_norm(G, dim=0)
    fval = objective_from_z(Z, Y, W, l2, S)
    iters = torch.zeros(m, dtype=torch.int64)
    active = gnorm > tol
    stalled = torch.zeros(m, dtype=torch.bool, device=W.device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        Pa = P[:, idx]
        D = Pa * (1 - Pa)
        if S is not None:
            D = D * S[:, idx]
        if precond is None:
            pc = _make_jacobi(1.0 / (design.rmatvec_sq(D) + l2 * mask))
        else:
            pc = _ignore_idx(precond)
        apply_H = _make_apply_H(design, D, l2)
        rtol = torch.clamp(torch.sqrt(gnorm[idx]), max=0.1)
        Dir = _pcg(apply_H, G[:, idx], pc, rtol, cg_maxiter)
        # backtracking line search (Armijo, with slack for round-off near the optimum)
        Wa, Ga, fa = W[:, idx], G[:, idx], fval[idx]
        slope = (Ga * Dir).sum(0)
        t = torch.ones(idx.numel(), dtype=DTYPE, device=W.device)
        accepted = torch.zeros(idx.numel(), dtype=torch.bool, device=W.device)
        Wn = Wa.clone()
        Zn = Z[:, idx].clone()
        for _ls in range(40):
            todo = torch.nonzero(~accepted).squeeze(1)
            if todo.numel() == 0:
                break
            Wt = Wa[:, todo] + t[todo] * Dir[:, todo]
            Zt = design.matvec(Wt)
            ft = objective_from_z(Zt, Y[:, idx[todo]], Wt, l2, None if S is None else S[:, idx[todo]])
            ok = ft <= fa[todo] + 1e-4 * t[todo] * slope[todo] + 1e-13 * torch.abs(fa[todo])
            good = todo[ok]
            Wn[:, good] = Wt[:, ok]
            Zn[:, good] = Zt[:, ok]
            accepted[good] = True
            t[todo[~ok]] *= 0.5
        # members whose line search failed entirely have reached round-off: stop them
        fail = ~accepted
        W[:, idx] = Wn
        Z[:, idx] = Zn
        Sa = None if S is None else S[:, idx]
        Gn, Pn = gradient(design, Y[:, idx], Wn, l2, Zn, Sa)
        G[:, idx] = Gn
        P[:, idx] = Pn
        gnorm[idx] = torch.linalg.vector_norm(Gn, dim=0)
        fval[idx] = objective_from_z(Zn, Y[:, idx], Wn, l2, Sa)
        iters[idx.cpu()] += 1
        stalled[idx[fail]] = True
        active = (gnorm > tol) & ~stalled
    conv = (gnorm <= tol).cpu().numpy()
    return W, FitInfo(gnorm.cpu().numpy(), iters.numpy(), conv)


def _make_jacobi(jac):
    def pc(R, idx):
        return R * jac[:, idx]
    return pc


def _ignore_idx(precond):
    def pc(R, idx):
        return precond(R)
    return pc


def _make_apply_H(design, D, l2):
    def apply_H(V, idx):
        return hvp(design, D[:, idx], V, l2)
    return apply_H


def objective_from_z(Z, Y, W, l2, S=None):
    loss = torch.logaddexp(torch.zeros((), dtype=DTYPE, device=Z.device), Z) - Y * Z
    loss = (loss if S is None else S * loss).sum(0)
    return loss + 0.5 * l2 * (W[:-1] ** 2).sum(0)
