"""Input validation, in one place.

Every public entry point funnels its arguments through these checks, so the
messages are consistent: they name the argument, say what was wrong, and say
what to do about it.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError as _SkNotFittedError

from .arrays import to_torch_matrix


class NotFittedError(_SkNotFittedError, RuntimeError):
    """A method that needs a fitted object was called before ``fit``.

    Subclasses scikit-learn's ``NotFittedError`` (ValueError, AttributeError)
    and ``RuntimeError`` (what cfdkit raised before).
    """


class ResultIndexError(IndexError):
    """A test-row index outside a result's range (an ``IndexError`` with cfdkit's own message)."""


#: Largest feature magnitude accepted: beyond it the Hessian's sums of ``x_i x_j``
#: (times the number of rows) can overflow float64 and the fit breaks down.
def max_feature_magnitude(n_rows: int) -> float:
    return float(np.sqrt(np.finfo(np.float64).max / (16.0 * max(int(n_rows), 1))))


def _is_complex(X) -> bool:
    if isinstance(X, torch.Tensor):
        return X.is_complex()
    if sp.issparse(X):
        return np.issubdtype(X.dtype, np.complexfloating)
    dt = getattr(X, "dtype", None)
    if dt is not None:
        try:
            if np.issubdtype(np.dtype(dt), np.complexfloating):
                return True
        except TypeError:
            pass
    dts = getattr(X, "dtypes", None)  # pandas DataFrame
    if dts is not None:
        try:
            return any(np.issubdtype(np.dtype(d), np.complexfloating) for d in dts)
        except TypeError:
            return False
    if isinstance(X, (list, tuple)):
        try:
            return np.iscomplexobj(np.asarray(X))
        except (TypeError, ValueError):
            return False
    return False


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
            "e.g. cfdkit.data.features.bag_of_words(train_texts, test_texts)."
        )
    if _is_complex(X):
        raise TypeError(
            f"{name} is complex-valued; cfdkit fits real features only. Pass the real part, the magnitude, "
            "or both as separate columns (e.g. np.hstack([X.real, X.imag]))."
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
    big = float(torch.abs(vals).max()) if vals.numel() else 0.0
    lim = max_feature_magnitude(T.shape[0] if n_features is None else 1)
    if big > lim:
        raise ValueError(
            f"{name} has values up to {big:.3g} in magnitude (limit {lim:.3g}): products of such features "
            "overflow float64 in the Hessian. Rescale the features (e.g. sklearn.preprocessing.StandardScaler "
            "or MaxAbsScaler) before fitting."
        )
    if n_features is not None and T.shape[1] != n_features:
        raise ValueError(
            f"{name} has {T.shape[1]} features but the audit was fitted with {n_features}; "
            "transform test data with the same vectorizer/encoder as the training data."
        )
    return T



def check_row_index(i, n: int) -> int:
    """A test-row index of a result with ``n`` rows: an int in ``-n..n-1`` (negative counts from the end).

    Raises TypeError for a non-integer (bools included) and :class:`ResultIndexError` when out of range;
    returns the index in ``0..n-1``.
    """
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"i must be an integer test-row index; got {type(i).__name__} {i!r}.")
    if not -n <= int(i) < n:
        raise ResultIndexError(f"test row i={i} is out of range for {n} test points (valid: {-n}..{n - 1}).")
    return int(i) % n


def label_array(y) -> np.ndarray:
    """``y`` (list, numpy, pandas or torch; a (n, 1) or (1, n) column/row allowed) as a numpy array, unchecked."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    arr = np.asarray(y)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    return arr


def check_labels(y, n_samples: int, name: str = "y") -> np.ndarray:
    """Check binary 0/1 labels of the right length and return them as int64.

    Raises
    ------
    ValueError
        Wrong length, labels outside {0, 1}, NaN, or only one class present.
    """
    if y is None:
        raise TypeError(f"{name} is None; pass binary labels (0/1) of length n_samples.")
    arr = label_array(y)
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


