"""Placebo controls: how often do *random* label flips, or another seed, flip a prediction?

A counterfactual dataset claims that *these* labels decide a prediction.  The claim means
something only if random label sets of the same size, drawn from the same candidate pool ψ,
seldom flip it too, and if the prediction survives a change of the initialization seed.

* :func:`random_flip_rates` -- for each test row and each size k, the share of ``n_draws``
  random label sets of size k (from that row's ψ-pool) whose retrained network flips the row's
  prediction.  Rows with the same pool share the same draws (with the default ψ,
  ``same_label_as_prediction``, there are only two pools), so the cost is
  ``n_pools × len(sizes) × n_draws`` networks, independent of the number of test rows, all
  trained as one batched ensemble (:mod:`cfdkit.neural.ensemble`: the built-in network's hand-written
  kernel, or a ``model=`` module's ``torch.func`` ensemble).
* :func:`seed_flip_rates` -- the share of ``n_draws`` other initialization seeds (original
  labels) that flip each prediction; one ensemble with one start per member.
* :func:`specificity` -- per CFD of size k: ``1 - share of random size-k sets from the same pool
  that also flip it`` (NaN where no CFD).  A CFD with specificity below ``min_specificity`` is
  *indistinguishable from noise* (:func:`verdict`).

Every placebo network's convergence is recorded; the count of members that did not converge is
reported (``n_not_converged``), never silently dropped.
"""
from __future__ import annotations

import numbers
import zlib

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm


__all__ = ["check_n_draws", "check_sizes", "pool_groups", "train_and_flip", "random_flip_rates", "seed_flip_rates",
           "specificity", "verdict", "summarize", "NOISE", "FINDING"]

FINDING = "finding"
NOISE = "indistinguishable from noise"


#: Largest number of placebo draws accepted (each is a retrained network per candidate pool and size).
MAX_DRAWS = 10_000


def check_n_draws(n_draws, name: str = "n_draws") -> int:
    """A positive int (``ValueError`` naming the fix otherwise)."""
    if isinstance(n_draws, (bool, np.bool_)) or not isinstance(n_draws, numbers.Integral):
        raise TypeError(f"{name} must be a positive int (random draws per placebo), got {type(n_draws).__name__} "
                        f"{n_draws!r}; e.g. {name}=20.")
    if not 1 <= n_draws <= MAX_DRAWS:
        raise ValueError(f"{name} must be in [1, {MAX_DRAWS:,}] (random draws per placebo; each draw retrains a "
                         f"network), got {n_draws}; e.g. {name}=20.")
    return int(n_draws)


def check_sizes(sizes, pool_sizes: np.ndarray) -> tuple:
    """Distinct positive int sizes, each at most the smallest candidate pool of the test rows."""
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, (bool, np.bool_)):
        sizes = (sizes,)
    try:
        ks = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be an int or a sequence of ints (label-set sizes), got {sizes!r}; "
                        "e.g. sizes=(1, 10).") from None
    if not ks or any(isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 1 for k in ks):
        raise ValueError(f"sizes must be positive ints (label-set sizes), got {sizes!r}; e.g. sizes=(1, 10).")
    ks = tuple(sorted(set(int(k) for k in ks)))
    small = int(pool_sizes.min()) if len(pool_sizes) else 0
    if ks[-1] > small:
        raise ValueError(f"sizes={ks} asks for label sets of {ks[-1]} flips, but the smallest candidate pool ψ of "
                         f"these test rows has {small} training points; pass sizes <= {small} (or a wider psi).")
    return ks


def pool_groups(mask: np.ndarray):
    """Group test rows by identical ψ-pool: ``(pools (g, n_train) bool, group (n_test,) int)``."""
    if len(mask) == 0:
        return np.zeros((0, mask.shape[1]), bool), np.zeros(0, np.int64)
    pools, group = np.unique(mask, axis=0, return_inverse=True)
    return pools, np.asarray(group).reshape(-1).astype(np.int64)


def _draw_sets(pool_idx: np.ndarray, k: int, n_draws: int, seed: int):
    """``n_draws`` random size-k subsets of ``pool_idx``, seeded by ``seed``, ``k`` and the pool itself.

    Keyed by the pool's contents (a CRC of its indices), not by its position among one call's pools,
    so a test row's draws, and hence its specificity, do not depend on which other rows are in the call.
    """
    key = zlib.crc32(np.asarray(pool_idx, dtype=np.int64).tobytes())
    rng = np.random.default_rng([int(seed), int(k), int(key), 16])
    return [np.sort(rng.choice(pool_idx, size=k, replace=False)) for _ in range(n_draws)]


def train_and_flip(ens, label_sets, Xt_t: torch.Tensor, logit0: np.ndarray, max_batch=None, bar=None):
    """Retrain on each label set as an ensemble (:mod:`cfdkit.neural.ensemble`), in chunks.

    Returns
    -------
    flips : (B, n_test) bool
        Whether member ``b`` predicts test row ``t`` on the other side of 0 than ``logit0[t]``.
    converged : (B,) bool
    """
    mb = ens.chunk(max_batch)
    flips, conv = [], []
    for s in range(0, len(label_sets), mb):
        chunk = label_sets[s:s + mb]
        P, info = ens.train(ens.flipped(chunk))
        lg = ens.logits(P, Xt_t)
        flips.append((lg > 0) != (logit0 > 0)[None, :]); conv.append(info["converged"])
        if bar is not None:
            bar.update(len(chunk))
    if not flips:
        return np.zeros((0, len(logit0)), bool), np.zeros(0, bool)
    return np.concatenate(flips), np.concatenate(conv)


