"""Flip sets by group: whose labels decide the predictions for group ``h``?

:func:`group_report` turns the flip sets of a :class:`~cfdkit.linear.RelabelAudit` (or their
:class:`~cfdkit.linear.Verification`) and a sensitive feature of the test rows into one row per group:
how often a set was found, how often relabeling it really flipped the prediction, how large the sets are,
and -- given the sensitive feature of the *training* rows too -- the share of each set that comes from each
training group.  :func:`group_metric_frame` gives the same numbers as a ``fairlearn.metrics.MetricFrame``
(optional dependency: ``pip install 'cfdkit[fairness]'``), with its ``overall``, ``difference()`` and
``ratio()``.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from .results import FlipSets, Verification

__all__ = ["group_report", "group_metric_frame"]


def _split(result):
    if isinstance(result, Verification):
        return result.sets, result
    if isinstance(result, FlipSets):
        return result, None
    raise TypeError(f"result must be the FlipSets of RelabelAudit.flip_sets/removal_sets or the Verification of "
                    f"RelabelAudit.verify; got {type(result).__name__}.")


def _groups(values, n: int, name: str, what: str) -> pd.DataFrame:
    """Sensitive features as a DataFrame of one or more key columns, ``n`` rows, no missing values."""
    if isinstance(values, pd.DataFrame):
        df = values.reset_index(drop=True)
    elif isinstance(values, pd.Series):
        df = values.reset_index(drop=True).to_frame(values.name if values.name is not None else "group")
    else:
        if isinstance(values, (str, bytes)) or values is None or np.ndim(values) == 0:
            raise TypeError(f"{name} must be array-like with one group label per {what} (a list, numpy array, "
                            f"pandas Series or DataFrame); got {type(values).__name__}.")
        arr = np.asarray(values, dtype=object)
        if arr.ndim == 2 and arr.shape[1] >= 1:
            df = pd.DataFrame(arr, columns=[f"group_{j}" for j in range(arr.shape[1])])
        elif arr.ndim == 1:
            df = pd.DataFrame({"group": arr})
        else:
            raise ValueError(f"{name} must be 1-d (one label per {what}) or 2-d (several features); got shape "
                             f"{arr.shape}.")
    if len(df) != n:
        raise ValueError(f"{name} has {len(df)} entries but there are {n} {what}s; pass one group label per "
                         f"{what}, in the same order.")
    if df.shape[1] == 0:
        raise ValueError(f"{name} has no columns; pass at least one sensitive feature.")
    missing = df.isna().any(axis=1).to_numpy()
    if missing.any():
        rows = np.nonzero(missing)[0]
        raise ValueError(f"{name} has missing values at {rows.size} {what}(s) (first: {rows[:5].tolist()}); fill "
                         "them with a group label of their own (e.g. 'unknown').")
    for col in df.columns:
        _check_label_kinds(df[col], name if df.shape[1] == 1 else f"{name}[{col!r}]")
    return df


def _kind(v) -> str:
    """The kind of a group label: labels of different kinds may compare equal (1, True, 1.0) or print alike
    (1, '1'), so one column must hold one kind."""
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, numbers.Real):
        return "number"
    if isinstance(v, (str, np.str_)):
        return "str"
    return type(v).__name__


def _check_label_kinds(col: pd.Series, name: str) -> None:
    """Refuse a column of group labels that mixes kinds (numbers and strings, booleans and numbers, ...) or holds
    labels that cannot be group keys (lists, dicts, complex numbers, ...)."""
    if col.dtype.kind in "biufSUM" or isinstance(col.dtype, pd.CategoricalDtype) and \
            col.cat.categories.dtype.kind in "biufSUM":
        return                                                  # one numpy dtype: one kind
    vals = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else col.to_numpy()
    first = {}
    for v in vals:
        k = _kind(v)
        first.setdefault(k, v)
    bad = [k for k in first if k not in ("bool", "number", "str")]
    if bad:
        raise TypeError(f"{name} holds group labels of type {bad[0]} (e.g. {first[bad[0]]!r}); group labels must be "
                        "numbers, strings or booleans. Convert them first, e.g. with .astype(str).")
    if len(first) > 1:
        shown = ", ".join(f"{k} {v!r}" for k, v in first.items())
        raise TypeError(f"{name} mixes group labels of different types ({shown}): labels such as 1 and '1' (or True "
                        "and 1) would be counted as one group. Give every label one type, e.g. "
                        "sensitive_features.astype(str).")


def _key(df: pd.DataFrame) -> pd.Series | pd.MultiIndex:
    return pd.Series(df.iloc[:, 0].to_numpy(), name=df.columns[0]) if df.shape[1] == 1 \
        else pd.MultiIndex.from_frame(df)


def _per_row(result, sensitive_features, train_sensitive_features):
    """Per test row: found, size, flipped/known (or None), and the share of its set from each training group."""
    sets, ver = _split(result)
    n = len(sets)
    test = _groups(sensitive_features, n, "sensitive_features", "test row")
    cols = {"found": sets.found, "size": sets.size.astype(float)}
    if ver is not None:
        known = ver.flip_known
        cols["flipped"] = np.where(known, np.nan_to_num(np.asarray(ver.flipped, dtype=float)) > 0, np.nan)
    shares, train_share = {}, None
    if train_sensitive_features is not None:
        n_train = len(train_sensitive_features) if hasattr(train_sensitive_features, "__len__") else -1
        top = int(sets.flat_indices.max()) + 1 if sets.flat_indices.size else 0
        if sets.n_train is not None and n_train != sets.n_train:
            raise ValueError(f"train_sensitive_features has {max(n_train, 0)} entries but the audit was fitted on "
                             f"{sets.n_train} training rows; pass one group label per training row of the audit, "
                             "in the order of X_train (not the labels of the whole data set or of the test rows).")
        if n_train < top:
            raise ValueError(f"train_sensitive_features has {max(n_train, 0)} entries but the sets use training "
                             f"index {top - 1}; pass one group label per training row of the audit, in order.")
        tr = _groups(train_sensitive_features, n_train, "train_sensitive_features", "training row")
        tkey = _key(tr)
        codes, labels = pd.factorize(tkey, sort=True)
        member = codes[sets.flat_indices]                      # group code of every set member
        row = np.repeat(np.arange(n), sets.size)
        counts = np.zeros((n, len(labels)))
        np.add.at(counts, (row, member), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = counts / sets.size[:, None]
        frac[~sets.found] = np.nan
        for j, lab in enumerate(labels):
            shares[f"share_from_{_label(lab)}"] = frac[:, j]
        train_share = {_label(lab): float((codes == j).mean()) for j, lab in enumerate(labels)}
    cols.update(shares)
    return test, pd.DataFrame(cols), list(shares), train_share


def _label(lab) -> str:
    return "_".join(map(str, lab)) if isinstance(lab, tuple) else str(lab)


def _nanmean(a) -> float:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _metrics(share_cols):
    """name -> f(rows) on the per-row frame: the definitions shared by the DataFrame and the MetricFrame."""
    def found_sizes(r):
        return r.loc[r["found"], "size"].to_numpy(float)

    out = {
        "n_test": lambda r: float(len(r)),
        "found_rate": lambda r: float(r["found"].mean()) if len(r) else float("nan"),
        "mean_size": lambda r: _nanmean(found_sizes(r)),
        "median_size": lambda r: float(np.median(found_sizes(r))) if r["found"].any() else float("nan"),
    }
    out["flip_rate"] = lambda r: _nanmean(r["flipped"]) if "flipped" in r else float("nan")
    out["n_not_converged"] = lambda r: float(r["flipped"].isna().sum()) if "flipped" in r else float("nan")
    for c in share_cols:
        out[c] = (lambda col: (lambda r: _nanmean(r[col])))(c)
    return out


def group_report(result, sensitive_features, *, train_sensitive_features=None) -> pd.DataFrame:
    """Flip-set statistics per group of test points.

    Parameters
    ----------
    result : FlipSets or Verification
        From ``RelabelAudit.flip_sets`` / ``removal_sets`` (sets only) or ``RelabelAudit.verify``
        (adds ``flip_rate``).
    sensitive_features : array-like (n_test,) or DataFrame (n_test, k)
        The group of every test row of ``result``, in order (several columns: intersectional groups).
    train_sensitive_features : array-like (n_train,) or DataFrame (n_train, k), optional
        The group of every training row of the audit; adds one column ``share_from_<g>`` per training
        group ``g``.

    Returns
    -------
    pandas.DataFrame
        One row per test group (index: the group label(s)) with

        * ``n_test`` -- test rows in the group;
        * ``found_rate`` -- share of them with a set ``S_t``;
        * ``flip_rate`` -- (Verification only) share whose retraining with ``S_t`` relabeled flipped the
          prediction, over the rows with an answer (converged refit or no set); ``n_not_converged`` the rest;
        * ``mean_size``, ``median_size`` -- of ``|S_t|`` over the found sets;
        * ``share_from_<g>`` -- mean over the group's found sets of the share of ``S_t`` that lies in training
          group ``g`` ("whose labels decide the predictions for this group?").  Compare with
          ``df.attrs["train_group_share"]``, the share of each training group in the whole training set.

    Raises
    ------
    TypeError
        ``result`` is not a FlipSets/Verification, the features are not array-like, or a column of group
        labels mixes types (``1`` and ``"1"``, ``True`` and ``1``) or holds labels that are not numbers,
        strings or booleans.
    ValueError
        A sensitive feature of the wrong length (``train_sensitive_features`` must have exactly one label
        per training row of the audit) or with missing values.
    """
    test, rows, share_cols, train_share = _per_row(result, sensitive_features, train_sensitive_features)
    key = _key(test)
    metrics = _metrics(share_cols)
    names = ["n_test", "found_rate"] + (["flip_rate", "n_not_converged"] if "flipped" in rows else []) \
        + ["mean_size", "median_size"] + share_cols
    grouped = rows.groupby(key, sort=True) if isinstance(key, pd.Series) else rows.groupby(
        [key.get_level_values(i) for i in range(key.nlevels)], sort=True)
    out = pd.DataFrame({m: grouped.apply(metrics[m]) for m in names})
    out.index.names = list(test.columns)
    for c in ("n_test", "n_not_converged"):
        if c in out:
            out[c] = out[c].astype(np.int64)
    out.attrs["train_group_share"] = train_share
    return out


def group_metric_frame(result, sensitive_features, *, train_sensitive_features=None):
    """The numbers of :func:`group_report` as a ``fairlearn.metrics.MetricFrame``.

    Its ``by_group`` equals :func:`group_report` (same definitions); ``overall`` gives them over all test
    rows, ``difference()`` / ``ratio()`` the spread between groups.  Needs fairlearn
    (``pip install 'cfdkit[fairness]'``).

    Raises
    ------
    ImportError
        fairlearn is not installed.
    TypeError, ValueError
        As :func:`group_report`: group labels of the wrong length, with missing values or of mixed types.
    """
    try:
        from fairlearn.metrics import MetricFrame
    except ImportError as exc:
        raise ImportError("group_metric_frame needs fairlearn, which is not installed; pip install "
                          "'cfdkit[fairness]' (or use group_report, which needs only pandas).") from exc
    test, rows, share_cols, _ = _per_row(result, sensitive_features, train_sensitive_features)
    metrics = _metrics(share_cols)
    names = ["n_test", "found_rate"] + (["flip_rate", "n_not_converged"] if "flipped" in rows else []) \
        + ["mean_size", "median_size"] + share_cols

    # fairlearn calls metric(y_true, y_pred) on each group's rows; passing row ids as both lets every metric
    # read its own per-row columns
    def wrap(fn):
        return lambda y_true, y_pred: fn(rows.iloc[np.asarray(y_true, dtype=np.int64)])

    ids = np.arange(len(rows))
    sf = pd.Series(test.iloc[:, 0].to_numpy(), name=test.columns[0]) if test.shape[1] == 1 else test
    mf = MetricFrame(metrics={m: wrap(metrics[m]) for m in names}, y_true=ids, y_pred=ids,
                     sensitive_features=sf)
    return mf
