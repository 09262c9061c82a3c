"""The small networks of the spurious-bias family, in one place.

* :class:`MLP` — a ReLU MLP with a linear head; ``embed(x)`` is the last hidden layer after ReLU.  One output
  (``n_classes=1``) gives a binary logit per row (:class:`~cfdkit.spurious.robust.RobustClassifier`); ``C >= 2``
  outputs give class logits (NeuronTune's planted-feature models).
* :class:`DigitCNN` — a small CNN for (3, H, W) digits with an ``embed``/``head`` split (NeuronTune's digit model).
* :class:`AutoencoderNet` — the MLP encoder/decoder pair behind :class:`~cfdkit.spurious.autoencoder.Autoencoder`.
* :class:`ReLUNetProba`, :class:`ComplementProba` — probability modules over a :mod:`cfdkit.neural` ReLU network's
  parameters and the complement ``1 - p`` of a probability (the base / downstream classifiers of Latent Shift).
* :func:`train_classifier` — plain seeded ERM (cross-entropy, Adam) of a torch classifier.

Every constructor draws its initial weights from the global torch generator in layer order (``torch.nn.Linear``
and ``torch.nn.Conv2d`` defaults), so seeding with ``torch.manual_seed`` before construction fixes them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.arrays import resolve_device

__all__ = ["MLP", "DigitCNN", "AutoencoderNet", "ReLUNetProba", "ComplementProba", "train_classifier"]


class MLP(torch.nn.Module):
    """Flatten -> [Linear -> ReLU]* (the embedding) -> Linear head with ``n_classes`` outputs.

    Parameters
    ----------
    d_in : int
        Input size (inputs are flattened).
    hidden : tuple of int
        Hidden widths (``()``: a linear model on the flattened input).
    n_classes : int
        Head outputs; with 1, :meth:`forward` returns the single logit per row, shape ``(n,)``.
    """

    def __init__(self, d_in: int, hidden=(64, 64), n_classes: int = 2):
        super().__init__()
        layers, last = [], d_in
        for h in hidden:
            layers += [torch.nn.Linear(last, h), torch.nn.ReLU()]
            last = h
        self.trunk = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(last, n_classes)
        self.n_classes = int(n_classes)

    def embed(self, x):
        return self.trunk(x.reshape(len(x), -1))

    def forward(self, x):
        out = self.head(self.embed(x))
        return out[:, 0] if self.n_classes == 1 else out


class DigitCNN(torch.nn.Module):
    """A small CNN for (3, H, W) digits: conv 3→c1 → pool → conv c1→c2 → pool → fc → ReLU = embedding → head.

    ``embed(x)`` returns the (n, width) post-ReLU embedding; ``head`` is the linear classifier.
    """

    def __init__(self, n_classes=2, width=64, channels=(16, 32), size=8, in_channels=3):
        super().__init__()
        c1, c2 = channels
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, c1, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(c1, c2, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(c2 * (size // 4) ** 2, width), torch.nn.ReLU())
        self.head = torch.nn.Linear(width, n_classes)

    def embed(self, x):
        return self.trunk(x)

    def forward(self, x):
        return self.head(self.trunk(x))


class AutoencoderNet(torch.nn.Module):
    """MLP encoder ``d_in → hidden… → latent_dim`` and the mirrored decoder (sigmoid output if ``output='sigmoid'``)."""

    def __init__(self, d_in: int, hidden: tuple, latent_dim: int, output: str):
        super().__init__()
        enc, last = [], d_in
        for h in hidden:
            enc += [torch.nn.Linear(last, h), torch.nn.ReLU()]
            last = h
        enc.append(torch.nn.Linear(last, latent_dim))
        dec, last = [], latent_dim
        for h in reversed(hidden):
            dec += [torch.nn.Linear(last, h), torch.nn.ReLU()]
            last = h
        dec.append(torch.nn.Linear(last, d_in))
        if output == "sigmoid":
            dec.append(torch.nn.Sigmoid())
        self.encoder = torch.nn.Sequential(*enc)
        self.decoder = torch.nn.Sequential(*dec)


class ReLUNetProba(torch.nn.Module):
    """``P(class c | x)`` of a trained :class:`cfdkit.neural` ReLU network given by its parameters."""

    def __init__(self, params, cls: int):
        super().__init__()
        self.params = [p.detach() for p in params]
        self.cls = int(cls)

    def forward(self, x):
        W1, b1, W2, b2, w3, b3 = self.params
        h = x.reshape(len(x), -1).to(W1.dtype)
        p = torch.sigmoid(torch.relu(torch.relu(h @ W1 + b1) @ W2 + b2) @ w3 + b3)
        return p if self.cls == 1 else 1 - p


class ComplementProba(torch.nn.Module):
    """``f(x)`` (``keep=True``) or ``1 - f(x)`` (``keep=False``) of a probability module, in float64."""

    def __init__(self, f, keep: bool):
        super().__init__()
        self.f, self.keep = f, bool(keep)

    def forward(self, x):
        p = self.f(x).to(torch.float64)
        return p if self.keep else 1 - p


def train_classifier(model, X, y, *, epochs=30, lr=3e-3, batch_size=50, weight_decay=0.0, seed=0, device=None,
                     params=None):
    """Plain ERM (cross-entropy, Adam, seeded shuffles) of a torch classifier in place; returns the model.

    ``params`` restricts training to some parameters (e.g. only the head); default all.
    """
    dev = resolve_device(device)
    model.to(dev).train()
    g = torch.Generator().manual_seed(int(seed))
    Xt = torch.as_tensor(np.asarray(X, np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, np.int64), device=dev)
    opt = torch.optim.Adam(model.parameters() if params is None else params, lr=lr, weight_decay=weight_decay)
    n = len(yt)
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size].to(dev)
            loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
