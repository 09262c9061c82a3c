"""The NeuronTune study (Zheng, Ye & Zhang): NeuronTune beside its controls on coloured digits, on tabular and text
sets with a planted feature, and the bridge to counterfactual datasets; the records of ``cfdkit reproduce --only
neurontune``.

The method (:class:`~cfdkit.spurious.neurontune.NeuronTune`, its identification rule and SFit) is in
:mod:`cfdkit.spurious.neurontune`, the networks in :mod:`cfdkit.spurious.nets`, the paper's numbers in
:data:`cfdkit.studies.paper.NEURONTUNE_PAPER_WGA`.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..neural import FIXED_STEP_RECIPE, NeuralCFD
from ..spurious.bridge import cfd_neuron_bridge, flatten_digits
from ..spurious.data import BINARY_COLORS, colored_digits, paint
from ..spurious.nets import MLP, DigitCNN, train_classifier
from ..spurious.neurontune import (RULES, NeuronTune, NeuronTuneWarning, lambda_grid, select_by_sfit, split_model,
                                   worst_group_accuracy)
from ..spurious.planted import planted_tabular, planted_text
from .cf_alignment import colour_tools
from .paper import NEURONTUNE_CONTEXT, NEURONTUNE_PAPER_WGA

__all__ = ["halves", "digits_model", "mlp_model", "neurontune_study", "neurontune_records", "bridge_records",
           "MASK_VALUES", "PAPER_WGA", "PAPER_CONTEXT"]

#: The paper's worst-group accuracies and the benchmark each data set stands in for (:mod:`cfdkit.studies.paper`).
PAPER_WGA, PAPER_CONTEXT = NEURONTUNE_PAPER_WGA, NEURONTUNE_CONTEXT
MASK_VALUES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def halves(n, seed=0):
    """Seeded split of ``range(n)`` into two halves (identification, †-tuning)."""
    p = np.random.default_rng(seed).permutation(n)
    return np.sort(p[: n // 2]), np.sort(p[n // 2:])


def digits_model(data, pretrained: bool, seed=0, width=64, epochs=20, pre_epochs=20, device=None):
    """ERM DigitCNN on binary coloured digits; ``pretrained`` first trains the trunk on the *grey* training digits
    (10-way digit labels, RGB = grey), a stand-in for ImageNet pre-training; then everything is fine-tuned."""
    torch.manual_seed(seed)
    m = DigitCNN(n_classes=2, width=width, size=data.size)
    if pretrained:
        torch.manual_seed(seed + 1000)
        m10 = DigitCNN(n_classes=10, width=width, size=data.size)
        g = np.repeat(data.gray_train[:, None], 3, axis=1)
        train_classifier(m10, g, data.digit_train, epochs=pre_epochs, seed=seed + 1000, device=device)
        m.trunk.load_state_dict(m10.trunk.state_dict())
    return train_classifier(m, data.X_train, data.y_train, epochs=epochs, seed=seed, device=device)


def mlp_model(data, seed=0, hidden=(64, 64), epochs=20, device=None):
    """ERM MLP on a :class:`cfdkit.spurious.planted.PlantedData`."""
    torch.manual_seed(seed)
    m = MLP(data.X_train.shape[1], hidden=hidden)
    return train_classifier(m, data.X_train, data.y_train, epochs=epochs, seed=seed, weight_decay=1e-4,
                            device=device)


def neurontune_study(model, data, *, rules=RULES, seed=0, mask_values=MASK_VALUES, head_epochs=50, device=None):
    """NeuronTune and its controls for one trained model.

    Identification set: the first half of ``data``'s validation set; tuning set: the training set (default) or
    the other validation half (†).  For each rule: NeuronTune at λ = 0, its † variant, the no-mask and
    random-mask controls (same retraining), λ chosen by SFit from :func:`lambda_grid` (with its random-mask
    control) and a mask-value sweep at that λ.

    Returns
    -------
    dict: metric name → float (``<metric>@<rule>`` for rule-dependent metrics; ``wga_erm``, ``mean_acc_erm``).
    """
    Xtr, ytr = data.X_train, data.y_train
    Xv, yv, _ = data.split("val")
    Xte, yte, gte = data.split("test")
    h1, h2 = halves(len(yv), seed)
    sm = split_model(model, device)
    pe = sm.predict_from_embedding(sm.embed(Xte))
    out = {"wga_erm": worst_group_accuracy(pe, yte, gte), "mean_acc_erm": float(np.mean(pe == yte)),
           "n_neurons": float(sm.W.shape[1]),
           "n_live": float((sm.embed(Xv[h1]).max(0) > 0).sum())}
    kw = dict(seed=seed, epochs=head_epochs, device=device)

    def ev(nt):
        p = nt.predict(Xte)
        return worst_group_accuracy(p, yte, gte), float(np.mean(p == yte))

    for rule in rules:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NeuronTuneWarning)
            base = NeuronTune(model, rule=rule, **kw).identify(Xv[h1], yv[h1])
            base.split_ = sm
            res = {}
            for name, neurons, (Xt, yt) in (("neurontune", "flagged", (Xtr, ytr)),
                                            ("neurontune_dagger", "flagged", (Xv[h2], yv[h2])),
                                            ("control_nomask", "none", (Xtr, ytr)),
                                            ("control_randommask", "random", (Xtr, ytr)),
                                            ("control_nomask_dagger", "none", (Xv[h2], yv[h2])),
                                            ("control_randommask_dagger", "random", (Xv[h2], yv[h2]))):
                nt = NeuronTune(model, rule=rule, neurons=neurons, **kw)
                nt.split_ = sm
                nt.fit(Xt, yt, Xv[h1], yv[h1])
                res[name] = ev(nt)
                if name == "neurontune":
                    out[f"n_flagged@{rule}"] = float(nt.n_flagged_)
                    out[f"sfit_erm@{rule}"] = nt.sfit_
            for name, (w, a) in res.items():
                out[f"wga_{name}@{rule}"] = w
            out[f"mean_acc_neurontune@{rule}"] = res["neurontune"][1]
            # λ sweep, selection by SFit (no group labels)
            lams = lambda_grid(base.delta_, rule)
            best, rows = select_by_sfit(model, Xtr, ytr, Xv[h1], yv[h1], lams, rule=rule, **kw)
            out[f"lam_sfit@{rule}"] = best.lam_
            out[f"n_flagged_sfit@{rule}"] = float(best.n_flagged_)
            out[f"wga_neurontune_sfit@{rule}"] = ev(best)[0]
            wgas = []
            for r in rows:
                nt = NeuronTune(model, rule=rule, lam=r["lam"], **kw)
                nt.split_ = sm
                wgas.append(ev(nt.fit(Xtr, ytr, Xv[h1], yv[h1]))[0])
            out[f"wga_neurontune_oracle_lam@{rule}"] = max(wgas)
            rnd = NeuronTune(model, rule=rule, lam=best.lam_, neurons="random", **kw)
            rnd.split_ = sm
            out[f"wga_control_randommask_sfit@{rule}"] = ev(rnd.fit(Xtr, ytr, Xv[h1], yv[h1]))[0]
            for mv in mask_values:
                nt = NeuronTune(model, rule=rule, lam=best.lam_, mask_value=mv, **kw)
                nt.split_ = sm
                out[f"wga_mask{mv:.1f}@{rule}"] = ev(nt.fit(Xtr, ytr, Xv[h1], yv[h1]))[0]
    return out


def _records_from(dataset, features, runs):
    """Mean over seeds of each metric → records (rule-dependent metrics get ``rule=...`` in ``features``)."""
    keys = list(runs[0])
    recs = []
    ctx = NEURONTUNE_PAPER_WGA[NEURONTUNE_CONTEXT[dataset]]
    paper = {"wga_erm": ctx[0], "wga_neurontune": ctx[1], "wga_neurontune_dagger": ctx[2]}
    for k in keys:
        vals = [r[k] for r in runs]
        v = float(np.mean(vals))
        metric, _, rule = k.partition("@")
        feats = f"{features}, seeds={len(runs)}" + (f", rule={rule}" if rule else "")
        p = paper.get(metric)
        recs.append({"study": "neurontune", "dataset": dataset, "features": feats, "metric": metric,
                     "paper": None if p is None else p / 100.0, "cfdkit": v})
    return recs


def neurontune_records(fast: bool, seed: int = 0, progress: bool = False) -> list:
    """Records for ``cfdkit reproduce --only neurontune``.

    Data sets: ``colored-digits`` (binary, ρ ∈ {0.9, 0.95, 0.99}; DigitCNN from scratch and grey-pretrained),
    ``planted-tabular`` (adult + a planted column, ρ = 0.95; ``CFDKIT_DATA_HOME`` must hold the fairness data),
    ``planted-text`` (SST-2 + a planted token, binary bag of words, ρ = 0.95), and the bridge on coloured digits
    (ρ = 0.95, ReLU network on flattened pixels).  ``fast``: one seed, ρ ∈ {0.95, 0.99}, fewer bridge points.
    The paper's worst-group accuracies (Waterbirds for digits, CelebA for the table, CivilComments for text,
    fractions) are context, not targets.

    Returns
    -------
    list of dict ``{"study", "dataset", "features", "metric", "paper", "cfdkit"}``
    """
    from tqdm.auto import tqdm

    seeds = [seed] if fast else [seed, seed + 1, seed + 2]
    rhos = (0.95, 0.99) if fast else (0.9, 0.95, 0.99)
    jobs = [("digits", rho, pre) for rho in rhos for pre in (False, True)] + [("tabular",), ("text",), ("bridge",)]
    recs = []
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for job in tqdm(jobs, desc="neurontune", disable=not progress):
            if job[0] == "digits":
                _, rho, pre = job
                runs = []
                for s in seeds:
                    d = colored_digits("binary", rho=rho, seed=s)
                    runs.append(neurontune_study(digits_model(d, pre, seed=s), d, seed=s))
                feats = f"DigitCNN {'grey-pretrained' if pre else 'scratch'}, rho={rho}"
                recs += _records_from("colored-digits", feats, runs)
            elif job[0] == "tabular":
                runs = []
                for s in seeds:
                    d = planted_tabular(0.95, seed=s)
                    runs.append(neurontune_study(mlp_model(d, seed=s), d, seed=s))
                recs += _records_from("planted-tabular", "adult one-hot + planted column, MLP 64-64, rho=0.95", runs)
            elif job[0] == "text":
                runs = []
                for s in seeds:
                    d = planted_text(0.95, seed=s, n_train=3000 if not fast else 2000)
                    runs.append(neurontune_study(mlp_model(d, seed=s), d, seed=s))
                recs += _records_from("planted-text", "sst2 binary BoW-2000 + planted token, MLP 64-64, rho=0.95", runs)
            else:
                recs += bridge_records(fast, seed=seed, progress=progress)
    finally:
        torch.set_num_threads(old)
    return recs


def bridge_records(fast: bool, seed: int = 0, progress: bool = False, n_points: int | None = None) -> list:
    """Bridge records on coloured digits (ρ = 0.95): CFD sizes per ranking, Jaccard and ΔSFit after retraining
    with the CFD's labels flipped, beside random flips of the same size; part (c): the Latent Shift counterfactual's
    relative change with a colour classifier (``ls_rc_colour_before``) and its change after the CFD's / random
    flips (``delta_rc_colour_after_cfd`` / ``_random``)."""
    d = colored_digits("binary", rho=0.95, seed=seed, n_train=600)
    Xtr = flatten_digits(d.X_train)
    Xv, yv = flatten_digits(d.X_val), d.y_val
    h1, _ = halves(len(yv), seed)
    Xte, yte, gte = flatten_digits(d.X_test), d.y_test, d.groups_test
    swapped = flatten_digits(paint(d.gray_test, BINARY_COLORS[1 - d.color_id_test]))
    probe = NeuralCFD(hidden=(32, 32), budget=10, seed=seed, progress=False, num_threads=1,
                      dtype=torch.float32, epochs=300, **FIXED_STEP_RECIPE).fit(Xtr, d.y_train)   # recorded recipe
    pred = probe.model_.predict(Xte)
    conflict = np.flatnonzero((pred != yte) & ((gte == 1) | (gte == 2)))
    k = (4 if fast else 16) if n_points is None else int(n_points)
    pts = np.random.default_rng(seed).choice(conflict, size=min(k, len(conflict)), replace=False)
    ae, colour = colour_tools(d, seed=seed, fast=fast)
    out = cfd_neuron_bridge(Xtr, d.y_train, Xv[h1], yv[h1], Xte[pts], X_colour=Xte, X_colour_swapped=swapped,
                            hidden=(32, 32), budget=10, seed=seed, progress=progress, autoencoder=ae, colour=colour)
    s = out["summary"]
    feats = f"ReLUNet 32-32 on pixels, rho=0.95, n_train=600, {len(pts)} misclassified bias-conflicting test points, " \
            f"rule={out['rule']}, lam=median={out['lam']:.3f}, budget=10; Latent Shift (AE on random colours, DIGIT_LS): " \
            f"RC kept n={s['ls_n']}, delta RC kept n={s['n_delta_rc_cfd']} (cfd) / {s['n_delta_rc_random']} (random)"
    names = {"jaccard": "jaccard_flagged_before_after_cfd", "jaccard_random_flips": "jaccard_flagged_before_after_random",
             "delta_sfit": "delta_sfit_after_cfd", "delta_sfit_random_flips": "delta_sfit_after_random",
             "score_change_on_flagged": "delta_score_on_flagged_after_cfd",
             "delta_colour_reliance": "delta_colour_reliance_after_cfd",
             "delta_colour_reliance_random_flips": "delta_colour_reliance_after_random",
             "n_flagged": "n_flagged", "n_cfd_found": "n_cfd_found", "colour_reliance_before": "colour_reliance_erm",
             "ls_rc_colour_before": "ls_rc_colour_before", "delta_rc_colour_after_cfd": "delta_rc_colour_after_cfd",
             "delta_rc_colour_after_random": "delta_rc_colour_after_random"}
    names.update({k: k for k in s if k.startswith("cfd_")})
    return [{"study": "neurontune", "dataset": "colored-digits", "features": "bridge: " + feats, "metric": m,
             "paper": None, "cfdkit": float(s[k])} for k, m in names.items()]
