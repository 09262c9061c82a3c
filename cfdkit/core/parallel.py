"""Chunks of work through joblib, and so through Dask: ``n_jobs=`` of the audit methods.

``RelabelAudit.flip_sets``, ``verify`` and ``minimal_sets`` cut their work into *units* that do
not depend on ``n_jobs`` (the score blocks that ``memory_budget`` sets, the batches of the
verification refits) and hand contiguous runs of whole units to joblib.  Because every unit is
computed with exactly the same shapes wherever it runs, results are bit-for-bit those of one
process (BLAS results depend on the shapes of the operands, so a chunk never splits a unit).

Under ``joblib.parallel_backend("dask")`` (or ``parallel_config(backend="dask")``) the chunks
run on a Dask cluster.  The fitted state goes into a :class:`Shipped` wrapper whose
``__sizeof__`` reports its real size: joblib's Dask backend then scatters it once per call
(arguments over 1 kB are scattered, keyed by identity, and workers fetch the scattered copy
from each other) instead of pickling it into every task.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_n_jobs(n_jobs, name: str = "n_jobs"):
    """``None`` or a nonzero int (joblib's convention: ``-1`` all cores, ``-2`` all but one)."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"{name} must be None or a nonzero int (1: one process, k: k workers, -1: all cores); "
                        f"got {type(n_jobs).__name__} {n_jobs!r}.")
    if int(n_jobs) == 0:
        raise ValueError(f"{name}=0 asks for no worker; use None or 1 for one process, k > 1 for k workers, "
                         "or -1 for all cores (under joblib.parallel_backend('dask'): all Dask workers).")
    return int(n_jobs)


def effective_workers(n_jobs) -> int:
    """How many workers joblib would use for ``n_jobs`` in the active backend (1: run in-process)."""
    import joblib

    if n_jobs == 1:
        return 1
    try:
        return max(1, int(joblib.effective_n_jobs(n_jobs)))
    except Exception:  # a backend that cannot say (a cluster with no worker yet): one process
        return 1


def unit_runs(n_units: int, n_workers: int) -> list[tuple[int, int]]:
    """Split ``range(n_units)`` into at most ``n_workers`` contiguous, near-equal runs ``(start, stop)``."""
    if n_units <= 0:
        return []
    k = max(1, min(n_workers, n_units))
    edges = np.linspace(0, n_units, k + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def block_runs(n_rows: int, block: int, n_jobs) -> list[tuple[int, int]]:
    """Rows ``[(start, stop)]`` of the runs of whole blocks of ``block`` rows (or refits) that ``n_jobs`` workers
    take, one run per worker; one run (``[(0, n_rows)]``, or none for no rows) runs in this process.  The blocks,
    not the workers, fix every result, so a result never depends on ``n_jobs``."""
    runs = unit_runs(-(-n_rows // block), effective_workers(n_jobs))
    return [(a * block, min(n_rows, b * block)) for a, b in runs]


class Shipped:
    """The fitted object every chunk needs, wrapped so that joblib's Dask backend scatters it.

    ``__sizeof__`` (what ``dask.sizeof`` falls back to) reports ``nbytes`` (default 1 MiB), so the
    backend's rule "scatter arguments over 1 kB" applies; the object then travels once per
    call (and from worker to worker), not once per chunk.  ``pickles`` counts how often this
    process pickled it (a test reads it).
    """

    pickles = 0

    def __init__(self, obj, nbytes: int | None = None):
        self.obj = obj
        self._nbytes = int(nbytes) if nbytes is not None else (1 << 20)

    def __sizeof__(self) -> int:
        return self._nbytes

    def __getstate__(self):
        type(self).pickles += 1
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


def _call(fn, shipped, args):
    return fn(shipped.obj if isinstance(shipped, Shipped) else shipped, *args)


def run_chunks(fn, obj, chunk_args: list, n_jobs, nbytes: int | None = None) -> list:
    """``[fn(obj, *args) for args in chunk_args]``, through joblib when there is more than one chunk.

    One chunk (or one effective worker) runs in this process without pickling anything.
    """
    if len(chunk_args) <= 1 or effective_workers(n_jobs) <= 1:
        return [fn(obj, *a) for a in chunk_args]
    from joblib import Parallel, delayed

    shipped = Shipped(obj, nbytes)
    return Parallel(n_jobs=n_jobs)(delayed(_call)(fn, shipped, tuple(a)) for a in chunk_args)
