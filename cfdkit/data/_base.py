"""The :class:`Dataset` container and small shared helpers."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Dataset", "flip_labels"]


@dataclass
class Dataset:
    """A binary classification data set with a fixed train/test split.

    Attributes
    ----------
    name : str
        Canonical name, as accepted by :func:`cfdkit.data.load`.
    X_train, X_test : list of str, pandas.DataFrame, numpy.ndarray or scipy.sparse.csr_matrix
        Features: texts (text sets), raw columns (tabular sets) or a
        matrix of shape (n_train, n_features) / (n_test, n_features)
        (synthetic).
    y_train, y_test : numpy.ndarray of int64, shape (n_train,) / (n_test,)
        Labels in {0, 1}; ``meta["positive_class"]`` says what 1 means.
    feature_names : list of str or None
        Column names of ``X_*`` (``None`` for raw texts).
    categorical, numeric : list of str or None
        For tabular sets, which raw columns are categorical / numeric
        (used by :func:`cfdkit.data.features.tabular_features`).
    groups : dict of str to (numpy.ndarray, numpy.ndarray)
        Boolean membership masks ``(train_mask, test_mask)`` of protected
        groups, for example ``{"female": (...)}``; empty when not relevant.
    meta : dict
        Anything else: ``positive_class``, ``sensitive`` (column names),
        ``source_files``, ``split``, ``train_index`` / ``test_index`` (row
        positions in the source file), ...
    description : str
        One paragraph: what the data are and how the split was made.
    notes : str
        Caveats that matter for experiments (duplicates, partial data, ...).
    """

    name: str
    X_train: Any
    y_train: np.ndarray
    X_test: Any
    y_test: np.ndarray
    feature_names: list[str] | None = None
    categorical: list[str] | None = None
    numeric: list[str] | None = None
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    notes: str = ""

    @property
    def n_train(self) -> int:
        """Number of training rows."""
        return int(len(self.y_train))

    @property
    def n_test(self) -> int:
        """Number of test rows."""
        return int(len(self.y_test))

    def __repr__(self) -> str:
        pos_tr = int(np.sum(self.y_train))
        pos_te = int(np.sum(self.y_test))
        kind = type(self.X_train).__name__
        return (
            f"Dataset(name={self.name!r}, train={self.n_train} ({pos_tr} positive), "
            f"test={self.n_test} ({pos_te} positive), X={kind})"
        )


def as_labels(values) -> np.ndarray:
    """Return a 1-d int64 array of 0/1 labels (raises if other values occur)."""
    y = np.asarray(values).astype(np.int64, copy=False).ravel()
    bad = np.setdiff1d(np.unique(y), [0, 1])
    if bad.size:
        raise ValueError(f"labels must be 0/1, found {bad[:5].tolist()}")
    return y


def check_test_size(test_size, *, name: str = "test_size") -> float:
    """Validate a test fraction in (0, 1)."""
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"{name} must be a float in (0, 1), got {type(test_size).__name__}")
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(
            f"{name} must be a fraction strictly between 0 and 1, got {test_size!r}; "
            f"for example {name}=0.2 keeps 20% of the rows for testing."
        )
    return float(test_size)


def check_seed(seed, *, name: str = "seed") -> int:
    """Validate an integer seed >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}")
    return int(seed)


def flip_labels(y, ratio: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flip a seeded random share of binary labels (for label-noise sweeps).

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Labels in {0, 1}.
    ratio : float
        Share of labels to flip, in [0, 1]; exactly ``round(ratio * n)``
        labels are flipped.
    seed : int, default 0
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    y_noisy : numpy.ndarray of int64, shape (n,)
        Copy of ``y`` with the chosen labels flipped (``1 - y``).
    flipped_idx : numpy.ndarray of int64, shape (round(ratio * n),)
        Sorted indices of the flipped labels.

    Raises
    ------
    ValueError
        If ``y`` is not 1-d 0/1 or ``ratio`` is outside [0, 1].
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-d, got shape {y.shape}; pass a vector of 0/1 labels.")
    y = as_labels(y)
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"ratio must be a float in [0, 1] (share of labels to flip), got {ratio!r}")
    seed = check_seed(seed)
    n = y.shape[0]
    k = int(round(float(ratio) * n))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    y_noisy = y.copy()
    y_noisy[idx] = 1 - y_noisy[idx]
    return y_noisy, idx
