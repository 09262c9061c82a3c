"""Where a model's spurious bias comes from, on the model's side (the ``cfdkit.spurious`` family).

* :mod:`.data` — coloured digits from scikit-learn's bundled ``load_digits`` (jitter and binary modes);
  :mod:`.planted` — tabular and text sets with a planted spurious feature.
* :mod:`.autoencoder`, :mod:`.latent_shift`, :mod:`.alignment`, :mod:`.robust` — Latent Shift counterfactuals,
  counterfactual alignment between classifiers, robust training to compare (Cohen et al.).
* :mod:`.neurontune`, :mod:`.bridge` — NeuronTune (Zheng et al.) and the bridge between counterfactual datasets,
  biased neurons and input counterfactuals (registers the ``neurontune_activation`` ranking).
* :mod:`.zoo`, :mod:`.zoo_store`, :mod:`.scores`, :mod:`.ifbid`, :mod:`.mitigation` — a zoo of small CNNs
  trained in batches (and stored restart-safe in chunks), the colour-score, bias-level detectors reading weights,
  localisation and mitigation (IFBiD, Serna et al.; "Mirror, mirror", Sialelli et al.).
* :mod:`.nets` — the small networks (MLP, DigitCNN, the autoencoder's MLP) and plain ERM training.

Methods and networks only: the studies that run them against the papers, with the papers' numbers, are in
:mod:`cfdkit.studies` (:mod:`~cfdkit.studies.ifbid`, :mod:`~cfdkit.studies.cf_alignment`,
:mod:`~cfdkit.studies.neurontune`, :mod:`~cfdkit.studies.ifbid_curve`, :mod:`~cfdkit.studies.spurious_seeds`).
"""
from . import bridge  # noqa: F401  (registers the neurontune_activation ranking of cfdkit.neural)
from .data import (BIAS_LEVEL_NAMES, BINARY_COLORS, MEAN_COLORS, RHO_LEVELS, SIGMA2_LEVELS, ColoredDigits,
                   colored_digits, jitter_colors, paint)
from .ifbid import DETECTORS, WeightDetector, stats_features, two_level
from .mitigation import LOCALISATIONS, MITIGATIONS, mitigate, permutation_importance, weight_step
from .scores import bias_report, color_score, color_score_fn
from .zoo import CNNSpec, ModelZoo, SmallCNN, TrainSettings, train_member, train_zoo

__all__ = ["ColoredDigits", "colored_digits", "paint", "jitter_colors", "MEAN_COLORS", "BINARY_COLORS",
           "SIGMA2_LEVELS", "RHO_LEVELS", "BIAS_LEVEL_NAMES", "CNNSpec", "SmallCNN", "ModelZoo", "TrainSettings",
           "train_zoo", "train_member", "color_score", "color_score_fn", "bias_report", "DETECTORS", "WeightDetector",
           "stats_features", "two_level", "weight_step", "permutation_importance", "mitigate",
           "MITIGATIONS", "LOCALISATIONS"]
