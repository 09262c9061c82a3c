"""Seeded (>= 5 seeds) runs of the spurious-bias studies, written as JSON records with 95 % intervals.

    python benchmarks/spurious_seeded_run.py cf-alignment OUT.json
    python benchmarks/spurious_seeded_run.py neurontune OUT.json [RHO ...]
    python benchmarks/spurious_seeded_run.py neurontune-augmented OUT.json [RHO ...]   (grey-pretrained trunk)
    python benchmarks/spurious_seeded_run.py cf-alignment-augmented OUT.json
    ... [--seed S --n-seeds N]      seeds S .. S+N-1 only (default 0 and 5); merge two such runs with
    python benchmarks/spurious_seeded_run.py --merge OUT.json PART1.json PART2.json   (values in the order given)

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
argv = sys.argv[1:]
if argv[0] == "--merge":
    from cfdkit.studies.spurious_seeds import merge_seeded

    parts = [json.load(open(p)) for p in argv[2:]]
    meta = {**parts[0], "seconds": sum(p["seconds"] for p in parts), "partial": any(p["partial"] for p in parts),
            "merged_from": [{"seconds": p["seconds"], "seeds": p.get("seeds")} for p in parts],
            "seeds": [s for p in parts for s in (p.get("seeds") or [])],
            "records": merge_seeded(*[p["records"] for p in parts])}
    with open(argv[1] + ".tmp", "w") as fh:
        json.dump(meta, fh, indent=1, allow_nan=False, default=lambda v: None)
    os.replace(argv[1] + ".tmp", argv[1])
    sys.exit(0)
seed0, n_seeds = 0, None
for flag in ("--seed", "--n-seeds"):
    if flag in argv:
        k = argv.index(flag)
        val = int(argv[k + 1])
        del argv[k:k + 2]
        if flag == "--seed":
            seed0 = val
        else:
            n_seeds = val
which, out = argv[0], argv[1]
t0 = time.perf_counter()
fn = {"cf-alignment": cf_alignment_seeded_records, "neurontune": neurontune_seeded_records,
      "neurontune-augmented": functools.partial(neurontune_seeded_records, augmented=True, pretrained=(True,)),
      "cf-alignment-augmented": cf_alignment_augmented_records}[which]
kw = {"rhos": tuple(float(r) for r in argv[2:])} if which.startswith("neurontune") and len(argv) > 2 else {}
if n_seeds is not None:
    kw["n_seeds"] = n_seeds
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
            "seeds": list(range(seed0, seed0 + kw.get("n_seeds", 5))),
            "records": _clean(recs)}
    with open(out + ".tmp", "w") as fh:
        json.dump(meta, fh, indent=1, allow_nan=False, default=lambda v: None)
    os.replace(out + ".tmp", out)
    return meta


kw["on_seed"] = lambda r: _save(r, True)   # a run stopped early keeps the seeds it finished
recs = fn(fast=smoke, seed=seed0, progress=not smoke, **kw)
meta = _save(recs, False)
print(f"{which}: {len(recs)} records in {meta['seconds']:.0f} s")
