"""cfdkit: counterfactual datasets.

Which few training labels, had they been different, would have changed this
prediction?  ``RelabelAudit`` answers it for L2 logistic regression — every
test point at once, verified by retraining.  See ``README.md`` for the tour.
"""

from ._validation import NotFittedError
from .audit import RelabelAudit
from .results import FlipSets, Verification
from .scores import METHODS
from .solvers import SOLVERS, InverseHVP, LinearOperator, SolverConvergenceWarning, SolverDiagnostics

__version__ = "0.1.0"

__all__ = [
    "RelabelAudit",
    "FlipSets",
    "Verification",
    "InverseHVP",
    "LinearOperator",
    "SolverDiagnostics",
    "SolverConvergenceWarning",
    "METHODS",
    "SOLVERS",
    "NotFittedError",
]
