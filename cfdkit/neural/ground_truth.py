"""Ground truth by exhaustive enumeration, and recall of rankings against it.

The paper obtains ground truth "via exhaustive enumeration" on Salary, Student and German
(Table 1 footnote; the m used is unknown).  Here every subset of size 1..``max_k`` of the
candidate training points is retrained once (batched; a subset's network does not depend on
the test input), and each test input's true minimal CFD is the smallest subset — within ψ —
whose retrained network flips its prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..core.validation import check_index_set, check_positive_int
from .filters import apply_psi
from .validation import OWNER

__all__ = ["GroundTruth", "exhaustive_cfd", "ranking_recall"]


@dataclass
class GroundTruth:
    """True minimal CFDs up to ``max_k`` flips.

    Attributes
    ----------
    found : (n_test,) bool
    k : (n_test,) int64, 0 where none up to ``max_k``
    witness : list of tuple, one minimal flip set per test row (empty if none)
    n_subsets : int, networks trained
    """

    found: np.ndarray
    k: np.ndarray
    witness: list
    n_subsets: int
    max_k: int


def exhaustive_cfd(cfd, X_test, max_k: int = 2, candidates=None, psi="same", max_subsets: int = 50_000,
                   max_batch: int | None = None, progress: bool = False) -> GroundTruth:
    """Enumerate all flip sets of size ≤ ``max_k`` (batched retraining).

    Parameters
    ----------
    cfd : fitted :class:`~cfdkit.neural.NeuralCFD` (supplies data, initial weights, L).
    X_test : (n_test, d)
    max_k : largest flip-set size.
    candidates : training indices to enumerate over (default: all).
    psi : ``"same"`` (use ``cfd.psi``), ``None`` (no filter) or a ψ callable.
    max_subsets : refuse enumerations larger than this (ValueError).
    """
    if not hasattr(cfd, "check_fitted"):
        raise TypeError(f"cfd must be a fitted cfdkit.neural.NeuralCFD, got {type(cfd).__name__}.")
    cfd.check_fitted()
    Xt = cfd.check_test_input(X_test)
    n = len(cfd.y_train_)
    max_k = check_positive_int(max_k, "max_k")
    max_subsets = check_positive_int(max_subsets, "max_subsets")
    max_batch = check_positive_int(max_batch, "max_batch", allow_none=True)
    if not (psi is None or callable(psi) or (isinstance(psi, str) and psi == "same")):
        raise ValueError(f"psi must be 'same' (use cfd.psi), None (no filter) or a callable, got {psi!r}.")
    cand = np.arange(n) if candidates is None else check_index_set(candidates, n, "candidates", OWNER)
    if cand.size == 0:
        raise ValueError("candidates is empty; pass at least one training index (or None for all).")
    total = sum(comb(len(cand), j) for j in range(1, max_k + 1))
    if total > max_subsets:
        raise ValueError(f"exhaustive enumeration needs {total} retrains (> max_subsets={max_subsets}); "
                         f"lower max_k, pass fewer candidates, or raise max_subsets.")
    subsets = [c for j in range(1, max_k + 1) for c in combinations(cand.tolist(), j)]
    logit0 = cfd.model_.logit(Xt)
    pred = (logit0 > 0).astype(np.int64)
    mask = apply_psi(cfd.psi if psi == "same" else psi, cfd.X_train_, cfd.y_train_, Xt, pred)
    ens = cfd.ensemble()
    # chunks of the built-in network are sized for 8-byte numbers here (the ground truths on record were)
    mb = ens.chunk(max_batch, itemsize=8)
    Xt_t = cfd.as_tensor(Xt)
    flips = np.zeros((len(subsets), len(Xt)), bool)
    for s in tqdm(range(0, len(subsets), mb), disable=not progress, desc="exhaustive"):
        chunk = subsets[s:s + mb]
        lg = ens.logits(ens.train(ens.flipped(chunk))[0], Xt_t)       # (B, n_test)
        flips[s:s + len(chunk)] = (lg > 0) != (logit0 > 0)[None, :]
    found = np.zeros(len(Xt), bool); k = np.zeros(len(Xt), np.int64); wit = [() for _ in range(len(Xt))]
    for j, sub in enumerate(subsets):          # subsets are in increasing size
        ok = flips[j] & ~found & mask[:, list(sub)].all(1)
        for t in np.flatnonzero(ok):
            found[t] = True; k[t] = len(sub); wit[t] = sub
    return GroundTruth(found=found, k=k, witness=wit, n_subsets=len(subsets), max_k=max_k)


def ranking_recall(cfd, X_test, truth: GroundTruth, rankings=("combined", "lr_surrogate", "activation_pattern",
                                                              "random", "l2_distance")) -> pd.DataFrame:
    """Recall of Algorithm 1 with each ranking against the exhaustive ground truth.

    Algorithm 1 runs with budget ``truth.max_k`` so both search the same flip sizes.

    With a placebo (``cfd.placebo_draws`` not None) every CFD also carries its specificity
    (1 - share of random label sets of its size, same ψ-pool, that also flip it):
    the true minimal CFDs get theirs from the same batched placebo.

    Returns
    -------
    DataFrame with columns ranking, truth_found, found, recall (found ∩ truth / truth),
    minimal (found with the true minimal k), found_not_in_truth (should be 0), and
    truth_findings (true CFDs with specificity >= ``cfd.min_specificity``), findings (the
    ranking's CFDs beating their placebo), recall_findings (findings ∩ truth findings / truth
    findings; NaN if there are none), mean_specificity (over the ranking's CFDs) and
    truth_mean_specificity.
    """
    if not isinstance(truth, GroundTruth):
        raise TypeError(f"truth must be the GroundTruth returned by exhaustive_cfd, got {type(truth).__name__}.")
    if isinstance(rankings, str) or callable(rankings):
        rankings = (rankings,)
    rankings = tuple(rankings)
    if not rankings:
        raise ValueError("rankings is empty; pass at least one ranking name, e.g. rankings=('combined',).")
    from .placebo import specificity
    Xt = cfd.check_test_input(X_test)
    if len(truth.found) != len(Xt):
        raise ValueError(f"truth has {len(truth.found)} test rows but X_test has {len(Xt)}; pass the X_test given "
                         "to exhaustive_cfd.")
    draws = cfd.placebo_draws
    t_spec = np.full(len(Xt), np.nan)
    if draws is not None:
        logit0 = cfd.model_.logit(Xt)
        mask = apply_psi(cfd.psi, cfd.X_train_, cfd.y_train_, Xt, (logit0 > 0).astype(np.int64))
        t_spec = specificity(cfd, Xt, logit0, mask, truth.found, truth.k, draws, cfd.seed_)[0]
    t_find = truth.found & (t_spec >= cfd.min_specificity)
    rows = []
    for r in rankings:
        res = cfd.search(X_test, ranking=r, budget=truth.max_k)
        both = res.found & truth.found
        find = res.verdict == "finding"
        rows.append({"ranking": r if isinstance(r, str) else getattr(r, "__name__", "custom"),
                     "truth_found": int(truth.found.sum()), "found": res.n_found,
                     "recall": both.sum() / max(1, truth.found.sum()),
                     "minimal": int((both & (res.k == truth.k)).sum()),
                     "found_not_in_truth": int((res.found & ~truth.found).sum()),
                     "truth_findings": int(t_find.sum()), "findings": int(find.sum()),
                     "recall_findings": (find & t_find).sum() / t_find.sum() if t_find.any() else np.nan,
                     "mean_specificity": float(np.nanmean(res.specificity)) if res.n_found and draws else np.nan,
                     "truth_mean_specificity": float(np.nanmean(t_spec)) if truth.found.any() and draws else np.nan})
    return pd.DataFrame(rows)
