"""Removal baselines: which training points, *removed*, would flip a prediction?

``alg1`` (Kong et al. 2021; Yang, Jain & Wallace 2023, Alg. 1)
    Rank the training points by IP-remove, ``Delta_t f[i] = grad f(x_t)^T H^{-1} grad L_i``
    (the estimated change of ``P(y_t=1)`` when ``i`` is removed), and take the
    shortest greedy prefix that crosses the threshold — Algorithm 1 with
    removal effects.
``alg2`` (Yang, Jain & Wallace 2023, Alg. 2, as in their ``recursive_NT``)
    Start from the Alg-1 set ``S``; repeat: re-estimate the removal effect of
    each point of ``S`` with the Hessian of the *remaining* data
    ``H_{D \\ S} = H - sum_{i in S} sigma_i (1 - sigma_i) x~_i x~_i^T`` (the
    original model's probabilities; no retraining inside the loop), and take
    the shortest greedy prefix of ``S`` (at most ``|S| - 1`` points) that still
    crosses.  Stop when no shorter prefix crosses, when the set shrank by
    ``min_shrink`` points or fewer, when ``|S| = 1``, or after ``max_rounds``.
    The set returned — and verified — is the one Alg 2 chose (the reference
    code verified the top of the Alg-1 ranking instead).

``H_{D \\ S}^{-1}`` is applied through the Woodbury identity on the fitted
solver when ``|S| < p``, and by a dense Cholesky otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.arrays import DTYPE
from .model import hessian
from .selection import greedy_sets


def _solve_downdated(state, idx: torch.Tensor, b: torch.Tensor, dense_H):
    """``(H - X~_S^T D_S X~_S)^{-1} b`` for b (p,)."""
    train = state.train
    XS = train.dense_rows(idx)  # (k, p)
    dS = (state.sigma[idx] * (1 - state.sigma[idx]))
    U = (XS * torch.sqrt(dS)[:, None]).T  # (p, k)
    k, p = U.shape[1], U.shape[0]
    if k < p:
        HiU = state.ihvp.solve(U).x
        Hib = state.ihvp.solve(b).x
        M = torch.eye(k, dtype=DTYPE, device=b.device) - U.T @ HiU
        return Hib + HiU @ torch.linalg.solve(M, U.T @ Hib)
    H = dense_H() - U @ U.T
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:
        return torch.linalg.lstsq(H, b[:, None]).solution[:, 0]
    return torch.cholesky_solve(b[:, None], L)[:, 0]


def removal_sets(state, test, sig_t, effects, threshold, algorithm="alg1", max_rounds=100, min_shrink=1):
    """Removal sets for a block of test rows.

    Parameters
    ----------
    state : cfdkit.linear.retrain.FittedState
    test : Design of the block's test rows
    sig_t : torch.Tensor (c,) test probabilities
    effects : torch.Tensor (c, n_train) IP-remove effects
    threshold : float

    Returns
    -------
    sets, deltas : lists of np.ndarray — indices in greedy order and their effects
    """
    _, sets, deltas = greedy_sets(effects, sig_t, threshold)
    if algorithm == "alg1":
        return sets, deltas
    cache = {}

    def dense_H():
        if "H" not in cache:
            cache["H"] = hessian(state.train, state.w, state.l2)
        return cache["H"]

    g_res = state.sigma - state.y  # grad L_i = (sigma_i - y_i) x~_i
    out_sets, out_deltas = [], []
    for r in range(len(sets)):
        S, D = sets[r], deltas[r]
        K = len(S)
        rounds, diff = 0, K
        xt = test.dense_rows(torch.tensor([r], device=sig_t.device))[0]
        grad_f = sig_t[r] * (1 - sig_t[r]) * xt
        while K > 1 and rounds < max_rounds and diff > min_shrink:
            rounds += 1
            idx = torch.as_tensor(S, device=sig_t.device)
            u = _solve_downdated(state, idx, grad_f, dense_H)
            eff = (state.train.dense_rows(idx) @ u) * g_res[idx]  # (K,)
            k_new, s_new, d_new = greedy_sets(eff[None, :], sig_t[r:r + 1], threshold)
            if k_new[0] == 0 or k_new[0] >= K:
                break
            diff = K - int(k_new[0])
            S, D, K = S[s_new[0]], d_new[0], int(k_new[0])
        out_sets.append(np.asarray(S, dtype=np.int64))
        out_deltas.append(np.asarray(D, dtype=np.float64))
    return out_sets, out_deltas
