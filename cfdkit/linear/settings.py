"""The audit's validated parameters, as both engines read them (:class:`cfdkit.linear.audit.RelabelAudit` builds
them once in ``fit``; an engine never reads the estimator)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Settings:
    """``l2``, ``threshold``, ``tol``, ``max_iter``, ``memory_budget`` (bytes), ``seed`` as validated; ``solver`` and
    ``solver_options`` as given (the binary engine's :class:`~cfdkit.core.solvers.InverseHVP`); ``device`` resolved."""

    l2: float
    threshold: float
    solver: str
    solver_options: dict | None
    device: torch.device
    tol: float
    max_iter: int
    memory_budget: int
    seed: int
    progress: bool

    def inverse_hvp_options(self) -> dict:
        """Keyword arguments of :class:`~cfdkit.core.solvers.InverseHVP` (``seed`` defaults to the audit's)."""
        opts = dict(self.solver_options or {})
        opts.setdefault("seed", self.seed)
        return opts
