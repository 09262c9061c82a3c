"""Where a model's spurious bias comes from, on the model's side (the ``cfdkit.spurious`` family).

* :mod:`.data` — coloured digits from scikit-learn's bundled ``load_digits`` (jitter and binary modes);
  :mod:`.planted` — tabular and text sets with a planted spurious feature.
* :mod:`.autoencoder`, :mod:`.latent_shift`, :mod:`.alignment`, :mod:`.robust` — Latent Shift counterfactuals,
  counterfactual alignment between classifiers, robust training to compare (Cohen et al.).
* :mod:`.neurontune`, :mod:`.bridge` — NeuronTune (Zheng et al.) and the bridge between counterfactual datasets,
  biased neurons and input counterfactuals (registers the ``neurontune_activation`` ranking).
"""
from . import bridge  # noqa: F401  (registers the neurontune_activation ranking of cfdkit.neural)
from .data import (BIAS_LEVEL_NAMES, BINARY_COLORS, MEAN_COLORS, RHO_LEVELS, SIGMA2_LEVELS, ColoredDigits,
                   colored_digits, jitter_colors, paint)

__all__ = ["ColoredDigits", "colored_digits", "paint", "jitter_colors", "MEAN_COLORS", "BINARY_COLORS",
           "SIGMA2_LEVELS", "RHO_LEVELS", "BIAS_LEVEL_NAMES"]
