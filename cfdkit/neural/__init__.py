"""Counterfactual datasets for small ReLU networks (Kim, Mitchell, Wang, NLDL 2026).

Modules: :mod:`.model` (network + deterministic full-batch Adam), :mod:`.batched` (vectorised
ensemble retraining), :mod:`.rankings` / :mod:`.influence` (which labels to flip first),
:mod:`.filters` (φ, ψ), :mod:`.ensemble` (one train / logits / retrain-with-flips interface for the built-in
network and any module), :mod:`.search` (Algorithm 1), :mod:`.placebo`, :mod:`.results`, :mod:`.ground_truth`,
:mod:`.estimator` (:class:`NeuralCFD`), :mod:`.module` (``NeuralCFD(model=...)``: any torch classifier, a
``torch.func`` ensemble).
"""
from .estimator import NeuralCFD
from .filters import all_candidates, near_boundary, same_label_as_prediction
from .ground_truth import GroundTruth, exhaustive_cfd, ranking_recall
from .influence import influence  # noqa: F401  (registers the "influence" ranking)
from .model import ReLUNet, TrainConfig, as_relu_net
from .module import ModuleNet
from .rankings import RANKINGS, get_ranking, masked_order, register_ranking
from .results import CFDResult

#: NeuralCFD keyword arguments of the pre-issue-16 recipe (fixed ``epochs`` Adam steps, constant lr, no weight
#: decay, no convergence check): for studies whose recorded numbers were produced with it.  Not recommended for
#: new CFD claims: predictions then move with the seed and with single random labels (cfdkit/neural/NOTES.md).
FIXED_STEP_RECIPE = {"weight_decay": 0.0, "lr_min": None, "tol": None}

__all__ = ["FIXED_STEP_RECIPE", "NeuralCFD", "CFDResult", "ModuleNet", "ReLUNet", "TrainConfig", "as_relu_net", "RANKINGS", "register_ranking",
           "get_ranking", "masked_order", "same_label_as_prediction", "all_candidates", "near_boundary",
           "GroundTruth", "exhaustive_cfd", "ranking_recall"]
