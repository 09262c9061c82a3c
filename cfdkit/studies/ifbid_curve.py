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

__all__ = ["CurveConfig", "IFBID_CURVE", "curve_stores", "wilson", "learning_curve", "curve_records"]


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
