"""``NeuralCFD``: a thin scikit-learn estimator over the pure functions of this package."""
from __future__ import annotations

import time
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..core.arrays import resolve_device
from ..core.validation import (NotFittedError, align_features, check_bool, check_binary_vector, check_callable,
                               check_choice, check_dense_matrix, check_index_set, check_kwargs, check_positive_int,
                               feature_names_of)
from .filters import apply_phi, apply_psi, same_label_as_prediction
from .model import ReLUNet, TrainConfig, init_params, train_params
from .rankings import get_ranking, masked_order
from .results import CFDResult
from .search import search_batched, search_sequential
from .validation import OWNER, check_budget, check_budget_param, check_hidden, check_seed

__all__ = ["NeuralCFD", "NeuralNotFittedError"]

_FILTER_HINT = "see cfdkit.neural.filters (e.g. psi=cfdkit.neural.same_label_as_prediction)."


#: The old name of the error ``search``/``rank``/``retrain`` raise before ``fit``; it is
#: :class:`cfdkit.core.validation.NotFittedError` (scikit-learn's ``NotFittedError`` and a ``RuntimeError``).
NeuralNotFittedError = NotFittedError


class NeuralCFD(BaseEstimator):
    """Counterfactual datasets for a small ReLU network (Kim, Mitchell, Wang, NLDL 2026, Alg. 1).

    A scikit-learn estimator: ``__init__`` only stores the parameters (``get_params``,
    ``set_params``, ``sklearn.base.clone`` and the repr work); they are validated in :meth:`fit`
    (the search-time ones -- ``budget``, ``ranking``, ``phi``, ``psi``, ``max_batch``, ``progress``,
    ``ranking_options``, ``num_threads``, ``schedule``, ``cache`` -- again at each call, so a
    ``set_params`` after ``fit`` takes effect, checked, without refitting).

    Parameters
    ----------
    hidden : (h1, h2)
        Hidden widths of the two ReLU layers (paper: "2x4 to 2x32").
    budget : int
        Bias budget m: at most m labels are flipped.
    ranking : str or callable
        A name in :data:`cfdkit.neural.RANKINGS` (default ``"combined"``) or a function
        ``(model, X_train, y_train, X_test, **options) -> (n_test, n_train)`` scores.
    seed : int
        Fixes the initial weights (and the ``random`` ranking).  Full-batch training has no
        batch order, so the seed fixes the whole run; every retrain starts from the same weights.
    epochs, lr, dtype :
        Full-batch Adam settings, see :class:`cfdkit.neural.model.TrainConfig`.
    device : str, torch.device, int or None
        ``None`` → CUDA if available, else CPU (see :func:`cfdkit.core.arrays.resolve_device`).
    phi, psi : callable or None
        Filters (see :mod:`cfdkit.neural.filters`); default ``phi=None`` (search every test
        input) and ``psi=same_label_as_prediction`` (cfdkit's choice).
    max_batch : int or None
        Ensemble members per chunk in batched retraining (None = cache-sized, automatic).
    progress : bool
        Show tqdm progress bars.
    ranking_options : dict or None
        Extra keyword arguments for the ranking function.
    num_threads : int or None
        Torch intra-op threads during ``fit``/``search`` (restored afterwards); ``None`` leaves
        torch's setting.  For these tiny networks 1 thread is often fastest, and on a loaded
        machine 2+ threads can be an order of magnitude slower (spin-waiting).
    schedule : ``"rounds"`` (default) or ``"all"``
        Batched retraining schedule (see :func:`cfdkit.neural.search.search_batched`):
        ``"rounds"`` stops each test input at its first flip (Algorithm 1's early stop, done in
        batched rounds); ``"all"`` trains every prefix k = 1..m.  Same results, less work.
    cache : bool
        Reuse a retrain whose flip set was already trained for this fitted model (another test
        input, another ranking); cleared by ``fit``.  Default True.

    Attributes
    ----------
    model_ : ReLUNet
        The original network f = L(D).
    params0_ : tuple of tensors
        Its initial weights (every retrain starts from them).
    hidden_ : (int, int)
        Validated hidden widths.
    seed_ : int
        Validated seed.
    config_ : TrainConfig
        Validated ``epochs``, ``lr``, ``dtype`` (Adam's betas and eps at their defaults).
    device_ : torch.device
        Where the networks live and train.
    X_train_ : (n, d) float64 ndarray
    y_train_ : (n,) int64 ndarray
    n_features_in_ : int
        ``d``.
    feature_names_in_ : (d,) ndarray of str
        Column names when ``X_train`` was a DataFrame with string column names (absent otherwise);
        DataFrames given to ``search``/``rank`` are then reordered to them, as in scikit-learn.
    fit_seconds_ : float
        Wall time of the original training.

    Examples
    --------
    >>> cfd = NeuralCFD(hidden=(8, 8), budget=10).fit(X_train, y_train)   # doctest: +SKIP
    >>> res = cfd.search(X_test); res.to_frame()                            # doctest: +SKIP
    """

    def __init__(self, hidden=(8, 8), budget: int = 10, ranking="combined", seed: int = 0, epochs: int = 300,
                 lr: float = 1e-2, device=None, dtype=torch.float64, phi=None, psi=same_label_as_prediction,
                 max_batch: int | None = None, progress: bool = True, ranking_options: dict | None = None,
                 num_threads: int | None = None, schedule: str = "rounds", cache: bool = True):
        self.hidden = hidden
        self.budget = budget
        self.ranking = ranking
        self.seed = seed
        self.epochs = epochs
        self.lr = lr
        self.device = device
        self.dtype = dtype
        self.phi = phi
        self.psi = psi
        self.max_batch = max_batch
        self.progress = progress
        self.ranking_options = ranking_options
        self.num_threads = num_threads
        self.schedule = schedule
        self.cache = cache

    # -- parameter checks ------------------------------------------------------------------
    def _search_params(self) -> SimpleNamespace:
        """The parameters ``search``/``rank`` read, validated (they may be set after ``fit``)."""
        budget = check_budget_param(self.budget)
        get_ranking(self.ranking)
        return SimpleNamespace(
            budget=budget, ranking=self.ranking,
            phi=check_callable(self.phi, "phi", _FILTER_HINT), psi=check_callable(self.psi, "psi", _FILTER_HINT),
            max_batch=check_positive_int(self.max_batch, "max_batch", allow_none=True),
            progress=check_bool(self.progress, "progress"),
            ranking_options=check_kwargs(self.ranking_options, "ranking_options"),
            num_threads=check_positive_int(self.num_threads, "num_threads", allow_none=True),
            schedule=check_choice(self.schedule, "schedule", ("rounds", "all")),
            cache=check_bool(self.cache, "cache"))

    @contextmanager
    def _threads(self, num_threads):
        old = torch.get_num_threads()
        if num_threads:
            torch.set_num_threads(int(num_threads))
        try:
            yield
        finally:
            torch.set_num_threads(old)

    # -- helpers -----------------------------------------------------------------------------
    def as_tensor(self, A) -> torch.Tensor:
        """``A`` as a tensor of the fitted network's dtype on its device."""
        return torch.as_tensor(A, dtype=self.config_.dtype, device=self.device_)

    def check_fitted(self):
        """Raise :class:`~cfdkit.core.validation.NotFittedError` before :meth:`fit`."""
        if not hasattr(self, "model_"):
            raise NotFittedError("This NeuralCFD is not fitted yet; call fit(X_train, y_train) before "
                                 "search/rank/retrain.")

    def check_test_input(self, X_test) -> np.ndarray:
        """``X_test`` validated against the fit (columns by name for DataFrames); dense float (n_test, d)."""
        X_test = align_features(X_test, getattr(self, "feature_names_in_", None), "X_test", owner="NeuralCFD")
        return check_dense_matrix(X_test, "X_test", self.n_features_in_, OWNER)

    # -- public ------------------------------------------------------------------------------
    def fit(self, X_train, y_train) -> "NeuralCFD":
        """Train the original network f = L(D) deterministically.

        Parameters
        ----------
        X_train : (n, d) numeric, finite
        y_train : (n,) binary 0/1
        """
        hidden, seed = check_hidden(self.hidden), check_seed(self.seed)
        config = TrainConfig(epochs=self.epochs, lr=self.lr, dtype=self.dtype)
        device = resolve_device(self.device)
        opts = self._search_params()
        X = check_dense_matrix(X_train, "X_train", owner=OWNER)
        y = check_binary_vector(y_train, len(X), "y_train", OWNER)
        check_budget(opts.budget, len(X))
        for attr in ("model_", "feature_names_in_"):  # a failed re-fit must not leave the old model beside new data
            if hasattr(self, attr):
                delattr(self, attr)
        self.hidden_, self.seed_, self.config_, self.device_ = hidden, seed, config, device
        names = feature_names_of(X_train)
        if names is not None:
            self.feature_names_in_ = names
        self.n_features_in_ = X.shape[1]
        self.X_train_, self.y_train_ = X, y
        self.X_train_t_, self.y_train_t_ = self.as_tensor(X), self.as_tensor(y)
        self._cache = {}
        self.params0_ = init_params(X.shape[1], hidden, seed, config.dtype, device)
        t0 = time.perf_counter()
        with self._threads(opts.num_threads):
            model = ReLUNet(train_params(self.X_train_t_, self.y_train_t_, self.params0_, config))
        if not all(bool(torch.isfinite(p).all()) for p in model.params):
            raise ValueError(f"training diverged: the network's weights became NaN/inf with lr={config.lr!r}, "
                             f"epochs={config.epochs}; lower lr (default 1e-2) or rescale X_train "
                             "(e.g. cfdkit.data.features.tabular_features standardises numeric columns).")
        self.model_ = model
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def retrain(self, flip) -> ReLUNet:
        """Sequentially retrain from the same initial weights with labels ``flip`` flipped.

        Parameters
        ----------
        flip : (k,) int
            Distinct training indices whose labels are flipped.

        Returns
        -------
        ReLUNet
        """
        self.check_fitted()
        flip = check_index_set(flip, len(self.y_train_), "flip", OWNER)
        y = self.y_train_t_.clone()
        idx = torch.as_tensor(flip, device=self.device_)
        y[idx] = 1.0 - y[idx]
        return ReLUNet(train_params(self.X_train_t_, y, self.params0_, self.config_))

    def rank(self, X_test, ranking=None, mask=None) -> np.ndarray:
        """Scores of a ranking, higher = flip first.

        Parameters
        ----------
        X_test : (n_test, d)
        ranking : str or callable, overrides the ``ranking`` parameter.
        mask : (n_test, n_train) bool or None
            ψ-candidates, passed to the ranking.

        Returns
        -------
        (n_test, n_train) float64 ndarray
        """
        self.check_fitted()
        return self._rank(self.check_test_input(X_test), ranking, mask, self._search_params())

    def _rank(self, Xt: np.ndarray, ranking, mask, opts: SimpleNamespace) -> np.ndarray:
        name = opts.ranking if ranking is None else ranking
        fn = get_ranking(name)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (len(Xt), len(self.X_train_)):
                raise ValueError(f"mask must be a boolean array of shape {(len(Xt), len(self.X_train_))} "
                                 f"(test rows x training rows), got dtype {mask.dtype} shape {mask.shape}.")
        S = np.asarray(fn(self.model_, self.X_train_, self.y_train_, Xt, mask=mask, seed=self.seed_,
                          **opts.ranking_options), dtype=np.float64)
        if S.shape != (len(Xt), len(self.X_train_)):
            raise ValueError(f"ranking {name!r} returned shape {S.shape}, expected {(len(Xt), len(self.X_train_))}.")
        return S

    def search(self, X_test, ranking=None, budget: int | None = None, sequential: bool = False) -> CFDResult:
        """Algorithm 1 for every test row: rank once, then retrain prefixes k = 1..m (batched).

        Parameters
        ----------
        X_test : (n_test, d)
        ranking : str or callable, overrides the ``ranking`` parameter.
        budget : int, overrides the ``budget`` parameter.
        sequential : bool
            Run the literal one-retrain-at-a-time loop instead (reference / benchmark).

        Returns
        -------
        CFDResult
        """
        self.check_fitted()
        opts = self._search_params()
        with self._threads(opts.num_threads):
            return self._search(X_test, ranking, budget, sequential, opts)

    def _search(self, X_test, ranking, budget, sequential, opts: SimpleNamespace) -> CFDResult:
        if not isinstance(sequential, (bool, np.bool_)):
            raise TypeError(f"sequential must be True or False, got {sequential!r}.")
        Xt = self.check_test_input(X_test)
        m = check_budget(opts.budget if budget is None else budget, len(self.X_train_))
        name = opts.ranking if ranking is None else ranking
        logit0 = self.model_.logit(Xt)
        pred = (logit0 > 0).astype(np.int64)
        searched = apply_phi(opts.phi, Xt, logit0)
        mask = apply_psi(opts.psi, self.X_train_, self.y_train_, Xt, pred)
        order = np.full((len(Xt), m), -1, np.int64)
        n_cand = mask.sum(1).astype(np.int64)
        rows = np.flatnonzero(searched)
        t0 = time.perf_counter()
        if len(rows):
            S = self._rank(Xt[rows], name, mask[rows], opts)
            order[rows], n_cand[rows] = masked_order(S, mask[rows], m)
        rank_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner = search_sequential if sequential else search_batched
        kw = {} if sequential else {"max_batch": opts.max_batch, "schedule": opts.schedule,
                                    "cache": self._cache if opts.cache else None}
        found, k, new_logit, n_trained = runner(self.X_train_t_, self.y_train_t_, self.params0_, self.config_, self.as_tensor(Xt),
                                                order, rows, logit0, progress=opts.progress, **kw)
        retrain_s = time.perf_counter() - t0
        return CFDResult(found=found, k=k, order=order, logit=logit0, new_logit=new_logit, searched=searched,
                         n_candidates=n_cand, rank_seconds=rank_s, retrain_seconds=retrain_s,
                         ranking=name if isinstance(name, str) else getattr(name, "__name__", "custom"),
                         budget=m, info={"n_trained": n_trained, "sequential": sequential})
