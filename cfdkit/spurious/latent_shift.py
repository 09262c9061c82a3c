"""Latent Shift counterfactuals (Cohen et al., *Gifsplanation*, MIDL 2021; used by CF alignment, TMLR).

Given an autoencoder ``(E, D)`` and a differentiable base classifier ``f_b`` with outputs in [0, 1]:

    z_0 = E(x),   z_λ = z_0 − λ ∂f_b(D(z_0))/∂z          (Eq. 1)
    x'_λ = D(z_λ)                                          (Eq. 2)

λ is found by the search of the official code (``LatentShift.attribute``, ``ieee8023/latentshift``),
ported here with λ ≥ 0 (the code uses ``z + λ ∇`` with λ ≤ 0, the same thing):

* start at λ = 0, then λ ← λ + step + ⌈λ/10⌉ (the code's ``λ − step + λ//10``: about 10 % geometric
  growth on top of the fixed step; ``integer_growth=False`` uses ``λ + step + growth·λ`` instead);
* at each λ compute ``cur = f_b(D(z_λ))`` and stop, in this order, when
  1. ``cur > last`` (the prediction starts rising, ``"rising"``),
  2. ``cur < min_pred`` (0.05, ``"low"``),
  3. ``p_0 − pred_diff > cur`` (it dropped by more than ``pred_diff``, ``"pred_diff"``),
  4. ``λ ≥ max_lambda`` (the code's ``search_max_steps``, ``"max_lambda"``),
  5. ``Σ|D(z_0) − D(z_λ)| > max_pixel_frac · Σ|D(z_0)|`` (``"pixels"``),
  6. the input has taken ``max_steps`` steps (``"max_steps"``, a bound that is not in the code: every
     loop in cfdkit ends);
* the λ at which the stop fired is the counterfactual's λ (as in the code, whose sweep is
  ``linspace(lbound, 0, lambda_sweep_steps)`` with ``lbound`` the λ that fired).

Deviations, all parameters: the pixel budget ``max_pixel_frac`` defaults to the code's 0.05, but an
8x8 digit changes colour only by moving most of its ~20 lit pixels, so the digit experiments pass
``max_pixel_frac=0.5`` (documented where used); the CF-alignment experiments use ``pred_diff=0.6``
and ``max_lambda=500000`` like ``compute_alignment``; the step is a parameter (code default 10, the
paper's notebook 2) because the gradient's scale depends on the autoencoder.

Everything is **batched**: all inputs move together, each with its own λ and its own stop, and an
input that stopped is no longer evaluated.  ``batch_size=1`` gives the one-input-at-a-time loop
(the official code's "cheap batching"), with the same results.

Classifiers are callables on torch tensors ``(n, *shape) -> (n,)`` (or ``(n, 1)``) returning values in
[0, 1]; use :func:`probability` to wrap a logit model, :func:`compose` for Eq. 4's additive
composition and :func:`linear_classifier` for exact checks.  Each input's output must depend only on
that input (no batch statistics), which holds for modules in ``eval()`` mode.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.arrays import resolve_device
from ..core.validation import check_number
from ._user import eval_mode

__all__ = ["latent_shift", "LatentShiftResult", "probability", "compose", "linear_classifier", "outputs",
           "STOP_REASONS", "check_classifier", "check_autoencoder"]

#: Stop reasons in the order the rules are checked.
STOP_REASONS = ("rising", "low", "pred_diff", "max_lambda", "pixels", "max_steps")


# ---------------------------------------------------------------------------------------------
# classifiers

class _Prob(torch.nn.Module):
    def __init__(self, module, target, kind):
        super().__init__()
        self.module, self.target, self.kind = module, target, kind

    def forward(self, x):
        with eval_mode(self.module):  # the user's module keeps its own mode between calls
            out = self.module(x)
        if self.kind == "softmax":
            return torch.softmax(out, dim=1)[:, self.target]
        if out.ndim == 2:
            out = out[:, 0 if self.target is None else self.target]
        return torch.sigmoid(out)


def probability(module, target: int | None = None, kind: str = "sigmoid"):
    """Wrap a logit model as a classifier with outputs in [0, 1].

    Parameters
    ----------
    module : callable (n, *shape) tensor -> (n,) or (n, k) logits
    target : int or None
        Column for multi-output models (softmax: the class whose probability is returned).
    kind : {'sigmoid', 'softmax'}

    Returns
    -------
    torch.nn.Module, ``x -> (n,)`` probabilities; ``module`` runs in ``eval()`` mode during each call and is
    left in its own mode afterwards (it is never changed).
    """
    if not callable(module):
        raise TypeError(f"module must be a callable torch model; got {type(module).__name__}.")
    if kind not in ("sigmoid", "softmax"):
        raise ValueError(f"kind={kind!r} is unknown; use 'sigmoid' or 'softmax'.")
    if kind == "softmax" and target is None:
        raise ValueError("kind='softmax' needs target=<class index>.")
    return _Prob(module, target, kind)


class _Composed(torch.nn.Module):
    def __init__(self, terms):
        super().__init__()
        self.fns = [f for f, _ in terms]
        self.coefs = [float(c) for _, c in terms]
        for i, f in enumerate(self.fns):
            if isinstance(f, torch.nn.Module):
                self.add_module(f"term{i}", f)

    def forward(self, x):
        out = 0.0
        for f, c in zip(self.fns, self.coefs):
            out = out + c * _flat_out(f(x), len(x), "composed term")
        return out


def compose(terms):
    """Additive composition of classifiers, Eq. 4 / Eq. 6: ``f(x) = Σ_i c_i f_i(x)``.

    With probability classifiers this is the code's ``ModelWrapper(clf, [[t1, 1], [t2, 0.3]], sigmoid=True)``,
    a sum of per-term sigmoids: ``f_biased = σ(f_target) + 0.3 σ(f_spurious)``.

    Parameters
    ----------
    terms : sequence of (classifier, coefficient)

    Returns
    -------
    torch.nn.Module ``x -> (n,)`` (values may exceed 1; Latent Shift only needs them to decrease).
    """
    terms = list(terms)
    if not terms:
        raise ValueError("terms is empty; pass e.g. [(f_target, 1.0), (f_spurious, 0.3)].")
    for t in terms:
        if not (isinstance(t, (tuple, list)) and len(t) == 2 and callable(t[0]) and isinstance(t[1], numbers.Real)):
            raise TypeError(f"each term must be (classifier, coefficient); got {t!r}.")
    return _Composed(terms)


def linear_classifier(w, b: float = 0.0, sigmoid: bool = True, dtype=torch.float64):
    """``f(x) = σ(w · vec(x) + b)`` (or the raw score if ``sigmoid=False``), for exact checks.

    Parameters
    ----------
    w : array of shape (d,)
    b : float
    """
    w = torch.as_tensor(np.asarray(w, dtype=np.float64).ravel(), dtype=dtype)

    def f(x):
        s = x.reshape(len(x), -1).to(w.dtype) @ w.to(x.device) + b
        return torch.sigmoid(s) if sigmoid else s

    return f


def _flat_out(out, n, name):
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a torch tensor (it returned {type(out).__name__}); a classifier that "
                        "returns numpy is not differentiable, wrap a torch model instead (see probability()).")
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (n,):
        raise ValueError(f"{name} must return shape (n,) or (n, 1) for n={n} inputs; got {tuple(out.shape)}. "
                         "Select one output with probability(module, target=k).")
    return out


def check_classifier(classifier, name: str = "classifier"):
    """Raise TypeError unless ``classifier`` is callable."""
    if not callable(classifier):
        raise TypeError(f"{name} must be a callable torch classifier x -> (n,) in [0, 1]; "
                        f"got {type(classifier).__name__}.")


def check_autoencoder(autoencoder):
    """Raise TypeError unless ``autoencoder`` has callable ``encode`` and ``decode``."""
    for m in ("encode", "decode"):
        if not callable(getattr(autoencoder, m, None)):
            raise TypeError(f"autoencoder must have differentiable encode(x) and decode(z) methods; "
                            f"{type(autoencoder).__name__} has no {m}(). Use cfdkit.spurious.autoencoder.Autoencoder.")


def _to_tensor(X, name, device, dtype):
    if isinstance(X, torch.Tensor):
        A = X.detach()
    else:
        try:
            A = torch.as_tensor(np.asarray(X, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a numeric array of shape (n, ...); got {type(X).__name__}.") from e
    if A.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ...) with at least 2 dimensions; got {tuple(A.shape)}.")
    if A.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(A.shape)}); pass at least one input.")
    if not torch.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return A.to(device, dtype)


@torch.no_grad()
def outputs(classifier, X, batch_size: int = 4096, device=None, dtype=None) -> np.ndarray:
    """Evaluate a classifier on inputs ``X`` of shape (n, *shape), without gradients.

    Parameters
    ----------
    classifier : callable torch (m, *shape) -> (m,)
    X : array or tensor (n, *shape)
    batch_size : inputs per forward pass
    device : torch device or None (CUDA if available)
    dtype : torch dtype (default: float32, or float64 for float64 numpy input)

    Returns
    -------
    ndarray (n,) float64
    """
    check_classifier(classifier)
    dev = resolve_device(device)
    if isinstance(X, np.ndarray) and dtype is None:
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
    A = _to_tensor(X, "X", dev, dtype or torch.float32)
    res = []
    for s in range(0, len(A), batch_size):
        xb = A[s:s + batch_size]
        res.append(_flat_out(classifier(xb), len(xb), "classifier").double().cpu())
    return torch.cat(res).numpy()


# ---------------------------------------------------------------------------------------------
# result

@dataclass
class LatentShiftResult:
    """The search trace and counterfactuals of :func:`latent_shift` for ``n`` inputs.

    Attributes
    ----------
    lambda_ : ndarray (n,)
        The λ at which the search stopped (the counterfactual's λ).
    reason : ndarray (n,) of str
        Which stop rule fired (one of :data:`STOP_REASONS`).
    n_steps : ndarray (n,) int
        Number of λ values evaluated (λ = 0 included).
    pred0 : ndarray (n,)
        ``f_b(D(z_0))``, the base classifier on the reconstruction.
    pred_cf : ndarray (n,)
        ``f_b(D(z_λ))`` at the stop λ.
    trace_lambda, trace_pred : ndarray (n, T), NaN-padded
        Every λ tried and the base output there (T = the longest search).
    trace_images : ndarray (n, T, *shape) or None
        Every image tried (only with ``keep_trace_images=True``), NaN-padded.
    frames_lambda : ndarray (n, F)
        ``linspace(0, lambda_, F)``: frame 0 is the reconstruction, frame F-1 the counterfactual.
    frames : ndarray (n, F, *shape)
        ``D(z_0 − λ ∇)`` at those λ.
    frames_pred : ndarray (n, F)
        Base classifier at the frames.
    z0, grad : ndarray (n, k)
        Latent code and ∂f_b/∂z at z_0.
    seconds : float
        Wall time of the search.
    """

    lambda_: np.ndarray
    reason: np.ndarray
    n_steps: np.ndarray
    pred0: np.ndarray
    pred_cf: np.ndarray
    trace_lambda: np.ndarray
    trace_pred: np.ndarray
    frames_lambda: np.ndarray
    frames: np.ndarray
    frames_pred: np.ndarray
    z0: np.ndarray
    grad: np.ndarray
    trace_images: np.ndarray | None = None
    seconds: float = 0.0
    params: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.lambda_)

    @property
    def base_change(self) -> np.ndarray:
        """``f_b(D(z_0)) − f_b(D(z_λ))`` (the code's ``base_change``; positive = the prediction fell)."""
        return self.pred0 - self.pred_cf

    @property
    def x0(self) -> np.ndarray:
        """Reconstructions ``D(z_0)``, shape (n, *shape)."""
        return self.frames[:, 0]

    @property
    def x_cf(self) -> np.ndarray:
        """Counterfactuals ``D(z_λ)``, shape (n, *shape)."""
        return self.frames[:, -1]

    def reason_counts(self) -> dict:
        """How often each stop rule fired."""
        return {r: int(np.sum(self.reason == r)) for r in STOP_REASONS}


# ---------------------------------------------------------------------------------------------
# the search

def _check_params(pred_diff, step, growth, max_lambda, max_pixel_frac, min_pred, n_frames, batch_size,
                  max_steps=100_000):
    check_number(pred_diff, "pred_diff", low=0, high=1, low_inclusive=False, high_inclusive=False,
                 fix="It is the drop of the base prediction that ends the search (0.6 in the CF-alignment "
                     "experiments, code default 0.8).")
    check_number(step, "step", low=0, low_inclusive=False, fix="Pass e.g. step=1.0 (the code's search_step_size).")
    check_number(growth, "growth", low=0, high=1e6,
                 fix="Pass e.g. growth=0.1 (the code's λ//10) or growth=0.0 for fixed steps.")
    check_number(max_lambda, "max_lambda", low=0, low_inclusive=False,
                 fix="Pass e.g. max_lambda=500000.0 (the code's search_max_steps).")
    check_number(max_pixel_frac, "max_pixel_frac", low=0, low_inclusive=False,
                 fix="Pass e.g. max_pixel_frac=0.05 (the code's value; 8x8 digits need ~0.5).")
    check_number(min_pred, "min_pred", low=0, high=1, high_inclusive=False, fix="Pass e.g. min_pred=0.05.")
    check_number(n_frames, "n_frames", low=2, integer=True, fix="Pass e.g. n_frames=10 (reconstruction and "
                                                                  "counterfactual at least).")
    check_number(batch_size, "batch_size", low=1, integer=True, allow_none=True,
                 fix="Pass a positive int or None (all inputs at once).")
    check_number(max_steps, "max_steps", low=1, integer=True,
                 fix="Pass e.g. max_steps=100000: the most search steps per input before it stops with "
                     "reason 'max_steps'.")


def latent_shift(classifier, autoencoder, X, pred_diff: float = 0.6, step: float = 1.0, growth: float = 0.1,
                 integer_growth: bool = True, max_lambda: float = 500000.0, max_pixel_frac: float = 0.05,
                 min_pred: float = 0.05, n_frames: int = 10, batch_size: int | None = None,
                 keep_trace_images: bool = False, device=None, dtype=torch.float32,
                 progress: bool = False, max_steps: int = 100_000) -> LatentShiftResult:
    """Latent Shift counterfactuals for many inputs at once (Eq. 1–2 with the official λ search).

    Parameters
    ----------
    classifier : callable, torch (n, *shape) -> (n,) in [0, 1]
        The base classifier ``f_b`` (must be differentiable w.r.t. its input).
    autoencoder : object with ``encode(x) -> z`` and ``decode(z) -> x`` (torch, differentiable)
        E.g. a fitted :class:`cfdkit.spurious.autoencoder.Autoencoder`; ``decode(encode(x))`` must
        have the input's shape.
    X : array of shape (n, *shape)
    pred_diff : float in (0, 1)
        Stop once the base prediction fell by more than this (0.6 as in ``compute_alignment``).
    step, growth, integer_growth :
        λ ← λ + step + ⌈growth·λ⌉ (``integer_growth=True``, the code's ``λ//10``) or
        λ ← λ + step + growth·λ.
    max_lambda : float
        Stop once λ reaches this (the code's ``search_max_steps``).
    max_pixel_frac : float
        Stop once Σ|D(z_0) − D(z_λ)| > max_pixel_frac · Σ|D(z_0)| (code: 0.05).
    min_pred : float
        Stop once the prediction is below this (code: 0.05).
    n_frames : int >= 2
        Frames from the reconstruction (λ = 0) to the counterfactual.
    batch_size : int or None
        Inputs searched together (None: all; 1: one input at a time, the reference loop).
    keep_trace_images : bool
        Also return every image the search tried.
    device : torch device or None (CUDA if available)
    dtype : torch dtype of the inputs (float32 default; use float64 with float64 models)
    progress : bool
        ``tqdm.auto`` bar over search steps / chunks.
    max_steps : int >= 1
        Bound on the search steps per input: an input still searching after this many steps stops with
        reason ``"max_steps"`` (with ``growth=0`` and a tiny ``step`` the λ rule alone could take
        ``max_lambda / step`` steps).

    Returns
    -------
    LatentShiftResult

    Raises
    ------
    ValueError
        A parameter is NaN, infinite or out of range; the classifier returns NaN/inf along the path.
    TypeError
        The classifier is not a differentiable callable, the autoencoder has no ``encode``/``decode``.
    """
    import time

    check_classifier(classifier)
    check_autoencoder(autoencoder)
    _check_params(pred_diff, step, growth, max_lambda, max_pixel_frac, min_pred, n_frames, batch_size, max_steps)
    dev = resolve_device(device)
    A = _to_tensor(X, "X", dev, dtype)
    n = len(A)
    t0 = time.perf_counter()
    bs = n if batch_size is None else int(batch_size)
    chunks = []
    from tqdm.auto import tqdm

    it = range(0, n, bs)
    for s in tqdm(it, disable=not (progress and bs < n), desc="latent shift", leave=False):
        chunks.append(_search(classifier, autoencoder, A[s:s + bs], float(pred_diff), float(step), float(growth),
                              bool(integer_growth), float(max_lambda), float(max_pixel_frac), float(min_pred),
                              int(n_frames), bool(keep_trace_images), progress and bs == n, int(max_steps)))
    res = _concat(chunks)
    res.seconds = time.perf_counter() - t0
    res.params = dict(pred_diff=pred_diff, step=step, growth=growth, integer_growth=integer_growth,
                      max_lambda=max_lambda, max_pixel_frac=max_pixel_frac, min_pred=min_pred, n_frames=n_frames,
                      batch_size=batch_size, max_steps=max_steps)
    return res


def _pad(rows, width, fill=np.nan):
    out = np.full((len(rows), width) + rows[0].shape[1:], fill, dtype=np.float64 if rows[0].ndim == 1 else np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _concat(chunks) -> LatentShiftResult:
    if len(chunks) == 1:
        return chunks[0]
    T = max(c.trace_lambda.shape[1] for c in chunks)

    def padT(a, fill=np.nan):
        if a.shape[1] == T:
            return a
        pad = np.full((a.shape[0], T - a.shape[1]) + a.shape[2:], fill, dtype=a.dtype)
        return np.concatenate([a, pad], axis=1)

    cat = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
    ti = None
    if chunks[0].trace_images is not None:
        ti = np.concatenate([padT(c.trace_images) for c in chunks])
    return LatentShiftResult(
        lambda_=cat("lambda_"), reason=cat("reason"), n_steps=cat("n_steps"), pred0=cat("pred0"),
        pred_cf=cat("pred_cf"), trace_lambda=np.concatenate([padT(c.trace_lambda) for c in chunks]),
        trace_pred=np.concatenate([padT(c.trace_pred) for c in chunks]), frames_lambda=cat("frames_lambda"),
        frames=cat("frames"), frames_pred=cat("frames_pred"), z0=cat("z0"), grad=cat("grad"), trace_images=ti)


def _search(classifier, ae, x, pred_diff, step, growth, integer_growth, max_lambda, max_pixel_frac, min_pred,
            n_frames, keep_images, progress, max_steps=100_000):
    n = len(x)
    with torch.enable_grad():
        z0 = ae.encode(x)
        if not isinstance(z0, torch.Tensor) or z0.ndim != 2 or z0.shape[0] != n:
            raise ValueError(f"autoencoder.encode must return a tensor of shape (n, k); got "
                             f"{getattr(z0, 'shape', type(z0).__name__)}.")
        z0 = z0.detach().clone().requires_grad_(True)
        x0 = ae.decode(z0)
        if not isinstance(x0, torch.Tensor) or tuple(x0.shape) != tuple(x.shape):
            raise ValueError(f"autoencoder output shape {tuple(getattr(x0, 'shape', ()))} differs from its input "
                             f"shape {tuple(x.shape)}: decode(encode(x)) must reconstruct x's shape.")
        p = _flat_out(classifier(x0), n, "classifier")
        if not p.requires_grad:
            raise TypeError("classifier is not differentiable: its output carries no gradient w.r.t. the input "
                            "(torch.no_grad inside, .detach(), or a non-torch model). Latent Shift needs "
                            "∂f_b(D(z))/∂z; pass a differentiable torch classifier.")
        (g,) = torch.autograd.grad(p.sum(), z0, allow_unused=True)
        if g is None:
            raise TypeError("classifier is not differentiable w.r.t. the input (autograd found no path from the "
                            "input to its output); pass a torch classifier that uses its input.")
    z0, g, x0 = z0.detach(), g.detach(), x0.detach()
    p0 = p.detach().double().cpu().numpy()
    if not np.all(np.isfinite(p0)):
        raise ValueError("classifier returned NaN/inf on the reconstructions.")
    pix_sum = x0.abs().reshape(n, -1).sum(1).double().cpu().numpy()

    lam = np.zeros(n)
    last = p0.copy()
    active = np.ones(n, bool)
    reason = np.array([""] * n, dtype=object)
    stop_lam, stop_pred = np.zeros(n), p0.copy()
    n_steps = np.zeros(n, np.int64)
    tl, tp, ti = [[] for _ in range(n)], [[] for _ in range(n)], [[] for _ in range(n)]
    from tqdm.auto import tqdm

    bar = tqdm(disable=not progress, desc="latent shift steps", leave=False)
    with torch.no_grad():
        while active.any():
            idx = np.flatnonzero(active)
            it = torch.as_tensor(idx, device=x.device)
            lt = torch.as_tensor(lam[idx], dtype=z0.dtype, device=x.device)[:, None]
            xl = ae.decode(z0[it] - lt * g[it])
            cur = _flat_out(classifier(xl), len(idx), "classifier").double().cpu().numpy()
            diff = (x0[it] - xl).abs().reshape(len(idx), -1).sum(1).double().cpu().numpy()
            xl_np = xl.cpu().numpy() if keep_images else None
            for j, i in enumerate(idx):
                tl[i].append(lam[i])
                tp[i].append(cur[j])
                if keep_images:
                    ti[i].append(xl_np[j])
            if not np.all(np.isfinite(cur)):
                bad = int(idx[~np.isfinite(cur)][0])
                raise ValueError(f"classifier returned NaN/inf for input {bad} at λ = {lam[bad]:g} along the Latent "
                                 "Shift path; check the classifier on decoded images (or lower max_lambda).")
            n_steps[idx] += 1
            conds = (last[idx] < cur, cur < min_pred, p0[idx] - pred_diff > cur, lam[idx] >= max_lambda,
                     diff > pix_sum[idx] * max_pixel_frac, n_steps[idx] >= max_steps)
            stopped = np.zeros(len(idx), bool)
            for name, c in zip(STOP_REASONS, conds):
                new = c & ~stopped
                reason[idx[new]] = name
                stopped |= c
            si = idx[stopped]
            stop_lam[si] = lam[si]
            stop_pred[si] = cur[stopped]
            active[si] = False
            go = idx[~stopped]
            last[go] = cur[~stopped]
            if integer_growth:
                lam[go] = lam[go] + step + np.ceil(growth * lam[go])
            else:
                lam[go] = lam[go] + step + growth * lam[go]
            bar.update(1)
        bar.close()
        # frames from λ = 0 to the stop λ
        fl = np.linspace(0.0, 1.0, n_frames)[None, :] * stop_lam[:, None]
        flt = torch.as_tensor(fl, dtype=z0.dtype, device=x.device)
        zf = z0[:, None, :] - flt[:, :, None] * g[:, None, :]
        xf = ae.decode(zf.reshape(n * n_frames, -1))
        fp = _flat_out(classifier(xf), n * n_frames, "classifier").double().cpu().numpy().reshape(n, n_frames)
        frames = xf.reshape(n, n_frames, *x.shape[1:]).cpu().numpy()
    T = int(n_steps.max())
    return LatentShiftResult(
        lambda_=stop_lam, reason=reason.astype(str), n_steps=n_steps, pred0=p0, pred_cf=stop_pred,
        trace_lambda=_pad([np.asarray(r) for r in tl], T), trace_pred=_pad([np.asarray(r) for r in tp], T),
        frames_lambda=fl, frames=frames, frames_pred=fp, z0=z0.double().cpu().numpy(),
        grad=g.double().cpu().numpy(), trace_images=_pad([np.asarray(r) for r in ti], T) if keep_images else None)
