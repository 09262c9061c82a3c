"""Verified minimal relabel sets: the smallest label changes that *really* flip a prediction.

Algorithm 1 (:mod:`cfdkit.linear.selection`) answers with a linearized estimate.  The
search here answers with sets that are checked by exact refits of the audited L2
logistic regression, and with a certified lower bound on how small any flipping set
can be.  Every refit goes through :func:`cfdkit.linear.retrain.refit_sets` (batched
L-BFGS, globalized Newton finish, same gradient tolerance as the fit); a set counts
only when its refit converged and the refitted model's prediction differs.

Search (all test rows at once; every refit made for one row is read by every row,
since one refit gives the new probability of every test point)

1. *Algorithm 1's sets* — refit once per row (the estimate, as a candidate).
2. *Exact singles* — one refit per training point (when ``n_train <= singles_limit``;
   otherwise the ``single_candidates`` strongest by IP-relabel of every row): the exact
   effect of each single relabel on every test point.  Rows that one label flips are
   answered exactly (size 1).  With all singles refit, rows that no single label flips
   get a lower bound of 2.
3. *Pairs* of the strongest candidates (by exact single effect, else by IP-relabel)
   for the rows still without a set of size <= 2; all pairs when
   ``n_train (n_train - 1) / 2 <= pairs_limit`` (then rows without a flipping pair get
   a lower bound of 3).
4. *Re-linearized greedy* (the relabeling analogue of the iterative removal
   algorithm) for rows still unanswered, including rows Algorithm 1 has no set for:
   relabel part of the greedy order, refit, recompute the IP-relabel effects at the
   refitted optimum ``w_S`` (``-s'_t(w_S) (2 y^S_i - 1) x~_t^T H(w_S)^{-1} x~_i``,
   one batched preconditioned CG solve per row), add the next points, repeat until the
   prediction flips, ``max_size`` is reached, no point helps, or ``max_rounds``.
   Nothing assumes that flipping is monotone in the set size.
4b. *Simple orderings* — for every row, the training points with its predicted label nearest first, and
   the IP-relabel order at the fit: a short flipping prefix of each (doubling, then bisection), so the shrink
   starts from a set no larger than such an ordering finds.
5. *Shrink* every found set to a **1-minimal** set: a set ``S`` that flips, such
   that for every ``j`` in ``S`` the refit with ``S \\ {j}`` relabeled does not flip
   (each checked by a refit: certified or converged).  Chunks are dropped first (delta debugging),
   then single labels, always keeping the set flipping.
6. *Triples* of the strongest candidates for rows whose set has 4 or more labels.

Every refit made for one row answers that row's question only (except the exhaustive phases, every single
or every pair, which converge and answer every row): a row's answer does not depend on which other rows are
searched in the same call.  Each such refit stops as soon as a sign certificate
(:mod:`cfdkit.linear.certify`) proves on which side of the threshold the row's prediction lands; the set
finally reported gets one converged refit for its probability (``decided_by``).

Returned sets are 1-minimal where ``one_minimal`` is True (every leave-one-out refit
converged and none flips); not necessarily globally minimal (the problem is
NP-complete in general; Gupta et al. 2025).

Lower bound (certificate)
-------------------------
Relabeling a set ``S`` changes the objective ``R(w) = sum_i L_i(w) + l2/2 ||w_{1:d}||^2``
(intercept unpenalized) by a *linear* term: ``L(x, 1-y; w) - L(x, y; w) = (2y - 1) x~.w``, so
``R_S(w) = R(w) + g_S.w`` with ``g_S = sum_{i in S} (2 y_i - 1) x~_i``; at the fitted
optimum ``w^``, ``grad R_S(w^) = g_S``.  Write ``H0 = H(w^)`` (its Cholesky factor is
the audit's), ``h_i = sqrt(x~_i^T H0^{-1} x~_i)`` for training and test rows, and
``E_r = {w : ||w - w^||_{H0} <= r}``.

* Curvature on ``E_r``.  In ``E_r`` every logit moves by at most
  ``|x~_i.(w - w^)| <= r h_i``, so ``sigma'(z_i(w)) >= d_i(r) = min(sigma'(z_i - r h_i),
  sigma'(z_i + r h_i))`` (``sigma'`` is unimodal), and with
  ``c(r) = min_i d_i(r) / sigma'(z_i) <= 1``:
  ``H(w) = X~^T D(w) X~ + l2 I' >= c(r) (X~^T D(w^) X~ + l2 I') = c(r) H0``.
  The intercept needs no penalty here: its curvature comes from the data term of
  ``H0``, which is positive definite whenever the training Hessian is (any data with
  both classes and an intercept column).
* Confinement.  Along any ray ``w^ + s u`` (``||u||_{H0} = 1``),
  ``d/ds R_S >= -||g_S||_{H0^{-1}} + c(r) s``; if ``||g_S||_{H0^{-1}} < c(r) r`` the
  slope is positive on the boundary of ``E_r``, so the (unique) minimizer ``w_S`` of
  ``R_S`` lies inside ``E_r``.
* Logit change.  ``0 = grad R_S(w_S) = g_S + A (w_S - w^)`` with ``A`` the Hessian averaged
  over the segment (inside ``E_r``), ``c(r) H0 <= A <= C(r) H0`` where ``C(r)`` is the largest
  ``sigma'(z) / sigma'(z_i)`` over ``|z - z_i| <= r h_i`` (``sigma'`` peaks at 0).  So
  ``A^{-1} = alpha H0^{-1} + E`` with ``alpha = (1/c + 1/C) / 2`` and ``||H0^{1/2} E H0^{1/2}|| <= beta =
  (1/c - 1/C) / 2``, and the move of the test logit towards the flip is at most
  ``alpha sum_{j in S} push_tj + beta h_t ||g_S||_{H0^{-1}}`` with
  ``push_tj = -(2 y_j - 1) x~_t^T H0^{-1} x~_j`` signed towards the flip (the linearized effect of
  relabeling ``j``; Cauchy-Schwarz in the ``H0`` geometry for the rest, as in :mod:`cfdkit.linear.certify`).
* Any ``|S| = k``: ``||g_S||_{H0^{-1}} <= G_k`` = the sum of the ``k`` largest ``h_i``, and the pushes of
  ``S`` sum to at most ``P_k(t)``, the sum of row ``t``'s ``k`` largest positive pushes.

So for each ``k`` we take the smallest ``r`` on a grid with ``r c(r) > G_k`` and bound the move of
``k`` labels by ``alpha_k P_k(t) + beta_k h_t G_k`` (never more than the plain ``h_t G_k / c(r)``, since
``P_k(t) <= h_t G_k``).  A flip needs a move of at least ``|z_t - logit(tau)|``, so ``lower_bound`` is the
smallest ``k`` whose bound reaches it (with a relative ``1e-9`` of slack).  It is raised to 2 (3) where every
single (pair) was refit and none flips (an exhaustive certificate).  ``lower_bound = 1`` — no certificate —
where (a) the ``k = 1`` bound already allows a flip, (b) no grid radius satisfies the confinement
condition, or (c) no exact ``H0^{-1}`` is at hand (the audit's solver is not Cholesky and ``p > 4096``).
The certificate is
for the exact optima; refits stop at the gradient tolerance, which moves logits by
far less than the 1e-9 slack for the tolerances cfdkit uses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from ..core.arrays import DTYPE, Design
from ..core.solvers import batched_pcg
from .model import hvp, penalty_mask
from .certify import certificate, log_curvature, prepare_rows, relabel_question, train_h_norms
from .results import MinimalResult
from .retrain import FittedState, one_class_sets, refit_sets
from .search import Stage, run_stages

__all__ = ["MinimalSets", "SearchFields", "minimal_search", "lower_bounds"]


# ----------------------------------------------------------------------------- result
@dataclass
class MinimalSets(MinimalResult):
    """Verified (refit-checked) minimal relabel sets for every test row.

    Attributes
    ----------
    threshold : float
    prob : float64 (n_test,) — ``P(y=1)`` before any change
    size : int64 (n_test,) — size of the set found; 0 where none was found
    status : array of str (n_test,) — ``"verified"`` (an exact refit flips the prediction: converged, or
        proven by a sign certificate; see ``decided_by``) or ``"not_found"``
    new_prob : float64 (n_test,) — ``P(y=1)`` after relabeling the set and refitting; NaN where not found
    lower_bound : int64 (n_test,) — certified: no relabeling of fewer labels flips the prediction
        (see :mod:`cfdkit.linear.minimal` for the derivation; 1 where no certificate holds)
    estimated_size : int64 (n_test,) — Algorithm 1's ``|S_t|`` (0 = no set)
    one_minimal : bool (n_test,) — the set is 1-minimal: every leave-one-out refit converged and none flips
    offsets : int64 (n_test + 1,), flat_indices : int64 — ``indices(i)`` (ascending); flat_new_labels : int64 —
        ``new_labels(i)``, ``1 - y`` of each point
    refits : int — refits made; seconds : float; timings : dict — seconds per search phase
    fingerprint : str — the fit fingerprint of the audit
    decided_by : array of str (n_test,) — how the found set's flip is known: ``"converged"`` (a refit to
        ``tol``; ``new_prob`` is its probability) or ``"certified"`` (a sign certificate proved it and the
        confirming refit did not converge; ``new_prob`` is a point of the proven interval); ``""`` where none
    refit_stats : dict — ``refits_certified`` (stopped by a sign certificate), ``refits_converged``,
        ``refits_undecided`` (neither: never counted as an answer), ``iterations`` (L-BFGS/Newton, summed),
        ``certificate_checks`` (exact checks: one float64 triangular solve each), ``decided_at_start`` (refits
        answered at their warm start, with no iteration); with a warm start at the refit of the set a subset was cut from,
        this is the leave-one-out question decided from that set's own refit)
    """

    threshold: float
    prob: np.ndarray
    size: np.ndarray
    status: np.ndarray
    new_prob: np.ndarray
    lower_bound: np.ndarray
    estimated_size: np.ndarray
    one_minimal: np.ndarray
    offsets: np.ndarray
    flat_indices: np.ndarray
    refits: int = 0
    seconds: float = 0.0
    fingerprint: str | None = None
    X_test: object = field(default=None, repr=False)
    timings: dict = field(default_factory=dict)
    decided_by: np.ndarray | None = None
    refit_stats: dict = field(default_factory=dict)
    flat_new_labels: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per test point: ``test_index``, ``prob``, ``predicted_label``, ``estimated_size`` (Algorithm 1's
        set), then the minimal set's columns (:data:`cfdkit.linear.results.MINIMAL_COLUMNS`): ``minimal_size``,
        ``minimal_status``, ``lower_bound``, ``minimal_new_prob``, ``minimal_decided_by``, ``one_minimal``,
        ``proven_minimal``, ``minimal_indices`` -- the names the ``sets.csv`` of ``cfdkit audit`` uses."""
        return pd.DataFrame({
            "test_index": np.arange(len(self)),
            "prob": self.prob,
            "predicted_label": (self.prob > self.threshold).astype(np.int64),
            "estimated_size": self.estimated_size,
            "minimal_size": self.size,
            "minimal_status": self.status,
            "lower_bound": self.lower_bound,
            "minimal_new_prob": self.new_prob,
            "minimal_decided_by": self.decided_by if self.decided_by is not None
            else np.where(self.found, "converged", ""),
            "one_minimal": self.one_minimal,
            "proven_minimal": self.proven_minimal,
            "minimal_indices": [self.indices(i).tolist() for i in range(len(self))],
        })


