"""Sign certificates: prove on which side of the threshold a refit lands before it converges.

Every refit that verifies a relabel set answers a yes/no question: *does test row t's
prediction land on the other side of the threshold at the new optimum?*  The sign can be
proven from an iterate ``w`` long before the iteration reaches its gradient tolerance.  This
module derives the proof for L2 logistic regression and computes it for many refits at once.

Notation
--------
``F(w) = sum_i l(y_i, z_i) + l2/2 ||w_{1:d}||^2`` with ``z_i = x~_i . w``,
``l(y, z) = log(1 + e^z) - y z``, the intercept (last coordinate) unpenalized; ``w0`` the
fitted optimum, ``H0 = H(w0) = X~^T D0 X~ + l2 I'`` with ``D0 = diag(d(z_i(w0)))``,
``d(z) = sigma(z) (1 - sigma(z))``; ``||u||_{H0} = sqrt(u^T H0 u)`` and
``||g||_{H0^{-1}} = sqrt(g^T H0^{-1} g)``.

Fact 1 (relabeling tilts the objective linearly)
-----------------------------------------------
``l(0, z) - l(1, z) = z``, so relabeling point ``j`` adds ``(2 y_j - 1) z_j`` to the
objective: ``F_S(w) = F(w) + c_S . w`` with ``c_S = sum_{j in S} (2 y_j - 1) x~_j``.  Every
relabel refit therefore has the *same Hessian function* ``H(w)`` as the original fit, its
gradient at ``w0`` is ``c_S``, and the influence estimate ``w0 - H0^{-1} c_S`` is exactly
the first Newton step.

Fact 2 (curvature is stable in margin units)
--------------------------------------------
``d'(z) = d(z) (1 - 2 sigma(z))`` and ``|1 - 2 sigma| <= 1``, so ``|d'| <= d`` and
``|log d(a) - log d(b)| <= |a - b|``.  For an iterate ``w`` put
``gamma = min(1, min_i d(z_i(w)) / d(z_i(w0)))`` and
``Gamma = max(1, max_i d(z_i(w)) / d(z_i(w0)))`` (exact, from the margins), and
``kappa0 >= max_i ||x~_i||_{H0^{-1}}`` (computed once per fit).  For any ``u``,
``|x~_i . u| <= kappa0 ||u||_{H0}`` (Cauchy-Schwarz), hence

    gamma e^{-kappa0 ||u||_{H0}} H0  <=  H(w + u)  <=  Gamma e^{kappa0 ||u||_{H0}} H0,

because ``H(w + u) = X~^T D(w + u) X~ + l2 I'`` with
``D(w + u)_ii >= e^{-|x~_i . u|} D(w)_ii >= gamma e^{-kappa0 ||u||} D0_ii`` and
``l2 I' >= gamma e^{-kappa0 ||u||} l2 I'`` (the factor is <= 1; the upper side alike with
``Gamma e^{kappa0 ||u||} >= 1``).  This is pseudo-self-concordance with a data-dependent
constant (Bach 2010; Marteau-Ferey, Ostrovskii, Bach & Rudi 2019).  No strong convexity is
used, so the unpenalized intercept is no obstacle (``H0`` is positive definite whenever the
fit exists).

Theorem (where the refit's optimum is, and what it predicts)
------------------------------------------------------------
Let ``g = grad F_S(w)`` at any iterate ``w``, ``nu = ||g||_{H0^{-1}}``, and suppose
``q = kappa0 nu / gamma < 1``.  Then the minimizer ``w*`` of ``F_S`` satisfies
``||w* - w||_{H0} <= r = -log(1 - q) / kappa0``, and for a test row ``x~_t`` with
``h_t = ||x~_t||_{H0^{-1}}`` and ``v_t = H0^{-1} x~_t``,

    x~_t . w*  in  [ z_t - alpha (v_t . g) - beta h_t nu ,  z_t - alpha (v_t . g) + beta h_t nu ],

where ``z_t = x~_t . w``, ``c = nu / r`` (``= gamma (1 - e^{-kappa0 r}) / (kappa0 r)``),
``C = Gamma (e^{kappa0 r} - 1) / (kappa0 r)``, ``alpha = (1/c + 1/C) / 2``,
``beta = (1/c - 1/C) / 2``.

*Proof.*  (i) Confinement: along a ray ``w + s u`` with ``||u||_{H0} = 1``,
``d/ds F_S = g . u + int_0^s u^T H(w + t u) u dt >= -nu + gamma (1 - e^{-kappa0 s}) / kappa0``,
which is positive for ``s > r``; ``F_S`` is convex, so its minimizer lies in the ball
``||w* - w||_{H0} <= r``.  (ii) Mean value: ``0 = grad F_S(w*) = g + A (w* - w)`` with
``A = int_0^1 H(w + t (w* - w)) dt``; with ``rho = ||w* - w||_{H0} <= r``, Fact 2 gives
``A >= gamma (1 - e^{-kappa0 rho}) / (kappa0 rho) H0 >= c H0`` and likewise ``A <= C H0``
(both factors are monotone in ``rho``).  (iii) The eigenvalues of ``H0^{1/2} A^{-1} H0^{1/2}``
lie in ``[1/C, 1/c]``, so ``A^{-1} = alpha H0^{-1} + E`` with
``||H0^{1/2} E H0^{1/2}|| <= beta``; ``x~_t . (w* - w) = -x~_t^T A^{-1} g
= -alpha v_t . g - x~_t^T E g`` and ``|x~_t^T E g| <= beta h_t nu`` (Cauchy-Schwarz in the
``H0`` geometry).  QED.

The interval is never wider than ``+-h_t nu / c`` (the plain bound) since
``|v_t . g| <= h_t nu``; as the iterate converges, ``nu -> 0``, ``r -> 0`` and the interval
shrinks to the point ``x~_t . w*``.  With ``w = w0`` and ``g = c_S`` it bounds a relabeling's
effect before any refit; with ``w`` = the converged refit of a set ``S`` and ``g = -s_j x~_j``
it bounds the leave-one-out refit of ``S \\ {j}`` from ``S``'s own refit.

Decisions and floating point
----------------------------
A refit column is **certified** when the interval of its test row lies entirely on one side of
the threshold's logit ``logit(tau)``, with slack: ``nu`` is inflated by a relative ``1e-6`` and
an absolute ``1e-9`` (the float64 gradient and triangular solve are far more accurate), the
interval by ``1e-9 (1 + |logit(tau)|)``.  ``nu`` comes from a float64 triangular solve with the
fit's Cholesky factor (the refits' float32/bfloat16 steering never enters a proof).  A column
whose interval still contains the threshold when the refit reaches its tolerance is decided by
the **converged** refit, as without certificates; one that never gets there is **undecided**
and is never counted as an answer.

The softmax (K-class) case would need the same two facts for the multinomial loss: relabeling
still tilts the objective linearly (``c_S`` in ``R^{p K}``), and the softmax Hessian's
curvature ratio is bounded by ``e^{2 max_i ||Delta z_i||_inf}``-type constants, so the same
argument goes through with ``kappa0`` taken over the ``K`` logit differences.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.arrays import DTYPE, Design

__all__ = ["SignCertificate", "RefitQuestion", "log_curvature", "h_norms"]

NU_REL_SLACK = 1e-6
NU_ABS_SLACK = 1e-9
LOGIT_SLACK = 1e-9
# Gating only (never a proof): an exact check is made where the interval computed with
# nu ~ PREDICT_FACTOR * ratio * ||g||_2 already decides; ratio = nu / ||g||_2 at the column's last exact
# check, PRIOR_RATIO before the first.  On hate speech (BoW, l2 = 10) the ratio's 5-95 % range was 0.07-0.21.
PREDICT_FACTOR = 1.5
PRIOR_RATIO = 0.25


def log_curvature(z: torch.Tensor) -> torch.Tensor:
    """``log d(z) = log sigma(z) (1 - sigma(z))``, stable for large ``|z|``."""
    a = torch.abs(z)
    return -a - 2 * torch.nn.functional.softplus(-a)


def _cholesky(state):
    """The float64 Cholesky factor of ``H0`` (the audit's, or built here when ``p <= 4096``), or None."""
    from .model import hessian

    L = state.ihvp.cholesky_factor
    if L is not None:
        return L
    if state.train.p > 4096:
        return None
    L, info = torch.linalg.cholesky_ex(hessian(state.train, state.w, state.l2))
    return L if int(info) == 0 else None


def h_norms(L: torch.Tensor, design: Design, chunk: int = 1024) -> torch.Tensor:
    """``||x~_i||_{H0^{-1}} = ||L^{-1} x~_i||`` for every row of ``design`` (float64, (n,))."""
    out = torch.empty(design.n, dtype=DTYPE, device=L.device)
    for s in range(0, design.n, chunk):
        idx = torch.arange(s, min(design.n, s + chunk), device=L.device)
        A = torch.linalg.solve_triangular(L, design.dense_rows(idx).T.contiguous(), upper=False)
        out[idx] = torch.sqrt((A * A).sum(0))
    return out


def train_h_norms(state) -> torch.Tensor | None:
    """The training rows' ``||x~_i||_{H0^{-1}}`` (n,), computed once per fit and kept on the state; None without
    an exact ``H0^{-1}``."""
    cache = state.certificate_cache
    if "h" not in cache:
        L = _cholesky(state)
        cache["h"] = None if L is None else h_norms(L, state.train)
    return cache["h"]


class SignCertificate:
    """Sign certificates for relabel refits of one fit (see the module docstring for the proof).

    Built once per fit (``kappa0`` costs one triangular solve per training row and is cached on the
    state); :meth:`questions` prepares test rows; :meth:`bounds` bounds the test logits at the
    refit's optimum from any iterate.

    Parameters
    ----------
    state : cfdkit.linear.retrain.FittedState
    kappa0 : float, optional
        A valid upper bound on ``max_i ||x~_i||_{H0^{-1}}``; default: computed exactly.  A value below
        the exact maximum would make the certificate unsound and is refused.
    """

    def __init__(self, state, kappa0: float | None = None):
        self.state = state
        self.L = _cholesky(state)
        self.available = self.L is not None
        if not self.available:
            return
        exact = float(train_h_norms(state).max())
        if kappa0 is not None:
            import numbers

            if isinstance(kappa0, bool) or not isinstance(kappa0, numbers.Real) or not np.isfinite(float(kappa0)):
                raise ValueError(f"kappa0 must be a finite number >= max_i ||x~_i||_(H0^-1) = {exact:.6g}; got {kappa0!r}.")
            if float(kappa0) < exact * (1 - 1e-12):
                raise ValueError(f"kappa0={kappa0!r} is below max_i ||x~_i||_(H0^-1) = {exact:.6g}: the certificate "
                                 "would be unsound. Pass a value >= that maximum, or None (computed exactly).")
            exact = float(kappa0)
        self.kappa0 = exact * (1 + 1e-9)  # the triangular solve's round-off, on the safe side
        z0 = state.train.matvec(state.w[:, None])[:, 0]
        self.log_d0 = log_curvature(z0)
        self.inv_d0 = torch.exp(-self.log_d0)

    # ------------------------------------------------------------------ test rows
    def questions(self, Xq: Design):
        """Float64 ``(V, h, X)`` for test rows ``Xq``, row-major: ``V[t] = H0^{-1} x~_t`` (nq, p), ``h_t`` (nq,),
        the dense rows ``X`` (nq, p)."""
        X = Xq.dense_rows().to(DTYPE).contiguous()
        V = torch.cholesky_solve(X.T.contiguous(), self.L).T.contiguous()
        h = torch.sqrt(torch.clamp((X * V).sum(1), min=0.0))
        return V, h, X

    # ------------------------------------------------------------------ bounds
    def nu(self, G: torch.Tensor) -> torch.Tensor:
        """``||g||_{H0^{-1}}`` per column of ``G`` (p, m), float64 triangular solve, inflated by the slack."""
        nu = torch.linalg.vector_norm(torch.linalg.solve_triangular(self.L, G, upper=False), dim=0)
        return nu * (1 + NU_REL_SLACK) + NU_ABS_SLACK

    def curvature(self, Z: torch.Tensor, P: torch.Tensor | None = None):
        """``(gamma, Gamma)`` (m,): the curvature ratios ``d(z_i(w)) / d(z_i(w0))`` at iterates with margins
        ``Z`` (n, m), clipped to ``<= 1`` and ``>= 1``.

        With the probabilities ``P = sigmoid(Z)`` at hand and every ``|z| <= 30`` the ratio is formed from
        ``P (1 - P)`` (relative error < 1e-10 there) and widened by ``1e-8`` on the safe side; otherwise
        from the log-domain formula.
        """
        if P is None:
            far = torch.ones(Z.shape[1], dtype=torch.bool, device=Z.device)
        else:
            D = P * (1 - P)
            far = D.min(0).values < 1e-13  # some |z| > ~30; decided per column: no column depends on the others
            D *= self.inv_d0[:, None]
            mn, mx = torch.aminmax(D, dim=0)
            lo = torch.clamp(mn, max=1.0) * (1 - 1e-8)
            hi = torch.clamp(mx, min=1.0) * (1 + 1e-8)
            if not bool(far.any()):
                return lo, hi
        f = torch.nonzero(far).squeeze(1)
        ld = log_curvature(Z[:, f]) - self.log_d0[:, None]
        g_lo = torch.exp(torch.clamp(ld.min(0).values, max=0.0))
        g_hi = torch.exp(torch.clamp(ld.max(0).values, min=0.0))
        if P is None:
            return g_lo, g_hi
        lo[f], hi[f] = g_lo, g_hi
        return lo, hi

    def bounds(self, zt, vg, hq, nu, gamma, Gamma):
        """Elementwise on (m,) vectors: bounds ``(lo, hi)`` on ``x~_t . w*`` from the theorem.

        ``zt = x~_t . w``, ``vg = (H0^{-1} x~_t) . g``, ``hq = ||x~_t||_{H0^{-1}}``, ``nu >= ||g||_{H0^{-1}}``,
        ``gamma``/``Gamma`` from :meth:`curvature`.  Columns with no confinement get ``(-inf, inf)``.
        """
        k = self.kappa0
        q = k * nu / gamma
        ok = q < 1 - 1e-12
        one = torch.ones_like(q)
        r = torch.where(ok, -torch.log1p(-torch.where(ok, q, 0 * one)) / k, math.inf * one)
        kr = k * torch.where(ok, r, one)
        tiny = ok & (kr < 1e-12)  # r -> 0 (nu at the float floor): c -> gamma, C -> Gamma
        c = torch.where(tiny, gamma, torch.where(ok, nu / torch.where(ok & (r > 0), r, one), 0 * one))
        C = torch.where(tiny, Gamma, Gamma * torch.expm1(torch.clamp(kr, max=700.0)) / torch.clamp(kr, min=1e-300))
        ok = ok & (c > 0) & torch.isfinite(C)
        inv_c = 1.0 / torch.where(ok, c, one)
        inv_C = 1.0 / torch.where(ok, C, one)
        alpha = 0.5 * (inv_c + inv_C)
        beta = 0.5 * (inv_c - inv_C)
        center = zt - alpha * vg
        half = beta * hq * nu
        slack = LOGIT_SLACK * (1.0 + torch.abs(center))
        lo = torch.where(ok, center - half - slack, -math.inf * one)
        hi = torch.where(ok, center + half + slack, math.inf * one)
        return lo, hi


class RefitQuestion:
    """One yes/no question per refit column: is test row ``rows[j]``'s logit above ``logit(tau)`` at the optimum?

    Handed to :func:`cfdkit.linear.retrain.refit_sets`; after the refit, ``decided`` (bool (m,)) marks the
    columns the certificate decided, ``above`` their answer, ``lo``/``hi`` the certified logit interval
    (``+-inf`` where undecided).  ``V, h, X`` come from :meth:`SignCertificate.questions` of the test rows;
    ``rows`` (m,) index them.
    """

    def __init__(self, cert: SignCertificate, V, h, X, rows: np.ndarray, tau: float):
        self.cert = cert
        self.rows = np.asarray(rows, dtype=np.int64)
        dev = X.device
        r = torch.as_tensor(self.rows, device=dev)
        self.xq, self.vq, self.hq = X[r].contiguous(), V[r].contiguous(), h[r]
        self.theta = math.log(tau / (1 - tau))
        m = self.rows.size
        self.decided = np.zeros(m, dtype=bool)
        self.above = np.zeros(m, dtype=bool)
        self.lo = np.full(m, -np.inf)
        self.hi = np.full(m, np.inf)
        self.ratio = torch.full((m,), math.nan, dtype=DTYPE, device=dev)  # nu / ||g||_2 at the last exact check
        self.checks = 0  # exact checks (one float64 triangular solve per column)
        self.prior_ratio = PRIOR_RATIO

    def subset(self, offset: int, m: int):
        """The questions of columns ``offset .. offset + m`` (a refit block), sharing this object's results."""
        return _QuestionView(self, offset, m)

    def probabilities(self) -> np.ndarray:
        """A probability inside each decided column's certified interval (the midpoint in logit), NaN elsewhere."""
        with np.errstate(invalid="ignore"):  # undecided columns: -inf + inf, masked
            mid = np.where(self.decided, 0.5 * (self.lo + self.hi), np.nan)
        return 1.0 / (1.0 + np.exp(-mid))

    def check(self, cols: torch.Tensor, W, Z, G, P, gnorm: torch.Tensor, local: torch.Tensor | None = None) -> torch.Tensor:
        """Certify columns ``cols`` (indices into this question's columns) at iterates ``W``, ``Z``, ``G``
        (probabilities ``P``, gradient norms ``gnorm``); returns bool (len(cols),) decided and records the answers.

        ``local`` (optional): the columns of ``W, Z, G, P, gnorm`` that ``cols`` are (default: all of them, in
        order), so a caller need not copy its ``(n, m)`` arrays to ask about some columns.

        The exact ``nu`` (a float64 triangular solve, the costly part) is computed only for the columns whose
        *predicted* interval already decides (``nu`` taken as ``PREDICT_FACTOR`` times its ratio to ``||g||_2``
        at the column's last exact check, ``PRIOR_RATIO`` before the first); a prediction never decides by itself.
        """
        gamma, Gamma = self.cert.curvature(Z, P)  # every column of Z (a pass over it; no copy of a subset)
        if local is not None:
            W, G, gnorm, gamma, Gamma = W[:, local], G[:, local], gnorm[local], gamma[local], Gamma[local]
        xr, vr = self.xq[cols], self.vq[cols]
        zt = (xr * W.T).sum(1)
        vg = (vr * G.T).sum(1)
        hq = self.hq[cols]
        dec = torch.zeros(cols.numel(), dtype=torch.bool, device=W.device)
        rat = torch.nan_to_num(self.ratio[cols], nan=self.prior_ratio)
        lo, hi = self.cert.bounds(zt, vg, hq, PREDICT_FACTOR * rat * gnorm, gamma, Gamma)
        go = (lo > self.theta) | (hi < self.theta)
        if not bool(go.any()):
            return dec
        e = torch.nonzero(go).squeeze(1)
        ce = cols[e]
        self.checks += int(e.numel())
        nu = self.cert.nu(G if e.numel() == cols.numel() else G[:, e])
        self.ratio[ce] = nu / torch.clamp(gnorm[e], min=1e-300)
        lo, hi = self.cert.bounds(zt[e], vg[e], hq[e], nu, gamma[e], Gamma[e])
        up = lo > self.theta
        d = up | (hi < self.theta)
        dec[e] = d
        c = ce.cpu().numpy()
        dn = d.cpu().numpy()
        self.decided[c[dn]] = True
        self.above[c[dn]] = up.cpu().numpy()[dn]
        self.lo[c] = lo.cpu().numpy()
        self.hi[c] = hi.cpu().numpy()
        return dec


class _QuestionView:
    def __init__(self, parent: RefitQuestion, offset: int, m: int):
        self.parent, self.offset, self.m = parent, offset, m

    def check(self, cols, W, Z, G, P, gnorm, local=None):
        return self.parent.check(cols + self.offset, W, Z, G, P, gnorm, local)


def certificate(state) -> SignCertificate | None:
    """The fit's :class:`SignCertificate` (its ``kappa0`` cached on the state), or None where no exact
    ``H0^{-1}`` is at hand (a non-Cholesky solver with ``p > 4096``): then every refit converges."""
    c = SignCertificate(state)
    return c if c.available else None


def relabel_question(state, Xt: Design, rows, tau: float, prepared=None) -> RefitQuestion | None:
    """A :class:`RefitQuestion` for refits whose column ``j`` asks about test row ``rows[j]`` of ``Xt``.

    ``prepared`` (optional): ``(cert, V, h, X)`` of ``Xt`` from an earlier call (:func:`prepare_rows`).
    """
    if prepared is None:
        prepared = prepare_rows(state, Xt)
    if prepared is None:
        return None
    cert, V, h, X = prepared
    return RefitQuestion(cert, V, h, X, rows, tau)


def prepare_rows(state, Xt: Design):
    """``(cert, V, h, X)`` for every row of ``Xt`` (see :meth:`SignCertificate.questions`), or None."""
    cert = certificate(state)
    if cert is None:
        return None
    return (cert,) + tuple(cert.questions(Xt))
