"""Small autoencoders trained in the repository, for Latent Shift (Cohen et al., TMLR; ``latent_shift.py``).

The paper uses a pretrained VQ-GAN; pretrained autoencoders download their weights at run time and
cannot be used here, so cfdkit trains its own:

* :class:`Autoencoder` -- an MLP encoder ``E`` / decoder ``D`` on flattened inputs of any shape:
  coloured 8x8 digits (``output="sigmoid"``, pixels in [0, 1]) or standardised tabular / embedding
  rows (``output="linear"``).  Train it on *randomly coloured* digits
  (:func:`random_colour_digits`) so that colour stays representable and the generator itself is
  not biased towards the digit-colour correlation of a biased training set.
* :class:`IdentityAutoencoder` -- ``E = D = identity``; with linear classifiers Latent Shift is then a
  gradient step in input space and relative change has closed forms (1, 0, -1), used by the tests.

Both expose differentiable ``encode(x) -> z`` and ``decode(z) -> x`` on torch tensors, which is all
:func:`cfdkit.spurious.latent_shift.latent_shift` needs.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .data import load_gray_digits, paint
from .nets import AutoencoderNet

from ..core.arrays import resolve_device  # noqa: E402  (the one device resolver)
from ..core.validation import check_batch as _as_array  # noqa: E402
from ..core.validation import check_number  # noqa: E402

__all__ = ["Autoencoder", "IdentityAutoencoder", "random_colour_digits"]


def random_colour_digits(n: int | None = None, seed: int = 0, size: int = 8, index=None, dtype=np.float32):
    """Grey ``load_digits`` images painted in uniformly random RGB colours (each channel U(0.05, 1)).

    Used to train an autoencoder that can represent every colour (red, green and what lies between),
    independent of the digit.

    Parameters
    ----------
    n : int or None
        Number of images to draw (with repetition of digits, each in a fresh colour); ``None``: one
        per selected digit.
    seed : int
    size : {8, 16}
    index : array of int or None
        Restrict to these digits of ``load_digits`` (e.g. a training pool ``info['train_index']``).

    Returns
    -------
    X : ndarray of shape (n, 3, size, size)
    """
    gray, _ = load_gray_digits(size)
    if index is not None:
        gray = gray[np.asarray(index, dtype=np.int64)]
    rng = np.random.default_rng(seed)
    if n is None:
        pick = np.arange(len(gray))
    else:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n={n!r} must be a positive int or None.")
        pick = rng.integers(0, len(gray), size=int(n))
    colors = rng.uniform(0.05, 1.0, size=(len(pick), 3))
    return paint(gray[pick], colors, dtype=dtype)


class Autoencoder(BaseEstimator):
    """MLP autoencoder ``x -> z -> x'`` on flattened inputs (images, tabular rows, embeddings).

    Parameters
    ----------
    latent_dim : int
        Size of the code ``z``.
    hidden : tuple of int
        Hidden widths of the encoder (mirrored in the decoder).
    output : {'sigmoid', 'linear'}
        Decoder output: 'sigmoid' for pixels in [0, 1], 'linear' for standardised features.
    epochs, batch_size, lr, weight_decay :
        Adam with mini-batches (reshuffled each epoch with the seed's generator); MSE loss.
    seed : int
        Fixes initial weights and batch order (same seed -> bit-for-bit the same weights on CPU).
    device : str, torch.device or None
        ``None``: CUDA if available, else CPU.
    dtype : torch dtype
        Weights' dtype (float32 default).
    progress : bool
        Show a ``tqdm.auto`` bar over epochs.

    Attributes
    ----------
    module_ : torch.nn.Module with ``encoder`` / ``decoder``
    input_shape_ : tuple, the per-input shape seen in ``fit`` (e.g. (3, 8, 8))
    n_features_in_ : int, the flattened input size
    loss_curve_ : list of float, mean training MSE per epoch
    """

    def __init__(self, latent_dim: int = 16, hidden=(128,), output: str = "sigmoid", epochs: int = 60,
                 batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 0.0, seed: int = 0, device=None,
                 dtype=torch.float32, progress: bool = False):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.output = output
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _validate_params(self):
        for name, hi, ex in (("latent_dim", None, 16), ("epochs", 100_000, 60), ("batch_size", None, 64)):
            check_number(getattr(self, name), name, low=1, high=hi, integer=True, fix=f"Pass e.g. {name}={ex}.")
        check_number(self.weight_decay, "weight_decay", low=0, high=1e3, fix="Pass e.g. weight_decay=0.0.")
        check_number(self.seed, "seed", low=0, high=2 ** 63 - 1, integer=True, fix="Pass e.g. seed=0.")
        hidden = tuple(self.hidden)
        if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1 for h in hidden):
            raise ValueError(f"hidden={self.hidden!r} must be a tuple of positive ints, e.g. (128,).")
        if self.output not in ("sigmoid", "linear"):
            raise ValueError(f"output={self.output!r} is unknown; use 'sigmoid' (pixels in [0, 1]) or 'linear'.")
        check_number(self.lr, "lr", low=0, high=1, low_inclusive=False, fix="Pass e.g. lr=3e-3 (Adam's step size).")
        return hidden

    def fit(self, X, y=None) -> "Autoencoder":
        """Train on ``X`` of shape (n, ...) (any per-input shape; it is flattened).

        Returns
        -------
        self
        """
        hidden = self._validate_params()
        A = _as_array(X, "X")
        if self.output == "sigmoid" and (A.min() < 0 or A.max() > 1):
            raise ValueError("output='sigmoid' needs inputs in [0, 1]; scale them or use output='linear'.")
        dev = resolve_device(self.device)
        self.input_shape_ = tuple(A.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        gen = torch.Generator().manual_seed(int(self.seed))
        with torch.random.fork_rng(devices=[]):  # seeded init; the user's global RNG state is left as it was
            torch.manual_seed(int(self.seed))
            self.module_ = AutoencoderNet(self.n_features_in_, hidden, int(self.latent_dim), self.output).to(dev, self.dtype)
        Xt = torch.as_tensor(A.reshape(len(A), -1), dtype=self.dtype, device=dev)
        opt = torch.optim.Adam(self.module_.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        self.loss_curve_ = []
        from tqdm.auto import trange

        for _ in trange(int(self.epochs), disable=not self.progress, desc="autoencoder", leave=False):
            perm = torch.randperm(len(Xt), generator=gen).to(dev)
            tot = 0.0
            for s in range(0, len(Xt), int(self.batch_size)):
                xb = Xt[perm[s:s + int(self.batch_size)]]
                rec = self.module_.decoder(self.module_.encoder(xb))
                loss = torch.mean((rec - xb) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(xb)
            self.loss_curve_.append(tot / len(Xt))
        self.module_.eval()
        self.device_ = dev
        return self

    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise NotFittedError("This Autoencoder is not fitted yet; call fit(X) first.")

    # -- differentiable torch interface used by Latent Shift ---------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z = E(x)``: (n, *input_shape_) tensor -> (n, latent_dim) tensor (differentiable)."""
        self._check_fitted()
        p = next(self.module_.parameters())
        return self.module_.encoder(x.reshape(len(x), -1).to(p.device, p.dtype))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``x = D(z)``: (n, latent_dim) -> (n, *input_shape_) (differentiable)."""
        self._check_fitted()
        p = next(self.module_.parameters())
        return self.module_.decoder(z.to(p.device, p.dtype)).reshape(len(z), *self.input_shape_)

    # -- numpy convenience -------------------------------------------------------------------
    def reconstruct(self, X) -> np.ndarray:
        """``D(E(X))`` as a float64 array of the input's shape."""
        self._check_fitted()
        A = _as_array(X, "X")
        if tuple(A.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has per-input shape {A.shape[1:]}, the autoencoder was fitted on {self.input_shape_}.")
        with torch.no_grad():
            out = self.decode(self.encode(torch.as_tensor(A)))
        return out.double().cpu().numpy()

    def score(self, X, y=None) -> float:
        """Negative mean squared reconstruction error (higher is better, sklearn convention)."""
        return -float(np.mean((self.reconstruct(X) - _as_array(X, "X")) ** 2))


class IdentityAutoencoder:
    """``E(x) = x`` (flattened), ``D(z) = z`` (reshaped): Latent Shift becomes a gradient step in input space.

    Parameters
    ----------
    input_shape : tuple
        Per-input shape, e.g. ``(d,)`` or ``(3, 8, 8)``.
    """

    def __init__(self, input_shape):
        self.input_shape = tuple(int(s) for s in np.atleast_1d(input_shape))
        self.input_shape_ = self.input_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(len(z), *self.input_shape)
