"""Algorithm 1's retraining loop, batched and sequential.

Algorithm 1 (Kim, Mitchell, Wang, NLDL 2026, slide 12): "for k = 1..m: y′ ← label set where
y_1..y_k in y are flipped; f′ ← L(D′); if y ≠ y′ then return D′".  The ranking is fixed up
front, so iteration k only depends on the ranked prefix of length k.  Since the answer is the
*first* flipping k, :func:`search_batched` trains **all** prefixes k = 1..min(m, n_ψ) of all
searched test inputs as one ensemble (in chunks of ``max_batch`` members) and then picks the
first flipping k per test input; :func:`search_sequential` is the literal loop (reference).
Both are written once against the ensemble protocol of :mod:`cfdkit.neural.ensemble`
(:func:`search_ensemble`, :func:`search_ensemble_sequential`), for the built-in network and ``model=`` alike.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .ensemble import ReLUEnsemble
from .model import TrainConfig

__all__ = ["member_table", "labels_for", "search_ensemble", "search_ensemble_sequential", "search_batched",
           "search_sequential", "first_flip", "drive_schedule", "converged_of_found"]


def member_table(order: np.ndarray, rows: np.ndarray):
    """Enumerate ensemble members: one per (test row, k) with a full prefix.

    Parameters
    ----------
    order : (n_test, m) int64, ``-1`` padded
    rows : (r,) int64, test rows to search

    Returns
    -------
    t_idx, k : (B,) int64 arrays; member ``b`` flips ``order[t_idx[b], :k[b]]``.
    """
    t_list, k_list = [], []
    for t in rows:
        kmax = int((order[t] >= 0).sum())
        t_list.append(np.full(kmax, t)); k_list.append(np.arange(1, kmax + 1))
    if not t_list:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(t_list).astype(np.int64), np.concatenate(k_list).astype(np.int64)


def labels_for(y: torch.Tensor, order: np.ndarray, t_idx, k) -> torch.Tensor:
    """Label matrix ``(B, n)``: copy of ``y`` with ``order[t, :k]`` flipped for each member."""
    Y = y.unsqueeze(0).repeat(len(t_idx), 1)
    rows = np.repeat(np.arange(len(t_idx)), k)
    cols = np.concatenate([order[t, :kk] for t, kk in zip(t_idx, k)])
    r = torch.as_tensor(rows, device=y.device); c = torch.as_tensor(cols, device=y.device)
    Y[r, c] = 1.0 - Y[r, c]
    return Y


def first_flip(t_idx, k, member_logit, logit0, n_test: int):
    """First k whose retrained logit has the other sign than the original, per test row.

    Returns
    -------
    found (n_test,) bool, k_found (n_test,) int64, new_logit (n_test,) float64 (NaN if none).
    """
    found = np.zeros(n_test, bool); kf = np.zeros(n_test, np.int64); nl = np.full(n_test, np.nan)
    flips = (member_logit > 0) != (logit0[t_idx] > 0)
    for b in np.lexsort((k, t_idx)):       # by test row, then k ascending
        t = t_idx[b]
        if flips[b] and not found[t]:
            found[t] = True; kf[t] = k[b]; nl[t] = member_logit[b]
    return found, kf, nl


def search_ensemble(ens, X_test: torch.Tensor, order: np.ndarray, rows: np.ndarray, logit0: np.ndarray,
                    max_batch: int | None = None, progress: bool = False, schedule: str = "all",
                    cache: dict | None = None):
    """Batched Algorithm-1 retraining of the test rows ``rows`` with an ensemble (:mod:`cfdkit.neural.ensemble`).

    Parameters
    ----------
    ens : ReLUEnsemble or ModuleEnsemble
        The fitted estimator's learning algorithm (:meth:`cfdkit.neural.NeuralCFD.ensemble`).
    X_test : (n_test, d) tensor
    order : (n_test, m) int64
        Ranked candidates, ``-1`` padded.
    rows : (r,) int64
        Test rows to search.
    logit0 : (n_test,) float64
        Original logits.
    max_batch : int or None
        Members per chunk (None: the ensemble's default, :meth:`~cfdkit.neural.ensemble.ReLUEnsemble.chunk`).
    schedule : ``"all"`` or ``"rounds"``
        ``"all"`` trains every prefix k = 1..m of every row as one ensemble (the benchmark's like-for-like
        workload); ``"rounds"`` is Algorithm 1's early stop done in batched rounds: each round trains the next
        ``s`` prefixes of every row that has not flipped yet, ``s = ceil(max_batch / rows left)`` (1 while many
        rows are left), so rows that flip early cost no further networks.  Both give the same first flip per row
        (each retrain depends only on its own prefix).
    cache : dict or None
        Flip set → trained member.  A prefix whose flip *set* was already trained (another row, another ranking,
        same fitted model) is reused, not retrained.  The caller owns it and must drop it when the data, the
        initial weights or the recipe change.  (A cached member may come from another chunk layout: equal to
        round-off.)  None: the built-in network retrains every prefix of every round; a module ensemble reuses
        prefixes within this search (``ens.reuse_within_search``).

    Returns
    -------
    found, k, new_logit arrays (n_test,), the number of networks trained, and converged (n_test,) bool: whether
    the found CFD's retrain met the stop rule (True where none was found).
    """
    if schedule not in ("all", "rounds"):
        raise ValueError(f"schedule must be 'all' or 'rounds', got {schedule!r}.")
    n_test = X_test.shape[0]
    mb = ens.chunk(max_batch)
    n_trained = [0]
    conv_of = {}                                   # (test row, k) → did that retrain converge
    search_store = {} if cache is None and ens.reuse_within_search else None
    bar = tqdm(desc=ens.label, disable=not progress, unit="net")

    def logits_for(t_idx, k):
        """Logit of the retrain on prefix ``order[t, :k]`` at ``X_test[t]``, per member."""
        keys = [np.sort(order[t, :kk]).tobytes() for t, kk in zip(t_idx, k)]
        store = cache if cache is not None else search_store if search_store is not None else {}
        todo, seen = [], set()
        for b, key in enumerate(keys):
            if key not in store and key not in seen:
                seen.add(key); todo.append(b)
        for s0 in range(0, len(todo), mb):
            sl = np.asarray(todo[s0:s0 + mb])
            P, info = ens.train(labels_for(ens.y, order, t_idx[sl], k[sl]))
            for j, b in enumerate(sl):
                store[keys[b]] = (ens.member(P, j), bool(info["converged"][j]))
            n_trained[0] += len(sl); bar.update(len(sl))
        out = np.empty(len(t_idx))
        for b, key in enumerate(keys):
            conv_of[(int(t_idx[b]), int(k[b]))] = store[key][1]
        ev = ens.eval_chunk
        for s0 in range(0, len(t_idx), ev):
            P = ens.stack([store[kk][0] for kk in keys[s0:s0 + ev]])
            xt = X_test[torch.as_tensor(t_idx[s0:s0 + ev], device=ens.X.device)]
            out[s0:s0 + ev] = ens.logits_at(P, xt).double().cpu().numpy()
        return out

    found, kf, nl = drive_schedule(logits_for, order, rows, logit0, n_test, mb, schedule)
    bar.close()
    return found, kf, nl, n_trained[0], converged_of_found(found, kf, conv_of)


def search_batched(X: torch.Tensor, y: torch.Tensor, params0, cfg: TrainConfig, X_test: torch.Tensor,
                   order: np.ndarray, rows: np.ndarray, logit0: np.ndarray, max_batch: int | None = None,
                   progress: bool = False, schedule: str = "all", cache: dict | None = None):
    """:func:`search_ensemble` for the built-in ReLU network given by its data, initial weights and recipe.

    Parameters
    ----------
    X (n, d), y (n,) tensors; params0 initial weights; cfg TrainConfig; the other parameters and the return
    values are those of :func:`search_ensemble`.
    """
    return search_ensemble(ReLUEnsemble(X, y, params0, cfg), X_test, order, rows, logit0, max_batch=max_batch,
                           progress=progress, schedule=schedule, cache=cache)


def drive_schedule(logits_for, order: np.ndarray, rows, logit0: np.ndarray, n_test: int, mb: int, schedule: str):
    """The search schedules over a ``logits_for(t_idx, k) -> (m,) logits`` retrainer (shared by the built-in
    trainer and ``model=``): ``"all"`` trains every prefix of every row at once; ``"rounds"`` trains the next
    ``~mb / active rows`` prefixes of each unanswered row per round and stops a row at its first flip.
    Returns ``found (n_test,) bool, k (n_test,) int64, new_logit (n_test,) float64``."""
    if schedule == "all":
        t_idx, k = member_table(order, rows)
        out = logits_for(t_idx, k) if len(t_idx) else np.zeros(0)
        return first_flip(t_idx, k, out, logit0, n_test)
    found = np.zeros(n_test, bool); kf = np.zeros(n_test, np.int64); nl = np.full(n_test, np.nan)
    kmax = (order >= 0).sum(1)
    nxt = np.ones(n_test, np.int64)
    active = [int(t) for t in rows if kmax[t] > 0]
    while active:                      # bounded: every round moves each active row on by >= 1 prefix (<= budget)
        step = max(1, -(-mb // len(active)))
        t_list, k_list = [], []
        for t in active:
            ks = np.arange(nxt[t], min(kmax[t], nxt[t] + step - 1) + 1)
            t_list.append(np.full(len(ks), t)); k_list.append(ks)
        t_idx, k = np.concatenate(t_list).astype(np.int64), np.concatenate(k_list).astype(np.int64)
        f, kk, lg = first_flip(t_idx, k, logits_for(t_idx, k), logit0, n_test)
        still = []
        for t in active:
            if f[t]:
                found[t], kf[t], nl[t] = True, kk[t], lg[t]
            else:
                nxt[t] += step
                if nxt[t] <= kmax[t]:
                    still.append(t)
        active = still
    return found, kf, nl


def converged_of_found(found, kf, conv_of) -> np.ndarray:
    """(n_test,) bool: the found CFD's retrain converged (True where none was found)."""
    out = np.ones(len(found), bool)
    for t in np.flatnonzero(found):
        out[t] = conv_of.get((int(t), int(kf[t])), True)
    return out


def search_ensemble_sequential(ens, X_test: torch.Tensor, order: np.ndarray, rows: np.ndarray,
                               logit0: np.ndarray, early_stop: bool = True, progress: bool = False):
    """Literal Algorithm 1 with an ensemble's one-network trainer: one retrain per k, stopping at the first flip
    (``early_stop``; False trains every prefix, the first flip is still the one reported).  Same return values as
    :func:`search_ensemble`."""
    n_test = X_test.shape[0]
    found = np.zeros(n_test, bool); kf = np.zeros(n_test, np.int64); nl = np.full(n_test, np.nan)
    conv = np.ones(n_test, bool)
    n_trained = 0
    for t in tqdm(rows, desc="retrain (sequential)", disable=not progress):
        kmax = int((order[t] >= 0).sum())
        for kk in range(1, kmax + 1):
            p, info = ens.train_one(labels_for(ens.y, order, np.array([t]), np.array([kk]))[0]); n_trained += 1
            lg = ens.logit_one(p, X_test[t:t + 1])
            if (lg > 0) != (logit0[t] > 0) and not found[t]:
                found[t] = True; kf[t] = kk; nl[t] = lg; conv[t] = info["converged"]
                if early_stop:
                    break
    return found, kf, nl, n_trained, conv


def search_sequential(X: torch.Tensor, y: torch.Tensor, params0, cfg: TrainConfig, X_test: torch.Tensor,
                      order: np.ndarray, rows: np.ndarray, logit0: np.ndarray, early_stop: bool = True,
                      progress: bool = False, trainer: str = "autograd"):
    """Literal Algorithm 1 for the built-in ReLU network (:func:`search_ensemble_sequential`).

    ``trainer="autograd"`` uses :func:`cfdkit.neural.model.train_params` (the library's
    single-network trainer); ``"manual"`` uses the hand-written trainer with one member
    (:func:`cfdkit.neural.fast.train_single`).  Same return values as :func:`search_batched`.
    """
    return search_ensemble_sequential(ReLUEnsemble(X, y, params0, cfg, trainer=trainer), X_test, order, rows,
                                      logit0, early_stop=early_stop, progress=progress)
