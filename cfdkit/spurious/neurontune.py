"""NeuronTune (Zheng, Ye, Zhang, ICML 2025): find the embedding neurons that go with errors, mute them,
retrain the head.

Reconstructed from a secondary source (``shared/papers/spurious_design.md`` §1; the paper's full text and
code could not be read), so every choice the source leaves open is a parameter:

1. **Identification** on a set ``D_Ide`` (default in the studies: half of the validation set).  For a model
   ``f = h ∘ e`` (feature extractor ``e``, linear head ``h``) and embeddings ``v = e(x) ∈ R^M``, the
   spuriousness score of neuron ``i`` for class ``y`` is

       δ_i^y = median{v_i : x misclassified, label y} − median{v_i : x correctly classified, label y}

   (:func:`spuriousness_scores`).  ``δ > 0``: high activation goes with errors (a biased neuron).
2. **Flagging** (:func:`flag_neurons`): neuron ``i`` is biased when ``δ_i^y > λ`` for **all** classes
   (``rule="all"``, the source's literal "∀y") or for **any** class (``rule="any"``).  Read literally, "all"
   misses a neuron that is spurious for one class only (a "red" unit has ``δ > 0`` for the class whose
   errors are red and ``δ < 0`` for the other); cfdkit implements both, defaults to the literal ``"all"`` and
   records the rule used in ``rule_``.  Classes without misclassified (or without correct) samples have an
   undefined δ (NaN) and are skipped by both rules; if no class has one, nothing is flagged and a
   :class:`NeuronTuneWarning` says so.
3. **Regulation** (:class:`NeuronTune`): multiply the flagged neurons by ``mask_value`` (0 = zero them, the
   paper's default; the paper's ablation tries 0.2-1.0) and retrain only the head on ``D_Tune`` with
   **class-balanced sampling** (every minibatch draws the same number of samples from each class, with
   replacement, from a seeded generator).  The head starts from the ERM head.
4. **Model selection without group labels** (:func:`sfit`): ``SFit = Σ_m Σ_y |δ_m^y|`` on the
   identification set, recomputed with the tuned head and masked embeddings; higher is better
   (:func:`select_by_sfit`).

Controls (same estimator, ``neurons=``): ``"none"`` retrains the head identically without a mask,
``"random"`` masks a seeded random set of the same size as the flagged one.

Supported models (anything else is a "model without a separable head" and raises ``TypeError``):

* a :class:`cfdkit.neural.ReLUNet` (one logit; embedding = the last hidden layer after ReLU);
* a ``torch.nn.Sequential`` whose last module is a ``torch.nn.Linear`` (embedding = all earlier modules);
* a ``torch.nn.Module`` with a ``head`` attribute that is a ``torch.nn.Linear`` and an ``embed(x)`` method
  (such as :class:`DigitCNN`);
* a pair ``(embed_fn, head)`` with ``embed_fn(X) -> (n, M)`` and ``head`` a ``torch.nn.Linear``.

A head with one output is read as a binary logit (class 1 where the logit is > 0); with ``C ≥ 2`` outputs the
class is the argmax.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..core.arrays import resolve_device
from ..core.validation import (NotFittedError, check_class_labels, check_count, check_head_numbers, check_label_range,
                               check_lam, check_mask_value)
from ..core.validation import check_rule as _check_rule_in
from ._user import eval_mode, module_dtype_device

__all__ = ["NeuronTune", "NeuronTuneWarning", "SplitModel", "split_model", "spuriousness_scores",
           "neuron_scores", "flag_neurons", "sfit", "lambda_grid", "select_by_sfit", "worst_group_accuracy",
           "group_accuracies", "RULES"]

RULES = ("all", "any")


def check_rule(rule) -> str:
    """The identification rule, one of :data:`RULES`."""
    return _check_rule_in(rule, RULES)


class NeuronTuneWarning(UserWarning):
    """Identification could not score a class (no misclassified / no correct samples)."""


# ----------------------------------------------------------------------------------------------
# scores and flags (pure numpy)

def spuriousness_scores(V, y, correct, n_classes: int | None = None):
    """Per-class median differences δ (the NeuronTune spuriousness score).

    Parameters
    ----------
    V : array of shape (n, M)
        Embeddings of the identification set.
    y : array of shape (n,)
        Integer labels 0..C-1.
    correct : bool array of shape (n,)
        Whether the model classified each sample correctly.
    n_classes : int or None
        Number of classes ``C`` (default ``max(y) + 1``).

    Returns
    -------
    delta : ndarray of shape (C, M), float64
        ``δ[y, i] = median(V[wrong & label y, i]) − median(V[right & label y, i])``; a row is NaN where class
        ``y`` has no misclassified or no correctly classified samples.
    counts : ndarray of shape (C, 2), int64
        Number of misclassified / correct samples per class.

    Raises
    ------
    ValueError
        Shapes disagree, or the identification set holds a single class (δ compares classes' errors; pass
        an identification set with every class, e.g. half of a class-balanced validation set).
    """
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] == 0:
        raise ValueError(f"V must be a non-empty 2-D array (n, M) of embeddings; got shape {V.shape}.")
    if not np.all(np.isfinite(V)):
        raise ValueError("V contains NaN/inf embeddings; check the model and the inputs.")
    y = check_class_labels(y, len(V), "y")
    correct = np.asarray(correct)
    if correct.shape != (len(V),):
        raise ValueError(f"correct must have shape ({len(V)},); got {correct.shape}.")
    correct = correct.astype(bool)
    C = int(y.max()) + 1 if n_classes is None else check_count(n_classes, "n_classes")
    if y.max() >= C:
        raise ValueError(f"labels go up to {y.max()} but n_classes={C}.")
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"the identification set holds a single class ({present.tolist()}); NeuronTune compares "
                         "misclassified and correct samples within each class of a model with several classes — "
                         "pass an identification set with every class (e.g. half of the validation set).")
    delta = np.full((C, V.shape[1]), np.nan)
    counts = np.zeros((C, 2), np.int64)
    for c in range(C):
        wrong = (y == c) & ~correct
        right = (y == c) & correct
        counts[c] = wrong.sum(), right.sum()
        if counts[c, 0] and counts[c, 1]:
            delta[c] = np.median(V[wrong], axis=0) - np.median(V[right], axis=0)
    return delta, counts


def neuron_scores(delta, rule: str = "all") -> np.ndarray:
    """One score per neuron: ``min_y δ`` (rule ``"all"``) or ``max_y δ`` (rule ``"any"``), NaN rows skipped.

    A neuron is flagged at threshold λ exactly when its score is > λ.

    Returns
    -------
    ndarray of shape (M,); all NaN when no class has a defined δ.
    """
    rule = check_rule(rule)
    delta = np.asarray(delta, dtype=np.float64)
    ok = ~np.isnan(delta).any(axis=1)
    if not ok.any():
        return np.full(delta.shape[1], np.nan)
    d = delta[ok]
    return d.min(axis=0) if rule == "all" else d.max(axis=0)


def flag_neurons(delta, lam: float = 0.0, rule: str = "all") -> np.ndarray:
    """Biased neurons: ``δ_i^y > λ`` for all (``rule="all"``) or any (``rule="any"``) class.

    Parameters
    ----------
    delta : array of shape (C, M) from :func:`spuriousness_scores`
    lam : finite float
    rule : {'all', 'any'}

    Returns
    -------
    flagged : bool ndarray of shape (M,); all False (with a :class:`NeuronTuneWarning`) if no class has a
        defined δ (no misclassified samples).
    """
    lam = check_lam(lam)
    s = neuron_scores(delta, rule)
    if np.all(np.isnan(s)):
        warnings.warn("no class of the identification set has both misclassified and correctly classified "
                      "samples, so δ is undefined and NeuronTune flags no neuron.", NeuronTuneWarning, stacklevel=2)
        return np.zeros(len(s), dtype=bool)
    return s > lam


def sfit(delta) -> float:
    """SFit = Σ_m Σ_y |δ_m^y| over the classes with a defined δ (higher = better, the paper's selection rule)."""
    d = np.asarray(delta, dtype=np.float64)
    return float(np.nansum(np.abs(d)))


def lambda_grid(delta, rule: str = "all", quantiles=(0.0, 0.25, 0.5, 0.75, 0.9)) -> np.ndarray:
    """A λ sweep: 0 and quantiles of the positive neuron scores (sorted, unique)."""
    s = neuron_scores(delta, rule)
    pos = s[np.isfinite(s) & (s > 0)]
    lams = [0.0] + ([float(np.quantile(pos, q)) for q in quantiles if q > 0] if len(pos) else [])
    return np.unique(np.asarray(lams, dtype=np.float64))


def group_accuracies(pred, y, groups) -> dict:
    """Accuracy per group id ``{g: acc}`` (groups with no samples are left out)."""
    pred, y, groups = np.asarray(pred), np.asarray(y), np.asarray(groups)
    if not (pred.shape == y.shape == groups.shape):
        raise ValueError(f"pred, y and groups must have the same shape; got {pred.shape}, {y.shape}, {groups.shape}.")
    return {int(g): float(np.mean(pred[groups == g] == y[groups == g])) for g in np.unique(groups)}


def worst_group_accuracy(pred, y, groups) -> float:
    """The smallest per-group accuracy (WGA)."""
    return min(group_accuracies(pred, y, groups).values())


# ----------------------------------------------------------------------------------------------
# model adapter

@dataclass
class SplitModel:
    """A model split into an embedding function and a linear head.

    Attributes
    ----------
    embed : callable ``X -> ndarray (n, M)`` float64
    W : ndarray of shape (K, M), float64
        Head weights (``K = 1``: one binary logit; ``K = C`` otherwise).
    b : ndarray of shape (K,), float64
    kind : str
        Which adapter was used.
    """

    embed: Callable
    W: np.ndarray
    b: np.ndarray
    kind: str

    @property
    def n_classes(self) -> int:
        return 2 if self.W.shape[0] == 1 else self.W.shape[0]

    def logits(self, V):
        return np.asarray(V, np.float64) @ self.W.T + self.b

    def predict_from_embedding(self, V):
        z = self.logits(V)
        return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(1).astype(np.int64)


_NO_HEAD = ("model has no separable linear head; pass a cfdkit.neural.ReLUNet, a torch.nn.Sequential ending in "
            "torch.nn.Linear, a torch.nn.Module with .head (nn.Linear) and .embed(x), or a pair (embed_fn, head) "
            "with head an nn.Linear")


def _torch_embed(select, module, device, batch=4096):
    """Embeddings ``select(module)(x)`` in ``module``'s dtype, in eval mode, without changing ``module``: its
    train/eval modes are restored after each call and a module on another device is copied, not moved."""
    import copy

    dtype, mdev = module_dtype_device(module)
    if mdev != device:  # never move the user's module: work on a copy
        module = copy.deepcopy(module).to(device)
    fn = select(module)

    def embed(X):
        X = np.asarray(X)
        out = []
        with torch.no_grad(), eval_mode(module):
            for i in range(0, len(X), batch):
                xb = torch.as_tensor(np.asarray(X[i:i + batch], np.float64), device=device).to(dtype)
                out.append(fn(xb).reshape(len(xb), -1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))
    return embed


def _linear_params(head):
    return (head.weight.detach().double().cpu().numpy().copy(), head.bias.detach().double().cpu().numpy().copy()
            if head.bias is not None else np.zeros(head.out_features))


def split_model(model, device=None) -> SplitModel:
    """Split ``model`` into embedding + linear head (see the module docstring for what is supported).

    Raises
    ------
    TypeError
        For a model without a separable linear head.
    """
    from cfdkit.neural.model import ReLUNet

    dev = resolve_device(device)
    if isinstance(model, ReLUNet):
        net = model

        def embed(X):
            _, z2 = net.hidden_preactivations(np.asarray(X, np.float64))
            return np.maximum(z2, 0.0)
        w3, b3 = net.params[4], net.params[5]
        return SplitModel(embed, w3.double().cpu().numpy()[None, :].copy(), b3.double().cpu().numpy().reshape(1),
                          "ReLUNet")
    if isinstance(model, tuple) and len(model) == 2 and callable(model[0]):
        fn, head = model
        if not isinstance(head, torch.nn.Linear):
            raise TypeError(f"{_NO_HEAD}; the second item of the pair is {type(head).__name__}.")
        W, b = _linear_params(head)

        def embed(X):
            V = np.asarray(fn(X), np.float64)
            if V.ndim != 2 or V.shape[1] != W.shape[1]:
                raise ValueError(f"embed_fn returned shape {V.shape}; expected (n, {W.shape[1]}) to match the head.")
            return V
        return SplitModel(embed, W, b, "pair")
    if isinstance(model, torch.nn.Sequential):
        if len(model) < 2 or not isinstance(model[-1], torch.nn.Linear):
            raise TypeError(f"{_NO_HEAD}; this Sequential ends in {type(model[-1]).__name__ if len(model) else 'nothing'}.")
        W, b = _linear_params(model[-1])
        return SplitModel(_torch_embed(lambda m: m[:-1], model, dev), W, b, "Sequential")
    if isinstance(model, torch.nn.Module) and isinstance(getattr(model, "head", None), torch.nn.Linear) and \
            callable(getattr(model, "embed", None)):
        W, b = _linear_params(model.head)
        return SplitModel(_torch_embed(lambda m: m.embed, model, dev), W, b, type(model).__name__)
    raise TypeError(f"{_NO_HEAD}; got {type(model).__name__}.")


# ----------------------------------------------------------------------------------------------
# head retraining

def _balanced_batches(y, batch_size, n_batches, rng):
    classes = np.unique(y)
    per = max(1, batch_size // len(classes))
    pools = [np.flatnonzero(y == c) for c in classes]
    for _ in range(n_batches):
        yield np.concatenate([p[rng.integers(0, len(p), per)] for p in pools])


def retrain_head(V, y, W0, b0, *, balanced=True, epochs=50, lr=1e-2, batch_size=64, weight_decay=1e-4, seed=0):
    """Retrain a linear head on fixed embeddings with Adam (float64, CPU, seeded).

    Parameters
    ----------
    V : ndarray (n, M) — (masked) embeddings of the tuning set
    y : ndarray (n,) int labels
    W0, b0 : ndarray (K, M), (K,) — the starting head (K = 1: binary logit, BCE; else cross-entropy)
    balanced : bool
        Class-balanced sampling (each batch draws ``batch_size // C`` per class with replacement); False:
        shuffled epochs.

    Returns
    -------
    W, b : ndarrays (K, M), (K,)

    Raises
    ------
    ValueError, TypeError
        A number out of range (epochs, lr, batch_size, weight_decay, seed) or labels the head cannot hold.
    """
    epochs, batch_size, seed = check_head_numbers(epochs, lr, batch_size, weight_decay, seed)
    K = 2 if np.shape(W0)[0] == 1 else np.shape(W0)[0]
    y = check_label_range(check_class_labels(y, len(V), "y"), K, "y")
    rng = np.random.default_rng(seed)
    Vt = torch.as_tensor(np.asarray(V, np.float64))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr, weight_decay=weight_decay)
    n = len(y)
    n_batches = max(1, math.ceil(n / batch_size))
    for _ in range(epochs):
        batches = _balanced_batches(y, batch_size, n_batches, rng) if balanced else \
            np.array_split(rng.permutation(n), n_batches)
        for idx in batches:
            idx = torch.as_tensor(idx)
            z = Vt[idx] @ W.T + b
            if W.shape[0] == 1:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], yt[idx].double())
            else:
                loss = torch.nn.functional.cross_entropy(z, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return W.detach().numpy().copy(), b.detach().numpy().copy()


# ----------------------------------------------------------------------------------------------
# the estimator

class NeuronTune(BaseEstimator):
    """NeuronTune: flag embedding neurons whose activation goes with errors, mute them, retrain the head.

    Parameters
    ----------
    model : ReLUNet, nn.Sequential ending in nn.Linear, nn.Module with ``.head``/``.embed``, or ``(embed_fn, head)``
        The trained model ``f = h ∘ e`` (not modified).
    lam : float, default 0.0
        Threshold λ: a neuron is biased when ``δ > λ`` (per ``rule``).
    rule : {'all', 'any'}, default 'all'
        ``'all'``: δ > λ for every class (the source's literal "∀y"); ``'any'``: for at least one class.
    mask_value : float in [0, 1], default 0.0
        Factor applied to the masked neurons (0 zeroes them).
    neurons : {'flagged', 'none', 'random'} or array, default 'flagged'
        Which neurons to mask: NeuronTune's flagged set; ``'none'`` (control: same head retraining, no mask);
        ``'random'`` (control: a seeded random set of the same size as the flagged one); or explicit
        indices / a boolean mask of length M.
    balanced : bool, default True
        Class-balanced sampling when retraining the head.
    epochs, lr, batch_size, weight_decay : head retraining (Adam, float64).
    seed : int
        Seeds the sampler and the random-mask control; same seed → bit-for-bit same head.
    device : str or None
        Device for computing embeddings of torch models (default CPU).

    Attributes
    ----------
    delta_ : ndarray (C, M)   δ on the identification set with the original model.
    counts_ : ndarray (C, 2)  misclassified / correct per class.
    flagged_ : bool ndarray (M,)  neurons with δ > λ under ``rule``.
    masked_ : bool ndarray (M,)   neurons actually masked (differs from ``flagged_`` for the controls).
    sfit_ : float   SFit of the original model on the identification set.
    rule_, lam_ : the rule and λ used (reported with every result).
    W_, b_ : the retrained head;  delta_after_, sfit_after_ : δ and SFit of the tuned model on the
    identification set (``fit`` with the identification set only).
    """

    def __init__(self, model, lam=0.0, rule="all", mask_value=0.0, neurons="flagged", balanced=True, epochs=50,
                 lr=1e-2, batch_size=64, weight_decay=1e-4, seed=0, device=None):
        self.model = model
        self.lam = lam
        self.rule = rule
        self.mask_value = mask_value
        self.neurons = neurons
        self.balanced = balanced
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device

    # -- helpers ---------------------------------------------------------------------------------
    def _split(self) -> SplitModel:
        if not hasattr(self, "split_"):
            self.split_ = split_model(self.model, self.device)
        return self.split_

    def _check_X(self, X, name):
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty array with one row per sample; got shape {X.shape}.")
        if not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
            raise ValueError(f"{name} must be finite numbers; impute or drop NaN/inf rows first.")
        return X

    def _embed(self, X, name):
        try:
            return self._split().embed(X)
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"the model could not embed {name} of shape {np.shape(X)} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200]}); pass {name} with the per-row shape the model "
                             "was trained on.") from e

    def _mask_vector(self, M):
        m = np.ones(M)
        m[self.masked_] = self.mask_value_
        return m

    # -- public ----------------------------------------------------------------------------------
    def identify(self, X_ide, y_ide) -> "NeuronTune":
        """Compute δ, the flagged neurons and SFit on the identification set (the original model).

        Parameters
        ----------
        X_ide : array (n, ...) inputs of the model
        y_ide : array (n,) integer labels

        Returns
        -------
        self
        """
        self.lam_ = check_lam(self.lam)
        self.rule_ = check_rule(self.rule)
        sm = self._split()
        X = self._check_X(X_ide, "X_ide")
        y = check_label_range(check_class_labels(y_ide, len(X), "y_ide"), sm.n_classes, "y_ide")
        V = self._embed(X, "X_ide")
        pred = sm.predict_from_embedding(V)
        self.delta_, self.counts_ = spuriousness_scores(V, y, pred == y, n_classes=sm.n_classes)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.flagged_ = flag_neurons(self.delta_, self.lam_, self.rule_)
        for wi in w:
            warnings.warn(wi.message, wi.category, stacklevel=2)
        self.n_flagged_ = int(self.flagged_.sum())
        self.sfit_ = sfit(self.delta_)
        self.n_features_in_ = V.shape[1]
        self._ide = (X, y)
        return self

    def _resolve_masked(self, M):
        nv = self.neurons
        if isinstance(nv, str):
            if nv == "flagged":
                return self.flagged_.copy()
            if nv == "none":
                return np.zeros(M, bool)
            if nv == "random":
                k = int(self.flagged_.sum())
                out = np.zeros(M, bool)
                out[np.random.default_rng(self.seed + 7919).choice(M, size=k, replace=False)] = True
                return out
            raise ValueError(f"neurons={nv!r} is unknown; use 'flagged', 'none', 'random' or an index array.")
        a = np.asarray(nv)
        if a.dtype == bool:
            if a.shape != (M,):
                raise ValueError(f"a boolean neurons mask must have shape ({M},); got {a.shape}.")
            return a.copy()
        if a.ndim != 1 or (a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= M)):
            raise ValueError(f"neurons must be indices in [0, {M}) or a bool mask of length {M}; got {nv!r}.")
        out = np.zeros(M, bool)
        out[a] = True
        return out

    def fit(self, X_tune, y_tune, X_ide=None, y_ide=None) -> "NeuronTune":
        """Identify (if ``X_ide`` is given), mask and retrain the head on the tuning set.

        Parameters
        ----------
        X_tune, y_tune : the tuning set (paper default: the training set; "†": the other validation half)
        X_ide, y_ide : the identification set; may be omitted if :meth:`identify` was called before.

        Returns
        -------
        self
        """
        self.mask_value_ = check_mask_value(self.mask_value)
        check_head_numbers(self.epochs, self.lr, self.batch_size, self.weight_decay, self.seed)
        if X_ide is not None or y_ide is not None:
            if X_ide is None or y_ide is None:
                raise ValueError("pass both X_ide and y_ide (the identification set), or neither after identify().")
            self.identify(X_ide, y_ide)
        if not hasattr(self, "delta_"):
            raise NotFittedError("no identification yet: pass X_ide, y_ide to fit() or call identify() first.")
        sm = self._split()
        X = self._check_X(X_tune, "X_tune")
        y = check_label_range(check_class_labels(y_tune, len(X), "y_tune"), sm.n_classes, "y_tune")
        if len(np.unique(y)) < 2:
            raise ValueError("y_tune holds a single class; the head needs every class to retrain.")
        M = self.n_features_in_
        self.masked_ = self._resolve_masked(M)
        V = self._embed(X, "X_tune") * self._mask_vector(M)
        self.W_, self.b_ = retrain_head(V, y, sm.W, sm.b, balanced=bool(self.balanced), epochs=int(self.epochs),
                                        lr=float(self.lr), batch_size=int(self.batch_size),
                                        weight_decay=float(self.weight_decay), seed=int(self.seed))
        Xi, yi = self._ide
        Vi = self.transform(Xi)
        pred = self._predict_V(Vi)
        self.delta_after_, _ = spuriousness_scores(Vi, yi, pred == yi, n_classes=sm.n_classes)
        self.sfit_after_ = sfit(self.delta_after_)
        return self

    def _check_fitted(self):
        if not hasattr(self, "W_"):
            raise NotFittedError("this NeuronTune is not fitted; call fit(X_tune, y_tune, X_ide, y_ide) first.")

    def transform(self, X):
        """Masked embeddings ``(n, M)`` (the head's input after regulation)."""
        self._check_fitted()
        return self._embed(self._check_X(X, "X"), "X") * self._mask_vector(self.n_features_in_)

    def _predict_V(self, V):
        z = V @ self.W_.T + self.b_
        return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(1).astype(np.int64)

    def decision_function(self, X):
        """Head outputs ``(n, K)`` of the tuned model."""
        V = self.transform(X)
        return V @ self.W_.T + self.b_

    def predict(self, X):
        """Class predictions ``(n,)`` of the tuned model."""
        return self._predict_V(self.transform(X))

    def score(self, X, y):
        """Mean accuracy of the tuned model."""
        X = self._check_X(X, "X")
        return float(np.mean(self.predict(X) == check_class_labels(y, len(X))))

    def summary(self) -> dict:
        """What was flagged and how (rule, λ, sizes, SFit before/after)."""
        self._check_fitted()
        return {"rule": self.rule_, "lam": self.lam_, "neurons": self.neurons if isinstance(self.neurons, str)
                else "explicit", "mask_value": self.mask_value_, "n_neurons": int(self.n_features_in_),
                "n_flagged": int(self.flagged_.sum()), "n_masked": int(self.masked_.sum()),
                "sfit_before": self.sfit_, "sfit_after": self.sfit_after_}