# ----------------------------------------------------------------------------- lower bound
def lower_bounds(state: FittedState, Xt: Design, threshold: float, k_max: int | None = None) -> np.ndarray:
    """Certified lower bound on the number of relabels that can flip each test row (see the module docstring).

    Returns int64 (n_test,), at least 1; ``k_max + 1`` caps rows whose bound exceeds ``k_max``.
    """
    n = state.train.n
    k_max = n if k_max is None else min(int(k_max), n)
    cert = certificate(state)
    if cert is None:
        return np.ones(Xt.n, dtype=np.int64)
    h_tr = train_h_norms(state)
    Xq = Xt.dense_rows().to(DTYPE)
    V = torch.cholesky_solve(Xq.T.contiguous(), cert.L)  # (p, n_test): H0^{-1} x~_t
    h_t = torch.sqrt(torch.clamp((Xq.T * V).sum(0), min=0.0)).cpu().numpy()
    z = state.train.matvec(state.w[:, None])[:, 0]
    ls0 = log_curvature(z)
    hmax = float(h_tr.max())
    radii = torch.logspace(-6, math.log10(60.0), 400, dtype=DTYPE, device=z.device) / max(hmax, 1e-300)
    c = torch.empty_like(radii)
    Cu = torch.empty_like(radii)
    for j in range(0, radii.numel(), 50):
        r = radii[j:j + 50][None, :]
        lo_z, hi_z = z[:, None] - r * h_tr[:, None], z[:, None] + r * h_tr[:, None]
        d = torch.minimum(log_curvature(lo_z), log_curvature(hi_z)) - ls0[:, None]
        c[j:j + 50] = torch.exp(d.min(0).values)
        # sigma' is unimodal with its peak at 0: its largest value on [lo_z, hi_z]
        peak = torch.where((lo_z <= 0) & (hi_z >= 0), torch.full_like(lo_z, math.log(0.25)),
                           torch.maximum(log_curvature(lo_z), log_curvature(hi_z)))
        Cu[j:j + 50] = torch.exp((peak - ls0[:, None]).max(0).values)
    rc = (radii * c).cpu().numpy()
    c, Cu = c.cpu().numpy(), Cu.cpu().numpy()
    G = np.cumsum(np.sort(h_tr.cpu().numpy())[::-1][:k_max])  # G_k, k = 1..k_max
    run = np.maximum.accumulate(rc)
    j = np.searchsorted(run, G, side="right")  # first grid radius with r c(r) > G_k
    ok = j < rc.size
    alpha = np.full(k_max, np.inf)
    beta = np.full(k_max, np.inf)
    jj = j[ok]
    alpha[ok] = 0.5 * (1.0 / c[jj] + 1.0 / Cu[jj])
    beta[ok] = 0.5 * (1.0 / c[jj] - 1.0 / Cu[jj])
    # a bound for k also bounds every smaller k: keep the coefficients non-decreasing in k
    alpha, beta = np.maximum.accumulate(alpha), np.maximum.accumulate(beta)
    zt = Xt.matvec(state.w[:, None])[:, 0].cpu().numpy()
    theta = math.log(threshold / (1 - threshold))
    gap = np.abs(zt - theta)
    up = np.where(zt <= theta, 1.0, -1.0)  # the direction the logit must move
    # push of relabeling j on row t towards the flip, linearized at the fit: -(2 y_j - 1) x~_t^T H0^{-1} x~_j
    K = state.train.matvec(V).cpu().numpy()  # (n, n_test)
    s_j = (2 * state.y.cpu().numpy() - 1)[:, None]
    push = -s_j * K * up[None, :]
    first = np.full(Xt.n, k_max + 1, dtype=np.int64)
    for t in range(Xt.n):
        pt = np.sort(push[:, t])[::-1][:k_max]
        Pk = np.maximum.accumulate(np.cumsum(np.maximum(pt, 0.0)))  # best sum of <= k pushes
        with np.errstate(invalid="ignore"):
            reach = np.where(np.isfinite(alpha), alpha * Pk + beta * h_t[t] * G, np.inf)  # largest move of k labels
        hit = np.nonzero(reach * (1 + 1e-9) + 1e-12 >= gap[t])[0]
        if hit.size:
            first[t] = hit[0] + 1
    return first


