"""Training-point scores for test points, shape (n_test, n_train).

Notation: ``x~ = [x, 1]``, ``sigma_i = P(y=1 | x_i)``, ``s'_t = sigma_t (1 - sigma_t)``
(so ``grad_w f(x_t) = s'_t x~_t``), ``grad L_i = (sigma_i - y_i) x~_i``, and ``H`` the
Hessian of ``R(w) = sum_i L_i + l2/2 ||w||^2`` at the fitted ``w``.  Write
``K[t, i] = x~_t^T H^{-1} x~_i``.

``ip_relabel`` (Yang, Xu & Yu 2024, Eq. 4)
    ``Delta_t f[i] = grad f(x_t)^T Delta_i w`` with ``Delta_i w = -H^{-1} grad l_i``
    and ``grad l_i = grad L(x_i, 1 - y_i) - grad L(x_i, y_i) = (2 y_i - 1) x~_i``::

        ip_relabel[t, i] = -s'_t (2 y_i - 1) K[t, i]

    the estimated change of ``P(y_t = 1)`` when the label of ``i`` is flipped.
    (The paper prints ``Delta w = +1/N H^{-1} grad l``; the minus sign is the
    first-order optimality condition, and the 1/N is absorbed because our
    objective sums the losses.)
``ip_remove`` (Yang, Jain & Wallace 2023)
    ``ip_remove[t, i] = s'_t (sigma_i - y_i) K[t, i]``: the estimated change of
    ``P(y_t = 1)`` when ``i`` is removed (``Delta w = +H^{-1} grad L_i``).
``influence`` (Koh & Liang 2017), on the test loss
    ``influence[t, i] = -grad L_t^T H^{-1} grad L_i``: d(test loss)/d(weight of
    ``i``).  Positive: upweighting ``i`` *increases* the test loss (harmful);
    negative: helpful.  The test label defaults to the predicted label.
``relatif`` (Barshan et al. 2020, in the form the relabeling paper uses)
    ``cos(H^{-1/2} grad L_t, H^{-1/2} grad L_i)``.  Positive: ``i`` supports
    the test label (upweighting it lowers the test loss).
``grad_dot``
    ``<grad L_t, grad L_i>`` (Charpiat et al. 2019).  Positive: supportive.
``grad_cos``
    ``cos(grad L_t, grad L_i)``.
``random``
    Seeded uniform scores in [0, 1): the random baseline.

Adding a score touches one place: a function here decorated with :func:`register_score`, which names it and says
how a ranking reads it (``direction``); :data:`METHODS`, :data:`RANK_DIRECTION`, ``RelabelAudit.scores``, the
studies and the widgets all read the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..core.arrays import DTYPE, Design


@dataclass(frozen=True)
class ScoreContext:
    """What a score function receives for one block of ``c`` test rows.

    ``train`` (n_train rows), ``y`` (n_train,) labels, ``sigma`` (n_train,) training probabilities, ``ihvp`` the
    fitted :class:`cfdkit.core.InverseHVP`, ``Xt`` the block's design (c rows), ``sigma_t`` (c,) and ``y_t`` (c,)
    (the test labels: predicted unless given), ``seed`` and ``row_offset`` (for seeded scores), ``q_train``
    (optional cached ``x~_i^T H^{-1} x~_i``).
    """

    train: Design
    y: torch.Tensor
    sigma: torch.Tensor
    ihvp: object
    Xt: Design
    sigma_t: torch.Tensor
    y_t: torch.Tensor
    seed: int = 0
    row_offset: int = 0
    q_train: torch.Tensor | None = None


#: name -> (function(ctx) -> (scores (c, n_train), diagnostics or None), ranking direction)
_REGISTRY: dict[str, tuple[Callable, str]] = {}

_DIRECTIONS = ("toward_flip", "descending", "ascending")


def register_score(name: str, direction: str):
    """Register a score ``fn(ctx: ScoreContext) -> (scores, diagnostics)`` under ``name``.

    ``direction`` says how a ranking reads the score: ``"toward_flip"`` (most negative first when the prediction
    is 1, most positive when 0 — a signed change of ``P(y=1)``), ``"descending"`` (largest first: most supportive
    of the predicted label) or ``"ascending"`` (smallest first).
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}; got {direction!r}.")

    def deco(fn):
        _REGISTRY[name] = (fn, direction)
        METHODS[:] = list(_REGISTRY)
        RANK_DIRECTION[name] = direction
        return fn

    return deco


#: Registered score names, in registration order (a list kept in sync by :func:`register_score`).
METHODS: list[str] = []
#: How a ranking orders the training points of each score (see :func:`register_score`).
RANK_DIRECTION: dict[str, str] = {}


