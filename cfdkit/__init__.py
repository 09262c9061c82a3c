"""cfdkit: counterfactual datasets.

Which few training labels, had they been different, would have changed this
prediction?  ``RelabelAudit`` answers it for L2 logistic regression — every
test point at once, verified by retraining.  See ``README.md`` for the tour.
"""

from .core.validation import NotFittedError
from .linear.audit import RelabelAudit
from .linear.results import FlipSets, Verification
from .linear.scores import METHODS
from .core.solvers import SOLVERS, InverseHVP, LinearOperator, SolverConvergenceWarning, SolverDiagnostics

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