# ----------------------------------------------------------------------------- search
class _Pool:
    """Refits sets (batched) and records, for every test row, the smallest flipping set seen."""

    def __init__(self, state: FittedState, Xt: Design, threshold: float, max_size: int, bar):
        self.state, self.Xt, self.tau = state, Xt, threshold
        self.y_np = state.y.cpu().numpy().astype(np.int64)
        self.prob = torch.sigmoid(Xt.matvec(state.w[:, None])[:, 0]).cpu().numpy()
        self.orig = self.prob > threshold
        n = Xt.n
        self.best_size = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        self.best_set: list = [None] * n
        self.best_prob = np.full(n, np.nan)
        self.max_size = max_size
        self.refits = 0
        self.bar = bar
        self.row_counts = np.ones(Xt.n, dtype=np.int64)  # test rows each row stands for (the bar's steps)
        self.phase = ""  # shown beside the bar with the refits made, so it moves while rows are in flight
        self.settled = np.zeros(n, dtype=bool)
        # converged weights of each row's best set: warm starts for the refits of its subsets (shrink)
        # and supersets (greedy); kept when they fit the memory budget (p * n_test float64)
        self.store_w = 8 * state.train.p * n <= state.memory_budget
        self.best_w: dict = {}
        self.kept: dict = {}
        # sign certificates (cfdkit.linear.certify): a refit asked about its owner row stops once its side of
        # the threshold is proven; None where no exact H0^{-1} is at hand (every refit converges)
        self.prep = prepare_rows(state, Xt)
        self.best_cert = np.zeros(n, dtype=bool)  # the best set's flip was proven by a certificate only
        self.n_certified = 0
        self.n_converged = 0
        self.n_undecided = 0
        self.iterations = 0
        self.checks = 0  # exact certificate checks (one float64 triangular solve each)
        self.iters0 = 0  # refits decided at their start (no iteration)

    def valid(self, sets, *others):
        """Drop the sets that would leave one class (and the matching entries of ``others``)."""
        bad = one_class_sets(self.y_np, sets, "relabel")
        keep = [j for j in range(len(sets)) if not bad[j]]
        return ([sets[j] for j in keep],) + tuple([o[j] for j in keep] for o in others)

    def refit(self, sets, owners=None, offer: bool = True, keep_w: bool = False, chunk: int = 2048, out_P=None,
              starts=None, keep: str | None = None):
        """Refit ``sets`` (all valid: see :meth:`valid`) in chunks.

        With ``owners`` (one test row per set) each refit answers its owner's question only: it stops once a
        sign certificate proves on which side of the threshold the owner's prediction lands, and is offered
        to its owner alone (so a row's answer never depends on the other rows searched in the same call).
        Without ``owners`` (the exhaustive phases: every single, every pair) each refit converges and is
        offered to every test row (``offer``), and ``out_P`` (n_test, m) receives every row's probability.

        ``starts`` (optional, one per set): the converged weights (p,) of a nearby set, or None — warm
        starts (see :func:`cfdkit.linear.retrain.refit_sets`).  ``keep`` ("first" or "best", with
        ``owners``): afterwards ``self.kept[owner] = (j, w_j)`` for the first flipping answered refit of
        each owner, or the one farthest from the threshold (the first of equals), with its weights.

        Returns (p_owner (m,) — the new probability of test row ``owners[j]`` under refit ``j``, a point of
        the proven interval where a certificate decided (None without owners), answered (m,) — converged or
        certified, W (p, m) or None).
        """
        m = len(sets)
        conv = np.zeros(m, dtype=bool)
        certd = np.zeros(m, dtype=bool)
        p_own = None if owners is None else np.full(m, np.nan)
        Ws = [] if keep_w else None
        self.kept = {}
        for s in range(0, m, chunk):
            block = sets[s:s + chunk]
            W0 = None
            if starts is not None and any(w is not None for w in starts[s:s + chunk]):
                W0 = torch.full((self.state.train.p, len(block)), float("nan"), dtype=DTYPE, device=self.state.w.device)
                for j, w in enumerate(starts[s:s + chunk]):
                    if w is not None:
                        W0[:, j] = w
            q = None
            if owners is not None and self.prep is not None:
                q = relabel_question(self.state, self.Xt, np.asarray(owners[s:s + len(block)], dtype=np.int64),
                                     self.tau, prepared=self.prep)
            W, info = refit_sets(self.state, block, "relabel", starts=W0, explicit_inverse=True, question=q)
            self.refits += len(block)
            self.iterations += int(info.iterations.sum())
            self.checks += 0 if q is None else q.checks
            self.iters0 += int((info.iterations == 0).sum())
            cb = np.zeros(len(block), dtype=bool) if q is None else (q.decided & ~info.converged)
            self.n_converged += int(info.converged.sum())
            self.n_certified += int(cb.sum())
            self.n_undecided += int((~info.converged & ~cb).sum())
            self.bar.set_postfix_str(f"{self.phase}: {self.refits:,} refits", refresh=True)
            conv[s:s + len(block)] = info.converged | cb
            certd[s:s + len(block)] = cb
            if owners is None and (offer or out_P is not None):
                P = torch.sigmoid(self.Xt.matvec(W)).cpu().numpy()
                if offer:
                    self.offer(P, info.converged, block, W)
                if out_P is not None:
                    out_P[:, s:s + len(block)] = P
            if owners is not None:
                r = torch.as_tensor(np.asarray(owners[s:s + len(block)], dtype=np.int64), device=W.device)
                pb = torch.sigmoid((self.Xt.dense_rows(r) * W.T).sum(1)).cpu().numpy()
                if q is not None:
                    pb[cb] = q.probabilities()[cb]
                p_own[s:s + len(block)] = pb
                for jj in range(len(block)):
                    j, t = s + jj, int(owners[s + jj])
                    if not (conv[j] and self.flips(t, p_own[j])):
                        continue
                    if offer and len(block[jj]) < self.best_size[t] and len(block[jj]) <= self.max_size:
                        self.record(t, block[jj], p_own[j], W[:, jj], certified=bool(cb[jj]))
                    if keep is not None:
                        old = self.kept.get(t)
                        if old is None or (keep == "best" and abs(p_own[j] - self.tau) > abs(p_own[old[0]] - self.tau)):
                            self.kept[t] = (j, W[:, jj].clone())
            if keep_w:
                Ws.append(W)
        W = torch.cat(Ws, 1) if keep_w and Ws else None
        self.last_certified = certd
        return p_own, conv, W

    def snapshot(self, t=None):
        """The best-set record of row ``t`` (a tuple), or of every row (arrays and dicts copied)."""
        if t is None:
            return (self.best_size.copy(), list(self.best_set), self.best_prob.copy(), self.best_cert.copy(),
                    dict(self.best_w))
        return (int(self.best_size[t]), self.best_set[t], float(self.best_prob[t]), bool(self.best_cert[t]),
                self.best_w.get(t))

    def restore(self, snap, t):
        """Row ``t``'s record from a whole-pool :meth:`snapshot`."""
        self.restore_row((snap[0][t], snap[1][t], snap[2][t], snap[3][t], snap[4].get(t)), t)

    def restore_row(self, rec, t):
        self.best_size[t], self.best_set[t], self.best_prob[t], self.best_cert[t] = rec[0], rec[1], rec[2], rec[3]
        if rec[4] is None:
            self.best_w.pop(t, None)
        else:
            self.best_w[t] = rec[4]

    def flips(self, t, p) -> bool:
        return bool((p > self.tau) != self.orig[t])

    def record(self, t, s, p, w=None, certified: bool = False):
        self.best_size[t], self.best_set[t], self.best_prob[t] = len(s), np.sort(np.asarray(s, dtype=np.int64)), p
        self.best_cert[t] = certified
        if self.store_w and w is not None:
            self.best_w[t] = w.clone()
        else:
            self.best_w.pop(t, None)

    def offer(self, P, conv, sets, W=None, rows=None):
        """Record flipping sets for ``rows`` (default all) from refits ``P`` (n_test, m)."""
        if P.shape[1] == 0:
            return
        sizes = np.array([len(s) for s in sets], dtype=np.int64)
        R = np.arange(self.Xt.n) if rows is None else np.asarray(rows, dtype=np.int64)
        if R.size == 0:
            return
        Pr = P[R]
        flips = ((Pr > self.tau) != self.orig[R][:, None]) & conv[None, :] & (sizes[None, :] <= self.max_size)
        if not flips.any():
            return
        margin = np.abs(Pr - self.tau)
        cost = np.where(flips, sizes[None, :] - margin * 1e-3, np.inf)  # smaller size, then larger margin
        j = cost.argmin(1)
        has = flips[np.arange(R.size), j]
        for r, jj, ok in zip(R, j, has):
            if ok and sizes[jj] < self.best_size[r]:
                self.record(r, sets[jj], P[r, jj], None if W is None else W[:, jj])

    def found(self):
        return self.best_size <= self.max_size

    def tick(self, done_mask):
        new = done_mask & ~self.settled
        if new.any():
            self.bar.update(int(self.row_counts[new].sum()))
            self.settled |= new


