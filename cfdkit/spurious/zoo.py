"""A zoo of small CNNs on coloured digits, trained all at once.

The architecture is IFBiD's DigitWdb shape scaled down to 8x8 (or 16x16) inputs:
``conv(3->c1, 3x3, pad 1) -> maxpool 2 -> ReLU -> conv(c1->c2) -> maxpool 2 -> ReLU -> dense(h) -> ReLU
[-> dense(h2) -> ReLU ...] -> dense(10)``. With the defaults (8, 16, 32) a member has 3,802 parameters.

Batched training (:func:`train_zoo`) stacks the parameters of ``M`` members along a leading axis
(``torch.func.stack_module_state`` of ``M`` seeded :class:`SmallCNN` modules) and runs one forward pass
for all of them: convolutions as one grouped convolution (``groups=M``), dense layers as a batched
``einsum``. Every member has its own initialisation seed, its own random training subset, its own colour
draw (its own ``sigma2``) and its own minibatch order; Adam is applied element-wise to the stacked
parameters, so members never interact. :func:`train_member` trains one member alone with a plain
``nn.Module`` forward pass and the same Adam; the tests check that a member of a batched zoo equals the
member trained alone (see ``tests/test_spurious_zoo.py`` for the tolerance and why).

A :class:`ModelZoo` is saved with ``torch.save`` of a dict of tensors, ints, floats and strings only and is
loaded with ``torch.load(weights_only=True)``: loading never unpickles arbitrary objects.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import SIGMA2_LEVELS, colored_digits

from ..core.arrays import resolve_device
from ..core.validation import check_number

__all__ = ["CNNSpec", "SmallCNN", "ModelZoo", "TrainSettings", "train_zoo", "train_member",
           "ZOO_FORMAT"]

ZOO_FORMAT = "cfdkit.spurious.ModelZoo"
ZOO_VERSION = 1


@dataclass(frozen=True)
class CNNSpec:
    """Architecture of a zoo member.

    Parameters
    ----------
    size : {8, 16}
        Input side (images are (3, size, size)).
    channels : tuple of two ints
        Filters of the two conv layers.
    hidden : tuple of ints
        Widths of the hidden dense layers (``(32,)``; ``(64, 32)`` is the deeper variant).
    n_classes : int
        Must be 10: members classify the ten coloured digits.
    """

    size: int = 8
    channels: tuple = (8, 16)
    hidden: tuple = (32,)
    n_classes: int = 10

    def __post_init__(self):
        if isinstance(self.size, bool) or self.size not in (8, 16):
            raise ValueError(f"CNNSpec size={self.size!r} is not supported; use 8 or 16.")
        object.__setattr__(self, "size", int(self.size))
        if isinstance(self.channels, (str, bytes)) or not hasattr(self.channels, "__len__") or len(self.channels) != 2:
            raise ValueError(f"CNNSpec channels={self.channels!r} must be two positive ints (conv1, conv2 filters), "
                             "e.g. channels=(8, 16).")
        chans = tuple(check_number(c, "CNNSpec channels", low=1, high=4096, integer=True,
                                   fix="Pass two positive ints, e.g. channels=(8, 16).") for c in self.channels)
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__len__") or len(self.hidden) < 1:
            raise ValueError(f"CNNSpec hidden={self.hidden!r} must be one or more positive ints, e.g. hidden=(32,).")
        hid = tuple(check_number(h, "CNNSpec hidden", low=1, high=65536, integer=True,
                                 fix="Pass one or more positive ints, e.g. hidden=(32,).") for h in self.hidden)
        # the members learn digit classes of the coloured digits (10; fewer only for a custom training loop)
        ncl = check_number(self.n_classes, "CNNSpec n_classes", low=10, high=10, integer=True,
                           fix="Zoo members classify the 10 coloured digits: use n_classes=10.")
        object.__setattr__(self, "channels", chans)
        object.__setattr__(self, "hidden", hid)
        object.__setattr__(self, "n_classes", ncl)

    @property
    def conv_layers(self) -> list[str]:
        return ["conv1", "conv2"]

    @property
    def dense_layers(self) -> list[str]:
        return [f"dense{i + 1}" for i in range(len(self.hidden) + 1)]

    @property
    def layers(self) -> list[str]:
        """Layer names in forward order."""
        return self.conv_layers + self.dense_layers

    def shapes(self) -> dict:
        """``{param_name: shape}`` in forward order (``<layer>.weight``, ``<layer>.bias``)."""
        c1, c2 = self.channels
        out = {"conv1.weight": (c1, 3, 3, 3), "conv1.bias": (c1,), "conv2.weight": (c2, c1, 3, 3), "conv2.bias": (c2,)}
        fan_in = c2 * (self.size // 4) ** 2
        widths = list(self.hidden) + [self.n_classes]
        for i, w in enumerate(widths):
            out[f"dense{i + 1}.weight"] = (w, fan_in)
            out[f"dense{i + 1}.bias"] = (w,)
            fan_in = w
        return out

    @property
    def n_params(self) -> int:
        return int(sum(math.prod(s) for s in self.shapes().values()))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d) -> "CNNSpec":
        """The inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            ``d`` is not a dict with the keys ``size``, ``channels``, ``hidden``, ``n_classes`` of valid values.
        """
        keys = ("size", "channels", "hidden", "n_classes")
        if not isinstance(d, dict) or any(k not in d for k in keys):
            raise ValueError(f"spec must be a dict with the keys {list(keys)} (CNNSpec.to_dict()); got "
                             f"{d if not isinstance(d, dict) else sorted(d)!r}.")
        try:
            return cls(size=d["size"], channels=tuple(d["channels"]), hidden=tuple(d["hidden"]),
                       n_classes=d["n_classes"])
        except TypeError as e:
            raise ValueError(f"spec holds an invalid value: {e}") from e


class SmallCNN(nn.Module):
    """One zoo member as a plain ``nn.Module`` (see :class:`CNNSpec`).

    ``forward(x)`` takes (n, 3, H, W) and returns logits (n, n_classes). ``dropout`` is a dict
    ``{layer_name: p}``: dropout with probability ``p`` on that layer's output (after ReLU, and pooling for conv
    layers), applied even in eval mode
    (the Mirror "dropout kept in train mode" mitigation).
    """

    def __init__(self, spec: CNNSpec = CNNSpec(), dropout: dict | None = None):
        super().__init__()
        self.spec = spec
        c1, c2 = spec.channels
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        widths = list(spec.hidden) + [spec.n_classes]
        fan_in = c2 * (spec.size // 4) ** 2
        for i, w in enumerate(widths):
            setattr(self, f"dense{i + 1}", nn.Linear(fan_in, w))
            fan_in = w
        self.dropout = dict(dropout or {})

    def _drop(self, name, h):
        p = self.dropout.get(name, 0.0)
        return F.dropout(h, p=p, training=True) if p > 0 else h

    def forward(self, x):
        # relu(maxpool(z)) == maxpool(relu(z)); pooling first is cheaper (ReLU on a 4x smaller tensor)
        h = self._drop("conv1", F.relu(F.max_pool2d(self.conv1(x), 2)))
        h = self._drop("conv2", F.relu(F.max_pool2d(self.conv2(h), 2)))
        h = h.flatten(1)
        names = self.spec.dense_layers
        for name in names[:-1]:
            h = self._drop(name, F.relu(getattr(self, name)(h)))
        return getattr(self, names[-1])(h)


def init_member(spec: CNNSpec, seed: int, dtype=torch.float32) -> SmallCNN:
    """A :class:`SmallCNN` initialised from its own seed (PyTorch's default init: kaiming-uniform a=sqrt(5)
    weights, uniform(+-1/sqrt(fan_in)) biases), drawn from a private ``torch.Generator``."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.device("meta"):
        net = SmallCNN(spec)
    net = net.to_empty(device="cpu").to(dtype)
    with torch.no_grad():
        for name in spec.layers:
            mod = getattr(net, name)
            reset_parameters_(mod.weight, mod.bias, g)
    return net


