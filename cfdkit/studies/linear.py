"""The paper's experiments, each returning a pandas DataFrame.

Every function takes a ``seed`` and a size knob (``n_test=``) so a notebook can
run it small in CI and in full for users.  Sweeps that refit many models go
through :class:`joblib.Parallel` (default ``n_jobs=1``), so wrapping a call in
``with joblib.parallel_backend("dask"):`` scales it out without code changes.
No function here imports matplotlib; see :mod:`cfdkit.plots`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..linear.scores import RANK_DIRECTION as _SCORE_DIRECTION
from ..data.prepare import FEATURES, Prepared, canonical_dataset, prepare
from ..core.validation import check_number
from ..linear.audit import RelabelAudit

__all__ = [
    "audit_points", "table2", "size_distribution", "size_vs_confidence", "bow_vs_embedding", "figure2",
    "noise_sweep", "tag_bias", "relabel_vs_remove", "RANK_DIRECTION", "clear_cache", "minimal_points",
    "summarize_minimal", "table2_minimal", "L2_CONVENTIONS", "resolve_l2", "imbalanced_minimal",
]

_CACHE: dict = {}


def clear_cache():
    """Forget the per-point audits memoized by :func:`audit_points`."""
    _CACHE.clear()


#: How the studies read a paper l2 (Table 6) as cfdkit's ``RelabelAudit(l2=...)``, whose objective is
#: ``sum_i L_i(w) + l2/2 ||w||^2`` (scikit-learn ``C = 1/l2``).  ``N`` = number of training rows.
L2_CONVENTIONS = {
    "sum": "Table 6's l2 as is: sum_i L_i + l2/2 ||w||^2 (scikit-learn C = 1/l2), as the authors' code "
           "(ecielyang/Relabeling, Smallest_k.py: LogisticRegression(C=1/l2)) fits it",
    "mean": "the paper's Eq. (1) read literally: (1/N) sum_i L_i + l2/2 ||w||^2, i.e. cfdkit l2 = l2 * N "
            "(scikit-learn C = 1/(l2 N))",
    "per_sample": "l2 divided by the training-set size: sum_i L_i + (l2/N)/2 ||w||^2, i.e. cfdkit l2 = l2 / N "
                  "(scikit-learn C = N/l2)",
}


def resolve_l2(l2: float, n_train: int, l2_convention: str = "sum") -> float:
    """cfdkit's l2 (objective ``sum_i L_i + l2/2 ||w||^2``) for a paper ``l2`` read under ``l2_convention``.

    ``"sum"`` returns ``l2``; ``"mean"`` returns ``l2 * n_train``; ``"per_sample"`` returns
    ``l2 / n_train`` (see :data:`L2_CONVENTIONS`).  Raises ValueError for an unknown convention, an ``l2`` that
    is not a finite number > 0 (TypeError for a non-number) or an ``n_train`` that is not a positive int.
    """
    if not isinstance(l2_convention, str) or l2_convention not in L2_CONVENTIONS:
        raise ValueError(f"l2_convention must be one of {', '.join(map(repr, L2_CONVENTIONS))}; "
                         f"got {l2_convention!r}.")
    if isinstance(n_train, (bool, np.bool_)) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise ValueError(f"n_train must be a positive int (the number of training rows); got {n_train!r}.")
    l2 = check_number(l2, "l2", low=0.0, low_inclusive=False, fix="Pass the paper's regularization, e.g. l2=10.0.")
    if l2_convention == "mean":
        return l2 * int(n_train)
    if l2_convention == "per_sample":
        return l2 / int(n_train)
    return l2


def _check_overrides(l2, threshold):
    """A cfdkit ``l2`` (> 0) and a ``threshold`` in (0, 1) given in place of the paper's values, or None."""
    l2 = check_number(l2, "l2", low=0.0, low_inclusive=False, allow_none=True, fix="Pass e.g. l2=10.0 or None.")
    threshold = check_number(threshold, "threshold", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False,
                             allow_none=True, fix="Pass e.g. threshold=0.5 or None.")
    return l2, threshold


def _overridden(prep: Prepared, l2, threshold) -> Prepared:
    """``prep`` with ``l2`` / ``threshold`` replaced where they are not None."""
    if l2 is not None:
        prep = _replace(prep, l2=float(l2))
    if threshold is not None:
        prep = _replace(prep, threshold=float(threshold))
    return prep


def _replace(prep: Prepared, **fields) -> Prepared:
    """``prep`` with some fields replaced."""
    return Prepared(*[fields.get(f, getattr(prep, f)) for f in Prepared._fields])


def _with_l2(prep: Prepared, l2_convention: str) -> Prepared:
    """``prep`` with its l2 read under ``l2_convention`` (the paper's value is kept in ``info["paper_l2"]``)."""
    l2 = prep.l2 if isinstance(prep.l2, float) and np.isnan(prep.l2) else \
        resolve_l2(prep.l2, len(prep.y_train), l2_convention)      # NaN: no paper value for this data set
    info = dict(prep.info, paper_l2=prep.l2, l2_convention=l2_convention)
    return _replace(prep, l2=l2, info=info)


def make_audit(prep: Prepared, *, device=None, seed: int = 0, progress: bool = False, fit: bool = True,
               y_train=None, X_train=None):
    """A :class:`cfdkit.RelabelAudit` with the prepared l2/threshold, fitted on the training part.

    Verification refits converge to a gradient norm of 1e-6 (the sign of
    ``p - tau`` is all that matters; the default 1e-10 only costs time: with l2 >= 1 the weights are then within 1e-6 of the optimum), and
    batch up to 1 GB of refits at once.  ``prep.l2`` is used as cfdkit's l2 as is: convert a paper
    value first with :func:`resolve_l2` (the studies' ``l2_convention=``).
    """
    a = RelabelAudit(l2=prep.l2, threshold=prep.threshold, device=device, seed=seed, progress=progress,
                     tol=1e-6, memory_budget="1GB")
    if fit:
        a.fit(prep.X_train if X_train is None else X_train, prep.y_train if y_train is None else y_train)
    return a