def check_finite_real(value, name: str, lo: float | None = None, hi: float | None = None,
                      lo_open: bool = False, hint: str = "") -> float:
    """A finite real number (numpy scalars included) in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}.{(' ' + hint) if hint else ''}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite; got {value!r}.{(' ' + hint) if hint else ''}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        op = ">" if lo_open else ">="
        raise ValueError(f"{name} must be {op} {lo:g}; got {value!r}.{(' ' + hint) if hint else ''}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi:g}; got {value!r}.{(' ' + hint) if hint else ''}")
    return v


def check_nonneg_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer; got {type(value).__name__} {value!r}.")
    if int(value) < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}.")
    return int(value)


def check_seed(value, name: str = "seed") -> int:
    """An integer seed in [0, 2**32) (numpy's range); strings and floats are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [0, 2**32); got {type(value).__name__} {value!r}. "
                        f"Pass e.g. {name}=0.")
    if not 0 <= int(value) < 2**32:
        raise ValueError(f"{name} must be an integer in [0, 2**32); got {value!r}.")
    return int(value)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r}.")
    return bool(value)


def check_bytes(value, name: str = "memory_budget") -> int:
    """A positive byte count: an int, or a string like ``"512MB"`` / ``"1.5GB"``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value > 0:
        return int(value)
    if isinstance(value, str):
        s = value.strip().upper()
        for unit, f in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
            if s.endswith(unit):
                try:
                    val = float(s[: -len(unit)])
                except ValueError:
                    break
                if val > 0 and np.isfinite(val):
                    return int(val * f)
    raise ValueError(f"{name} must be a positive byte count or a string like '512MB'; got {value!r}.")


def check_labels_any(y, n: int, name: str = "y_test") -> np.ndarray:
    """Binary labels of ``n`` rows where one class alone is allowed (test labels); float64 (n,)."""
    arr = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one label per test row ({n}); got shape {arr.shape}.")
    if not np.all(np.isin(arr, (0, 1))):
        raise ValueError(f"{name} must contain only 0 and 1; binarize the labels first.")
    return arr.astype(np.float64)


def fit_fingerprint(arrays: dict, params) -> str:
    """Hash of a fitted state: named arrays (numpy, torch dense or sparse CSR) and a repr-able ``params``.

    Results carry it; methods taking a result refuse one whose fingerprint is not the estimator's.
    """
    import hashlib

    h = hashlib.blake2b(digest_size=16)

    def add(tag, arr):
        a = np.ascontiguousarray(arr)
        h.update(f"{tag}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())

    for tag, X in arrays.items():
        if isinstance(X, torch.Tensor) and X.layout == torch.sparse_csr:
            add(tag + ".crow", X.crow_indices().cpu().numpy())
            add(tag + ".col", X.col_indices().cpu().numpy())
            add(tag + ".val", X.values().cpu().numpy())
        elif isinstance(X, torch.Tensor):
            add(tag, X.detach().cpu().numpy())
        else:
            add(tag, np.asarray(X))
    h.update(repr(params).encode())
    return h.hexdigest()


def feature_names_of(X):
    """Column names of a pandas DataFrame when they are all strings (as scikit-learn), else None."""
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "to_numpy"):
        return None
    names = list(cols)
    if len(names) and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None


def align_features(X, fitted_names, name: str, owner: str = "RelabelAudit"):
    """Reorder a test DataFrame's columns to ``fitted_names``, as scikit-learn's checks would.

    A DataFrame whose column set equals the fitted names is reordered by
    name; missing or unexpected columns raise a ``ValueError`` listing them.
    A non-DataFrame after a DataFrame fit is used by position with a
    ``UserWarning`` (scikit-learn does the same); a DataFrame after a fit
    without names warns likewise.
    """
    names = feature_names_of(X)
    if fitted_names is None:
        if names is not None:
            warnings.warn(f"{name} has feature names, but {owner} was fitted without feature names; "
                          "columns are used by position.", UserWarning, stacklevel=4)
        return X
    if names is None:
        if hasattr(X, "columns") and hasattr(X, "to_numpy"):
            raise ValueError(f"{name} is a DataFrame whose column names are not all strings, but {owner} was "
                             f"fitted with feature names {list(fitted_names)[:5]}...; give {name} the same columns.")
        warnings.warn(f"{name} does not have valid feature names, but {owner} was fitted with feature names; "
                      "columns are used by position.", UserWarning, stacklevel=4)
        return X
    fitted = list(fitted_names)
    got = list(names)
    if got == fitted:
        return X
    missing = [c for c in fitted if c not in set(got)]
    unexpected = [c for c in got if c not in set(fitted)]
    if missing or unexpected or len(set(got)) != len(got):
        parts = []
        if missing:
            parts.append(f"missing {missing[:10]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:10]}")
        if not parts:
            parts.append("duplicated column names")
        raise ValueError(f"{name}'s columns do not match the feature names seen at fit ({'; '.join(parts)}); "
                         "pass a frame with the training columns (any order) or transform it the same way.")
    return X[fitted]


# --------------------------------------------------------------------------------------------------
# Dense numpy inputs (families that train small dense models, e.g. cfdkit.neural): family-neutral
# checks that return numpy arrays.  ``owner`` names the caller in messages (e.g. "cfdkit.neural").
# --------------------------------------------------------------------------------------------------

def is_sparse(X) -> bool:
    """True for scipy.sparse matrices, non-strided torch tensors and other sparse array types."""
    if sp.issparse(X):
        return True
    if torch.is_tensor(X) and X.layout != torch.strided:
        return True
    mod = type(X).__module__
    return mod.startswith(("cupyx.scipy.sparse", "sparse.", "pydata_sparse"))


def as_dense_numpy(X, name: str, owner: str = "this estimator") -> np.ndarray:
    """Any array-like -> numpy (no dtype change), refusing sparse, complex, text and ragged input.

    Raises
    ------
    TypeError
        Sparse (the message says how to densify or reduce it), complex, ``str``/``bytes``.
    ValueError
        Input numpy cannot read as one array (rows of different lengths).
    """
    if is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}); {owner} needs dense input and does not "
            f"support sparse matrices. Convert it with {name}.toarray() (scipy) or {name}.to_dense() (torch) "
            "if it fits in memory, or reduce the features first (e.g. sklearn.decomposition.TruncatedSVD)."
        )
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a {type(X).__name__}.")
    if torch.is_tensor(X):
        X = X.detach().cpu().numpy()
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} could not be read as an array (rows of different lengths?): {e}") from None
    if A.dtype.kind == "c" or (A.dtype == object and any(isinstance(v, (complex, np.complexfloating))
                                                         for v in A.ravel()[:100000])):
        raise TypeError(
            f"{name} holds complex numbers; {owner} needs real features and does not drop imaginary "
            f"parts silently. Pass {name}.real, abs({name}) or both parts as separate columns."
        )
    return A


def check_dense_matrix(X, name: str = "X", n_features: int | None = None,
                       owner: str = "this estimator") -> np.ndarray:
    """A 2-D finite float64 numpy array ``(n, d)``; optionally with ``n_features`` columns.

    Raises
    ------
    TypeError
        Sparse, complex, text or other non-numeric input (the message says how to convert it).
    ValueError
        Wrong number of dimensions or columns, no rows, no columns, NaN/inf.
    """
    raw = as_dense_numpy(X, name, owner)
    try:
        A = raw.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric 2-D array (n, d); encode categorical columns first "
                        f"(e.g. cfdkit.data.features.tabular_features). ({e})") from None
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {A.shape}; reshape, e.g. {name}.reshape(1, -1) "
                         "for one row.")
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


def check_binary_vector(y, n: int, name: str = "y", owner: str = "this estimator") -> np.ndarray:
    """Binary 0/1 (or bool) labels ``(n,)`` -> int64 (one class alone is allowed).

    Raises
    ------
    TypeError
        Sparse or complex labels.
    ValueError
        Not 1-D, wrong length, values outside {0, 1} or NaN.
    """
    a = as_dense_numpy(y, name, owner)
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


def check_index_set(idx, n: int, name: str = "idx", owner: str = "this estimator") -> np.ndarray:
    """Distinct row indices in ``[0, n)`` -> 1-D int64 (integral floats accepted, bool masks refused).

    Raises
    ------
    TypeError
        Non-integer indices or a boolean mask (the message says ``np.flatnonzero(mask)``).
    ValueError
        Indices out of range or repeated.
    """
    a = as_dense_numpy(idx, name, owner).ravel() if not np.isscalar(idx) else np.asarray([idx])
    if a.size and (a.dtype == bool or a.dtype.kind not in "iu"):
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer training indices, got dtype {a.dtype} "
                            f"(for a boolean mask use np.flatnonzero(mask)).")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name} indices must lie in [0, {n}), got {a.tolist()[:10]}.")
    if np.unique(a).size != a.size:
        raise ValueError(f"{name} has repeated indices {a.tolist()[:10]}; flipping a label twice undoes it.")
    return a


def check_callable(value, name: str, hint: str = "", allow_none: bool = True):
    """A callable (or ``None`` with ``allow_none``); ``TypeError`` naming ``name`` otherwise."""
    if (value is None and allow_none) or callable(value):
        return value
    raise TypeError(f"{name} must be a callable{' or None' if allow_none else ''}, got {type(value).__name__} "
                    f"{value!r}.{(' ' + hint) if hint else ''}")


def check_kwargs(value, name: str) -> dict:
    """A dict of keyword arguments (``None`` -> ``{}``, copied); ``TypeError`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict of keyword arguments or None, got {type(value).__name__}.")
    return dict(value)


def check_batch(X, name: str = "X") -> np.ndarray:
    """A batch of inputs of any shape ``(n, ...)``, n >= 1, finite and real: float64 numpy (torch is copied to host)."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if _is_complex(X):
        raise TypeError(f"{name} is complex-valued; pass real numbers.")
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric array of shape (n, ...); got {type(X).__name__}.") from e
    if A.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ...) with at least 2 dimensions; got shape {A.shape}. "
                         "Reshape a single input with X[None].")
    if A.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {A.shape}); pass at least one input.")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinite values; clean or impute them first.")
    return A


# --------------------------------------------------------------------------------------------------
# One check for every numeric parameter of every entry point.
# --------------------------------------------------------------------------------------------------

def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True, integer: bool = False,
                 allow_none: bool = False, fix: str = ""):
    """A finite real (or integer) parameter inside a range, or a clear error naming it and the fix.

    Parameters
    ----------
    value : object
        The user's value. Python and numpy ints/floats are accepted; ``bool`` (also ``np.bool_``),
        strings, ``None`` (unless ``allow_none``), NaN and ±inf are refused.
    name : str
        The argument's name as the user wrote it (e.g. ``"max_size"`` or ``"--n-test"``).
    low, high : float, optional
        Bounds of the accepted range; ``None`` leaves that side open.
    low_inclusive, high_inclusive : bool, default True
        Whether ``low`` / ``high`` themselves are accepted.
    integer : bool, default False
        Require an integer: Python/numpy integers, or a float with an integral value (``3.0``).
        The result is then an ``int``.
    allow_none : bool, default False
        Return ``None`` for ``None`` instead of refusing it.
    fix : str, default ""
        What the user should do, appended to every message (e.g. ``"Pass e.g. max_size=16."``).
        The message always names the argument, the accepted range and the value received.

    Returns
    -------
    float or int or None
        ``float(value)``, ``int(value)`` when ``integer``, or ``None``.

    Raises
    ------
    TypeError
        ``value`` is not a real number (a bool, a string, a complex, ...) or, with ``integer``,
        a float with a fractional part.
    ValueError
        ``value`` is NaN or infinite, or outside the range.
    """
    if value is None and allow_none:
        return None
    def fmt(b):
        return str(int(b)) if float(b).is_integer() and abs(b) < 1e16 else f"{b:g}"

    lo_s = "" if low is None else (f"{'>=' if low_inclusive else '>'} {fmt(low)}")
    hi_s = "" if high is None else (f"{'<=' if high_inclusive else '<'} {fmt(high)}")
    what = "an integer" if integer else "a finite number"
    rng = " and ".join(s for s in (lo_s, hi_s) if s)
    want = f"{what}{(' ' + rng) if rng else ''}"
    hint = f" {fix}" if fix else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {want}; got {type(value).__name__} {value!r}.{hint}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be {want}; got {value!r} (NaN and infinity are not accepted).{hint}")
    if integer:
        if not isinstance(value, numbers.Integral):
            if v != np.floor(v):
                raise TypeError(f"{name} must be {want}; got {value!r}.{hint}")
        out = int(value) if isinstance(value, numbers.Integral) else int(v)
        vv = out
    else:
        out = v
        vv = v
    if low is not None and (vv < low or (not low_inclusive and vv == low)):
        raise ValueError(f"{name} must be {want}; got {value!r}.{hint}")
    if high is not None and (vv > high or (not high_inclusive and vv == high)):
        raise ValueError(f"{name} must be {want}; got {value!r}.{hint}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The spurious-bias family (cfdkit.spurious): NeuronTune's numbers, class labels, planted-feature data sets

def check_lam(lam) -> float:
    """NeuronTune's threshold λ on the median differences δ (a finite real)."""
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number (the threshold λ on δ); got {lam!r}. Use e.g. lam=0.0.")
    lam = float(lam)
    if not np.isfinite(lam):
        raise ValueError(f"lam={lam} is not finite; λ is a threshold on the median differences δ, "
                         "use a finite number such as 0.0 (the paper's default).")
    return lam


def check_rule(rule, rules=("all", "any")) -> str:
    """NeuronTune's identification rule (one of ``rules``)."""
    if rule not in rules:
        raise ValueError(f"rule={rule!r} is unknown; use rule='all' (δ > λ for every class, the source's literal "
                         "'∀y') or rule='any' (δ > λ for at least one class).")
    return rule


def check_mask_value(mask_value) -> float:
    """The factor flagged neurons are multiplied by, in [0, 1]."""
    if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
        raise TypeError(f"mask_value must be a real number in [0, 1]; got {mask_value!r}.")
    mv = float(mask_value)
    if not (0.0 <= mv <= 1.0):
        raise ValueError(f"mask_value={mask_value} must lie in [0, 1]: flagged neurons are multiplied by it "
                         "(0 = zeroed as in NeuronTune, 1 = untouched).")
    return mv


def check_count(v, name):
    """A positive int (bools refused)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive int; got {v!r}.")
    return int(v)


def check_class_labels(y, n, name="y") -> np.ndarray:
    """Integer class labels ``0..C-1``, one per row (bools become 0/1), as int64."""
    a = np.asarray(y)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name} must be 1-D with one label per row ({n}); got shape {a.shape}.")
    if a.dtype == bool:
        return a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or \
            np.any(a < 0):
        raise ValueError(f"{name} must hold integer class labels 0..C-1; got e.g. {np.unique(a)[:5].tolist()}.")
    return a.astype(np.int64)


def check_label_range(y, n_classes, name):
    """Labels below the model head's number of classes."""
    if len(y) and y.max() >= n_classes:
        raise ValueError(f"{name} holds label {int(y.max())} but the model's head has {n_classes} classes "
                         f"(labels 0..{n_classes - 1}); pass the labels the model was trained with.")
    return y


def check_head_numbers(epochs, lr, batch_size, weight_decay, seed):
    """Head-retraining numbers, checked once (finite, in range); returns ``(epochs, batch_size, seed)`` as ints."""
    epochs = check_number(epochs, "epochs", low=1, high=100_000, integer=True, fix="Pass e.g. epochs=50.")
    check_number(lr, "lr", low=0, high=1, low_inclusive=False, fix="Pass e.g. lr=1e-2 (Adam's step size).")
    batch_size = check_number(batch_size, "batch_size", low=1, integer=True, fix="Pass e.g. batch_size=64.")
    check_number(weight_decay, "weight_decay", low=0, high=1e3, fix="Pass e.g. weight_decay=1e-4 (0 for none).")
    seed = check_number(seed, "seed", low=0, high=2 ** 63 - 1 - 7919, integer=True, fix="Pass e.g. seed=0.")
    return epochs, batch_size, seed


def check_planted_rho(rho):
    """P(planted feature = y) in training, in the open interval (0.5, 1)."""
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real) or not (0.5 < float(rho) < 1.0):
        raise ValueError(f"rho={rho!r} must be a number in the open interval (0.5, 1): P(planted feature = y) in "
                         "training, e.g. 0.9 or 0.95.")
    return float(rho)


def check_split_size(v, name):
    """A split size of a planted-feature data set: an int >= 8."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 8:
        raise ValueError(f"{name} must be an int >= 8; got {v!r}.")
    return int(v)