def reset_parameters_(weight: torch.Tensor, bias: torch.Tensor | None, generator: torch.Generator):
    """PyTorch's default layer init, in place: kaiming_uniform_(a=sqrt(5)) then bias ~ U(+-1/sqrt(fan_in))."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound, generator=generator)


# ------------------------------------------------------------------------------------------------
# batched forward

def batched_forward(params: dict, x: torch.Tensor, spec: CNNSpec, shared_input: bool = False,
                    dropout_masks: dict | None = None) -> torch.Tensor:
    """Logits of all ``M`` members.

    Parameters
    ----------
    params : dict name -> tensor of shape (M, *shape)
    x : tensor (M, B, 3, H, W), or (B, 3, H, W) with ``shared_input=True`` (same images for every member)
    dropout_masks : dict layer -> tensor broadcastable to that layer's output (M, B, ...), multiplied in
        after the layer's ReLU (and pooling, for conv layers), already scaled by 1/(1-p).

    Returns
    -------
    logits : tensor (M, B, n_classes)
    """
    W1 = params["conv1.weight"]
    M = W1.shape[0]
    c1, c2 = spec.channels
    dm = dropout_masks or {}
    if shared_input:
        B, _, H, Wd = x.shape
        h = F.conv2d(x.contiguous(memory_format=torch.channels_last), W1.reshape(M * c1, 3, 3, 3),
                     params["conv1.bias"].reshape(-1), padding=1)
    else:
        B, H, Wd = x.shape[1], x.shape[3], x.shape[4]
        xin = x.transpose(0, 1).reshape(B, M * 3, H, Wd).contiguous(memory_format=torch.channels_last)
        h = F.conv2d(xin, W1.reshape(M * c1, 3, 3, 3), params["conv1.bias"].reshape(-1), padding=1, groups=M)
    h = F.relu(F.max_pool2d(h, 2))  # == maxpool(relu(.)), cheaper
    if "conv1" in dm:
        hh, ww = h.shape[-2:]
        h = (h.reshape(B, M, c1, hh, ww) * dm["conv1"].transpose(0, 1)).reshape(B, M * c1, hh, ww)
    h = F.conv2d(h, params["conv2.weight"].reshape(M * c2, c1, 3, 3), params["conv2.bias"].reshape(-1), padding=1,
                 groups=M)
    h = F.relu(F.max_pool2d(h, 2))
    if "conv2" in dm:
        hh, ww = h.shape[-2:]
        h = (h.reshape(B, M, c2, hh, ww) * dm["conv2"].transpose(0, 1)).reshape(B, M * c2, hh, ww)
    h = h.reshape(B, M, -1).transpose(0, 1)  # (M, B, c2 * s * s), same order as flatten(1) per member
    names = spec.dense_layers
    for name in names:
        h = torch.einsum("mbi,moi->mbo", h, params[f"{name}.weight"]) + params[f"{name}.bias"][:, None, :]
        if name != names[-1]:
            h = F.relu(h)
        if name in dm:
            h = h * dm[name]
    return h


def dropout_masks(p_per_member: dict, M: int, B: int, spec: CNNSpec, generator: torch.Generator, device, dtype):
    """Inverted-dropout masks for :func:`batched_forward`: ``p_per_member`` maps a layer name to a length-M array
    of drop probabilities (0 = no dropout for that member)."""
    c1, c2 = spec.channels
    s = spec.size
    out_shape = {"conv1": (c1, s // 2, s // 2), "conv2": (c2, s // 4, s // 4)}  # after ReLU and pooling
    widths = list(spec.hidden) + [spec.n_classes]
    for name, w in zip(spec.dense_layers, widths):
        out_shape[name] = (w,)
    masks = {}
    for name, p in p_per_member.items():
        if name not in out_shape:
            raise ValueError(f"dropout layer {name!r} is not in this architecture; layers are {spec.layers}.")
        p = torch.as_tensor(np.asarray(p, dtype=np.float64), dtype=dtype, device=device).reshape(M, 1, *([1] * len(out_shape[name])))
        if torch.any((p < 0) | (p >= 1)):
            raise ValueError("dropout probabilities must lie in [0, 1).")
        u = torch.rand((M, B) + out_shape[name], generator=generator, dtype=dtype).to(device)
        masks[name] = (u >= p).to(dtype) / (1 - p)
    return masks


# ------------------------------------------------------------------------------------------------
# Adam on stacked parameters

class BatchedAdam:
    """Adam (Kingma & Ba; PyTorch's default formula) applied element-wise to a dict of tensors."""

    def __init__(self, params: dict, lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(self, params: dict, grads: dict, masks: dict | None = None):
        self.t += 1
        bc1 = 1 - self.b1 ** self.t
        bc2 = 1 - self.b2 ** self.t
        for k, p in params.items():
            g = grads[k]
            self.m[k].mul_(self.b1).add_(g, alpha=1 - self.b1)
            self.v[k].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (self.v[k] / bc2).sqrt_().add_(self.eps)
            upd = (self.m[k] / bc1) / denom * self.lr
            if masks is not None and k in masks:
                upd = upd * masks[k]
            p.sub_(upd)


@dataclass(frozen=True)
class TrainSettings:
    """Training hyperparameters shared by all members (Adam, minibatches, cross-entropy)."""

    n_train: int | None = 800
    epochs: int = 40
    batch_size: int = 50
    lr: float = 3e-3
    train_digits: str | None = None
    shift: int = 0

    def __post_init__(self):
        for name, hi, ex in (("epochs", 100_000, 40), ("batch_size", None, 50)):
            check_number(getattr(self, name), name, low=1, high=hi, integer=True, fix=f"Pass e.g. {name}={ex}.")
        check_number(self.lr, "lr", low=0, high=1, low_inclusive=False,
                     fix="Pass e.g. lr=3e-3 (Adam's step size; larger steps diverge to NaN weights).")
        check_number(self.n_train, "n_train", low=1, integer=True, allow_none=True,
                     fix="Pass a positive number of training digits per member, e.g. n_train=800, or None for all.")
        check_number(self.shift, "shift", low=0, integer=True, fix="Pass e.g. shift=0 (no jitter) or 1.")
        if self.train_digits not in (None, "first", "second"):
            raise ValueError(f"train_digits={self.train_digits!r} is unknown; use None, 'first' or 'second'.")


def member_data(sigma2, seed, spec, settings):
    return colored_digits("jitter", sigma2=float(sigma2), size=spec.size, n_train=settings.n_train, seed=int(seed),
                          train_digits=settings.train_digits, shift=settings.shift, dtype=np.float64)


def _batch_orders(seed, n, settings):
    rng = np.random.default_rng([int(seed), 2718])
    return [rng.permutation(n) for _ in range(settings.epochs)]


def _check_members(sigma2s, seeds):
    s2 = np.atleast_1d(np.asarray(sigma2s, dtype=np.float64))
    if s2.ndim != 1 or len(s2) == 0:
        raise ValueError("sigma2s must be a non-empty 1-D sequence of jitter variances, one per member.")
    if not np.all(np.isfinite(s2)) or np.any(s2 <= 0):
        raise ValueError(f"sigma2s must all be > 0; got {s2[(~np.isfinite(s2)) | (s2 <= 0)][:3]}.")
    if seeds is None:
        seeds = np.arange(len(s2))
    seeds = np.atleast_1d(np.asarray(seeds))
    if seeds.shape != s2.shape or not np.issubdtype(seeds.dtype, np.integer) or np.issubdtype(seeds.dtype, np.bool_) \
            or np.any(seeds < 0):
        raise ValueError(f"seeds must be {len(s2)} non-negative integers, one per member; got {seeds!r}.")
    if len(np.unique(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct: two members with the same seed would be the same model.")
    return s2, seeds.astype(np.int64)


def train_member(sigma2: float, seed: int, spec: CNNSpec = CNNSpec(), settings: TrainSettings = TrainSettings(),
                 dtype=torch.float64, device=None) -> SmallCNN:
    """Train one member alone (plain ``nn.Module`` forward, same data, init, batch order and Adam as in
    :func:`train_zoo`). This is the reference the batched zoo is tested against."""
    dev = resolve_device(device)
    data = member_data(sigma2, seed, spec, settings)
    net = init_member(spec, seed, dtype).to(dev)
    X = torch.as_tensor(data.X_train, dtype=dtype, device=dev)
    y = torch.as_tensor(data.y_train, device=dev)
    params = dict(net.named_parameters())
    opt = BatchedAdam({k: v.detach() for k, v in params.items()}, settings.lr)
    for order in _batch_orders(seed, len(y), settings):
        for s in range(0, len(y), settings.batch_size):
            idx = torch.as_tensor(order[s:s + settings.batch_size], device=dev)
            loss = F.cross_entropy(net(X[idx]), y[idx], reduction="sum") / len(idx)
            grads = torch.autograd.grad(loss, list(params.values()))
            opt.step({k: v.data for k, v in params.items()}, dict(zip(params.keys(), grads)))
    return net


def train_zoo(sigma2s, seeds=None, spec: CNNSpec = CNNSpec(), settings: TrainSettings = TrainSettings(),
              device=None, dtype=torch.float32, chunk: int | None = None, progress: bool = True) -> "ModelZoo":
    """Train one CNN per entry of ``sigma2s``, all at once.

    Parameters
    ----------
    sigma2s : sequence of M floats > 0
        Colour-jitter variance of each member's training data (its bias level).
    seeds : sequence of M distinct ints >= 0, default ``range(M)``
        Per-member seed: initialisation, training subset, colour draw and minibatch order.
    spec : CNNSpec
    settings : TrainSettings
    device : None, 'cpu' or 'cuda'
    dtype : torch.float32 (default) or torch.float64
    chunk : int or None
        Train at most this many members at a time (memory); results do not depend on it.
    progress : bool
        tqdm bar over epochs.

    Returns
    -------
    ModelZoo
    """
    s2, seeds = _check_members(sigma2s, seeds)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype={dtype!r} is not supported; use torch.float32 or torch.float64.")
    dev = resolve_device(device)
    M = len(s2)
    chunk = M if chunk is None else check_number(chunk, "chunk", low=1, integer=True,
                                                 fix="Pass a positive number of members per batch, or None.")
    parts = []
    for c0 in range(0, M, chunk):
        parts.append(_train_chunk(s2[c0:c0 + chunk], seeds[c0:c0 + chunk], spec, settings, dev, dtype,
                                  progress, desc=f"zoo {c0 // chunk + 1}/{math.ceil(M / chunk)}"))
    params = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    meta = {"sigma2": torch.as_tensor(s2), "seed": torch.as_tensor(seeds)}
    return ModelZoo(spec, params, meta, settings)


def _train_chunk(s2, seeds, spec, settings, dev, dtype, progress, desc):
    from torch.func import stack_module_state

    M = len(s2)
    datas = [member_data(a, b, spec, settings) for a, b in zip(s2, seeds)]
    n = len(datas[0].y_train)
    X = torch.as_tensor(np.stack([d.X_train for d in datas]), dtype=dtype, device=dev)  # (M, n, 3, H, W)
    Y = torch.as_tensor(np.stack([d.y_train for d in datas]), device=dev)  # (M, n)
    nets = [init_member(spec, int(s), dtype) for s in seeds]
    stacked, _ = stack_module_state(nets)
    params = {k: v.detach().to(dev).requires_grad_(True) for k, v in stacked.items()}
    opt = BatchedAdam({k: v.detach() for k, v in params.items()}, settings.lr)
    orders = np.stack([np.stack(_batch_orders(s, n, settings)) for s in seeds])  # (M, epochs, n)
    orders = torch.as_tensor(orders, device=dev)
    ar = torch.arange(M, device=dev)[:, None]
    for ep in tqdm(range(settings.epochs), disable=not progress, desc=desc, leave=False):
        for s in range(0, n, settings.batch_size):
            idx = orders[:, ep, s:s + settings.batch_size]  # (M, B)
            xb, yb = X[ar, idx], Y[ar, idx]
            logits = batched_forward(params, xb, spec)
            # per-member mean loss; summing over members keeps their gradients separate
            loss = F.cross_entropy(logits.reshape(-1, spec.n_classes), yb.reshape(-1), reduction="sum") / idx.shape[1]
            grads = torch.autograd.grad(loss, list(params.values()))
            opt.step({k: v.data for k, v in params.items()}, dict(zip(params.keys(), grads)))
    return {k: v.detach() for k, v in params.items()}


# ------------------------------------------------------------------------------------------------
# the zoo container

class ModelZoo:
    """``M`` trained members of one architecture, stacked.

    Attributes
    ----------
    spec : CNNSpec
    params : dict name -> tensor (M, *shape), in :meth:`CNNSpec.shapes` order
    meta : dict of 1-D tensors of length M: ``sigma2``, ``seed`` (and whatever callers add)
    settings : TrainSettings or None
    """

    def __init__(self, spec: CNNSpec, params: dict, meta: dict, settings: TrainSettings | None = None):
        if not isinstance(spec, CNNSpec):
            raise TypeError(f"spec must be a CNNSpec; got {type(spec).__name__}.")
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict name -> tensor (M, *shape); got {type(params).__name__}.")
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict name -> tensor (M,); got {type(meta).__name__}.")
        shapes = spec.shapes()
        if list(params) != list(shapes):
            raise ValueError(f"params keys {list(params)} do not match the architecture {list(shapes)}.")
        M = None
        for k, shp in shapes.items():
            t = params[k]
            if not isinstance(t, torch.Tensor) or tuple(t.shape[1:]) != shp:
                raise ValueError(f"param {k!r} must be a tensor of shape (M, {', '.join(map(str, shp))}); "
                                 f"got {getattr(t, 'shape', type(t).__name__)}.")
            if t.dtype not in (torch.float32, torch.float64):
                raise ValueError(f"param {k!r} has dtype {t.dtype}; zoo parameters are float32 or float64.")
            if not torch.isfinite(t).all():
                raise ValueError(f"param {k!r} holds NaN/inf values (a diverged member or a corrupt file); "
                                 "retrain the zoo or drop those members with subset().")
            M = t.shape[0] if M is None else M
            if t.shape[0] != M:
                raise ValueError("all params must have the same number of members M on axis 0.")
        if M == 0:
            raise ValueError("the zoo is empty (no member on axis 0 of params); a zoo needs at least one member.")
        for k in ("sigma2", "seed"):
            if k not in meta:
                raise ValueError(f"meta has no {k!r} entry; a zoo records each member's sigma2 and seed "
                                 "(train_zoo writes both).")
        for k, v in meta.items():
            if not isinstance(v, torch.Tensor) or v.shape != (M,):
                raise ValueError(f"meta[{k!r}] must be a tensor of shape ({M},).")
        if settings is not None and not isinstance(settings, TrainSettings):
            raise ValueError(f"settings must be a TrainSettings or None; got {type(settings).__name__}.")
        self.spec, self.params, self.meta, self.settings = spec, params, dict(meta), settings

    def __len__(self) -> int:
        return int(self.params["conv1.weight"].shape[0])

    def __repr__(self) -> str:
        lv = np.unique(self.sigma2).tolist()
        return f"ModelZoo(M={len(self)}, spec={self.spec}, sigma2 levels={lv})"

    @property
    def sigma2(self) -> np.ndarray:
        return self.meta["sigma2"].cpu().numpy()

    @property
    def levels(self) -> np.ndarray:
        """Bias-level index per member: 0 very high (0.02), 1 high, 2 low, 3 very low (0.05); -1 otherwise."""
        s2 = self.sigma2
        out = np.full(len(s2), -1, dtype=np.int64)
        for i, lv in enumerate(SIGMA2_LEVELS):
            out[np.isclose(s2, lv)] = i
        return out

    @property
    def device(self) -> torch.device:
        return self.params["conv1.weight"].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params["conv1.weight"].dtype

    def to(self, device=None, dtype=None) -> "ModelZoo":
        dev = resolve_device(device) if device is not None else self.device
        p = {k: v.to(device=dev, dtype=dtype or v.dtype) for k, v in self.params.items()}
        return ModelZoo(self.spec, p, {k: v.clone() for k, v in self.meta.items()}, self.settings)

    def subset(self, idx) -> "ModelZoo":
        """Members ``idx`` (ints in ``[-M, M)`` or a boolean mask of length M) as a new zoo (at least one member)."""
        a = np.asarray(idx)
        M = len(self)
        if a.dtype == bool:
            if a.shape != (M,):
                raise ValueError(f"a boolean idx must have shape ({M},); got {a.shape}.")
            a = np.flatnonzero(a)
        elif a.size and (a.ndim != 1 or not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"idx must be a 1-D array of member indices or a boolean mask; got {idx!r}.")
        if a.size == 0:
            raise ValueError("idx selects no member; a zoo needs at least one (pass a non-empty idx).")
        if a.min() < -M or a.max() >= M:
            raise ValueError(f"idx holds member indices outside [-{M}, {M}); this zoo has {M} members.")
        idx = torch.as_tensor(a.astype(np.int64))
        p = {k: v[idx.to(v.device)].clone() for k, v in self.params.items()}
        m = {k: v[idx].clone() for k, v in self.meta.items()}
        return ModelZoo(self.spec, p, m, self.settings)

    @staticmethod
    def concat(zoos) -> "ModelZoo":
        """One zoo holding the members of ``zoos`` (a non-empty sequence of zoos of one architecture)."""
        zoos = list(zoos)
        if not zoos:
            raise ValueError("zoos is empty; pass at least one ModelZoo to concatenate.")
        bad = [type(z).__name__ for z in zoos if not isinstance(z, ModelZoo)]
        if bad:
            raise TypeError(f"zoos must all be ModelZoo objects; got {bad[0]}.")
        spec = zoos[0].spec
        if any(z.spec != spec for z in zoos):
            raise ValueError("cannot concatenate zoos of different architectures.")
        p = {k: torch.cat([z.params[k] for z in zoos]) for k in zoos[0].params}
        keys = set.intersection(*[set(z.meta) for z in zoos])
        m = {k: torch.cat([z.meta[k] for z in zoos]) for k in zoos[0].meta if k in keys}
        return ModelZoo(spec, p, m, zoos[0].settings)

    def member(self, i: int, dropout: dict | None = None) -> SmallCNN:
        """Member ``i`` as a standalone :class:`SmallCNN` (a copy)."""
        M = len(self)
        i = check_number(i, "member index i", low=-M, high=M - 1, integer=True,
                         fix=f"This zoo has {M} members.")
        net = SmallCNN(self.spec, dropout=dropout).to(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            for k, p in net.named_parameters():
                p.copy_(self.params[k][i])
        return net.eval()

    def weights(self, layers=None, include_bias: bool = True) -> dict:
        """``{layer: tensor (M, n_params_of_layer)}`` flattened weights (and biases) per layer."""
        layers = self.spec.layers if layers is None else list(layers)
        out = {}
        for L in layers:
            if f"{L}.weight" not in self.params:
                raise ValueError(f"layer {L!r} is not in this architecture; layers are {self.spec.layers}.")
            parts = [self.params[f"{L}.weight"].reshape(len(self), -1)]
            if include_bias:
                parts.append(self.params[f"{L}.bias"])
            out[L] = torch.cat(parts, dim=1)
        return out

    @torch.no_grad()
    def predict_proba(self, X, batch: int = 512, dropout: dict | None = None, seed: int = 0) -> torch.Tensor:
        """Softmax probabilities of every member on shared images X (n, 3, H, W) -> tensor (M, n, n_classes).

        ``dropout`` maps a layer name to a length-M array of probabilities: dropout on that layer's output kept
        active at prediction time (Mirror's dropout mitigation), drawn from a generator seeded by ``seed``.
        """
        batch = check_number(batch, "batch", low=1, integer=True, fix="Pass e.g. batch=512 (images per forward).")
        X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=self.dtype,
                            device=self.device)
        if X.dim() != 4 or tuple(X.shape[1:]) != (3, self.spec.size, self.spec.size):
            raise ValueError(f"X must have shape (n, 3, {self.spec.size}, {self.spec.size}); got {tuple(X.shape)}.")
        if not torch.isfinite(X).all():
            raise ValueError("X contains NaN/inf pixels; pass finite images.")
        gen = torch.Generator().manual_seed(int(seed)) if dropout else None
        outs = []
        for s in range(0, X.shape[0], batch):
            xb = X[s:s + batch]
            dm = dropout_masks(dropout, len(self), xb.shape[0], self.spec, gen, self.device, self.dtype) \
                if dropout else None
            outs.append(torch.softmax(batched_forward(self.params, xb, self.spec, shared_input=True,
                                                      dropout_masks=dm), -1))
        return torch.cat(outs, dim=1)

    def accuracy(self, X, y) -> np.ndarray:
        """Accuracy of each member on (X, y) -> ndarray (M,)."""
        P = self.predict_proba(X)
        ya = np.asarray(y)
        if ya.shape != (P.shape[1],) or not np.issubdtype(ya.dtype, np.integer):
            raise ValueError(f"y must hold one integer digit label per image, shape ({P.shape[1]},); got "
                             f"shape {ya.shape}, dtype {ya.dtype}.")
        y = torch.as_tensor(ya, device=P.device)
        return (P.argmax(-1) == y[None]).double().mean(1).cpu().numpy()

    # ---------------- persistence
    def save(self, path) -> None:
        """Write the zoo atomically (temp file + ``os.replace``) as a dict of tensors/ints/strings."""
        payload = {"format": ZOO_FORMAT, "version": ZOO_VERSION, "spec": self.spec.to_dict(),
                   "params": {k: v.detach().cpu() for k, v in self.params.items()},
                   "meta": {k: v.detach().cpu() for k, v in self.meta.items()},
                   "settings": None if self.settings is None else asdict(self.settings)}
        path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".zoo-", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path, device=None) -> "ModelZoo":
        """Load a zoo written by :meth:`save` with ``torch.load(weights_only=True)``.

        Raises
        ------
        FileNotFoundError, ValueError (the file is not a cfdkit zoo: another pickle, a checkpoint, garbage).
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no zoo file at {path!r}.")
        dev = resolve_device(device) if device is not None else torch.device("cpu")
        try:
            obj = torch.load(path, map_location=dev, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure of the safe loader means "not a zoo"
            raise ValueError(f"{path!r} is not a cfdkit model zoo (it could not be read as a tensors-only torch file: "
                             f"{type(exc).__name__}); write zoos with ModelZoo.save and never load untrusted pickles."
                             ) from exc
        if not isinstance(obj, dict) or obj.get("format") != ZOO_FORMAT:
            raise ValueError(f"{path!r} is a torch file but not a cfdkit model zoo (no format={ZOO_FORMAT!r} entry); "
                             "write zoos with ModelZoo.save.")
        if obj.get("version") != ZOO_VERSION:
            raise ValueError(f"{path!r} has zoo format version {obj.get('version')!r}; this cfdkit reads {ZOO_VERSION}.")
        for key in ("spec", "params", "meta"):
            if key not in obj:
                raise ValueError(f"{path!r} is not a complete cfdkit model zoo: it has no {key!r} entry; "
                                 "write zoos with ModelZoo.save.")
        try:
            spec = CNNSpec.from_dict(obj["spec"])
            st = obj.get("settings")
            if st is not None and not isinstance(st, dict):
                raise ValueError(f"settings must be a dict of TrainSettings fields; got {type(st).__name__}.")
            if st is not None:
                unknown = sorted(set(st) - set(TrainSettings.__dataclass_fields__))
                if unknown:
                    raise ValueError(f"settings has unknown fields {unknown}.")
            settings = None if st is None else TrainSettings(**st)
            return cls(spec, obj["params"], obj["meta"], settings)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path!r} is a corrupt or crafted cfdkit model zoo: {e} Write zoos with "
                             "ModelZoo.save.") from e
