"""The papers' studies: Yang, Xu & Yu (2024) (:mod:`.linear`), Kim, Mitchell & Wang (2026) (:mod:`.neural_table`).

Every study returns a pandas DataFrame; :mod:`cfdkit.plots` draws them and
``cfdkit reproduce`` (:mod:`cfdkit.studies.reproduce`) runs them all and
writes a side-by-side report with the paper's numbers (:data:`PAPER`).
"""

from ..data.prepare import FEATURES, L2, THRESHOLD, Prepared, prepare
from .linear import make_audit
from .paper import METRICS, PAPER, paper_records
from .linear import (RANK_DIRECTION, audit_points, bow_vs_embedding, clear_cache, figure2, noise_sweep,
                      relabel_vs_remove, size_distribution, size_vs_confidence, summarize_points, table2, tag_bias)
from .linear import (L2_CONVENTIONS, imbalanced_minimal, minimal_points, resolve_l2, summarize_minimal,
                     table2_minimal)

from .neural_table import neural_cfd_table
from ..data.prepare import load_arrays

__all__ = [
    "FEATURES", "L2", "THRESHOLD", "Prepared", "make_audit", "prepare", "METRICS", "PAPER", "paper_records",
    "RANK_DIRECTION", "audit_points", "bow_vs_embedding", "clear_cache", "figure2", "noise_sweep",
    "relabel_vs_remove", "size_distribution", "size_vs_confidence", "summarize_points", "table2", "tag_bias",
    "load_arrays", "neural_cfd_table", "L2_CONVENTIONS", "imbalanced_minimal", "minimal_points", "resolve_l2",
    "summarize_minimal", "table2_minimal",
]
