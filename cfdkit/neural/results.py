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
    info: dict = field(default_factory=dict)

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
            "n_candidates": self.n_candidates,
            "ranking": self.ranking,
            "budget": self.budget,
            "rank_seconds_per_test": self.rank_seconds / n_s,
            "retrain_seconds_per_test": self.retrain_seconds / n_s,
        })

    def __repr__(self):
        return (f"CFDResult(ranking={self.ranking!r}, budget={self.budget}, found={self.n_found}/"
                f"{int(self.searched.sum())} searched, rank_seconds={self.rank_seconds:.3g}, "
                f"retrain_seconds={self.retrain_seconds:.3g})")
