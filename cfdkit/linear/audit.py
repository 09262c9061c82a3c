"""``RelabelAudit``: fit once, then ask which labels would flip each prediction.

The data path: features -> logistic regression (:mod:`cfdkit.linear.model`) ->
Hessian factorization, once (:mod:`cfdkit.core.solvers`) -> scores
(:mod:`cfdkit.linear.scores`) -> flip sets (:mod:`cfdkit.linear.selection`) -> verification
by retraining (:mod:`cfdkit.linear.retrain`).  This class is the thin layer that
validates inputs and threads the fitted state through those functions; it
follows scikit-learn's estimator contract (``get_params``/``clone``, parameters
stored as given and validated in :meth:`fit`, fitted attributes ending in ``_``).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from ..core.arrays import DTYPE, Design, csr, default_memory_budget, resolve_device, to_torch_matrix
from ..core.parallel import check_n_jobs, effective_workers, run_chunks, unit_runs
from ..core.solvers import SOLVERS, InverseHVP
from ..core.validation import (NotFittedError, align_features, check_bool, check_bytes, check_choice, check_features,
                               check_labels, check_labels_any, check_nonneg_int, check_positive, check_positive_int,
                               check_seed, check_threshold, feature_names_of, fit_fingerprint)
from .certify import certificate, relabel_question
from .minimal import build_result, minimal_search
from .model import FitInfo, hessian_solver, newton
from .removal import removal_sets
from .results import FlipSets, Verification
from .retrain import (FittedState, members_per_batch, minimal_prefix, probabilities_after, refit_sets,
                      use_explicit_inverse)
from .scores import METHODS, compute_scores, train_quadratic
from .selection import greedy_sets, greedy_sets_device


class RelabelAudit(BaseEstimator):
    """Which training labels, relabeled, would flip each test prediction?

    Fits an L2-regularized logistic regression (float64, torch; the same
    optimum as ``sklearn.linear_model.LogisticRegression(C=1/l2)``), factors
    its Hessian once, and answers for every test point at once:

    * :meth:`scores` — (n_test, n_train) influence-style scores,
    * :meth:`flip_sets` — Algorithm 1 (Yang, Xu & Yu 2024): the smallest greedy
      set ``S_t`` whose relabeling is estimated to cross the threshold,
    * :meth:`verify` — retrain with each set flipped and check,
    * :meth:`removal_sets` — the removal baselines (Alg1, Alg2) for comparison.

    Parameters
    ----------
    l2 : float
        Regularization ``l2`` of ``sum_i L_i + l2/2 ||w||^2`` (= 1/C in scikit-learn).
    threshold : float in (0, 1)
        Decision threshold ``tau``: predicted label is ``P(y=1) > tau``.
    solver : {"cholesky", "cg", "lissa", "arnoldi"}
        Inverse-Hessian solver (see :class:`cfdkit.core.solvers.InverseHVP`).
    device : None, "cpu", "cuda" or torch.device
        None uses CUDA when available, else the CPU.
    tol : float
        Gradient-norm tolerance of the fit and of every verification refit.
    max_iter : int
        Newton iteration cap.
    solver_options : dict, optional
        Passed to :class:`~cfdkit.core.solvers.InverseHVP` (``tol``, ``rank``, ...).
    memory_budget : int or str
        Bytes (or "512MB") for score blocks and batched refits.  ``"auto"`` (default): a quarter
        of the device's free memory, at most 1 GiB, rounded down to a power of two MiB
        (:func:`cfdkit.core.arrays.default_memory_budget`).  The blocks it sets are the units of
        work of ``n_jobs``; results depend on them only at round-off level.
    seed : int
        Seed for the random baseline and the solvers' random starts.
    progress : bool
        Show tqdm progress bars on long work.

    Attributes (after fit)
    ----------------------
    coef_ : np.ndarray (n_features,), intercept_ : float
    n_features_in_ : int, n_train_ : int
    feature_names_in_ : np.ndarray of str (n_features,)
        Only when fitted on a DataFrame with string column names; test
        DataFrames are then reordered by name (missing/unexpected columns are
        refused), and arrays are used by position with a warning.
    fit_fingerprint_ : str
        Hash of the training data and shape, labels, parameters and
        coefficients; every FlipSets/Verification carries it as
        ``fingerprint``, and :meth:`verify` refuses results of another fit.
    fit_info_ : cfdkit.linear.model.FitInfo
    hessian_diagnostics_ : cfdkit.core.solvers.SolverDiagnostics
    fit_seconds_ : float
    preprocessor_ : sklearn Pipeline
        Only from :meth:`from_sklearn` with a Pipeline: its fitted preceding
        steps, applied (``transform``) to every raw test input.
    """

    def __init__(self, l2: float = 1.0, threshold: float = 0.5, solver: str = "cholesky", device=None, *,
                 tol: float = 1e-10, max_iter: int = 100, solver_options: dict | None = None,
                 memory_budget="auto", seed: int = 0, progress: bool = False):
        self.l2 = l2
        self.threshold = threshold
        self.solver = solver
        self.device = device
        self.tol = tol
        self.max_iter = max_iter
        self.solver_options = solver_options
        self.memory_budget = memory_budget
        self.seed = seed
        self.progress = progress

    # ----------------------------------------------------------------- fit
    def _validate_params(self):
        self.l2_ = check_positive(self.l2, "l2", "Regularization must be positive (scikit-learn's C = 1/l2).")
        self.threshold_ = check_threshold(self.threshold)
        check_choice(self.solver, "solver", SOLVERS)
        self.device_ = resolve_device(self.device)
        self.tol_ = check_positive(self.tol, "tol")
        self.max_iter_ = check_positive_int(self.max_iter, "max_iter")
        self.memory_budget_ = (default_memory_budget(self.device_) if isinstance(self.memory_budget, str)
                               and self.memory_budget.strip().lower() == "auto" else check_bytes(self.memory_budget))
        self.seed_ = check_seed(self.seed)
        check_bool(self.progress, "progress")
        if self.solver_options is not None and not isinstance(self.solver_options, dict):
            raise TypeError(f"solver_options must be a dict or None; got {type(self.solver_options).__name__}.")
        opts = dict(self.solver_options or {})
        opts.setdefault("seed", self.seed_)
        try:
            InverseHVP(self.solver, **opts)
        except TypeError as exc:
            raise TypeError(f"solver_options={self.solver_options!r} has an option InverseHVP does not take "
                            f"({exc}); see cfdkit.core.solvers.InverseHVP for tol, maxiter, scale, rank, n_iter, "
                            "damping, condition, seed, warn.") from exc
        except ValueError as exc:
            raise ValueError(f"solver_options: {exc}") from exc

    def fit(self, X, y, *, coef_init=None):
        """Fit the model on ``X`` (n, d) and binary labels ``y`` (n,), then factor the Hessian.

        With more than two distinct labels (integers or strings) the model is multinomial
        (softmax) L2 logistic regression; see :mod:`cfdkit.linear.multiclass` (then
        ``classes_``, ``n_classes_``, ``coef_`` (K, d) and ``intercept_`` (K,)).

        ``X`` may be numpy, scipy.sparse (kept sparse), pandas, torch or CuPy.
        """
        self._validate_params()
        self.__dict__.pop("preprocessor_", None)  # fit() takes features; only from_sklearn keeps pipeline steps
        for attr in ("multiclass_", "classes_", "n_classes_"):
            self.__dict__.pop(attr, None)
        from . import multiclass as mc
        if mc.is_multiclass(y):  # more than two classes: softmax path (cfdkit.linear.multiclass)
            return mc.fit_audit(self, X, y, coef_init)
        t0 = time.perf_counter()
        names = feature_names_of(X)
        Xt = check_features(X, self.device_, "X_train")
        y_np = check_labels(y, Xt.shape[0], "y_train")
        train = Design.from_tensor(Xt)
        yt = torch.as_tensor(y_np, dtype=DTYPE, device=self.device_)
        W0 = torch.zeros(train.p, 1, dtype=DTYPE, device=self.device_)
        if coef_init is not None:
            W0[:, 0] = torch.as_tensor(_check_coef_init(coef_init, train.p), device=self.device_)
        W, info = newton(train, yt[:, None], W0, self.l2_, tol=self.tol_, max_iter=self.max_iter_)
        w = W[:, 0]
        if not info.converged[0]:
            warnings.warn(f"The logistic-regression fit stopped at gradient norm {info.grad_norm[0]:.3e} "
                          f"(tol={self.tol_:.1e}) after {info.iterations[0]} Newton steps; results are "
                          "approximate. Increase max_iter or l2.", RuntimeWarning, stacklevel=2)
        opts = dict(self.solver_options or {})
        opts.setdefault("seed", self.seed_)
        ihvp = hessian_solver(train, w, self.l2_, InverseHVP(self.solver, **opts))
        sigma = torch.sigmoid(train.matvec(w))
        self.state_ = FittedState(train, yt, w, self.l2_, ihvp, sigma, self.tol_, self.max_iter_, self.memory_budget_)
        self.y_train_ = y_np
        self.n_features_in_ = int(Xt.shape[1])
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_train_ = int(Xt.shape[0])
        self.coef_ = w[:-1].cpu().numpy().copy()
        self.intercept_ = float(w[-1])
        self.fit_info_ = info
        self.hessian_diagnostics_ = ihvp.fit_diagnostics_
        self.fit_fingerprint_ = self._fingerprint(Xt, y_np, w)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _fingerprint(self, Xt: torch.Tensor, y_np: np.ndarray, w: torch.Tensor) -> str:
        """Hash of the fitted state: training data and shape, labels, parameters, coefficients."""
        params = (self.l2_, self.threshold_, self.tol_, self.max_iter_, self.solver, self.seed_,
                  sorted((str(k), repr(v)) for k, v in (self.solver_options or {}).items()))
        return fit_fingerprint({"X": Xt, "y": y_np, "w": w}, params)

    @classmethod
    def from_sklearn(cls, estimator, X, y, *, threshold: float = 0.5, solver: str = "cholesky", device=None, **kw):
        """Audit a fitted ``sklearn.linear_model.LogisticRegression``, alone or ending a ``Pipeline``.

        Its ``C``, penalty and intercept define the objective (``l2 = 1/C``);
        its coefficients warm-start a refit to ``tol``, so the audit works at
        the exact optimum.  Settings whose objective cfdkit cannot reproduce
        (L1/elastic-net penalties, liblinear's penalized intercept, class or
        sample weights, no intercept, multiclass) are refused.

        A fitted ``sklearn.pipeline.Pipeline`` (e.g. ``TfidfVectorizer`` or a
        ``ColumnTransformer``, then ``LogisticRegression``) is audited on the
        output of its fitted preceding steps (``transform`` only, nothing is
        refitted): pass the *raw* ``X`` (texts, a DataFrame) it was fitted on.
        The steps are kept as ``preprocessor_`` and every later query
        (``flip_sets``, ``predict_proba``, ...) takes raw test inputs too;
        training indices in the results are row positions of the raw ``X``.
        """
        from sklearn.linear_model import LogisticRegression

        pre, estimator, X = _split_pipeline(estimator, X)
        if not isinstance(estimator, LogisticRegression):
            raise TypeError(f"estimator must be a sklearn LogisticRegression; got {type(estimator).__name__}.")
        if not hasattr(estimator, "coef_"):
            raise ValueError("estimator is not fitted; call estimator.fit(X, y) first or use RelabelAudit(...).fit(X, y).")
        params = estimator.get_params()
        penalty = params.get("penalty", "deprecated")
        l1_ratio = params.get("l1_ratio", 0.0) or 0.0
        if penalty not in ("l2", "deprecated") or (penalty == "deprecated" and l1_ratio not in (0, 0.0, None)):
            raise ValueError(f"estimator uses penalty={penalty!r}, l1_ratio={l1_ratio!r}; cfdkit reproduces only the "
                             "L2 penalty. Refit with LogisticRegression(C=..., l1_ratio=0) (L2).")
        if params.get("C") is None or not np.isfinite(params["C"]):
            raise ValueError("estimator has no finite C (unpenalized); cfdkit needs l2 = 1/C > 0.")
        if not params.get("fit_intercept", True):
            raise ValueError("estimator was fitted without an intercept; cfdkit's objective has an unpenalized "
                             "intercept. Refit with fit_intercept=True.")
        if params.get("solver") == "liblinear":
            raise ValueError("solver='liblinear' penalizes the intercept, which cfdkit does not reproduce; refit "
                             "with solver='lbfgs' or 'newton-cholesky'.")
        if params.get("class_weight") is not None:
            raise ValueError("class_weight is set; cfdkit's objective weighs every sample equally. Refit without it.")
        if estimator.coef_.shape[0] != 1 or len(estimator.classes_) != 2:
            raise ValueError("estimator is not a binary classifier; cfdkit audits binary labels.")
        if not np.array_equal(np.asarray(estimator.classes_), [0, 1]):
            raise ValueError(f"estimator.classes_ is {list(estimator.classes_)}; map labels to 0/1 and refit.")
        audit = cls(l2=1.0 / float(params["C"]), threshold=threshold, solver=solver, device=device, **kw)
        init = np.concatenate([estimator.coef_[0], estimator.intercept_]).astype(np.float64)
        if init.shape[0] != _n_columns(X) + 1:
            raise ValueError(f"estimator has {init.shape[0] - 1} coefficients but X has {_n_columns(X)} columns; "
                             "pass the X/y the estimator was fitted on.")
        audit.fit(X, y, coef_init=init)
        audit._check_matches_estimator(estimator, init, params)
        if pre is not None:
            audit.preprocessor_ = pre
        return audit

    def _check_matches_estimator(self, estimator, v: np.ndarray, params: dict) -> None:
        """Refuse when ``estimator.coef_`` is not (close to) the optimum of the objective on X, y, C.

        The test is on the quantity scikit-learn's solvers stop on: the largest
        entry of the gradient of its *averaged* objective
        ``mean_i L_i + ||w||^2 / (2 C n)`` at ``coef_``, which is
        ``max|grad R(coef_)| / n`` here.  lbfgs, newton-cg and newton-cholesky
        stop when it is below ``tol``; we allow 10 ``tol`` (100 ``tol`` for
        sag/saga, which stop on the change of the weights instead), but never
        less than the float64 precision floor of the problem
        (:func:`_precision_floor`): lbfgs also stops when the objective no
        longer decreases in float64, so a very small ``tol`` (1e-10 and below)
        is not reached by a genuine fit.  A
        tolerance on the coefficients themselves cannot separate the cases:
        measured, genuine fits differ from the exact optimum by up to 7e-2
        relative (saga, C=100, ill-conditioned) while a fit with sample
        weights in [0.2, 2] differs by only 4e-2 — but its gradient (6.6e-3)
        is 100x above the genuine fits' (at most 8.5e-5 with tol=1e-4).
        """
        st = self.state_
        vt = torch.as_tensor(v, dtype=DTYPE, device=self.device_)[:, None]
        from .model import gradient

        G, _ = gradient(st.train, st.y[:, None], vt, st.l2)
        g_avg = float(torch.abs(G).max()) / st.train.n
        tol = float(params.get("tol", 1e-4) or 1e-4)
        solver = params.get("solver", "lbfgs")
        floor = _precision_floor(st.train, st.y, vt[:, 0], st.l2)
        limit = max((100.0 if solver in ("sag", "saga") else 10.0) * tol, floor)
        w = np.concatenate([self.coef_, [self.intercept_]])
        rel = float(np.max(np.abs(w - v)) / max(1.0, float(np.max(np.abs(w)))))
        self.sklearn_gradient_ = g_avg
        self.sklearn_coef_rel_diff_ = rel
        if g_avg > limit:
            n_iter = np.max(getattr(estimator, "n_iter_", [0]))
            early = (f" It also stopped at max_iter={params.get('max_iter')} (n_iter_={n_iter}), so it may not have "
                     "converged." if n_iter >= (params.get("max_iter") or np.inf) else "")
            why = (f"> {limit:.1g}, the float64 precision floor of this problem; tol={tol:g} is below it"
                   if floor > 10.0 * tol else f"> {limit:.1g} = {limit / tol:g} x tol")
            raise ValueError(
                f"estimator.coef_ is not the optimum of LogisticRegression(C={params['C']!r}) on the X and y given: "
                f"its gradient is {g_avg:.3g} (scikit-learn units, {why}) and it differs from the optimum by "
                f"{rel:.3g} (max relative).{early} Likely causes: the estimator was fitted on other X/y than passed "
                "here (other rows, order or preprocessing), or with sample_weight, or its parameters were changed "
                "with set_params after fit. Pass the same X, y the estimator was fitted on, or refit it.")

    def _check_fitted(self):
        if not hasattr(self, "state_") and not hasattr(self, "multiclass_"):
            raise NotFittedError("This RelabelAudit is not fitted yet; call audit.fit(X_train, y_train) first.")

    def _check_result(self, res, name="res"):
        """Refuse results from another fit (or not from this class at all)."""
        if not isinstance(res, FlipSets):
            raise TypeError(f"{name} must be the FlipSets returned by flip_sets/removal_sets; got {type(res).__name__}.")
        if res.fingerprint is None or res.fingerprint != self.fit_fingerprint_ or res.X_test is None:
            raise ValueError(f"{name} was not produced by this audit's current fit: it came from another fit "
                             f"(its fit fingerprint {str(res.fingerprint)[:12]}... differs "
                             f"from this audit's {self.fit_fingerprint_[:12]}...: other training data, labels, "
                             "parameters or coefficients). Recompute it with this audit: audit.flip_sets(X_test) "
                             "or audit.removal_sets(X_test).")

    # -------------------------------------------------------------- queries
    def _test_design(self, X_test, name="X_test") -> Design:
        self._check_fitted()
        if getattr(self, "preprocessor_", None) is not None:
            X_test = _through(self.preprocessor_, X_test, name)
        X_test = align_features(X_test, getattr(self, "feature_names_in_", None), name)
        return Design.from_tensor(check_features(X_test, self.device_, name, self.n_features_in_))

    def predict_proba(self, X) -> np.ndarray:
        """``P(y=1)`` for each row of ``X``; float64 (n,).  With K > 2 classes: (n, K), columns ``classes_``."""
        if getattr(self, "multiclass_", None) is not None:
            from .multiclass import predict_proba
            return predict_proba(self, self._test_design(X, "X"))
        Xt = self._test_design(X, "X")
        return torch.sigmoid(Xt.matvec(self.state_.w)).cpu().numpy()

    def _block_rows(self, n_test: int) -> int:
        per_row = 8 * 4 * max(self.n_train_, self.state_.train.p)
        return int(max(1, min(n_test, self.memory_budget_ // per_row)))

    def _blocks(self, n, desc):
        step = self._block_rows(n)
        starts = list(range(0, n, step))
        return tqdm(starts, desc=desc, disable=not self.progress or len(starts) < 2, leave=False), step

    def scores(self, X_test, method: str = "ip_relabel", y_test=None) -> np.ndarray:
        """Scores of every training point for every test point, float64 (n_test, n_train).

        See :mod:`cfdkit.linear.scores` for each method's definition and sign.  ``y_test``
        (used by influence, relatif, grad_dot, grad_cos) defaults to the predicted labels.
        """
        check_choice(method, "method", METHODS)
        Xt = self._test_design(X_test)
        self._binary_only("scores")
        st = self.state_
        sig_t = torch.sigmoid(Xt.matvec(st.w))
        if y_test is None:
            yt = (sig_t > self.threshold_).to(DTYPE)
        else:
            yt = torch.as_tensor(check_labels_any(y_test, Xt.n), dtype=DTYPE, device=self.device_)
        q_train = train_quadratic(st.train, st.ihvp) if method == "relatif" else None
        out = np.empty((Xt.n, self.n_train_))
        blocks, step = self._blocks(Xt.n, f"scores ({method})")
        for s in blocks:
            rows = torch.arange(s, min(Xt.n, s + step), device=self.device_)
            sc, _ = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp, Xt=Xt.rows(rows),
                                   sigma_t=sig_t[rows], y_t=yt[rows], seed=self.seed_, row_offset=s, q_train=q_train)
            out[s:s + len(rows)] = sc.cpu().numpy()
        return out

    def _search(self, X_test, method: str, kind: str, name: str, desc: str, spec: tuple, n_jobs=None) -> FlipSets:
        """Scores block by block, then the selection ``spec`` names (see :meth:`_selector`).

        The blocks (``memory_budget`` rows each) are the units of work: ``n_jobs`` hands
        contiguous runs of whole blocks to joblib (:mod:`cfdkit.core.parallel`), so the
        result does not depend on ``n_jobs``.
        """
        Xt = self._test_design(X_test)
        t0 = time.perf_counter()
        st = self.state_
        sig_t = torch.sigmoid(Xt.matvec(st.w))
        step = self._block_rows(Xt.n)
        runs = unit_runs(-(-Xt.n // step), effective_workers(n_jobs))
        if len(runs) <= 1:
            sets, deltas, diag = _search_rows(self, Xt, sig_t, step, method, spec, desc)
        else:
            plain = Xt.to_plain()
            bounds = [(a * step, min(Xt.n, b * step)) for a, b in runs]
            args = [(plain[a:b], sig_t[a:b].cpu(), step, method, spec) for a, b in bounds]
            parts = run_chunks(_search_chunk, self, args, n_jobs, nbytes=self._state_nbytes())
            sets = [s_ for part in parts for s_ in part[0]]
            deltas = [d for part in parts for d in part[1]]
            diag = parts[-1][2]
        return FlipSets.from_lists(kind=kind, method=name, threshold=self.threshold_,
                                   prob=sig_t.cpu().numpy(), sets=sets, deltas=deltas,
                                   seconds=time.perf_counter() - t0, diagnostics=diag, X_test=Xt.to_plain(),
                                   fingerprint=self.fit_fingerprint_, n_train=self.n_train_)

    def _state_nbytes(self) -> int:
        """Bytes of the fitted state's tensors (what joblib's Dask backend sees when it decides to scatter)."""
        st = self.state_
        X = st.train.X
        feats = int(X.values().numel()) * 2 if X.layout == torch.sparse_csr else X.numel()
        return int(8 * (feats + 3 * st.train.n + st.train.p * (st.train.p + 1)))

    def _selector(self, spec: tuple):
        """``select(test_block, prob_block, effects) -> (sets, deltas)`` for a picklable ``spec``."""
        if spec[0] == "relabel":
            def select(sub, prob, eff):
                return greedy_sets(eff, prob, self.threshold_, inplace=True)[1:]
        else:
            _, algorithm, max_rounds, min_shrink = spec

            def select(sub, prob, eff):
                return removal_sets(self.state_, sub, prob, eff, self.threshold_, algorithm, max_rounds, min_shrink)
        return select

    def flip_sets(self, X_test, *, target_class=None, n_jobs=None) -> FlipSets:
        """Algorithm 1 for every test row: the smallest greedy relabel set ``S_t``.

        Memory stays bounded by ``memory_budget``: test rows are processed in
        blocks, and each block is searched with a top-k pass first (on a GPU:
        one pass on the device per block and one copy of all results at the end).  With more
        than two classes it returns a :class:`~cfdkit.linear.multiclass.MulticlassFlipSets`
        (``new_labels(i)``); ``target_class`` (an original class label) then asks
        for sets that make that class the prediction (default: any other class).

        Parameters
        ----------
        X_test : (n_test, n_features) array, sparse matrix or DataFrame
        n_jobs : int, optional
            Workers for joblib (``-1``: all); ``None`` is one process unless a
            joblib backend context is active (e.g. ``parallel_backend("dask")``:
            all Dask workers).  Whole score blocks are the unit of work, so the
            result is bit-for-bit the same for every ``n_jobs``; a problem with
            one block (``n_test`` rows within ``memory_budget``) runs in one
            process.  The fitted state is scattered once to the workers.
        """
        n_jobs = check_n_jobs(n_jobs)
        if getattr(self, "multiclass_", None) is not None:
            from .multiclass import flip_sets
            return flip_sets(self, self._test_design(X_test), target_class=target_class)
        if target_class is not None:
            self._check_fitted()
            raise ValueError("target_class is for more than two classes; with two classes a flip always goes to "
                             "the other class. Leave target_class=None.")
        return self._search(X_test, "ip_relabel", "relabel", "ip_relabel", "flip sets", ("relabel",), n_jobs)

    def removal_sets(self, X_test, algorithm: str = "alg1", max_rounds: int = 100, min_shrink: int = 1) -> FlipSets:
        """Removal baselines: smallest set of training points whose *removal* is estimated to flip.

        ``algorithm="alg1"``: one-shot greedy set from IP-remove scores (Kong et al. 2021;
        Yang, Jain & Wallace 2023, Alg. 1).  ``"alg2"``: Yang et al.'s iterative
        refinement (Alg. 2) — shrink the set, re-estimating the influence with the
        Hessian of the remaining data, up to ``max_rounds`` rounds, stopping when the
        set shrinks by ``min_shrink`` points or fewer.  See :mod:`cfdkit.linear.removal`.
        """
        check_choice(algorithm, "algorithm", ("alg1", "alg2"))
        self._check_fitted()
        self._binary_only("removal_sets")
        max_rounds = check_nonneg_int(max_rounds, "max_rounds")
        min_shrink = check_nonneg_int(min_shrink, "min_shrink")

        return self._search(X_test, "ip_remove", "remove", f"removal_{algorithm}", f"removal {algorithm}",
                            ("remove", algorithm, max_rounds, min_shrink))

    # -------------------------------------------------------- verification
    def retrain_probabilities(self, X_test, sets, kind: str = "relabel", *, new_labels=None) -> np.ndarray:
        """Retrain once per test row with ``sets[i]`` relabeled (or removed); new ``P(y=1)`` (n_test,).

        ``sets`` is a list of index arrays, one per row of ``X_test``.  Empty
        sets give the original probability without a refit.  With more than two
        classes ``new_labels`` (one array of class labels per set, aligned with
        its indices) is required and the result is (n_test, K).
        """
        check_choice(kind, "kind", ("relabel", "remove"))
        if getattr(self, "multiclass_", None) is not None:
            from .multiclass import retrain_probabilities
            if kind != "relabel":
                raise ValueError("kind='remove' is for two classes; with more classes only relabeling is supported.")
            return retrain_probabilities(self, self._test_design(X_test), sets, new_labels, self._check_index_set)
        if new_labels is not None:
            raise ValueError("new_labels is for more than two classes; with two classes a relabel flips 0 <-> 1. "
                             "Leave new_labels=None.")
        Xt = self._test_design(X_test)
        if isinstance(sets, (str, bytes)) or not hasattr(sets, "__len__"):
            raise TypeError(f"sets must be a list of index arrays, one per row of X_test; got {type(sets).__name__}.")
        if len(sets) != Xt.n:
            raise ValueError(f"sets has {len(sets)} entries but X_test has {Xt.n} rows; pass one index set per test row.")
        clean = [self._check_index_set(s, i) for i, s in enumerate(sets)]
        return self._retrain_probs(Xt, clean, kind)

    def _check_index_set(self, s, i):
        raw = np.asarray(s)
        if raw.size and raw.dtype.kind not in "iu":
            if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
                pass  # integral floats (e.g. from a float array) are fine
            else:
                raise TypeError(f"sets[{i}] must hold integer training indices; got dtype {raw.dtype}.")
        a = raw.astype(np.int64).reshape(-1)
        if a.size and (a.min() < 0 or a.max() >= self.n_train_):
            raise ValueError(f"sets[{i}] has indices outside [0, {self.n_train_}); pass training row indices.")
        if np.unique(a).size != a.size:
            raise ValueError(f"sets[{i}] repeats a training index; each point can be relabeled once.")
        return a

    def _retrain_probs(self, Xt: Design, sets, kind):
        rows = np.array([i for i, s in enumerate(sets) if len(s) > 0], dtype=np.int64)
        out = torch.sigmoid(Xt.matvec(self.state_.w)).cpu().numpy()
        if rows.size:
            W, info = refit_sets(self.state_, [sets[i] for i in rows], kind, progress=self.progress)
            out[rows] = probabilities_after(self.state_, Xt, rows, W)
            if not info.converged.all():
                bad = rows[~info.converged]
                out[bad] = np.nan
                warnings.warn(f"{bad.size} refits stopped above tol={self.state_.tol:.1e}; their probabilities are "
                              "NaN (no answer). Increase max_iter.", RuntimeWarning, stacklevel=3)
        return out

    def verify(self, res: FlipSets, minimize: bool = False, max_expand: int | None = None, *,
               n_jobs=None, certify: bool = True) -> Verification:
        """Retrain with every found set applied and check whether the prediction flipped.

        Parameters
        ----------
        res : FlipSets
            From :meth:`flip_sets` or :meth:`removal_sets` of this audit, on
            this fit: a result from another fit (other data, labels,
            parameters or coefficients; see ``fit_fingerprint_``) is refused.
        minimize : bool
            Also find, with real refits, the smallest prefix of the greedy
            order whose retraining flips: bisection finds a flipping prefix,
            then every shorter prefix is refit (flipping is not always
            monotone in ``k``) where it has at most 64 labels
            (``verified_size_exact``); longer ones keep the bisection's answer.
            Where the full estimated set does not flip, prefixes up to
            ``max_expand`` (default: every helpful point) are tried by doubling.
            For sets that need not be prefixes of the greedy order, see
            :meth:`minimal_sets`.
        max_expand : int, optional
            Cap on the prefix length tried by ``minimize``.
        n_jobs : int, optional
            Workers for joblib (see :meth:`flip_sets`); the unit of work is a
            batch of refits (``memory_budget``), so the result is bit-for-bit
            the same for every ``n_jobs``.  ``minimize`` runs in this process, and so does
            everything for more than two classes.
        certify : bool
            Relabel sets (default True): stop each refit as soon as a sign certificate proves on which
            side of the threshold the prediction lands (:mod:`cfdkit.linear.certify`); such rows have
            ``decided_by == "certified"``, ``flipped`` proven, and ``new_prob`` a probability inside the
            proven interval ``[new_prob_low, new_prob_high]`` (``actual_delta``/``rel_error`` NaN: not a
            converged value).  ``False``: every refit converges to ``tol`` (for the estimate's accuracy,
            ``actual_delta``, on every row).

        Returns
        -------
        Verification
            A refit that stops above the gradient tolerance (after the
            globalized Newton method's ``max_iter`` steps) without a certificate is not an answer:
            its row gets ``decided_by == "undecided"`` and ``flipped`` NaN, and
            ``summary()`` computes the flip rate over the answered rows only
            and reports ``n_not_converged``.
        """
        self._check_fitted()
        n_jobs = check_n_jobs(n_jobs)
        if getattr(self, "multiclass_", None) is not None:  # K classes: one process (n_jobs is not used)
            from .multiclass import verify
            if check_bool(minimize, "minimize"):
                raise ValueError("minimize=True is for two classes; with more classes use audit.minimal_sets(X_test).")
            return verify(self, res)
        self._check_result(res)
        minimize = check_bool(minimize, "minimize")
        certify = check_bool(certify, "certify")
        max_expand = check_positive_int(max_expand, "max_expand", allow_none=True)
        t0 = time.perf_counter()
        st = self.state_
        Xt = self._result_design(res)
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
            W, info, ans = self._refit_units([res.indices(i) for i in rows], res.kind, n_jobs, "verifying", ask=ask)
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
                              "not flipped.", RuntimeWarning, stacklevel=2)
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
                                                  progress=self.progress, certified=cert)
            ver.verified_size, ver.verified_new_prob, ver.verified_size_exact = vs, vp, exact
            refits += extra
        ver.refits = refits
        ver.seconds = time.perf_counter() - t0
        return ver

    def _refit_units(self, sets, kind: str, n_jobs, desc: str, ask=None):
        """``refit_sets`` with contiguous runs of whole refit batches handed to joblib workers.

        ``ask`` (optional, relabel refits): ``(Xt, rows, tau)`` — refit ``j`` asks whether test row ``rows[j]`` of
        ``Xt`` lands above ``tau``, and stops once a sign certificate decides it
        (:mod:`cfdkit.linear.certify`).  Returns ``(W, info, answers)``; ``answers`` is None without ``ask``,
        else a dict of ``decided``, ``above``, ``lo``, ``hi`` (m,) (certified logit bounds).
        """
        st = self.state_
        bs = members_per_batch(st)
        runs = unit_runs(-(-len(sets) // bs), effective_workers(n_jobs))
        # one steering for every chunk, chosen from the whole call (results do not depend on n_jobs)
        explicit = use_explicit_inverse(st, len(sets))
        if ask is not None and certificate(st) is None:
            ask = None  # no exact H0^{-1}: every refit converges
        if len(runs) <= 1:
            q = None if ask is None else relabel_question(st, ask[0], ask[1], ask[2])
            W, info = refit_sets(st, sets, kind, progress=self.progress, desc=desc, explicit_inverse=explicit,
                                 question=q)
            return W, info, _answers(q)
        if ask is None:
            args = [(sets[a * bs:b * bs], kind, explicit, None) for a, b in runs]
        else:  # each worker certifies its own columns' rows (kappa0 travels cached on the state)
            Xt, rows, tau = ask
            plain = Xt.to_plain()
            args = [(sets[a * bs:b * bs], kind, explicit, (plain[np.asarray(rows[a * bs:b * bs])], tau))
                    for a, b in runs]
        parts = run_chunks(_refit_chunk, self, args, n_jobs, nbytes=self._state_nbytes())
        W = torch.cat([p[0].to(self.device_) for p in parts], dim=1)
        info = FitInfo(np.concatenate([p[1].grad_norm for p in parts]),
                       np.concatenate([p[1].iterations for p in parts]),
                       np.concatenate([p[1].converged for p in parts]),
                       None if ask is None else np.concatenate([p[1].certified for p in parts]))
        answers = None if ask is None else {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
        return W, info, answers

    def minimal_sets(self, X_test, max_size: int | None = None, *, singles_limit: int = 2000,
                     single_candidates: int = 3, pairs_limit: int = 2000, pair_candidates: int = 6,
                     triple_candidates: int = 6,
                     max_rounds: int = 30, target_class=None, n_jobs=None, orderings=("distance", "ip")):
        """Verified, 1-minimal relabel sets for every row of ``X_test``, with a certified lower bound.

        Every set reported ``"verified"`` flips the prediction under an exact refit: one that converged
        to ``tol`` (``decided_by == "converged"``, the shown set always gets one), or whose side of the
        threshold a sign certificate proved (:mod:`cfdkit.linear.certify`); sets are shrunk to 1-minimal
        (``one_minimal``: dropping any one label stops the flip, each checked by a refit, certified or
        converged).  ``lower_bound`` is a certificate that no relabeling of fewer
        labels flips the prediction.  The search, the property of the sets and the derivation of the
        bound (and when it is 1 = no certificate) are in :mod:`cfdkit.linear.minimal`.  Test rows with
        identical features (within a block, see ``n_jobs``) are searched once and get the same answer.

        Parameters
        ----------
        X_test : (n_test, n_features) array, sparse matrix or DataFrame
        max_size : int, optional
            Largest set searched for (default: every training label).
        singles_limit : int
            Refit every single relabel (exact) when ``n_train <= singles_limit``; otherwise the
            ``single_candidates`` strongest (by IP-relabel) of each row.
        pairs_limit : int
            Refit *every* pair when ``n_train (n_train - 1) / 2 <= pairs_limit``; otherwise the pairs of
            the ``pair_candidates`` strongest candidates of each unanswered row.
        triple_candidates : int
            Triples of that many strongest candidates for rows whose set has >= 4 labels.
        max_rounds : int
            Rounds of the re-linearized greedy search.
        orderings : sequence of {"distance", "ip"}
            Simple orderings whose shortest flipping prefix (doubling, then bisection) is also tried before
            the shrink: "distance", the training points with the row's predicted label nearest first;
            "ip", the IP-relabel order.  ``()`` for none.
        n_jobs : int, optional
            Workers for joblib (see :meth:`flip_sets`).  Each block of ``memory_budget`` test rows
            is searched on its own (the unit of work, whatever ``n_jobs``), so the result is
            bit-for-bit the same for every ``n_jobs``.

        Returns
        -------
        cfdkit.linear.minimal.MinimalSets
            ``size``, ``indices(i)``, ``status``, ``new_prob``, ``lower_bound``, ``estimated_size``
            (Algorithm 1's ``|S_t|``), ``one_minimal``, ``to_frame()``, ``fingerprint``.
        """
        self._check_fitted()
        max_size = check_positive_int(max_size, "max_size", allow_none=True)
        singles_limit = check_nonneg_int(singles_limit, "singles_limit")
        single_candidates = check_nonneg_int(single_candidates, "single_candidates")
        pairs_limit = check_nonneg_int(pairs_limit, "pairs_limit")
        pair_candidates = check_nonneg_int(pair_candidates, "pair_candidates")
        triple_candidates = check_nonneg_int(triple_candidates, "triple_candidates")
        max_rounds = check_positive_int(max_rounds, "max_rounds")
        if isinstance(orderings, str) or not all(o in ("distance", "ip") for o in orderings):
            raise ValueError(f"orderings must be a sequence of 'distance' and/or 'ip' (or () for none); got {orderings!r}.")
        orderings = tuple(dict.fromkeys(orderings))
        n_jobs = check_n_jobs(n_jobs)
        if getattr(self, "multiclass_", None) is not None:  # K classes: cfdkit.linear.multiclass.minimal_search
            from .multiclass import minimal_search as mc_minimal
            return mc_minimal(self, self._test_design(X_test), target_class=target_class, max_size=max_size, singles_limit=singles_limit,
                              pairs_limit=pairs_limit, pair_candidates=max(pair_candidates, 2),
                              triple_candidates=triple_candidates, max_rounds=max_rounds)
        if target_class is not None:
            raise ValueError("target_class is for more than two classes; leave target_class=None.")
        t0 = time.perf_counter()
        Xt = self._test_design(X_test)
        sig_t = torch.sigmoid(Xt.matvec(self.state_.w))
        step = self._block_rows(Xt.n)
        kw = dict(max_size=max_size, singles_limit=singles_limit, single_candidates=single_candidates,
                  pairs_limit=pairs_limit, pair_candidates=pair_candidates, triple_candidates=triple_candidates,
                  max_rounds=max_rounds, orderings=orderings)
        runs = unit_runs(-(-Xt.n // step), effective_workers(n_jobs))
        if len(runs) <= 1:
            fields, est = _minimal_rows(self, Xt, sig_t, step, kw)
        else:
            plain = Xt.to_plain()
            bounds = [(a * step, min(Xt.n, b * step)) for a, b in runs]
            parts = run_chunks(_minimal_rows, self, [(plain[a:b], sig_t[a:b].cpu(), step, kw) for a, b in bounds],
                               n_jobs, nbytes=self._state_nbytes())
            fields, est = _merge_fields([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return build_result(fields, self.threshold_, est, time.perf_counter() - t0, self.fit_fingerprint_,
                            Xt.to_plain())

    def _binary_only(self, name):
        if getattr(self, "multiclass_", None) is not None:
            raise ValueError(f"{name} is for two classes; this audit was fitted on {self.n_classes_} classes "
                             "(use flip_sets, verify, minimal_sets, retrain_probabilities, predict_proba).")

    def _result_design(self, res: FlipSets) -> Design:
        """The test design of a result (its plain ``X_test``) back on this audit's device."""
        return Design.from_tensor(to_torch_matrix(res.X_test, self.device_, "res.X_test"))


# ------------------------------------------------------------------ units of work (run here or on joblib workers)
def _search_rows(audit: RelabelAudit, Xt: Design, sig_t: torch.Tensor, step: int, method: str, spec: tuple,
                 desc: str = "flip sets", device_path: bool | None = None):
    """Scores and selection of ``Xt``'s rows in blocks of ``step`` rows; ``(sets, deltas, diagnostics)``.

    ``device_path`` (default: on CUDA, for relabel sets) keeps every block's result on the device
    (:func:`cfdkit.linear.selection.greedy_sets_device`) and copies them to the host once.
    """
    st = audit.state_
    starts = list(range(0, Xt.n, step))
    bar = tqdm(starts, desc=desc, disable=not audit.progress or len(starts) < 2, leave=False)
    if device_path is None:
        device_path = Xt.device.type == "cuda" and spec[0] == "relabel"
    if device_path:
        return _search_rows_device(audit, Xt, sig_t, step, method, bar)
    select = audit._selector(spec)
    sets, deltas, diag = [], [], None
    for s in bar:
        rows = torch.arange(s, min(Xt.n, s + step), device=Xt.device)
        sub = Xt.rows(rows)
        eff, diag = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp,
                                   Xt=sub, sigma_t=sig_t[rows], y_t=sig_t[rows])
        ss, dd = select(sub, sig_t[rows], eff)
        sets.extend(ss)
        deltas.extend(dd)
    return sets, deltas, diag


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """Start a copy of ``t`` into pinned host memory (asynchronous on CUDA; wait before reading)."""
    if t.device.type == "cpu":
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _search_rows_device(audit: RelabelAudit, Xt: Design, sig_t: torch.Tensor, step: int, method: str, bar):
    """Relabel sets with every block's result kept on the device until two copies at the end.

    Rows one pass cannot settle (long sets, ties across the pass boundary) are recomputed at the
    end, ``step`` rows at a time, with :func:`greedy_sets`.
    """
    st = audit.state_
    parts, diag = [], None
    crow_h = Xt.X.crow_indices().cpu().numpy() if Xt.sparse and Xt.S is None else None  # one copy, not one per block
    for s in bar:
        rows = torch.arange(s, min(Xt.n, s + step), device=Xt.device)
        eff, diag = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp,
                                   Xt=_row_block(Xt, s, min(Xt.n, s + step), crow_h), sigma_t=sig_t[rows],
                                   y_t=sig_t[rows])
        parts.append(greedy_sets_device(eff, sig_t[rows], audit.threshold_, inplace=True))
        del eff
    size_d, pend_d = torch.cat([p[0] for p in parts]), torch.cat([p[3] for p in parts])
    size_h, pend_h = _to_host(size_d), _to_host(pend_d)
    _wait(Xt.device)
    size_h, pend_h = size_h.numpy(), pend_h.numpy()
    kmax = int(size_h.max(initial=0))
    idx_h = _to_host(torch.cat([p[1][:, :kmax] for p in parts]))
    eff_h = _to_host(torch.cat([p[2][:, :kmax] for p in parts]))
    del parts
    _wait(Xt.device)
    idx_h, eff_h = idx_h.numpy(), eff_h.numpy()
    sets = [idx_h[r, :k].astype(np.int64) for r, k in enumerate(size_h)]
    deltas = [eff_h[r, :k].astype(np.float64) for r, k in enumerate(size_h)]
    pend = np.nonzero(pend_h)[0]
    for s in range(0, pend.size, step):
        rr = pend[s:s + step]
        rows = torch.as_tensor(rr, device=Xt.device)
        eff, _ = compute_scores(method, train=st.train, y=st.y, sigma=st.sigma, ihvp=st.ihvp,
                                Xt=Xt.rows(rows), sigma_t=sig_t[rows], y_t=sig_t[rows])
        _, ss, dd = greedy_sets(eff, sig_t[rows], audit.threshold_, inplace=True)
        for j, r in enumerate(rr):
            sets[r], deltas[r] = ss[j], dd[j]
    return sets, deltas, diag


