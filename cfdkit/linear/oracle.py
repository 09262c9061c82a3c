"""Ground truth for small problems: the true minimal relabel sets, by refitting every relabeling (two classes:
:func:`exhaustive_minimal`; K classes, every other class for every point: :func:`exhaustive_multiclass`).

The oracle the tests hold :meth:`RelabelAudit.minimal_sets` to (its sets are never smaller than the true minimum,
its lower bound never larger).  It fits through :class:`~cfdkit.linear.audit.RelabelAudit` and refits through
:func:`cfdkit.linear.retrain.refit_sets`; nothing in the search imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.arrays import Design, to_torch_matrix
from ..core.validation import check_features
from .audit import RelabelAudit
from .multiclass import class_index, empty_class_sets, flips, refit_relabeled
from .retrain import one_class_sets, refit_sets

__all__ = ["ExhaustiveMinimal", "exhaustive_minimal", "exhaustive_multiclass"]


@dataclass
class ExhaustiveMinimal:
    """True minimal relabel sets by enumeration.

    size : int64 (n_test,) — the true minimum; 0 where no set of size <= max_size flips
    witness : list of int64 arrays — one minimal set per row
    new_prob : float64 (n_test,)
    n_refits : int ; n_one_class : int — subsets skipped because they leave one class
    max_size : int ; all_converged : bool
    """

    size: np.ndarray
    witness: list
    new_prob: np.ndarray
    n_refits: int
    n_one_class: int
    max_size: int
    all_converged: bool


def exhaustive_minimal(X, y, X_test, l2: float, max_size: int, threshold: float = 0.5, *, device=None,
                       max_subsets: int = 200_000, progress: bool = False) -> ExhaustiveMinimal:
    """Refit every relabeling of at most ``max_size`` labels (batched) and return the true minimum per test row.

    For small problems (the count of subsets, ``sum_k C(n, k)``, must not exceed ``max_subsets``).
    Subsets that would leave training data of one class have no finite optimum and are skipped.

    Parameters
    ----------
    X : (n, d) ; y : (n,) 0/1 ; X_test : (n_test, d) ; l2 : float > 0 ; max_size : int >= 1
    threshold : float in (0, 1)
    """
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or int(max_size) < 1:
        raise ValueError(f"max_size must be a positive int; got {max_size!r}.")
    a = RelabelAudit(l2=l2, threshold=threshold, device=device).fit(X, y)
    st = a.state_
    fs = a.flip_sets(X_test)
    Xt = Design.from_tensor(to_torch_matrix(fs.X_test, a.device_, "X_test"))
    n = st.train.n
    max_size = min(int(max_size), n)
    total = sum(math.comb(n, k) for k in range(1, max_size + 1))
    if total > max_subsets:
        raise ValueError(f"{total} subsets of <= {max_size} of {n} labels exceed max_subsets={max_subsets}; "
                         "lower max_size or raise max_subsets.")
    prob = torch.sigmoid(Xt.matvec(st.w[:, None])[:, 0]).cpu().numpy()
    orig = prob > threshold
    size = np.zeros(Xt.n, dtype=np.int64)
    witness = [np.empty(0, dtype=np.int64)] * Xt.n
    new_prob = np.full(Xt.n, np.nan)
    y_np = st.y.cpu().numpy()
    refits, skipped, allconv = 0, 0, True
    for k in tqdm(range(1, max_size + 1), desc="exhaustive", disable=not progress, leave=False):
        subs = [np.array(c, dtype=np.int64) for c in combinations(range(n), k)]
        bad = one_class_sets(y_np, subs, "relabel")
        skipped += int(bad.sum())
        subs = [s for s, b in zip(subs, bad) if not b]
        if not subs:
            continue
        W, info = refit_sets(st, subs, "relabel")
        refits += len(subs)
        allconv &= bool(info.converged.all())
        P = torch.sigmoid(Xt.matvec(W)).cpu().numpy()
        flips = ((P > threshold) != orig[:, None]) & info.converged[None, :]
        for t in np.nonzero((size == 0) & flips.any(1))[0]:
            j = int(np.argmax(flips[t]))
            size[t], witness[t], new_prob[t] = k, subs[j], P[t, j]
        if (size > 0).all():
            break
    return ExhaustiveMinimal(size, witness, new_prob, refits, skipped, max_size, allconv)


def exhaustive_multiclass(audit, X_test, max_size: int, target_class=None, max_subsets: int = 200_000):
    """True minimal relabel set sizes by enumerating every relabeling of <= max_size points to every other class.

    Relabelings that empty a class are skipped.  Returns ``(size int64 (n_test,), witness list, all_converged)``;
    size 0 where none of size <= max_size flips.
    """
    eng = audit.engine_
    st = eng.state
    Xd = Design.from_tensor(check_features(X_test, audit.device_, "X_test", audit.n_features_in_))
    Xt = Xd.dense_rows()
    tgt = None if target_class is None else class_index(eng.classes, target_class)
    pred = np.argmax((Xt @ st.W.T).cpu().numpy(), axis=1)
    n, K = st.n, st.K
    total = sum(math.comb(n, k) * (K - 1) ** k for k in range(1, max_size + 1))
    if total > max_subsets:
        raise ValueError(f"{total} relabelings exceed max_subsets={max_subsets}; lower max_size.")
    y = st.y.cpu().numpy()
    size = np.zeros(Xt.shape[0], dtype=np.int64)
    if tgt is not None:
        size[pred == tgt] = -1  # already the target
    witness = [None] * Xt.shape[0]
    allconv = True
    for k in range(1, max_size + 1):
        pairs = []
        for sub in combinations(range(n), k):
            choices = [[c for c in range(K) if c != y[i]] for i in sub]
            for labs in product(*choices):
                pairs.append((np.array(sub, dtype=np.int64), np.array(labs, dtype=np.int64)))
        bad = empty_class_sets(y, K, pairs)
        pairs = [p for p, b in zip(pairs, bad) if not b]
        if not pairs:
            continue
        W, info = refit_relabeled(st, pairs)
        allconv &= bool(info.converged.all())
        Z = torch.einsum("tp,mkp->tmk", Xt, W).cpu().numpy()
        fl = flips(Z, pred[:, None], tgt) & info.converged[None, :]
        for t in np.nonzero((size == 0) & fl.any(1))[0]:
            size[t], witness[t] = k, pairs[int(np.argmax(fl[t]))]
    return size, witness, allconv
