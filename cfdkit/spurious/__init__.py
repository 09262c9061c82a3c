"""Spurious correlations and bias read from weights (the ``cfdkit.spurious`` family).

Modules: :mod:`.data` (coloured digits from scikit-learn's bundled ``load_digits``), :mod:`.zoo` (a zoo of small
CNNs trained in batches, save/load), :mod:`.scores` (colour-score of Sialelli et al., unbiased accuracy).
"""
from .data import (BIAS_LEVEL_NAMES, BINARY_COLORS, MEAN_COLORS, RHO_LEVELS, SIGMA2_LEVELS, ColoredDigits,
                   colored_digits, jitter_colors, paint)
from .scores import bias_report, color_score, color_score_fn
from .zoo import CNNSpec, ModelZoo, SmallCNN, TrainSettings, train_member, train_zoo

__all__ = ["ColoredDigits", "colored_digits", "paint", "jitter_colors", "MEAN_COLORS", "BINARY_COLORS",
           "SIGMA2_LEVELS", "RHO_LEVELS", "BIAS_LEVEL_NAMES", "CNNSpec", "SmallCNN", "ModelZoo", "TrainSettings",
           "train_zoo", "train_member", "color_score", "color_score_fn", "bias_report"]