def _benefit_from_probs(P_single: np.ndarray, prob: np.ndarray, orig: np.ndarray) -> np.ndarray:
    """Benefit (toward the flip) of each single relabel, (n_test, n_train)."""
    d = P_single - prob[:, None]
    return np.where(orig[:, None], -d, d)


def _relinearized_benefits(state: FittedState, Xt: Design, rows, sets, W, orig, cg_maxiter=200):
    """IP-relabel benefits at the refitted optima ``W[:, j]`` (labels relabeled by ``sets[j]``) for test ``rows[j]``.

    Returns benefits (m, n_train) (members of the set get -inf) and the current probabilities (m,).
    """
    train = state.train
    dev = W.device
    r = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=dev)
    xt = Xt.dense_rows(r).T.contiguous()  # (p, m)
    Z = train.matvec(W)
    S = torch.sigmoid(Z)
    D = S * (1 - S)
    steer = state.precond(explicit=True)  # H0^{-1} (bfloat16/float32): preconditions only, CG stays float64
    if steer is not None:
        def pc(R, idx):
            return steer(R)
    else:
        jac = 1.0 / (train.rmatvec_sq(D) + state.l2 * penalty_mask(train.p, dev))

        def pc(R, idx):
            return R * jac[:, idx]

    V, _ = batched_pcg(lambda V, idx: hvp(train, D[:, idx], V, state.l2), xt, pc, 1e-8, cg_maxiter)
    K = train.matvec(V)  # (n, m): x~_i . H_S^{-1} x~_t
    pt = torch.sigmoid((xt * W).sum(0))
    Y = state.y[:, None].repeat(1, len(sets))
    for j, s in enumerate(sets):
        if len(s):
            Y[torch.as_tensor(s, device=dev), j] = 1 - Y[torch.as_tensor(s, device=dev), j]
    eff = -(pt * (1 - pt))[None, :] * (2 * Y - 1) * K  # (n, m) change of P(y_t=1) per relabel
    ben = torch.where(torch.as_tensor(orig, device=dev)[None, :], -eff, eff).T.contiguous().cpu().numpy()
    for j, s in enumerate(sets):
        ben[j, np.asarray(s, dtype=np.int64)] = -np.inf
    return ben, pt.cpu().numpy()


def _simple_orders(pool: _Pool, benefit: np.ndarray, kinds) -> dict:
    """``{row: [order, ...]}``: training indices in the orders of ``kinds`` ("distance", "ip") for every test row.

    "distance": the training points whose label is the row's predicted label (relabeling them pushes the other
    way), nearest first in Euclidean distance of the features; "ip": the points whose effect on the row
    (``benefit`` (n_test, n): exact single refits where made, else IP-relabel at the fit) moves the prediction
    towards the flip, strongest first (Algorithm 1's order, not cut where its estimate stops).
    """
    tr = pool.state.train
    y = pool.y_np
    n_test = pool.Xt.n
    out = {t: [] for t in range(n_test)}
    if "distance" in kinds:
        Xq = pool.Xt.dense_rows().to(DTYPE)  # (n_test, p)
        K = tr.matvec(Xq.T.contiguous()).cpu().numpy()  # (n, n_test): x~_j . x~_t
        sq = _row_sq_norms(tr)
        for t in range(n_test):
            cand = np.nonzero(y == int(pool.orig[t]))[0]
            d2 = sq[cand] - 2 * K[cand, t]  # ||x_j - x_t||^2 - ||x_t||^2 (the same for every candidate)
            out[t].append(cand[np.argsort(d2, kind="stable")])
    if "ip" in kinds:
        for t in range(n_test):
            b = benefit[t]
            order = np.argsort(-b, kind="stable")
            out[t].append(order[b[order] > 0].astype(np.int64))
    return out


