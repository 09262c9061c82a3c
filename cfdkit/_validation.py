"""Input validation, in one place.

Every public entry point funnels its arguments through these checks, so the
messages are consistent: they name the argument, say what was wrong, and say
what to do about it.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ._backend import to_torch_matrix


def check_features(X, device, name: str = "X", n_features: int | None = None) -> torch.Tensor:
    """Convert ``X`` to a float64 torch matrix and check it.

    Raises
    ------
    TypeError
        ``X`` is not a numeric array-like.
    ValueError
        ``X`` is not 2-D, is empty, contains NaN/inf, or has a different number
        of columns than the training data.
    """
    if X is None:
        raise TypeError(f"{name} is None; pass a 2-D feature matrix of shape (n_samples, n_features).")
    if isinstance(X, (list, tuple)) and len(X) > 0 and isinstance(X[0], str):
        raise TypeError(
            f"{name} looks like a list of texts; turn texts into features first, "
            "e.g. cfdkit.features.bag_of_words(train_texts, test_texts)."
        )
    T = to_torch_matrix(X, device, name)
    if T.dim() == 1:
        raise ValueError(
            f"{name} is 1-D with shape {tuple(T.shape)}; pass a 2-D array of shape (n_samples, n_features) "
            "(use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample)."
        )
    if T.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got {T.dim()} dimensions.")
    if T.shape[0] == 0 or T.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(T.shape)}); pass at least one sample and one feature.")
    vals = T.values() if T.layout == torch.sparse_csr else T
    if not bool(torch.isfinite(vals).all()):
        bad = int((~torch.isfinite(vals)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); impute or drop them before fitting "
            "(e.g. sklearn.impute.SimpleImputer)."
        )
    if n_features is not None and T.shape[1] != n_features:
        raise ValueError(
            f"{name} has {T.shape[1]} features but the audit was fitted with {n_features}; "
            "transform test data with the same vectorizer/encoder as the training data."
        )
    return T


def check_labels(y, n_samples: int, name: str = "y") -> np.ndarray:
    """Check binary 0/1 labels of the right length and return them as int64.

    Raises
    ------
    ValueError
        Wrong length, labels outside {0, 1}, NaN, or only one class present.
    """
    if y is None:
        raise TypeError(f"{name} is None; pass binary labels (0/1) of length n_samples.")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    arr = np.asarray(y)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of length n_samples; got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} labels but X has {n_samples} rows; pass one label per training row."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one label of each class.")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must be binary numeric labels in {{0, 1}}; got dtype {arr.dtype}. "
            "Map your classes to 0/1 first (e.g. y = (labels == 'hate').astype(int))."
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; drop or fix those rows.")
    values = np.unique(arr)
    if not np.all(np.isin(values, (0, 1))):
        shown = ", ".join(str(v) for v in values[:6])
        raise ValueError(
            f"{name} must contain only 0 and 1; found values {{{shown}{', ...' if values.size > 6 else ''}}}. "
            "Binarize the labels (e.g. y = (y == positive_class).astype(int))."
        )
    if values.size < 2:
        raise ValueError(
            f"{name} contains only class {int(values[0])}; a classifier needs both classes 0 and 1 in the training labels."
        )
    return arr.astype(np.int64)


def check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a float in (0, 1); got {type(threshold).__name__}.")
    t = float(threshold)
    if not (0.0 < t < 1.0) or not np.isfinite(t):
        raise ValueError(f"threshold must lie strictly between 0 and 1; got {threshold!r} (0.5 is the usual choice).")
    return t


def check_positive(value, name: str, hint: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number; got {type(value).__name__}.")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}.{(' ' + hint) if hint else ''}")
    return v


def check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not known; choose one of {', '.join(repr(c) for c in choices)}.")
    return value


def check_positive_int(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)
