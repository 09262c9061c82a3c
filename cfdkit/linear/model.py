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

from ..core.arrays import DTYPE, Design
from ..core.solvers import batched_pcg


@dataclass
class FitInfo:
    """How a fit ended.

    Attributes
    ----------
    grad_norm : np.ndarray (m,) — final gradient norms ``||grad R(w)||``
    iterations : np.ndarray (m,) — Newton iterations per problem
    converged : np.ndarray[bool] (m,)
    certified : np.ndarray[bool] (m,) or None — the refit was stopped early because a sign certificate
        (:mod:`cfdkit.linear.certify`) decided its question; its weights are then an iterate, not the optimum
    """

    grad_norm: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    certified: np.ndarray | None = None

    @property
    def answered(self) -> np.ndarray:
        """bool (m,): converged, or decided by a sign certificate."""
        return self.converged if self.certified is None else (self.converged | self.certified)


def _check_problem(design, Y, W, l2, w_name: str = "W0", tol=None, max_iter=None) -> None:
    """Argument checks of the public entry points (cheap: types, shapes, finiteness of W, l2, tol)."""
    import numbers

    if not isinstance(design, Design):
        raise TypeError(f"design must be a cfdkit.core.arrays.Design (e.g. Design.from_tensor(X)); got {type(design).__name__}.")
    if not isinstance(W, torch.Tensor) or W.dtype != DTYPE:
        raise TypeError(f"{w_name} must be a float64 torch tensor of shape (p,) or (p, m) with p = {design.p}; "
                        f"got {type(W).__name__}{'' if not isinstance(W, torch.Tensor) else ' ' + str(W.dtype)}.")
    if W.dim() not in (1, 2) or W.shape[0] != design.p:
        raise ValueError(f"{w_name} must have shape ({design.p},) or ({design.p}, m) (features + intercept); "
                         f"got {tuple(W.shape)}.")
    if not bool(torch.isfinite(W).all()):
        raise ValueError(f"{w_name} contains NaN or infinite values; pass finite weights.")
    if Y is not None:
        if not isinstance(Y, torch.Tensor):
            raise TypeError(f"Y must be a float64 torch tensor of shape (n, m); got {type(Y).__name__}.")
        want = (design.n,) if W.dim() == 1 else (design.n, W.shape[1])
        if tuple(Y.shape) != want:
            raise ValueError(f"Y must have shape {want} to match the design and {w_name}; got {tuple(Y.shape)}.")
        if not bool(torch.isfinite(Y).all()):
            raise ValueError("Y contains NaN or infinite values; labels must be 0/1.")
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not (float(l2) >= 0 and np.isfinite(float(l2))):
        raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}.")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not float(tol) > 0
                            or not np.isfinite(float(tol))):
        raise ValueError(f"tol must be a finite number > 0; got {tol!r}.")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral)
                                 or int(max_iter) < 1):
        raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")


def penalty_mask(p: int, device) -> torch.Tensor:
    """(p, 1): 1 for the penalized coefficients, 0 for the intercept (last)."""
    m = torch.ones(p, 1, dtype=DTYPE, device=device)
    m[-1] = 0.0
    return m


def objective(design: Design, Y: torch.Tensor, W: torch.Tensor, l2: float) -> torch.Tensor:
    """``R(w)`` for each column of W (p, m) against labels Y (n, m); returns (m,)."""
    _check_problem(design, Y, W, l2, "W")
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
    _check_problem(design, None, w, l2, "w")
    if w.dim() != 1:
        raise ValueError(f"w must have shape ({design.p},); got {tuple(w.shape)}.")
    s = torch.sigmoid(design.matvec(w))
    H = design.gram(s * (1 - s))
    H.diagonal()[:-1] += l2
    return H


def hessian_solver(design: Design, w: torch.Tensor, l2: float, ihvp):
    """Fit the inverse-Hessian solver ``ihvp`` (an unfitted :class:`cfdkit.core.InverseHVP`) to ``H`` at ``w``.

    The Cholesky solver gets the dense ``H`` (:func:`hessian`); the others an operator applying
    ``H V = X~^T D X~ V + l2 * mask * V`` (intercept unpenalized) with its diagonal for preconditioning.
    """
    from ..core.solvers import LinearOperator

    if ihvp.solver == "cholesky":
        return ihvp.fit(hessian(design, w, l2))
    s = torch.sigmoid(design.matvec(w))
    d = (s * (1 - s))[:, None]
    mask = penalty_mask(design.p, w.device)
    op = LinearOperator(lambda V: hvp(design, d.expand(-1, V.shape[1]), V, l2), (design.p, design.p), DTYPE, w.device,
                        diagonal=lambda: (design.rmatvec_sq(d) + l2 * mask)[:, 0])
    return ihvp.fit(op)


