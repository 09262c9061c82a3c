"""Input checks that fail early with a message naming the argument and the fix."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_X", "check_y", "check_budget", "check_hidden", "check_seed", "check_flip"]


def _is_sparse(X) -> bool:
    import scipy.sparse as sp

    if sp.issparse(X):
        return True
    try:
        import torch

        if torch.is_tensor(X) and X.layout != torch.strided:
            return True
    except ImportError:  # pragma: no cover
        pass
    mod = type(X).__module__
    return mod.startswith(("cupyx.scipy.sparse", "sparse.", "pydata_sparse"))


def _to_numpy(X, name: str) -> np.ndarray:
    """Any array-like -> numpy (no dtype change), refusing sparse, complex and ragged input."""
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}); cfdkit.neural trains small dense networks and "
            f"does not support sparse input. Convert it with {name}.toarray() (scipy) or "
            f"{name}.to_dense() (torch) if it fits in memory, or reduce the features first "
            "(e.g. sklearn.decomposition.TruncatedSVD)."
        )
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a numeric 2-D array (n, d), got a {type(X).__name__}.")
    try:
        import torch

        if torch.is_tensor(X):
            X = X.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} could not be read as an array (rows of different lengths?): {e}") from None
    if A.dtype.kind == "c" or (A.dtype == object and any(isinstance(v, (complex, np.complexfloating))
                                                         for v in A.ravel()[:100000])):
        raise TypeError(
            f"{name} holds complex numbers; cfdkit.neural needs real features and does not drop imaginary "
            f"parts silently. Pass {name}.real, abs({name}) or both parts as separate columns."
        )
    return A


def check_X(X, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """2-D finite float64 array; optionally with ``n_features`` columns.

    Raises
    ------
    TypeError
        Sparse, complex, text or other non-numeric input (the message says how to convert it).
    ValueError
        Wrong number of dimensions or columns, no rows, NaN/inf.
    """
    raw = _to_numpy(X, name)
    try:
        A = raw.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric 2-D array (n, d); encode categorical columns first "
                        f"(e.g. cfdkit.data.features.tabular_features). ({e})") from None
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {A.shape}; reshape, e.g. {name}.reshape(1, -1) for one row.")
    if A.shape[0] == 0:
        raise ValueError(f"{name} has no rows; pass at least one.")
    if A.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {A.shape}); pass at least one feature.")
    if not np.isfinite(A).all():
        bad = int((~np.isfinite(A)).sum())
        raise ValueError(f"{name} contains {bad} NaN/inf values; impute or drop those rows first.")
    if n_features is not None and A.shape[1] != n_features:
        raise ValueError(f"{name} has {A.shape[1]} columns but the model was fitted on {n_features}; "
                         f"use the same feature encoding as X_train.")
    return A


def check_y(y, n: int, name: str = "y") -> np.ndarray:
    """Binary 0/1 (or bool) labels of length ``n`` → int64."""
    a = _to_numpy(y, name)
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
    """Two positive int hidden widths (the paper uses 4..32)."""
    msg = (f"hidden must be two positive int widths (two hidden ReLU layers, paper: 4..32), "
           f"got {hidden!r}; e.g. hidden=(8, 8).")
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise ValueError(msg)
    h = tuple(hidden)
    if len(h) != 2 or any(isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral) or w < 1
                          for w in h):
        raise ValueError(msg)
    return tuple(int(w) for w in h)


def check_seed(seed, name: str = "seed") -> int:
    """An int in ``[0, 2**63)`` (numpy ints accepted; bools, floats and strings refused)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        hint = f" (convert it: {name}=int({seed!r}))" if isinstance(seed, str) and seed.strip().isdigit() else ""
        raise TypeError(f"{name} must be a non-negative int such as 0, got {type(seed).__name__} {seed!r}{hint}.")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"{name} must be a non-negative int below 2**63, got {seed!r}.")
    return int(seed)


def check_flip(flip, n_train: int, name: str = "flip") -> np.ndarray:
    """Training indices to flip: 1-D ints in ``[0, n_train)`` without duplicates."""
    a = _to_numpy(flip, name).ravel() if not np.isscalar(flip) else np.asarray([flip])
    if a.size and (a.dtype == bool or a.dtype.kind not in "iu"):
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)) and a.dtype != bool:
            a = a.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer training indices, got dtype {a.dtype} "
                            f"(for a boolean mask use np.flatnonzero(mask)).")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= n_train):
        raise ValueError(f"{name} indices must lie in [0, {n_train}), got {a.tolist()[:10]}.")
    if np.unique(a).size != a.size:
        raise ValueError(f"{name} has repeated indices {a.tolist()[:10]}; flipping a label twice undoes it.")
    return a
