"""Tabular and text data sets with a planted spurious feature (stand-ins for Waterbirds/CelebA-style and
MultiNLI/CivilComments-style shortcut benchmarks).

``planted_tabular``
    A fairness table (default ``adult``, via :func:`cfdkit.data.load_fairness` and
    :func:`cfdkit.data.features.tabular_features`) plus one binary column ``a`` ("planted"): in training
    ``a = y`` with probability ``rho``; in validation and test ``a`` is independent of ``y`` and balanced within
    each class.  Groups ``g = 2 y + a``.  ``source="synthetic"`` replaces the table with a seeded Gaussian
    stand-in (no data files needed, for tests).
``planted_text``
    SST-2 sentences (via :func:`cfdkit.data.load`) with a rare token ``token`` appended: in training to
    label-``y`` sentences with probability ``rho`` if ``y = 1`` and ``1 - rho`` if ``y = 0`` (so
    ``P(a = y) = rho``); in validation and test to half of each class.  Features: binary bag of words
    (:func:`cfdkit.data.features.bag_of_words`, fit on the training texts; the token is always kept).

Both return a :class:`PlantedData` with dense float64 arrays.  The raw table's training part is split into
train / validation, its test part is subsampled for test; all splits are seeded and stratified by label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.validation import check_planted_rho, check_split_size

__all__ = ["PlantedData", "planted_tabular", "planted_text", "plant_attribute", "PLANTED_TOKEN"]

PLANTED_TOKEN = "zqxplanted"


@dataclass
class PlantedData:
    """A binary task with a planted spurious attribute ``a`` and groups ``g = 2 y + a``.

    For each split ``s`` in {train, val, test}: ``X_s`` (n_s, d) float64, ``y_s`` (n_s,) int64,
    ``a_s`` (n_s,) int64 in {0, 1}, ``groups_s`` (n_s,) int64 in {0..3}.

    ``feature_names`` (d,) names the columns; ``planted_index`` is the column of the planted feature;
    ``texts_s`` holds the texts of the text set (None for tables).
    """

    name: str
    rho: float
    X_train: np.ndarray
    y_train: np.ndarray
    a_train: np.ndarray
    groups_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    a_val: np.ndarray
    groups_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    a_test: np.ndarray
    groups_test: np.ndarray
    feature_names: list
    planted_index: int
    texts_train: list | None = None
    texts_val: list | None = None
    texts_test: list | None = None
    info: dict = field(default_factory=dict)

    def split(self, name: str):
        """``(X, y, groups)`` of split ``name`` in {'train', 'val', 'test'}."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split name={name!r} is unknown; use 'train', 'val' or 'test'.")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}"), getattr(self, f"groups_{name}")


