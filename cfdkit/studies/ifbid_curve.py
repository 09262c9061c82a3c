"""The IFBiD learning curve: bias-level detectors' accuracy against the size of the training zoo.

Protocol (Sialelli et al.'s re-shuffled split, the one their Table I reports): every member is trained on a
random subset of the same first half of the bundled digits; a fixed held-out test zoo (its own seeds) scores
detectors fitted on the first 256, 512, 1,024, 4,096, 8,192 members of a training zoo.  Both zoos live in
restart-safe :class:`~cfdkit.spurious.zoo_store.ZooStore` folders in the data home, so the curve grows across
sessions.  Accuracies carry Wilson 95 % intervals over the held-out models (the test zoo is the sample).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..spurious.ifbid import WeightDetector, two_level
from ..spurious.zoo import CNNSpec, TrainSettings
from ..spurious.zoo_store import ZooStore, default_store_root

__all__ = ["CurveConfig", "IFBID_CURVE", "curve_stores", "wilson", "learning_curve", "curve_records", "behaviour_reference",
           "confusion"]


@dataclass(frozen=True)
class CurveConfig:
    """Sizes and recipe of the learning curve (the members are those of the IFBiD study's main zoo)."""

    sizes: tuple = (256, 512, 1024, 4096, 8192)
    n_test: int = 256
    n_train_digits: int = 400
    epochs: int = 40
    chunk_size: int = 64
    detectors: tuple = ("stats", "pca_knn", "conv1x1", "dense_dense", "conv1x1_dense", "rnn")
    detector_epochs: int = 300
    train_seed_base: int = 0
    test_seed_base: int = 50_000_000


IFBID_CURVE = CurveConfig()


def curve_stores(cfg: CurveConfig = IFBID_CURVE, root=None, device=None):
    """``(train_store, test_store)`` of the curve, in ``root`` (default ``<data home>/zoo_store``)."""
    from pathlib import Path

    root = Path(root) if root is not None else default_store_root()
    st = TrainSettings(n_train=cfg.n_train_digits, epochs=cfg.epochs, train_digits="first")
    train = ZooStore(root / "ifbid-curve-train", CNNSpec(), st, seed_base=cfg.train_seed_base,
                     chunk_size=cfg.chunk_size, device=device)
    test = ZooStore(root / "ifbid-curve-test", CNNSpec(), st, seed_base=cfg.test_seed_base,
                    chunk_size=cfg.chunk_size, device=device)
    return train, test


def wilson(k, n, z: float = 1.959964):
    """Wilson score interval ``(low, high)`` for ``k`` successes out of ``n`` (95 % by default)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def learning_curve(cfg: CurveConfig = IFBID_CURVE, root=None, sizes=None, progress: bool = False, seed: int = 0,
                   detector_epochs: int | None = None, detectors=None) -> pd.DataFrame:
    """Detector accuracy on the held-out zoo at every training size the stores hold (no training of zoos).

    Returns
    -------
    DataFrame with one row per (size, detector): ``n_train_models``, ``detector``, ``acc_4level``,
    ``acc_4level_lo``, ``acc_4level_hi``, ``acc_2level`` (+ ``_lo``/``_hi``), ``n_test_models``, ``fit_s``.
    """
    train, test = curve_stores(cfg, root)
    if test.n_models < cfg.n_test:
        raise ValueError(f"the held-out zoo holds {test.n_models} of {cfg.n_test} models; run "
                         "benchmarks/zoo_store_train.py (or curve_stores()[1].ensure(n_test)) first.")
    zte = test.load(cfg.n_test)
    y4, y2 = zte.levels, two_level(zte.levels)
    have = train.n_models
    sizes = [s for s in (sizes or cfg.sizes) if s <= have]
    rows = []
    from tqdm.auto import tqdm

    for n in tqdm(sizes, disable=not progress, desc="curve sizes"):
        ztr = train.load(n)
        for kind in (detectors or cfg.detectors):
            kw = dict(kind=kind, seed=seed, epochs=detector_epochs or cfg.detector_epochs)
            t0 = time.perf_counter()
            d4 = WeightDetector(**kw).fit(ztr)
            d2 = WeightDetector(**kw).fit(ztr, two_level(ztr.levels))
            fit_s = time.perf_counter() - t0
            k4 = int((d4.predict(zte) == y4).sum())
            k2 = int((d2.predict(zte) == y2).sum())
            lo4, hi4 = wilson(k4, len(zte))
            lo2, hi2 = wilson(k2, len(zte))
            rows.append({"n_train_models": n, "detector": kind, "acc_4level": k4 / len(zte), "acc_4level_lo": lo4,
                         "acc_4level_hi": hi4, "acc_2level": k2 / len(zte), "acc_2level_lo": lo2,
                         "acc_2level_hi": hi2, "n_test_models": len(zte), "fit_s": fit_s})
    return pd.DataFrame(rows)


def curve_records(df: pd.DataFrame) -> list[dict]:
    """Flatten :func:`learning_curve` into reproduce records (``ci_low``/``ci_high`` per record)."""
    recs = []
    for r in df.itertuples():
        for lv in ("4level", "2level"):
            recs.append({"study": "ifbid-curve", "dataset": "colored-digits",
                         "features": f"pixels, {r.n_train_models} training models", "metric":
                         f"detector_accuracy_{lv}_{r.detector}_n{r.n_train_models}", "paper": None,
                         "cfdkit": float(getattr(r, f"acc_{lv}")), "ci_low": float(getattr(r, f"acc_{lv}_lo")),
                         "ci_high": float(getattr(r, f"acc_{lv}_hi")), "n_test_models": int(r.n_test_models)})
    return recs


def confusion(cfg: CurveConfig = IFBID_CURVE, root=None, n_train_models: int = 8192, kind: str = "stats",
              seed: int = 0, detector_epochs: int | None = None) -> pd.DataFrame:
    """4-level confusion matrix (rows: true σ², columns: predicted σ²) of one detector fitted on the first
    ``n_train_models`` of the training zoo, on the held-out zoo: where the errors fall."""
    from ..spurious.data import SIGMA2_LEVELS

    train, test = curve_stores(cfg, root)
    zte = test.load(cfg.n_test)
    d = WeightDetector(kind=kind, seed=seed, epochs=detector_epochs or cfg.detector_epochs).fit(train.load(n_train_models))
    pred = d.predict(zte)
    lv = np.asarray(SIGMA2_LEVELS)
    return pd.crosstab(pd.Series(lv[zte.levels], name="true σ²"), pd.Series(lv[pred], name="predicted σ²"))


def behaviour_reference(cfg: CurveConfig = IFBID_CURVE, root=None, n_train_models: int = 2048, seed: int = 0,
                        n_images: int = 400) -> dict:
    """How well the bias level can be told from what a model *does* rather than from its weights.

    Each model's unbiased, bias-aligned and bias-conflicting accuracy and colour-score (on the unbiased test digits,
    :func:`cfdkit.spurious.scores.bias_report`) feed a standardised multinomial logistic regression fitted on the
    first ``n_train_models`` of the training zoo and scored on the held-out zoo (4 and 2 levels, Wilson intervals).
    It is a reference, not a bound: weights can carry more than these four numbers.  Where it is no better than a
    weight reader, models of neighbouring σ² levels behave too much alike for their level to be read off.

    Returns
    -------
    dict with ``acc_4level``, ``acc_2level`` (+ ``_lo``/``_hi``), ``n_train_models``, ``n_test_models``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..spurious.data import colored_digits
    from ..spurious.scores import bias_report

    train, test = curve_stores(cfg, root)
    data = colored_digits("jitter", sigma2=0.05, seed=777)
    cols = ["accuracy", "aligned_accuracy", "conflicting_accuracy", "color_score"]
    ztr, zte = train.load(n_train_models), test.load(cfg.n_test)
    rtr = bias_report(ztr, data, n_images=n_images, seed=seed)
    rte = bias_report(zte, data, n_images=n_images, seed=seed)
    out = {"n_train_models": int(len(ztr)), "n_test_models": int(len(zte))}
    for lv, ytr, yte in (("4level", ztr.levels, zte.levels), ("2level", two_level(ztr.levels), two_level(zte.levels))):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(rtr[cols].to_numpy(), ytr)
        k = int((clf.predict(rte[cols].to_numpy()) == yte).sum())
        lo, hi = wilson(k, len(zte))
        out.update({f"acc_{lv}": k / len(zte), f"acc_{lv}_lo": lo, f"acc_{lv}_hi": hi})
    return out
