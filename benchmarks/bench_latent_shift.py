"""Latent Shift: all inputs batched vs one input at a time (the official code's loop), same process.

Usage::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_latent_shift.py [--n 200] [--threads 1]
        [--device cpu|cuda] [--repeats 3]

Builds the fast digit setup (binary coloured digits, rho = 0.99; MLP autoencoder on random colours),
trains an ERM classifier, then times ``latent_shift(..., batch_size=None)`` against
``batch_size=1`` on the first ``n`` test digits with the CF-alignment settings (``DIGIT_LS``),
checks that both give the same stop reasons and λ, and prints a Markdown row.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from cfdkit.spurious.alignment import DIGIT_LS
    from cfdkit.studies.cf_alignment import digit_setup
    from cfdkit.spurious.latent_shift import latent_shift
    from cfdkit.spurious.robust import RobustClassifier

    dev = torch.device(args.device)
    s = digit_setup(rho=0.99, seed=0, fast=True, device=dev)
    d = s.data
    clf = RobustClassifier("erm", epochs=40, seed=0, device=dev).fit(d.X_train, d.y_train).torch_proba()
    X = d.X_test[: args.n]

    def run(bs):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        r = latent_shift(clf, s.ae, X, batch_size=bs, n_frames=2, device=dev, **DIGIT_LS)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, r

    run(None)  # warm-up
    tb, rb = min((run(None) for _ in range(args.repeats)), key=lambda p: p[0])
    t1, r1 = min((run(1) for _ in range(max(1, args.repeats - 1))), key=lambda p: p[0])
    same_reason = bool(np.all(rb.reason == r1.reason))
    max_dlam = float(np.max(np.abs(rb.lambda_ - r1.lambda_)))
    steps = int(rb.n_steps.sum())
    print(f"| {args.device} | {args.threads} | {args.n} | {steps} | {t1:.3f} | {tb:.3f} | {t1 / tb:.1f}x | "
          f"{same_reason} | {max_dlam:.2g} |")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, reasons {rb.reason_counts()}")


if __name__ == "__main__":
    main()