def _row_block(Xt: Design, s: int, e: int, crow_h) -> Design:
    """Rows ``s:e`` of ``Xt``; a device CSR is sliced through its host row pointer and densified (no sync).

    ``Design.rows`` coalesces a COO copy on the device, a host synchronization per block; the scores
    need only the block's dense rows, which are the same numbers either way.
    """
    if crow_h is None:
        return Xt.rows(torch.arange(s, e, device=Xt.device))
    a, b = int(crow_h[s]), int(crow_h[e])
    X = Xt.X
    sub = csr(X.crow_indices()[s:e + 1] - a, X.col_indices()[a:b], X.values()[a:b], (e - s, X.shape[1]))
    return Design(sub.to_dense())


def _search_chunk(audit: RelabelAudit, X_plain, sig_t: torch.Tensor, step: int, method: str, spec: tuple):
    """One run of whole score blocks on a worker: ``X_plain`` rows (numpy or scipy CSR) and their ``P(y=1)``."""
    Xt = Design.from_tensor(to_torch_matrix(X_plain, audit.device_, "X_test"))
    return _search_rows(audit, Xt, sig_t.to(audit.device_), step, method, spec)


def _refit_chunk(audit: RelabelAudit, sets, kind: str, explicit: bool, ask=None):
    """Verification refits of whole batches on a worker: ``(W (p, m) on the CPU, FitInfo, answers)``;
    ``ask``: ``(test rows of the columns, one per set (numpy or scipy CSR), tau)`` or None."""
    q = None
    if ask is not None:
        Xq = Design.from_tensor(to_torch_matrix(ask[0], audit.device_, "X_test"))
        q = relabel_question(audit.state_, Xq, np.arange(Xq.n), ask[1])
    W, info = refit_sets(audit.state_, sets, kind, explicit_inverse=explicit, question=q)
    return W.cpu(), info, _answers(q)