def select_by_sfit(model, X_tune, y_tune, X_ide, y_ide, lams, **kwargs):
    """Fit one :class:`NeuronTune` per λ and keep the one with the highest SFit after tuning.

    Returns
    -------
    best : NeuronTune
    table : list of dict (one per λ: lam, n_flagged, sfit_after)
    """
    lams = [check_lam(v) for v in np.atleast_1d(lams)]
    if not lams:
        raise ValueError("lams is empty; pass at least one λ, e.g. lambda_grid(delta).")
    base = NeuronTune(model, lam=lams[0], **kwargs).identify(X_ide, y_ide)
    best, rows = None, []
    for lam in lams:
        nt = NeuronTune(model, lam=lam, **kwargs)
        nt.split_ = base.split_
        nt.delta_, nt.counts_, nt.sfit_, nt.n_features_in_, nt._ide = base.delta_, base.counts_, base.sfit_, \
            base.n_features_in_, base._ide
        nt.lam_, nt.rule_ = lam, check_rule(nt.rule)
        nt.flagged_ = flag_neurons(nt.delta_, lam, nt.rule_)
        nt.n_flagged_ = int(nt.flagged_.sum())
        nt.fit(X_tune, y_tune)
        rows.append({"lam": lam, "n_flagged": nt.n_flagged_, "sfit_after": nt.sfit_after_})
        if best is None or nt.sfit_after_ > best.sfit_after_:
            best = nt
    return best, rows
