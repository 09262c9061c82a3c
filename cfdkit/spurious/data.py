"""Coloured digits built from scikit-learn's bundled ``load_digits`` (never downloaded).

Two colourings:

``mode="jitter"``
    Colored-MNIST as in Kim et al., *Learning Not to Learn* (CVPR 2019) and IFBiD's DigitWdb:
    each class ``y`` has a mean colour ``MEAN_COLORS[y]``; a training digit of class ``y`` is
    painted in a colour drawn per channel from ``N(MEAN_COLORS[y], sigma2)`` and redrawn (default)
    or clipped until it lies in the open interval (0, 1). Small ``sigma2`` means the colour almost
    determines the class (strong bias): 0.02 very high, 0.03 high, 0.04 low, 0.05 very low bias.
    Validation and test digits get the colour of a *random* class (same jitter), independent of
    their label, so they are unbiased.

``mode="binary"``
    A Waterbirds-like task: ``y = digit >= 5``, spurious attribute ``a`` in {0: red, 1: green}.
    In training ``P(a = y) = rho``; validation and test are balanced (within each class exactly
    half red, half green up to rounding), so all four groups ``g = 2*y + a`` occur.

Images are the 8x8 grey digits scaled to [0, 1] and multiplied by the colour, giving arrays of
shape (n, 3, H, W) with a black background. ``size=16`` upsamples by pixel repetition and
``shift=k`` moves every image by a random integer offset in [-k, k] on each axis (zero fill).

The split of the 1,797 digits into train/val/test pools depends only on ``split_seed``, so that
all members of a model zoo share the same test digits; ``seed`` drives the colour draws, the
training subset (``n_train``) and the shifts.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = ["MEAN_COLORS", "BINARY_COLORS", "SIGMA2_LEVELS", "BIAS_LEVEL_NAMES", "RHO_LEVELS", "ColoredDigits",
           "colored_digits", "paint", "load_gray_digits", "jitter_colors", "digit_split", "augmented_colored_digits"]

#: The ten Colored-MNIST class mean colours (RGB / 255), Kim et al. 2019.
MEAN_COLORS = np.array([
    (220, 20, 60), (0, 128, 128), (253, 233, 16), (0, 149, 182), (237, 145, 33),
    (145, 30, 188), (70, 240, 240), (250, 197, 187), (210, 245, 60), (128, 0, 0),
], dtype=np.float64) / 255.0

#: Colours of the binary spurious attribute: a = 0 red, a = 1 green.
BINARY_COLORS = np.array([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], dtype=np.float64)

#: IFBiD / DigitWdb jitter variances, from very high bias (0.02) to very low bias (0.05).
SIGMA2_LEVELS = (0.02, 0.03, 0.04, 0.05)
BIAS_LEVEL_NAMES = ("very high", "high", "low", "very low")
RHO_LEVELS = (0.9, 0.95, 0.99)

_MODES = ("jitter", "binary")


@dataclass
class ColoredDigits:
    """Coloured digits with labels, colours and groups for a train / validation / test split.

    For each split ``s`` in {train, val, test}:

    X_s : ndarray of shape (n_s, 3, H, W), float32 or float64 in [0, 1]
        Coloured images (channels R, G, B), black background.
    y_s : ndarray of shape (n_s,), int64
        Labels: the digit 0-9 (jitter) or ``digit >= 5`` (binary).
    digit_s : ndarray of shape (n_s,), int64
        The underlying digit 0-9.
    color_s : ndarray of shape (n_s, 3), float64
        The RGB colour each image was painted in, in (0, 1) (binary: exactly red or green).
    color_id_s : ndarray of shape (n_s,), int64
        Jitter: the class whose mean colour was jittered (equals ``y`` in training).
        Binary: the attribute ``a`` (0 red, 1 green).
    groups_s : ndarray of shape (n_s,), int64
        Jitter: 1 if the colour is bias-aligned (``color_id == y``), else 0.
        Binary: ``2 * y + a`` in {0, 1, 2, 3}.
    gray_s : ndarray of shape (n_s, H, W), float64 in [0, 1]
        The uncoloured (shifted, upsampled) digit, for repainting with :func:`paint`.
    """

    mode: str
    sigma2: float | None
    rho: float | None
    size: int
    seed: int
    palette: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    digit_train: np.ndarray
    color_train: np.ndarray
    color_id_train: np.ndarray
    groups_train: np.ndarray
    gray_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    digit_val: np.ndarray
    color_val: np.ndarray
    color_id_val: np.ndarray
    groups_val: np.ndarray
    gray_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    digit_test: np.ndarray
    color_test: np.ndarray
    color_id_test: np.ndarray
    groups_test: np.ndarray
    gray_test: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of labels: 10 (jitter) or 2 (binary)."""
        return 10 if self.mode == "jitter" else 2

    @property
    def image_shape(self) -> tuple:
        """(3, H, W)."""
        return tuple(self.X_train.shape[1:])

    def split(self, name: str):
        """Return ``(X, y, groups)`` of split ``name`` in {'train', 'val', 'test'}."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split name={name!r} is unknown; use 'train', 'val' or 'test'.")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}"), getattr(self, f"groups_{name}")


# ----------------------------------------------------------------------------------------------
# validation

def _check_int(value, name, low=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__}).")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name}={value} must be >= {low}.")
    return value


def _check_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode={mode!r} is unknown; use mode='jitter' (Colored-MNIST colour jitter, needs sigma2) "
                         "or mode='binary' (red/green attribute correlated with digit >= 5, needs rho).")
    return mode


def _check_sigma2(sigma2, required: bool):
    if sigma2 is None:
        if required:
            raise ValueError("sigma2 is required for mode='jitter'; pass a colour-jitter variance > 0, e.g. one of "
                             f"{SIGMA2_LEVELS} (0.02 very high bias ... 0.05 very low bias).")
        return None
    if isinstance(sigma2, bool) or not isinstance(sigma2, numbers.Real):
        raise TypeError(f"sigma2 must be a real number > 0; got {sigma2!r}.")
    sigma2 = float(sigma2)
    if not np.isfinite(sigma2) or sigma2 <= 0:
        raise ValueError(f"sigma2={sigma2} must be a finite variance > 0; use e.g. one of {SIGMA2_LEVELS}.")
    return sigma2


def _check_rho(rho):
    if rho is None:
        raise ValueError(f"rho is required for mode='binary'; pass P(a = y) in training in (0.5, 1), e.g. {RHO_LEVELS}.")
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real):
        raise TypeError(f"rho must be a real number in (0.5, 1); got {rho!r}.")
    rho = float(rho)
    if not (0.5 < rho < 1.0):
        raise ValueError(f"rho={rho} must lie in the open interval (0.5, 1): it is P(colour agrees with label) in "
                         f"training; use e.g. one of {RHO_LEVELS}.")
    return rho


# ----------------------------------------------------------------------------------------------
# building blocks

def load_gray_digits(size: int = 8):
    """The 1,797 bundled scikit-learn digits as grey images in [0, 1].

    Returns
    -------
    gray : ndarray of shape (1797, size, size), float64
    digit : ndarray of shape (1797,), int64
    """
    size = _check_int(size, "size")
    if size not in (8, 16):
        raise ValueError(f"size={size} is not supported; use size=8 (native) or size=16 (2x pixel repetition).")
    gray, digit = _gray_cached(size)
    return gray.copy(), digit.copy()


@lru_cache(maxsize=2)
def _gray_cached(size: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = d.images.astype(np.float64) / 16.0
    if size == 16:
        gray = gray.repeat(2, axis=1).repeat(2, axis=2)
    gray.setflags(write=False)
    digit = d.target.astype(np.int64)
    digit.setflags(write=False)
    return gray, digit


def digit_split(n: int, digit: np.ndarray, split_seed: int = 0, n_val: int = 397, n_test: int = 400):
    """Stratified split of indices ``0..n-1`` into train / val / test pools (fixed by ``split_seed``).

    Returns
    -------
    train, val, test : ndarray of int64 indices (disjoint, covering all ``n``).
    """
    parts = _split_cached(int(n), np.asarray(digit, dtype=np.int64).tobytes(), int(split_seed), int(n_val), int(n_test))
    return tuple(p.copy() for p in parts)


@lru_cache(maxsize=8)
def _split_cached(n, digit_bytes, split_seed, n_val, n_test):
    from sklearn.model_selection import train_test_split

    digit = np.frombuffer(digit_bytes, dtype=np.int64)
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=n_test, stratify=digit, random_state=split_seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=digit[rest], random_state=split_seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)


def jitter_colors(color_ids, sigma2: float, rng: np.random.Generator, clip: str = "redraw",
                  palette: np.ndarray = MEAN_COLORS, max_rounds: int = 10_000) -> np.ndarray:
    """Draw one colour per item: ``N(palette[color_id], sigma2)`` per channel, kept inside (0, 1).

    Parameters
    ----------
    color_ids : array of shape (n,), ints indexing ``palette``
    sigma2 : float > 0
        Variance of the per-channel Gaussian jitter.
    rng : numpy Generator
    clip : {'redraw', 'clip'}
        'redraw' resamples each out-of-range channel value until it lies in (0, 1) (LNTL Alg. 1,
        a truncated normal); 'clip' clips into [1e-6, 1 - 1e-6].

    Returns
    -------
    colors : ndarray of shape (n, 3), float64 in (0, 1)
    """
    sigma2 = _check_sigma2(sigma2, required=True)
    if clip not in ("redraw", "clip"):
        raise ValueError(f"clip={clip!r} is unknown; use 'redraw' (resample into (0, 1)) or 'clip'.")
    mean = np.asarray(palette, dtype=np.float64)[np.asarray(color_ids, dtype=np.int64)]
    sd = np.sqrt(sigma2)
    c = mean + sd * rng.standard_normal(mean.shape)
    if clip == "clip":
        return np.clip(c, 1e-6, 1 - 1e-6)
    for _ in range(max_rounds):
        bad = (c <= 0) | (c >= 1)
        if not bad.any():
            return c
        c[bad] = mean[bad] + sd * rng.standard_normal(int(bad.sum()))
    raise RuntimeError("colour redraw did not converge; sigma2 is too large for the palette, use clip='clip'.")


def paint(gray, colors, dtype=np.float32) -> np.ndarray:
    """Paint grey digits in given colours: ``X[i, c] = gray[i] * colors[i, c]``.

    Parameters
    ----------
    gray : array of shape (n, H, W) in [0, 1]
    colors : array of shape (n, 3) or (3,)
        One RGB colour per image, or one colour for all (e.g. an exact class mean colour
        ``MEAN_COLORS[k]`` for the colour-score).
    dtype : numpy dtype of the result

    Returns
    -------
    X : ndarray of shape (n, 3, H, W)
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 3:
        raise ValueError(f"gray must have shape (n, H, W); got {gray.shape}.")
    colors = np.asarray(colors, dtype=np.float64)
    if colors.shape == (3,):
        colors = np.broadcast_to(colors, (gray.shape[0], 3))
    if colors.shape != (gray.shape[0], 3):
        raise ValueError(f"colors must have shape (3,) or (n, 3) with n={gray.shape[0]}; got {colors.shape}.")
    if np.any(colors < 0) or np.any(colors > 1):
        raise ValueError("colors must lie in [0, 1] (RGB / 255).")
    return (gray[:, None, :, :] * colors[:, :, None, None]).astype(dtype)