def _points_frame(prep: Prepared, fs, ver) -> pd.DataFrame:
    n_train = len(prep.y_train)
    df = pd.DataFrame({
        "dataset": prep.info["dataset"],
        "features": prep.info["features"],
        "test_index": prep.info["test_index"],
        "y_true": prep.y_test,
        "prob": fs.prob,
        "predicted_label": fs.predicted_label,
        "size": fs.size,
        "size_pct": 100.0 * fs.size / n_train,
        "found": fs.found,
        "abs_p_minus_half": np.abs(fs.prob - 0.5),
        "margin": np.abs(fs.prob - prep.threshold),
    })
    df["correct"] = df["predicted_label"] == df["y_true"]
    if ver is not None:
        df["flipped"] = ver.flipped          # NaN where the verification refit did not converge
        df["new_prob"] = ver.new_prob
        df["converged"] = ver.converged
    df["indices"] = [fs.indices(i).tolist() for i in range(len(fs))]
    return df


def audit_points(dataset: str, features: str | None = None, *, n_test: int | None = None, seed: int = 0,
                 verify: bool = True, device=None, progress: bool = False, data_home=None,
                 cache: bool = True, l2_convention: str = "sum", l2: float | None = None,
                 threshold: float | None = None) -> pd.DataFrame:
    """Algorithm 1 (+ verification by retraining) for every (sampled) test point.

    Returns one row per test point: ``test_index, y_true, prob, predicted_label,
    size (|S_t|, 0 = not found), size_pct (% of the training set), found,
    abs_p_minus_half, margin (|p - tau|), correct, flipped, new_prob, converged (with
    verify; ``flipped`` is NaN where the refit did not converge), indices`` (training rows of ``S_t``, greedy order).  ``df.attrs``
    holds ``n_train, threshold, l2, seconds_sets, seconds_verify, seconds, notes``.
    Results are memoized per arguments (``cache=False`` or :func:`clear_cache`).
    ``l2_convention`` says how the paper's l2 is read (:data:`L2_CONVENTIONS`; default ``"sum"``); ``l2`` (a
    cfdkit l2, > 0) and ``threshold`` (in (0, 1)) replace the paper's values when given.
    """
    resolve_l2(1.0, 1, l2_convention)   # validate before any work
    l2, threshold = _check_overrides(l2, threshold)
    key = (canonical_dataset(dataset), features, n_test, seed, verify, str(device), str(data_home), l2_convention,
           l2, threshold)
    if cache and key in _CACHE:
        df = _CACHE[key]
        out = df.copy()
        out.attrs = dict(df.attrs)
        return out
    t0 = time.perf_counter()
    prep = _overridden(_with_l2(prepare(dataset, features, seed=seed, n_test=n_test, data_home=data_home),
                                l2_convention), l2, threshold)
    audit = make_audit(prep, device=device, seed=seed, progress=progress)
    fs = audit.flip_sets(prep.X_test)
    t_sets = time.perf_counter() - t0
    ver = audit.verify(fs, certify=False) if verify else None
    df = _points_frame(prep, fs, ver)
    df.attrs = {
        "n_train": len(prep.y_train), "threshold": prep.threshold, "l2": prep.l2, "seconds_sets": t_sets,
        "seconds_verify": (ver.seconds if ver is not None else 0.0), "seconds": time.perf_counter() - t0,
        "seconds_setup": prep.info["seconds"], "seconds_algorithm1": fs.seconds, "notes": prep.info["notes"],
        "dataset": prep.info["dataset"], "features": prep.info["features"], "paper_l2": prep.info["paper_l2"],
        "l2_convention": l2_convention,
    }
    if cache:
        _CACHE[key] = df
    out = df.copy()
    out.attrs = dict(df.attrs)
    return out


def _combos(datasets, features):
    out = []
    for d in datasets:
        d = canonical_dataset(d)
        fs = [f for f in (features or FEATURES[d]) if f in FEATURES[d]] or [FEATURES[d][0]]
        out.extend((d, f) for f in fs)
    return out


def summarize_points(df: pd.DataFrame) -> dict:
    """Table-2 style summary of an :func:`audit_points` frame."""
    found = df["found"].to_numpy()
    sizes = df.loc[found, "size"]
    row = {
        "dataset": df.attrs.get("dataset"), "features": df.attrs.get("features"),
        "n_train": df.attrs.get("n_train"), "n_test": len(df), "threshold": df.attrs.get("threshold"),
        "l2": df.attrs.get("l2"), "paper_l2": df.attrs.get("paper_l2"), "l2_convention": df.attrs.get("l2_convention"),
        "accuracy": float(df["correct"].mean()) if len(df) else np.nan,
        "found_rate": float(found.mean()) if len(df) else np.nan,
        "mean_size": float(sizes.mean()) if len(sizes) else np.nan,
        "median_size": float(sizes.median()) if len(sizes) else np.nan,
        "mean_size_pct": float(df.loc[found, "size_pct"].mean()) if len(sizes) else np.nan,
        "seconds": df.attrs.get("seconds"), "seconds_algorithm1": df.attrs.get("seconds_algorithm1"),
        "seconds_verify": df.attrs.get("seconds_verify"),
    }
    if "flipped" in df:
        # rows whose verification refit did not converge are unknown (NaN): rates are over the converged rows
        conv = df["converged"].to_numpy(bool) if "converged" in df else np.ones(len(df), bool)
        fl = df["flipped"].to_numpy(float)
        row["flip_rate"] = float(fl[conv].mean()) if conv.any() else np.nan
        row["success_ratio"] = float(fl[conv & found].mean()) if (conv & found).any() else np.nan
        row["n_not_converged"] = int((~conv).sum())
    row["ms_per_test_point"] = 1000.0 * row["seconds_algorithm1"] / max(1, len(df)) if row["seconds_algorithm1"] else np.nan
    return row


