"""Exact retraining of many altered training sets at once.

Every found set is checked by *really* refitting the logistic regression with
that set's labels flipped (or its points removed): all sets of a block
become columns of one batched Newton iteration (:func:`cfdkit.linear.model.lbfgs`),
warm-started at the fitted weights plus the influence estimate of the change
(which is exactly the first Newton step), with the original Hessian's
Cholesky factor as L-BFGS's initial inverse Hessian when there is one, and
converged to the same gradient tolerance as the original fit.  Where the
influence start is worse than the fitted weights (a near-singular Hessian:
weakly regularized, nearly separable data) the refit starts from the fitted
weights, and refits L-BFGS leaves unconverged are finished by a globalized
(Levenberg-Marquardt damped, trust-region type) Newton method
(:func:`cfdkit.linear.model.newton_globalized`).  This is a real refit, not another
approximation: the result is the unique minimizer of the altered objective,
and a refit that does not reach the tolerance is reported as such
(``FitInfo.converged``), never as an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.arrays import DTYPE, Design
from .model import FitInfo, lbfgs, newton_globalized, objective_from_z


@dataclass
class FittedState:
    """Everything the scores, selection and retraining need from a fit."""

    train: Design
    y: torch.Tensor  # (n,) float64 0/1
    w: torch.Tensor  # (p,)
    l2: float
    ihvp: object  # fitted InverseHVP
    sigma: torch.Tensor  # (n,) training probabilities
    tol: float
    max_iter: int
    memory_budget: int
    # per-fit quantities of the sign certificates (cfdkit.linear.certify), computed once: "h" (n,) the
    # H0^{-1} norms of the training rows
    certificate_cache: dict = field(default_factory=dict, repr=False)

    def precond(self, explicit: bool = False):
        """Approximate ``H0^{-1}`` for the refits: the Cholesky factor in float32.

        It only steers the iteration (L-BFGS's initial inverse Hessian); every
        gradient, objective and convergence test stays float64, so the refit
        converges to the same float64 optimum at half the cost per application.

        ``explicit=True`` (many refits) applies the explicit inverse ``L^{-T} L^{-1}`` as one matrix
        product instead of two triangular solves, built once (``potri``, ~``2 p^3 / 3`` flops) and
        cached, when it fits the memory budget (:meth:`explicit_inverse_ok`); otherwise the triangular
        solves.  The inverse is stored in bfloat16 where the CPU multiplies bfloat16 natively (AVX-512
        BF16) and ``H0`` is well conditioned (condition estimate <= 1e5; on the hate-speech refits
        bfloat16 took the same iterations as float32 up to condition 4.6e5), else in float32.  Measured
        on the 2-core CPU (p = 5,001, 256 columns, 2026-11-28, quiet): 0.48 ms per column for the
        float32 triangular solves, 0.26 ms for the float32 product, 0.12 ms for the bfloat16 product,
        with the same L-BFGS iterations on the hate-speech refits (12.3 per refit at tol 1e-10) -- the
        precision of the steering does not limit the iteration there, the curvature change of the
        refit does.
        """
        L = self.ihvp.cholesky_factor
        if L is None:
            return None
        p = L.shape[0]
        if explicit and self.explicit_inverse_ok():
            if not hasattr(self, "_Hinv"):
                H = torch.cholesky_inverse(L.to(torch.float32))  # LAPACK potri: ~2 p^3 / 3 flops
                self._Hinv = H.to(torch.bfloat16) if self._bf16_ok() else H
            Hi = self._Hinv
            return lambda R: (Hi @ R.to(Hi.dtype)).to(DTYPE)
        if not hasattr(self, "_L32"):
            self._L32 = L.to(torch.float32)
        L32 = self._L32
        return lambda R: torch.cholesky_solve(R.to(torch.float32), L32).to(DTYPE)

    def explicit_inverse_ok(self) -> bool:
        """Whether :meth:`precond` can use the explicit inverse: a Cholesky factor, and three ``p x p``
        float32 matrices (the build's peak) within the memory budget."""
        L = self.ihvp.cholesky_factor
        return L is not None and 12 * L.shape[0] ** 2 <= self.memory_budget

    def _bf16_ok(self) -> bool:
        """Steer in bfloat16: a CPU with native bfloat16 products and a well-conditioned ``H0``."""
        if self.w.device.type != "cpu":
            return False
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        diag = getattr(self.ihvp, "fit_diagnostics_", None)
        cond = getattr(diag, "condition_estimate", None)
        return bool(native) and cond is not None and np.isfinite(cond) and cond <= 1e5

    def newton_precond(self):
        """The float64 Cholesky factor of ``H0`` as Newton-CG's preconditioner, when well conditioned.

        ``None`` (Jacobi) where ``H0`` is too badly conditioned (> 1e8) for its
        inverse to say much about the refit's Hessian, or with no factor.
        """
        L = self.ihvp.cholesky_factor
        diag = getattr(self.ihvp, "fit_diagnostics_", None)
        cond = getattr(diag, "condition_estimate", None)
        if L is None or cond is None or not np.isfinite(cond) or cond > 1e8:
            return None
        return lambda R: torch.cholesky_solve(R, L)


def _fit_terms(state: FittedState):
    """``X~ w_hat`` (n,), each training point's loss at ``w_hat`` (n,), and the objective ``R(w_hat)``
    (a float), computed once per state and cached (numpy copies for the per-set sums)."""
    if not hasattr(state, "_fit_terms"):
        z = state.train.matvec(state.w[:, None])[:, 0]
        loss = torch.logaddexp(torch.zeros((), dtype=DTYPE, device=z.device), z) - state.y * z
        F = float(loss.sum() + 0.5 * state.l2 * (state.w[:-1] ** 2).sum())
        state._fit_terms = (z, z.cpu().numpy(), loss.cpu().numpy(), F)
    return state._fit_terms


def _objective_at_fit(state: FittedState, sets, kind: str) -> torch.Tensor:
    """The altered objective at the fitted weights, (m,), from the fit's own terms in O(|set|) per set.

    Relabeling point ``i`` changes its loss ``log(1 + e^z) - y z`` by ``(2 y_i - 1) z_i``; removing it
    subtracts its loss.  Equal to a full pass over all ``n`` points up to round-off, without the sparse
    product and the pass; only compared with the start's objective to choose the start.
    """
    _, z, loss, F = _fit_terms(state)
    y = state.y.cpu().numpy()
    out = np.full(len(sets), F)
    for j, idx in enumerate(sets):
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size:
            out[j] += float(((2 * y[idx] - 1) * z[idx]).sum()) if kind == "relabel" else -float(loss[idx].sum())
    return torch.as_tensor(out, dtype=DTYPE, device=state.w.device)


# CPU: refits iterated in lock-step at most this many (n, m) float64 elements per work array (16 MiB)
_CPU_BLOCK_ELEMENTS = 1 << 21


def members_per_batch(state: FittedState) -> int:
    """Refits iterated in lock-step (one L-BFGS call): within the memory budget, at most 4,096, and on the
    CPU few enough that one ``(n, m)`` float64 work array stays near the last-level cache
    (``m <= 2**21 / n``, at least 64).

    The ``(n, m)`` arrays (margins, probabilities, losses) and the sparse products over them are
    memory-bound, while the explicit-inverse product per column barely gains beyond ~200 columns: on the
    2-core CPU (32 MiB L3; hate speech, n = 9,632, 1,071 sets, tol 1e-10, 2026-11-29) lock-step batches of
    764 columns took 10.5-13.6 s of L-BFGS, batches of 192-256 took 8.5-10.6 s (same iterations).
    """
    n, p = state.train.n, state.train.p
    per_member = 8 * (12 * n + 12 * p)
    bs = int(max(1, min(4096, state.memory_budget // per_member)))
    if state.w.device.type == "cpu":
        bs = min(bs, max(64, _CPU_BLOCK_ELEMENTS // max(n, 1)))
    return bs


def _labels_and_weights(state: FittedState, sets, kind: str):
    n, m = state.train.n, len(sets)
    Y = state.y[:, None].repeat(1, m)
    S = None if kind == "relabel" else torch.ones(n, m, dtype=DTYPE, device=Y.device)
    C = torch.zeros(n, m, dtype=DTYPE, device=Y.device)  # change of the gradient at w_hat
    for j, idx in enumerate(sets):
        if len(idx) == 0:
            continue
        it = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=Y.device)
        if kind == "relabel":
            Y[it, j] = 1 - Y[it, j]
            C[it, j] = 2 * state.y[it] - 1  # grad l_i = (2 y_i - 1) x~_i
        else:
            S[it, j] = 0.0
            C[it, j] = -(state.sigma[it] - state.y[it])  # removing subtracts grad L_i
    return Y, S, C


def one_class_sets(y: np.ndarray, sets, kind: str = "relabel") -> np.ndarray:
    """bool (m,): which sets would leave training data of one class (no finite optimum: refused).

    With one class, the unpenalized intercept runs to infinity and a "refit" would
    return ``P(y=1)`` near 0 or 1 that is an artefact of the iteration cap, not a model.
    ``y`` (n,) are the 0/1 training labels; ``kind`` "relabel" flips a set's labels,
    "remove" drops its points.
    """
    y = np.asarray(y, dtype=np.int64)
    n1, n = int(y.sum()), y.size
    out = np.zeros(len(sets), dtype=bool)
    for j, idx in enumerate(sets):
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            continue
        pos = int(y[idx].sum())
        if kind == "relabel":
            new1 = n1 + (idx.size - pos) - pos
            out[j] = new1 <= 0 or new1 >= n
        else:
            out[j] = (n1 - pos) <= 0 or (n - n1 - (idx.size - pos)) <= 0
    return out


def use_explicit_inverse(state: FittedState, m: int) -> bool:
    """Whether ``m`` refits pay for building the explicit inverse of ``H0`` (decided by ``m`` alone).

    The build (one float32 ``potri``, ~``2 p^3 / 3`` flops, 1.1 s at p = 5,001 on the 2-core CPU) is
    paid back after about ``p / 16`` refits of ~12 applications each (0.48 ms per column-application
    for the triangular solves against 0.12-0.26 ms for the product, p = 5,001).
    """
    return 16 * int(m) >= state.train.p


def refit_sets(state: FittedState, sets, kind: str = "relabel", progress: bool = False, desc: str = "retraining",
               starts: torch.Tensor | None = None, explicit_inverse: bool | None = None, question=None):
    """Retrain once per set; return the weights.

    Parameters
    ----------
    sets : list of np.ndarray[int64]
        Training indices to relabel (flip 0/1) or remove, one array per refit.
    kind : {"relabel", "remove"}
    starts : torch.Tensor (p, m), optional
        Warm starts: column ``j`` (when finite) is the converged refit of a *nearby* set (e.g. the set
        ``sets[j]`` plus one label, in the shrink of :mod:`cfdkit.linear.minimal`).  Such a column starts
        there instead of at the influence step from the fitted weights, whichever (or the fitted weights)
        has the lower altered objective; L-BFGS's first step from it is then the one-step (influence)
        correction from that nearby optimum.  Columns with NaN start as without ``starts``.  Only the
        start changes: every refit still converges to ``state.tol`` (or is reported unconverged).
    explicit_inverse : bool
        Steer L-BFGS with the explicit inverse of ``H0`` (:meth:`FittedState.precond`: one GEMM per
        application instead of two triangular solves, bfloat16 or float32), built once and cached on the
        state, which then also gives the influence start.  ``None`` (default): when
        :func:`use_explicit_inverse` says the ``m`` refits pay for its build.  :mod:`cfdkit.linear.minimal`
        passes ``True``; a caller splitting one job into chunks passes one choice to every chunk so the
        results do not depend on the split.
    question : cfdkit.linear.certify.RefitQuestion, optional
        Relabel refits only: one yes/no question per set (is a test row's prediction above the threshold
        at the optimum?).  A refit stops as soon as a sign certificate decides it
        (``info.certified``; its column of ``W`` is then the iterate, and the answer is in ``question``);
        the others converge as without it.

    Returns
    -------
    W : torch.Tensor (p, m)
    info : FitInfo
    """
    m = len(sets)
    bad = one_class_sets(state.y.cpu().numpy(), sets, kind)
    if bad.any():
        j = int(np.nonzero(bad)[0][0])
        raise ValueError(f"sets[{j}] ({'relabeling' if kind == 'relabel' else 'removing'} {len(sets[j])} points) "
                         f"would leave training data of one class ({int(bad.sum())} such sets): the refit has no "
                         "finite optimum (the unpenalized intercept diverges). Drop those sets "
                         "(cfdkit.linear.retrain.one_class_sets finds them).")
    p = state.train.p
    if starts is not None:
        if not isinstance(starts, torch.Tensor) or starts.dtype != DTYPE:
            raise TypeError(f"starts must be a float64 torch tensor of shape ({p}, {m}) (NaN columns: no warm start); "
                            f"got {type(starts).__name__}{' ' + str(starts.dtype) if isinstance(starts, torch.Tensor) else ''}.")
        if tuple(starts.shape) != (p, m):
            raise ValueError(f"starts must have shape ({p}, {m}) (one column per set); got {tuple(starts.shape)}.")
        starts = starts.to(state.w.device)
    W_all = torch.empty(p, m, dtype=DTYPE, device=state.w.device)
    gn, its, conv = np.empty(m), np.empty(m, dtype=np.int64), np.empty(m, dtype=bool)
    certd = np.zeros(m, dtype=bool)
    if question is not None and kind != "relabel":
        raise ValueError("question (sign certificates) is for kind='relabel' refits.")
    bs = members_per_batch(state)
    if explicit_inverse is None:
        explicit_inverse = use_explicit_inverse(state, m)
    pc = state.precond(explicit=bool(explicit_inverse))
    explicit = bool(explicit_inverse) and state.explicit_inverse_ok()
    block_starts = range(0, m, bs)
    for s in tqdm(block_starts, desc=desc, disable=not progress or m <= bs, leave=False):
        block = sets[s:s + bs]
        Y, S, C = _labels_and_weights(state, block, kind)
        Wh = state.w[:, None].expand(-1, len(block))
        f_hat = _objective_at_fit(state, block, kind)
        given = None if starts is None else starts[:, s:s + len(block)]
        has = (torch.zeros(len(block), dtype=torch.bool, device=Wh.device) if given is None
               else torch.isfinite(given).all(0))
        # start: w_hat + first-order (influence) change = the first Newton step from w_hat (columns
        # without a warm start only); where that step overshoots (a near-singular Hessian: weakly
        # regularized, nearly separable data) start from w_hat itself, whichever has the lower
        # altered objective
        W0 = Wh.clone()
        cold = torch.nonzero(~has).squeeze(1)
        if cold.numel():
            # the influence step; with the explicit inverse its one product (the start only steers too)
            Rc = state.train.rmatvec(C[:, cold])
            dW = pc(Rc) if explicit else state.ihvp.solve(Rc).x
            W0[:, cold] = state.w[:, None] - dW
        if given is not None and bool(has.any()):
            W0[:, has] = given[:, has]
        Z0 = state.train.matvec(W0)  # handed to L-BFGS with the objective: not computed twice
        f0 = objective_from_z(Z0, Y, W0, state.l2, S)
        worse = ~torch.isfinite(f0) | (f0 > f_hat)
        if bool(worse.any()):
            W0[:, worse] = state.w[:, None]
            Z0[:, worse] = _fit_terms(state)[0][:, None]
            f0[worse] = objective_from_z(Z0[:, worse], Y[:, worse], W0[:, worse], state.l2,
                                         None if S is None else S[:, worse])
        qv = None if question is None else question.subset(s, len(block))
        W, info = lbfgs(state.train, Y, W0, state.l2, tol=state.tol, max_iter=40, precond=pc, S=S, Z0=Z0, f0=f0,
                        question=qv)
        if not info.answered.all():
            # far-away refits (large sets, near-singular Hessians) or objective differences at round-off:
            # finish with the globalized (damped, trust-region type) Newton method
            rest = np.nonzero(~info.answered)[0]
            r = torch.as_tensor(rest, device=W.device)
            Wr, ir = newton_globalized(state.train, Y[:, r], W[:, r], state.l2, tol=state.tol,
                                       max_iter=max(state.max_iter, 200), precond=state.newton_precond(),
                                       S=None if S is None else S[:, r])
            W[:, r] = Wr
            info.grad_norm[rest], info.converged[rest] = ir.grad_norm, ir.converged
            info.iterations[rest] += ir.iterations
        W_all[:, s:s + len(block)] = W
        gn[s:s + len(block)] = info.grad_norm
        its[s:s + len(block)] = info.iterations
        conv[s:s + len(block)] = info.converged
        if info.certified is not None:
            certd[s:s + len(block)] = info.certified
    return W_all, FitInfo(gn, its, conv, None if question is None else certd)


def probabilities_after(state: FittedState, test: Design, rows: np.ndarray, W: torch.Tensor) -> np.ndarray:
    """``P(y=1)`` of test row ``rows[j]`` under weights ``W[:, j]``; (m,)."""
    if len(rows) == 0:
        return np.empty(0)
    r = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=W.device)
    Xr = test.dense_rows(r)  # (m, p)
    return torch.sigmoid((Xr * W.T).sum(1)).cpu().numpy()


def _prefix_probs(state: FittedState, Xt: Design, rows, sets, kind, progress, tau: float, certify: bool = True):
    """New ``P(y=1)`` of test row ``rows[j]`` after refit ``j`` and whether it is an answer; relabel refits stop
    once a sign certificate decides their side (the probability is then the midpoint of the proven interval)."""
    from .certify import relabel_question

    q = relabel_question(state, Xt, rows, tau) if certify and kind == "relabel" else None
    W, info = refit_sets(state, sets, kind, progress=progress, desc="minimizing", question=q)
    probs = probabilities_after(state, Xt, np.asarray(rows), W)
    if q is None:
        return probs, info.converged, np.zeros(len(sets), dtype=bool)
    cert = q.decided & ~info.converged
    probs[cert] = q.probabilities()[cert]
    return probs, info.converged | cert, cert


def minimal_prefix(state: FittedState, res, Xt: Design, flipped, new_prob, conv, max_expand=None, progress=False,
                   scan_limit: int = 64, certified=None):
    """Smallest flipping prefix ``k`` of each greedy order, with real refits, all rows in lock-step.

    ``res`` is a :class:`~cfdkit.linear.results.FlipSets`, ``Xt`` its test design, ``flipped``/``new_prob``/``conv``
    the verification of the full sets.  Where the full set does not flip, prefixes of the greedy order beyond
    ``S_t`` are tried by doubling up to ``max_expand``.  Bisection then finds *a* flipping prefix ``hi``; as
    flipping need not be monotone in ``k``, every shorter prefix is refit where ``hi <= scan_limit`` and the
    smallest flipping one is returned (``exact`` True: no shorter prefix of the order flips).  Where
    ``hi > scan_limit`` the answer is the bisection's, a flipping prefix that need not be the smallest
    (``exact`` False).  ``conv`` marks the rows with an answer (a converged refit or a sign certificate;
    ``certified`` the latter); relabel refits of the search stop once a sign certificate decides them, and the
    prefix returned gets one converged refit for its probability.  Rows whose refit (or any refit of their search) did not converge get
    ``verified_size = -1`` (unknown) and NaN.

    Returns
    -------
    verified_size : int64 (n_test,), verified_new_prob : float64 (n_test,), refits : int,
    exact : bool (n_test,)
    """
    from .scores import compute_scores
    from .selection import greedy_order

    n = len(res)
    orig = res.prob > res.threshold
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)  # smallest k known to flip (0 = none known)
    hi_prob = np.full(n, np.nan)
    found = res.size > 0
    unknown = found & ~conv
    hi[flipped] = res.size[flipped]
    hi_prob[flipped] = new_prob[flipped]
    lo[found & ~flipped] = res.size[found & ~flipped]
    refits = 0

    hi_cert = np.asarray(certified, dtype=bool).copy() if certified is not None else np.zeros(n, dtype=bool)
    hi_cert &= flipped

    def try_prefixes(cand, ks):
        """Refit with prefixes ``orders[i][:k]``; update lo/hi/unknown; True/False/None (unknown) per row."""
        probs, ok, ce = _prefix_probs(state, Xt, cand, [orders[i][:k] for i, k in zip(cand, ks)], res.kind,
                                      progress, res.threshold)
        out = []
        for i, k, pr, c, cc in zip(cand, ks, probs, ok, ce):
            if not c:
                unknown[i] = True
                out.append(None)
            elif (pr > res.threshold) != orig[i]:
                hi[i], hi_prob[i], hi_cert[i] = k, pr, cc
                out.append(True)
            else:
                lo[i] = k
                out.append(False)
        return out

    # orders beyond S_t are needed where the set did not flip (or for removal sets); compute lazily
    orders = {i: res.indices(i) for i in np.nonzero(found)[0]}
    need = np.nonzero(found & ~flipped & ~unknown)[0]
    if need.size:
        dev = state.w.device
        sig_t = torch.as_tensor(res.prob, dtype=DTYPE, device=dev)
        r = torch.as_tensor(need, device=dev)
        method = "ip_relabel" if res.kind == "relabel" else "ip_remove"
        eff, _ = compute_scores(method, train=state.train, y=state.y, sigma=state.sigma, ihvp=state.ihvp,
                                Xt=Xt.rows(r), sigma_t=sig_t[r], y_t=sig_t[r])
        for j, (idx, _e) in enumerate(greedy_order(eff, sig_t[r], res.threshold)):
            orders[int(need[j])] = idx
        # expand by doubling until a prefix flips or the helpful points run out
        active = list(need)
        while active:
            cand, ks = [], []
            for i in active:
                cap = len(orders[i]) if max_expand is None else min(len(orders[i]), max_expand)
                k = min(2 * lo[i], cap)
                if k > lo[i]:
                    cand.append(i)
                    ks.append(k)
            if not cand:
                break
            refits += len(cand)
            active = [i for i, flips in zip(cand, try_prefixes(cand, ks)) if flips is False]
    # bisection between lo (does not flip) and hi (flips)
    while True:
        cand = [i for i in range(n) if hi[i] > 0 and hi[i] - lo[i] > 1 and not unknown[i]]
        if not cand:
            break
        refits += len(cand)
        try_prefixes(cand, [(lo[i] + hi[i]) // 2 for i in cand])
    # flipping need not be monotone in k: scan every shorter prefix (where hi <= scan_limit) for the smallest
    exact = np.zeros(n, dtype=bool)
    scan = [i for i in range(n) if hi[i] > 0 and not unknown[i] and hi[i] <= scan_limit]
    cand, ks = [], []
    y_np = state.y.cpu().numpy()
    for i in scan:
        for k in range(1, int(hi[i])):
            if not one_class_sets(y_np, [orders[i][:k]], res.kind)[0]:
                cand.append(i)
                ks.append(k)
    if cand:
        refits += len(cand)
        probs, ok, ce = _prefix_probs(state, Xt, cand, [orders[i][:k] for i, k in zip(cand, ks)], res.kind,
                                      progress, res.threshold)
        for i, k, pr, c, cc in zip(cand, ks, probs, ok, ce):
            if not c:
                unknown[i] = True
            elif (pr > res.threshold) != orig[i] and k < hi[i]:
                hi[i], hi_prob[i], hi_cert[i] = k, pr, cc
    # the prefix a user is shown gets one converged refit, so its probability is a number, not an interval
    show = np.nonzero(hi_cert & (hi > 0) & ~unknown)[0]
    if show.size:
        refits += show.size
        probs, ok, _ = _prefix_probs(state, Xt, show, [orders[i][:hi[i]] for i in show], res.kind, progress,
                                     res.threshold, certify=False)
        hi_prob[show] = np.where(ok, probs, np.nan)
        unknown[show[~ok]] = True
    exact[scan] = True
    exact &= ~unknown
    vs = np.where(unknown, -1, hi)
    vp = np.where((hi > 0) & ~unknown, hi_prob, np.nan)
    if unknown.any():
        import warnings

        warnings.warn(f"minimize: {int(unknown.sum())} rows had a refit that did not converge; their "
                      "verified_size is -1 (unknown).", RuntimeWarning, stacklevel=3)
    return vs, vp, refits, exact