def _row_sq_norms(design: Design) -> np.ndarray:
    """``||x~_j||^2`` for every row (n,)."""
    A = design.to_plain()
    if sp.issparse(A):
        return np.asarray(A.multiply(A).sum(1)).ravel() + 1.0
    return (np.asarray(A) ** 2).sum(1) + 1.0


def _ordering_prefixes(pool: _Pool, orders: dict, max_rounds: int = 64) -> None:
    """For every row and order, look for a flipping prefix shorter than the row's best set: doubling
    (1, 2, 4, ...) until a prefix flips, then bisection between the longest prefix known not to flip and the
    shortest known to flip.  Every probe is a refit answering that row's question alone (certified where
    possible); a flipping one smaller than the row's best set is recorded.  Flipping need not be monotone in
    the prefix length, so this finds *a* short flipping prefix, not always the shortest.  At most
    ``max_rounds`` rounds of batched refits."""
    runs = [[t, o, 0, 0, 1] for t, ords in orders.items() for o in ords if len(o)]  # row, order, lo, hi, next k
    for _ in range(max_rounds):
        cand, own, idx = [], [], []
        for i, (t, o, lo, hi, k) in enumerate(runs):
            cap = min(len(o), int(pool.best_size[t]) - 1, pool.max_size)
            if hi == 0:
                kk = min(k, cap)
                if kk <= lo:
                    continue  # nothing shorter than the best set left to try
            else:
                if hi - lo <= 1:
                    continue
                kk = (lo + hi) // 2
            cand.append(np.asarray(o[:kk], dtype=np.int64))
            own.append(t)
            idx.append(i)
        cand, own, idx = pool.valid(cand, own, idx)
        if not cand:
            break
        p, ans, _ = pool.refit(cand, own)
        for i, c, pj, aj in zip(idx, cand, p, ans):
            r = runs[i]
            kk = len(c)
            if not aj:
                r[2] = r[3] = len(r[1])  # no answer: stop this order
            elif pool.flips(r[0], pj):
                r[3] = kk
            else:
                r[2], r[4] = kk, 2 * kk


def _weakest_first(pool: _Pool, cur: dict) -> dict:
    """Each row's set ordered by how much its labels push the prediction towards the flip, least first.

    The push of label ``j`` on test row ``t`` is the linearized change of ``t``'s margin from relabeling
    ``j``: ``(1 - 2 y_j) x~_t^T H0^{-1} x~_j``, signed towards the flip.  Only the order of the
    delta-debugging chunks depends on it; every accepted step is still a converged refit that flips.
    Sets of <= 8 labels (no chunk phase) are returned as they are.
    """
    big = [r for r, S in cur.items() if len(S) > 8]
    if not big:
        return cur
    st = pool.state
    rows = torch.as_tensor(np.asarray(big, dtype=np.int64), device=st.w.device)
    Xr = pool.Xt.dense_rows(rows).T.contiguous()  # (p, k)
    pc = st.precond(explicit=True)
    V = pc(Xr) if pc is not None else st.ihvp.solve(Xr).x  # H0^{-1} x~_t per row
    out = dict(cur)
    for c, r in enumerate(big):
        S = np.asarray(cur[r], dtype=np.int64)
        it = torch.as_tensor(S, device=st.w.device)
        e = (st.train.dense_rows(it) @ V[:, c]).cpu().numpy() * (1 - 2 * pool.y_np[S])
        push = -e if pool.orig[r] else e  # towards the flip: down for a positive prediction
        out[r] = S[np.argsort(push, kind="stable")]
    return out


