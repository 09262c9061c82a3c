"""The IFBiD / "Mirror, mirror" study on coloured digits, end to end, as records for ``cfdkit reproduce``.

The methods it runs live in :mod:`cfdkit.spurious` (zoo, detectors, localisation, mitigation); this module holds
the study, Table III (:func:`mitigation_table`) and the comparison with the paper.

:func:`run_ifbid` trains the zoos, scores them, fits the detectors, localises and mitigates, and returns every
table; :func:`ifbid_records` flattens that into records ``{"study": "ifbid", "dataset": "colored-digits",
"features": "pixels", "metric": ..., "paper": float | None, "cfdkit": float}``.

Set-up (our scale, not the paper's): the training pool of 1,000 bundled digits is halved; the main zoos (a
detector-training zoo and a held-out zoo, members interleaved over the four sigma2 levels) are trained on
random subsets of the first half; the "other digits" zoo on the second half (the analogue of DigitWdb's
original train/test zoos, trained on the first and last 30K MNIST digits); the "deeper" zoo has one more dense
layer (Mirror Fig. 6). The 2-level task is strong bias (sigma2 0.02, 0.03) vs weak bias (0.04, 0.05).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..spurious.data import SIGMA2_LEVELS, colored_digits
from ..spurious.ifbid import DETECTORS, WeightDetector, two_level
from ..spurious.mitigation import LOCALISATIONS, MITIGATIONS, mitigate, permutation_importance, weight_step
from ..spurious.scores import bias_report
from ..spurious.zoo import CNNSpec, ModelZoo, TrainSettings, train_zoo
from .paper import IFBID_PAPER, IFBID_TABLE3

__all__ = ["IFBiDConfig", "IFBiDResult", "run_ifbid", "ifbid_records", "records_from_result",
           "mitigation_table", "PAPER"]

#: The paper's numbers the records are compared with (:data:`cfdkit.studies.paper.IFBID_PAPER`).
PAPER = IFBID_PAPER


@dataclass(frozen=True)
class IFBiDConfig:
    """Sizes of the study. ``fast()`` is the CI size, ``full()`` the recorded run."""

    per_level_train: int = 48
    per_level_test: int = 16
    per_level_other: int = 16
    per_level_deeper: int = 16
    n_train: int = 400
    epochs: int = 40
    detector_epochs: int = 300
    perm_repeats: int = 20
    n_images: int = 400

    @classmethod
    def fast(cls):
        return cls(per_level_train=8, per_level_test=4, per_level_other=4, per_level_deeper=5, n_train=400,
                   epochs=20, detector_epochs=60, perm_repeats=3, n_images=200)

    @classmethod
    def full(cls):
        return cls()


@dataclass
class IFBiDResult:
    """Everything :func:`run_ifbid` computed (zoos, per-member reports, detector tables, Table III)."""

    config: IFBiDConfig
    data: object
    zoo_train: object
    zoo_test: object
    zoo_other: object
    zoo_deeper: object
    report: pd.DataFrame  # per member of train+test zoo
    detectors: pd.DataFrame  # kind, layers, acc_4level, acc_2level, other_digits, deeper
    fitted: dict  # kind -> WeightDetector (4-level, fitted on zoo_train)
    importance: pd.DataFrame
    localisation: dict
    table3: pd.DataFrame
    before: pd.DataFrame
    timings: dict = field(default_factory=dict)


def _levels(per):
    return np.tile(np.asarray(SIGMA2_LEVELS), per)


def run_ifbid(fast: bool = True, seed: int = 0, progress: bool = False, config: IFBiDConfig | None = None,
              device=None) -> IFBiDResult:
    """Run the whole study (see the module docstring). Seeded: same ``seed`` -> same numbers."""
    cfg = config or (IFBiDConfig.fast() if fast else IFBiDConfig.full())
    seed = int(seed)
    t = {}
    st_first = TrainSettings(n_train=cfg.n_train, epochs=cfg.epochs, train_digits="first")
    st_second = TrainSettings(n_train=cfg.n_train, epochs=cfg.epochs, train_digits="second")
    base = 100_000 * seed
    n_main = 4 * (cfg.per_level_train + cfg.per_level_test)
    t0 = time.perf_counter()
    main = train_zoo(_levels(cfg.per_level_train + cfg.per_level_test), seeds=base + np.arange(n_main),
                     settings=st_first, device=device, progress=progress)
    t["train_main_s"] = time.perf_counter() - t0
    is_train = np.arange(n_main) < 4 * cfg.per_level_train
    zoo_train, zoo_test = main.subset(is_train), main.subset(~is_train)
    t0 = time.perf_counter()
    other = train_zoo(_levels(cfg.per_level_other), seeds=base + 50_000 + np.arange(4 * cfg.per_level_other),
                      settings=st_second, device=device, progress=progress)
    deeper = train_zoo(_levels(cfg.per_level_deeper), seeds=base + 70_000 + np.arange(4 * cfg.per_level_deeper),
                       spec=CNNSpec(hidden=(64, 32)), settings=st_first, device=device, progress=progress)
    t["train_other_deeper_s"] = time.perf_counter() - t0

    data = colored_digits("jitter", sigma2=0.05, seed=seed + 777)  # test split: random colours (unbiased)
    report = bias_report(main, data, n_images=cfg.n_images, seed=seed)
    report["zoo"] = np.where(is_train, "train", "test")

    t0 = time.perf_counter()
    rows, fitted = [], {}
    n_deep = len(deeper)
    deep_tr = np.arange(n_deep) < int(round(0.8 * n_deep)) // 4 * 4  # first 80 % (whole level blocks)
    for kind in DETECTORS:
        kw = dict(kind=kind, seed=seed, epochs=cfg.detector_epochs)
        d4 = WeightDetector(**kw).fit(zoo_train)
        d2 = WeightDetector(**kw).fit(zoo_train, two_level(zoo_train.levels))
        fitted[kind] = d4
        dd = WeightDetector(**kw).fit(deeper.subset(deep_tr))
        row = {"detector": kind, "layers": "all" if d4.layers_ == zoo_train.spec.layers else "conv",
               "acc_4level": d4.score(zoo_test), "acc_2level": d2.score(zoo_test, two_level(zoo_test.levels)),
               "train_acc_4level": d4.score(zoo_train), "other_digits_4level": d4.score(other),
               "deeper_4level": dd.score(deeper.subset(~deep_tr))}
        if kind in ("pca_knn", "rnn", "stats"):  # Table II: the same detector without the dense layers
            row["acc_4level_conv_only"] = WeightDetector(layers="conv", **kw).fit(zoo_train).score(zoo_test)
        rows.append(row)
    detectors = pd.DataFrame(rows)
    t["detectors_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    loc_det = fitted["conv1x1_dense"]
    importance = permutation_importance(loc_det, zoo_test, n_repeats=cfg.perm_repeats, seed=seed)
    localisation = {lo: weight_step(loc_det, zoo_test, mode=lo) for lo in ("fgsm", "gm")}
    table3, before = mitigation_table(zoo_test, loc_det, data, n_images=cfg.n_images, seed=seed)
    t["mitigation_s"] = time.perf_counter() - t0
    return IFBiDResult(cfg, data, zoo_train, zoo_test, other, deeper, report, detectors, fitted, importance,
                       localisation, table3, before, t)


def records_from_result(res: IFBiDResult) -> list[dict]:
    """Flatten an :class:`IFBiDResult` into reproduce records."""
    vals = {}
    by = res.report.groupby("sigma2")[["accuracy", "color_score"]].mean()
    for s in SIGMA2_LEVELS:
        vals[f"accuracy_sigma2_{s}"] = float(by.loc[s, "accuracy"])
        vals[f"color_score_sigma2_{s}"] = float(by.loc[s, "color_score"])
    for r in res.detectors.itertuples():
        vals[f"detector_accuracy_4level_{r.detector}"] = float(r.acc_4level)
        vals[f"detector_accuracy_2level_{r.detector}"] = float(r.acc_2level)
        vals[f"detector_generalization_other_digits_4level_{r.detector}"] = float(r.other_digits_4level)
        vals[f"detector_generalization_deeper_4level_{r.detector}"] = float(r.deeper_4level)
        if not pd.isna(getattr(r, "acc_4level_conv_only", np.nan)):
            vals[f"detector_accuracy_4level_{r.detector}_conv_only"] = float(r.acc_4level_conv_only)
    for r in res.table3.itertuples():
        vals[f"mitigation_delta_accuracy_{r.localisation}_{r.mitigation}"] = float(r.delta_accuracy)
        vals[f"mitigation_delta_color_score_{r.localisation}_{r.mitigation}"] = float(r.delta_color_score)
    return [{"study": "ifbid", "dataset": "colored-digits", "features": "pixels", "metric": k,
             "paper": PAPER.get(k), "cfdkit": v} for k, v in vals.items()]


def ifbid_records(fast: bool, seed: int = 0, progress: bool = False) -> list[dict]:
    """Records of the IFBiD study for ``cfdkit reproduce --only ifbid [--fast]``."""
    return records_from_result(run_ifbid(fast=fast, seed=seed, progress=progress))


def mitigation_table(zoo: ModelZoo, detector, data, localisations=LOCALISATIONS, methods=MITIGATIONS, target=3,
                     eps: float = 0.02, n_images: int | None = 400, seed: int = 0, progress: bool = False):
    """Table III: mean change of unbiased accuracy and colour-score per (localisation, mitigation).

    Returns
    -------
    table : DataFrame with columns localisation, mitigation, delta_accuracy, delta_color_score,
        paper_delta_accuracy, paper_delta_color_score, most_biased (the most frequent blamed layer)
    before : DataFrame of the per-member bias report before any mitigation
    """
    from tqdm.auto import tqdm

    before = bias_report(zoo, data, n_images=n_images, seed=seed)
    rows = []
    jobs = [(lo, me) for lo in localisations for me in methods]
    locs = {lo: weight_step(detector, zoo, target=target, eps=eps, mode=lo) for lo in localisations}
    for lo, me in tqdm(jobs, disable=not progress, desc="mitigation"):
        new, drop = mitigate(zoo, locs[lo], me, data=data, seed=seed)
        after = bias_report(new, data, n_images=n_images, seed=seed, dropout=drop)
        pa = IFBID_TABLE3.get((lo, me), (np.nan, np.nan))
        vals, counts = np.unique(locs[lo]["most_biased"], return_counts=True)
        rows.append({"localisation": lo, "mitigation": me,
                     "delta_accuracy": float((after.accuracy - before.accuracy).mean()),
                     "delta_color_score": float(np.nanmean(after.color_score - before.color_score)),
                     "paper_delta_accuracy": pa[0], "paper_delta_color_score": pa[1],
                     "most_biased": vals[counts.argmax()]})
    return pd.DataFrame(rows), before
