"""The shared core every model family stands on.

* :mod:`cfdkit.core.arrays` — user arrays (numpy, scipy.sparse, pandas, torch, CuPy) to float64 torch tensors on a
  device, the design matrix with its intercept column, :func:`resolve_device`.
* :mod:`cfdkit.core.validation` — argument checks with messages that name the argument and the fix,
  :class:`NotFittedError`, the fit fingerprint.
* :mod:`cfdkit.core.solvers` — inverse-Hessian-vector products behind one interface (:class:`InverseHVP`:
  ``cholesky``, ``cg``, ``lissa``, ``arnoldi``), batched preconditioned CG.
"""

from .arrays import DTYPE, Design, resolve_device, to_numpy, to_torch_matrix
from .solvers import SOLVERS, InverseHVP, LinearOperator, SolverConvergenceWarning, SolverDiagnostics
from .validation import NotFittedError

__all__ = ["DTYPE", "Design", "resolve_device", "to_numpy", "to_torch_matrix", "SOLVERS", "InverseHVP",
           "LinearOperator", "SolverConvergenceWarning", "SolverDiagnostics", "NotFittedError"]
