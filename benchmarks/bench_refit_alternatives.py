"""Where verification refits spend their time, and the alternatives measured (issue 14, verification row).

    CFDKIT_DATA_HOME=... python benchmarks/bench_refit_alternatives.py [--sets 256]

On a random sample of the hate-speech flip sets (BoW, l2=10, tau=0.25, tol=1e-10) it prints, in one run:
the kernel costs per refit column (float64/float32 Cholesky solves of the p x p factor, the explicit inverse as
one GEMM, the sparse products X~ W and X~^T R); the chord (fixed-Hessian Newton) iteration
``w <- w - H0^{-1} g(w)`` from the influence start (gradient norms per iteration: its contraction rate);
and batched L-BFGS with different initial inverse Hessians — the float32 Cholesky factor, the
float64 factor, the explicit float32 inverse (cfdkit's for many refits), and randomized Nystrom low-rank-plus-diagonal approximations of H0 of rank k — with their
iterations and seconds.  Nothing here is asserted; the figures go to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", type=int, default=256)
    ap.add_argument("--ranks", type=int, nargs="*", default=[128, 512])
    args = ap.parse_args(argv)
    from cfdkit import RelabelAudit
    from cfdkit.data.prepare import prepare
    from cfdkit.linear.model import gradient, hvp, lbfgs
    from cfdkit.linear.retrain import _labels_and_weights

    print(f"torch threads {torch.get_num_threads()}")
    prep = prepare("hate-speech", "bow")
    a = RelabelAudit(l2=prep.l2, threshold=prep.threshold).fit(prep.X_train, prep.y_train)
    st, tr = a.state_, a.state_.train
    fs = a.flip_sets(prep.X_test)
    rng = np.random.default_rng(0)
    sel = rng.choice(len(fs), min(args.sets, len(fs)), replace=False)
    sets = [fs.indices(int(i)) for i in sel]
    m, p = len(sets), tr.p
    L = st.ihvp.cholesky_factor
    print(f"N={tr.n}, p={p}, nnz={tr.S.nnz if tr.S is not None else 'dense'}, {m} sets (median size "
          f"{np.median([len(s) for s in sets]):.0f}), tol {st.tol}")

    def timed(f):
        t = time.perf_counter()
        out = f()
        return out, time.perf_counter() - t

    B = torch.randn(p, m, dtype=torch.float64)
    _, t64 = timed(lambda: torch.cholesky_solve(B, L))
    L32 = L.float()
    _, t32 = timed(lambda: torch.cholesky_solve(B.float(), L32).double())
    def inverse32():
        Li = torch.linalg.solve_triangular(L32, torch.eye(p, dtype=torch.float32), upper=False)
        return Li.T @ Li

    Hi32, t_inv = timed(inverse32)
    _, tg32 = timed(lambda: (Hi32 @ B.float()).double())
    _, tmv = timed(lambda: tr.rmatvec(torch.sigmoid(tr.matvec(B))))
    per = 1e3 / m
    print(f"per refit column: Cholesky solve f64 {t64 * per:.2f} ms, f32 {t32 * per:.2f} ms; explicit inverse "
          f"GEMM f32 {tg32 * per:.2f} ms (inverse built in {t_inv:.1f} s); sparse X~ W + X~^T R {tmv * per:.2f} ms")

    Y, _, C = _labels_and_weights(st, sets, "relabel")
    W0 = st.w[:, None] - torch.cholesky_solve(tr.rmatvec(C), L)
    W = W0.clone()
    trace = []
    for _ in range(10):
        G, _ = gradient(tr, Y, W, st.l2)
        trace.append(float(torch.linalg.vector_norm(G, dim=0).median()))
        W = W - torch.cholesky_solve(G, L)
    print("chord iteration (f64 Cholesky of H0), median gradient norm per iteration: "
          + " ".join(f"{g:.1e}" for g in trace))

    s0 = torch.sigmoid(tr.matvec(st.w[:, None]))
    d0 = s0 * (1 - s0)

    def nystrom(k, q=2):
        g = torch.Generator().manual_seed(0)
        Q = torch.linalg.qr(torch.randn(p, k + 16, dtype=torch.float64, generator=g))[0]
        for _ in range(q):
            Q = torch.linalg.qr(hvp(tr, d0.expand(-1, Q.shape[1]), Q, st.l2))[0]
        T = Q.T @ hvp(tr, d0.expand(-1, Q.shape[1]), Q, st.l2)
        ev, V = torch.linalg.eigh((T + T.T) / 2)
        U, ev = Q @ V[:, -k:], ev[-k:]
        coef = 1.0 / ev - 1.0 / st.l2
        return lambda R: R / st.l2 + U @ (coef[:, None] * (U.T @ R))

    variants = [("Cholesky f32 (cfdkit)", lambda: st.precond()),
                ("Cholesky f64", lambda: (lambda R: torch.cholesky_solve(R, L))),
                ("explicit f32 inverse (one GEMM)", lambda: (lambda R: (Hi32 @ R.float()).double()))]
    variants += [(f"Nystrom rank {k} + l2 diagonal", (lambda k=k: nystrom(k))) for k in args.ranks]
    for name, make in variants:
        pc, tb = timed(make)
        (Wr, info), tl = timed(lambda: lbfgs(tr, Y, W0, st.l2, tol=st.tol, max_iter=200, precond=pc))
        print(f"L-BFGS, {name}: build {tb:.1f} s, refits {tl:.1f} s ({tl * per:.1f} ms per refit), iterations "
              f"mean {info.iterations.mean():.1f} max {info.iterations.max()}, converged {info.converged.mean():.1%}")


if __name__ == "__main__":
    main()