def _shrink(pool: _Pool, rows, finish=None):
    """Shrink the best sets of ``rows`` to 1-minimal sets; returns bool (n_test,) one_minimal.

    Every accepted step keeps the set flipping (a converged refit); a set is 1-minimal when the
    refits of all its leave-one-out subsets converged and none flips (a subset that would leave
    one class has no model and counts as not flipping).  Each subset's refit starts from the
    converged refit of the set it was cut from (the one-step correction from that optimum is
    L-BFGS's first step), a far smaller change than relabeling the subset from the fitted weights.
    ``finish(r)`` (optional) is called once a row's shrink has ended (the progress bar).
    """
    one_min = np.zeros(pool.Xt.n, dtype=bool)
    cur = {int(r): pool.best_set[r] for r in rows if pool.best_set[r] is not None}
    # chunk phase (delta debugging) for large sets, least needed labels first: the first chunks are
    # the labels whose relabeling moved the prediction least towards the flip (linearized with H0), so
    # dropping them most often keeps the flip and the set shrinks in fewer, cheaper refits
    cur = _weakest_first(pool, cur)
    nparts = {r: 4 for r in cur}
    # each row goes through the chunk phase, then the single-removal phase, at its own pace: a row whose
    # chunks are done starts its single removals in the next round while other rows still cut chunks
    # (its refits are the same either way; the rows only share the batches), so rows finish, and the
    # progress bar moves, throughout the shrink
    chunking = set(cur)
    todo: dict = {}  # single-removal rows: None = test every member; a set = test only these members
    while chunking or todo:
        for r in cur:
            if r in chunking and (len(cur[r]) <= 8 or nparts[r] > len(cur[r]) // 2):
                chunking.discard(r)
                todo[r] = None
        cand, owner = [], []
        for r in cur:
            if r in chunking:
                S = cur[r]
                for part in np.array_split(np.arange(len(S)), nparts[r]):
                    cand.append(np.delete(S, part))
                    owner.append(r)
        if cand:
            cand, owner = pool.valid(cand, owner)
            p, conv, _ = pool.refit(cand, owner, offer=False, starts=[pool.best_w.get(r) for r in owner],
                                    keep="first")
            cb = pool.last_certified
            for r, (j, w) in pool.kept.items():  # the first flipping subset of each row
                cur[r] = cand[j]
                pool.record(r, cand[j], p[j], w, certified=bool(cb[j]))
            for r in chunking:
                if r not in pool.kept:
                    nparts[r] *= 2
        if not todo:
            continue
        # single-removal round
        cand, owner, drop = [], [], []
        for r, only in todo.items():
            S = cur[r]
            for i in range(len(S)) if len(S) > 1 else []:
                if only is None or int(S[i]) in only:
                    cand.append(np.delete(S, i))
                    owner.append(r)
                    drop.append(int(S[i]))
        n_tried = {r: 0 for r in todo}
        for r in owner:
            n_tried[r] += 1
        cand, owner, drop = pool.valid(cand, owner, drop)
        pool.kept = {}
        p, conv, _ = (pool.refit(cand, owner, offer=False, starts=[pool.best_w.get(r) for r in owner], keep="best")
                      if cand else (np.empty(0), np.empty(0, bool), None))
        res: dict = {}
        for j, r in enumerate(owner):
            res.setdefault(r, []).append(j)
        nxt = {}
        for r, only in todo.items():
            js = res.get(r, [])
            flips = [j for j in js if conv[j] and pool.flips(r, p[j])]
            if flips:
                jb, w = pool.kept[r]  # the flipping subset farthest from the threshold (first of equals)
                cur[r] = cand[jb]
                pool.record(r, cand[jb], p[jb], w, certified=bool(pool.last_certified[jb]))
                rest = {drop[j] for j in flips if j != jb}
                nxt[r] = rest if rest else None
            elif only is not None:
                nxt[r] = None  # the shortlist is exhausted: check every member once more
            else:
                one_min[r] = len(cur[r]) <= 1 or (all(conv[j] for j in js) and n_tried[r] == len(cur[r]))
                if finish is not None:
                    finish(r)
        todo = nxt
    return one_min


def unique_rows(Xt: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test rows with identical features, found exactly: ``(first, inverse, counts)``.

    ``first`` (u,) int64: the first row of each distinct feature vector, in order of appearance;
    ``inverse`` (n,): the position in ``first`` of each row's feature vector; ``counts`` (u,): how many
    rows share it.  Sparse rows compare by their sorted nonzero columns and values, dense rows by their
    bytes (``-0.0`` and ``0.0`` differ there; at worst a duplicate is searched twice).
    """
    if not isinstance(Xt, Design):
        raise TypeError(f"Xt must be a cfdkit.core.arrays.Design (Design.from_tensor / Design.from_scipy); got "
                        f"{type(Xt).__name__}.")
    A = Xt.to_plain()
    keys = []
    if sp.issparse(A):
        A = sp.csr_matrix(A, copy=True)
        A.sum_duplicates()
        A.eliminate_zeros()
        A.sort_indices()
        for i in range(A.shape[0]):
            a, b = A.indptr[i], A.indptr[i + 1]
            keys.append((A.indices[a:b].tobytes(), A.data[a:b].tobytes()))
    else:
        A = np.ascontiguousarray(A)
        keys = [A[i].tobytes() for i in range(A.shape[0])]
    pos: dict = {}
    first, inverse = [], np.empty(len(keys), dtype=np.int64)
    for i, k in enumerate(keys):
        j = pos.setdefault(k, len(first))
        if j == len(first):
            first.append(i)
        inverse[i] = j
    first = np.asarray(first, dtype=np.int64)
    return first, inverse, np.bincount(inverse, minlength=first.size)


def minimal_search(state: FittedState, Xt: Design, threshold: float, *, estimated_sets, max_size: int | None = None,
                   singles_limit: int = 2000, single_candidates: int = 3, pairs_limit: int = 2000,
                   pair_candidates: int = 6,
                   triple_candidates: int = 6, max_rounds: int = 30, orderings=("distance", "ip"),
                   progress: bool = False):
    """The search described in the module docstring; returns the :class:`SearchFields` of ``Xt``'s rows.

    ``estimated_sets`` are Algorithm 1's sets, one per test row (empty where none).  Test rows with
    identical features (:func:`unique_rows`; e.g. the 12 hate-speech test posts with no word in the
    vocabulary) are searched once and share the answer: their search, refits and sets are the same.
    """
    first, inverse, counts = unique_rows(Xt)
    dup = first.size < Xt.n
    f = _search_distinct(state, Xt.rows(torch.as_tensor(first, device=Xt.device)) if dup else Xt, threshold,
                         [estimated_sets[i] for i in first], counts, max_size=max_size, singles_limit=singles_limit,
                         single_candidates=single_candidates, pairs_limit=pairs_limit,
                         pair_candidates=pair_candidates, triple_candidates=triple_candidates,
                         max_rounds=max_rounds, orderings=tuple(orderings), progress=progress)
    return f.take(inverse) if dup else f


def _search_distinct(state, Xt, threshold, estimated_sets, row_counts, *, max_size, singles_limit, single_candidates,
                     pairs_limit, pair_candidates, triple_candidates, max_rounds, orderings, progress):
    """:func:`minimal_search` on distinct test rows; ``row_counts`` (how many test rows each stands for)
    moves the progress bar."""
    n = state.train.n
    max_size = n if max_size is None else min(int(max_size), n)
    # one step per test row once its search has ended (size 1 after the singles, "not_found" after the
    # greedy search, a found set once its shrink ended); rows of >= 4 labels may still get a smaller set
    # from the triples pass at the end, which the bar's postfix names
    bar = tqdm(total=int(row_counts.sum()), desc="minimal sets (rows searched)", unit="row", disable=not progress,
               leave=False)
    pool = _Pool(state, Xt, threshold, max_size, bar)
    pool.row_counts = row_counts
    s = _Search(state, Xt, threshold, pool, bar, estimated_sets, max_size=max_size, singles_limit=singles_limit,
                single_candidates=single_candidates, pairs_limit=pairs_limit, pair_candidates=pair_candidates,
                triple_candidates=triple_candidates, max_rounds=max_rounds, orderings=orderings)
    timings = run_stages(s, STAGES)
    n_test = Xt.n
    pool.tick(np.ones(n_test, dtype=bool))
    bar.close()
    found = s.found
    size = np.where(found, pool.best_size, 0).astype(np.int64)
    sets = [pool.best_set[t] if found[t] else np.empty(0, dtype=np.int64) for t in range(n_test)]
    lb = np.maximum(lower_bounds(state, Xt, threshold, k_max=max_size), s.lb_enum)
    stats = {"refits_certified": pool.n_certified, "refits_converged": pool.n_converged,
             "refits_undecided": pool.n_undecided, "iterations": pool.iterations, "certificate_checks": pool.checks,
             "decided_at_start": pool.iters0}
    return SearchFields(prob=pool.prob, size=size, sets=sets, status=np.where(found, "verified", "not_found"),
                        new_prob=np.where(found, pool.best_prob, np.nan), lower_bound=lb.astype(np.int64),
                        one_minimal=s.one_min & found, decided_by=s.decided_by.astype(str), refits=pool.refits,
                        timings=timings, refit_stats=stats)


class _Search:
    """What the stages of one binary search share: the fit, the test rows, the pool of refits, the parameters,
    and what each stage leaves for the next (``benefit``, ``lb_enum``, ``alt``, ``one_min``, ...)."""

    def __init__(self, state, Xt, threshold, pool, bar, estimated_sets, **params):
        self.state, self.Xt, self.threshold, self.pool, self.bar = state, Xt, threshold, pool, bar
        self.estimated_sets = estimated_sets
        self.__dict__.update(params)
        self.n_test, self.n = Xt.n, state.train.n
        self.orig, self.prob = pool.orig, pool.prob
        self.lb_enum = np.ones(self.n_test, dtype=np.int64)
        self.all_singles = False
        self.benefit = None
        self.alt: dict = {}
        self.one_min = None
        self.found = None
        self.decided_by = None

    def ranking(self, t, m):
        """Row ``t``'s ``m`` strongest candidates (exact single effects where refit, else IP-relabel) that help."""
        b = self.benefit[t]
        order = np.argsort(-b, kind="stable")[:m]
        return [int(i) for i in order if b[i] > 0]


def _stage_estimates(s: _Search) -> None:
    """1. Algorithm 1's sets (the estimate, as candidates)."""
    pool = s.pool
    rows = [t for t in range(s.n_test) if len(s.estimated_sets[t])]
    if rows:
        sets, rows = pool.valid([np.asarray(s.estimated_sets[t], dtype=np.int64) for t in rows], rows)
        if sets:
            pool.refit(sets, rows)


def _stage_singles(s: _Search) -> None:
    """2. Exact singles: every training point when n_train <= singles_limit, else the strongest
    ``single_candidates`` by IP-relabel of each row without a set of size 1."""
    pool, n, n_test, orig, prob = s.pool, s.n, s.n_test, s.orig, s.prob
    s.all_singles = all_singles = n <= s.singles_limit and n * n_test <= 30_000_000
    if all_singles:
        benefit = np.full((n_test, n), -np.inf)
        cand = list(range(n))
    else:
        Wh = s.state.w[:, None].expand(-1, n_test)
        benefit, _ = _relinearized_benefits(s.state, s.Xt, np.arange(n_test), [np.empty(0, np.int64)] * n_test,
                                            Wh, orig)
        top = np.argsort(-benefit, axis=1, kind="stable")[:, :s.single_candidates]
        # each row's own strongest candidates, refit for that row alone (certified where possible)
        pairs_ti = [(t, int(i)) for t in range(n_test) for i in top[t] if benefit[t, i] > 0]
        cand = [i for _, i in pairs_ti]
    s.benefit = benefit
    if all_singles:
        singles, idx = pool.valid([np.array([i], dtype=np.int64) for i in cand], cand)
        if singles:
            P_single = np.empty((n_test, len(singles)))
            _, conv, _ = pool.refit(singles, out_P=P_single)
            idx = np.asarray(idx)
            benefit[:, idx] = _benefit_from_probs(P_single, prob, orig)  # exact effects replace the estimates
            benefit[:, idx[~conv]] = -np.inf
            del P_single
            if conv.all():
                s.lb_enum[pool.best_size > 1] = 2  # every valid single was refit (converged) and none flips these rows
    else:
        singles, own, idx = pool.valid([np.array([i], dtype=np.int64) for i in cand], [t for t, _ in pairs_ti], cand)
        if singles:
            p_own, conv, _ = pool.refit(singles, own)
            own, idx = np.asarray(own, dtype=np.int64), np.asarray(idx, dtype=np.int64)
            d = p_own - prob[own]
            benefit[own, idx] = np.where(conv, np.where(orig[own], -d, d), -np.inf)  # exact (or proven) effects
    pool.tick(pool.best_size <= 1)


def _stage_pairs(s: _Search) -> None:
    """3. Pairs: every pair when few enough, else the pairs of each open row's strongest candidates."""
    pool, n = s.pool, s.n
    all_pairs = n * (n - 1) // 2 <= s.pairs_limit
    if s.max_size >= 2:
        if all_pairs:
            pairs, = pool.valid([np.array(q, dtype=np.int64) for q in combinations(range(n), 2)])
            if pairs:
                _, conv, _ = pool.refit(pairs)
                if s.all_singles and conv.all():
                    s.lb_enum[pool.best_size > 2] = 3  # every valid pair was refit and none flips these rows
        else:
            pairs, own = [], []
            for t in range(s.n_test):
                if pool.best_size[t] > 2:
                    for q in combinations(sorted(s.ranking(t, s.pair_candidates)), 2):
                        pairs.append(np.array(q, dtype=np.int64))
                        own.append(t)
            pairs, own = pool.valid(pairs, own)
            if pairs:
                pool.refit(pairs, own)


def _stage_greedy(s: _Search) -> None:
    """4. Re-linearized greedy for rows without a set of size <= 2."""
    pool, state, Xt, threshold, prob, orig, max_size = s.pool, s.state, s.Xt, s.threshold, s.prob, s.orig, s.max_size
    active = [t for t in range(s.n_test) if pool.best_size[t] > 2]
    cur = {t: np.empty(0, dtype=np.int64) for t in active}
    W_cur = {}
    rounds = 0
    while active and rounds < s.max_rounds:
        rounds += 1
        first = [t for t in active if len(cur[t]) == 0]
        later = [t for t in active if len(cur[t]) > 0]
        ben_rows, gaps = {}, {}
        for t in first:
            ben_rows[t], gaps[t] = s.benefit[t], abs(prob[t] - threshold)
        if later:
            Wl = torch.stack([W_cur[t] for t in later], 1)
            B, pt = _relinearized_benefits(state, Xt, later, [cur[t] for t in later], Wl, orig[later])
            for j, t in enumerate(later):
                ben_rows[t], gaps[t] = B[j], abs(pt[j] - threshold)
        new_sets, owners = [], []
        for t in active:
            b = ben_rows[t]
            order = np.argsort(-b, kind="stable")
            vals = b[order]
            pos = int((vals > 0).sum())
            if pos == 0:
                continue
            hit = np.nonzero(np.cumsum(vals[:pos]) > gaps[t])[0]
            if hit.size:
                k_est = int(hit[0]) + 1
                add = k_est if k_est <= 2 else int(math.ceil(k_est / 2))
            else:
                add = min(pos, max(1, len(cur[t])))
            add = min(add, min(max_size, int(pool.best_size[t]) - 1) - len(cur[t]))
            if add <= 0:
                continue
            new_sets.append(np.concatenate([cur[t], order[:add].astype(np.int64)]))
            owners.append(t)
        new_sets, owners = pool.valid(new_sets, owners)
        if not new_sets:
            break
        # later rounds extend a refitted prefix: start from its converged weights
        p_own, conv, W = pool.refit(new_sets, owners, keep_w=True, starts=[W_cur.get(t) for t in owners])
        nxt = []
        for j, t in enumerate(owners):
            if not conv[j]:
                continue  # no re-linearization at an unconverged point: this row's greedy stops
            cur[t], W_cur[t] = new_sets[j], W[:, j]
            if not pool.flips(t, p_own[j]) and len(cur[t]) + 1 < pool.best_size[t] and len(cur[t]) < max_size:
                nxt.append(t)
        active = nxt


def _stage_orderings(s: _Search) -> None:
    """4b. Simple orderings: the smallest flipping prefix of (a) the training points with the row's predicted
    label, nearest first, and (b) the IP-relabel order at the fit; so no simple ordering's set is smaller than the
    one the shrink starts from.  The orderings' sets are kept aside (``alt``): the shrink starts from the search's
    own best set (as without orderings), and a row whose ordering set is smaller than its shrunk set is shrunk
    again from that."""
    pool = s.pool
    if s.orderings:
        had = pool.snapshot()
        _ordering_prefixes(pool, _simple_orders(pool, s.benefit, s.orderings))
        for t in range(s.n_test):
            if had[0][t] <= s.max_size and pool.best_size[t] < had[0][t]:
                s.alt[t] = pool.snapshot(t)
                pool.restore(had, t)
    pool.tick(~pool.found())  # rows without a set now: nothing later changes them


def _stage_shrink(s: _Search) -> None:
    """5. Shrink every found set to 1-minimal (and the orderings' sets kept aside, where smaller)."""
    pool, n_test = s.pool, s.n_test
    rows = [t for t in range(n_test) if pool.found()[t]]

    def finish(r):
        mask = np.zeros(n_test, dtype=bool)
        mask[r] = True
        pool.tick(mask)

    s.one_min = one_min = _shrink(pool, rows, finish)
    again = [t for t, a in s.alt.items() if a[0] < pool.best_size[t]]
    if again:
        pool.phase = "shrink (ordering sets)"
        kept = {t: pool.snapshot(t) for t in again}
        for t in again:
            pool.restore_row(s.alt[t], t)
        om = _shrink(pool, again)
        for t in again:  # the smaller of the two shrunk sets (the second is never larger: it starts smaller)
            if pool.best_size[t] > kept[t][0]:
                pool.restore_row(kept[t], t)
            else:
                one_min[t] = om[t]


def _stage_triples(s: _Search) -> None:
    """6. Triples from the strongest candidates where the set has >= 4 labels."""
    pool, n_test = s.pool, s.n_test
    if s.max_size >= 3 and s.triple_candidates >= 3:
        big = [t for t in range(n_test) if pool.found()[t] and pool.best_size[t] >= 4]
        tri, own = [], []
        for t in big:
            for c in combinations(sorted(s.ranking(t, s.triple_candidates)), 3):
                tri.append(np.array(c, dtype=np.int64))
                own.append(t)
        tri, own = pool.valid(tri, own)
        if tri:
            before = pool.best_size.copy()
            pool.refit(tri, own)
            changed = [t for t in range(n_test) if pool.best_size[t] < before[t]]
            if changed:
                om = _shrink(pool, changed)
                s.one_min[changed] = om[changed]


def _stage_final(s: _Search) -> None:
    """The set a user is shown gets one converged refit, so its new probability is a number (its flip was proven
    by a certificate already; the refit confirms it or, unconverged, leaves the proof as the answer)."""
    pool, n_test = s.pool, s.n_test
    s.found = found = pool.found()
    s.decided_by = decided_by = np.where(found, "converged", "").astype(object)
    show = [t for t in range(n_test) if found[t] and pool.best_cert[t]]
    if show:
        pool.phase = "final refits"
        W, info = refit_sets(s.state, [pool.best_set[t] for t in show], "relabel", explicit_inverse=True)
        pool.refits += len(show)
        s.bar.set_postfix_str(f"{pool.phase}: {pool.refits:,} refits", refresh=True)
        pool.n_converged += int(info.converged.sum())
        pool.iterations += int(info.iterations.sum())
        r = torch.as_tensor(np.asarray(show, dtype=np.int64), device=W.device)
        p_show = torch.sigmoid((s.Xt.dense_rows(r) * W.T).sum(1)).cpu().numpy()
        for t, pt, ok in zip(show, p_show, info.converged):
            if ok:
                if not pool.flips(t, pt):  # a proof and a converged refit disagree: never report either
                    raise RuntimeError(f"sign certificate contradicted by a converged refit (test row {t}: "
                                       f"P = {pt!r}, threshold {s.threshold}); please report this as a bug.")
                pool.best_prob[t] = pt
            else:
                decided_by[t] = "certified"


#: The binary search, stage by stage (:func:`cfdkit.linear.search.run_stages`); the module docstring says why.
STAGES = (Stage("alg1", "Algorithm 1's sets", _stage_estimates), Stage("singles", "single relabels", _stage_singles),
          Stage("pairs", "pairs", _stage_pairs), Stage("greedy", "re-linearized greedy", _stage_greedy),
          Stage("orderings", "orderings", _stage_orderings), Stage("shrink", "shrink", _stage_shrink),
          Stage("triples", "triples", _stage_triples), Stage("final", None, _stage_final))


@dataclass
class SearchFields:
    """What :func:`minimal_search` finds for a block of test rows: the per-row fields of :class:`MinimalSets`
    (``sets`` one index array per row) and the block's counts (``refits``, ``timings``, ``refit_stats``)."""

    prob: np.ndarray
    size: np.ndarray
    sets: list
    status: np.ndarray
    new_prob: np.ndarray
    lower_bound: np.ndarray
    one_minimal: np.ndarray
    decided_by: np.ndarray
    refits: int = 0
    timings: dict = field(default_factory=dict)
    refit_stats: dict = field(default_factory=dict)

    _ROWS = ("prob", "size", "status", "new_prob", "lower_bound", "one_minimal", "decided_by")

    def take(self, rows) -> "SearchFields":
        """The fields of rows ``rows`` (e.g. each test row's distinct representative); counts unchanged."""
        per_row = {k: getattr(self, k)[rows] for k in self._ROWS}
        return SearchFields(sets=[np.array(self.sets[j]) for j in rows], refits=self.refits, timings=self.timings,
                            refit_stats=self.refit_stats, **per_row)

    @classmethod
    def concat(cls, parts: list) -> "SearchFields":
        """The fields of consecutive row blocks, in order: rows concatenated, counts and timings added up."""
        if len(parts) == 1:
            return parts[0]
        per_row = {k: np.concatenate([getattr(p, k) for p in parts]) for k in cls._ROWS}

        def added(dicts):
            out: dict = {}
            for d in dicts:
                for k, v in d.items():
                    out[k] = out.get(k, 0) + v
            return out

        return cls(sets=[x for p in parts for x in p.sets], refits=sum(p.refits for p in parts),
                   timings=added(p.timings for p in parts), refit_stats=added(p.refit_stats for p in parts), **per_row)

    def result(self, threshold, estimated_size, seconds, fingerprint, X_test, y_train) -> MinimalSets:
        """The :class:`MinimalSets` a user gets (with Algorithm 1's sizes, the call's time and fit fingerprint;
        ``y_train`` (n_train,) 0/1 gives each point's new label)."""
        offsets = np.zeros(len(self.sets) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in self.sets], out=offsets[1:])
        flat = np.concatenate(self.sets).astype(np.int64) if self.sets else np.empty(0, np.int64)
        return MinimalSets(float(threshold), self.prob, self.size, self.status, self.new_prob, self.lower_bound,
                           np.asarray(estimated_size, dtype=np.int64), self.one_minimal, offsets, flat,
                           int(self.refits), float(seconds), fingerprint, X_test, dict(self.timings),
                           np.asarray(self.decided_by).astype(str) if len(self.sets) else np.empty(0, dtype=str),
                           dict(self.refit_stats), (1 - np.asarray(y_train)[flat]).astype(np.int64))
