"""The binary engine: L2 logistic regression (the half-binomial loss) and everything asked of it.

:class:`BinomialEngine` is what :class:`~cfdkit.linear.audit.RelabelAudit` holds after ``fit`` on two classes
(0/1 labels): the fit (:mod:`.model`, float64 Newton), the Hessian factorization (:class:`cfdkit.core.InverseHVP`),
the scores (:mod:`.scores`), Algorithm 1 (:mod:`.selection`), the removal baselines (:mod:`.removal`), the
verification refits with their sign certificates (:mod:`.retrain`, :mod:`.certify`) and the verified minimal sets
(:mod:`.minimal`).  Its softmax counterpart, with the same methods, is
:class:`cfdkit.linear.multiclass.MultinomialEngine`; with two classes a relabel's new label is ``1 - y``.

Work is cut into units of whole blocks (:mod:`.units`), so ``n_jobs`` never changes a result; on CUDA,
Algorithm 1's blocks stay on the device (:mod:`.pipelining`).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.arrays import DTYPE, Design, to_torch_matrix
from ..core.parallel import block_runs, run_chunks
from ..core.solvers import InverseHVP
from ..core.validation import check_features, check_labels, check_labels_any, feature_names_of, fit_fingerprint
from .certify import certificate, relabel_question
from .model import FitInfo, hessian_solver, newton
from .removal import removal_sets
from .results import FlipSets, Verification
from .retrain import (FittedState, members_per_batch, minimal_prefix, probabilities_after, refit_sets,
                      use_explicit_inverse)
from .scores import compute_scores, train_quadratic
from .selection import greedy_sets
from .settings import Settings
from .units import certificate_answers, minimal_rows, refit_chunk, search_chunk, search_rows
from .minimal import SearchFields

__all__ = ["BinomialEngine", "check_coef_init"]


class BinomialEngine:
    """Two classes (labels 0/1): ``P(y=1 | x) = sigma(w . [x, 1])``.

    After :meth:`fit`: ``state`` (:class:`~cfdkit.linear.retrain.FittedState`), ``classes`` ``[0, 1]``,
    ``coef`` (d,), ``intercept`` (float), ``y_train``, ``n_features``, ``n_train``, ``feature_names`` (or None),
    ``fit_info``, ``hessian_diagnostics``, ``fingerprint``, ``seconds``.
    """

    name = "binomial"

    def __init__(self, settings: Settings):
        self.settings = settings

    # ----------------------------------------------------------------- fit
    def fit(self, X, y, coef_init=None) -> "BinomialEngine":
        s = self.settings
        t0 = time.perf_counter()
        self.feature_names = feature_names_of(X)
        Xt = check_features(X, s.device, "X_train")
        y_np = check_labels(y, Xt.shape[0], "y_train")
        train = Design.from_tensor(Xt)
        yt = torch.as_tensor(y_np, dtype=DTYPE, device=s.device)
        W0 = torch.zeros(train.p, 1, dtype=DTYPE, device=s.device)
        if coef_init is not None:
            W0[:, 0] = torch.as_tensor(check_coef_init(coef_init, train.p), device=s.device)
        W, info = newton(train, yt[:, None], W0, s.l2, tol=s.tol, max_iter=s.max_iter)
        w = W[:, 0]
        if not info.converged[0]:
            warnings.warn(f"The logistic-regression fit stopped at gradient norm {info.grad_norm[0]:.3e} "
                          f"(tol={s.tol:.1e}) after {info.iterations[0]} Newton steps; results are "
                          "approximate. Increase max_iter or l2.", RuntimeWarning, stacklevel=3)
        ihvp = hessian_solver(train, w, s.l2, InverseHVP(s.solver, **s.inverse_hvp_options()))
        sigma = torch.sigmoid(train.matvec(w))
        self.state = FittedState(train, yt, w, s.l2, ihvp, sigma, s.tol, s.max_iter, s.memory_budget)
        self.classes = np.array([0, 1])
        self.y_train = y_np
        self.n_features = int(Xt.shape[1])
        self.n_train = int(Xt.shape[0])
        self.coef = w[:-1].cpu().numpy().copy()
        self.intercept = float(w[-1])
        self.fit_info = info
        self.hessian_diagnostics = ihvp.fit_diagnostics_
        params = (s.l2, s.threshold, s.tol, s.max_iter, s.solver, s.seed,
                  sorted((str(k), repr(v)) for k, v in (s.solver_options or {}).items()))
        self.fingerprint = fit_fingerprint({"X": Xt, "y": y_np, "w": w}, params)
        self.seconds = time.perf_counter() - t0
        return self

    # ----------------------------------------------------------- predictions
    def positive_proba(self, Xt: Design) -> np.ndarray:
        """``P(y=1)`` of each row, float64 (n,)."""
        return torch.sigmoid(Xt.matvec(self.state.w)).cpu().numpy()

    def proba(self, Xt: Design) -> np.ndarray:
        """Probabilities of ``classes`` ``[0, 1]``, float64 (n, 2) (as scikit-learn's ``predict_proba``)."""
        p = self.positive_proba(Xt)
        return np.column_stack([1.0 - p, p])

    # ----------------------------------------------------------- blocks
    def block_rows(self, n_test: int) -> int:
        """Test rows per score block (the unit of work) within ``memory_budget``."""
        per_row = 8 * 4 * max(self.n_train, self.state.train.p)
        return int(max(1, min(n_test, self.settings.memory_budget // per_row)))

    def nbytes(self) -> int:
        """Bytes of the fitted state's tensors (what joblib's Dask backend sees when it decides to scatter)."""
        st = self.state
        X = st.train.X
        feats = int(X.values().numel()) * 2 if X.layout == torch.sparse_csr else X.numel()
        return int(8 * (feats + 3 * st.train.n + st.train.p * (st.train.p + 1)))

    def selector(self, spec: tuple):
        """``select(test_block, prob_block, effects) -> (sets, deltas)`` for a picklable ``spec``."""
        tau = self.settings.threshold
        if spec[0] == "relabel":
            def select(sub, prob, eff):
                return greedy_sets(eff, prob, tau, inplace=True)[1:]
        else:
            _, algorithm, max_rounds, min_shrink = spec

            def select(sub, prob, eff):
                return removal_sets(self.state, sub, prob, eff, tau, algorithm, max_rounds, min_shrink)
        return select

    # ----------------------------------------------------------- scores and sets
    def scores(self, Xt: Design, method: str, y_test=None) -> np.ndarray:
        s, st = self.settings, self.state
        sig_t = torch.sigmoid(Xt.matvec(st.w))
        if y_test is None:
            yt = (sig_t > s.threshold).to(DTYPE)
        else:
            yt = torch.as_tensor(check_labels_any(y_test, Xt.n), dtype=DTYPE, device=s.device)
        q_train = train_quadratic(st.train, st.ihvp) if method == "relatif" else None
        out = np.empty((Xt.n, self.n_train))
        step = self.block_rows(Xt.n)
        starts = list(range(0, Xt.n, step))
        for a in tqdm(starts, desc=f"scores ({method})", disable=not s.progress or len(starts) < 2, leave=False):
            rows = torch.arange(a, min(Xt.n, a + step), device=s.device)
            sc, _ = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp, Xt=Xt.rows(rows),
                                   sigma_t=sig_t[rows], y_t=yt[rows], seed=s.seed, row_offset=a, q_train=q_train)
            out[a:a + len(rows)] = sc.cpu().numpy()
        return out

    def check_target_class(self, target_class) -> None:
        if target_class is not None:
            raise ValueError("target_class is for more than two classes; with two classes a flip always goes to "
                             "the other class. Leave target_class=None.")

    def flip_sets(self, Xt: Design, *, target_class=None, n_jobs=None) -> FlipSets:
        self.check_target_class(target_class)
        return self._search(Xt, "ip_relabel", "relabel", "ip_relabel", "flip sets", ("relabel",), n_jobs)

    def removal_sets(self, Xt: Design, algorithm: str, max_rounds: int, min_shrink: int) -> FlipSets:
        return self._search(Xt, "ip_remove", "remove", f"removal_{algorithm}", f"removal {algorithm}",
                            ("remove", algorithm, max_rounds, min_shrink))

    def _search(self, Xt: Design, method: str, kind: str, name: str, desc: str, spec: tuple, n_jobs=None) -> FlipSets:
        """Scores block by block, then the selection ``spec`` names (see :meth:`selector`).

        The blocks (``memory_budget`` rows each) are the units of work: ``n_jobs`` hands
        contiguous runs of whole blocks to joblib (:mod:`cfdkit.core.parallel`), so the
        result does not depend on ``n_jobs``.
        """
        t0 = time.perf_counter()
        sig_t = torch.sigmoid(Xt.matvec(self.state.w))
        step = self.block_rows(Xt.n)
        bounds = block_runs(Xt.n, step, n_jobs)
        if len(bounds) <= 1:
            sets, deltas, diag = search_rows(self, Xt, sig_t, step, method, spec, desc)
        else:
            plain = Xt.to_plain()
            args = [(plain[a:b], sig_t[a:b].cpu(), step, method, spec) for a, b in bounds]
            parts = run_chunks(search_chunk, self, args, n_jobs, nbytes=self.nbytes())
            sets = [s_ for part in parts for s_ in part[0]]
            deltas = [d for part in parts for d in part[1]]
            diag = parts[-1][2]
        return FlipSets.from_lists(kind=kind, method=name, threshold=self.settings.threshold,
                                   prob=sig_t.cpu().numpy(), sets=sets, deltas=deltas,
                                   seconds=time.perf_counter() - t0, diagnostics=diag, X_test=Xt.to_plain(),
                                   fingerprint=self.fingerprint, n_train=self.n_train,
                                   new_labels=[1 - self.y_train[s_] for s_ in sets] if kind == "relabel" else None)

    # ----------------------------------------------------------- verification
    def check_result(self, res, name: str = "res") -> None:
        """Refuse results from another fit (or not from this engine at all)."""
        if not isinstance(res, FlipSets):
            raise TypeError(f"{name} must be the FlipSets returned by flip_sets/removal_sets; got {type(res).__name__}.")
        if res.fingerprint is None or res.fingerprint != self.fingerprint or res.X_test is None:
            raise ValueError(f"{name} was not produced by this audit's current fit: it came from another fit "
                             f"(its fit fingerprint {str(res.fingerprint)[:12]}... differs "
                             f"from this audit's {self.fingerprint[:12]}...: other training data, labels, "
                             "parameters or coefficients). Recompute it with this audit: audit.flip_sets(X_test) "
                             "or audit.removal_sets(X_test).")

    def result_design(self, res) -> Design:
        """The test design of a result (its plain ``X_test``) back on this engine's device."""
        return Design.from_tensor(to_torch_matrix(res.X_test, self.settings.device, "res.X_test"))

    def retrain_probabilities(self, Xt: Design, sets, kind: str, new_labels, check_index) -> np.ndarray:
        """``P(y=1)`` (n_test,) after refitting with ``sets[i]`` relabeled (or removed); ``check_index(s, i)``
        checks one index set."""
        if new_labels is not None:
            raise ValueError("new_labels is for more than two classes; with two classes a relabel flips 0 <-> 1. "
                             "Leave new_labels=None.")
        if isinstance(sets, (str, bytes)) or not hasattr(sets, "__len__"):
            raise TypeError(f"sets must be a list of index arrays, one per row of X_test; got {type(sets).__name__}.")
        if len(sets) != Xt.n:
            raise ValueError(f"sets has {len(sets)} entries but X_test has {Xt.n} rows; pass one index set per test row.")
        clean = [check_index(s, i) for i, s in enumerate(sets)]
        rows = np.array([i for i, s in enumerate(clean) if len(s) > 0], dtype=np.int64)
        out = torch.sigmoid(Xt.matvec(self.state.w)).cpu().numpy()
        if rows.size:
            W, info = refit_sets(self.state, [clean[i] for i in rows], kind, progress=self.settings.progress)
            out[rows] = probabilities_after(self.state, Xt, rows, W)
            if not info.converged.all():
                bad = rows[~info.converged]
                out[bad] = np.nan
                warnings.warn(f"{bad.size} refits stopped above tol={self.state.tol:.1e}; their probabilities are "
                              "NaN (no answer). Increase max_iter.", RuntimeWarning, stacklevel=3)
        return out

    def verify(self, res: FlipSets, *, minimize: bool, max_expand, n_jobs, certify: bool) -> Verification:
        """:meth:`RelabelAudit.verify` on two classes (arguments checked)."""
        self.check_result(res)
        t0 = time.perf_counter()
        st = self.state
        Xt = self.result_design(res)
        n = len(res)
        found = res.size > 0
        rows = np.nonzero(found)[0]
        new_prob = np.full(n, np.nan)
        lo_prob, hi_prob = np.full(n, np.nan), np.full(n, np.nan)
        gn = np.full(n, np.nan)
        conv = np.ones(n, dtype=bool)  # no set: nothing to refit, the answer (not flipped) is known
        cert = np.zeros(n, dtype=bool)
        refits = 0
        orig = res.prob > res.threshold
        above = np.zeros(n, dtype=bool)
        if rows.size:
            ask = (Xt, rows, res.threshold) if certify and res.kind == "relabel" else None
            W, info, ans = self.refit_units([res.indices(i) for i in rows], res.kind, n_jobs, "verifying", ask=ask)
            refits += rows.size
            new_prob[rows] = probabilities_after(st, Xt, rows, W)
            gn[rows], conv[rows] = info.grad_norm, info.converged
            above[rows] = new_prob[rows] > res.threshold
            lo_prob[rows] = hi_prob[rows] = new_prob[rows]
            if ans is not None:
                d = ans["decided"] & ~info.converged
                r = rows[d]
                cert[r] = True
                above[r] = ans["above"][d]
                lo_prob[r] = 1.0 / (1.0 + np.exp(-ans["lo"][d]))
                hi_prob[r] = 1.0 / (1.0 + np.exp(-ans["hi"][d]))
                new_prob[r] = 1.0 / (1.0 + np.exp(-0.5 * (ans["lo"][d] + ans["hi"][d])))
            known = conv[rows] | cert[rows]
            lo_prob[rows[~known]] = hi_prob[rows[~known]] = np.nan
            if not known.all():
                warnings.warn(f"{int((~known).sum())} verification refits stopped above tol={st.tol:.1e} "
                              f"(max gradient norm {np.nanmax(info.grad_norm[~known]):.2e}) without a certificate; "
                              "those rows are marked decided_by='undecided' and counted neither as flipped nor as "
                              "not flipped.", RuntimeWarning, stacklevel=3)
        known = conv | cert
        flipped_b = np.zeros(n, dtype=bool)
        flipped_b[rows] = above[rows] != orig[rows]
        flipped_b &= known
        if known.all():
            flipped = flipped_b
        else:
            flipped = flipped_b.astype(np.float64)
            flipped[~known] = np.nan
        pred_delta = res.predicted_prob - res.prob
        act_delta = np.where(cert, np.nan, new_prob - res.prob)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(pred_delta - act_delta) / np.abs(act_delta)
        ver = Verification(res, flipped, new_prob, pred_delta, act_delta, rel, gn, conv, fingerprint=res.fingerprint,
                           certified=cert, new_prob_low=lo_prob, new_prob_high=hi_prob)
        if minimize:
            vs, vp, extra, exact = minimal_prefix(st, res, Xt, flipped_b, new_prob, known, max_expand,
                                                  progress=self.settings.progress, certified=cert)
            ver.verified_size, ver.verified_new_prob, ver.verified_size_exact = vs, vp, exact
            refits += extra
        ver.refits = refits
        ver.seconds = time.perf_counter() - t0
        return ver

    def refit_units(self, sets, kind: str, n_jobs, desc: str, ask=None):
        """``refit_sets`` with contiguous runs of whole refit batches handed to joblib workers.

        ``ask`` (optional, relabel refits): ``(Xt, rows, tau)`` — refit ``j`` asks whether test row ``rows[j]`` of
        ``Xt`` lands above ``tau``, and stops once a sign certificate decides it
        (:mod:`cfdkit.linear.certify`).  Returns ``(W, info, answers)``; ``answers`` is None without ``ask``,
        else a dict of ``decided``, ``above``, ``lo``, ``hi`` (m,) (certified logit bounds).
        """
        st = self.state
        runs = block_runs(len(sets), members_per_batch(st), n_jobs)
        # one steering for every chunk, chosen from the whole call (results do not depend on n_jobs)
        explicit = use_explicit_inverse(st, len(sets))
        if ask is not None and certificate(st) is None:
            ask = None  # no exact H0^{-1}: every refit converges
        if len(runs) <= 1:
            q = None if ask is None else relabel_question(st, ask[0], ask[1], ask[2])
            W, info = refit_sets(st, sets, kind, progress=self.settings.progress, desc=desc,
                                 explicit_inverse=explicit, question=q)
            return W, info, certificate_answers(q)
        if ask is None:
            args = [(sets[a:b], kind, explicit, None) for a, b in runs]
        else:  # each worker certifies its own columns' rows (kappa0 travels cached on the state)
            Xt, rows, tau = ask
            plain = Xt.to_plain()
            args = [(sets[a:b], kind, explicit, (plain[np.asarray(rows[a:b])], tau)) for a, b in runs]
        parts = run_chunks(refit_chunk, self, args, n_jobs, nbytes=self.nbytes())
        W = torch.cat([p[0].to(self.settings.device) for p in parts], dim=1)
        info = FitInfo(np.concatenate([p[1].grad_norm for p in parts]),
                       np.concatenate([p[1].iterations for p in parts]),
                       np.concatenate([p[1].converged for p in parts]),
                       None if ask is None else np.concatenate([p[1].certified for p in parts]))
        answers = None if ask is None else {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
        return W, info, answers

    # ----------------------------------------------------------- minimal sets
    def minimal_sets(self, Xt: Design, *, target_class, n_jobs, max_size, singles_limit, single_candidates,
                     pairs_limit, pair_candidates, triple_candidates, max_rounds, orderings):
        """:meth:`RelabelAudit.minimal_sets` on two classes (arguments checked); see :mod:`cfdkit.linear.minimal`."""
        if target_class is not None:
            raise ValueError("target_class is for more than two classes; leave target_class=None.")
        t0 = time.perf_counter()
        sig_t = torch.sigmoid(Xt.matvec(self.state.w))
        step = self.block_rows(Xt.n)
        kw = dict(max_size=max_size, singles_limit=singles_limit, single_candidates=single_candidates,
                  pairs_limit=pairs_limit, pair_candidates=pair_candidates, triple_candidates=triple_candidates,
                  max_rounds=max_rounds, orderings=orderings)
        bounds = block_runs(Xt.n, step, n_jobs)
        if len(bounds) <= 1:
            fields, est = minimal_rows(self, Xt, sig_t, step, kw)
        else:
            plain = Xt.to_plain()
            parts = run_chunks(minimal_rows, self, [(plain[a:b], sig_t[a:b].cpu(), step, kw) for a, b in bounds],
                               n_jobs, nbytes=self.nbytes())
            fields, est = SearchFields.concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return fields.result(self.settings.threshold, est, time.perf_counter() - t0, self.fingerprint,
                             Xt.to_plain(), self.y_train)


def check_coef_init(coef_init, p: int) -> np.ndarray:
    """coef_init: (n_features + 1,) finite floats, intercept last."""
    try:
        arr = np.asarray(coef_init)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"coef_init must be an array of {p} numbers (coefficients, then the intercept).") from exc
    if np.iscomplexobj(arr) or arr.dtype.kind not in "iuf":
        raise TypeError(f"coef_init must be real numbers; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim <= 1 else arr
    if arr.shape != (p,):
        raise ValueError(f"coef_init must have shape ({p},) (n_features coefficients, then the intercept); "
                         f"got {np.shape(coef_init)}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("coef_init contains NaN or infinite values; pass finite starting coefficients or None.")
    return arr
