"""Inference-free bias detection (IFBiD, Serna et al.; Sialelli et al.'s baselines): read a zoo member's bias
level from its weights alone.

Detectors (``kind``):

``pca_knn``
    Flattened weights -> PCA(100) -> 5-nearest neighbours (Mirror's first baseline).
``dense`` / ``dense_dense``
    IFBiD's dense classifier: per layer, flatten -> Linear(10) -> ReLU; concatenated -> linear head.
    ``dense`` uses the conv layers only, ``dense_dense`` also the dense layers.
``conv1x1`` / ``conv1x1_dense``
    IFBiD's 1x1-conv classifier, one block per conv layer: each filter's (in, k, k) kernel (bias appended as one
    more input channel) -> Conv2d 1x1 (100 channels) -> ReLU -> max-pool over the k x k kernel -> Conv1d(100,
    100, 1) across filters -> ReLU -> max over filters (so the block does not depend on the filter order);
    ``conv1x1_dense`` adds a dense block (flatten -> Linear(10) -> ReLU) per dense layer; linear head. This is our
    reading of Mirror's ``Conv2D_IFBID_Model`` (kernel size of the Conv1d not recoverable; 1 is used).
``rnn``
    Each layer's flattened parameters, zero-padded to the longest layer, as one time step of an LSTM(100) ->
    Linear(n_classes) (Mirror's RNN).
``stats``
    Permutation-invariant statistics per layer (moments, quantiles, sorted filter/unit norms, bias statistics,
    the conv1 filters' responses to the ten class colours, sorted) -> standardise -> logistic regression.

All detectors are scikit-learn style estimators: ``fit(zoo, y)`` with ``y`` the bias-level labels (default
``zoo.levels``), ``predict(zoo)``, ``predict_proba(zoo)``, ``score(zoo, y)``. A detector fitted on one
architecture refuses zoos of another (``ValueError``). The torch detectors are differentiable in the weights
(:meth:`WeightDetector.logits_from_params`), which the localisation in :mod:`.mitigation` uses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from .data import MEAN_COLORS
from ..core.validation import check_number
from .zoo import ModelZoo, resolve_device

__all__ = ["DETECTORS", "WeightDetector", "stats_features", "two_level"]

DETECTORS = ("pca_knn", "dense", "dense_dense", "conv1x1", "conv1x1_dense", "rnn", "stats")
_TORCH_KINDS = ("dense", "dense_dense", "conv1x1", "conv1x1_dense", "rnn")
_DEFAULT_LAYERS = {"pca_knn": "all", "dense": "conv", "dense_dense": "all", "conv1x1": "conv",
                   "conv1x1_dense": "all", "rnn": "all", "stats": "all"}


def two_level(levels) -> np.ndarray:
    """Map 4-level labels to 2 levels: 0 = strong bias (levels 0, 1), 1 = weak bias (levels 2, 3)."""
    lv = np.asarray(levels)
    if np.any((lv < 0) | (lv > 3)):
        raise ValueError("levels must be in 0..3 (very high, high, low, very low bias).")
    return (lv >= 2).astype(np.int64)


# ------------------------------------------------------------------------------------------------ stats

def _moments(W: torch.Tensor) -> list:
    """W: (M, n) -> list of (M,) statistics invariant to permuting the n entries."""
    q = torch.quantile(W, torch.tensor([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0], dtype=W.dtype), dim=1).T
    mu = W.mean(1, keepdim=True)
    sd = W.std(1, keepdim=True) + 1e-12
    z = (W - mu) / sd
    return [mu[:, 0], sd[:, 0], W.abs().mean(1), (z ** 3).mean(1), (z ** 4).mean(1)] + list(q.T)


def stats_features(zoo: ModelZoo) -> np.ndarray:
    """Permutation-invariant features of each member's weights -> array (M, n_features).

    Per layer: moments (mean, std, mean |w|, skewness, kurtosis) and quantiles (0, 5, 25, 50, 75, 95, 100 %) of the
    weights; of the biases; sorted norms of the output units' weight vectors. For conv1: each filter's response to
    a uniform patch of each class mean colour (sum over the kernel of w . colour), max-min range and std across
    colours, sorted over filters, plus the sorted per-colour maxima.
    """
    M = len(zoo)
    p = {k: v.detach().to("cpu", torch.float64) for k, v in zoo.params.items()}
    feats = []
    for L in zoo.spec.layers:
        W = p[f"{L}.weight"]
        b = p[f"{L}.bias"]
        feats += _moments(W.reshape(M, -1))
        feats += _moments(b) if b.shape[1] > 1 else [b[:, 0]]
        norms = W.reshape(M, W.shape[1], -1).norm(dim=2).sort(dim=1).values
        feats += list(norms.T)
    W1 = p["conv1.weight"]  # (M, c1, 3, k, k)
    chan = W1.sum(dim=(3, 4))  # (M, c1, 3)
    resp = torch.einsum("mfc,kc->mfk", chan, torch.as_tensor(MEAN_COLORS))  # (M, c1, 10)
    rng_ = (resp.max(-1).values - resp.min(-1).values).sort(dim=1).values
    sdc = resp.std(-1).sort(dim=1).values
    top = resp.max(1).values.sort(dim=1).values  # (M, 10) sorted per-colour maxima over filters
    feats += list(rng_.T) + list(sdc.T) + list(top.T)
    return torch.stack(feats, dim=1).numpy()


# ------------------------------------------------------------------------------------------------ torch nets

class _Conv1x1Block(nn.Module):
    def __init__(self, in_ch, k, width=100):
        super().__init__()
        self.c2 = nn.Conv2d(in_ch + 1, width, 1)
        self.pool = nn.MaxPool2d(k)
        self.c1 = nn.Conv1d(width, width, 1)

    def forward(self, W, b):  # W (M, out, in, k, k), b (M, out)
        M, o, i, k, _ = W.shape
        x = torch.cat([W, b[:, :, None, None, None].expand(M, o, 1, k, k)], dim=2).reshape(M * o, i + 1, k, k)
        h = self.pool(F.relu(self.c2(x))).reshape(M, o, -1).transpose(1, 2)  # (M, width, out)
        return F.relu(self.c1(h)).amax(dim=2)  # max over filters


class _DetectorNet(nn.Module):
    def __init__(self, kind, spec, layers, n_classes, mean, scale):
        super().__init__()
        self.kind, self.spec, self.layers = kind, spec, list(layers)
        shapes = spec.shapes()
        self.sizes = {L: int(np.prod(shapes[f"{L}.weight"]) + np.prod(shapes[f"{L}.bias"])) for L in self.layers}
        for L in self.layers:  # standardisation buffers (fitted on the training zoo)
            self.register_buffer(f"mean_{L}", mean[L])
            self.register_buffer(f"scale_{L}", scale[L])
        if kind == "rnn":
            self.max_len = max(self.sizes.values())
            self.lstm = nn.LSTM(self.max_len, 100, batch_first=True)
            self.head = nn.Linear(100, n_classes)
            return
        blocks, width = nn.ModuleDict(), 0
        for L in self.layers:
            if kind.startswith("conv1x1") and L in spec.conv_layers:
                blocks[L] = _Conv1x1Block(shapes[f"{L}.weight"][1], shapes[f"{L}.weight"][2])
                width += 100
            else:
                blocks[L] = nn.Sequential(nn.Linear(self.sizes[L], 10), nn.ReLU())
                width += 10
        self.blocks = blocks
        self.head = nn.Linear(width, n_classes)

    def _flat(self, params, L):
        M = params[f"{L}.weight"].shape[0]
        v = torch.cat([params[f"{L}.weight"].reshape(M, -1), params[f"{L}.bias"]], dim=1)
        return (v - getattr(self, f"mean_{L}")) / getattr(self, f"scale_{L}")

    def forward(self, params):
        if self.kind == "rnn":
            seq = [F.pad(self._flat(params, L), (0, self.max_len - self.sizes[L])) for L in self.layers]
            out, _ = self.lstm(torch.stack(seq, dim=1))
            return self.head(out[:, -1])
        hs = []
        for L in self.layers:
            blk = self.blocks[L]
            if isinstance(blk, _Conv1x1Block):
                s = getattr(self, f"scale_{L}").mean()  # one scalar per layer keeps filter structure
                hs.append(blk(params[f"{L}.weight"] / s, params[f"{L}.bias"] / s))
            else:
                hs.append(blk(self._flat(params, L)))
        return self.head(torch.cat(hs, dim=1))


# ------------------------------------------------------------------------------------------------ estimator

class WeightDetector(BaseEstimator, ClassifierMixin):
    """Predict a zoo member's bias level from its weights.

    Parameters
    ----------
    kind : one of ``DETECTORS``
    layers : 'conv', 'all' or None (the kind's default: conv-only for ``dense``/``conv1x1``, else all)
    epochs : int
        Full-batch Adam epochs (torch kinds).
    lr, weight_decay : float
        Adam settings (torch kinds).
    C : float
        Inverse L2 strength of the logistic regression (``stats``).
    n_components, n_neighbors : int
        PCA components (capped at n_models - 1) and k of kNN (``pca_knn``).
    seed : int
    device : None, 'cpu' or 'cuda'

    Attributes
    ----------
    classes_ : ndarray of the bias-level labels seen in fit
    spec_ : CNNSpec of the training zoo
    layers_ : list of layer names used
    model_ : the fitted sklearn pipeline or torch module
    """

    def __init__(self, kind="stats", layers=None, epochs=300, lr=3e-3, weight_decay=1e-3, C=1.0, n_components=100,
                 n_neighbors=5, seed=0, device=None):
        self.kind = kind
        self.layers = layers
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.C = C
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.seed = seed
        self.device = device

    # -------------------------------------------------------------- checks
    def _check_numbers(self):
        check_number(self.epochs, "epochs", low=1, high=100_000, integer=True, fix="Pass e.g. epochs=300.")
        check_number(self.lr, "lr", low=0, high=1, low_inclusive=False, fix="Pass e.g. lr=3e-3 (Adam's step size).")
        check_number(self.weight_decay, "weight_decay", low=0, high=1e3, fix="Pass e.g. weight_decay=1e-3.")
        check_number(self.C, "C", low=0, low_inclusive=False, fix="Pass e.g. C=1.0 (inverse L2 strength).")
        check_number(self.n_components, "n_components", low=1, integer=True, fix="Pass e.g. n_components=100.")
        check_number(self.n_neighbors, "n_neighbors", low=1, integer=True, fix="Pass e.g. n_neighbors=5.")
        check_number(self.seed, "seed", low=0, high=2 ** 32 - 1, integer=True, fix="Pass e.g. seed=0.")

    def _check_kind(self):
        if self.kind not in DETECTORS:
            raise ValueError(f"kind={self.kind!r} is unknown; use one of {DETECTORS}.")
        lay = _DEFAULT_LAYERS[self.kind] if self.layers is None else self.layers
        if lay not in ("conv", "all"):
            raise ValueError(f"layers={self.layers!r} is unknown; use 'conv' (conv layers only), 'all' or None.")
        return lay

    def check_zoo(self, zoo, fitted: bool = True):
        """Raise TypeError / NotFittedError / ValueError unless ``zoo`` is a ModelZoo this detector can read."""
        if not isinstance(zoo, ModelZoo):
            raise TypeError(f"pass a cfdkit.spurious.ModelZoo; got {type(zoo).__name__}.")
        if fitted:
            if not hasattr(self, "spec_"):
                raise NotFittedError("this WeightDetector is not fitted yet; call fit(zoo, levels) first.")
            if zoo.spec != self.spec_:
                raise ValueError(f"the zoo's architecture {zoo.spec} differs from the one the detector was fitted on "
                                 f"({self.spec_}); weight-based detectors only read models of the architecture they "
                                 "were trained on: fit a detector on a zoo of this architecture.")

    def _flat(self, zoo) -> np.ndarray:
        w = zoo.weights(self.layers_)
        return torch.cat([w[L] for L in self.layers_], dim=1).detach().cpu().double().numpy()

    # -------------------------------------------------------------- API
    def fit(self, zoo, y=None):
        """Fit on the members of ``zoo`` with labels ``y`` (default ``zoo.levels``). Returns self."""
        lay = self._check_kind()
        self._check_numbers()
        self.check_zoo(zoo, fitted=False)
        y = zoo.levels if y is None else np.asarray(y)
        if y.shape != (len(zoo),):
            raise ValueError(f"y must have one label per member, shape ({len(zoo)},); got {y.shape}.")
        if np.any(y < 0):
            raise ValueError("y has negative labels (members whose sigma2 is not a standard level); pass y explicitly.")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("y has a single bias level; a detector needs at least two.")
        yi = np.searchsorted(self.classes_, y)
        self.spec_ = zoo.spec
        self.layers_ = zoo.spec.conv_layers if lay == "conv" else zoo.spec.layers
        if self.kind == "pca_knn":
            from sklearn.decomposition import PCA
            from sklearn.neighbors import KNeighborsClassifier
            from sklearn.pipeline import make_pipeline

            nc = int(min(self.n_components, len(zoo) - 1))
            self.model_ = make_pipeline(PCA(nc, random_state=self.seed),
                                        KNeighborsClassifier(min(self.n_neighbors, len(zoo)))).fit(self._flat(zoo), yi)
        elif self.kind == "stats":
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            if lay != "all":
                self.layers_ = zoo.spec.conv_layers
            self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=5000)).fit(
                self._stats(zoo), yi)
        else:
            self._fit_torch(zoo, yi)
        return self

    def _stats(self, zoo):
        F_ = stats_features(zoo)
        if self.layers_ == zoo.spec.layers:
            return F_
        # conv-only: recompute on a zoo view holding only conv layers' statistics
        keep = stats_feature_layers(zoo.spec)
        return F_[:, np.isin(keep, self.layers_ + ["color"])]

    def _fit_torch(self, zoo, yi):
        # the global torch RNG is seeded for the fit and restored afterwards (the user's state is never changed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            self._fit_torch_seeded(zoo, yi)

    def _fit_torch_seeded(self, zoo, yi):
        dev = resolve_device(self.device)
        params = {k: v.detach().to(dev, torch.float32) for k, v in zoo.params.items()}
        M = len(zoo)
        mean, scale = {}, {}
        for L in self.layers_:
            v = torch.cat([params[f"{L}.weight"].reshape(M, -1), params[f"{L}.bias"]], dim=1)
            mean[L] = v.mean(0)
            scale[L] = v.std(0) + 1e-6 if self.kind in ("dense", "dense_dense", "rnn") else v.std().expand(v.shape[1]).clone()
        g = torch.Generator().manual_seed(int(self.seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            net = _DetectorNet(self.kind, zoo.spec, self.layers_, len(self.classes_), mean, scale).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        y_t = torch.as_tensor(yi, device=dev)
        bs = 64
        for _ in range(int(self.epochs)):
            perm = torch.randperm(M, generator=g).to(dev)
            for s in range(0, M, bs):
                idx = perm[s:s + bs]
                opt.zero_grad()
                loss = F.cross_entropy(net({k: v[idx] for k, v in params.items()}), y_t[idx])
                loss.backward()
                opt.step()
        self.model_ = net.eval()

    def logits_from_params(self, params: dict) -> torch.Tensor:
        """Differentiable detector logits for stacked params (torch kinds only) -> tensor (M, n_levels)."""
        if self.kind not in _TORCH_KINDS:
            raise ValueError(f"kind={self.kind!r} is not differentiable; use one of {_TORCH_KINDS} for gradients.")
        if not hasattr(self, "model_"):
            raise NotFittedError("this WeightDetector is not fitted yet; call fit(zoo, levels) first.")
        dev = next(self.model_.parameters()).device
        return self.model_({k: v.to(dev, torch.float32) for k, v in params.items()})

    def predict_proba(self, zoo) -> np.ndarray:
        """Probabilities over ``classes_`` -> array (M, n_levels)."""
        self.check_zoo(zoo, fitted=True)
        if self.kind == "pca_knn":
            return self.model_.predict_proba(self._flat(zoo))
        if self.kind == "stats":
            return self.model_.predict_proba(self._stats(zoo))
        with torch.no_grad():
            return torch.softmax(self.logits_from_params(zoo.params), -1).cpu().double().numpy()

    def predict(self, zoo) -> np.ndarray:
        """Predicted bias level of each member -> array (M,)."""
        P = self.predict_proba(zoo)  # checks fitted and architecture first
        return self.classes_[P.argmax(1)]

    def score(self, zoo, y=None) -> float:
        """Accuracy on the members of ``zoo`` (labels default ``zoo.levels``)."""
        y = zoo.levels if y is None else np.asarray(y)
        return float((self.predict(zoo) == y).mean())


def stats_feature_layers(spec) -> list:
    """The layer each column of :func:`stats_features` belongs to ('color' for the conv1 colour responses)."""
    shapes = spec.shapes()
    out = []
    for L in spec.layers:
        nb = shapes[f"{L}.bias"][0]
        out += [L] * (12 + (12 if nb > 1 else 1) + shapes[f"{L}.weight"][0])
    c1 = spec.channels[0]
    out += ["color"] * (2 * c1 + 10)
    return out
