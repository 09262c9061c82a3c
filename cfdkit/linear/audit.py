"""``RelabelAudit``: fit once, then ask which labels would flip each prediction.

The estimator is a facade over one of two engines, picked once in :meth:`RelabelAudit.fit` from the labels:
:class:`~cfdkit.linear.binomial.BinomialEngine` (two classes, 0/1) or
:class:`~cfdkit.linear.multiclass.MultinomialEngine` (more classes, softmax) — as scikit-learn fits both losses
through one path.  The facade follows scikit-learn's estimator contract (``get_params``/``clone``, parameters
stored as given and validated in :meth:`fit`, fitted attributes ending in ``_``), validates every query's
arguments, turns raw test inputs into the engine's design (pipeline steps, feature names) and hands the question
to the engine; it holds no algorithm of its own.  scikit-learn estimators come in through
:mod:`cfdkit.linear.sklearn_glue`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ..core.arrays import Design, default_memory_budget, resolve_device
from ..core.parallel import check_n_jobs
from ..core.solvers import SOLVERS, InverseHVP
from ..core.validation import (NotFittedError, align_features, check_bool, check_bytes, check_choice, check_features,
                               check_nonneg_int, check_positive, check_positive_int, check_seed, check_threshold)
from .binomial import BinomialEngine
from .multiclass import MultinomialEngine, is_multiclass
from .results import FlipSets, Verification
from .scores import METHODS
from .settings import Settings
from .sklearn_glue import check_estimator, check_matches_estimator, split_pipeline, through


#: fitted attribute of the estimator -> the engine's attribute it shows (None: the engine has none, e.g. the
#: feature names of an array, or the Hessian diagnostics of the softmax engine)
_FITTED = {"classes_": "classes", "y_train_": "y_train", "n_features_in_": "n_features", "n_train_": "n_train",
           "feature_names_in_": "feature_names", "coef_": "coef", "intercept_": "intercept", "fit_info_": "fit_info",
           "hessian_diagnostics_": "hessian_diagnostics", "fit_fingerprint_": "fingerprint",
           "fit_seconds_": "seconds"}


def engine_for(y) -> type:
    """The engine class for labels ``y``: softmax for more than two distinct labels, else the binary one."""
    return MultinomialEngine if is_multiclass(y) else BinomialEngine


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
    engine_ : BinomialEngine or MultinomialEngine
        What was fitted (two classes, or softmax over more); every query goes to it.
    classes_ : np.ndarray (n_classes,), n_classes_ : int
        ``[0, 1]`` for two classes; the sorted distinct labels for more.  :meth:`predict_proba` has one
        column per class; :meth:`positive_proba` is the ``P(y=1)`` column of a binary audit.
    coef_ : np.ndarray (n_features,), intercept_ : float  ((K, n_features) and (K,) for K > 2 classes)
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
    hessian_diagnostics_ : cfdkit.core.solvers.SolverDiagnostics (two classes)
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
        return Settings(self.l2_, self.threshold_, self.solver, self.solver_options, self.device_, self.tol_,
                        self.max_iter_, self.memory_budget_, self.seed_, bool(self.progress))

    def fit(self, X, y, *, coef_init=None):
        """Fit the model on ``X`` (n, d) and labels ``y`` (n,), then factor the Hessian.

        Binary 0/1 labels fit :class:`~cfdkit.linear.binomial.BinomialEngine`; more than two distinct labels
        (integers or strings) the multinomial (softmax) model, :class:`~cfdkit.linear.multiclass.MultinomialEngine`
        (then ``coef_`` is (K, d) and ``intercept_`` (K,)).

        ``X`` may be numpy, scipy.sparse (kept sparse), pandas, torch or CuPy.
        """
        settings = self._validate_params()
        self.__dict__.pop("preprocessor_", None)  # fit() takes features; only from_sklearn keeps pipeline steps
        engine = engine_for(y)(settings).fit(X, y, coef_init)
        self.engine_ = engine
        self.n_classes_ = int(len(engine.classes))
        for mine, theirs in _FITTED.items():  # the engine's fit, under scikit-learn's names
            value = getattr(engine, theirs)
            if value is None:
                self.__dict__.pop(mine, None)
            else:
                setattr(self, mine, value)
        return self

    @property
    def state_(self):
        """The engine's fitted state (:class:`~cfdkit.linear.retrain.FittedState` for two classes,
        :class:`~cfdkit.linear.multiclass.MulticlassState` for more)."""
        self._check_fitted()
        return self.engine_.state

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
        pre, estimator, X = split_pipeline(estimator, X)
        params, init = check_estimator(estimator, X)
        audit = cls(l2=1.0 / float(params["C"]), threshold=threshold, solver=solver, device=device, **kw)
        audit.fit(X, y, coef_init=init)
        w = np.concatenate([audit.coef_, [audit.intercept_]])
        audit.sklearn_gradient_, audit.sklearn_coef_rel_diff_ = check_matches_estimator(audit.state_, w, estimator,
                                                                                        init, params)
        if pre is not None:
            audit.preprocessor_ = pre
        return audit

    def _check_fitted(self):
        if not hasattr(self, "engine_"):
            raise NotFittedError("This RelabelAudit is not fitted yet; call audit.fit(X_train, y_train) first.")

    # -------------------------------------------------------------- queries
    def _test_design(self, X_test, name="X_test") -> Design:
        self._check_fitted()
        if getattr(self, "preprocessor_", None) is not None:
            X_test = through(self.preprocessor_, X_test, name)
        X_test = align_features(X_test, getattr(self, "feature_names_in_", None), name)
        return Design.from_tensor(check_features(X_test, self.device_, name, self.n_features_in_))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of each row of ``X``, float64 (n, n_classes), columns in the order of
        ``classes_`` (as scikit-learn's ``predict_proba``; for two classes ``[:, 1]`` is ``P(y=1)``)."""
        Xt = self._test_design(X, "X")
        return self.engine_.proba(Xt)

    def positive_proba(self, X) -> np.ndarray:
        """``P(y=1)`` of each row of ``X``, float64 (n,): the positive-class column of :meth:`predict_proba` for a
        binary audit (the probability the threshold and every flip refer to)."""
        Xt = self._test_design(X, "X")
        return self.engine_.positive_proba(Xt)

    def _block_rows(self, n_test: int) -> int:
        """Test rows per score block of the engine (the unit of work of ``n_jobs``)."""
        return self.engine_.block_rows(n_test)

    def scores(self, X_test, method: str = "ip_relabel", y_test=None) -> np.ndarray:
        """Scores of every training point for every test point, float64 (n_test, n_train).

        See :mod:`cfdkit.linear.scores` for each method's definition and sign.  ``y_test``
        (used by influence, relatif, grad_dot, grad_cos) defaults to the predicted labels.
        """
        check_choice(method, "method", METHODS)
        Xt = self._test_design(X_test)
        return self.engine_.scores(Xt, method, y_test)

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
        self._check_fitted()
        self.engine_.check_target_class(target_class)
        return self.engine_.flip_sets(self._test_design(X_test), target_class=target_class, n_jobs=n_jobs)

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
        max_rounds = check_nonneg_int(max_rounds, "max_rounds")
        min_shrink = check_nonneg_int(min_shrink, "min_shrink")
        return self.engine_.removal_sets(self._test_design(X_test), algorithm, max_rounds, min_shrink)

    # -------------------------------------------------------- verification
    def retrain_probabilities(self, X_test, sets, kind: str = "relabel", *, new_labels=None) -> np.ndarray:
        """Retrain once per test row with ``sets[i]`` relabeled (or removed); new ``P(y=1)`` (n_test,).

        ``sets`` is a list of index arrays, one per row of ``X_test``.  Empty
        sets give the original probability without a refit.  With more than two
        classes ``new_labels`` (one array of class labels per set, aligned with
        its indices) is required and the result is (n_test, K).
        """
        check_choice(kind, "kind", ("relabel", "remove"))
        self._check_fitted()
        return self.engine_.retrain_probabilities(self._test_design(X_test), sets, kind, new_labels,
                                                  self._check_index_set)

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
            the same for every ``n_jobs`` (two classes or more).  ``minimize`` runs in this process.
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
        minimize = check_bool(minimize, "minimize")
        certify = check_bool(certify, "certify")
        max_expand = check_positive_int(max_expand, "max_expand", allow_none=True)
        return self.engine_.verify(res, minimize=minimize, max_expand=max_expand, n_jobs=n_jobs, certify=certify)

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
            bit-for-bit the same for every ``n_jobs``.  With more than two classes the search runs in
            this process (every refit made for one row is read by every row).

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
        self.engine_.check_target_class(target_class)
        return self.engine_.minimal_sets(self._test_design(X_test), target_class=target_class, n_jobs=n_jobs,
                                         max_size=max_size, singles_limit=singles_limit,
                                         single_candidates=single_candidates, pairs_limit=pairs_limit,
                                         pair_candidates=pair_candidates, triple_candidates=triple_candidates,
                                         max_rounds=max_rounds, orderings=orderings)
