"""L2 logistic regression: which training labels, relabeled, flip each prediction (Yang, Xu & Yu 2024).

Data flow: features -> :mod:`.model` (the fit, float64) -> Hessian factorization (:class:`cfdkit.core.InverseHVP`)
-> :mod:`.scores` (IP-relabel and the baselines, a registry) -> :mod:`.selection` (Algorithm 1) -> :mod:`.retrain`
(exact verification refits) -> :mod:`.results`.  :class:`RelabelAudit` (:mod:`.audit`) is the estimator over all of
them; :mod:`.removal` holds the removal baselines, :mod:`.minimal` the verified minimal sets with their certified lower
bound, :mod:`.groups` the per-group report.
"""

from .audit import RelabelAudit
from .groups import group_metric_frame, group_report
from .minimal import MinimalSets, exhaustive_minimal
from .results import FlipSets, Verification
from .scores import METHODS

__all__ = ["RelabelAudit", "FlipSets", "Verification", "METHODS", "MinimalSets", "exhaustive_minimal", "group_report",
           "group_metric_frame"]
