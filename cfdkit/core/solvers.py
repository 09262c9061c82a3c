"""Inverse-Hessian products, four ways, behind one interface.

``InverseHVP(solver=...)`` computes ``X = H^{-1} B`` for a symmetric positive
definite ``H`` (p, p) and right-hand sides ``B`` (p,) or (p, m):

* ``"cholesky"`` — explicit: factor ``H = L L^T`` once, then two triangular
  solves per right-hand side.  Exact to round-off.  Diagnostics: a positive
  definiteness check and a condition-number estimate (LAPACK's estimator on
  the CPU, subspace iterations on a GPU).
* ``"cg"`` — conjugate gradients on many right-hand sides at once (each column
  its own step sizes), Jacobi-preconditioned when the operator exposes its
  diagonal.  Converges to ``||H x - b|| <= tol ||b||`` per column.
* ``"lissa"`` — the LiSSA recursion of Agarwal et al. (2017) as used for
  influence functions by Koh & Liang (2017), here with the full Hessian:
  ``h_0 = b, h_j = b + (I - H/s) h_{j-1}, x = h_J / s``.  With ``s`` above the
  largest eigenvalue the error after ``J`` iterations obeys
  ``||x_J - x|| <= (1 - lambda_min/s)^(J+1) ||x||`` (see :func:`lissa_error_bound`).
* ``"arnoldi"`` — Schioppa et al. (2022): Arnoldi (for symmetric ``H``, Lanczos
  with full re-orthogonalization) builds a Krylov basis, the top ``rank``
  Ritz pairs give ``H^{-1} ~ U diag(1/theta) U^T``.  Exact when ``rank = p``;
  otherwise the part of ``b`` outside the retained eigenspace is dropped, and
  ``diagnostics.captured`` reports how much of ``b`` was kept.

All four report :class:`SolverDiagnostics` with every result; an iterative
solver that stops before its tolerance issues a :class:`SolverConvergenceWarning`
(and sets ``converged=False``) rather than returning a silently wrong answer.

These are the inverse-Hessian-vector products named in Kim, Mitchell, Wang
(NLDL 2026) — explicit, conjugate gradients, LiSSA, Arnoldi.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .arrays import DTYPE
from .validation import NotFittedError, check_choice, check_finite_real, check_positive_int, check_seed

SOLVERS = ("cholesky", "cg", "lissa", "arnoldi")


def batched_pcg(apply_H: Callable, B: torch.Tensor, precond: Callable | None, rtol, maxiter: int):
    """Batched preconditioned conjugate gradients: ``H_j x_j = b_j`` for every column of ``B`` (p, m).

    The one CG of cfdkit (the ``cg`` solver and the Newton steps of the fits use it).  Columns stop independently
    when ``||r_j|| <= rtol_j ||b_j||``.  ``apply_H(V, idx)`` and ``precond(R, idx)`` receive the columns still
    iterating and their indices into ``B``'s columns (``precond=None``: no preconditioner).

    Returns
    -------
    X : torch.Tensor (p, m)
    iterations : torch.Tensor of int64 (m,), on the CPU
    """
    m = B.shape[1]
    rtol = torch.as_tensor(rtol, dtype=B.dtype, device=B.device).expand(m)
    X = torch.zeros_like(B)
    R = B.clone()
    all_idx = torch.arange(m, device=B.device)
    Z = precond(R, all_idx) if precond is not None else R.clone()
    P = Z.clone()
    rz = (R * Z).sum(0)
    bn = torch.linalg.vector_norm(B, dim=0)
    iters = torch.zeros(m, dtype=torch.int64)
    active = torch.linalg.vector_norm(R, dim=0) > rtol * bn
    for _ in range(maxiter):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).squeeze(1)
        Pa = P[:, idx]
        HP = apply_H(Pa, idx)
        alpha = rz[idx] / (Pa * HP).sum(0)
        X[:, idx] += alpha * Pa
        Ra = R[:, idx] - alpha * HP
        R[:, idx] = Ra
        iters[idx.cpu()] += 1
        Za = precond(Ra, idx) if precond is not None else Ra
        rz_new = (Ra * Za).sum(0)
        P[:, idx] = Za + (rz_new / rz[idx]) * Pa
        rz[idx] = rz_new
        active[idx] = torch.linalg.vector_norm(Ra, dim=0) > rtol[idx] * bn[idx]
    return X, iters


class SolverConvergenceWarning(UserWarning):
    """An iterative inverse-Hessian solver stopped before reaching its tolerance."""


class LinearOperator:
    """A symmetric (p, p) operator known through its products.

    Parameters
    ----------
    matvec : callable
        ``matvec(V)`` returns ``H @ V`` for ``V`` of shape (p, m).
    shape : tuple (p, p)
    dtype, device : torch dtype and device of the operator
    diagonal : callable, optional
        Returns ``diag(H)`` of shape (p,); used for Jacobi preconditioning.
    dense : callable, optional
        Returns ``H`` as a dense (p, p) tensor (used by the Cholesky solver;
        otherwise it is assembled from ``p`` products).
    """

    def __init__(self, matvec: Callable, shape, dtype=DTYPE, device="cpu", diagonal=None, dense=None):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"shape must be square (p, p); got {shape}.")
        self._matvec = matvec
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = dtype
        self.device = torch.device(device)
        self._diagonal = diagonal
        self._dense = dense

    def matvec(self, V: torch.Tensor) -> torch.Tensor:
        return self._matvec(V)

    def diagonal(self):
        return None if self._diagonal is None else self._diagonal()

    def to_dense(self) -> torch.Tensor:
        if self._dense is not None:
            return self._dense()
        eye = torch.eye(self.shape[0], dtype=self.dtype, device=self.device)
        H = self.matvec(eye)
        _check_symmetric_finite(H)  # round-off asymmetry passes; a non-symmetric operator does not
        return 0.5 * (H + H.T)


def _real_tensor(A, name: str, expected: str, fix: str) -> torch.Tensor:
    """A real float64 tensor from an array-like, or a TypeError naming ``name``."""
    try:
        arr = np.asarray(A)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array {expected}; got {type(A).__name__}.") from exc
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} is complex-valued; pass {fix}.")
    try:
        return torch.as_tensor(np.asarray(arr, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array {expected}; got dtype {arr.dtype}.") from exc


def as_operator(H) -> LinearOperator:
    """Wrap a dense (p, p) tensor/array or pass a :class:`LinearOperator` through."""
    if isinstance(H, LinearOperator):
        return H
    if isinstance(H, torch.Tensor):
        if H.is_complex():
            raise TypeError("H is complex-valued; pass a real symmetric (p, p) matrix.")
        if H.layout != torch.strided:
            H = H.to_dense()
    else:
        if hasattr(H, "toarray"):  # scipy.sparse
            H = H.toarray()
        H = _real_tensor(H, "H", "(p, p), or a LinearOperator", "a real symmetric (p, p) matrix")
    if H.dim() != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"H must be a non-empty square (p, p) matrix; got shape {tuple(H.shape)}.")
    H = H.to(DTYPE)
    return LinearOperator(lambda V: H @ V, tuple(H.shape), H.dtype, H.device, diagonal=lambda: torch.diagonal(H), dense=lambda: H)


def _check_symmetric_finite(H: torch.Tensor, rtol: float = 1e-8, block: int = 512) -> None:
    """Refuse a dense H with NaN/inf entries, or not symmetric to ``rtol * max|H|``.

    Reductions without full-size temporaries (one ``inf``-norm pass, then the asymmetry in row blocks
    against the matching column blocks): a (p, p) float64 Hessian is checked in ~0.1 s at p = 5,001.
    """
    if H.numel() == 0:
        return
    scale = float(torch.linalg.vector_norm(H, ord=float("inf")))  # NaN or inf when an entry is
    if not np.isfinite(scale):
        raise ValueError(f"H contains {int((~torch.isfinite(H)).sum())} NaN or infinite value(s); check the fitted "
                         "model (features too large? NaN weights?) before inverting its Hessian.")
    asym = 0.0
    for i in range(0, H.shape[0], block):
        j = min(H.shape[0], i + block)
        asym = max(asym, float(torch.linalg.vector_norm(H[i:j] - H[:, i:j].T, ord=float("inf"))))
    if asym > rtol * max(scale, np.finfo(np.float64).tiny):
        raise ValueError(f"H is not symmetric (max |H - H^T| = {asym:.3g}, {asym / scale:.2e} of max |H|); the "
                         "inverse-Hessian solvers assume a symmetric positive definite H. Pass the Hessian "
                         "(or 0.5 * (H + H.T) if the asymmetry is round-off).")


@dataclass
class SolverDiagnostics:
    """What a solver did, travelling with every result.

    Attributes
    ----------
    solver : str
    converged : bool
        All columns reached the tolerance (iterative solvers) / the
        factorization succeeded (Cholesky).
    iterations : np.ndarray[int64] (m,) or None
        Iterations used per right-hand side (CG, LiSSA) or Lanczos steps.
    residual_norms : np.ndarray[float64] (m,) or None
        Relative residuals ``||H x - b|| / ||b||`` per right-hand side.
    tol : float or None
    positive_definite : bool or None
    condition_estimate : float or None
    eig_min_estimate, eig_max_estimate : float or None
    captured : np.ndarray (m,) or None
        Arnoldi only: ``||U^T b|| / ||b||``, the share of each right-hand side
        inside the retained eigenspace.
    error_bound : float or None
        LiSSA only: the a-priori relative error bound after the iterations run.
    message : str
    """

    solver: str
    converged: bool = True
    iterations: np.ndarray | None = None
    residual_norms: np.ndarray | None = None
    tol: float | None = None
    positive_definite: bool | None = None
    condition_estimate: float | None = None
    eig_min_estimate: float | None = None
    eig_max_estimate: float | None = None
    captured: np.ndarray | None = None
    error_bound: float | None = None
    message: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"solver={self.solver}", f"converged={self.converged}"]
        if self.residual_norms is not None and self.residual_norms.size:
            parts.append(f"max_rel_residual={float(np.max(self.residual_norms)):.2e}")
        if self.iterations is not None and np.size(self.iterations):
            parts.append(f"max_iterations={int(np.max(self.iterations))}")
        if self.condition_estimate is not None:
            parts.append(f"cond~{self.condition_estimate:.3g}")
        if self.message:
            parts.append(self.message)
        return ", ".join(parts)


@dataclass
class SolveResult:
    """``x = H^{-1} b`` and the diagnostics of how it was obtained.

    Attributes
    ----------
    x : torch.Tensor, same shape as ``B``
    diagnostics : SolverDiagnostics
    """

    x: torch.Tensor
    diagnostics: SolverDiagnostics


def _as_columns(B: torch.Tensor):
    if B.dim() == 1:
        return B[:, None], True
    if B.dim() != 2:
        raise ValueError(f"B must have shape (p,) or (p, m); got {tuple(B.shape)}.")
    return B, False


def _rel_residual(op: LinearOperator, X: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    R = op.matvec(X) - B
    bn = torch.linalg.vector_norm(B, dim=0)
    return torch.linalg.vector_norm(R, dim=0) / torch.where(bn > 0, bn, torch.ones_like(bn))


def power_iteration(matvec: Callable, p: int, device, iters: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of a symmetric PSD operator by power iteration (Rayleigh quotient)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(p, 1, generator=g, dtype=DTYPE).to(device)
    v /= torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(iters):
        w = matvec(v)
        lam = float((v * w).sum())
        nrm = torch.linalg.vector_norm(w)
        if float(nrm) == 0.0:
            return 0.0
        v = w / nrm
    return lam


def subspace_top_eig(matmul: Callable, p: int, device, block: int = 8, iters: int = 4, seed: int = 0) -> float:
    """Largest eigenvalue estimate by block subspace iteration with Rayleigh-Ritz.

    A handful of passes over the operator with ``block`` vectors each: cheap when each
    pass is memory-bound (dense matrix products, triangular solves).  A lower bound
    that is usually within a few percent.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(p, min(block, p), generator=g, dtype=DTYPE).to(device)).Q
    for _ in range(iters):
        Q = torch.linalg.qr(matmul(Q)).Q
    T = Q.T @ matmul(Q)
    return float(torch.linalg.eigvalsh(0.5 * (T + T.T)).max())


