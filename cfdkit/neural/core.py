"""``NeuralCFD``: a thin class over the pure functions of this package."""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch

from .filters import apply_phi, apply_psi, same_label_as_prediction
from .model import ReLUNet, TrainConfig, init_params, resolve_device, train_params
from .rankings import get_ranking, masked_order
from .results import CFDResult
from .search import search_batched, search_sequential
from .validation import check_budget, check_flip, check_hidden, check_seed, check_X, check_y

__all__ = ["NeuralCFD", "NeuralNotFittedError"]

try:
    from sklearn.exceptions import NotFittedError as _NotFittedBase
except ImportError:  # pragma: no cover
    class _NotFittedBase(ValueError, AttributeError):
        pass


class NeuralNotFittedError(_NotFittedBase, RuntimeError):
    """``search``/``rank``/``retrain`` before ``fit``: scikit-learn's ``NotFittedError``
    (and a ``RuntimeError``, as raised before)."""


class NeuralCFD:
    """Counterfactual datasets for a small ReLU network (Kim, Mitchell, Wang, NLDL 2026, Alg. 1).

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
    device : str, torch.device or None
        ``None`` → CUDA if available, else CPU.
    phi, psi : callable or None
        Filters (see :mod:`cfdkit.neural.filters`); default ``phi=None`` (search every test
        input) and ``psi=same_label_as_prediction`` (cfdkit's choice).
    max_batch : int or None
        Ensemble members per chunk in batched retraining (None = from a 1.5 GB budget).
    progress : bool
        Show tqdm progress bars.
    ranking_options : dict
        Extra keyword arguments for the ranking function.
    schedule : ``"rounds"`` (default) or ``"all"``
        Batched retraining schedule (see :func:`cfdkit.neural.search.search_batched`):
        ``"rounds"`` stops each test input at its first flip (Algorithm 1's early stop, done in
        batched rounds); ``"all"`` trains every prefix k = 1..m.  Same results, less work.
    cache : bool
        Reuse a retrain whose flip set was already trained for this fitted model (another test
        input, another ranking); cleared by ``fit``.  Default True.
    num_threads : int or None
        Torch intra-op threads during ``fit``/``search`` (restored afterwards); ``None`` leaves
        torch's setting.  For these tiny networks 1 thread is often fastest, and on a loaded
        machine 2+ threads can be an order of magnitude slower (spin-waiting).

    Examples
    --------
    >>> cfd = NeuralCFD(hidden=(8, 8), budget=10).fit(X_train, y_train)   # doctest: +SKIP
    >>> res = cfd.search(X_test); res.to_frame()                            # doctest: +SKIP
    """

    def __init__(self, hidden=(8, 8), budget: int = 10, ranking="combined", seed: int = 0, epochs: int = 300,
                 lr: float = 1e-2, device=None, dtype=torch.float64, phi=None, psi=same_label_as_prediction,
                 max_batch: int | None = None, progress: bool = True, ranking_options: dict | None = None,
                 num_threads: int | None = None, schedule: str = "rounds", cache: bool = True):
        self.hidden = check_hidden(hidden)
        self.budget = self._check_budget_param(budget)
        get_ranking(ranking)
        self.ranking = ranking
        self.seed = check_seed(seed)
        self.config = TrainConfig(epochs=epochs, lr=lr, dtype=dtype)
        self.device = resolve_device(device)
        self.phi, self.psi = phi, psi
        self.max_batch = self._check_optional_count(max_batch, "max_batch")
        self.progress = self._check_flag(progress, "progress")
        if ranking_options is not None and not isinstance(ranking_options, dict):
            raise TypeError(f"ranking_options must be a dict of keyword arguments or None, "
                            f"got {type(ranking_options).__name__}.")
        self.ranking_options = dict(ranking_options or {})
        self.num_threads = self._check_optional_count(num_threads, "num_threads")
        if not isinstance(schedule, str) or schedule not in ("rounds", "all"):
            raise ValueError(f"schedule must be 'rounds' or 'all', got {schedule!r}.")
        self.schedule, self.cache = schedule, self._check_flag(cache, "cache")

    # -- parameter checks (run in __init__ and again in fit, so attributes set later are checked) --
    @staticmethod
    def _check_budget_param(budget) -> int:
        if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget <= 0:
            raise ValueError(f"budget must be a positive int (bias budget m), got {budget!r}; e.g. budget=10.")
        return int(budget)

    @staticmethod
    def _check_optional_count(value, name: str):
        if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                                  or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}.")
        return None if value is None else int(value)

    @staticmethod
    def _check_flag(value, name: str) -> bool:
        if not isinstance(value, (bool, np.bool_, int, np.integer)) or (
                not isinstance(value, (bool, np.bool_)) and value not in (0, 1)):
            raise TypeError(f"{name} must be True or False, got {value!r}.")
        return bool(value)

    def _check_params(self) -> None:
        """Re-check every parameter (an attribute may have been set after construction)."""
        self.hidden = check_hidden(self.hidden)
        self.budget = self._check_budget_param(self.budget)
        get_ranking(self.ranking)
        self.seed = check_seed(self.seed)
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a cfdkit.neural.TrainConfig, got {type(self.config).__name__}; "
                            "pass epochs=, lr=, dtype= to NeuralCFD instead.")
        self.device = resolve_device(self.device)
        for nm in ("phi", "psi"):
            v = getattr(self, nm)
            if v is not None and not callable(v):
                raise TypeError(f"{nm} must be a callable filter or None, got {type(v).__name__} {v!r}; see "
                                "cfdkit.neural.filters (e.g. psi=cfdkit.neural.same_label_as_prediction).")
        self.max_batch = self._check_optional_count(self.max_batch, "max_batch")
        self.num_threads = self._check_optional_count(self.num_threads, "num_threads")
        if not isinstance(self.ranking_options, dict):
            raise TypeError(f"ranking_options must be a dict, got {type(self.ranking_options).__name__}.")
        if not isinstance(self.schedule, str) or self.schedule not in ("rounds", "all"):
            raise ValueError(f"schedule must be 'rounds' or 'all', got {self.schedule!r}.")

    @contextmanager
    def _threads(self):
        old = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            yield
        finally:
            torch.set_num_threads(old)

    # -- helpers -----------------------------------------------------------------------------
    def _t(self, A) -> torch.Tensor:
        return torch.as_tensor(A, dtype=self.config.dtype, device=self.device)

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NeuralNotFittedError("This NeuralCFD is not fitted yet; call fit(X_train, y_train) before "
                                       "search/rank/retrain.")

    # -- public ------------------------------------------------------------------------------
    def fit(self, X_train, y_train) -> "NeuralCFD":
        """Train the original network f = L(D) deterministically.

        Parameters
        ----------
        X_train : (n, d) numeric, finite
        y_train : (n,) binary 0/1
        """
        self._check_params()
        X = check_X(X_train, "X_train")
        y = check_y(y_train, len(X), "y_train")
        check_budget(self.budget, len(X))
        if hasattr(self, "model_"):  # a failed re-fit must not leave the old model beside the new data
            del self.model_
        self.X_train_, self.y_train_ = X, y
        self._X, self._y = self._t(X), self._t(y)
        self._cache = {}
        self.params0_ = init_params(X.shape[1], self.hidden, self.seed, self.config.dtype, self.device)
        t0 = time.perf_counter()
        with self._threads():
            model = ReLUNet(train_params(self._X, self._y, self.params0_, self.config))
        if not all(bool(torch.isfinite(p).all()) for p in model.params):
            raise ValueError(f"training diverged: the network's weights became NaN/inf with lr={self.config.lr!r}, "
                             f"epochs={self.config.epochs}; lower lr (default 1e-2) or rescale X_train "
                             "(e.g. cfdkit.data.features.tabular_features standardises numeric columns).")
        self.model_ = model
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def retrain(self, flip) -> ReLUNet:
        """Sequentially retrain from the same initial weights with labels ``flip`` flipped."""
        self._check_fitted()
        flip = check_flip(flip, len(self.y_train_), "flip")
        y = self._y.clone()
        idx = torch.as_tensor(flip, device=self.device)
        y[idx] = 1.0 - y[idx]
        return ReLUNet(train_params(self._X, y, self.params0_, self.config))

    def rank(self, X_test, ranking=None, mask=None) -> np.ndarray:
        """Scores ``(n_test, n_train)`` of a ranking (higher = flip first)."""
        self._check_fitted()
        Xt = check_X(X_test, "X_test", self.X_train_.shape[1])
        name = self.ranking if ranking is None else ranking
        fn = get_ranking(name)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (len(Xt), len(self.X_train_)):
                raise ValueError(f"mask must be a boolean array of shape {(len(Xt), len(self.X_train_))} "
                                 f"(test rows x training rows), got dtype {mask.dtype} shape {mask.shape}.")
        S = np.asarray(fn(self.model_, self.X_train_, self.y_train_, Xt, mask=mask, seed=self.seed,
                          **self.ranking_options), dtype=np.float64)
        if S.shape != (len(Xt), len(self.X_train_)):
            raise ValueError(f"ranking {name!r} returned shape {S.shape}, expected {(len(Xt), len(self.X_train_))}.")
        return S

    def search(self, X_test, ranking=None, budget: int | None = None, sequential: bool = False) -> CFDResult:
        """Algorithm 1 for every test row (see :meth:`_search`)."""
        with self._threads():
            return self._search(X_test, ranking, budget, sequential)

    def _search(self, X_test, ranking=None, budget: int | None = None, sequential: bool = False) -> CFDResult:
        """Algorithm 1 for every test row: rank once, then retrain prefixes k = 1..m (batched).

        Parameters
        ----------
        X_test : (n_test, d)
        ranking : overrides the constructor's ranking.
        budget : overrides the constructor's budget.
        sequential : run the literal one-retrain-at-a-time loop instead (reference / benchmark).

        Returns
        -------
        CFDResult
        """
        self._check_fitted()
        if not isinstance(sequential, (bool, np.bool_)):
            raise TypeError(f"sequential must be True or False, got {sequential!r}.")
        Xt = check_X(X_test, "X_test", self.X_train_.shape[1])
        m = check_budget(self.budget if budget is None else budget, len(self.X_train_))
        name = self.ranking if ranking is None else ranking
        logit0 = self.model_.logit(Xt)
        pred = (logit0 > 0).astype(np.int64)
        searched = apply_phi(self.phi, Xt, logit0)
        mask = apply_psi(self.psi, self.X_train_, self.y_train_, Xt, pred)
        order = np.full((len(Xt), m), -1, np.int64)
        n_cand = mask.sum(1).astype(np.int64)
        rows = np.flatnonzero(searched)
        t0 = time.perf_counter()
        if len(rows):
            S = self.rank(Xt[rows], name, mask=mask[rows])
            order[rows], n_cand[rows] = masked_order(S, mask[rows], m)
        rank_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner = search_sequential if sequential else search_batched
        kw = {} if sequential else {"max_batch": self.max_batch, "schedule": self.schedule,
                                    "cache": self._cache if self.cache else None}
        found, k, new_logit, n_trained = runner(self._X, self._y, self.params0_, self.config, self._t(Xt),
                                                order, rows, logit0, progress=self.progress, **kw)
        retrain_s = time.perf_counter() - t0
        return CFDResult(found=found, k=k, order=order, logit=logit0, new_logit=new_logit, searched=searched,
                         n_candidates=n_cand, rank_seconds=rank_s, retrain_seconds=retrain_s,
                         ranking=name if isinstance(name, str) else getattr(name, "__name__", "custom"),
                         budget=m, info={"n_trained": n_trained, "sequential": sequential})
