"""Where a model's spurious bias comes from, on the model's side (the ``cfdkit.spurious`` family).

* :mod:`.data` — coloured digits from scikit-learn's bundled ``load_digits`` (jitter and binary modes);
  :mod:`.planted` — tabular and text sets with a planted spurious feature.
* :mod:`.autoencoder`, :mod:`.latent_shift`, :mod:`.alignment`, :mod:`.robust` — Latent Shift counterfactuals,
  counterfactual alignment between classifiers, robust training to compare (Cohen et al.).
* :mod:`.neurontune`, :mod:`.bridge` — NeuronTune (Zheng et al.) and the bridge between counterfactual datasets,
  biased neurons and input counterfactuals (registers the ``neurontune_activation`` ranking).
* :mod:`.zoo`, :mod:`.scores`, :mod:`.ifbid`, :mod:`.mitigation`, :mod:`.study` — a zoo of small CNNs
  trained in batches, the colour-score, bias-level detectors reading weights, localisation and mitigation
  (IFBiD, Serna et al.; "Mirror, mirror", Sialelli et al.), the study as reproduce records (:func:`ifbid_records`).
"""
from . import bridge  # noqa: F401  (registers the neurontune_activation ranking of cfdkit.neural)
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