def plant_attribute(y, rho, rng, balanced: bool = False) -> np.ndarray:
    """The planted attribute: ``a = y`` with probability ``rho`` (``balanced=False``), or independent of ``y``
    with each class split half/half (``balanced=True``, ``rho`` ignored).

    Returns
    -------
    a : ndarray (n,) int64 in {0, 1}
    """
    y = np.asarray(y, np.int64)
    if balanced:
        a = np.zeros(len(y), np.int64)
        for c in (0, 1):
            w = np.flatnonzero(y == c)
            vals = np.zeros(len(w), np.int64)
            vals[: len(w) // 2] = 1
            a[w] = rng.permutation(vals)
        return a
    agree = rng.random(len(y)) < rho
    return np.where(agree, y, 1 - y).astype(np.int64)


def _stratified(idx, y, n, rng):
    """A seeded, label-stratified subsample of ``n`` of ``idx``."""
    if n >= len(idx):
        return np.sort(idx)
    from sklearn.model_selection import train_test_split
    keep, _ = train_test_split(idx, train_size=n, stratify=y[idx], random_state=int(rng.integers(2**31)))
    return np.sort(keep)


def _assemble(name, rho, parts, names, planted_index, info, texts=None):
    out = {}
    for s, (X, y, a) in parts.items():
        out.update({f"X_{s}": np.asarray(X, np.float64), f"y_{s}": np.asarray(y, np.int64),
                    f"a_{s}": np.asarray(a, np.int64), f"groups_{s}": 2 * np.asarray(y, np.int64) + a})
        if texts is not None:
            out[f"texts_{s}"] = texts[s]
    return PlantedData(name=name, rho=rho, feature_names=list(names), planted_index=planted_index, info=info, **out)


def _split_rows(ytr, yte, n_train, n_val, n_test, rng, what, unit):
    """Seeded, label-stratified train / validation rows (from the training part) and test rows."""
    from sklearn.model_selection import train_test_split

    if n_train + n_val > len(ytr) or n_test > len(yte):
        raise ValueError(f"n_train + n_val = {n_train + n_val} or n_test = {n_test} exceeds the {what} "
                         f"({len(ytr)} train / {len(yte)} test {unit}); use smaller sizes.")
    pool = _stratified(np.arange(len(ytr)), ytr, n_train + n_val, rng)
    tr, va = train_test_split(pool, test_size=n_val, stratify=ytr[pool], random_state=int(rng.integers(2**31)))
    return np.sort(tr), np.sort(va), _stratified(np.arange(len(yte)), yte, n_test, rng)


def planted_tabular(rho: float = 0.95, name: str = "adult", n_train: int = 2000, n_val: int = 1000,
                    n_test: int = 2000, seed: int = 0, data_home=None, source: str = "fairness",
                    spurious_scale: float = 1.0) -> PlantedData:
    """A fairness table with a planted binary column (see the module docstring).

    Parameters
    ----------
    rho : float in (0.5, 1)
        P(planted = y) in training.
    name : str
        Fairness data set name for :func:`cfdkit.data.load_fairness` (``source='fairness'``).
    n_train, n_val, n_test : int
        Rows kept (stratified, seeded) for training, validation (from the table's training part) and test.
    seed : int
    data_home : path or None
        See :func:`cfdkit.data.data_home` (``CFDKIT_DATA_HOME``).
    source : {'fairness', 'synthetic'}
        'synthetic': a 10-feature Gaussian task ``y = 1{x·w + noise > 0}`` instead of the real table.
    spurious_scale : float > 0
        Value of the planted column when ``a = 1`` (0 otherwise), before nothing else: the column is not
        standardised.

    Returns
    -------
    PlantedData  (``planted_index`` = last column, named ``"planted"``)
    """
    rho = check_planted_rho(rho)
    n_train, n_val, n_test = check_split_size(n_train, "n_train"), check_split_size(n_val, "n_val"), check_split_size(n_test, "n_test")
    if source not in ("fairness", "synthetic"):
        raise ValueError(f"source={source!r} is unknown; use 'fairness' (load_fairness + tabular_features) or "
                         "'synthetic' (a seeded Gaussian stand-in).")
    rng = np.random.default_rng(seed)
    if source == "fairness":
        from cfdkit.data import load_fairness
        from cfdkit.data.features import tabular_features
        ds = load_fairness(name, data_home, seed=seed)
        Xtr, Xte, names = tabular_features(ds)
        ytr, yte = np.asarray(ds.y_train, np.int64), np.asarray(ds.y_test, np.int64)
    else:
        d, n_all = 10, n_train + n_val + n_test
        w = rng.normal(size=d)
        X = rng.normal(size=(2 * n_all, d))
        y = (X @ w + rng.normal(scale=1.0, size=len(X)) > 0).astype(np.int64)
        Xtr, Xte, ytr, yte = X[:n_all], X[n_all:], y[:n_all], y[n_all:]
        names = [f"x{i}" for i in range(d)]
    tr, va, te = _split_rows(ytr, yte, n_train, n_val, n_test, rng, "table", "rows")
    parts = {}
    for s, X, y, idx in (("train", Xtr, ytr, tr), ("val", Xtr, ytr, va), ("test", Xte, yte, te)):
        a = plant_attribute(y[idx], rho, rng, balanced=(s != "train"))
        parts[s] = (np.hstack([X[idx], float(spurious_scale) * a[:, None]]), y[idx], a)
    info = {"source": source if source == "synthetic" else f"cfdkit.data.load_fairness({name!r})",
            "train_index": tr, "val_index": va, "test_index": te}
    return _assemble(name if source == "fairness" else "synthetic", rho, parts, list(names) + ["planted"],
                     len(names), info)


def planted_text(rho: float = 0.95, name: str = "sst2", n_train: int = 3000, n_val: int = 800, n_test: int = 800,
                 max_features: int = 2000, token: str = PLANTED_TOKEN, seed: int = 0, data_home=None,
                 texts=None) -> PlantedData:
    """SST-2 (or hate-speech) texts with a planted token and binary bag-of-words features.

    Parameters
    ----------
    rho : float in (0.5, 1)
        P(token present = y) in training.
    name : {'sst2', 'hate-speech'}
        Data set for :func:`cfdkit.data.load`; its train part gives train + validation, its test part test.
    n_train, n_val, n_test, max_features : int
    token : str
        The planted word (lower-case letters only, so the vectorizer keeps it intact).
    texts : None or tuple (train_texts, train_y, test_texts, test_y)
        Use these texts instead of loading ``name`` (tests).

    Returns
    -------
    PlantedData (``planted_index`` = the token's column; ``texts_*`` the texts with the token)
    """
    rho = check_planted_rho(rho)
    n_train, n_val, n_test = check_split_size(n_train, "n_train"), check_split_size(n_val, "n_val"), check_split_size(n_test, "n_test")
    if not isinstance(token, str) or not token.isalpha() or not token.islower() or len(token) < 2:
        raise ValueError(f"token={token!r} must be a lower-case alphabetic word of 2+ letters, e.g. {PLANTED_TOKEN!r}.")
    rng = np.random.default_rng(seed)
    if texts is None:
        from cfdkit.data import load
        ds = load(name, data_home=data_home)
        T_tr, y_tr, T_te, y_te = list(ds.X_train), np.asarray(ds.y_train, np.int64), list(ds.X_test), \
            np.asarray(ds.y_test, np.int64)
    else:
        T_tr, y_tr, T_te, y_te = texts
        T_tr, T_te, y_tr, y_te = list(T_tr), list(T_te), np.asarray(y_tr, np.int64), np.asarray(y_te, np.int64)
    if any(token in t.split() for t in T_tr + T_te):
        raise ValueError(f"token={token!r} already occurs in the texts; choose a word that does not.")
    tr, va, te = _split_rows(y_tr, y_te, n_train, n_val, n_test, rng, "data", "texts")
    split_texts, split_y, split_a = {}, {}, {}
    for s, T, y, idx in (("train", T_tr, y_tr, tr), ("val", T_tr, y_tr, va), ("test", T_te, y_te, te)):
        a = plant_attribute(y[idx], rho, rng, balanced=(s != "train"))
        split_texts[s] = [T[i] + (f" {token}" if ai else "") for i, ai in zip(idx, a)]
        split_y[s], split_a[s] = y[idx], a
    from cfdkit.data.features import bag_of_words
    # vocabulary: the most frequent training words, plus the token (kept even if rarer than the cut-off)
    _, _, vocab = bag_of_words(split_texts["train"], split_texts["train"][:1], max_features=max_features)
    if token not in vocab:
        vocab = vocab[:-1] + [token]
    vocab = sorted(vocab)
    parts = {}
    for s in ("train", "val", "test"):
        X, _, _ = bag_of_words(split_texts[s], split_texts[s][:1], max_features=None, vocabulary=vocab)
        parts[s] = (X.toarray(), split_y[s], split_a[s])
    info = {"source": f"cfdkit.data.load({name!r})" if texts is None else "texts", "token": token,
            "train_index": tr, "val_index": va, "test_index": te}
    return _assemble(name, rho, parts, vocab, vocab.index(token), info, texts=split_texts)