def lissa_error_bound(eig_min: float, scale: float, iterations: int) -> float:
    """A-priori relative error of LiSSA: ``(1 - eig_min/scale)^(iterations+1)``."""
    rho = max(0.0, 1.0 - eig_min / scale)
    return float(rho ** (iterations + 1))


class InverseHVP:
    """Inverse-Hessian-vector products with a selectable solver.

    Parameters
    ----------
    solver : {"cholesky", "cg", "lissa", "arnoldi"}
    tol : float
        Relative residual target for ``"cg"`` and ``"lissa"`` (default 1e-10).
    maxiter : int, optional
        Iteration cap for CG (default ``max(2p, 1000)``) and LiSSA (default 10,000).
    scale : float, optional
        LiSSA's scale ``s``; default ``1.05 * lambda_max`` from power iteration.
    rank : int, optional
        Arnoldi: number of top Ritz pairs kept (default ``min(p, 100)``).
    n_iter : int, optional
        Arnoldi: Lanczos steps (default ``min(p, 2 * rank)``; at least ``rank``).
    damping : float
        Added to the diagonal: solves ``(H + damping I) x = b``.
    condition : bool
        Cholesky: estimate the condition number — on the CPU LAPACK's ``dpocon``
        (1-norm, from the factor, O(p^2)); on a GPU block subspace iterations on
        ``H`` and ``H^{-1}`` (2-norm, a slight underestimate).
    seed : int
        Seed of the random start vectors (power iteration, Lanczos).
    warn : bool
        Issue :class:`SolverConvergenceWarning` when a solve did not converge.

    Examples
    --------
    >>> ihvp = InverseHVP("cg", tol=1e-8).fit(H)      # doctest: +SKIP
    >>> res = ihvp.solve(B); res.x.shape, res.diagnostics.converged  # doctest: +SKIP
    """

    def __init__(self, solver: str = "cholesky", *, tol: float = 1e-10, maxiter: int | None = None,
                 scale: float | None = None, rank: int | None = None, n_iter: int | None = None,
                 damping: float = 0.0, condition: bool = True, seed: int = 0, warn: bool = True):
        self.solver = check_choice(solver, "solver", SOLVERS)
        if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real) or not (0 < float(tol) < 1):
            raise ValueError(f"tol must be a number in (0, 1); got {tol!r}.")
        self.tol = float(tol)
        self.maxiter = check_positive_int(maxiter, "maxiter", allow_none=True)
        self.scale = None if scale is None else check_finite_real(scale, "scale", lo=0.0, lo_open=True,
                                                                 hint="Leave scale=None for LiSSA's automatic choice.")
        self.rank = check_positive_int(rank, "rank", allow_none=True)
        self.n_iter = check_positive_int(n_iter, "n_iter", allow_none=True)
        self.damping = check_finite_real(damping, "damping", lo=0.0, hint="damping adds damping * I to H; use 0 or a small positive number.")
        self.condition = bool(condition)
        self.seed = check_seed(seed)
        self.warn = bool(warn)

    # ------------------------------------------------------------------ fit
    def fit(self, H) -> "InverseHVP":
        """Prepare the solver for ``H`` (factorize once, estimate spectra, build the Krylov basis)."""
        op = as_operator(H)
        self._checked = op._dense is not None  # a dense matrix: check it now (cheap next to any solve)
        if self._checked:
            _check_symmetric_finite(op._dense())
        if self.damping:
            base, d = op, self.damping
            op = LinearOperator(
                lambda V: base.matvec(V) + d * V, base.shape, base.dtype, base.device,
                diagonal=(None if base._diagonal is None else (lambda: base.diagonal() + d)),
                dense=(lambda: base.to_dense() + d * torch.eye(base.shape[0], dtype=base.dtype, device=base.device)),
            )
        self.op_ = op
        self.p_ = op.shape[0]
        getattr(self, f"_fit_{self.solver}")()
        return self

    def _fit_cholesky(self):
        H = self.op_.to_dense()
        if not getattr(self, "_checked", False):  # an operator materialized here (a dense H was checked in fit)
            _check_symmetric_finite(H)
        L, info = torch.linalg.cholesky_ex(H)
        pd = int(info) == 0
        diag = SolverDiagnostics("cholesky", converged=pd, positive_definite=pd)
        if not pd:
            raise ValueError(
                "The Hessian is not positive definite (Cholesky failed at column "
                f"{int(info)}); increase the regularization (l2) or pass damping > 0."
            )
        self.L_ = L
        if self.condition:
            if H.device.type == "cpu":
                # LAPACK's estimator on the factor: O(p^2), a few triangular solves (1-norm condition)
                from scipy.linalg.lapack import dpocon

                anorm = float(torch.linalg.matrix_norm(H, ord=1))
                rcond, _ = dpocon(L.numpy().T, anorm, uplo="U")  # F-ordered L^T: no copy
                diag.condition_estimate = 1.0 / rcond if rcond > 0 else float("inf")
                diag.extra["condition_norm"] = "1-norm (LAPACK dpocon)"
            else:
                lmax = subspace_top_eig(self.op_.matvec, self.p_, H.device, seed=self.seed)
                inv_max = subspace_top_eig(lambda V: torch.cholesky_solve(V, L), self.p_, H.device, seed=self.seed + 1)
                lmin = 1.0 / inv_max if inv_max > 0 else float("nan")
                diag.eig_max_estimate, diag.eig_min_estimate = lmax, lmin
                diag.condition_estimate = lmax / lmin if lmin > 0 else float("inf")
                diag.extra["condition_norm"] = "2-norm (subspace iteration)"
            if diag.condition_estimate > 1e12:
                warnings.warn(
                    f"The Hessian is badly conditioned (cond ~ {diag.condition_estimate:.2e}); influence "
                    "estimates may be inaccurate. Consider a larger l2.", SolverConvergenceWarning, stacklevel=3)
        self.fit_diagnostics_ = diag

    def _fit_cg(self):
        d = self.op_.diagonal()
        self.precond_ = None if d is None else 1.0 / torch.clamp(d, min=torch.finfo(DTYPE).tiny)
        self.fit_diagnostics_ = SolverDiagnostics("cg", tol=self.tol)

    def _fit_lissa(self):
        lmax = power_iteration(self.op_.matvec, self.p_, self.op_.device, iters=50, seed=self.seed)
        scale = float(self.scale) if self.scale is not None else 1.05 * lmax
        if scale <= lmax / 2:
            raise ValueError(
                f"LiSSA scale={scale:.4g} is too small for lambda_max ~ {lmax:.4g}: the recursion diverges. "
                "Leave scale=None or pass a value above lambda_max.")
        self.scale_ = scale
        self.fit_diagnostics_ = SolverDiagnostics("lissa", tol=self.tol, eig_max_estimate=lmax)

    def _fit_arnoldi(self):
        p = self.p_
        rank = min(self.rank or min(p, 100), p)
        n_iter = min(p, max(rank, self.n_iter or 2 * rank))
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        Q = torch.zeros(p, n_iter + 1, dtype=DTYPE, device=self.op_.device)
        q = torch.randn(p, generator=g, dtype=DTYPE).to(self.op_.device)
        Q[:, 0] = q / torch.linalg.vector_norm(q)
        alpha = torch.zeros(n_iter, dtype=DTYPE)
        beta = torch.zeros(n_iter, dtype=DTYPE)
        steps = n_iter
        for j in range(n_iter):
            w = self.op_.matvec(Q[:, j:j + 1])[:, 0]
            alpha[j] = torch.dot(w, Q[:, j])
            # full re-orthogonalization (twice is enough)
            for _ in range(2):
                w = w - Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
            b = torch.linalg.vector_norm(w)
            beta[j] = b
            if float(b) < 1e-12 * max(1.0, abs(float(alpha[j]))):
                steps = j + 1
                break
            Q[:, j + 1] = w / b
        T = torch.diag(alpha[:steps]) + torch.diag(beta[:steps - 1], 1) + torch.diag(beta[:steps - 1], -1)
        theta, S = torch.linalg.eigh(T)
        keep = torch.argsort(theta, descending=True)[: min(rank, steps)]
        theta, S = theta[keep], S[:, keep]
        # Ritz residual estimates |beta_k * s_k,last|
        ritz_res = (beta[steps - 1] * S[-1, :]).abs() if steps < p else torch.zeros_like(theta)
        if float(theta.min()) <= 0:
            raise ValueError("Arnoldi found a non-positive Ritz value: the Hessian is not positive definite; "
                             "increase l2 or pass damping > 0.")
        self.U_ = Q[:, :steps] @ S.to(Q.device)
        self.theta_ = theta.to(Q.device)
        self.fit_diagnostics_ = SolverDiagnostics(
            "arnoldi", iterations=np.array([steps]), eig_max_estimate=float(theta.max()),
            eig_min_estimate=float(theta.min()),
            extra={"rank": int(theta.numel()), "ritz_residuals": ritz_res.cpu().numpy()},
        )

    # ---------------------------------------------------------------- solve
    @property
    def cholesky_factor(self) -> torch.Tensor | None:
        """The lower-triangular ``L`` with ``H = L L^T`` (float64, (p, p)) for ``solver="cholesky"``; else None.

        Scores and refits use it for triangular solves and as a preconditioner.
        """
        if not hasattr(self, "op_"):
            raise NotFittedError("This InverseHVP is not fitted yet; call fit(H) first.")
        return getattr(self, "L_", None)

    def solve(self, B) -> SolveResult:
        """Solve ``H x = b`` for each column of ``B`` (p,) or (p, m)."""
        if not hasattr(self, "op_"):
            raise NotFittedError("This InverseHVP is not fitted yet; call fit(H) before solve(B).")
        if isinstance(B, torch.Tensor):
            if B.is_complex():
                raise TypeError("B is complex-valued; pass a real right-hand side.")
        else:
            B = _real_tensor(B, "B", "of shape (p,) or (p, m)", "a real right-hand side")
        B = B.to(device=self.op_.device, dtype=DTYPE)
        if B.dim() not in (1, 2):
            raise ValueError(f"B must have shape (p,) or (p, m) with p = {self.p_}; got {tuple(B.shape)}.")
        if B.shape[0] != self.p_:
            raise ValueError(f"B has {B.shape[0]} rows but H is {self.p_} x {self.p_}; pass B of shape ({self.p_},) "
                             f"or ({self.p_}, m).")
        if B.numel() and not bool(torch.isfinite(B).all()):
            raise ValueError(f"B contains {int((~torch.isfinite(B)).sum())} NaN or infinite value(s); the solve "
                             "would return NaN. Check how the right-hand side was computed.")
        Bc, was_vec = _as_columns(B)
        X, diag = getattr(self, f"_solve_{self.solver}")(Bc)
        if self.warn and not diag.converged:
            warnings.warn(f"Inverse-Hessian solve did not converge: {diag.summary()}", SolverConvergenceWarning, stacklevel=2)
        return SolveResult(X[:, 0] if was_vec else X, diag)

    def _solve_cholesky(self, B):
        X = torch.cholesky_solve(B, self.L_)
        f = self.fit_diagnostics_
        return X, SolverDiagnostics("cholesky", converged=True, positive_definite=True,
                                    condition_estimate=f.condition_estimate, eig_min_estimate=f.eig_min_estimate,
                                    eig_max_estimate=f.eig_max_estimate)

    def _solve_cg(self, B):
        op = self.op_
        maxiter = self.maxiter or max(2 * self.p_, 1000)
        Minv = self.precond_
        pc = None if Minv is None else (lambda R, idx: R * Minv[:, None])
        X, iters = batched_pcg(lambda V, idx: op.matvec(V), B, pc, self.tol, maxiter)
        res = _rel_residual(op, X, B)
        conv = bool((res <= self.tol * 10).all())
        return X, SolverDiagnostics("cg", converged=conv, iterations=iters.numpy(), residual_norms=res.cpu().numpy(),
                                    tol=self.tol, message="" if conv else f"stopped at maxiter={maxiter}")

    def _solve_lissa(self, B):
        op, s = self.op_, self.scale_
        maxiter = self.maxiter or 10_000
        m = B.shape[1]
        Hh = B.clone()
        iters = torch.zeros(m, dtype=torch.int64)
        active = torch.ones(m, dtype=torch.bool, device=B.device)
        res = torch.full((m,), float("inf"), dtype=DTYPE, device=B.device)
        check_every = 10
        for j in range(1, maxiter + 1):
            idx = torch.nonzero(active).squeeze(1)
            if idx.numel() == 0:
                break
            Ha = Hh[:, idx]
            Hh[:, idx] = B[:, idx] + Ha - op.matvec(Ha) / s
            iters[idx.cpu()] = j
            if j % check_every == 0 or j == maxiter:
                r = _rel_residual(op, Hh[:, idx] / s, B[:, idx])
                res[idx] = r
                active[idx] = r > self.tol
        X = Hh / s
        res = _rel_residual(op, X, B)
        conv = bool((res <= self.tol * 10).all())
        diag = SolverDiagnostics("lissa", converged=conv, iterations=iters.numpy(), residual_norms=res.cpu().numpy(),
                                 tol=self.tol, eig_max_estimate=self.fit_diagnostics_.eig_max_estimate,
                                 message="" if conv else f"stopped at maxiter={maxiter} (scale={s:.4g})")
        diag.extra["scale"] = s
        return X, diag

    def _solve_arnoldi(self, B):
        C = self.U_.T @ B
        X = self.U_ @ (C / self.theta_[:, None])
        bn = torch.linalg.vector_norm(B, dim=0)
        bn = torch.where(bn > 0, bn, torch.ones_like(bn))
        captured = torch.linalg.vector_norm(C, dim=0) / bn
        res = _rel_residual(self.op_, X, B)
        f = self.fit_diagnostics_
        full = f.extra["rank"] >= self.p_
        # Arnoldi "converges" when its Ritz pairs do; a truncated rank is an approximation by design.
        conv = bool(np.all(f.extra["ritz_residuals"] <= 1e-6 * max(1.0, f.eig_max_estimate)))
        return X, SolverDiagnostics("arnoldi", converged=conv, iterations=f.iterations, residual_norms=res.cpu().numpy(),
                                    captured=captured.cpu().numpy(), eig_min_estimate=f.eig_min_estimate,
                                    eig_max_estimate=f.eig_max_estimate,
                                    message=("full rank" if full else f"rank {f.extra['rank']} of {self.p_}")
                                    + ("" if conv else "; Ritz pairs not converged, raise n_iter"),
                                    extra={"rank": f.extra["rank"]})
