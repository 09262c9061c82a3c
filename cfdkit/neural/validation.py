"""Input checks that fail early with a message naming the argument and the fix."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_X", "check_y", "check_budget", "check_hidden"]


def check_X(X, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """2-D finite float64 array; optionally with ``n_features`` columns."""
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric 2-D array (n, d); encode categorical columns first "
                        f"(e.g. cfdkit.features.tabular_features). ({e})") from None
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {A.shape}; reshape, e.g. {name}.reshape(1, -1) for one row.")
    if A.shape[0] == 0:
        raise ValueError(f"{name} has no rows; pass at least one.")
    if not np.isfinite(A).all():
        bad = int((~np.isfinite(A)).sum())
        raise ValueError(f"{name} contains {bad} NaN/inf values; impute or drop those rows first.")
    if n_features is not None and A.shape[1] != n_features:
        raise ValueError(f"{name} has {A.shape[1]} columns but the model was fitted on {n_features}; "
                         f"use the same feature encoding as X_train.")
    return A


def check_y(y, n: int, name: str = "y") -> np.ndarray:
    """Binary 0/1 (or bool) labels of length ``n`` → int64."""
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D of length {n}, got shape {a.shape}; use {name}.ravel().")
    if len(a) != n:
        raise ValueError(f"{name} has length {len(a)} but X has {n} rows; pass one label per row.")
    if a.dtype == bool:
        return a.astype(np.int64)
    try:
        f = a.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must contain binary labels 0/1; map your classes to 0/1 first.") from None
    if not np.isfinite(f).all() or not np.isin(f, (0.0, 1.0)).all():
        vals = np.unique(a)[:5]
        raise ValueError(f"{name} must be binary with values in {{0, 1}}, found e.g. {vals.tolist()}; "
                         f"map the positive class to 1 and the other to 0.")
    return f.astype(np.int64)


def check_budget(budget, n_train: int) -> int:
    """``1 <= budget <= n_train``."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral):
        raise TypeError(f"budget must be an int (the bias budget m), got {type(budget).__name__}; e.g. budget=10.")
    if budget <= 0:
        raise ValueError(f"budget must be >= 1 (number of labels that may be flipped), got {budget}.")
    if budget > n_train:
        raise ValueError(f"budget={budget} is larger than the training set ({n_train} rows); use budget <= {n_train}.")
    return int(budget)


def check_hidden(hidden) -> tuple:
    """Two positive hidden widths (the paper uses 4..32)."""
    try:
        h = tuple(int(w) for w in hidden)
    except TypeError:
        raise ValueError(f"hidden must be a pair of widths like (8, 8), got {hidden!r}.") from None
    if len(h) != 2 or any(w < 1 for w in h) or any(float(w) != float(o) for w, o in zip(h, hidden)):
        raise ValueError(f"hidden must be two positive int widths (two hidden ReLU layers, paper: 4..32), "
                         f"got {hidden!r}; e.g. hidden=(8, 8).")
    return h
