"""cfdkit: counterfactual datasets.

Which few training labels, had they been different, would have changed this
prediction?  ``RelabelAudit`` answers it for L2 logistic regression — every
test point at once, verified by retraining.  See ``README.md`` for the tour.
"""

import importlib

__version__ = "0.1.0"

# The names below are imported on first use (PEP 562), so that ``import cfdkit`` -- and with it the ``cfdkit``
# command, which prints its first line before torch and scikit-learn are loaded -- starts in a fraction of a second.
_LAZY = {
    "NotFittedError": ".core.validation",
    "RelabelAudit": ".linear.audit",
    "FlipSets": ".linear.results",
    "Verification": ".linear.results",
    "METHODS": ".linear.scores",
    "SOLVERS": ".core.solvers",
    "InverseHVP": ".core.solvers",
    "LinearOperator": ".core.solvers",
    "SolverConvergenceWarning": ".core.solvers",
    "SolverDiagnostics": ".core.solvers",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    try:                                    # a subpackage, e.g. cfdkit.linear after a plain ``import cfdkit``
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
