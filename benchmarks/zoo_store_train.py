"""Grow the IFBiD learning-curve zoo stores (restart-safe: rerun to resume where it stopped).

    python benchmarks/zoo_store_train.py [N_TRAIN_MODELS] [--budget SECONDS]

Trains the held-out test zoo first (``IFBID_CURVE.n_test`` models), then the training zoo up to
N_TRAIN_MODELS (default the curve's largest size), chunk by chunk, each chunk written atomically.
"""
import argparse
import time

from cfdkit.studies.ifbid_curve import IFBID_CURVE, curve_stores

p = argparse.ArgumentParser()
p.add_argument("n", type=int, nargs="?", default=max(IFBID_CURVE.sizes))
p.add_argument("--budget", type=float, default=None)
a = p.parse_args()
train, test = curve_stores()
t0 = time.perf_counter()
test.ensure(IFBID_CURVE.n_test)
print(f"test zoo: {test.n_models} models ({time.perf_counter() - t0:.0f} s)", flush=True)
for n in sorted(set(list(IFBID_CURVE.sizes) + [a.n])):
    if n > a.n:
        break
    left = None if a.budget is None else a.budget - (time.perf_counter() - t0)
    if left is not None and left <= 0:
        break
    have = train.ensure(n, time_budget_s=left)
    print(f"train zoo: {have} models ({time.perf_counter() - t0:.0f} s)", flush=True)
