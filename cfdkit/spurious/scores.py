"""The colour-score of Sialelli et al. (Algorithm 1) and unbiased accuracy, for a zoo or any classifier.

Colour-score (Alg. 1 of *Mirror, mirror on the wall, is my model biased at all?*): take test digits, paint
each in the **exact mean colour of its own class**; keep those the model classifies correctly in that colour;
for each kept digit and each of the 9 other class colours, record ``p_true(other colour) / p_true(own colour)``;
the score is the mean of all these ratios. 1 means colour does not matter; small means the model's confidence
collapses when the digit has another class's colour (colour bias). A broken model can also score near 1, so
the score is always reported next to unbiased test accuracy (:func:`bias_report`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..core.validation import check_number
from .data import MEAN_COLORS, paint

__all__ = ["color_score", "color_score_fn", "bias_report"]


def _check_gray(gray, y, n_classes):
    gray = np.asarray(gray, dtype=np.float64)
    y = np.asarray(y)
    if gray.ndim != 3:
        raise ValueError(f"gray must have shape (n, H, W) (uncoloured digits, e.g. data.gray_test); got {gray.shape}.")
    if y.shape != (gray.shape[0],):
        raise ValueError(f"y must have shape ({gray.shape[0]},); got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y must hold digit labels in 0..{n_classes - 1}; the colour-score is defined for the "
                         "10-class jitter task (mode='jitter').")
    return gray, y.astype(np.int64)


def _limit(gray, y, n_images, seed):
    n_images = check_number(n_images, "n_images", low=1, integer=True, allow_none=True,
                            fix="Pass e.g. n_images=1000 (a seeded subset) or None for every digit.")
    check_number(seed, "seed", low=0, integer=True, fix="Pass e.g. seed=0.")
    if n_images is None or n_images >= len(y):
        return gray, y
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(y), size=int(n_images), replace=False))
    return gray[idx], y[idx]


def _score_from_probs(P, y):
    """P: array (M, K, n, C) probabilities of each member for each painted colour k; returns scores (M,), n_kept (M,)."""
    M, K, n, _ = P.shape
    ar = np.arange(n)
    p_true = P[:, :, ar, y]  # (M, K, n): prob of the true class when painted in colour k
    p_own = p_true[:, y, ar]  # (M, n): in the own class colour
    pred_own = P[:, y, ar, :].argmax(-1)  # (M, n)
    correct = pred_own == y[None]
    other = np.ones((K, n), dtype=bool)
    other[y, ar] = False
    ratios = p_true / p_own[:, None, :]  # (M, K, n)
    mask = other[None] & correct[:, None, :]
    cnt = mask.sum(axis=(1, 2))
    tot = np.where(mask, ratios, 0.0).sum(axis=(1, 2))
    score = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return score, correct.sum(1)


def color_score(zoo, gray, y, palette=MEAN_COLORS, n_images: int | None = 1000, seed: int = 0, return_counts=False,
                dropout: dict | None = None):
    """Colour-score of every member of a :class:`~cfdkit.spurious.zoo.ModelZoo`.

    Parameters
    ----------
    zoo : ModelZoo
    gray : array (n, H, W) in [0, 1]
        Uncoloured test digits (e.g. ``data.gray_test``).
    y : array (n,) of ints in 0..9
    palette : array (10, 3)
        Class mean colours (default the Colored-MNIST ones).
    n_images : int or None
        Use at most this many digits (a seeded random subset; Alg. 1 uses a thousand).
    return_counts : bool
        Also return how many digits were kept (correct in their own colour) per member.
    dropout : dict or None
        Passed to :meth:`ModelZoo.predict_proba` (dropout kept active at prediction time).

    Returns
    -------
    score : ndarray (M,) (NaN for a member that classifies no digit correctly)
    [n_kept : ndarray (M,)]
    """
    gray, y = _check_gray(gray, y, zoo.spec.n_classes)
    palette = np.asarray(palette, dtype=np.float64)
    if palette.shape != (zoo.spec.n_classes, 3):
        raise ValueError(f"palette must have shape ({zoo.spec.n_classes}, 3); got {palette.shape}.")
    gray, y = _limit(gray, y, n_images, seed)
    P = np.stack([zoo.predict_proba(paint(gray, palette[k], dtype=np.float64), dropout=dropout, seed=seed + k).cpu().numpy()
                  for k in range(len(palette))], axis=1)  # (M, K, n, C)
    score, kept = _score_from_probs(P, y)
    return (score, kept) if return_counts else score


def color_score_fn(predict_proba, gray, y, palette=MEAN_COLORS, n_images: int | None = 1000, seed: int = 0):
    """Colour-score of one classifier given as a function ``predict_proba(X (n, 3, H, W) ndarray) -> (n, 10)``."""
    gray, y = _check_gray(gray, y, len(palette))
    palette = np.asarray(palette, dtype=np.float64)
    gray, y = _limit(gray, y, n_images, seed)
    P = []
    for k in range(len(palette)):
        p = predict_proba(paint(gray, palette[k], dtype=np.float64))
        p = p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p, dtype=np.float64)
        if p.shape != (len(y), len(palette)):
            raise ValueError(f"predict_proba must return shape ({len(y)}, {len(palette)}); got {p.shape}.")
        P.append(p)
    score, _ = _score_from_probs(np.stack(P)[None], y)
    return float(score[0])


def bias_report(zoo, data, n_images: int | None = 1000, seed: int = 0, dropout: dict | None = None) -> pd.DataFrame:
    """Per-member unbiased test accuracy, bias-aligned / bias-conflicting accuracy and colour-score.

    Parameters
    ----------
    zoo : ModelZoo
    data : ColoredDigits (mode='jitter')
        Its test split (random colours) gives the unbiased accuracy; its grey test digits the colour-score.

    Returns
    -------
    DataFrame with one row per member: member, sigma2, level, seed, accuracy, aligned_accuracy,
    conflicting_accuracy, color_score, n_scored.
    """
    if data.mode != "jitter":
        raise ValueError("bias_report needs mode='jitter' data (10 digit classes with class colours).")
    P = zoo.predict_proba(data.X_test, dropout=dropout, seed=seed).cpu().numpy()
    hit = P.argmax(-1) == data.y_test[None]
    al = data.groups_test == 1
    cs, kept = color_score(zoo, data.gray_test, data.y_test, n_images=n_images, seed=seed, return_counts=True,
                           dropout=dropout)
    return pd.DataFrame({
        "member": np.arange(len(zoo)), "sigma2": zoo.sigma2, "level": zoo.levels,
        "seed": zoo.meta["seed"].cpu().numpy() if "seed" in zoo.meta else -1,
        "accuracy": hit.mean(1), "aligned_accuracy": hit[:, al].mean(1) if al.any() else np.nan,
        "conflicting_accuracy": hit[:, ~al].mean(1), "color_score": cs, "n_scored": kept})
