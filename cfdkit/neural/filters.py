"""Filters φ (which test inputs to search) and ψ (which training points may be flipped).

The paper's Algorithm 1 takes "filtering rules φ and ψ" but does not define them
(``cfd_nn_method.md`` §5).  Signatures used by cfdkit (vectorised):

* ``phi(X_test (n_test, d), logit (n_test,)) -> bool (n_test,)``; ``None`` = search all.
* ``psi(X_train, y_train, X_test, pred (n_test,)) -> bool (n_test, n_train)``; ``None`` = all
  training points are candidates.

**Default ψ (cfdkit's choice): :func:`same_label_as_prediction`** — only training points whose
label equals the test input's current predicted class; flipping those pushes towards the other
class, which label-blind rankings (``activation_pattern``, ``l2_distance``, ``random``) need.
"""
from __future__ import annotations

import numpy as np

__all__ = ["same_label_as_prediction", "all_candidates", "near_boundary", "apply_phi", "apply_psi"]


def same_label_as_prediction(X_train, y_train, X_test, pred) -> np.ndarray:
    """ψ: ``mask[t, i] = (y_train[i] == pred[t])``, shape ``(n_test, n_train)``."""
    return np.asarray(pred)[:, None] == np.asarray(y_train)[None, :]


def all_candidates(X_train, y_train, X_test, pred) -> np.ndarray:
    """ψ: every training point is a candidate."""
    return np.ones((len(X_test), len(X_train)), dtype=bool)


def near_boundary(max_abs_logit: float):
    """φ factory: search only test inputs with ``|logit| <= max_abs_logit``."""
    def phi(X_test, logit):
        return np.abs(np.asarray(logit)) <= max_abs_logit
    return phi


def apply_phi(phi, X_test, logit) -> np.ndarray:
    """Evaluate φ and check its output."""
    if phi is None:
        return np.ones(len(X_test), dtype=bool)
    if not callable(phi):
        raise TypeError(f"phi must be None or a callable phi(X_test, logit) -> bool (n_test,), got {type(phi).__name__}.")
    m = np.asarray(phi(X_test, logit))
    if m.shape != (len(X_test),) or m.dtype != bool:
        raise ValueError(f"phi must return a bool array of shape ({len(X_test)},), got {m.dtype} {m.shape}.")
    return m


def apply_psi(psi, X_train, y_train, X_test, pred) -> np.ndarray:
    """Evaluate ψ and check its output."""
    if psi is None:
        return all_candidates(X_train, y_train, X_test, pred)
    if not callable(psi):
        raise TypeError(f"psi must be None or a callable psi(X_train, y_train, X_test, pred) -> bool "
                        f"(n_test, n_train), got {type(psi).__name__}.")
    m = np.asarray(psi(X_train, y_train, X_test, pred))
    if m.shape != (len(X_test), len(X_train)) or m.dtype != bool:
        raise ValueError(f"psi must return a bool array of shape ({len(X_test)}, {len(X_train)}), got {m.dtype} {m.shape}.")
    return m
