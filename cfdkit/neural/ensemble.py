"""One ensemble interface for both networks: train members on label vectors, read their logits, retrain with flips.

Algorithm 1's search, the placebo controls, the specificity and the exhaustive ground truth all do the same three
things with the fitted estimator's learning algorithm L: retrain many copies of the original network, each on the
training labels with a few of them flipped (an *ensemble*, one member per label vector), read the members' logits
at test rows, and retrain one network at a time (the sequential reference).  They are written once, against
this protocol, and two classes implement it:

* :class:`ReLUEnsemble` -- the built-in two-hidden-layer ReLU network, trained by the hand-written kernel
  (:func:`cfdkit.neural.batched.train_batched`; one network: :func:`cfdkit.neural.model.train_params`, or the
  same kernel with one member, ``trainer="manual"``);
* :class:`ModuleEnsemble` -- any ``torch.nn.Module`` (``NeuralCFD(model=...)``), trained as a ``torch.func``
  ensemble (:func:`cfdkit.neural.module.train_module_ensemble`; one network: ``torch.optim`` on a copy,
  :func:`cfdkit.neural.module.train_module_sequential`).

A fitted :class:`~cfdkit.neural.NeuralCFD` hands out the one that matches its network
(:meth:`~cfdkit.neural.NeuralCFD.ensemble`).  Members are stacked parameters: a tuple of six tensors with a
leading member axis for the ReLU network, a dict ``name -> (B, ...)`` for a module; :meth:`member` takes one out
and :meth:`stack` puts members back together, so callers never look inside.

Protocol (both classes)
-----------------------
``label`` : str
    Progress-bar text of a batched retrain.
``eval_chunk`` : int
    Members evaluated at once by :meth:`logits_at` callers.
``reuse_within_search`` : bool
    Whether a search without a retrain cache reuses a flip set trained earlier in the same search.
``chunk(max_batch=None, itemsize=None) -> int``
    Members trained at once (``max_batch`` when given).
``flipped(label_sets) -> Y``
    ``(B, n)`` label vectors, the training labels with each set's indices flipped.
``train(Y, params0=None) -> (P, info)``
    Train one member per row of ``Y`` from the original start (or from stacked ``params0``); ``info`` holds
    ``steps``, ``grad_norm`` and ``converged`` per member.
``logits(P, X) -> (B, n) float64 ndarray``
    Every member at every row of ``X``.
``logits_at(P, Xb) -> (B,) tensor``
    Member ``b`` at its own row ``Xb[b]``.
``member(P, b)``, ``stack(members)``
    One member out of a stack, and back.
``starts(seeds) -> P0``
    Stacked initial weights of other initialization seeds (the seed placebo).
``train_one(y) -> (params, info)``, ``logit_one(params, x) -> float``, ``net(params)``
    The sequential reference: one retrain, its logit at one row ``x (1, d)``, the trained network object.
"""
from __future__ import annotations

import numpy as np
import torch

from .batched import auto_chunk, forward_batched, forward_members_at, train_batched
from .fast import train_single
from .model import ReLUNet, TrainConfig, forward, init_params, train_params
from .module import (DEFAULT_CHUNK, ModuleNet, ModuleSpec, forward_members, reinit_params, train_module_ensemble,
                     train_module_sequential)
from .module import forward_members_at as module_forward_members_at

__all__ = ["ReLUEnsemble", "ModuleEnsemble", "flip_rows"]

TRAINERS = ("autograd", "manual")


def flip_rows(y: torch.Tensor, label_sets) -> torch.Tensor:
    """``(B, n)`` copies of the label vector ``y`` with ``label_sets[b]`` flipped in row ``b`` (0. <-> 1.)."""
    Y = y.unsqueeze(0).repeat(len(label_sets), 1)
    for b, sub in enumerate(label_sets):
        idx = torch.as_tensor(sub, device=Y.device)
        Y[b, idx] = 1.0 - Y[b, idx]
    return Y