def random_flip_rates(cfd, Xt: np.ndarray, logit0: np.ndarray, mask: np.ndarray, sizes, n_draws: int,
                      seed: int = 0, max_batch=None, progress: bool = False, rows_for_size=None):
    """Share of random size-k label sets (from each row's ψ-pool) that flip each prediction.

    Parameters
    ----------
    cfd : fitted NeuralCFD.
    Xt : (n_test, d) validated test inputs; logit0 : (n_test,) original logits.
    mask : (n_test, n_train) bool ψ-pools.
    sizes : iterable of int k.
    n_draws : random label sets per (pool, k).
    seed : seeds the draws.
    rows_for_size : optional dict k → bool (n_test,): only pools of these rows get size-k draws
        (the others get NaN); used by :func:`specificity`.

    The networks are the fitted estimator's ensemble (:meth:`cfdkit.neural.NeuralCFD.ensemble`): the built-in
    network's hand-written kernel or a ``model=`` module's ``torch.func`` ensemble.

    Returns
    -------
    rates : dict k → (n_test,) float64 (NaN where not drawn), n_networks : int,
    n_not_converged : int
    """
    pools, group = pool_groups(mask)
    jobs = []                                            # (k, pool g, label sets)
    for k in sizes:
        want = np.ones(len(Xt), bool) if rows_for_size is None else rows_for_size[k]
        for g in np.unique(group[want]):
            jobs.append((k, int(g), _draw_sets(np.flatnonzero(pools[g]), k, n_draws, seed)))
    sets = [s for _, _, ss in jobs for s in ss]
    bar = tqdm(total=len(sets), desc="placebo (random labels)", disable=not progress, unit="net")
    flips, conv = train_and_flip(cfd.ensemble(), sets, cfd.as_tensor(Xt), logit0, max_batch, bar)
    bar.close()
    rates = {k: np.full(len(Xt), np.nan) for k in sizes}
    off = 0
    for k, g, ss in jobs:
        rows = group == g
        if rows_for_size is not None:
            rows &= rows_for_size[k]
        rates[k][rows] = flips[off:off + len(ss)][:, rows].mean(0)
        off += len(ss)
    return rates, len(sets), int((~conv).sum())


def seed_flip_rates(cfd, Xt: np.ndarray, logit0: np.ndarray, n_draws: int, progress: bool = False):
    """Share of ``n_draws`` other initialization seeds (``seed_ + 1 .. seed_ + n_draws``, original
    labels) whose network flips each prediction.  Returns ``(rates (n_test,), n_not_converged)``.

    Other seeds are :func:`cfdkit.neural.model.init_params` for the built-in network and every submodule's
    ``reset_parameters()`` under ``torch.manual_seed`` for a ``model=`` module
    (:func:`cfdkit.neural.module.reinit_params`)."""
    ens = cfd.ensemble()
    P0 = ens.starts([cfd.seed_ + j for j in range(1, n_draws + 1)])
    Y = ens.y.unsqueeze(0).repeat(n_draws, 1)
    with tqdm(total=n_draws, desc="placebo (seeds)", disable=not progress, unit="net") as bar:
        P, info = ens.train(Y, params0=P0)
        bar.update(n_draws)
    lg = ens.logits(P, cfd.as_tensor(Xt))
    return ((lg > 0) != (logit0 > 0)[None, :]).mean(0), int((~info["converged"]).sum())


def specificity(cfd, Xt, logit0, mask, found, k, n_draws: int, seed: int = 0, max_batch=None, progress=False):
    """``1 - share of random size-k label sets (same ψ-pool) that also flip`` each found CFD.

    Returns ``(spec (n_test,) float64, NaN where not found; n_networks; n_not_converged)``.
    """
    spec = np.full(len(Xt), np.nan)
    ks = sorted(set(int(v) for v in k[found]))
    if not ks:
        return spec, 0, 0
    rows_for = {kk: found & (k == kk) for kk in ks}
    rates, nn, nbad = random_flip_rates(cfd, Xt, logit0, mask, ks, n_draws, seed, max_batch, progress, rows_for)
    for kk in ks:
        spec[rows_for[kk]] = 1.0 - rates[kk][rows_for[kk]]
    return spec, nn, nbad


def verdict(found, specificity, min_specificity: float, converged=None) -> np.ndarray:
    """Label per row: ``"no CFD"``, ``"finding"`` (specificity >= ``min_specificity``),
    ``"indistinguishable from noise"``, ``"not checked"`` (no placebo) or ``"not converged"``."""
    out = np.full(len(found), "no CFD", dtype=object)
    spec = np.asarray(specificity, float)
    out[found & np.isnan(spec)] = "not checked"
    out[found & (spec >= min_specificity)] = FINDING
    out[found & (spec < min_specificity)] = NOISE
    if converged is not None:
        out[found & ~np.asarray(converged, bool)] = "not converged"
    return out


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Summary of a placebo frame: per rate column, mean / median / max over the test rows and the
    share of rows that any placebo flipped."""
    cols = [c for c in frame.columns if c.startswith("flip_rate_")]
    return pd.DataFrame({"mean": frame[cols].mean(), "median": frame[cols].median(), "max": frame[cols].max(),
                         "share_rows_flipped": (frame[cols] > 0).mean()}).rename_axis("placebo")
