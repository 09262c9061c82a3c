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
again, with a width sized from how far each is still short of its gap (at
least twice the last, rows grouped by powers of two, up to one stable full
sort).  Ties in benefit are broken by the lower training index, so sets are
reproducible bit for bit: the answer of every row is that of a full sort,
whatever widths were used, and the re-sort that fixes the order among ties
runs only on rows that hold one (:func:`greedy_sets`, the CPU path).

On a GPU, :func:`greedy_sets_device` does one pass per block with
data-independent shapes and no host synchronization; results stay on the
device until the caller copies all blocks' results at once, and the few rows
one pass cannot settle are finished with :func:`greedy_sets` at the end.
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


def _fix_ties(vals: torch.Tensor, idx: torch.Tensor):
    """``_ordered_prefix`` only on the rows that hold a tie (the CPU path: the check costs no sync there).

    ``topk(sorted=True)`` returns non-increasing values, so a row without two equal neighbours
    is already in (value desc, index asc) order and re-sorting it would change nothing.
    """
    if vals.shape[1] < 2:
        return vals, idx
    tied = (vals[:, 1:] == vals[:, :-1]).any(1)
    if bool(tied.any()):
        r = torch.nonzero(tied).squeeze(1)
        vals[r], idx[r] = _ordered_prefix(vals[r], idx[r])
    return vals, idx


def _sorted_prefix(block: torch.Tensor, k: int):
    """The ``k`` largest benefits of each row in (value desc, index asc) order, and their indices.

    A stable descending full sort already breaks ties by the lower index; ``topk`` does not
    promise an order among equal values, hence :func:`_fix_ties`.
    """
    n = block.shape[1]
    if k >= n:
        return torch.sort(block, dim=1, descending=True, stable=True)
    vals, idx = torch.topk(block, k, dim=1, largest=True, sorted=True)
    return _fix_ties(vals, idx)


def _first_crossing(cs: torch.Tensor, gap: torch.Tensor, strict: torch.Tensor) -> torch.Tensor:
    """Index of the first column where the cumulative benefit reaches the gap, or -1."""
    hit = torch.where(strict[:, None], cs > gap[:, None], cs >= gap[:, None])
    any_hit = hit.any(1)
    first = torch.argmax(hit.to(torch.int8), dim=1)
    return torch.where(any_hit, first, torch.full_like(first, -1))


def _benefits(effects: torch.Tensor, prob: torch.Tensor, threshold: float, inplace: bool):
    """Benefits ``sign * effect``, the gap to the threshold, strictness and feasibility of each row."""
    pred = prob > threshold
    sign = torch.where(pred, -1.0, 1.0).to(effects.dtype)  # benefit = sign * effect
    benefit = effects.mul_(sign[:, None]) if inplace else effects * sign[:, None]
    gap = torch.where(pred, prob - threshold, threshold - prob)
    strict = ~pred
    # sum of the positive benefits without a temporary block: (sum + L1 norm) / 2
    total = 0.5 * (benefit.sum(1) + torch.linalg.vector_norm(benefit, ord=1, dim=1))
    feasible = torch.where(strict, total > gap, total >= gap)
    return benefit, sign, gap, strict, feasible


