"""Rankings of training examples: which labels to flip first.

A ranking is a function ``fn(model, X_train, y_train, X_test, **options) -> scores`` with
``scores`` a float64 array ``(n_test, n_train)``; **higher = flip first**.  Rankings are
registered by name in :data:`RANKINGS` (see :func:`register_ranking`, :func:`get_ranking`).
Training points excluded by the filter ψ are handled by :func:`masked_order` (their score is
set to ``-inf`` and they are never flipped); rank-based combinations rank among the
candidates only (pass ``mask=``).

Paper-backed rankings (Kim, Mitchell, Wang, NLDL 2026, slides 10-11):

* ``lr_surrogate`` — "Bypass training via a closed-form solution": ``y = xᵀ(XᵀX)⁻¹Xᵀy =
  z y = Σ z_i y_i``; "n training examples are sorted in decreasing order of their z_i score".
  cfdkit adds an intercept column and a small ridge ``ε I`` and scores the *signed* change
  ``z_i (1 - 2 y_i)`` in the direction that pushes the prediction across the boundary
  (the direction is our reading; the paper only says "z_i score").
* ``activation_pattern`` — "Sim(x, x′) = 1 − (1/d) Σ_k 1{b_k(x) ≠ b_k(x′)}" over the binary
  on/off pattern of all hidden ReLUs (pre-activation > 0).  Most similar first (the slide's
  "increasing order" is read as rank order; see ``cfd_nn_method.md`` §4).
* ``combined`` — COMBINE_SCORING; the paper's rule is not public.  **cfdkit's choice:** the
  mean of the two ranks (average ranks for ties) of ``lr_surrogate`` and
  ``activation_pattern`` among the ψ-candidates, ties broken by the ``lr_surrogate`` rank.
  Alternatives registered for comparison: ``combined_zscore`` (mean of standardised scores)
  and ``combined_gradient`` (rank mean of ``lr_surrogate`` and ``activation_gradient``).

Baselines: ``random`` (seeded), ``l2_distance`` (nearest first), ``activation_gradient``
(cosine similarity of ∂f/∂(hidden pre-activations), the summary's reading of NAS), and
``influence`` (relabel influence with the exact Hessian, :mod:`cfdkit.neural.influence`).
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import torch
from scipy.stats import rankdata

from .validation import check_param
from .model import as_relu_net

__all__ = ["RANKINGS", "register_ranking", "get_ranking", "masked_order", "lr_surrogate",
           "activation_pattern", "activation_gradient", "combined", "random_ranking",
           "l2_distance", "push_direction"]

RankingFn = Callable[..., np.ndarray]
RANKINGS: Dict[str, RankingFn] = {}


def register_ranking(name: str):
    """Decorator: register ``fn`` under ``name`` in :data:`RANKINGS`."""
    def deco(fn):
        RANKINGS[name] = fn
        return fn
    return deco


def get_ranking(name) -> RankingFn:
    """Look a ranking up by name (or pass a callable through).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"ranking must be a name in {sorted(RANKINGS)} or a callable, got {type(name).__name__} "
                        f"{name!r}.")
    if name not in RANKINGS:
        raise ValueError(f"ranking={name!r} is unknown; use one of {sorted(RANKINGS)} "
                         f"or register your own with cfdkit.neural.register_ranking.")
    return RANKINGS[name]


def _net(model):
    """The built-in :class:`ReLUNet` (or an equivalent ``nn.Sequential``), or a trained user module
    (:class:`cfdkit.neural.module.ModuleNet`: logits and hooked internals)."""
    return model if getattr(model, "is_module_net", False) else as_relu_net(model)


def push_direction(model, X_test) -> np.ndarray:
    """``+1`` where the network predicts 0 (push the logit up), ``-1`` where it predicts 1."""
    return np.where(_net(model).logit(X_test) > 0, -1.0, 1.0)