class ReLUEnsemble:
    """The built-in ReLU network's learning algorithm as an ensemble (hand-written kernel).

    Parameters
    ----------
    X : (n, d) tensor
        Training inputs.
    y : (n,) tensor
        Training labels (0./1.).
    params0 : tuple of six tensors
        Initial weights of every member (:func:`cfdkit.neural.model.init_params`).
    config : TrainConfig
    trainer : ``"autograd"`` or ``"manual"``
        The one-network trainer of :meth:`train_one`: :func:`cfdkit.neural.model.train_params` (autograd) or the
        hand-written kernel with one member (:func:`cfdkit.neural.fast.train_single`).
    """

    label = "retrain (batched)"
    eval_chunk = 4096
    #: Without a retrain cache, the batched search retrains a flip set each time a round asks for it.
    reuse_within_search = False

    def __init__(self, X: torch.Tensor, y: torch.Tensor, params0, config: TrainConfig, trainer: str = "autograd"):
        if trainer not in TRAINERS:
            raise ValueError(f"trainer must be 'autograd' or 'manual', got {trainer!r}.")
        self.X, self.y, self.params0, self.config, self.trainer = X, y, params0, config, trainer
        self.XT = X.t().contiguous()

    @property
    def hidden(self) -> tuple:
        return (self.params0[0].shape[1], self.params0[2].shape[1])

    def chunk(self, max_batch=None, itemsize=None) -> int:
        """``max_batch``, else a cache-sized chunk (:func:`cfdkit.neural.batched.auto_chunk`) for numbers of
        ``itemsize`` bytes (default: the weights' own)."""
        return max_batch or auto_chunk(self.X.shape[0], self.hidden, itemsize=self.params0[0].element_size()
                                       if itemsize is None else itemsize)

    def flipped(self, label_sets) -> torch.Tensor:
        return flip_rows(self.y, label_sets)

    def train(self, Y: torch.Tensor, params0=None):
        return train_batched(self.X, Y, self.params0 if params0 is None else params0, self.config, XT=self.XT,
                             return_info=True)

    @torch.no_grad()
    def logits(self, P, X: torch.Tensor) -> np.ndarray:
        return forward_batched(P, X).double().cpu().numpy()

    def logits_at(self, P, Xb: torch.Tensor) -> torch.Tensor:
        return forward_members_at(P, Xb)

    def member(self, P, b: int):
        return tuple(p[b] for p in P)

    def stack(self, members):
        return tuple(torch.stack([m[g] for m in members]) for g in range(6))

    def starts(self, seeds):
        d, cfg = self.X.shape[1], self.config
        inits = [init_params(d, self.hidden, s, cfg.dtype, self.X.device) for s in seeds]
        return tuple(torch.stack([p[g] for p in inits]) for g in range(6))

    def train_one(self, y: torch.Tensor):
        if self.trainer == "autograd":
            return train_params(self.X, y, self.params0, self.config, return_info=True)
        return train_single(self.X, y, self.params0, self.config, XT=self.XT, return_info=True)

    @torch.no_grad()
    def logit_one(self, params, x: torch.Tensor) -> float:
        return float(forward(params, x)[0])

    def net(self, params) -> ReLUNet:
        return ReLUNet(params)


class ModuleEnsemble:
    """A user's ``torch.nn.Module`` trained as a ``torch.func`` ensemble (``NeuralCFD(model=...)``).

    Parameters
    ----------
    spec : ModuleSpec
        The checked module (:func:`cfdkit.neural.module.check_module`).
    X : (n, d) tensor
    y : (n,) tensor
    config : TrainConfig
        From :func:`cfdkit.neural.module.module_config`.
    optimizer : ``"adam"`` or ``"sgd"``
    batch_size : int or None
        None: full batch; an int: seeded minibatches (``seed``), the same order for every member.
    seed : int
    """

    label = "retrain (torch.func ensemble)"
    eval_chunk = 1024
    #: Without a retrain cache, the batched search still reuses a flip set trained earlier in the same search.
    reuse_within_search = True

    def __init__(self, spec: ModuleSpec, X: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                 optimizer: str = "adam", batch_size=None, seed: int = 0):
        self.spec, self.X, self.y, self.config = spec, X, y, config
        self.kw = {"optimizer": optimizer, "batch_size": batch_size, "seed": seed}

    def chunk(self, max_batch=None, itemsize=None) -> int:
        """``max_batch``, else :data:`cfdkit.neural.module.DEFAULT_CHUNK` (``itemsize`` is not used)."""
        return max_batch or DEFAULT_CHUNK

    def flipped(self, label_sets) -> torch.Tensor:
        return flip_rows(self.y, label_sets)

    def train(self, Y: torch.Tensor, params0=None):
        return train_module_ensemble(self.spec, self.X, Y, self.config, params0=params0, **self.kw)

    def logits(self, P, X: torch.Tensor) -> np.ndarray:
        return forward_members(self.spec, P, X).double().cpu().numpy()

    def logits_at(self, P, Xb: torch.Tensor) -> torch.Tensor:
        return module_forward_members_at(self.spec, P, Xb)

    def member(self, P, b: int):
        return {k: v[b] for k, v in P.items()}

    def stack(self, members):
        return {nm: torch.stack([m[nm] for m in members]) for nm in self.spec.names}

    def starts(self, seeds):
        inits = [reinit_params(self.spec, s) for s in seeds]
        return {k: torch.stack([p[k] for p in inits]) for k in self.spec.names}

    def train_one(self, y: torch.Tensor):
        return train_module_sequential(self.spec, self.X, y, self.config, **self.kw)

    def logit_one(self, params, x: torch.Tensor) -> float:
        return float(ModuleNet(self.spec, params).logit(x.cpu().numpy())[0])

    def net(self, params) -> ModuleNet:
        return ModuleNet(self.spec, params)
