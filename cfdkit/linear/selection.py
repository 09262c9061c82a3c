"""Algorithm 1 of Yang, Xu & Yu (2024), for many test points at once.

Given, for one test point with predicted probability ``f(x_t)``, the
estimated change ``Delta_t f[i]`` of that probability when training point
``i`` is relabeled, Algorithm 1 sorts the training points "in order of the
current prediction" and returns the shortest prefix whose accumulated change
crosses the threshold::

    y_hat = f(x_t) > tau
    order = argsort(Delta_t f, ascending if y_hat else descending)
    k*    = min{k : (f(x_t) + sum(Delta_t f[order[:k]]) > tau) != y_hat}
    S_t   = order[:k*]            (empty if no k crosses)

Only points that move the prediction towards the threshold can help, so the
search runs over the *benefit* ``b_i = -Delta_t f[i]`` (if ``y_hat``) or
``+Delta_t f[i]`` (otherwise): ``k*`` is the first prefix of the descending
benefits whose sum reaches the gap ``|f(x_t) - tau|`` (strictly exceeds it
when ``y_hat`` is 0, because the prediction is ``f > tau``).

The implementation never sorts a whole row when it does not have to: a
``topk`` pass over the first ``k0`` benefits settles most rows (sets are
usually short), rows whose total positive benefit falls short of the gap are
settled as "no set" without sorting, and only the remaining rows are searched
with a larger ``k`` (doubling up to a full sort).  Ties in benefit are broken
by the lower training index, so sets are reproducible bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch


def _ordered_prefix(vals: torch.Tensor, idx: torch.Tensor):
    """Re-sort (value desc, index asc) so tie order does not depend on topk's internals."""
    o1 = torch.argsort(idx, dim=-1, stable=True)
    v1, i1 = torch.gather(vals, -1, o1), torch.gather(idx, -1, o1)
    o2 = torch.argsort(v1, dim=-1, descending=True, stable=True)
    return torch.gather(v1, -1, o2), torch.gather(i1, -1, o2)


def _first_crossing(cs: torch.Tensor, gap: torch.Tensor, strict: torch.Tensor) -> torch.Tensor:
    """Index of the first column where the cumulative benefit reaches the gap, or -1."""
    hit = torch.where(strict[:, None], cs > gap[:, None], cs >= gap[:, None])
    any_hit = hit.any(1)
    first = torch.argmax(hit.to(torch.int8), dim=1)
    return torch.where(any_hit, first, torch.full_like(first, -1))


def greedy_sets(effects: torch.Tensor, prob: torch.Tensor, threshold: float, k0: int = 256, inplace: bool = False):
    """Algorithm 1 on a block of test points.

    Parameters
    ----------
    effects : torch.Tensor (c, n_train)
        Estimated change of each test point's probability per relabeled (or
        removed) training point.
    prob : torch.Tensor (c,)
        Predicted probability ``P(y=1)`` before any change.
    threshold : float
        The decision threshold ``tau``; the prediction is ``prob > tau``.
    k0 : int
        Width of the first ``topk`` pass.
    inplace : bool
        Overwrite ``effects`` with the benefits (saves a copy of the block).

    Returns
    -------
    sizes : np.ndarray[int64] (c,) — ``|S_t|``, 0 where no set exists
    sets : list of np.ndarray[int64] — training indices in greedy order
    deltas : list of np.ndarray[float64] — the effects of those indices, same order
    """
    c, n = effects.shape
    pred = prob > threshold
    sign = torch.where(pred, -1.0, 1.0).to(effects.dtype)  # benefit = sign * effect
    benefit = effects.mul_(sign[:, None]) if inplace else effects * sign[:, None]
    gap = torch.where(pred, prob - threshold, threshold - prob)
    strict = ~pred
    # sum of the positive benefits without a temporary block: (sum + L1 norm) / 2
    total = 0.5 * (benefit.sum(1) + torch.linalg.vector_norm(benefit, ord=1, dim=1))
    feasible = torch.where(strict, total > gap, total >= gap)

    sizes = np.zeros(c, dtype=np.int64)
    sets: list = [np.empty(0, dtype=np.int64)] * c
    deltas: list = [np.empty(0, dtype=np.float64)] * c
    todo = torch.nonzero(feasible).squeeze(1)
    k = min(k0, n)
    while todo.numel() > 0:
        block = benefit if todo.numel() == c else benefit[todo]
        vals, idx = torch.topk(block, k, dim=1, largest=True, sorted=True)
        vals, idx = _ordered_prefix(vals, idx)
        cs = torch.cumsum(vals, dim=1)
        first = _first_crossing(cs, gap[todo], strict[todo])
        if k == n:  # full sort: every feasible row must cross
            done = torch.ones_like(first, dtype=torch.bool)
        else:
            # accept only crossings strictly above the k-th value: every point with a larger
            # benefit is then inside the top-k, so ties at the boundary cannot reorder the set
            last = torch.gather(vals, 1, torch.clamp(first, min=0)[:, None])[:, 0]
            done = (first >= 0) & (last > vals[:, -1])
        d_rows = torch.nonzero(done).squeeze(1)
        first_np = first.cpu().numpy()
        idx_np = idx.cpu().numpy()
        eff_sorted = (vals * sign[todo][:, None]).cpu().numpy()  # vals = benefit[todo, idx]
        todo_np = todo.cpu().numpy()
        for r in d_rows.cpu().numpy():
            kk = int(first_np[r]) + 1
            if kk <= 0:  # numerically infeasible after all
                continue
            t = int(todo_np[r])
            sizes[t] = kk
            sets[t] = idx_np[r, :kk].astype(np.int64)
            deltas[t] = eff_sorted[r, :kk].astype(np.float64)
        todo = todo[~done]
        k = min(n, k * 8)
    return sizes, sets, deltas


def greedy_order(effects: torch.Tensor, prob: torch.Tensor, threshold: float):
    """Full greedy order of the helpful training points for each row.

    Returns a list of (indices, effects) pairs, descending benefit, ties by
    lower index, restricted to points with positive benefit.
    """
    pred = prob > threshold
    benefit = torch.where(pred[:, None], -effects, effects)
    out = []
    for r in range(effects.shape[0]):
        b = benefit[r]
        pos = torch.nonzero(b > 0).squeeze(1)
        vals, order = _ordered_prefix(b[pos][None], pos[None])
        out.append((order[0].cpu().numpy().astype(np.int64), effects[r, order[0]].cpu().numpy()))
    return out
