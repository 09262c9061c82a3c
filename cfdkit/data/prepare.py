"""The one data-preparation path of every model family: data set -> features -> arrays (+ l2 and threshold).

:func:`prepare` loads a data set with :func:`cfdkit.data.load`, builds its features and returns them with the
settings of the relabeling paper; :func:`load_arrays` is the same path as plain dense float64 / int64 arrays for
the neural networks.  ``"synthetic"`` always means :func:`cfdkit.data.make_synthetic` (two Gaussians, or sparse
counts with ``features="bow"``).

Yang, Xu & Yu (2024), *Relabeling Minimal Training Subset to Flip a
Prediction*, Table 6 (l2) and Appendix A.1 (threshold).  The paper's "BERT"
features are, here, ``features="embeddings"``: all-MiniLM-L6-v2 sentence
embeddings (:func:`cfdkit.data.features.sentence_embeddings`), *not* BERT-base.
The loan data are the PARTIAL 20,000-row subset of the Kaggle file (13,568
of its rows repeat an earlier row exactly); see
``shared/data/loan_default_partial_20k/README.md``.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._tabular import FAIRNESS_NAMES

#: l2 of Table 6 (``sum_i L_i + l2/2 ||w||^2``), per (dataset, features).
L2 = {
    ("loan", "tabular"): 100.0,
    ("sst2", "bow"): 1000.0,
    ("sst2", "embeddings"): 500.0,
    ("hate-speech", "bow"): 10.0,
    ("hate-speech", "embeddings"): 10.0,
    ("synthetic", "dense"): 1.0,
    ("synthetic", "bow"): 1.0,
}

#: Decision threshold tau (Appendix A.1: 0.25 for hate speech to maximize the training F1, else 0.5).
THRESHOLD = {"hate-speech": 0.25}

#: Features each data set supports (the first is the default).
FEATURES = {
    "loan": ("tabular",),
    "sst2": ("bow", "embeddings"),
    "hate-speech": ("bow", "embeddings"),
    "synthetic": ("dense", "bow"),
    **{name: ("tabular",) for name in FAIRNESS_NAMES},
}

#: How the paper names our (dataset, features).
PAPER_NAMES = {
    "loan": "Loan", "sst2": "Movie reviews", "hate-speech": "Hate speech", "synthetic": "(synthetic)",
    "tabular": "BoW (tabular)", "bow": "BoW", "embeddings": "BERT (here: MiniLM embeddings)", "dense": "dense",
}

LOAN_NOTE = ("loan = PARTIAL 20,000-row subset of Kaggle 'Loan Prediction Based on Customer Behavior' "
             "(4 of 13 columns dropped; 13,568 rows repeat an earlier row exactly), not the paper's 252k-row file")
EMBEDDING_NOTE = "'BERT' in the paper = all-MiniLM-L6-v2 sentence embeddings here (384-d), not BERT-base"


class Prepared(NamedTuple):
    """What :func:`prepare` returns; unpacks like a tuple."""

    X_train: Any
    y_train: np.ndarray
    X_test: Any
    y_test: np.ndarray
    texts_train: list | None
    texts_test: list | None
    l2: float
    threshold: float
    info: dict


def canonical_dataset(name: str) -> str:
    from ._api import canonical_name  # same aliases as cfdkit.data.load

    try:
        key = canonical_name(name)
    except ValueError:
        key = None
    if key not in FEATURES:
        raise ValueError(f"unknown dataset {name!r} for the paper's experiments; choose one of "
                         f"{', '.join(FEATURES)}.")
    return key


def default_features(dataset: str) -> str:
    return FEATURES[canonical_dataset(dataset)][0]


def _subset(n: int, k: int | None, seed: int) -> np.ndarray:
    if k is None or k >= n:
        return np.arange(n)
    if k < 1:
        raise ValueError(f"the number of rows to keep must be >= 1; got {k}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(k), replace=False))


def _take(X, idx):
    if isinstance(X, list):
        return [X[i] for i in idx]
    if isinstance(X, pd.DataFrame):
        return X.iloc[idx].reset_index(drop=True)
    return X[idx]


def prepare(dataset: str, features: str | None = None, *, seed: int = 0, n_test: int | None = None,
            n_train: int | None = None, noise: float = 0.0, data_home=None, synthetic_kwargs: dict | None = None
            ) -> Prepared:
    """Load ``dataset``, build ``features``, and pick the paper's l2 and threshold.

    Parameters
    ----------
    dataset : {"loan", "sst2", "hate-speech", "synthetic"}
    features : {"bow", "embeddings", "tabular", "dense"}, optional
        ``"embeddings"`` = all-MiniLM-L6-v2 sentence embeddings, our stand-in
        for the paper's "BERT".  Loan uses ``"tabular"`` (one-hot + standardised
        numerics; the paper's Table 2 calls it "BoW"); synthetic uses
        ``"dense"`` (two Gaussians) or ``"bow"`` (sparse counts).
    seed : int
        Seeds the test-row subset (``n_test``), the training subset
        (``n_train``), the label noise and the synthetic data.
    n_test, n_train : int, optional
        Keep a seeded random subset of that many test / training rows
        (``None``: all).  Row positions kept are in ``info["test_index"]``.
    noise : float
        Share of training labels flipped with :func:`cfdkit.data.flip_labels`
        (seeded); the flipped indices are ``info["noisy_idx"]``.
    data_home : path, optional
        Where the data live (else ``CFDKIT_DATA_HOME``).

    Returns
    -------
    Prepared
        ``(X_train, y_train, X_test, y_test, texts_train, texts_test, l2, threshold, info)``.
    """
    from ..core.validation import check_number
    from ._api import load
    from ._base import flip_labels
    from ._base import check_seed

    t0 = time.perf_counter()
    seed = check_seed(seed)
    n_test = check_number(n_test, "n_test", low=1, integer=True, allow_none=True,
                          fix="Pass the number of test rows to keep, e.g. n_test=100, or None for all.")
    n_train = check_number(n_train, "n_train", low=1, integer=True, allow_none=True,
                           fix="Pass the number of training rows to keep, e.g. n_train=500, or None for all.")
    noise = check_number(noise, "noise", low=0.0, high=1.0,
                         fix="noise is the share of training labels flipped, e.g. noise=0.1 (0: none).")
    ds_name = canonical_dataset(dataset)
    feats = features or FEATURES[ds_name][0]
    if feats not in FEATURES[ds_name]:
        raise ValueError(f"features={feats!r} is not available for {ds_name}; choose one of "
                         f"{', '.join(FEATURES[ds_name])}.")
    notes = []
    if ds_name == "synthetic":
        kw = {"n_train": 800, "n_test": 150, "n_features": 10, "seed": seed, "class_sep": 2.5}
        if feats == "bow":
            kw.update(sparse=True, n_features=100, class_sep=1.0)
        kw.update(synthetic_kwargs or {})
        ds = load("synthetic", **kw)
    else:
        kw = {} if data_home is None else {"data_home": data_home}
        if ds_name in FAIRNESS_NAMES:
            kw["seed"] = seed
        ds = load(ds_name, **kw)
    if ds_name == "loan":
        notes.append(LOAN_NOTE)
    if feats == "embeddings":
        notes.append(EMBEDDING_NOTE)
    tr = _subset(ds.n_train, n_train, seed + 7919)
    te = _subset(ds.n_test, n_test, seed)
    texts_train = texts_test = None
    Xtr_raw, Xte_raw = _take(ds.X_train, tr), _take(ds.X_test, te)
    y_train, y_test = np.asarray(ds.y_train)[tr], np.asarray(ds.y_test)[te]
    if ds_name in ("sst2", "hate-speech"):
        texts_train, texts_test = Xtr_raw, Xte_raw
        if feats == "bow":
            from .features import bag_of_words

            X_train, X_test, _ = bag_of_words(texts_train, texts_test)
        else:
            from .features import sentence_embeddings

            X_train = sentence_embeddings(texts_train, cache_key=f"{ds_name}-train")
            X_test = sentence_embeddings(texts_test, cache_key=f"{ds_name}-test")
    elif ds_name == "loan" or ds_name in FAIRNESS_NAMES:
        from .features import tabular_features

        X_train, X_test, _ = tabular_features((Xtr_raw, Xte_raw, ds.categorical, ds.numeric))
    else:
        X_train, X_test = Xtr_raw, Xte_raw
    noisy = np.empty(0, dtype=np.int64)
    if noise:
        y_train, noisy = flip_labels(y_train, noise, seed=seed)
    info = {
        "dataset": ds_name, "features": feats, "n_train": int(len(y_train)), "n_test": int(len(y_test)),
        "n_train_total": ds.n_train, "n_test_total": ds.n_test, "test_index": te, "train_index": tr,
        "noise": float(noise), "noisy_idx": np.asarray(noisy, dtype=np.int64), "seed": seed,
        "notes": notes, "seconds": time.perf_counter() - t0,
        "raw_train": Xtr_raw if isinstance(Xtr_raw, pd.DataFrame) else None,
        "raw_test": Xte_raw if isinstance(Xte_raw, pd.DataFrame) else None,
    }
    l2 = L2.get((ds_name, feats), np.nan)   # the relabeling paper's l2 (Table 6); NaN for data sets it did not use
    thr = THRESHOLD.get(ds_name, 0.5)
    return Prepared(X_train, np.asarray(y_train, dtype=np.int64), X_test, np.asarray(y_test, dtype=np.int64),
                    texts_train, texts_test, l2, thr, info)


def load_arrays(name: str, data_home=None, seed: int = 0):
    """:func:`prepare` as dense arrays: ``(X_train, y_train, X_test, y_test)``, float64 / int64.

    The input of the neural networks (:class:`cfdkit.neural.NeuralCFD`): fairness and loan data are one-hot +
    standardized (:func:`cfdkit.data.tabular_features`); ``"synthetic"`` is :func:`cfdkit.data.make_synthetic`
    with :func:`prepare`'s settings.  Text data sets need features that are not dense arrays and are refused.
    """
    ds_name = canonical_dataset(name)
    if ds_name in ("sst2", "hate-speech"):
        raise ValueError(f"load_arrays({name!r}): text data sets have no dense array form here; use "
                         "prepare(name, 'embeddings') or prepare(name, 'bow').")
    p = prepare(ds_name, seed=seed, data_home=data_home)
    return (np.ascontiguousarray(p.X_train, dtype=np.float64), p.y_train,
            np.ascontiguousarray(p.X_test, dtype=np.float64), p.y_test)