def test_kernel(train: Design, ihvp, Xt: Design) -> tuple[torch.Tensor, object]:
    """``K = X~_t H^{-1} X~^T`` (c, n_train) and the solver diagnostics."""
    Vt = Xt.dense_rows().T.contiguous()  # (p, c)
    L = getattr(ihvp, "cholesky_factor", None) if Vt.is_cuda else None
    if L is not None:
        # the same Cholesky solve without InverseHVP.solve's finiteness check, a host synchronization per
        # block on a GPU (test rows are checked finite on entry, the factor at fit)
        return train.kernel_t(torch.cholesky_solve(Vt, L)), ihvp.fit_diagnostics_
    res = ihvp.solve(Vt)
    return train.kernel_t(res.x), res.diagnostics  # (c, n_train), contiguous


def train_quadratic(train: Design, ihvp, chunk: int = 1024) -> torch.Tensor:
    """``q_i = x~_i^T H^{-1} x~_i`` for every training row, (n_train,)."""
    out = torch.empty(train.n, dtype=DTYPE, device=train.device)
    L = ihvp.cholesky_factor
    for s in range(0, train.n, chunk):
        idx = torch.arange(s, min(train.n, s + chunk), device=train.device)
        R = train.dense_rows(idx).T.contiguous()  # (p, c)
        if L is not None:
            A = torch.linalg.solve_triangular(L, R, upper=False)
            out[idx] = (A * A).sum(0)
        else:
            out[idx] = (R * ihvp.solve(R).x).sum(0)
    return out


@register_score("ip_relabel", "toward_flip")   # estimated change of P(y=1) when relabeled: most flip-ward first
def _ip_relabel(c: ScoreContext):
    K, diag = test_kernel(c.train, c.ihvp, c.Xt)   # in place: K is a fresh (c, n) block
    K.mul_(-(c.sigma_t * (1 - c.sigma_t))[:, None]).mul_((2 * c.y - 1)[None, :])
    return K, diag


@register_score("ip_remove", "toward_flip")    # estimated change of P(y=1) when removed
def _ip_remove(c: ScoreContext):
    K, diag = test_kernel(c.train, c.ihvp, c.Xt)
    K.mul_((c.sigma_t * (1 - c.sigma_t))[:, None]).mul_((c.sigma - c.y)[None, :])
    return K, diag


@register_score("influence", "ascending")      # -grad L_t H^-1 grad L_i: most negative = most helpful
def _influence(c: ScoreContext):
    K, diag = test_kernel(c.train, c.ihvp, c.Xt)
    return -(c.sigma_t - c.y_t)[:, None] * (c.sigma - c.y)[None, :] * K, diag


@register_score("relatif", "descending")       # cosine in H^-1/2 space: most positive = most supportive
def _relatif(c: ScoreContext):
    K, diag = test_kernel(c.train, c.ihvp, c.Xt)
    q_train = c.q_train if c.q_train is not None else train_quadratic(c.train, c.ihvp)
    Rt = c.Xt.dense_rows().T.contiguous()
    q_t = (Rt * c.ihvp.solve(Rt).x).sum(0)
    denom = torch.sqrt(q_t)[:, None] * torch.sqrt(q_train)[None, :]
    return torch.sign(c.sigma_t - c.y_t)[:, None] * torch.sign(c.sigma - c.y)[None, :] * K / denom, diag


def _grad_products(c: ScoreContext):
    return c.train.matvec(c.Xt.dense_rows().T.contiguous()).T  # (c, n): x~_t . x~_i


@register_score("grad_dot", "descending")      # <grad L_t, grad L_i>: most positive = most supportive
def _grad_dot(c: ScoreContext):
    return (c.sigma_t - c.y_t)[:, None] * (c.sigma - c.y)[None, :] * _grad_products(c), None


@register_score("grad_cos", "descending")      # cos(grad L_t, grad L_i): most positive = most supportive
def _grad_cos(c: ScoreContext):
    nt = torch.sqrt((c.Xt.dense_rows() ** 2).sum(1))[:, None]
    ni = torch.sqrt(c.train.row_sq_norms_weighted())[None, :]
    sign = torch.sign(c.sigma_t - c.y_t)[:, None] * torch.sign(c.sigma - c.y)[None, :]
    return sign * _grad_products(c) / (nt * ni), None


@register_score("random", "descending")        # seeded uniform scores: a random order
def _random(c: ScoreContext):
    g = torch.Generator(device="cpu").manual_seed(int(c.seed) * 1_000_003 + c.row_offset)
    return torch.rand(c.Xt.n, c.train.n, generator=g, dtype=DTYPE).to(c.train.device), None


def compute_scores(method: str, *, train: Design, y: torch.Tensor, sigma: torch.Tensor, ihvp,
                   Xt: Design, sigma_t: torch.Tensor, y_t: torch.Tensor, seed: int = 0,
                   row_offset: int = 0, q_train: torch.Tensor | None = None):
    """Scores of one block of test rows by the registered score ``method``.

    Returns
    -------
    scores : torch.Tensor (c, n_train) float64
    diagnostics : SolverDiagnostics or None
    """
    if method not in _REGISTRY:
        raise ValueError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}.")
    ctx = ScoreContext(train, y, sigma, ihvp, Xt, sigma_t, y_t, seed, row_offset, q_train)
    return _REGISTRY[method][0](ctx)
