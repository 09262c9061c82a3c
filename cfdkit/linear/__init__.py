"""L2 logistic regression: which training labels, relabeled, flip each prediction (Yang, Xu & Yu 2024).

Data flow: features -> :mod:`.model` (the fit, float64) -> Hessian factorization (:class:`cfdkit.core.InverseHVP`)
-> :mod:`.scores` (IP-relabel and the baselines, a registry) -> :mod:`.selection` (Algorithm 1) -> :mod:`.retrain`
(exact verification refits, :mod:`.certify` sign certificates) -> :mod:`.results`.  Two engines answer every
question with the same methods: :class:`~.binomial.BinomialEngine` (two classes) and
:class:`~.multiclass.MultinomialEngine` (softmax, K > 2); :class:`RelabelAudit` (:mod:`.audit`) is the scikit-learn
estimator that picks one in ``fit`` and hands each query to it.  :mod:`.units` holds the joblib units of work,
:mod:`.pipelining` the GPU pipelining, :mod:`.sklearn_glue` the scikit-learn entry, :mod:`.removal` the removal
baselines, :mod:`.minimal` the verified minimal sets with their certified lower bound (stages run by
:mod:`.search`), :mod:`.oracle` the exhaustive ground truth, :mod:`.groups` the per-group report.
"""

from .audit import RelabelAudit
from .groups import group_metric_frame, group_report
from .minimal import MinimalSets
from .oracle import exhaustive_minimal
from .results import FlipSets, Verification
from .scores import METHODS

__all__ = ["RelabelAudit", "FlipSets", "Verification", "METHODS", "MinimalSets", "exhaustive_minimal", "group_report",
           "group_metric_frame"]
