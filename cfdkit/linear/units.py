"""Units of work of the binary engine, run in this process or handed to joblib workers (``n_jobs``).

Each unit is a whole block of test rows (Algorithm 1, minimal sets) or a run of whole refit batches
(verification), so a result is bit-for-bit the same for every ``n_jobs``.  Every function takes the fitted
:class:`~cfdkit.linear.binomial.BinomialEngine` (pickled to the workers once, :func:`cfdkit.core.parallel.run_chunks`)
and plain arguments.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.arrays import Design, to_torch_matrix
from .certify import relabel_question
from .minimal import SearchFields, minimal_search
from .pipelining import search_rows_device
from .retrain import refit_sets
from .scores import compute_scores

__all__ = ["search_rows", "search_chunk", "refit_chunk", "certificate_answers", "minimal_rows"]


def search_rows(engine, Xt: Design, sig_t: torch.Tensor, step: int, method: str, spec: tuple,
                desc: str = "flip sets", device_path: bool | None = None):
    """Scores and selection of ``Xt``'s rows in blocks of ``step`` rows; ``(sets, deltas, diagnostics)``.

    ``device_path`` (default: on CUDA, for relabel sets) keeps every block's result on the device
    (:func:`cfdkit.linear.selection.greedy_sets_device`) and copies them to the host once.
    """
    st = engine.state
    starts = list(range(0, Xt.n, step))
    bar = tqdm(starts, desc=desc, disable=not engine.settings.progress or len(starts) < 2, leave=False)
    if device_path is None:
        device_path = Xt.device.type == "cuda" and spec[0] == "relabel"
    if device_path:
        return search_rows_device(engine, Xt, sig_t, step, method, bar)
    select = engine.selector(spec)
    sets, deltas, diag = [], [], None
    for s in bar:
        rows = torch.arange(s, min(Xt.n, s + step), device=Xt.device)
        sub = Xt.rows(rows)
        eff, diag = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp,
                                   Xt=sub, sigma_t=sig_t[rows], y_t=sig_t[rows])
        ss, dd = select(sub, sig_t[rows], eff)
        sets.extend(ss)
        deltas.extend(dd)
    return sets, deltas, diag


def search_chunk(engine, X_plain, sig_t: torch.Tensor, step: int, method: str, spec: tuple):
    """One run of whole score blocks on a worker: ``X_plain`` rows (numpy or scipy CSR) and their ``P(y=1)``."""
    Xt = Design.from_tensor(to_torch_matrix(X_plain, engine.settings.device, "X_test"))
    return search_rows(engine, Xt, sig_t.to(engine.settings.device), step, method, spec)


def refit_chunk(engine, sets, kind: str, explicit: bool, ask=None):
    """Verification refits of whole batches on a worker: ``(W (p, m) on the CPU, FitInfo, answers)``;
    ``ask``: ``(test rows of the columns, one per set (numpy or scipy CSR), tau)`` or None."""
    q = None
    if ask is not None:
        Xq = Design.from_tensor(to_torch_matrix(ask[0], engine.settings.device, "X_test"))
        q = relabel_question(engine.state, Xq, np.arange(Xq.n), ask[1])
    W, info = refit_sets(engine.state, sets, kind, explicit_inverse=explicit, question=q)
    return W.cpu(), info, certificate_answers(q)


def certificate_answers(q) -> dict | None:
    """The certificate's answers of a :class:`~cfdkit.linear.certify.RefitQuestion` as plain arrays."""
    if q is None:
        return None
    return {"decided": q.decided.copy(), "above": q.above.copy(), "lo": q.lo.copy(), "hi": q.hi.copy()}


def minimal_rows(engine, X_plain, sig_t: torch.Tensor, step: int, kw: dict):
    """``minimal_search`` of each block of ``step`` rows (one block = one unit); ``(fields, estimated sizes)``."""
    Xt = X_plain if isinstance(X_plain, Design) else Design.from_tensor(
        to_torch_matrix(X_plain, engine.settings.device, "X_test"))
    sig_t = sig_t.to(engine.settings.device)
    fields, est = [], []
    for s in range(0, Xt.n, step):
        rows = torch.arange(s, min(Xt.n, s + step), device=Xt.device)
        sub = Xt.rows(rows)
        sets, _, _ = search_rows(engine, sub, sig_t[rows], step, "ip_relabel", ("relabel",))
        est.append(np.array([len(x) for x in sets], dtype=np.int64))
        fields.append(minimal_search(engine.state, sub, engine.settings.threshold, estimated_sets=sets,
                                     progress=engine.settings.progress, **kw))
    return SearchFields.concat(fields), np.concatenate(est) if est else np.empty(0, np.int64)
