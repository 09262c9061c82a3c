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
"""

from __future__ import annotations

import torch

from ..core.arrays import DTYPE, Design

METHODS = ("ip_relabel", "ip_remove", "influence", "relatif", "grad_dot", "grad_cos", "random")


def test_kernel(train: Design, ihvp, Xt: Design) -> tuple[torch.Tensor, object]:
    """``K = X~_t H^{-1} X~^T`` (c, n_train) and the solver diagnostics."""
    Vt = Xt.dense_rows().T.contiguous()  # (p, c)
    res = ihvp.solve(Vt)
    return train.kernel_t(res.x), res.diagnostics  # (c, n_train), contiguous


def train_quadratic(train: Design, ihvp, chunk: int = 1024) -> torch.Tensor:
    """``q_i = x~_i^T H^{-1} x~_i`` for every training row, (n_train,)."""
    out = torch.empty(train.n, dtype=DTYPE, device=train.device)
    L = getattr(ihvp, "L_", None)
    for s in range(0, train.n, chunk):
        idx = torch.arange(s, min(train.n, s + chunk), device=train.device)
        R = train.dense_rows(idx).T.contiguous()  # (p, c)
        if L is not None:
            A = torch.linalg.solve_triangular(L, R, upper=False)
            out[idx] = (A * A).sum(0)
        else:
            out[idx] = (R * ihvp.solve(R).x).sum(0)
    return out


def compute_scores(method: str, *, train: Design, y: torch.Tensor, sigma: torch.Tensor, ihvp,
                   Xt: Design, sigma_t: torch.Tensor, y_t: torch.Tensor, seed: int = 0,
                   row_offset: int = 0, q_train: torch.Tensor | None = None):
    """Scores of one block of test rows; see the module docstring for each method.

    Returns
    -------
    scores : torch.Tensor (c, n_train) float64
    diagnostics : SolverDiagnostics or None
    """
    if method == "random":
        g = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + row_offset)
        return torch.rand(Xt.n, train.n, generator=g, dtype=DTYPE).to(train.device), None
    res_t = (sigma_t - y_t)[:, None]  # (c, 1)
    res_i = (sigma - y)[None, :]  # (1, n)
    if method in ("grad_dot", "grad_cos"):
        G = train.matvec(Xt.dense_rows().T.contiguous()).T  # (c, n): x~_t . x~_i
        if method == "grad_dot":
            return res_t * res_i * G, None
        nt = torch.sqrt((Xt.dense_rows() ** 2).sum(1))[:, None]
        ni = torch.sqrt(train.row_sq_norms_weighted())[None, :]
        return torch.sign(res_t) * torch.sign(res_i) * G / (nt * ni), None
    K, diag = test_kernel(train, ihvp, Xt)
    if method == "ip_relabel":  # in place: K is a fresh (c, n) block
        K.mul_(-(sigma_t * (1 - sigma_t))[:, None]).mul_((2 * y - 1)[None, :])
        return K, diag
    if method == "ip_remove":
        K.mul_((sigma_t * (1 - sigma_t))[:, None]).mul_(res_i)
        return K, diag
    if method == "influence":
        return -res_t * res_i * K, diag
    if method == "relatif":
        if q_train is None:
            q_train = train_quadratic(train, ihvp)
        Rt = Xt.dense_rows().T.contiguous()
        q_t = (Rt * ihvp.solve(Rt).x).sum(0)
        denom = torch.sqrt(q_t)[:, None] * torch.sqrt(q_train)[None, :]
        return torch.sign(res_t) * torch.sign(res_i) * K / denom, diag
    raise ValueError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}.")
