"""Result container of a CFD search."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["CFDResult"]


@dataclass
class CFDResult:
    """Outcome of Algorithm 1 for every test row.

    Attributes
    ----------
    found : (n_test,) bool
        A CFD with at most ``budget`` flips was found.
    k : (n_test,) int64
        Number of flipped labels (= iterations), 0 where not found.
    order : (n_test, budget) int64
        Ranked candidate training indices (``-1`` padding; all ``-1`` if not searched).
    logit : (n_test,) float64
        Original network's logit.
    new_logit : (n_test,) float64
        Retrained network's logit at the found CFD; NaN where not found.
    searched : (n_test,) bool
        Passed the filter φ.
    n_candidates : (n_test,) int64
        Training points passing ψ.
    rank_seconds, retrain_seconds : float
        Wall time of the one-off ranking and of all retraining (totals).
    ranking : str
    budget : int
    specificity : (n_test,) float64
        ``1 -`` share of random label sets of the CFD's size, drawn from the same ψ-pool, whose
        retrained network also flips the prediction (``placebo_draws`` draws); NaN where no CFD
        was found (or no placebo was run).
    converged : (n_test,) bool
        The found CFD's retrain met the training tolerance (True where no CFD).
    min_specificity : float
        Below it a CFD is labelled "indistinguishable from noise" (:attr:`verdict`).
    placebo_seconds : float
        Wall time of the specificity placebo.
    """

    found: np.ndarray
    k: np.ndarray
    order: np.ndarray
    logit: np.ndarray
    new_logit: np.ndarray
    searched: np.ndarray
    n_candidates: np.ndarray
    rank_seconds: float
    retrain_seconds: float
    ranking: str
    budget: int
    specificity: np.ndarray | None = None
    converged: np.ndarray | None = None
    min_specificity: float = 0.9
    placebo_seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.specificity is None:
            self.specificity = np.full(len(self.found), np.nan)
        if self.converged is None:
            self.converged = np.ones(len(self.found), bool)

    @property
    def verdict(self) -> np.ndarray:
        """(n_test,) object: "no CFD", "finding", "indistinguishable from noise", "not checked"
        (no placebo run) or "not converged" (the CFD's retrain missed the tolerance)."""
        from .placebo import verdict
        return verdict(self.found, self.specificity, self.min_specificity, self.converged)

    @property
    def n_findings(self) -> int:
        """CFDs that beat their placebo (specificity >= ``min_specificity``, retrain converged)."""
        return int((self.verdict == "finding").sum())

    def __len__(self):
        return len(self.found)

    def indices(self, i: int) -> np.ndarray:
        """Training indices flipped for test row ``i``, in rank order (empty if not found)."""
        return self.order[i, : int(self.k[i])].copy()

    @property
    def n_found(self) -> int:
        return int(self.found.sum())

    def to_frame(self) -> pd.DataFrame:
        """One row per test input.

        ``flipped_indices`` lists the training indices whose labels were flipped (rank order; empty
        where no CFD was found).  (``flipped`` in ``cfdkit.Verification.to_frame`` is a bool per test
        point: whether the prediction flipped.)
        """
        n_s = max(1, int(self.searched.sum()))
        return pd.DataFrame({
            "test_index": np.arange(len(self)),
            "searched": self.searched,
            "found": self.found,
            "k": self.k,
            "flipped_indices": [self.indices(i).tolist() for i in range(len(self))],
            "logit": self.logit,
            "new_logit": self.new_logit,
            "specificity": self.specificity,
            "verdict": self.verdict,
            "retrain_converged": self.converged,
            "n_candidates": self.n_candidates,
            "ranking": self.ranking,
            "budget": self.budget,
            "rank_seconds_per_test": self.rank_seconds / n_s,
            "retrain_seconds_per_test": self.retrain_seconds / n_s,
            "placebo_seconds_per_test": self.placebo_seconds / n_s,
        })

    def __repr__(self):
        return (f"CFDResult(ranking={self.ranking!r}, budget={self.budget}, found={self.n_found}/"
                f"{int(self.searched.sum())} searched, findings beating their placebo={self.n_findings}, rank_seconds={self.rank_seconds:.3g}, "
                f"retrain_seconds={self.retrain_seconds:.3g})")
