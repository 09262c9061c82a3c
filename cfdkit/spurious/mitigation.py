"""Where is the bias, and can it be removed? Localisation and mitigation after Sialelli et al. (Mirror, mirror).

Localisation (through a fitted, differentiable :class:`~cfdkit.spurious.ifbid.WeightDetector`):

* :func:`weight_step` - one step of size ``eps`` (0.02) on each member's *weights* (biases excluded) that lowers
  the detector's cross-entropy toward ``target`` (the "very low bias" level): FGSM ``-eps * sign(grad)`` or the
  gradient method GM ``-eps * grad / max|grad|`` (per member). Weights with ``|dw| >= 1e-2`` are *marked*; the
  *most-biased layer* of a member is the layer with the largest mean ``|dw|``.
* :func:`permutation_importance` - per layer, each of the layer's parameters is permuted independently across
  the models of a held-out zoo; importance = drop of detector accuracy (20 repeats).

Mitigation (:func:`mitigate`), each evaluated as the change of unbiased test accuracy and colour-score:
``reset_layer`` (re-initialise the most-biased layer's weights, kaiming-uniform a=sqrt(5)), ``reset_neuron``
(re-initialise the marked weights), ``dropout`` (p = 0.3 on the most-biased layer's output, kept active at
prediction time), ``finetune`` (train only the most-biased layer on unbiased digits: Adam 1e-3, 1 epoch, batch 8),
``step`` (apply the localisation step itself).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..core.validation import check_number
from .zoo import BatchedAdam, ModelZoo, batched_forward

__all__ = ["weight_step", "permutation_importance", "mitigate", "MITIGATIONS", "LOCALISATIONS"]

MITIGATIONS = ("reset_layer", "reset_neuron", "dropout", "finetune", "step")
LOCALISATIONS = ("fgsm", "gm")



def weight_step(detector, zoo: ModelZoo, target: int = 3, eps: float = 0.02, mode: str = "fgsm",
                mark_threshold: float = 1e-2) -> dict:
    """One detector-guided step on the weights of every member.

    Returns
    -------
    dict with
        ``delta`` : {param name -> tensor (M, *shape)} (zeros for biases),
        ``marked`` : {weight name -> bool tensor (M, *shape)}, ``|delta| >= mark_threshold``,
        ``layer_score`` : DataFrame (M x layers) of mean ``|delta|`` per layer,
        ``most_biased`` : ndarray (M,) of layer names.
    """
    if mode not in LOCALISATIONS:
        raise ValueError(f"mode={mode!r} is unknown; use 'fgsm' or 'gm'.")
    check_number(eps, "eps", low=0, high=1e3, low_inclusive=False, fix="The paper uses eps=0.02.")
    check_number(mark_threshold, "mark_threshold", low=0, fix="Pass e.g. mark_threshold=1e-2.")
    detector.check_zoo(zoo, fitted=True)
    if target not in detector.classes_:
        raise ValueError(f"target={target} is not a level the detector knows ({detector.classes_.tolist()}).")
    ti = int(np.searchsorted(detector.classes_, target))
    params = {k: v.detach().clone().float().requires_grad_(k.endswith(".weight")) for k, v in zoo.params.items()}
    logits = detector.logits_from_params(params)
    loss = F.cross_entropy(logits, torch.full((len(zoo),), ti, device=logits.device), reduction="sum")
    names = [k for k in params if k.endswith(".weight")]
    grads = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
    grads = {k: (g if g is not None else torch.zeros_like(params[k])).to(zoo.device, zoo.dtype) for k, g in zip(names, grads)}
    M = len(zoo)
    if mode == "fgsm":
        delta = {k: -eps * torch.sign(g) for k, g in grads.items()}
    else:
        gmax = torch.stack([g.reshape(M, -1).abs().max(1).values for g in grads.values()], 1).max(1).values
        gmax = torch.where(gmax > 0, gmax, torch.ones_like(gmax))
        delta = {k: -eps * g / gmax.reshape(M, *([1] * (g.dim() - 1))) for k, g in grads.items()}
    marked = {k: d.abs() >= mark_threshold for k, d in delta.items()}
    layers = zoo.spec.layers
    score = pd.DataFrame({L: delta[f"{L}.weight"].reshape(M, -1).abs().mean(1).cpu().numpy() for L in layers})
    full = {k: delta.get(k, torch.zeros_like(v)) for k, v in zoo.params.items()}
    return {"delta": full, "marked": marked, "layer_score": score,
            "most_biased": np.array(layers, dtype=object)[score.to_numpy().argmax(1)]}


def permutation_importance(detector, zoo: ModelZoo, y=None, n_repeats: int = 20, seed: int = 0) -> pd.DataFrame:
    """Layer-wise permutation importance of a fitted detector on a held-out zoo.

    Returns
    -------
    DataFrame indexed by layer with columns ``importance_mean``, ``importance_std`` (accuracy drop) and
    ``baseline`` (accuracy without permutation).
    """
    y = zoo.levels if y is None else np.asarray(y)
    base = detector.score(zoo, y)
    rng = np.random.default_rng(seed)
    M = len(zoo)
    rows = []
    for L in zoo.spec.layers:
        drops = []
        for _ in range(int(n_repeats)):
            p = {k: v.clone() for k, v in zoo.params.items()}
            for k in (f"{L}.weight", f"{L}.bias"):
                flat = p[k].reshape(M, -1)
                perm = torch.as_tensor(np.argsort(rng.random(flat.shape), axis=0), device=flat.device)
                p[k] = torch.gather(flat, 0, perm).reshape(p[k].shape)
            drops.append(base - detector.score(ModelZoo(zoo.spec, p, zoo.meta, zoo.settings), y))
        rows.append({"layer": L, "importance_mean": float(np.mean(drops)), "importance_std": float(np.std(drops)),
                     "baseline": base})
    return pd.DataFrame(rows).set_index("layer")


def _reset_values(shape, fan_in, generator, device, dtype):
    bound = math.sqrt(6 / ((1 + 5) * fan_in))  # kaiming_uniform_(a=sqrt(5)) bound = 1/sqrt(fan_in)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul_(bound).to(device, dtype)


def mitigate(zoo: ModelZoo, loc: dict, method: str, data=None, seed: int = 0, p_dropout: float = 0.3,
             lr: float = 1e-3, batch_size: int = 8, epochs: int = 1):
    """Apply one mitigation to every member.

    Parameters
    ----------
    zoo : ModelZoo
    loc : dict from :func:`weight_step` (``delta``, ``marked``, ``most_biased``)
    method : one of ``MITIGATIONS``
    data : ColoredDigits (jitter)
        Its validation split (random colours, i.e. unbiased) is used by ``finetune``.

    Returns
    -------
    (new_zoo, dropout) : the mitigated zoo, and for ``dropout`` the ``{layer: p per member}`` to pass to
    prediction (None otherwise).
    """
    if method not in MITIGATIONS:
        raise ValueError(f"method={method!r} is unknown; use one of {MITIGATIONS}.")
    M = len(zoo)
    mb = np.asarray(loc["most_biased"])
    if mb.shape != (M,):
        raise ValueError("loc does not belong to this zoo (most_biased has the wrong length).")
    p = {k: v.detach().clone() for k, v in zoo.params.items()}
    shapes = zoo.spec.shapes()
    g = torch.Generator().manual_seed(int(seed))
    if method == "step":
        p = {k: v + loc["delta"][k].to(v) for k, v in p.items()}
    elif method == "reset_layer":
        for i, L in enumerate(mb):
            shp = shapes[f"{L}.weight"]
            p[f"{L}.weight"][i] = _reset_values(shp, int(np.prod(shp[1:])), g, zoo.device, zoo.dtype)
    elif method == "reset_neuron":
        for k, m in loc["marked"].items():
            shp = shapes[k]
            fresh = _reset_values((M,) + shp, int(np.prod(shp[1:])), g, zoo.device, zoo.dtype)
            p[k] = torch.where(m.to(zoo.device), fresh, p[k])
    elif method == "dropout":
        drop = {L: np.where(mb == L, p_dropout, 0.0) for L in zoo.spec.layers if (mb == L).any()}
        return ModelZoo(zoo.spec, p, zoo.meta, zoo.settings), drop
    else:  # finetune only the most-biased layer (weight and bias), all members at once on shared unbiased data
        if data is None:
            raise ValueError("method='finetune' needs data= (ColoredDigits); its unbiased validation split is used.")
        X = torch.as_tensor(data.X_val, dtype=zoo.dtype, device=zoo.device)
        y = torch.as_tensor(data.y_val, device=zoo.device)
        masks = {}
        for k in p:
            L = k.split(".")[0]
            masks[k] = torch.as_tensor(mb == L, dtype=zoo.dtype, device=zoo.device).reshape(M, *([1] * len(shapes[k])))
        for k in p:
            p[k].requires_grad_(True)
        opt = BatchedAdam({k: v.detach() for k, v in p.items()}, lr)
        rng = np.random.default_rng(seed)
        for _ in range(int(epochs)):
            order = torch.as_tensor(rng.permutation(len(y)), device=zoo.device)
            for s in range(0, len(y), batch_size):
                idx = order[s:s + batch_size]
                logits = batched_forward(p, X[idx], zoo.spec, shared_input=True)
                loss = F.cross_entropy(logits.reshape(-1, zoo.spec.n_classes), y[idx].repeat(M), reduction="sum") / len(idx)
                grads = torch.autograd.grad(loss, list(p.values()))
                opt.step({k: v.data for k, v in p.items()}, dict(zip(p.keys(), grads)), masks=masks)
        p = {k: v.detach() for k, v in p.items()}
    return ModelZoo(zoo.spec, p, zoo.meta, zoo.settings), None