def _next_width(k: int, n: int, vals: torch.Tensor, cs: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """Width of the next pass for unsettled rows: at least twice ``k``, at least 1.25 x a lower bound.

    The benefits beyond the ``k``-th are at most ``vals[:, -1]``, so a row still short of its gap by
    ``g`` needs at least ``g / vals[:, -1]`` more of them; rounded up to a power of two so rows share passes.
    """
    last = vals[:, -1]
    short = torch.clamp(gap - cs[:, -1], min=0)
    extra = torch.where(last > 0, short / torch.clamp(last, min=1e-300), torch.full_like(last, float(n)))
    want = torch.clamp(1.25 * (k + extra), max=float(n)).ceil().to(torch.int64)
    want = torch.clamp(want, min=2 * k)
    p2 = torch.pow(2, torch.ceil(torch.log2(want.to(torch.float64)))).to(torch.int64)
    return torch.clamp(p2, max=n)


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

    Notes
    -----
    A row is settled by a pass of width ``k`` when its crossing lies strictly above the
    ``k``-th value (every larger benefit is then inside the pass, so ties at the boundary
    cannot reorder the set); unsettled rows get a wider pass, sized from how far they are
    still short of their gap (:func:`_next_width`), up to one full stable sort.  The answer
    of every row is that of a full sort, whatever widths were used.
    """
    c, n = effects.shape
    benefit, sign, gap, strict, feasible = _benefits(effects, prob, threshold, inplace)

    sizes = np.zeros(c, dtype=np.int64)
    sets: list = [np.empty(0, dtype=np.int64)] * c
    deltas: list = [np.empty(0, dtype=np.float64)] * c
    todo = torch.nonzero(feasible).squeeze(1)
    widths = torch.full((todo.numel(),), min(k0, n), dtype=torch.int64, device=todo.device)
    while todo.numel() > 0:
        k = int(widths.min())
        grp = widths == k  # rows that share this pass
        rows = todo[grp]
        block = benefit if rows.numel() == c else benefit[rows]
        vals, idx = _sorted_prefix(block, k)
        cs = torch.cumsum(vals, dim=1)
        first = _first_crossing(cs, gap[rows], strict[rows])
        if k == n:  # full sort: every feasible row must cross
            done = torch.ones_like(first, dtype=torch.bool)
        else:
            last = torch.gather(vals, 1, torch.clamp(first, min=0)[:, None])[:, 0]
            done = (first >= 0) & (last > vals[:, -1])
        d_rows = torch.nonzero(done).squeeze(1)
        if d_rows.numel():
            first_np = first.cpu().numpy()
            idx_np = idx.cpu().numpy()
            eff_sorted = (vals * sign[rows][:, None]).cpu().numpy()  # vals = benefit[rows, idx]
            rows_np = rows.cpu().numpy()
            for r in d_rows.cpu().numpy():
                kk = int(first_np[r]) + 1
                if kk <= 0:  # numerically infeasible after all
                    continue
                t = int(rows_np[r])
                sizes[t] = kk
                sets[t] = idx_np[r, :kk].astype(np.int64)
                deltas[t] = eff_sorted[r, :kk].astype(np.float64)
        again = ~done
        nxt = _next_width(k, n, vals[again], cs[again], gap[rows][again]) if k < n else widths[:0]
        todo = torch.cat([todo[~grp], rows[again]])
        widths = torch.cat([widths[~grp], nxt])
    return sizes, sets, deltas


def greedy_sets_device(effects: torch.Tensor, prob: torch.Tensor, threshold: float, k0: int = 256,
                       inplace: bool = False):
    """Algorithm 1 on a block without one host synchronization: the GPU path.

    One pass of width ``W = min(k0, n_train)`` for every row (a stable full sort when
    ``4 W >= n_train``, where it is cheaper than ``topk``), data-independent shapes and no
    ``nonzero``: every result stays on the device.  Rows the pass cannot settle (their set is
    longer than ``W``, or ties straddle the pass boundary) are flagged ``pending``; the caller
    gathers them once at the end and finishes them with :func:`greedy_sets`.

    Returns
    -------
    size : torch.Tensor[int64] (c,)
        ``|S_t|`` of the settled rows, 0 where there is no set or the row is pending.
    idx : torch.Tensor[int64] (c, W)
        Training indices in greedy order; the first ``size[t]`` of row ``t`` are its set.
    eff : torch.Tensor[float64] (c, W)
        Their estimated effects, same order.
    pending : torch.Tensor[bool] (c,)
        Rows to finish with :func:`greedy_sets`.
    """
    c, n = effects.shape
    benefit, sign, gap, strict, feasible = _benefits(effects, prob, threshold, inplace)
    W = min(k0, n)
    if 4 * W >= n:
        vals, idx = torch.sort(benefit, dim=1, descending=True, stable=True)
        exact = True
    else:
        vals, idx = torch.topk(benefit, W, dim=1, largest=True, sorted=True)
        vals, idx = _ordered_prefix(vals, idx)  # no data-dependent branch: re-sort every row
        exact = False
    cs = torch.cumsum(vals, dim=1)
    first = _first_crossing(cs, gap, strict)
    if exact:
        settled = torch.ones_like(feasible)
    else:
        last = torch.gather(vals, 1, torch.clamp(first, min=0)[:, None])[:, 0]
        settled = (first >= 0) & (last > vals[:, -1])
    size = first + 1  # 0 where no crossing
    pending = feasible & (~settled | (size > W))
    size = torch.where(feasible & ~pending, size, torch.zeros_like(size))
    # copies of the first W columns: a full sort's (c, n) block must not outlive this call
    return size, idx[:, :W].contiguous(), vals[:, :W] * sign[:, None], pending


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