def _shift(gray: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    if shift == 0:
        return gray
    n, H, W = gray.shape
    out = np.zeros_like(gray)
    dy = rng.integers(-shift, shift + 1, size=n)
    dx = rng.integers(-shift, shift + 1, size=n)
    for i in range(n):
        sy, sx = dy[i], dx[i]
        ys, yd = (slice(0, H - sy), slice(sy, H)) if sy >= 0 else (slice(-sy, H), slice(0, H + sy))
        xs, xd = (slice(0, W - sx), slice(sx, W)) if sx >= 0 else (slice(-sx, W), slice(0, W + sx))
        out[i, yd, xd] = gray[i, ys, xs]
    return out


def _balanced_attribute(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """a independent of y with, within each class, half the items red and half green (random order)."""
    a = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        k = len(where)
        vals = np.r_[np.zeros(k // 2, dtype=np.int64), np.ones(k - k // 2, dtype=np.int64)]
        if k % 2 == 1 and rng.random() < 0.5:
            vals[-1] = 0
        a[where] = rng.permutation(vals)
    return a


# ----------------------------------------------------------------------------------------------
# main entry point

def colored_digits(mode: str = "jitter", sigma2: float | None = None, rho: float | None = None, size: int = 8,
                   shift: int = 0, n_train: int | None = None, seed: int = 0, split_seed: int = 0,
                   train_digits=None, clip: str = "redraw", binary_sigma2: float | None = None,
                   dtype=np.float32) -> ColoredDigits:
    """Coloured digits from ``sklearn.datasets.load_digits`` (see the module docstring).

    Parameters
    ----------
    mode : {'jitter', 'binary'}
    sigma2 : float > 0, required for ``mode='jitter'``
        Colour-jitter variance (0.02 very high bias, 0.03, 0.04, 0.05 very low bias).
    rho : float in (0.5, 1), required for ``mode='binary'``
        P(a = y) in training (e.g. 0.9, 0.95, 0.99).
    size : {8, 16}
        Image side; 16 repeats each pixel 2x2.
    shift : int >= 0
        Maximal random integer translation (pixels, per axis, zero fill), applied to all splits.
    n_train : int or None
        Draw a random training subset of this size from the training pool (1,000 digits with the
        default split); ``None`` keeps the whole pool.
    seed : int
        Seeds colours, subset and shifts.
    split_seed : int
        Seeds the train/val/test pool split (397 val, 400 test, stratified by digit).
    train_digits : None, 'first' or 'second'
        Keep only the first or second half of the training pool (before ``n_train``): two zoos trained
        on disjoint digits, as DigitWdb's train zoo (first 30K MNIST digits) and test zoo (last 30K).
    clip : {'redraw', 'clip'}
        How jittered colours are kept in (0, 1).
    binary_sigma2 : float > 0 or None
        Optional jitter around pure red / green in binary mode (None: exact colours).
    dtype : numpy float dtype of the images (float32 default, float64 allowed)

    Returns
    -------
    ColoredDigits
    """
    mode = _check_mode(mode)
    seed = _check_int(seed, "seed", low=0)
    split_seed = _check_int(split_seed, "split_seed", low=0)
    shift = _check_int(shift, "shift", low=0)
    size = _check_int(size, "size")
    if size not in (8, 16):
        raise ValueError(f"size={size} is not supported; use size=8 (native) or size=16 (2x pixel repetition).")
    if shift > size // 4:
        raise ValueError(f"shift={shift} is too large for size={size}; use at most {size // 4} pixels.")
    n_train = _check_int(n_train, "n_train", low=1, allow_none=True)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype={dtype!r} is not supported; use np.float32 or np.float64.")
    if train_digits not in (None, "first", "second"):
        raise ValueError(f"train_digits={train_digits!r} is unknown; use None, 'first' or 'second'.")
    if mode == "jitter":
        sigma2 = _check_sigma2(sigma2, required=True)
        if rho is not None:
            raise ValueError("rho is only used by mode='binary'; drop it for mode='jitter' (the bias is set by sigma2).")
        if binary_sigma2 is not None:
            raise ValueError("binary_sigma2 is only used by mode='binary'.")
    else:
        rho = _check_rho(rho)
        if sigma2 is not None:
            raise ValueError("sigma2 is only used by mode='jitter'; for mode='binary' set the bias with rho "
                             "(and optional colour jitter with binary_sigma2).")
        binary_sigma2 = _check_sigma2(binary_sigma2, required=False)

    gray, digit = load_gray_digits(size)
    tr, va, te = digit_split(len(digit), digit, split_seed)
    if train_digits is not None:
        half = len(tr) // 2
        tr = tr[:half] if train_digits == "first" else tr[half:]
    rng = np.random.default_rng(seed)
    if n_train is not None:
        if n_train > len(tr):
            raise ValueError(f"n_train={n_train} exceeds the training pool of {len(tr)} digits; "
                             f"use n_train <= {len(tr)} or None.")
        tr = np.sort(rng.choice(tr, size=n_train, replace=False))

    out = {}
    for name, idx in (("train", tr), ("val", va), ("test", te)):
        d = digit[idx]
        g = _shift(gray[idx], shift, rng)
        if mode == "jitter":
            y = d
            cid = y.copy() if name == "train" else rng.integers(0, 10, size=len(y))
            col = jitter_colors(cid, sigma2, rng, clip=clip)
            groups = (cid == y).astype(np.int64)
            palette = MEAN_COLORS
        else:
            y = (d >= 5).astype(np.int64)
            if name == "train":
                agree = rng.random(len(y)) < rho
                cid = np.where(agree, y, 1 - y).astype(np.int64)
            else:
                cid = _balanced_attribute(y, rng)
            col = BINARY_COLORS[cid].copy() if binary_sigma2 is None else \
                jitter_colors(cid, binary_sigma2, rng, clip=clip, palette=BINARY_COLORS)
            groups = 2 * y + cid
            palette = BINARY_COLORS
        out.update({f"X_{name}": paint(g, col, dtype=dtype), f"y_{name}": y.astype(np.int64),
                    f"digit_{name}": d.astype(np.int64), f"color_{name}": col, f"color_id_{name}": cid.astype(np.int64),
                    f"groups_{name}": groups.astype(np.int64), f"gray_{name}": g})
    info = {"source": "sklearn.datasets.load_digits", "split_seed": split_seed, "shift": shift, "clip": clip,
            "n_train": len(tr), "train_digits": train_digits, "train_index": tr, "val_index": va, "test_index": te,
            "binary_sigma2": binary_sigma2}
    return ColoredDigits(mode=mode, sigma2=sigma2, rho=rho, size=size, seed=seed, palette=palette.copy(), info=info,
                         **out)


# ----------------------------------------------------------------------------------------------
# augmented coloured digits: enough minority images at rho = 0.99

def _augment_gray(gray8: np.ndarray, copies: int, size: int, seed: int, max_shift: float, max_rotate: float,
                  scale: float, elastic: float) -> np.ndarray:
    """``copies`` seeded augmentations of each 8x8 digit at ``size`` x ``size`` (torch grid sampling, CPU)."""
    import torch
    import torch.nn.functional as F

    n = len(gray8)
    g = torch.Generator().manual_seed(int(seed))
    base = torch.as_tensor(gray8, dtype=torch.float64)[:, None]
    up = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)  # (n, 1, S, S)
    x = up.repeat_interleave(copies, dim=0)
    m = len(x)
    ang = (torch.rand(m, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(max_rotate)
    sc = 1 + (torch.rand(m, generator=g, dtype=torch.float64) * 2 - 1) * scale
    sh = (torch.rand(m, 2, generator=g, dtype=torch.float64) * 2 - 1) * (2 * max_shift / size)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, sh[:, 0]], 1), torch.stack([sin, cos, sh[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, (m, 1, size, size), align_corners=False)
    if elastic > 0:  # a smooth random displacement field: 4x4 control points, bicubic upsampling
        d = torch.randn(m, 2, 4, 4, generator=g, dtype=torch.float64) * (2 * elastic / size)
        d = F.interpolate(d, size=(size, size), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        grid = grid + d
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    return out.clamp_(0, 1).numpy()


def augmented_colored_digits(rho: float = 0.99, size: int = 16, copies: int = 24, eval_copies: int = 3,
                             seed: int = 0, split_seed: int = 0, max_shift: float = 2.0, max_rotate: float = 12.0,
                             scale: float = 0.1, elastic: float = 0.6, dtype=np.float32) -> ColoredDigits:
    """Binary coloured digits (``mode='binary'``) enlarged by seeded augmentation, so minorities exist at ρ = 0.99.

    Each digit of the training pool (1,000 bundled 8x8 digits) is upsampled bilinearly to ``size`` x ``size`` and
    drawn ``copies`` times with a random rotation (±``max_rotate`` degrees), scale (1 ± ``scale``), translation
    (±``max_shift`` pixels) and a smooth elastic displacement (4x4 control points, ``elastic`` pixels); every
    augmented image then gets its own colour draw: ``P(a = y) = rho`` in training.  With the defaults the training
    set holds 24,000 images and each minority group (``y = 0`` green, ``y = 1`` red) about ``(1 - rho) * 12,000``
    = 120 at ρ = 0.99 (at least 100 for seeds 0-9), drawn from about as many distinct base digits.  Validation and test digits (397 / 400 base
    digits) get ``eval_copies`` augmentations each and balanced colours as in :func:`colored_digits`.

    How it differs from Colored-MNIST: the base digits are scikit-learn's 1,797 8x8 digits (not MNIST's 70,000
    28x28), the variety comes from augmenting about 1,000 training digits rather than from distinct writers, the
    task is binary (``digit >= 5``) with a red/green attribute rather than ten classes with ten mean colours, and
    the test digits are augmented copies of the 400 held-out digits.

    Parameters
    ----------
    rho : float in (0.5, 1)
    size : int >= 12
        Image side (16 default).
    copies, eval_copies : int >= 1
        Augmented images per training / per validation-and-test digit (24 / 3).
    seed : int
        Seeds the augmentation and the colours (same seed, same arrays).
    split_seed : int
        The train/val/test pool split of :func:`digit_split`.
    max_shift, max_rotate, scale, elastic : float >= 0
        Augmentation strengths (pixels at ``size``, degrees, relative, pixels).
    dtype : np.float32 or np.float64

    Returns
    -------
    ColoredDigits (``mode='binary'``; ``info`` records the augmentation and ``minority_counts``)
    """
    from ..core.validation import check_number

    rho = _check_rho(rho)
    size = check_number(size, "size", low=12, high=64, integer=True, fix="Pass e.g. size=16.")
    copies = check_number(copies, "copies", low=1, high=1000, integer=True, fix="Pass e.g. copies=20.")
    eval_copies = check_number(eval_copies, "eval_copies", low=1, high=1000, integer=True,
                               fix="Pass e.g. eval_copies=3.")
    seed = _check_int(seed, "seed", low=0)
    split_seed = _check_int(split_seed, "split_seed", low=0)
    for v, name, hi in ((max_shift, "max_shift", size / 4), (max_rotate, "max_rotate", 45.0), (scale, "scale", 0.5),
                        (elastic, "elastic", size / 4)):
        check_number(v, name, low=0, high=hi, fix=f"Pass e.g. {name}=0 for none.")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype={dtype!r} is not supported; use np.float32 or np.float64.")
    gray, digit = load_gray_digits(8)
    tr, va, te = digit_split(len(digit), digit, split_seed)
    rng = np.random.default_rng([seed, 31337])
    out = {}
    for k, (name, idx, c) in enumerate((("train", tr, copies), ("val", va, eval_copies), ("test", te, eval_copies))):
        g = _augment_gray(gray[idx], c, size, seed * 3 + k, max_shift, max_rotate, scale, elastic)
        d = np.repeat(digit[idx], c)
        y = (d >= 5).astype(np.int64)
        if name == "train":
            cid = np.where(rng.random(len(y)) < rho, y, 1 - y).astype(np.int64)
        else:
            cid = _balanced_attribute(y, rng)
        col = BINARY_COLORS[cid].copy()
        out.update({f"X_{name}": paint(g, col, dtype=dtype), f"y_{name}": y, f"digit_{name}": d.astype(np.int64),
                    f"color_{name}": col, f"color_id_{name}": cid, f"groups_{name}": (2 * y + cid).astype(np.int64),
                    f"gray_{name}": g})
    gt = out["groups_train"]
    info = {"source": "sklearn.datasets.load_digits, augmented", "split_seed": split_seed, "copies": copies,
            "eval_copies": eval_copies, "max_shift": max_shift, "max_rotate": max_rotate, "scale": scale,
            "elastic": elastic, "n_train": len(gt), "train_index": np.repeat(tr, copies), "val_index": np.repeat(va, eval_copies),
            "test_index": np.repeat(te, eval_copies), "binary_sigma2": None,
            "minority_counts": {"y0_green": int(np.sum(gt == 1)), "y1_red": int(np.sum(gt == 2))}}
    return ColoredDigits(mode="binary", sigma2=None, rho=rho, size=size, seed=seed, palette=BINARY_COLORS.copy(),
                         info=info, **out)
