"""The minimal-set search skeleton both engines run: named stages, in order, over one pool of refits.

A search (:func:`cfdkit.linear.minimal.minimal_search` for two classes, :func:`cfdkit.linear.multiclass.minimal_search`
for K) is a list of :class:`Stage` -- Algorithm 1's sets, single relabels, pairs, the re-linearized greedy, the
shrink to 1-minimal, ... -- each a function of the search's shared state (its pool of refits, the test rows, what
earlier stages left).  :func:`run_stages` runs them in order, shows each stage's name on the progress bar and
times it (``MinimalSets.timings``).  Adding a stage to a search is one function and one entry in its list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Stage", "run_stages"]


@dataclass(frozen=True)
class Stage:
    """One step of a search: ``run(search)``; ``key`` names its seconds in the timings, ``phase`` is what the
    progress bar says while it runs (None: the stage sets ``search.pool.phase`` itself)."""

    key: str
    phase: str | None
    run: Callable


def run_stages(search, stages) -> dict:
    """Run ``stages`` on ``search`` in order; ``{stage key: seconds}``."""
    timings = {}
    clock = time.perf_counter()
    for stage in stages:
        if stage.phase is not None:
            search.pool.phase = stage.phase
        stage.run(search)
        now = time.perf_counter()
        timings[stage.key] = now - clock
        clock = now
    return timings