def _answers(q) -> dict | None:
    """The certificate's answers of a :class:`~cfdkit.linear.certify.RefitQuestion` as plain arrays."""
    if q is None:
        return None
    return {"decided": q.decided.copy(), "above": q.above.copy(), "lo": q.lo.copy(), "hi": q.hi.copy()}


def _minimal_rows(audit: RelabelAudit, X_plain, sig_t: torch.Tensor, step: int, kw: dict):
    """``minimal_search`` of each block of ``step`` rows (one block = one unit); ``(fields, estimated sizes)``."""
    Xt = X_plain if isinstance(X_plain, Design) else Design.from_tensor(to_torch_matrix(X_plain, audit.device_,
                                                                                         "X_test"))
    sig_t = sig_t.to(audit.device_)
    fields, est = [], []
    for s in range(0, Xt.n, step):
        rows = torch.arange(s, min(Xt.n, s + step), device=Xt.device)
        sub = Xt.rows(rows)
        sets, _, _ = _search_rows(audit, sub, sig_t[rows], step, "ip_relabel", ("relabel",))
        est.append(np.array([len(x) for x in sets], dtype=np.int64))
        fields.append(minimal_search(audit.state_, sub, audit.threshold_, estimated_sets=sets,
                                     progress=audit.progress, **kw))
    return _merge_fields(fields), np.concatenate(est) if est else np.empty(0, np.int64)


