"""Spurious correlations and bias read from weights (the ``cfdkit.spurious`` family).

Modules: :mod:`.data` (coloured digits from scikit-learn's bundled ``load_digits``), :mod:`.zoo` (a zoo of small
CNNs trained in batches, save/load), :mod:`.scores` (colour-score of Sialelli et al., unbiased accuracy),
:mod:`.ifbid` (bias-level detectors reading weights), :mod:`.mitigation` (localisation and mitigation, Table III),
:mod:`.study` (the whole study as ``cfdkit reproduce`` records: :func:`ifbid_records`).
"""
from .data import (BIAS_LEVEL_NAMES, BINARY_COLORS, MEAN_COLORS, RHO_LEVELS, SIGMA2_LEVELS, ColoredDigits,
                   colored_digits, jitter_colors, paint)
from .ifbid import DETECTORS, WeightDetector, stats_features, two_level
from .mitigation import (LOCALISATIONS, MITIGATIONS, PAPER_TABLE3, mitigate, mitigation_table, permutation_importance,
                         weight_step)
from .scores import bias_report, color_score, color_score_fn
from .study import IFBiDConfig, IFBiDResult, ifbid_records, records_from_result, run_ifbid
from .zoo import CNNSpec, ModelZoo, SmallCNN, TrainSettings, train_member, train_zoo

__all__ = ["ColoredDigits", "colored_digits", "paint", "jitter_colors", "MEAN_COLORS", "BINARY_COLORS",
           "SIGMA2_LEVELS", "RHO_LEVELS", "BIAS_LEVEL_NAMES", "CNNSpec", "SmallCNN", "ModelZoo", "TrainSettings",
           "train_zoo", "train_member", "color_score", "color_score_fn", "bias_report", "DETECTORS", "WeightDetector",
           "stats_features", "two_level", "weight_step", "permutation_importance", "mitigate", "mitigation_table",
           "MITIGATIONS", "LOCALISATIONS", "PAPER_TABLE3", "IFBiDConfig", "IFBiDResult", "run_ifbid", "ifbid_records",
           "records_from_result"]
