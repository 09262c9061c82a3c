"""Seeded synthetic binary classification data (no files needed)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._base import Dataset, check_seed, flip_labels

__all__ = ["make_synthetic"]


def _check_count(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _dense(rng, n, d, class_sep, direction):
    y = rng.integers(0, 2, size=n)
    X = rng.standard_normal((n, d)) + np.outer(2 * y - 1, direction) * (class_sep / 2.0)
    return X.astype(np.float64), y.astype(np.int64)


def _sparse(rng, n, d, class_sep, word_probs, doc_length):
    import scipy.sparse as sp

    y = rng.integers(0, 2, size=n).astype(np.int64)
    lengths = np.maximum(1, rng.poisson(doc_length, size=n))
    rows, cols, vals = [], [], []
    for i in range(n):
        counts = rng.multinomial(lengths[i], word_probs[y[i]])
        nz = np.flatnonzero(counts)
        rows.append(np.full(nz.size, i))
        cols.append(nz)
        vals.append(counts[nz])
    X = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, d),
    )
    X.sort_indices()
    return X, y


def make_synthetic(
    n_train: int = 2000,
    n_test: int = 200,
    n_features: int = 20,
    noise: float = 0.0,
    sparse: bool = False,
    seed: int = 0,
    *,
    class_sep: float = 3.0,
    doc_length: int = 30,
) -> Dataset:
    """Deterministic synthetic binary classification (the embedded default).

    Dense (``sparse=False``): two Gaussians, ``X | y ~ N(±(class_sep/2) u, I)``
    with a random unit direction ``u`` and balanced random labels.
    Sparse (``sparse=True``): a bag-of-words-like count matrix: each class
    has its own word distribution over ``n_features`` "words" (a shared
    Zipf-like base, re-weighted per class by ``exp(±class_sep/2 · z_w)``), and
    each document draws Poisson(``doc_length``) words.

    Parameters
    ----------
    n_train, n_test : int, default 2000, 200
        Numbers of rows (``n_train >= 2``, ``n_test >= 1``).
    n_features : int, default 20
        Number of features (vocabulary size when sparse), >= 1.
    noise : float, default 0.0
        Share of *training* labels to flip (exactly ``round(noise*n_train)``,
        see :func:`flip_labels`); test labels stay clean.
    sparse : bool, default False
        Return ``scipy.sparse.csr_matrix`` float64 counts instead of a dense
        float64 array.
    seed : int, default 0
        Everything is drawn from ``numpy.random.default_rng(seed)``.
    class_sep : float, default 3.0
        Distance between the class means (dense) or strength of the class
        re-weighting of words (sparse); larger is easier (dense: the Bayes
        accuracy is Phi(class_sep / 2), about 0.93 for the default).
    doc_length : int, default 30
        Mean number of words per document (sparse only).

    Returns
    -------
    Dataset
        ``X_train`` (n_train, n_features), ``X_test`` (n_test, n_features),
        int64 labels; ``meta["flipped_idx"]`` (sorted int64 indices of the
        flipped training labels) and ``meta["y_train_clean"]``.
    """
    n_train = _check_count(n_train, "n_train", minimum=2)
    n_test = _check_count(n_test, "n_test", minimum=1)
    n_features = _check_count(n_features, "n_features", minimum=1)
    doc_length = _check_count(doc_length, "doc_length", minimum=1)
    seed = check_seed(seed)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a share of training labels in [0, 1], got {noise!r}")
    if isinstance(class_sep, bool) or not isinstance(class_sep, numbers.Real):
        raise TypeError(f"class_sep must be a real number such as 3.0, got {type(class_sep).__name__}")
    if not math.isfinite(class_sep) or class_sep < 0:
        raise ValueError(f"class_sep must be a finite non-negative number (e.g. 3.0), got {class_sep!r}")
    if not isinstance(sparse, (bool, np.bool_)):
        raise TypeError(f"sparse must be True or False, got {sparse!r} ({type(sparse).__name__})")

    rng = np.random.default_rng(seed)
    if sparse:
        base = 1.0 / np.arange(1, n_features + 1) ** 0.8
        z = rng.standard_normal(n_features)
        probs = []
        for sign in (-1.0, 1.0):
            with np.errstate(over="ignore", invalid="ignore"):
                w = base * np.exp(sign * class_sep / 2.0 * z)
                p = w / w.sum()
            if not np.isfinite(p).all():
                raise ValueError(
                    f"class_sep={class_sep!r} is too large for sparse=True: the word weights "
                    "exp(class_sep/2 * z) overflow float64; use a smaller class_sep (values above ~20 "
                    "already separate the classes fully)."
                )
            probs.append(p)
        X_tr, y_tr = _sparse(rng, n_train, n_features, class_sep, probs, doc_length)
        X_te, y_te = _sparse(rng, n_test, n_features, class_sep, probs, doc_length)
        names = [f"w{j}" for j in range(n_features)]
    else:
        u = rng.standard_normal(n_features)
        u /= np.linalg.norm(u)
        X_tr, y_tr = _dense(rng, n_train, n_features, class_sep, u)
        X_te, y_te = _dense(rng, n_test, n_features, class_sep, u)
        if not (np.isfinite(X_tr).all() and np.isfinite(X_te).all()):
            raise ValueError(
                f"class_sep={class_sep!r} is too large: the features overflow float64; use a smaller "
                "class_sep (values above ~20 already separate the classes fully)."
            )
        names = [f"x{j}" for j in range(n_features)]
    y_noisy, flipped = flip_labels(y_tr, noise, seed=seed + 1)
    return Dataset(
        name="synthetic",
        X_train=X_tr,
        y_train=y_noisy,
        X_test=X_te,
        y_test=y_te,
        feature_names=names,
        meta={
            "positive_class": "class 1 of the generator",
            "flipped_idx": flipped,
            "y_train_clean": y_tr,
            "noise": float(noise),
            "seed": seed,
            "sparse": bool(sparse),
            "class_sep": float(class_sep),
        },
        description=(
            f"Synthetic {'bag-of-words' if sparse else 'two-Gaussian'} binary data, "
            f"{n_train}/{n_test} rows, {n_features} features, seed {seed}."
        ),
        notes=f"{flipped.size} training labels flipped (noise={noise})." if flipped.size else "",
    )