def _merge_fields(parts: list) -> dict:
    """Concatenate ``minimal_search`` fields of consecutive row blocks (counts and timings add up)."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for key, v0 in parts[0].items():
        vals = [p[key] for p in parts]
        if isinstance(v0, np.ndarray):
            out[key] = np.concatenate(vals)
        elif isinstance(v0, list):
            out[key] = [x for v in vals for x in v]
        elif isinstance(v0, dict):
            merged: dict = {}
            for d in vals:
                for k, v in d.items():
                    merged[k] = merged.get(k, 0) + v
            out[key] = merged
        elif isinstance(v0, (int, float, np.number)) and not isinstance(v0, bool):
            out[key] = sum(vals)
        else:
            out[key] = v0
    return out


def _split_pipeline(estimator, X):
    """``(preceding steps or None, last step, X through the preceding steps)`` of a fitted Pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return None, estimator, X
    name, last = estimator.steps[-1]
    if not isinstance(last, LogisticRegression):
        raise TypeError(f"the pipeline's last step {name!r} is a {type(last).__name__}; cfdkit audits pipelines that "
                        "end in a sklearn LogisticRegression (L2, binary). Replace that step or audit another model.")
    if not hasattr(last, "coef_"):
        raise ValueError("the pipeline is not fitted; call pipeline.fit(X_raw, y) first.")
    if len(estimator.steps) == 1:
        return None, last, X
    pre = estimator[:-1]
    return pre, last, _through(pre, X, "X")


