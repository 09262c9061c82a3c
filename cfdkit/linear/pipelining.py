"""Device pipelining of Algorithm 1: every score block's sets stay on the GPU until two copies at the end.

On CUDA the greedy selection of each block runs on the device (:func:`cfdkit.linear.selection.greedy_sets_device`);
the results are copied to pinned host memory asynchronously, once, and the few rows one pass cannot settle are
finished on the host.  The same numbers as the host path (:func:`cfdkit.linear.units.search_rows`), fewer
synchronizations.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.arrays import Design, csr
from .scores import compute_scores
from .selection import greedy_sets, greedy_sets_device

__all__ = ["search_rows_device", "row_block"]


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """Start a copy of ``t`` into pinned host memory (asynchronous on CUDA; wait before reading)."""
    if t.device.type == "cpu":
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def search_rows_device(engine, Xt: Design, sig_t: torch.Tensor, step: int, method: str, bar):
    """Relabel sets with every block's result kept on the device until two copies at the end.

    Rows one pass cannot settle (long sets, ties across the pass boundary) are recomputed at the
    end, ``step`` rows at a time, with :func:`greedy_sets`.
    """
    st = engine.state
    parts, diag = [], None
    crow_h = Xt.X.crow_indices().cpu().numpy() if Xt.sparse and Xt.S is None else None  # one copy, not one per block
    for s in bar:
        rows = torch.arange(s, min(Xt.n, s + step), device=Xt.device)
        eff, diag = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp,
                                   Xt=row_block(Xt, s, min(Xt.n, s + step), crow_h), sigma_t=sig_t[rows],
                                   y_t=sig_t[rows])
        parts.append(greedy_sets_device(eff, sig_t[rows], engine.settings.threshold, inplace=True))
        del eff
    size_d, pend_d = torch.cat([p[0] for p in parts]), torch.cat([p[3] for p in parts])
    size_h, pend_h = _to_host(size_d), _to_host(pend_d)
    _wait(Xt.device)
    size_h, pend_h = size_h.numpy(), pend_h.numpy()
    kmax = int(size_h.max(initial=0))
    idx_h = _to_host(torch.cat([p[1][:, :kmax] for p in parts]))
    eff_h = _to_host(torch.cat([p[2][:, :kmax] for p in parts]))
    del parts
    _wait(Xt.device)
    idx_h, eff_h = idx_h.numpy(), eff_h.numpy()
    sets = [idx_h[r, :k].astype(np.int64) for r, k in enumerate(size_h)]
    deltas = [eff_h[r, :k].astype(np.float64) for r, k in enumerate(size_h)]
    pend = np.nonzero(pend_h)[0]
    for s in range(0, pend.size, step):
        rr = pend[s:s + step]
        rows = torch.as_tensor(rr, device=Xt.device)
        eff, _ = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp,
                                Xt=Xt.rows(rows), sigma_t=sig_t[rows], y_t=sig_t[rows])
        _, ss, dd = greedy_sets(eff, sig_t[rows], engine.settings.threshold, inplace=True)
        for j, r in enumerate(rr):
            sets[r], deltas[r] = ss[j], dd[j]
    return sets, deltas, diag


def row_block(Xt: Design, s: int, e: int, crow_h) -> Design:
    """Rows ``s:e`` of ``Xt``; a device CSR is sliced through its host row pointer and densified (no sync).

    ``Design.rows`` coalesces a COO copy on the device, a host synchronization per block; the scores
    need only the block's dense rows, which are the same numbers either way.
    """
    if crow_h is None:
        return Xt.rows(torch.arange(s, e, device=Xt.device))
    a, b = int(crow_h[s]), int(crow_h[e])
    X = Xt.X
    sub = csr(X.crow_indices()[s:e + 1] - a, X.col_indices()[a:b], X.values()[a:b], (e - s, X.shape[1]))
    return Design(sub.to_dense())
