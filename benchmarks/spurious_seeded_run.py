"""Seeded (>= 5 seeds) runs of the spurious-bias studies, written as JSON records with 95 % intervals.

    python benchmarks/spurious_seeded_run.py cf-alignment OUT.json
    python benchmarks/spurious_seeded_run.py neurontune OUT.json [RHO ...]
    python benchmarks/spurious_seeded_run.py neurontune-augmented OUT.json [RHO ...]   (grey-pretrained trunk)
    python benchmarks/spurious_seeded_run.py cf-alignment-augmented OUT.json

``CFDKIT_BENCH_SMOKE=1``: the studies' fast sizes and 2 seeds (checks that the script runs).
"""
import json
import os
import sys
import time

import functools

import torch

from cfdkit.studies.spurious_seeds import (cf_alignment_augmented_records, cf_alignment_seeded_records,
                                          neurontune_seeded_records)

torch.set_num_threads(1)
which, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
fn = {"cf-alignment": cf_alignment_seeded_records, "neurontune": neurontune_seeded_records,
      "neurontune-augmented": functools.partial(neurontune_seeded_records, augmented=True, pretrained=(True,)),
      "cf-alignment-augmented": cf_alignment_augmented_records}[which]
kw = {"rhos": tuple(float(r) for r in sys.argv[3:])} if which.startswith("neurontune") and len(sys.argv) > 3 else {}
smoke = os.environ.get("CFDKIT_BENCH_SMOKE") == "1"     # tiny run: fast sizes, 2 seeds (tests/test_benchmarks_smoke.py)
if smoke:
    kw["n_seeds"] = 2
    if which == "neurontune":
        kw.update(rhos=kw.get("rhos", (0.95,)), pretrained=(False,))
def _clean(v):
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _save(recs, partial):
    """Write the records atomically (temp file + rename); ``partial``: seeds still to come."""
    meta = {"study": which, "seconds": time.perf_counter() - t0, "threads": 1, "partial": partial,
            "records": _clean(recs)}
    with open(out + ".tmp", "w") as fh:
        json.dump(meta, fh, indent=1, allow_nan=False, default=lambda v: None)
    os.replace(out + ".tmp", out)
    return meta


kw["on_seed"] = lambda r: _save(r, True)   # a run stopped early keeps the seeds it finished
recs = fn(fast=smoke, seed=0, progress=not smoke, **kw)
meta = _save(recs, False)
print(f"{which}: {len(recs)} records in {meta['seconds']:.0f} s")