def _through(pre, X, name):
    """Raw rows through the pipeline's fitted preceding steps (``transform`` only); one output row per input row."""
    try:
        Xt = pre.transform(X)
    except Exception as exc:  # sklearn raises many types; say where it happened
        raise ValueError(f"{name} could not go through the pipeline's fitted steps "
                         f"({' -> '.join(n for n, _ in pre.steps)}): {type(exc).__name__}: {exc}. Pass raw inputs "
                         "of the kind the pipeline was fitted on (same columns / texts).") from exc
    n_in = len(X) if not hasattr(X, "shape") else X.shape[0]
    if getattr(Xt, "shape", (n_in,))[0] != n_in:
        raise ValueError(f"the pipeline's steps turned {n_in} rows of {name} into {Xt.shape[0]}; cfdkit needs one "
                         "output row per input row to refer results to the raw rows.")
    return Xt


def _n_columns(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[1])
    arr = np.asarray(X, dtype=object)
    return int(arr.shape[1]) if arr.ndim == 2 else -1


def _check_coef_init(coef_init, p: int) -> np.ndarray:
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


def _precision_floor(train, y: torch.Tensor, w: torch.Tensor, l2: float) -> float:
    """The smallest averaged gradient (scikit-learn units) a float64 solver can be asked to reach here.

    scipy's L-BFGS-B (scikit-learn's ``lbfgs``) also stops when one step lowers the averaged objective ``f`` by
    less than ``64 eps max(|f|, 1)``. Near the optimum ``f - f* >= |g|^2 / (2 lam_max)`` (``lam_max`` the largest
    eigenvalue of the averaged Hessian), so that rule can stop at ``|g|`` up to ``sqrt(2 lam_max 64 eps
    max(f, 1))`` however small ``tol`` is. We bound ``lam_max`` by the Frobenius norm (``0.25 ||X~||_F^2 / n +
    l2 / n``) and allow 10 times that gradient: genuine fits with ``tol`` down to 1e-12 pass, while fits on
    other data or with sample weights (gradients of 1e-3 and more) are still refused.
    """
    n = train.n
    X = train.X
    vals = X.values() if X.layout == torch.sparse_csr else X
    lam_max = (0.25 * (float(vals.pow(2).sum()) + n) + l2) / n
    z = train.matvec(w[:, None])[:, 0]
    f = float((torch.nn.functional.softplus(z) - y * z).mean()) + 0.5 * l2 * float(w[:-1].pow(2).sum()) / n
    eps = float(np.finfo(np.float64).eps)
    return 10.0 * float(np.sqrt(2.0 * lam_max * 64.0 * eps * max(abs(f), 1.0)))
