"""``NeuralCFD``: a thin scikit-learn estimator over the pure functions of this package."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from ..core.arrays import resolve_device
from ..core.validation import (NotFittedError, align_features, check_bool, check_binary_vector, check_callable,
                               check_choice, check_dense_matrix, check_index_set, check_kwargs, check_positive_int,
                               feature_names_of)
from .filters import apply_phi, apply_psi, same_label_as_prediction
from .model import ReLUNet, TrainConfig, holdout_steps, init_params, train_params
from .rankings import get_ranking, masked_order
from .results import CFDResult
from .ensemble import ModuleEnsemble, ReLUEnsemble
from .module import OPTIMIZERS, ModuleNet, check_module, module_config
from .search import search_ensemble, search_ensemble_sequential
from .placebo import check_n_draws, check_sizes, random_flip_rates, seed_flip_rates, specificity, summarize, verdict
from .validation import OWNER, check_budget, check_budget_param, check_hidden, check_param, check_seed

#: Largest ``num_threads`` accepted (torch intra-op threads).
MAX_THREADS = 1024


from .model import AUTO_DECAY, AUTO_DECAY_MAX, AUTO_DECAY_MIN, auto_weight_decay  # noqa: F401  (rule and tuning: model.py)


def _check_unit(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) or not 0 < v <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {v!r}; e.g. {name}=0.9.")
    return float(v)

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
    network : (h1, h2), torch.nn.Module or None
        The network whose counterfactual datasets are searched, one argument for both kinds: hidden widths
        ``(h1, h2)`` of the built-in two-layer ReLU network (trained by a hand-written batched kernel), or any
        torch classifier (trained as a ``torch.func`` ensemble; see ``model`` below for what it may be).
        Both run behind one ensemble interface (:meth:`ensemble`).  None (default): ``hidden`` / ``model``
        decide, the older spellings of the same choice (``network=(4, 4)`` is ``hidden=(4, 4)``,
        ``network=module`` is ``model=module``); pass either ``network`` or them, not both.
    hidden : (h1, h2)
        Hidden widths of the two ReLU layers (paper: "2x4 to 2x32"); the same as ``network=(h1, h2)``.
    budget : int
        Bias budget m: at most m labels are flipped.
    ranking : str or callable
        A name in :data:`cfdkit.neural.RANKINGS` (default ``"combined"``) or a function
        ``(model, X_train, y_train, X_test, **options) -> (n_test, n_train)`` scores.
    seed : int
        Fixes the initial weights (and the ``random`` ranking).  Full-batch training has no
        batch order, so the seed fixes the whole run; every retrain starts from the same weights.
    epochs, lr, dtype :
        Full-batch Adam settings, see :class:`cfdkit.neural.model.TrainConfig`; with ``tol`` set,
        ``epochs`` is the largest number of steps.
    weight_decay, lr_min, tol, min_epochs, stop_beta :
        The stable recipe: the objective is mean BCE + ``weight_decay / 2 ||θ||²``
        (``"auto"``: ``clip(3e-2, 2.4 / n_train, 24 / n_train)``, see :func:`~cfdkit.neural.model.auto_weight_decay`); the step decays from
        ``lr`` to ``lr_min`` along a cosine; training stops once the averaged gradient norm is
        ``<= tol``, checked every 25 steps from step ``min_epochs`` on (:class:`~cfdkit.neural.model.TrainConfig`).
        The average is an exponential moving average of the gradient of the regularized objective
        with factor ``stop_beta`` (0.97: about the last 33 steps; ``None``: Adam's own first moment,
        about 10 steps, the earlier rule).  A ReLU network's objective has kinks, and near a minimum
        on one the iterates cross it back and forth: the longer average settles where a 10-step one
        does not (a fully standardized one-hot table, German or Student, stalled above ``tol``).
        The defaults (``"auto"``, ``lr_min=1e-4``, ``tol=3e-3``, ``min_epochs=0``, ``epochs=3000``,
        ``stop_beta=0.97``) converge on all seven fairness sets prepared either way (one-hot +
        standardized by scikit-learn, or :func:`cfdkit.data.load_arrays`; benchmarks/RESULTS_neural.md);
        the decay and tolerance were tuned so that one random label flip changes <= 2 % of test
        predictions and another seed <= 5 % (table and exceptions in ``cfdkit/neural/NOTES.md``).
        ``stop_beta=None`` reproduces networks trained before the longer average was the default.
        ``weight_decay=0, lr_min=None, tol=None, epochs=300`` is the old recipe (unstable: ~20 % of
        German predictions move with the seed).  ``fit`` raises if the original network does not
        converge; each retrain's convergence is reported (``CFDResult.converged``, placebo
        ``n_not_converged``).
    validation_fraction : float in (0, 0.5] or None
        Early stopping on held-out data, where asked for: ``fit`` holds out this seeded, stratified
        share of the training rows, trains on the rest (stable recipe, stop rule ignored) and picks
        the step count with the lowest held-out BCE (``patience`` checks without improvement end
        the search).  The learning algorithm L is then "train on all rows for that many steps"
        (``TrainConfig.stop_after``, no gradient-norm stop), for the original network and every
        retrain alike.  ``early_stopping_`` records the choice.  None (default): train to convergence.
    patience : int
        Checks (every 25 steps) without held-out improvement before the search stops.
    placebo_draws : int or None
        Random label sets per CFD size used for :attr:`CFDResult.specificity` in :meth:`search`
        (batched, shared by test rows with the same ψ-pool).  None skips it (specificity NaN,
        verdict "not checked").
    min_specificity : float in (0, 1]
        CFDs with specificity below it are labelled "indistinguishable from noise".
    model : torch.nn.Module or None
        Any torch classifier instead of the built-in ReLU network (the same as ``network=model``;
        :mod:`cfdkit.neural.module`):
        output ``(n,)``/``(n, 1)`` (one logit, BCE) or ``(n, 2)`` (one logit per class, cross-entropy).
        Its current parameters are the initial weights of every retrain (a private copy is trained; the
        module itself, its ``train``/``eval`` mode and the global RNG state are never changed).
        **Evaluation rule**: a row's logit is the module applied to that row alone (a batch of one
        row), for the prediction and for every retrained and placebo network alike.  ``fit`` probes
        the module and raises ``TypeError`` (with the fix) when its output for a row depends on the
        other rows of the batch -- batch norm in training mode (call ``model.eval()``), ``x - x.mean(0)``
        -- or when it cannot run under ``torch.func.vmap`` (a Python ``if`` on tensor values; write it
        with ``torch.where``).
        Retrains run as one ``torch.func`` ensemble, each member equal to its own ``torch.optim`` retrain
        to round-off.  ``hidden``, ``dtype`` (the module's) and ``validation_fraction`` must be left at
        their defaults; ``device=None`` keeps the module's device.  ``model_`` is then a
        :class:`~cfdkit.neural.module.ModuleNet`.
    optimizer : ``"adam"`` (default) or ``"sgd"``
        Optimizer of the ``model=`` recipe (``torch.optim`` rules; L2 ``weight_decay``).
    batch_size : int or None
        ``model=`` only: None = full batch (``epochs`` = steps); an int = minibatches in a seeded order
        (``seed``) shared by every member, ``epochs`` = passes, convergence checked on the full-batch
        gradient at the end of each pass.
    layer : str, sequence of str or None
        ``model=`` only: the layer whose features the internal rankings (``activation_pattern``,
        ``activation_gradient``, ``combined``) read through forward hooks; None = the input of the last
        ``nn.Linear``, names = the outputs of those submodules.
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
    model_ : ReLUNet or ModuleNet
        The original network f = L(D) (a :class:`~cfdkit.neural.module.ModuleNet` with ``model=``).
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

    def __init__(self, hidden=(8, 8), budget: int = 10, ranking="combined", seed: int = 0, epochs: int = 3000,
                 lr: float = 1e-2, device=None, dtype=torch.float64, phi=None, psi=same_label_as_prediction,
                 max_batch: int | None = None, progress: bool = True, ranking_options: dict | None = None,
                 num_threads: int | None = None, schedule: str = "rounds", cache: bool = True,
                 weight_decay="auto", lr_min: float | None = 1e-4, tol: float | None = 3e-3,
                 min_epochs: int = 0, validation_fraction: float | None = None, patience: int = 10,
                 placebo_draws: int | None = 20, min_specificity: float = 0.9, model=None,
                 optimizer: str = "adam", batch_size: int | None = None, layer: str | None = None,
                 stop_beta: float | None = 0.97, network=None):
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
        self.weight_decay = weight_decay
        self.lr_min = lr_min
        self.tol = tol
        self.min_epochs = min_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.placebo_draws = placebo_draws
        self.min_specificity = min_specificity
        self.model = model
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.layer = layer
        self.stop_beta = stop_beta
        self.network = network

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
            num_threads=check_param(self.num_threads, "num_threads", low=1, high=MAX_THREADS, integer=True,
                                    allow_none=True, fix="Pass e.g. num_threads=1 (or None to keep torch's setting)."),
            schedule=check_choice(self.schedule, "schedule", ("rounds", "all")),
            cache=check_bool(self.cache, "cache"),
            placebo_draws=None if self.placebo_draws is None else check_n_draws(self.placebo_draws, "placebo_draws"),
            min_specificity=_check_unit(self.min_specificity, "min_specificity"))

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

    def _weight_decay(self, n_train: int) -> float:
        """``weight_decay`` as a number (``"auto"``: :func:`~cfdkit.neural.model.auto_weight_decay` of ``n_train``)."""
        wd = self.weight_decay
        if isinstance(wd, str):
            if wd != "auto":
                raise ValueError(f"weight_decay must be a float >= 0 or 'auto' (= clip(3e-2, 2.4 / n_train, 24 / n_train)), got {wd!r}; e.g. weight_decay='auto'.")
            wd = auto_weight_decay(n_train)
        return wd

    def _store_training_data(self, X_train, X: np.ndarray, y: np.ndarray, hidden, seed: int, config, device):
        """The fitted state both networks share: the validated training data (arrays and tensors), seed, recipe,
        device and feature names.  A failed re-fit must not leave the old model beside new data."""
        for attr in ("model_", "feature_names_in_", "early_stopping_"):
            if hasattr(self, attr):
                delattr(self, attr)
        self.hidden_, self.seed_, self.config_, self.device_ = hidden, seed, config, device
        names = feature_names_of(X_train)
        if names is not None:
            self.feature_names_in_ = names
        self.n_features_in_ = X.shape[1]
        self.X_train_, self.y_train_ = X, y
        self.X_train_t_, self.y_train_t_ = self.as_tensor(X), self.as_tensor(y)

    def _fit_module(self, X_train, y_train, budget: int, model):
        """:meth:`fit` for a ``torch.nn.Module`` (``network=module`` or ``model=``): the checks of the module
        recipe, the module's checks (:func:`~cfdkit.neural.module.check_module`), then one ``torch.optim``
        training from the module's current weights.  :meth:`fit` has validated the search parameters, cleared the
        retrain cache and set the thread count."""
        if not isinstance(self.hidden, (tuple, list)) or tuple(self.hidden) != (8, 8):
            raise ValueError(f"hidden={self.hidden!r} would be ignored with model= (the architecture is the module's); "
                             "drop hidden=, or drop model= to use the built-in ReLU network.")
        if self.validation_fraction is not None:
            raise ValueError("validation_fraction (held-out early stopping) is not supported with model= yet; pass "
                             "validation_fraction=None (train to convergence), or use the built-in network.")
        seed = check_seed(self.seed)
        optimizer = check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        bs = check_positive_int(self.batch_size, "batch_size", allow_none=True)
        X = check_dense_matrix(X_train, "X_train", owner=OWNER)
        y = check_binary_vector(y_train, len(X), "y_train", OWNER)
        check_budget(budget, len(X))
        if bs is not None and bs >= len(X):
            bs = None                                                     # one minibatch = full batch
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}; e.g. "
                            "model=torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).")
        mdt = next(iter(model.parameters()), torch.zeros(())).dtype
        if self.dtype is not torch.float64 and self.dtype != mdt:
            raise ValueError(f"dtype={self.dtype!r} would be ignored with model= (the module's parameters are {mdt}); "
                             "drop dtype= and convert the module instead (model.double() or model.float()).")
        device = resolve_device(self.device) if self.device is not None else next(model.parameters(),
                                                                                  torch.zeros(())).device
        spec = check_module(model, torch.as_tensor(X), device, self.layer)
        wd = self._weight_decay(len(X))
        cfg, nb = module_config(self.epochs, self.lr, wd, self.lr_min, self.tol, self.min_epochs, spec.dtype, len(X),
                                bs, self.stop_beta)
        self._store_training_data(X_train, X, y, None, seed, cfg, spec.device)
        self.optimizer_, self.batch_size_, self.module_spec_ = optimizer, bs, spec
        self.params0_ = spec.params0
        t0 = time.perf_counter()
        params, info = ModuleEnsemble(spec, self.X_train_t_, self.y_train_t_, cfg, optimizer=optimizer, batch_size=bs,
                                      seed=seed).train_one(self.y_train_t_)
        if not all(bool(torch.isfinite(p).all()) for p in params.values()):
            raise ValueError(f"training diverged: the module's weights became NaN/inf with lr={cfg.lr!r}; lower lr or "
                             "rescale X_train.")
        self.convergence_ = info
        if not info["converged"]:
            raise ValueError(f"training did not converge: after epochs={self.epochs} "
                             f"{'steps' if bs is None else 'epochs'} the {'averaged ' if bs is None and optimizer == 'adam' else ''}"
                             f"gradient norm is {info['grad_norm']:.3g} > tol={cfg.tol!r}; raise epochs, raise "
                             "weight_decay, lower lr (minibatches), average the gradient over more steps (full batch: "
                             "e.g. stop_beta=0.99), or loosen tol.  tol=None runs a fixed step count "
                             "without a convergence check (not recommended).")
        self.model_ = ModuleNet(spec, params)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _network(self) -> tuple:
        """``(hidden, model)`` chosen by ``network`` (a ReLU spec or a module) or by ``hidden`` / ``model``."""
        net = self.network
        if net is None:
            return self.hidden, self.model
        if self.model is not None or not (isinstance(self.hidden, (tuple, list)) and tuple(self.hidden) == (8, 8)):
            shown = f"<{type(net).__name__} module>" if isinstance(net, torch.nn.Module) else repr(net)
            raise ValueError(f"network={shown} and {'model=' if self.model is not None else 'hidden='} both choose "
                             "the network; pass only network= (hidden widths such as network=(8, 8), or a "
                             "torch.nn.Module), and drop hidden= / model=.")
        return ((8, 8), net) if isinstance(net, torch.nn.Module) else (net, None)

    # -- public ------------------------------------------------------------------------------
    def fit(self, X_train, y_train) -> "NeuralCFD":
        """Train the original network f = L(D) deterministically.

        Parameters
        ----------
        X_train : (n, d) numeric, finite
        y_train : (n,) binary 0/1
        """
        hidden, model = self._network()
        if model is not None:                            # any torch classifier: cfdkit.neural.module
            for attr in ("model_", "module_spec_", "optimizer_", "batch_size_"):   # a failed fit leaves no half state
                if hasattr(self, attr):
                    delattr(self, attr)
            opts = self._search_params()
            self._cache = {}
            with self._threads(opts.num_threads):
                return self._fit_module(X_train, y_train, opts.budget, model)
        for nm, v, default in (("optimizer", self.optimizer, "adam"), ("batch_size", self.batch_size, None),
                               ("layer", self.layer, None)):
            if (v is not None) if default is None else (not isinstance(v, str) or v != default):
                raise ValueError(f"{nm}={v!r} needs model= (a torch.nn.Module); the built-in ReLU network trains "
                                 f"full-batch Adam.  Pass model=..., or drop {nm}=.")
        for attr in (("model_", "module_spec_", "optimizer_", "batch_size_") if hasattr(self, "module_spec_") else ()):
            if hasattr(self, attr):
                delattr(self, attr)
        hidden, seed = check_hidden(hidden, "hidden" if self.network is None else "network"), check_seed(self.seed)
        X = check_dense_matrix(X_train, "X_train", owner=OWNER)
        wd = self._weight_decay(len(X))
        config = TrainConfig(epochs=self.epochs, lr=self.lr, dtype=self.dtype, weight_decay=wd,
                             lr_min=self.lr_min, tol=self.tol, min_epochs=self.min_epochs, stop_beta=self.stop_beta)
        device = resolve_device(self.device)
        vf = self.validation_fraction
        if vf is not None and (isinstance(vf, (bool, np.bool_)) or not isinstance(vf, (float, int, np.floating))
                               or not 0 < vf <= 0.5):
            raise ValueError(f"validation_fraction must be None or a float in (0, 0.5], got {vf!r}; e.g. "
                             "validation_fraction=0.2.")
        patience = check_positive_int(self.patience, "patience")
        opts = self._search_params()
        y = check_binary_vector(y_train, len(X), "y_train", OWNER)
        check_budget(opts.budget, len(X))
        self._store_training_data(X_train, X, y, hidden, seed, config, device)
        self._cache = {}
        self.params0_ = init_params(X.shape[1], hidden, seed, config.dtype, device)
        t0 = time.perf_counter()
        if vf is not None:
            rng = np.random.default_rng([seed, 7])
            val = np.zeros(len(y), bool)
            for c in (0, 1):
                ic = np.flatnonzero(y == c)
                val[rng.choice(ic, size=int(round(vf * len(ic))), replace=False)] = True
            if val.all() or not val.any():
                raise ValueError(f"validation_fraction={vf!r} leaves no held-out or no training rows "
                                 f"({len(y)} rows); use a larger training set or another fraction.")
            with self._threads(opts.num_threads):
                n_star, best, trace = holdout_steps(self.X_train_t_[~val], self.y_train_t_[~val], self.X_train_t_[val],
                                                    self.y_train_t_[val], self.params0_, config, patience)
            config = replace(config, tol=None, stop_after=n_star)
            self.config_ = config
            self.early_stopping_ = {"steps": n_star, "val_loss": best, "trace": trace, "n_val": int(val.sum())}
        with self._threads(opts.num_threads):
            params, info = train_params(self.X_train_t_, self.y_train_t_, self.params0_, config, return_info=True)
            model = ReLUNet(params)
        if not all(bool(torch.isfinite(p).all()) for p in model.params):
            raise ValueError(f"training diverged: the network's weights became NaN/inf with lr={config.lr!r}, "
                             f"epochs={config.epochs}; lower lr (default 1e-2) or rescale X_train "
                             "(e.g. cfdkit.data.features.tabular_features standardises numeric columns).")
        self.convergence_ = info
        if not info["converged"]:
            raise ValueError(f"training did not converge: after epochs={config.epochs} steps the averaged gradient "
                             f"norm is {info['grad_norm']:.3g} > tol={config.tol!r}; raise epochs, raise weight_decay "
                             "(a more regularized objective has a better-defined optimum), average the gradient over "
                             "more steps (e.g. stop_beta=0.99), or loosen tol. "
                             "tol=None runs a fixed step count without a convergence check (not recommended: "
                             "predictions then depend on the seed and on single labels).")
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
        ReLUNet or ModuleNet
            The built-in network, or the ``model=`` module's (:class:`~cfdkit.neural.module.ModuleNet`).
        """
        self.check_fitted()
        flip = check_index_set(flip, len(self.y_train_), "flip", OWNER)
        ens = self.ensemble()
        return ens.net(ens.train_one(ens.flipped([flip])[0])[0])

    def ensemble(self):
        """The fitted learning algorithm L as an ensemble: retrain many copies of the original network on altered
        labels, read their logits, retrain one at a time (:mod:`cfdkit.neural.ensemble`).

        Returns
        -------
        ReLUEnsemble or ModuleEnsemble
            The built-in network's hand-written kernel, or the ``model=`` module's ``torch.func`` ensemble; both
            start every member from ``params0_`` with the fitted recipe ``config_``.
        """
        self.check_fitted()
        if hasattr(self, "module_spec_"):
            return ModuleEnsemble(self.module_spec_, self.X_train_t_, self.y_train_t_, self.config_,
                                  optimizer=self.optimizer_, batch_size=self.batch_size_, seed=self.seed_)
        return ReLUEnsemble(self.X_train_t_, self.y_train_t_, self.params0_, self.config_)

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
        ens = self.ensemble()
        if sequential:
            found, k, new_logit, n_trained, conv = search_ensemble_sequential(ens, self.as_tensor(Xt), order, rows,
                                                                              logit0, progress=opts.progress)
        else:
            found, k, new_logit, n_trained, conv = search_ensemble(
                ens, self.as_tensor(Xt), order, rows, logit0, max_batch=opts.max_batch, progress=opts.progress,
                schedule=opts.schedule, cache=self._cache if opts.cache else None)
        retrain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        spec = np.full(len(Xt), np.nan); n_plc = n_plc_bad = 0
        if opts.placebo_draws is not None:
            spec, n_plc, n_plc_bad = specificity(self, Xt, logit0, mask, found, k, opts.placebo_draws, self.seed_,
                                                 opts.max_batch, opts.progress)
        placebo_s = time.perf_counter() - t0
        return CFDResult(found=found, k=k, order=order, logit=logit0, new_logit=new_logit, searched=searched,
                         n_candidates=n_cand, rank_seconds=rank_s, retrain_seconds=retrain_s,
                         ranking=name if isinstance(name, str) else getattr(name, "__name__", "custom"),
                         budget=m, specificity=spec, converged=conv, min_specificity=opts.min_specificity,
                         placebo_seconds=placebo_s,
                         info={"n_trained": n_trained, "sequential": sequential, "placebo_draws": opts.placebo_draws,
                               "placebo_networks": n_plc, "placebo_not_converged": n_plc_bad,
                               "retrain_not_converged": int((found & ~conv).sum())})

    def placebo(self, X_test, sizes=None, n_draws: int = 20, seed: int | None = None):
        """Placebo controls per test row: how often random labels, or another seed, flip it.

        Parameters
        ----------
        X_test : (n_test, d)
        sizes : int or sequence of int, default ``(1, budget)``
            Label-set sizes k; each at most the smallest ψ-pool of the test rows.
        n_draws : int >= 1
            Random label sets per (ψ-pool, k), and other initialization seeds.
        seed : int or None
            Seeds the random draws (default: the estimator's ``seed``).

        Returns
        -------
        DataFrame, one row per test input: ``test_index``, ``pred``, ``logit``, ``n_candidates``,
        ``flip_rate_random_k<k>`` (share of random size-k label sets from the row's ψ-pool whose
        retrained network flips the prediction), ``flip_rate_seed`` (share of seeds
        ``seed_+1..seed_+n_draws`` whose network flips it).  ``df.attrs["summary"]`` is
        :func:`cfdkit.neural.placebo.summarize` of it; ``df.attrs`` also holds ``n_networks``,
        ``n_not_converged`` and ``seconds``.
        """
        self.check_fitted()
        opts = self._search_params()
        n_draws = check_n_draws(n_draws)
        seed = self.seed_ if seed is None else check_seed(seed)
        Xt = self.check_test_input(X_test)
        logit0 = self.model_.logit(Xt)
        pred = (logit0 > 0).astype(np.int64)
        mask = apply_psi(opts.psi, self.X_train_, self.y_train_, Xt, pred)
        n_cand = mask.sum(1).astype(np.int64)
        ks = check_sizes((1, opts.budget) if sizes is None else sizes, n_cand)
        t0 = time.perf_counter()
        with self._threads(opts.num_threads):
            rates, n_net, bad = random_flip_rates(self, Xt, logit0, mask, ks, n_draws, seed, opts.max_batch,
                                                  opts.progress)
            seed_rate, bad_s = seed_flip_rates(self, Xt, logit0, n_draws, opts.progress)
        df = pd.DataFrame({"test_index": np.arange(len(Xt)), "pred": pred, "logit": logit0, "n_candidates": n_cand})
        for k in ks:
            df[f"flip_rate_random_k{k}"] = rates[k]
        df["flip_rate_seed"] = seed_rate
        df.attrs.update(summary=summarize(df), n_draws=n_draws, sizes=ks, n_networks=n_net + n_draws,
                        n_not_converged=bad + bad_s, seconds=time.perf_counter() - t0)
        return df