def table2(datasets=("loan", "sst2", "hate-speech"), features=None, n_test: int | None = None, seed: int = 0,
           *, verify: bool = True, device=None, n_jobs: int = 1, progress: bool = True, data_home=None,
           l2_convention: str = "sum") -> pd.DataFrame:
    """Table 2: share of test points with a set ``S_t`` found, share really flipped, their ratio.

    One row per (dataset, features): ``found_rate`` (Algorithm 1 returned a
    set), ``flip_rate`` (retraining with ``S_t`` relabeled flipped the
    prediction, :meth:`RelabelAudit.verify`; counted over all test points as the
    paper does), ``success_ratio = flip_rate / found_rate``, ``mean_size``,
    ``median_size``, ``mean_size_pct`` (of the training set), ``accuracy``,
    ``seconds`` (end to end), ``ms_per_test_point`` (Algorithm 1 only, Table 3/8).
    ``features=None`` runs every feature set of each data set.  ``l2_convention``: how Table 6's l2 is
    read (:data:`L2_CONVENTIONS`).
    """
    resolve_l2(1.0, 1, l2_convention)
    combos = _combos(datasets, features)
    jobs = (delayed(audit_points)(d, f, n_test=n_test, seed=seed, verify=verify, device=device, data_home=data_home,
                                  l2_convention=l2_convention)
            for d, f in tqdm(combos, desc="table2", disable=not progress))
    frames = Parallel(n_jobs=n_jobs)(jobs)
    for (d, f), fr in zip(combos, frames):  # memoize results computed in workers, too
        _CACHE.setdefault((d, f, n_test, seed, verify, str(device), str(data_home), l2_convention), fr)
    return pd.DataFrame([summarize_points(fr) for fr in frames])


def size_distribution(dataset: str = "hate-speech", features=("bow", "embeddings"), n_test: int | None = None,
                      seed: int = 0, *, verify: bool = True, device=None, data_home=None) -> pd.DataFrame:
    """Figure 3 (and 7/9): ``|S_t|`` per test point, also as % of the training set.

    One row per test point and feature set (``found`` marks points with a set;
    ``size`` is 0 where none was found).  ``flipped`` is the verification.
    """
    frames = [audit_points(dataset, f, n_test=n_test, seed=seed, verify=verify, device=device, data_home=data_home)
              for f in _feature_list(dataset, features)]
    cols = ["dataset", "features", "test_index", "prob", "predicted_label", "size", "size_pct", "found"]
    out = pd.concat([fr[cols + (["flipped"] if "flipped" in fr else [])] for fr in frames], ignore_index=True)
    out.attrs["n_train"] = {fr.attrs["features"]: fr.attrs["n_train"] for fr in frames}
    return out


def _feature_list(dataset, features):
    d = canonical_dataset(dataset)
    if features is None:
        return list(FEATURES[d])
    if isinstance(features, str):
        features = [features]
    return [f for f in features if f in FEATURES[d]] or [FEATURES[d][0]]


def size_vs_confidence(dataset: str = "hate-speech", features=("bow", "embeddings"), n_test: int | None = None,
                       seed: int = 0, *, verify: bool = True, device=None, data_home=None) -> pd.DataFrame:
    """Figure 5 (and 8/10): ``|S_t|`` against the confidence ``|p - 0.5|`` for points with a set.

    Columns: ``dataset, features, test_index, prob, abs_p_minus_half, margin
    (|p - tau|), size, spearman`` (Spearman rank correlation of size with
    ``|p - 0.5|`` within the feature set, repeated on each row),
    ``spearman_margin`` (the same with ``|p - tau|``).  ``df.attrs["spearman"]``
    maps features to the correlation.
    """
    from scipy.stats import spearmanr

    rows, rho = [], {}
    for f in _feature_list(dataset, features):
        fr = audit_points(dataset, f, n_test=n_test, seed=seed, verify=verify, device=device, data_home=data_home)
        fr = fr[fr["found"]].copy()
        r = spearmanr(fr["size"], fr["abs_p_minus_half"]).statistic if len(fr) > 2 else np.nan
        rm = spearmanr(fr["size"], fr["margin"]).statistic if len(fr) > 2 else np.nan
        fr["spearman"], fr["spearman_margin"] = float(r), float(rm)
        rho[f] = float(r)
        rows.append(fr[["dataset", "features", "test_index", "prob", "abs_p_minus_half", "margin", "size",
                        "spearman", "spearman_margin"]])
    out = pd.concat(rows, ignore_index=True)
    out.attrs["spearman"] = rho
    return out


def bow_vs_embedding(datasets=("sst2", "hate-speech"), n_test: int | None = None, seed: int = 0, *,
                     verify: bool = True, device=None, data_home=None) -> pd.DataFrame:
    """Figure 4: mean ``|S_t|`` with BoW vs embedding features on the *shared* flipped test points.

    A test point is shared when its prediction was flipped (verified by
    retraining; with ``verify=False``: a set was found) under both feature
    sets.  Columns: ``dataset, n_shared, mean_size_bow, mean_size_embeddings,
    median_size_bow, median_size_embeddings, embeddings_larger`` (bool).
    """
    rows = []
    for d in datasets:
        a = audit_points(d, "bow", n_test=n_test, seed=seed, verify=verify, device=device, data_home=data_home)
        b = audit_points(d, "embeddings", n_test=n_test, seed=seed, verify=verify, device=device, data_home=data_home)
        if verify:   # flipped under both feature sets (a refit that did not converge counts as not shared)
            ok = (a["flipped"].to_numpy(float) == 1.0) & (b["flipped"].to_numpy(float) == 1.0)
        else:
            ok = a["found"].to_numpy() & b["found"].to_numpy()
        sa, sb = a.loc[ok, "size"], b.loc[ok, "size"]
        rows.append({"dataset": canonical_dataset(d), "n_shared": int(ok.sum()),
                     "mean_size_bow": float(sa.mean()) if ok.any() else np.nan,
                     "mean_size_embeddings": float(sb.mean()) if ok.any() else np.nan,
                     "median_size_bow": float(sa.median()) if ok.any() else np.nan,
                     "median_size_embeddings": float(sb.median()) if ok.any() else np.nan,
                     "share_embeddings_larger": float((sb.to_numpy() > sa.to_numpy()).mean()) if ok.any() else np.nan})
        rows[-1]["embeddings_larger"] = bool(rows[-1]["mean_size_embeddings"] > rows[-1]["mean_size_bow"])
    return pd.DataFrame(rows)