def _pcg(apply_H: Callable, G: torch.Tensor, precond: Callable, rtol: torch.Tensor, maxiter: int):
    """Newton direction ``H_j d_j = -g_j`` for every column, by :func:`cfdkit.core.solvers.batched_pcg`."""
    return batched_pcg(apply_H, -G, precond, rtol, maxiter)[0]


def _armijo(f_new: torch.Tensor, f0: torch.Tensor, t, slope: torch.Tensor) -> torch.Tensor:
    """Sufficient decrease ``f(w + t d) <= f(w) + 1e-4 t g.d``, with slack for round-off near the optimum."""
    return f_new <= f0 + 1e-4 * t * slope + 1e-13 * torch.abs(f0)


def _start(design, Y, W0, l2, S, tol, max_iter):
    """Checked start of a batched fit: W (copy of W0), penalty mask, Z = X~ W, gradient, probabilities, norms, R."""
    _check_problem(design, Y, W0, l2, "W0", tol, max_iter)
    if W0.dim() != 2:
        raise ValueError(f"W0 must have shape (p, m); got {tuple(W0.shape)}.")
    W = W0.clone()
    mask = penalty_mask(W.shape[0], W.device)
    Z = design.matvec(W)
    G, P = gradient(design, Y, W, l2, Z, S)
    return W, mask, Z, G, P, torch.linalg.vector_norm(G, dim=0), objective_from_z(Z, Y, W, l2, S)


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
    W, mask, Z, G, P, gnorm, fval = _start(design, Y, W0, l2, S, tol, max_iter)
    m = W.shape[1]
    iters = torch.zeros(m, dtype=torch.int64)
    active = gnorm > tol
    stalled = torch.zeros(m, dtype=torch.bool, device=W.device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        D = _curvature(P, S, idx)
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
            ok = _armijo(ft, fa[todo], t[todo], slope[todo])
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


def newton_globalized(design: Design, Y: torch.Tensor, W0: torch.Tensor, l2: float, *, tol: float = 1e-10,
                      max_iter: int = 100, precond: Callable | None = None, cg_maxiter: int = 500,
                      S: torch.Tensor | None = None) -> tuple[torch.Tensor, FitInfo]:
    """Minimize ``R`` for every column of ``Y`` (n, m) from ``W0`` (p, m) by a globalized Newton method.

    A Levenberg-Marquardt regularized (trust-region type) Newton-CG iteration,
    batched over columns: each step solves ``(H_j + mu_j I) d_j = -g_j`` by
    preconditioned CG and is accepted when the objective falls by at least a
    tenth of the quadratic model's predicted decrease
    ``-(g.d + d.H d / 2)``; then ``mu_j`` shrinks (by 4 when the model was
    good).  A rejected step keeps ``w_j`` and raises ``mu_j`` (to at least
    ``||g_j||``, then by 4), which shortens the step towards steepest descent.
    With ``mu = 0`` the step is Newton's, so a problem the plain iteration
    solves is solved in the same few steps; the damping only acts where a full
    Newton step overshoots — the nearly separable, weakly regularized refits
    whose Hessian is near-singular far from the optimum, where
    :func:`newton` with a line search stalls.  Near round-off, where objective
    differences are noise, a step is accepted when it lowers the gradient norm.

    Converges to ``||grad R|| <= tol``; a column still above ``tol`` after
    ``max_iter`` steps (accepted or not), or whose damping exceeds any useful
    size, is reported with ``converged=False``.

    Returns
    -------
    W : torch.Tensor (p, m)
    info : FitInfo
    """
    W, mask, Z, G, P, gnorm, fval = _start(design, Y, W0, l2, S, tol, max_iter)
    m, dev = W.shape[1], W.device
    mu = torch.zeros(m, dtype=DTYPE, device=dev)
    iters = torch.zeros(m, dtype=torch.int64)
    stalled = ~torch.isfinite(fval) | ~torch.isfinite(gnorm)
    active = (gnorm > tol) & ~stalled
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        D = _curvature(P, S, idx)
        mu_a = mu[idx]
        if precond is None:
            pc = _make_jacobi(1.0 / (design.rmatvec_sq(D) + l2 * mask + mu_a[None, :]))
        else:
            pc = _ignore_idx(precond)

        def apply_H(V, sub, D=D, mu_a=mu_a):
            return hvp(design, D[:, sub], V, l2) + mu_a[sub] * V

        Ga = G[:, idx]
        rtol = torch.clamp(torch.sqrt(gnorm[idx]), max=0.1)
        Dir = _pcg(apply_H, Ga, pc, rtol, cg_maxiter)
        HD = hvp(design, D, Dir, l2)
        pred = -((Ga * Dir).sum(0) + 0.5 * (Dir * HD).sum(0))  # model decrease (undamped H)
        Wt = W[:, idx] + Dir
        Zt = design.matvec(Wt)
        Sa = None if S is None else S[:, idx]
        ft = objective_from_z(Zt, Y[:, idx], Wt, l2, Sa)
        Gt, Pt = gradient(design, Y[:, idx], Wt, l2, Zt, Sa)
        gt = torch.linalg.vector_norm(Gt, dim=0)
        fa = fval[idx]
        actual = fa - ft
        noise = 1e-12 * (torch.abs(fa) + 1.0)
        finite = torch.isfinite(ft) & torch.isfinite(gt)
        ratio = actual / torch.clamp(pred, min=torch.finfo(DTYPE).tiny)
        at_roundoff = (pred <= noise) & (actual >= -noise)
        ok = finite & (pred > 0) & ((ratio >= 0.1) | (at_roundoff & (gt < gnorm[idx])))
        good = idx[ok]
        W[:, good] = Wt[:, ok]
        Z[:, good] = Zt[:, ok]
        G[:, good] = Gt[:, ok]
        P[:, good] = Pt[:, ok]
        gnorm[good] = gt[ok]
        fval[good] = ft[ok]
        # damping: shrink after good model agreement, grow after a rejection
        very_good = ok & (ratio >= 0.75)
        mu_new = mu_a.clone()
        mu_new[very_good] = mu_a[very_good] / 4
        mu_new[~ok] = torch.maximum(4 * mu_a[~ok], gnorm[idx][~ok])
        mu[idx] = mu_new
        iters[idx.cpu()] += 1
        # a damping beyond any curvature scale means no step can be taken at this precision
        stalled[idx] |= (~ok) & (mu_new > 1e30 * (1.0 + gnorm[idx]))
        active = (gnorm > tol) & ~stalled
    conv = (gnorm <= tol).cpu().numpy()
    return W, FitInfo(gnorm.cpu().numpy(), iters.numpy(), conv)


def _curvature(P, S, idx):
    """``sigma (1 - sigma)`` of the columns ``idx`` (times their sample weights ``S``): the Hessian's data weights."""
    Pa = P[:, idx]
    D = Pa * (1 - Pa)
    return D if S is None else D * S[:, idx]


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


def lbfgs(design: Design, Y: torch.Tensor, W0: torch.Tensor, l2: float, *, precond: Callable | None,
          tol: float = 1e-10, max_iter: int = 200, memory: int = 8,
          S: torch.Tensor | None = None, Z0: torch.Tensor | None = None,
          f0: torch.Tensor | None = None, question=None) -> tuple[torch.Tensor, FitInfo]:
    """Minimize ``R`` for every column of ``Y`` with L-BFGS whose initial inverse Hessian is ``precond``.

    Made for refits near a known optimum: with ``precond`` the inverse of the
    original Hessian ``H0`` (a Cholesky solve), a step from the original
    weights is the influence-function step, and the quasi-Newton updates
    absorb how far the altered problem's curvature has moved from ``H0`` —
    a handful of preconditioner applications per problem instead of the
    dozens a Newton-CG refit needs.  ``precond=None`` uses the Jacobi
    diagonal at the start.  Every problem is a column; all iterate in
    lock-step, and finished columns are compacted away so every iteration
    works on contiguous arrays.  Converges to ``||grad R|| <= tol`` (Armijo
    backtracking; a column whose line search cannot make progress at
    round-off level is reported as not converged).

    ``Z0`` (n, m) and ``f0`` (m,), when the caller already has them, are ``X~ W0`` and the objective
    at ``W0`` (as :func:`objective_from_z` computes it); they save the start's sparse product and
    objective pass.

    ``question`` (optional, relabel refits only: ``S`` must be None): an object with
    ``check(cols, W, Z, G, P, gnorm, local=None) -> bool`` (a :class:`cfdkit.linear.certify.RefitQuestion`)
    that tries to prove, from the current iterate, on which side of the threshold each column's test prediction lands
    at the optimum.  A column it decides stops there (``FitInfo.certified``); its weights are then the
    iterate.  Every unfinished column is offered to it at every iteration (it decides itself when a
    check is worth its cost).
    """
    _check_problem(design, Y, W0, l2, "W0", tol, max_iter)
    if W0.dim() != 2:
        raise ValueError(f"W0 must have shape (p, m); got {tuple(W0.shape)}.")
    p, m = W0.shape
    if (Z0 is None) != (f0 is None):
        raise ValueError("Z0 and f0 go together: pass both (X~ W0 and the objective at W0) or neither.")
    if Z0 is not None and (tuple(Z0.shape) != (design.n, m) or tuple(f0.shape) != (m,)):
        raise ValueError(f"Z0 must have shape ({design.n}, {m}) and f0 ({m},); got {tuple(Z0.shape)} and "
                         f"{tuple(f0.shape)}.")
    dev = W0.device
    out_W = W0.clone()
    out_g = torch.zeros(m, dtype=DTYPE, device=dev)
    out_it = torch.zeros(m, dtype=torch.int64, device=dev)
    pos = torch.arange(m, device=dev)
    W, Yw, Sw = W0.clone(), Y, S
    Z = design.matvec(W) if Z0 is None else Z0
    G, P = gradient(design, Yw, W, l2, Z, Sw)
    fval = objective_from_z(Z, Yw, W, l2, Sw) if f0 is None else f0.clone()
    gnorm = torch.linalg.vector_norm(G, dim=0)
    it = torch.zeros(m, dtype=torch.int64, device=dev)
    stalled = torch.zeros(m, dtype=torch.bool, device=dev)
    if question is not None and S is not None:
        raise ValueError("question (sign certificates) is for relabel refits; pass S=None.")
    cert = torch.zeros(m, dtype=torch.bool, device=dev)  # decided by the certificate (local columns)
    out_cert = torch.zeros(m, dtype=torch.bool, device=dev)
    if precond is None:  # Jacobi: the diagonal of the Hessian at the start
        D0 = P * (1 - P) if S is None else P * (1 - P) * S
        jac = 1.0 / (design.rmatvec_sq(D0) + l2 * penalty_mask(p, dev))
    else:
        jac = None
    # the curvature pairs only steer the direction (every gradient and test stays float64): float32 halves
    # the memory traffic of the two-loop recursion, the largest cost per iteration after the preconditioner
    hdt = torch.float32
    Sh = torch.zeros(memory, p, m, dtype=hdt, device=dev)
    Yh = torch.zeros(memory, p, m, dtype=hdt, device=dev)
    rho = torch.zeros(memory, m, dtype=DTYPE, device=dev)
    frozen = torch.zeros(m, dtype=torch.bool, device=dev)  # finished columns not yet compacted away
    for k in range(max_iter + 1):
        if question is not None and k < max_iter:
            ask = ~frozen & ~stalled & (gnorm > tol)
            if bool(ask.all()):
                cert = question.check(pos, W, Z, G, P, gnorm).to(dev)
            elif bool(ask.any()):
                a = torch.nonzero(ask).squeeze(1)
                cert[a] = question.check(pos[a], W, Z, G, P, gnorm, local=a).to(dev)
        done = ((gnorm <= tol) | stalled | cert | (k == max_iter)) & ~frozen
        if bool(done.any()):
            out_W[:, pos[done]] = W[:, done]
            out_g[pos[done]] = gnorm[done]
            out_it[pos[done]] = it[done]
            out_cert[pos[done]] = cert[done] & (gnorm[done] > tol)
            frozen |= done
            n_frozen = int(frozen.sum())
            if n_frozen == frozen.numel():
                break
            # compacting copies every array (the history most of all): do it once an eighth of the
            # columns have finished; until then finished columns ride along with a zero step
            if 8 * n_frozen >= frozen.numel():
                keep = ~frozen
                pos, W, Z, G, P = pos[keep], W[:, keep], Z[:, keep], G[:, keep], P[:, keep]
                Yw = Yw[:, keep]
                Sw = None if Sw is None else Sw[:, keep]
                fval, gnorm, it, stalled = fval[keep], gnorm[keep], it[keep], stalled[keep]
                cert = cert[keep]
                Sh, Yh, rho = Sh[:, :, keep], Yh[:, :, keep], rho[:, keep]
                frozen = frozen[keep]
                if jac is not None:
                    jac = jac[:, keep]
        live = None if not bool(frozen.any()) else (~frozen).to(DTYPE)
        # two-loop recursion, newest pair first
        q = G.to(hdt, copy=True)
        slots = [(k - 1 - j) % memory for j in range(min(k, memory))]
        alphas = []
        for s_ in slots:
            a = (rho[s_] * torch.linalg.vecdot(Sh[s_], q, dim=0)).to(hdt)
            q -= a * Yh[s_]
            alphas.append(a)
        r = q.to(DTYPE) * jac if jac is not None else precond(q.to(DTYPE))
        if slots:
            r = r.to(hdt)
            for s_, a in zip(reversed(slots), reversed(alphas)):
                b = (rho[s_] * torch.linalg.vecdot(Yh[s_], r, dim=0)).to(hdt)
                r += Sh[s_] * (a - b)
            r = r.to(DTYPE)
        Dir = -r
        if live is not None:
            Dir *= live  # finished columns stay where they were recorded
        slope = (G * Dir).sum(0)
        bad = (slope >= 0) & ~frozen  # not a descent direction (round-off): fall back to steepest descent
        if bool(bad.any()):
            Dir[:, bad] = -G[:, bad]
            slope[bad] = -(G[:, bad] ** 2).sum(0)
        # Armijo backtracking; the first trial covers every column without indexing
        Wn = W + Dir
        Zn = design.matvec(Wn)
        fn = objective_from_z(Zn, Yw, Wn, l2, Sw)
        ok = _armijo(fn, fval, 1.0, slope) | frozen
        t = torch.ones_like(fval)
        for _ls in range(40):
            todo = torch.nonzero(~ok).squeeze(1)
            if todo.numel() == 0:
                break
            t[todo] *= 0.5
            Wt = W[:, todo] + t[todo] * Dir[:, todo]
            Zt = design.matvec(Wt)
            ft = objective_from_z(Zt, Yw[:, todo], Wt, l2, None if Sw is None else Sw[:, todo])
            good = _armijo(ft, fval[todo], t[todo], slope[todo])
            g_idx = todo[good]
            Wn[:, g_idx], Zn[:, g_idx], fn[g_idx] = Wt[:, good], Zt[:, good], ft[good]
            ok[g_idx] = True
        failed = ~ok
        if bool(failed.any()):  # keep the old point for those columns
            Wn[:, failed], Zn[:, failed], fn[failed] = W[:, failed], Z[:, failed], fval[failed]
        Gn, Pn = gradient(design, Yw, Wn, l2, Zn, Sw)
        slot = k % memory
        s_vec, y_vec = Wn - W, Gn - G
        sy = (s_vec * y_vec).sum(0)
        ok_pair = sy > 1e-16 * torch.linalg.vector_norm(s_vec, dim=0) * torch.linalg.vector_norm(y_vec, dim=0)
        Sh[slot], Yh[slot] = s_vec.to(hdt), y_vec.to(hdt)
        rho[slot] = torch.where(ok_pair, 1.0 / torch.where(ok_pair, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        W, Z, G, P, fval = Wn, Zn, Gn, Pn, fn
        gnorm = torch.linalg.vector_norm(G, dim=0)
        it += 1
        stalled |= failed
    conv = (out_g <= tol).cpu().numpy()
    return out_W, FitInfo(out_g.cpu().numpy(), out_it.cpu().numpy(), conv,
                          None if question is None else out_cert.cpu().numpy())