def masked_order(scores: np.ndarray, mask=None, budget: int | None = None):
    """Rank training points per test input; excluded ones never appear.

    Parameters
    ----------
    scores : (n_test, n_train) float64, higher = flip first.
    mask : (n_test, n_train) bool or None
        ψ-candidates (True = may be flipped).
    budget : int or None
        Keep only the first ``budget`` positions.

    Returns
    -------
    order : (n_test, budget) int64
        Training indices in rank order, padded with ``-1`` past the number of candidates.
    n_cand : (n_test,) int64
        Number of candidates per test input.
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    if mask is None:
        mask = np.ones_like(s, dtype=bool)
    s[~mask] = -np.inf
    budget = s.shape[1] if budget is None else int(budget)
    # stable sort on -s: ties keep training-index order (deterministic)
    order = np.argsort(-s, axis=1, kind="stable")[:, :budget].astype(np.int64)
    n_cand = mask.sum(axis=1).astype(np.int64)
    order[np.arange(budget)[None, :] >= n_cand[:, None]] = -1
    return order, n_cand


def _ranks(scores: np.ndarray, mask=None) -> np.ndarray:
    """Average ranks per row, 0 = best (highest score); excluded points get rank n."""
    s = np.where(mask, scores, -np.inf) if mask is not None else scores
    return rankdata(-s, method="average", axis=1) - 1.0


@register_ranking("lr_surrogate")
def lr_surrogate(model, X_train, y_train, X_test, *, ridge: float = 1e-6, mask=None, **_) -> np.ndarray:
    """Closed-form least-squares surrogate (paper §4.3, slide 10).

    ``z = x̃ᵀ(X̃ᵀX̃ + εI)⁻¹X̃ᵀ`` with ``X̃ = [X, 1]`` and ``ε = ridge · max(1, mean diag X̃ᵀX̃)``.
    Flipping ``y_i`` changes the surrogate prediction by ``z_i (1 - 2 y_i)``; the score is that
    change times the push direction of the network's current prediction.

    Returns
    -------
    (n_test, n_train) float64
    """
    ridge = check_param(ridge, "ridge", low=0, high=1e6, fix="Pass e.g. ranking_options={'ridge': 1e-6} (a small "
                        "ridge relative to the mean diagonal of the Gram matrix).")
    Xa = np.hstack([np.asarray(X_train, float), np.ones((len(X_train), 1))])
    Ta = np.hstack([np.asarray(X_test, float), np.ones((len(X_test), 1))])
    A = Xa.T @ Xa
    A[np.diag_indices_from(A)] += ridge * max(1.0, float(np.mean(np.diag(A))))
    W = np.linalg.solve(A, Ta.T)                   # (d+1, n_test)
    Z = (Xa @ W).T                                  # (n_test, n_train)
    delta = Z * (1.0 - 2.0 * np.asarray(y_train, float))[None, :]
    return delta * push_direction(model, X_test)[:, None]


@register_ranking("activation_pattern")
def activation_pattern(model, X_train, y_train, X_test, *, mask=None, **_) -> np.ndarray:
    """Neuron activation similarity (paper §4.4, slide 11).

    ``Sim(x, x′) = 1 − (1/d) Σ_k 1{b_k(x) ≠ b_k(x′)}`` over all ``d = h1 + h2`` hidden ReLUs
    of the original network, ``b_k = 1`` if the pre-activation is > 0.

    Returns
    -------
    (n_test, n_train) float64 in [0, 1]; most similar = highest.
    """
    net = _net(model)
    if getattr(net, "is_module_net", False):      # model=: on/off pattern of the hooked layer (``layer=``)
        Btr, Bte = net.activation_codes(X_train), net.activation_codes(X_test)
    else:
        Btr = np.hstack(net.hidden_preactivations(X_train)) > 0
        Bte = np.hstack(net.hidden_preactivations(X_test)) > 0
    d = Btr.shape[1]
    # Hamming distance via inner products of ±1 codes
    agree = (Bte.astype(float) @ Btr.T.astype(float)) + ((~Bte).astype(float) @ (~Btr).T.astype(float))
    return agree / d


@register_ranking("activation_gradient")
def activation_gradient(model, X_train, y_train, X_test, *, mask=None, **_) -> np.ndarray:
    """Cosine similarity of ``∂f/∂(z1, z2)``, gradients of the logit w.r.t. hidden pre-activations.

    (Post-activation gradients of the last layer are the constant ``w3``; pre-activations carry
    the on/off pattern.)  Zero gradient vectors get similarity 0.

    Returns
    -------
    (n_test, n_train) float64 in [-1, 1].
    """
    net = _net(model)
    if getattr(net, "is_module_net", False):      # model=: ∂logit/∂(hooked layer), via a forward hook
        W2 = None
    else:
        W1, b1, W2, b2, w3, b3 = (p.double().cpu().numpy() for p in net.params)

    def grads(X):
        if W2 is None:
            G = net.activation_gradients(X)
        else:
            z1, z2 = net.hidden_preactivations(X)
            g2 = w3[None, :] * (z2 > 0)
            g1 = (g2 @ W2.T) * (z1 > 0)
            G = np.hstack([g1, g2])
        nrm = np.linalg.norm(G, axis=1, keepdims=True)
        return np.divide(G, nrm, out=np.zeros_like(G), where=nrm > 0)

    return grads(X_test) @ grads(X_train).T


@register_ranking("l2_distance")
def l2_distance(model, X_train, y_train, X_test, *, mask=None, **_) -> np.ndarray:
    """Baseline: negative Euclidean distance (nearest training input first)."""
    Xtr = np.asarray(X_train, float); Xte = np.asarray(X_test, float)
    d2 = (Xte ** 2).sum(1)[:, None] + (Xtr ** 2).sum(1)[None, :] - 2 * Xte @ Xtr.T
    return -np.sqrt(np.maximum(d2, 0.0))


@register_ranking("random")
def random_ranking(model, X_train, y_train, X_test, *, seed: int = 0, mask=None, **_) -> np.ndarray:
    """Baseline: i.i.d. uniform scores from ``np.random.default_rng(seed)``."""
    return np.random.default_rng(seed).random((len(X_test), len(X_train)))


def _rank_mean(a: np.ndarray, b: np.ndarray, mask) -> np.ndarray:
    ra, rb = _ranks(a, mask), _ranks(b, mask)
    n = a.shape[1]
    # mean rank; ties broken by the first ranking (offset < half the smallest rank-mean step)
    return -((ra + rb) / 2.0 + ra / (4.0 * (n + 1)))


@register_ranking("combined")
def combined(model, X_train, y_train, X_test, *, mask=None, ridge: float = 1e-6, **_) -> np.ndarray:
    """COMBINE_SCORING, cfdkit's rule: mean rank of ``lr_surrogate`` and ``activation_pattern``.

    The paper's combination rule is not public (``cfd_nn_method.md`` §5); this is our choice.
    Ranks are taken among the ψ-candidates (``mask``); ties broken by the LR rank.
    """
    a = lr_surrogate(model, X_train, y_train, X_test, ridge=ridge)
    b = activation_pattern(model, X_train, y_train, X_test)
    return _rank_mean(a, b, mask)


@register_ranking("combined_gradient")
def combined_gradient(model, X_train, y_train, X_test, *, mask=None, ridge: float = 1e-6, **_) -> np.ndarray:
    """Alternative: mean rank of ``lr_surrogate`` and ``activation_gradient``."""
    a = lr_surrogate(model, X_train, y_train, X_test, ridge=ridge)
    b = activation_gradient(model, X_train, y_train, X_test)
    return _rank_mean(a, b, mask)


@register_ranking("combined_zscore")
def combined_zscore(model, X_train, y_train, X_test, *, mask=None, ridge: float = 1e-6, **_) -> np.ndarray:
    """Alternative: mean of the per-row standardised ``lr_surrogate`` and ``activation_pattern`` scores."""
    def z(s):
        if mask is not None:
            m = np.where(mask, s, np.nan)
            mu, sd = np.nanmean(m, 1, keepdims=True), np.nanstd(m, 1, keepdims=True)
        else:
            mu, sd = s.mean(1, keepdims=True), s.std(1, keepdims=True)
        return (s - np.nan_to_num(mu)) / np.where(np.nan_to_num(sd) > 0, np.nan_to_num(sd), 1.0)
    a = lr_surrogate(model, X_train, y_train, X_test, ridge=ridge)
    b = activation_pattern(model, X_train, y_train, X_test)
    return (z(a) + z(b)) / 2.0