#: How :func:`figure2` orders the training points of each method: the score registry's directions
#: (:func:`cfdkit.linear.scores.register_score`).
RANK_DIRECTION = _SCORE_DIRECTION


def _rank(scores: np.ndarray, pred: np.ndarray, direction: str, k: int) -> np.ndarray:
    """Top-k training indices per row, (n_test, k)."""
    if direction == "toward_flip":
        s = np.where(pred[:, None] == 1, scores, -scores)  # ascending of s = toward flipping
    elif direction == "descending":
        s = -scores
    else:
        s = scores
    part = np.argpartition(s, kth=min(k, s.shape[1]) - 1, axis=1)[:, :k]
    order = np.take_along_axis(s, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _figure2_method(audit, X_test, pred, prob, method, ks, threshold):
    sc = audit.scores(X_test, method)
    kmax = max(ks)
    top = _rank(sc, pred, RANK_DIRECTION[method], kmax)
    del sc
    n = len(pred)
    sets = [top[i, :k] for k in ks for i in range(n)]
    rows = np.tile(np.arange(n), len(ks))
    import scipy.sparse as sp

    Xr = X_test[rows] if (sp.issparse(X_test) or isinstance(X_test, np.ndarray)) else X_test
    new = audit.retrain_probabilities(Xr, sets, kind="relabel").reshape(len(ks), n)
    out = []
    for j, k in enumerate(ks):
        d = new[j] - prob
        toward = np.where(pred == 1, -d, d)
        out.append({"method": method, "k": int(k), "mean_abs_delta": float(np.abs(d).mean()),
                    "sem_abs_delta": float(np.abs(d).std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                    "mean_delta_toward_flip": float(toward.mean()),
                    "flip_rate": float(((new[j] > threshold) != (pred == 1)).mean())})
    return out


def figure2(dataset: str = "sst2", features: str = "bow", ks=(1, 5, 10, 20, 50, 100, 200), n_test: int = 100,
            seed: int = 0, *, methods=tuple(RANK_DIRECTION), device=None, n_jobs: int = 1, progress: bool = True,
            data_home=None) -> pd.DataFrame:
    """Figure 2: mean ``|Delta p|`` after relabeling the top-k training points of each ranking.

    For ``n_test`` random test points (100 in the paper, SST), each method
    ranks the training set, the top ``k`` labels are flipped, the model is
    **really** refit (:meth:`RelabelAudit.retrain_probabilities`, one refit per
    test point and k) and ``|P'(y=1) - P(y=1)|`` is averaged.

    Ranking directions (:data:`RANK_DIRECTION`): ``ip_relabel`` is the
    estimated change of ``P(y=1)`` when that label is flipped, so it is ranked
    by benefit toward flipping (most negative first when the prediction is 1,
    most positive when 0).  The other scores are ranked as in the paper, most
    influential / supportive of the current prediction first: ``ip_remove``
    (estimated change when removed) toward flipping, i.e. the points whose
    removal hurts the prediction most; ``influence`` ascending (Koh & Liang's
    sign: negative = helpful for the predicted label); ``relatif``,
    ``grad_dot``, ``grad_cos`` descending (positive = supportive); ``random``
    a seeded random order.  The test label used by influence/relatif/grad_* is
    the predicted label.

    Columns: ``method, k, mean_abs_delta, sem_abs_delta, mean_delta_toward_flip,
    flip_rate`` (share of the points whose prediction flipped).
    """
    prep = prepare(dataset, features, seed=seed, n_test=n_test, data_home=data_home)
    audit = make_audit(prep, device=device, seed=seed)
    prob = audit.positive_proba(prep.X_test)
    pred = (prob > prep.threshold).astype(np.int64)
    ks = sorted({int(k) for k in ks if 0 < int(k) <= len(prep.y_train)})
    jobs = (delayed(_figure2_method)(audit, prep.X_test, pred, prob, m, ks, prep.threshold)
            for m in tqdm(methods, desc="figure2", disable=not progress))
    res = Parallel(n_jobs=n_jobs)(jobs)
    df = pd.DataFrame([r for rr in res for r in rr])
    df.insert(0, "dataset", prep.info["dataset"])
    df.insert(1, "features", prep.info["features"])
    df.attrs["n_test"] = len(prep.y_test)
    return df


def _noise_one(dataset, features, ratio, s, n_test, device, data_home, flip_seed):
    from ..data import flip_labels

    prep = prepare(dataset, features, seed=s, n_test=n_test, data_home=data_home)
    y_noisy, _ = flip_labels(prep.y_train, float(ratio), seed=flip_seed)
    audit = make_audit(prep, device=device, seed=s, y_train=y_noisy)
    fs = audit.flip_sets(prep.X_test)
    acc = float((fs.predicted_label == prep.y_test).mean())
    found = fs.found
    return {"noise": float(round(ratio, 10)), "seed": s, "accuracy": acc, "found_rate": float(found.mean()),
            "mean_size": float(fs.size[found].mean()) if found.any() else np.nan,
            "median_size": float(np.median(fs.size[found])) if found.any() else np.nan}


def noise_sweep(dataset: str = "hate-speech", features: str | None = "bow", noise_ratios=np.arange(0, 1.0, 0.1),
                seeds=(0, 1, 2), n_test: int | None = None, *, device=None, n_jobs: int = 1, progress: bool = True,
                data_home=None) -> pd.DataFrame:
    """Figure 6: flip a share of training labels (seeded), refit, mean ``|S_t|`` and test accuracy.

    For every noise ratio and seed, ``round(ratio * n_train)`` training labels
    are flipped (:func:`cfdkit.data.flip_labels` with that seed), the model
    refit, and Algorithm 1 run on the (clean-labelled) test points.  Returns
    one row per ratio with the mean and standard deviation over seeds:
    ``noise, mean_size, mean_size_std, accuracy, accuracy_std, found_rate,
    found_rate_std, n_seeds``; ``df.attrs["runs"]`` has one row per (ratio, seed).
    The paper does not say which data set Figure 6 uses; the default is hate
    speech (BoW), its representative data set in §3.3.
    """
    grid = [(float(r), int(s)) for r in noise_ratios for s in seeds]
    jobs = (delayed(_noise_one)(dataset, features, r, s, n_test, device, data_home, 1000 + s)
            for r, s in tqdm(grid, desc="noise sweep", disable=not progress))
    runs = pd.DataFrame(Parallel(n_jobs=n_jobs)(jobs))
    g = runs.groupby("noise")
    out = pd.DataFrame({
        "mean_size": g["mean_size"].mean(), "mean_size_std": g["mean_size"].std(ddof=0),
        "accuracy": g["accuracy"].mean(), "accuracy_std": g["accuracy"].std(ddof=0),
        "found_rate": g["found_rate"].mean(), "found_rate_std": g["found_rate"].std(ddof=0),
        "n_seeds": g["seed"].count(),
    }).reset_index()
    out.insert(0, "dataset", canonical_dataset(dataset))
    out.insert(1, "features", features or FEATURES[canonical_dataset(dataset)][0])
    out.attrs["runs"] = runs
    return out


def tag_bias(dataset: str = "loan", features: str | None = None, n_test: int | None = None, seed: int = 0, *,
             share_x: float = 0.4, bias: float = 0.9, device=None, data_home=None) -> pd.DataFrame:
    """§3.4: group attribution bias through a "tag" feature (loan data).

    A binary "tag" column is added to train and test rows (tag X with
    probability ``share_x`` = 40 %, else tag Y; seeded).  ``bias`` = 90 % of the
    *qualified* (label 0 = no default) tag-X training rows are relabeled as
    default (1): that set is ``B``.  The model is refit on the biased labels,
    Algorithm 1 is run on the misclassified test points (test labels are
    clean), and for each found ``S_t`` the share of its members inside ``B``
    is computed.

    Returns one row per tag (``X``, ``Y``): ``tag, n_test, n_misclassified,
    n_found, mean_share_in_biased, mean_size, size_biased`` (|B|),
    ``n_train``.  ``df.attrs["points"]`` holds the per-point values, ``df.attrs["groups"]`` the
    :func:`cfdkit.linear.group_report` of the misclassified points by tag (with ``share_from_X/Y``:
    the share of each ``S_t`` from tag-X / tag-Y training rows).
    (The loan data are the PARTIAL 20k subset, with many duplicated rows.)
    """
    prep = prepare(dataset, features, seed=seed, n_test=n_test, data_home=data_home)
    rng = np.random.default_rng(seed + 104729)
    tag_tr = rng.random(len(prep.y_train)) < share_x
    tag_te = rng.random(len(prep.y_test)) < share_x
    y = prep.y_train.copy()
    qualified = np.nonzero(tag_tr & (y == 0))[0]
    B = np.sort(rng.choice(qualified, size=int(round(bias * qualified.size)), replace=False))
    y[B] = 1
    X_tr, X_te = _add_column(prep.X_train, tag_tr), _add_column(prep.X_test, tag_te)
    audit = make_audit(prep, device=device, seed=seed, X_train=X_tr, y_train=y)
    prob = audit.positive_proba(X_te)
    mis = np.nonzero((prob > prep.threshold).astype(int) != prep.y_test)[0]
    in_B = np.zeros(len(y), dtype=bool)
    in_B[B] = True
    pts = []
    if mis.size:
        fs = audit.flip_sets(_rows(X_te, mis))
        for j, i in enumerate(mis):
            idx = fs.indices(j)
            pts.append({"test_row": int(i), "tag": "X" if tag_te[i] else "Y", "y_true": int(prep.y_test[i]),
                        "prob": float(prob[i]), "size": int(idx.size), "found": bool(idx.size),
                        "share_in_biased": float(in_B[idx].mean()) if idx.size else np.nan})
    pts = pd.DataFrame(pts, columns=["test_row", "tag", "y_true", "prob", "size", "found", "share_in_biased"])
    rows = []
    for t, mask in (("X", tag_te), ("Y", ~tag_te)):
        p = pts[pts["tag"] == t]
        f = p[p["found"]]
        rows.append({"tag": t, "n_test": int(mask.sum()), "n_misclassified": len(p), "n_found": len(f),
                     "mean_share_in_biased": float(f["share_in_biased"].mean()) if len(f) else np.nan,
                     "mean_size": float(f["size"].mean()) if len(f) else np.nan,
                     "size_biased": int(B.size), "n_train": len(y)})
    out = pd.DataFrame(rows)
    out.insert(0, "dataset", prep.info["dataset"])
    out.attrs["points"] = pts
    out.attrs["biased_idx"] = B
    if mis.size:  # whose labels decide the misclassified points of each tag: share of S_t from tag X / Y rows
        from ..linear.groups import group_report

        out.attrs["groups"] = group_report(fs, pd.Series(np.where(tag_te[mis], "X", "Y"), name="tag"),
                                           train_sensitive_features=np.where(tag_tr, "X", "Y"))
    return out


def _add_column(X, col):
    import scipy.sparse as sp

    c = np.asarray(col, dtype=np.float64)[:, None]
    if sp.issparse(X):
        return sp.hstack([X, sp.csr_matrix(c)], format="csr")
    return np.hstack([np.asarray(X, dtype=np.float64), c])


def _rows(X, idx):
    return X[idx]


def _rvr_one(dataset, features, noise, n_test, seed, device, data_home, max_rounds):
    prep = prepare(dataset, features, seed=seed, noise=noise, data_home=data_home)
    audit = make_audit(prep, device=device, seed=seed)
    prob = audit.positive_proba(prep.X_test)
    pred = (prob > prep.threshold).astype(np.int64)
    rng = np.random.default_rng(seed + 15485863)
    pool = np.nonzero(pred != prep.y_test)[0] if noise > 0 else np.arange(len(pred))
    pick = np.sort(rng.choice(pool, size=min(n_test, pool.size), replace=False)) if n_test else pool
    Xp = _rows(prep.X_test, pick)
    noisy = np.zeros(len(prep.y_train), dtype=bool)
    noisy[prep.info["noisy_idx"]] = True
    res = {"relabel": audit.flip_sets(Xp), "removal_alg1": audit.removal_sets(Xp, "alg1"),
           "removal_alg2": audit.removal_sets(Xp, "alg2", max_rounds=max_rounds)}
    common = np.logical_and.reduce([r.found for r in res.values()])
    rows = []
    for m, r in res.items():
        f = r.found
        n_noisy = np.array([noisy[r.indices(i)].sum() for i in range(len(r))], dtype=float)
        n_norm = r.size - n_noisy
        rows.append({"dataset": prep.info["dataset"], "features": prep.info["features"], "noise": float(noise),
                     "method": m, "test_points": "misclassified" if noise > 0 else "random",
                     "n_points": len(r), "n_found": int(f.sum()), "found_rate": float(f.mean()) if len(r) else np.nan,
                     "mean_size": float(r.size[f].mean()) if f.any() else np.nan,
                     "mean_noisy": float(n_noisy[f].mean()) if f.any() else np.nan,
                     "mean_normal": float(n_norm[f].mean()) if f.any() else np.nan,
                     "n_common": int(common.sum()),
                     "mean_size_common": float(r.size[common].mean()) if common.any() else np.nan,
                     "mean_noisy_common": float(n_noisy[common].mean()) if common.any() else np.nan,
                     "mean_normal_common": float(n_norm[common].mean()) if common.any() else np.nan,
                     "seconds": r.seconds})
    return rows


def relabel_vs_remove(datasets=("loan", "sst2", "hate-speech"), noise=(0.3, 0.0), n_test: int | None = 50,
                      seed: int = 0, *, features: dict | None = None, device=None, n_jobs: int = 1,
                      max_rounds: int = 100, progress: bool = True, data_home=None) -> pd.DataFrame:
    """Table 4 (noise 0.3) and Table 7 (noise 0): sizes of removal (Alg1, Alg2) vs relabel sets.

    With noise, ``noise`` of the training labels are flipped (the set ``N``)
    and the test points are (up to ``n_test`` randomly chosen) misclassified
    ones; without noise they are ``n_test`` random test points.  For each
    method: ``mean_size`` over points where it found a set, ``mean_noisy`` =
    mean ``|S_t ∩ N|`` and ``mean_normal`` = mean ``|S_t \\ N|``, and the same
    over the points where all three methods found a set (``*_common``).
    ``features`` maps dataset to features (default: loan tabular, others BoW).
    Removal Alg1/Alg2 are :meth:`RelabelAudit.removal_sets` (Yang, Jain &
    Wallace 2023 as in their reference code, without its bugs).
    """
    noise = [noise] if np.isscalar(noise) else list(noise)
    grid = [(canonical_dataset(d), float(nz)) for nz in noise for d in datasets]
    feats = features or {}
    jobs = (delayed(_rvr_one)(d, feats.get(d), nz, n_test, seed, device, data_home, max_rounds)
            for d, nz in tqdm(grid, desc="relabel vs remove", disable=not progress))
    res = Parallel(n_jobs=n_jobs)(jobs)
    return pd.DataFrame([r for rr in res for r in rr])


def _minimal_frame(prep: Prepared, audit, *, max_size=None, recheck: bool = True) -> pd.DataFrame:
    """One row per test row of ``prep``: Algorithm 1's set (verified by refit) and the verified minimal set.

    ``minimal_flipped`` re-checks every verified minimal set with a separate refit
    (:meth:`RelabelAudit.retrain_probabilities`, from the fitted optimum, the audit's tolerance) — the flip rate
    "under refit" of the minimal sets; NaN where no set was found or (with ``recheck=False``) not re-checked.
    """
    t0 = time.perf_counter()
    ms = audit.minimal_sets(prep.X_test, max_size=max_size)
    fs = audit.flip_sets(prep.X_test)
    ver = audit.verify(fs, certify=False)
    df = ms.to_frame()
    df.insert(0, "dataset", prep.info["dataset"])
    df.insert(1, "features", prep.info["features"])
    df["test_index"] = prep.info["test_index"]
    df["y_true"] = np.asarray(prep.y_test)
    df["correct"] = (ms.prob > prep.threshold).astype(int) == np.asarray(prep.y_test)
    df["estimated_flipped"] = np.asarray(ver.flipped, dtype=float)
    df["estimated_refit_prob"] = np.asarray(ver.new_prob, dtype=float)
    recheck_prob = np.full(len(ms), np.nan)
    rows = np.nonzero(ms.found)[0]
    if recheck and rows.size:
        recheck_prob[rows] = audit.retrain_probabilities(prep.X_test[rows], [ms.indices(int(i)) for i in rows])
    flipped = np.full(len(ms), np.nan)
    ok = np.isfinite(recheck_prob)
    flipped[ok] = ((recheck_prob[ok] > prep.threshold) != (ms.prob[ok] > prep.threshold)).astype(float)
    df["recheck_prob"] = recheck_prob
    df["minimal_flipped"] = flipped
    df.attrs = {"n_train": len(prep.y_train), "threshold": prep.threshold, "l2": audit.l2_,
                "paper_l2": prep.info.get("paper_l2"), "l2_convention": prep.info.get("l2_convention"),
                "seconds_minimal": ms.seconds, "seconds": time.perf_counter() - t0, "refits": ms.refits,
                "timings": ms.timings, "dataset": prep.info["dataset"], "features": prep.info["features"]}
    return df


def minimal_points(dataset: str, features: str | None = None, *, n_test: int | None = None, seed: int = 0,
                   device=None, progress: bool = False, data_home=None, max_size: int | None = None,
                   l2: float | None = None, l2_convention: str = "sum", threshold: float | None = None
                   ) -> pd.DataFrame:
    """Verified minimal relabel sets (:meth:`RelabelAudit.minimal_sets`) for every (sampled) test point.

    The same test rows as :func:`audit_points` (same ``seed``/``n_test``).  One row per test point:
    ``test_index, y_true, prob, correct, estimated_size`` (Algorithm 1's ``|S_t|``), ``estimated_flipped``
    (its verification refit flipped; NaN: not converged or no set), ``estimated_refit_prob``, the minimal set's
    columns of :meth:`MinimalSets.to_frame` (``minimal_size, minimal_status, lower_bound, minimal_new_prob,
    minimal_decided_by, one_minimal, proven_minimal, minimal_indices``), ``recheck_prob`` / ``minimal_flipped``
    (each verified set refit once more, separately from the search).  ``l2_convention`` reads the paper's l2 (:data:`L2_CONVENTIONS`); ``l2``
    overrides it with a cfdkit l2 (for convention checks), ``threshold`` the paper's threshold.  ``df.attrs`` has
    the timings.
    """
    resolve_l2(1.0, 1, l2_convention)
    l2, threshold = _check_overrides(l2, threshold)
    prep = _overridden(_with_l2(prepare(dataset, features, seed=seed, n_test=n_test, data_home=data_home),
                                l2_convention), l2, threshold)
    audit = make_audit(prep, device=device, seed=seed, progress=progress)
    return _minimal_frame(prep, audit, max_size=max_size)


def _median(a) -> float:
    a = np.asarray(a, dtype=float)
    return float(np.median(a)) if a.size else np.nan


def summarize_minimal(df: pd.DataFrame) -> dict:
    """Table-2 columns of a :func:`minimal_points` frame (metric names in :data:`cfdkit.studies.paper.METRICS`).

    Rates are over all test rows of the frame.  ``flip_rate`` (Algorithm 1) and ``minimal_flip_rate`` count a
    row as flipped only where its refit converged and flipped; ``median_estimated_size`` is over the rows
    Algorithm 1 has a set for, ``median_verified_size`` over the rows with a verified set, and the ``*_both``
    medians over the rows that have both.
    """
    n = len(df)
    found = (df["minimal_status"] == "verified").to_numpy()
    est = df["estimated_size"].to_numpy()
    size = df["minimal_size"].to_numpy()
    both = found & (est > 0)
    rate = (lambda m: float(np.mean(m)) if n else np.nan)
    mflip = df["minimal_flipped"].to_numpy(float) if "minimal_flipped" in df else np.full(n, np.nan)
    return {
        "dataset": df.attrs.get("dataset"), "features": df.attrs.get("features"), "n_test": n,
        "n_train": df.attrs.get("n_train"), "l2": df.attrs.get("l2"), "paper_l2": df.attrs.get("paper_l2"),
        "l2_convention": df.attrs.get("l2_convention"), "threshold": df.attrs.get("threshold"),
        "accuracy": rate(df["correct"].to_numpy()),
        "found_rate": rate(est > 0),
        "flip_rate": rate(np.nan_to_num(df["estimated_flipped"].to_numpy(float)) == 1.0),
        "minimal_found_rate": rate(found),
        "minimal_flip_rate": rate(np.nan_to_num(mflip) == 1.0),
        "median_estimated_size": _median(est[est > 0]),
        "median_verified_size": _median(size[found]),
        "median_estimated_size_both": _median(est[both]),
        "median_verified_size_both": _median(size[both]),
        "median_lower_bound": _median(df["lower_bound"].to_numpy()),
        "median_lower_bound_found": _median(df["lower_bound"].to_numpy()[found]),
        "one_minimal_rate": float(df["one_minimal"].to_numpy()[found].mean()) if found.any() else np.nan,
        "minimal_found_without_estimate": int((found & (est == 0)).sum()),
        "seconds_minimal": df.attrs.get("seconds_minimal"), "refits": df.attrs.get("refits"),
    }


def table2_minimal(datasets=("loan", "sst2", "hate-speech"), features=None, n_test: int | None = 50, seed: int = 0,
                   *, device=None, progress: bool = True, data_home=None, max_size: int | None = None,
                   l2_convention: str = "sum") -> pd.DataFrame:
    """Table 2 with the verified minimal sets next to Algorithm 1's, on ``n_test`` seeded test rows per set.

    One :func:`summarize_minimal` row per (dataset, features): ``n_test``, Algorithm 1's ``found_rate`` /
    ``flip_rate`` / ``median_estimated_size`` and the verified minimal sets' ``minimal_found_rate``,
    ``minimal_flip_rate`` (each set refit once more), ``median_verified_size``, ``median_lower_bound``.
    ``df.attrs["points"]`` maps ``"dataset/features"`` to the per-point frames.
    """
    resolve_l2(1.0, 1, l2_convention)
    rows, points = [], {}
    for d, f in tqdm(_combos(datasets, features), desc="table2 minimal", disable=not progress):
        fr = minimal_points(d, f, n_test=n_test, seed=seed, device=device, data_home=data_home, max_size=max_size,
                            l2_convention=l2_convention)
        points[f"{d}/{f}"] = fr
        rows.append(summarize_minimal(fr))
    out = pd.DataFrame(rows)
    out.attrs["points"] = points
    return out


def imbalanced_minimal(dataset: str = "adult", *, positive_share: float = 0.03, n_train: int = 8000,
                       n_test: int = 40, l2s=(1.0, 10.0), thresholds=(0.5, 0.25), seed: int = 0, device=None,
                       max_size: int | None = None, progress: bool = True, data_home=None) -> pd.DataFrame:
    """An imbalanced test case: Algorithm 1's sets vs verified minimal sets on a fairness set with few positives.

    The fairness data set ``dataset`` gets its standard features (:func:`cfdkit.data.prepare`: one-hot
    categoricals + standardized numerics); its training part is subsampled (seeded, without replacement) to
    ``n_train`` rows of which ``round(positive_share * n_train)`` are positive, its test part to the same
    positive share, and ``n_test`` random rows of that are the test points.  For every ``l2`` in ``l2s``
    (cfdkit's ``sum_i L_i + l2/2 ||w||^2``) and threshold ``tau`` in ``thresholds`` an L2 logistic regression
    is fit and :func:`summarize_minimal` reports Algorithm 1 (``found_rate``, ``flip_rate`` under refit,
    ``median_estimated_size``) beside the verified minimal sets (``minimal_found_rate``,
    ``minimal_flip_rate``, ``median_verified_size``, ``median_lower_bound``; the ``*_both`` medians on the rows
    that have both sets).  Extra columns: ``positive_share``, ``share_predicted_positive``,
    ``max_estimated_size_pct`` (the largest Algorithm 1 set as % of the training set), ``share_0_to_1`` (of
    Algorithm 1's relabels: 0 -> 1) and ``share_0_to_1_minimal``.  ``df.attrs["points"]`` maps
    ``"l2=<l2>/tau=<tau>"`` to the per-point frames (:func:`minimal_points` columns).
    """
    from ..data._tabular import FAIRNESS_NAMES

    name = canonical_dataset(dataset)
    if name not in FAIRNESS_NAMES:
        raise ValueError(f"dataset must be a fairness data set ({', '.join(FAIRNESS_NAMES)}); got {dataset!r}.")
    if isinstance(positive_share, (bool, np.bool_)) or not isinstance(positive_share, (int, float, np.floating)) \
            or not 0.0 < float(positive_share) < 0.5:
        raise ValueError(f"positive_share must be a float in (0, 0.5) (a minority share); got {positive_share!r}.")
    for nm, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"{nm} must be an int >= 2; got {v!r}.")
    l2s, thresholds = list(np.atleast_1d(l2s)), list(np.atleast_1d(thresholds))
    if not l2s or any(not np.isfinite(float(v)) or float(v) <= 0 for v in l2s):
        raise ValueError(f"l2s must be positive finite numbers; got {l2s!r}.")
    if not thresholds or any(not 0.0 < float(t) < 1.0 for t in thresholds):
        raise ValueError(f"thresholds must lie in (0, 1); got {thresholds!r}.")
    prep = prepare(name, seed=seed, data_home=data_home)
    rng = np.random.default_rng(seed + 424242)

    def pick(y, n, what):
        pos, neg = np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]
        n_pos = max(1, int(round(positive_share * n)))
        if n_pos > pos.size or n - n_pos > neg.size:
            raise ValueError(f"{what}={n} with positive_share={positive_share} needs {n_pos} positive and "
                             f"{n - n_pos} negative rows; {name} has {pos.size} and {neg.size}. Use a smaller {what}.")
        return np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n - n_pos, replace=False)]))

    tr = pick(prep.y_train, int(n_train), "n_train")
    n_te_pool = min(len(prep.y_test), int(round(((prep.y_test == 0).sum()) / (1 - positive_share))))
    te_pool = pick(prep.y_test, n_te_pool, "the test pool")
    te = np.sort(rng.choice(te_pool, size=min(int(n_test), te_pool.size), replace=False))
    rows, points = [], {}
    grid = [(float(l2), float(t)) for l2 in l2s for t in thresholds]
    for l2, tau in tqdm(grid, desc=f"imbalanced {name}", disable=not progress):
        info = dict(prep.info, test_index=te, train_index=tr, n_train=len(tr), n_test=len(te), paper_l2=None,
                    l2_convention="cfdkit")
        p = _replace(prep, X_train=prep.X_train[tr], y_train=prep.y_train[tr], X_test=prep.X_test[te],
                          y_test=prep.y_test[te], l2=l2, threshold=tau, info=info)
        audit = make_audit(p, device=device, seed=seed)
        fr = _minimal_frame(p, audit, max_size=max_size)
        fs = audit.flip_sets(p.X_test)
        y = p.y_train
        est_idx = np.concatenate([fs.indices(i) for i in range(len(fs))] + [np.empty(0, np.int64)])
        ms_idx = np.concatenate([np.asarray(ix, dtype=np.int64) for ix in fr["minimal_indices"]] + [np.empty(0, np.int64)])
        r = summarize_minimal(fr)
        r.update({"positive_share": float(y.mean()), "share_predicted_positive": float((fr["prob"] > tau).mean()),
                  "max_estimated_size_pct": float(100 * fr["estimated_size"].max() / len(y)),
                  "share_0_to_1": float((y[est_idx] == 0).mean()) if est_idx.size else np.nan,
                  "share_0_to_1_minimal": float((y[ms_idx] == 0).mean()) if ms_idx.size else np.nan})
        rows.append(r)
        points[f"l2={l2:g}/tau={tau:g}"] = fr
    out = pd.DataFrame(rows)
    out.attrs["points"] = points
    return out
