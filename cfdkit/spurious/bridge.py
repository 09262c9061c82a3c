"""The bridge: labels (counterfactual datasets), neurons (NeuronTune) and inputs (Latent Shift) asked the same
question for the same misclassified bias-conflicting test points.

(a) :class:`cfdkit.neural.NeuralCFD` finds, per test point, the few training labels whose flip changes its
    prediction.  (b) :class:`~cfdkit.spurious.neurontune.NeuronTune` flags the embedding neurons (last hidden
    layer of the ReLU network) whose activation goes with errors.  :func:`cfd_neuron_bridge` retrains with each
    CFD's labels flipped **from the same initial weights** (``NeuralCFD.retrain``; full-batch training, so
    neuron ``i`` before and after is the same unit) and measures whether the flagged set changes (Jaccard of
    the flagged sets before/after), ΔSFit and the change in *colour reliance* (share of test predictions that
    change when an image is repainted in the other colour; cfdkit's own measure, not Mirror's colour-score,
    which another module provides).  A control retrains with as many *random* same-class flips.
    It also registers the ranking ``"neurontune_activation"`` (training points whose activation on the flagged
    neurons is nearest the test point's first) and compares its CFD sizes with the other rankings.
(c) The input counterfactual.  :func:`input_counterfactual_bridge` is the hook: it takes any
    ``counterfactual(model, X) -> X_cf`` callable and reports, per point, whether the prediction flipped and how
    much the flagged neurons' activation moved compared with the others.  :func:`latent_shift_counterfactual`
    makes such a callable from Latent Shift (:mod:`.latent_shift`, an autoencoder trained on randomly coloured
    digits), and :func:`ls_colour_rc` measures whether that counterfactual implicates colour: the relative change
    (Eq. 3 of CF alignment, :func:`.alignment.relative_change`) of a colour classifier,
    ``RC = ΔP(colour of class c) / ΔP_net(class c)``, with ``c`` the network's (wrong) prediction.  Given an
    ``autoencoder`` and a ``colour`` classifier, :func:`cfd_neuron_bridge` reports RC before, and RC on the same
    point after retraining with the CFD's labels flipped (and with as many random flips), with the base class
    ``c`` kept at the original prediction so that before and after measure the same function.
"""
from __future__ import annotations

import numpy as np
import torch

from cfdkit.neural import FIXED_STEP_RECIPE, NeuralCFD, register_ranking
from cfdkit.neural.model import as_relu_net

from .alignment import DIGIT_LS, cf_alignment, summarize_rc
from .latent_shift import check_autoencoder, check_classifier, latent_shift
from .nets import ComplementProba, ReLUNetProba
from .neurontune import NeuronTune, lambda_grid, neuron_scores, split_model

__all__ = ["neurontune_activation", "jaccard", "colour_reliance", "cfd_neuron_bridge", "input_counterfactual_bridge",
           "flatten_digits", "BRIDGE_RANKINGS", "latent_shift_counterfactual", "ls_colour_rc"]

#: Rankings compared in the bridge study (all registered in ``cfdkit.neural.RANKINGS``).
BRIDGE_RANKINGS = ("combined", "lr_surrogate", "activation_pattern", "l2_distance", "random", "neurontune_activation")


def _neuron_index(neurons, h2):
    if neurons is None:
        raise ValueError("the 'neurontune_activation' ranking needs the flagged neurons: pass "
                         "NeuralCFD(..., ranking_options={'neurons': indices}) with indices of last-hidden-layer units "
                         "(e.g. np.flatnonzero(NeuronTune(cfd.model_).identify(X_ide, y_ide).flagged_)).")
    a = np.asarray(neurons)
    idx = np.flatnonzero(a) if a.dtype == bool else a.astype(np.int64).ravel()
    if a.dtype == bool and a.shape != (h2,):
        raise ValueError(f"a boolean neurons mask must have length {h2} (last hidden layer); got {a.shape}.")
    if idx.size == 0:
        raise ValueError("neurons is empty: NeuronTune flagged no unit, so an activation ranking on flagged units is "
                         "undefined; lower lam or use rule='any'.")
    if idx.min() < 0 or idx.max() >= h2:
        raise ValueError(f"neurons must index the last hidden layer, 0..{h2 - 1}; got {idx.tolist()}.")
    return idx


@register_ranking("neurontune_activation")
def neurontune_activation(model, X_train, y_train, X_test, *, neurons=None, mask=None, **_) -> np.ndarray:
    """Rank training points by how close their activation on the flagged neurons is to the test point's.

    ``score[t, i] = −‖v_S(x_i) − v_S(x_t)‖₂`` with ``v = ReLU(z2)`` the last hidden layer and ``S`` the
    NeuronTune-flagged units (``neurons``: indices or a boolean mask).  Close = flip first.

    Returns
    -------
    (n_test, n_train) float64
    """
    net = as_relu_net(model)
    idx = _neuron_index(neurons, net.hidden[1])
    A = np.maximum(net.hidden_preactivations(X_train)[1], 0)[:, idx]
    B = np.maximum(net.hidden_preactivations(X_test)[1], 0)[:, idx]
    d2 = (B ** 2).sum(1)[:, None] + (A ** 2).sum(1)[None, :] - 2 * B @ A.T
    return -np.sqrt(np.maximum(d2, 0.0))


def jaccard(a, b) -> float:
    """Jaccard index of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape; got {a.shape} and {b.shape}.")
    u = (a | b).sum()
    return 1.0 if u == 0 else float((a & b).sum() / u)


def flatten_digits(X) -> np.ndarray:
    """(n, 3, H, W) images → (n, 3·H·W) float64 rows for the ReLU network."""
    X = np.asarray(X)
    return X.reshape(len(X), -1).astype(np.float64)


def colour_reliance(predict, X, X_swapped) -> float:
    """Share of inputs whose prediction changes when repainted in the other colour.

    Parameters
    ----------
    predict : callable ``X -> (n,)`` classes
    X, X_swapped : arrays of the same shape (same digits, colours swapped)
    """
    return float(np.mean(predict(X) != predict(X_swapped)))


def cfd_neuron_bridge(X_train, y_train, X_ide, y_ide, X_points, *, X_colour=None, X_colour_swapped=None,
                      hidden=(32, 32), budget=10, rule="any", lam="median", rankings=BRIDGE_RANKINGS,
                      ranking="combined", seed=0, epochs=300, lr=1e-2, dtype=None, progress=False,
                      autoencoder=None, colour=None, ls_options=None, base_change_limit=0.3):
    """Labels vs neurons for a set of (misclassified bias-conflicting) test points.

    Parameters
    ----------
    X_train, y_train : (n, d), (n,) binary — training set of the ReLU network (``NeuralCFD``)
    X_ide, y_ide : the NeuronTune identification set
    X_points : (k, d) — the test points whose CFDs are searched
    X_colour, X_colour_swapped : optional (m, d) inputs and their colour-swapped versions for
        :func:`colour_reliance` before/after
    hidden, budget, seed, epochs, lr, dtype : ``NeuralCFD`` settings (``dtype`` None → float32 for speed)
    rule, lam : NeuronTune rule and λ; ``lam="median"`` uses the median positive neuron score of the original
        model (the same λ is kept after retraining)
    rankings : rankings whose CFD sizes are compared (``"neurontune_activation"`` uses the flagged units)
    ranking : the ranking whose CFDs are retrained for the Jaccard / ΔSFit part
    autoencoder, colour : optional, together — part (c): the Latent Shift autoencoder (``X_points`` rows are
        flattened images of its input shape) and a torch colour classifier ``x -> P(green)`` (see
        :func:`cfdkit.studies.cf_alignment.colour_tools`).  Adds per point the relative change with the colour classifier before
        (:func:`ls_colour_rc`, base class = the prediction) and after retraining with the CFD's / random flips
        (same base class), the hook's :func:`input_counterfactual_bridge` output for Latent Shift, and to the
        summary ``ls_rc_colour_before`` (mean RC over points whose base prediction fell by > ``base_change_limit``),
        ``ls_n``, ``ls_implicates_colour`` (share of those with RC > 0.3), ``ls_flipped``, ``ls_shift_ratio``,
        ``delta_rc_colour_after_cfd`` / ``_random`` (mean RC after − before over points kept both times) and their
        counts ``n_delta_rc_cfd`` / ``n_delta_rc_random``.
    ls_options : dict, Latent Shift settings (default :data:`cfdkit.spurious.alignment.DIGIT_LS`)
    base_change_limit : float, the CF-alignment filter (0.3): RC counts only where the base prediction fell by more

    Returns
    -------
    dict with ``per_point`` (list of dict), ``summary`` (dict of floats), ``flagged_before`` (bool array),
    ``cfd`` (the fitted NeuralCFD), ``lam``, ``rule`` (and ``ls_before``, the :func:`ls_colour_rc` dict of all
    points, with part (c)).
    """
    X_points = np.asarray(X_points, np.float64)
    if X_points.ndim != 2 or len(X_points) == 0:
        raise ValueError(f"X_points must be a non-empty (k, d) array of test points; got shape {X_points.shape}.")
    if ranking not in rankings:
        raise ValueError(f"ranking={ranking!r} must be one of rankings={list(rankings)}.")
    if (autoencoder is None) != (colour is None):
        raise ValueError("part (c) needs both autoencoder= and colour= (e.g. cfdkit.studies.cf_alignment.colour_tools(data)); got only one.")
    if not (isinstance(base_change_limit, (int, float)) and 0 <= base_change_limit < 1):
        raise ValueError(f"base_change_limit={base_change_limit!r} must lie in [0, 1) (CF alignment: 0.3).")
    use_ls = autoencoder is not None
    dtype = torch.float32 if dtype is None else dtype
    cfd = NeuralCFD(hidden=hidden, budget=budget, seed=seed, epochs=epochs, lr=lr, dtype=dtype, progress=progress,
                    num_threads=1, **FIXED_STEP_RECIPE).fit(X_train, y_train)   # recipe of its recorded numbers
    base = NeuronTune(cfd.model_, rule=rule, lam=0.0).identify(X_ide, y_ide)
    if isinstance(lam, str):
        if lam != "median":
            raise ValueError(f"lam={lam!r} is unknown; use a finite number or 'median'.")
        grid = lambda_grid(base.delta_, rule, quantiles=(0.5,))
        lam_v = float(grid[-1])
    else:
        lam_v = float(lam)
    nt0 = NeuronTune(cfd.model_, rule=rule, lam=lam_v).identify(X_ide, y_ide)
    S0 = nt0.flagged_
    cfd.ranking_options = {"neurons": np.flatnonzero(S0)} if S0.any() else {}
    sizes = {}
    results = {}
    for r in rankings:
        if r == "neurontune_activation" and not S0.any():
            sizes[r] = (float("nan"), 0)
            continue
        res = cfd.search(X_points, ranking=r)
        results[r] = res
        k = res.k[res.found]
        sizes[r] = (float(k.mean()) if len(k) else float("nan"), int(res.n_found))
    res = results.get(ranking)
    rng = np.random.default_rng(seed + 101)
    cr0 = colour_reliance(cfd.model_.predict, X_colour, X_colour_swapped) if X_colour is not None else float("nan")
    ls0 = hook = None
    if use_ls:
        ls0 = ls_colour_rc(cfd.model_, X_points, autoencoder, colour, ls_options=ls_options)
        hook = input_counterfactual_bridge(latent_shift_counterfactual(autoencoder, **(ls_options or {})),
                                           cfd.model_, X_points, S0)
    rows = []
    ytr = np.asarray(y_train, np.int64)
    for i in range(len(X_points)) if res is not None else []:
        if not res.found[i]:
            continue
        flip = res.indices(i)
        net = cfd.retrain(flip)
        nt1 = NeuronTune(net, rule=rule, lam=lam_v).identify(X_ide, y_ide)
        # control: as many random flips among the same candidate pool (training points of the flipped label)
        pool = np.flatnonzero(ytr == ytr[flip[0]])
        rflip = rng.choice(pool, size=len(flip), replace=False)
        netr = cfd.retrain(rflip)
        ntr = NeuronTune(netr, rule=rule, lam=lam_v).identify(X_ide, y_ide)
        row = {"point": i, "k": int(len(flip)), "n_flagged_before": int(S0.sum()), "n_flagged_after": int(nt1.flagged_.sum()),
               "jaccard": jaccard(S0, nt1.flagged_), "jaccard_random_flips": jaccard(S0, ntr.flagged_),
               "delta_sfit": nt1.sfit_ - nt0.sfit_, "delta_sfit_random_flips": ntr.sfit_ - nt0.sfit_,
               "score_change_on_flagged": float(np.nanmean(neuron_scores(nt1.delta_, rule)[S0] -
                                                           neuron_scores(nt0.delta_, rule)[S0])) if S0.any() else float("nan")}
        if X_colour is not None:
            row["delta_colour_reliance"] = colour_reliance(net.predict, X_colour, X_colour_swapped) - cr0
            row["delta_colour_reliance_random_flips"] = colour_reliance(netr.predict, X_colour, X_colour_swapped) - cr0
        if use_ls:
            rc0, bc0, c0 = ls0["rc"][i], ls0["base_change"][i], ls0["classes"][[i]]
            row.update(ls_rc_before=rc0, ls_base_change_before=bc0, ls_flipped=hook[i]["flipped"],
                       ls_shift_ratio=hook[i]["ratio"])
            for tag, n in (("cfd", net), ("random", netr)):
                after = ls_colour_rc(n, X_points[[i]], autoencoder, colour, classes=c0, ls_options=ls_options)
                rc1, bc1 = after["rc"][0], after["base_change"][0]
                row[f"ls_rc_after_{tag}"], row[f"ls_base_change_after_{tag}"] = rc1, bc1
                kept = bc0 > base_change_limit and bc1 > base_change_limit
                row[f"delta_rc_colour_{tag}"] = rc1 - rc0 if kept else float("nan")
        rows.append(row)

    def mean(key):
        v = [r[key] for r in rows if key in r and not (key.startswith("delta_rc") and np.isnan(r[key]))]
        return float(np.mean(v)) if v else float("nan")

    summary = {"n_points": int(len(X_points)), "n_cfd_found": int(res.n_found) if res is not None else 0,
               "n_flagged": int(S0.sum()), "lam": lam_v, "sfit_before": nt0.sfit_, "colour_reliance_before": cr0}
    for key in ("jaccard", "jaccard_random_flips", "delta_sfit", "delta_sfit_random_flips", "score_change_on_flagged",
                "delta_colour_reliance", "delta_colour_reliance_random_flips"):
        summary[key] = mean(key)
    if use_ls:
        keep = ls0["base_change"] > base_change_limit
        summary["ls_rc_colour_before"], _, summary["ls_n"] = summarize_rc(ls0["rc"], ls0["base_change"],
                                                                          base_change_limit)
        summary["ls_implicates_colour"] = float(np.mean(ls0["rc"][keep] > 0.3)) if keep.any() else float("nan")
        summary["ls_flipped"] = float(np.mean([h["flipped"] for h in hook]))
        ratios = [h["ratio"] for h in hook if np.isfinite(h["ratio"])]
        summary["ls_shift_ratio"] = float(np.mean(ratios)) if ratios else float("nan")
        for tag in ("cfd", "random"):
            summary[f"delta_rc_colour_after_{tag}"] = mean(f"delta_rc_colour_{tag}")
            summary[f"n_delta_rc_{tag}"] = int(sum(np.isfinite(r[f"delta_rc_colour_{tag}"]) for r in rows))
    for r, (m, n) in sizes.items():
        summary[f"cfd_mean_size_{r}"] = m
        summary[f"cfd_found_{r}"] = n
    return {"per_point": rows, "summary": summary, "flagged_before": S0, "cfd": cfd, "lam": lam_v, "rule": rule,
            "results": results, "ls_before": ls0}


def input_counterfactual_bridge(counterfactual, model, X_points, flagged):
    """Hook for part (c): compare an input counterfactual (e.g. Latent Shift) with the flagged neurons.

    Parameters
    ----------
    counterfactual : callable ``(model, X) -> X_cf``
        Returns one counterfactual input per row of ``X`` (same shape); e.g. a Latent Shift search built on
        another branch.
    model : a model accepted by :func:`cfdkit.spurious.neurontune.split_model` (e.g. a ``ReLUNet``)
    X_points : (k, ...) inputs
    flagged : bool array (M,) — the NeuronTune-flagged units

    Returns
    -------
    list of dict, one per point: ``flipped`` (prediction changed), ``shift_flagged`` / ``shift_other`` (mean
    absolute activation change on flagged / other units), ``ratio`` (their quotient; > 1 means the input
    counterfactual moves mostly the flagged units).
    """
    if not callable(counterfactual):
        raise TypeError(f"counterfactual must be a callable (model, X) -> X_cf; got {type(counterfactual).__name__}.")
    sm = split_model(model)
    X = np.asarray(X_points)
    X_cf = np.asarray(counterfactual(model, X))
    if X_cf.shape != X.shape:
        raise ValueError(f"counterfactual returned shape {X_cf.shape}; expected {X.shape} (one per input).")
    V, Vc = sm.embed(X), sm.embed(X_cf)
    flagged = np.asarray(flagged, bool)
    if flagged.shape != (V.shape[1],):
        raise ValueError(f"flagged must be a bool mask of length {V.shape[1]}; got shape {flagged.shape}.")
    p, pc = sm.predict_from_embedding(V), sm.predict_from_embedding(Vc)
    out = []
    for i in range(len(X)):
        d = np.abs(Vc[i] - V[i])
        sf = float(d[flagged].mean()) if flagged.any() else float("nan")
        so = float(d[~flagged].mean()) if (~flagged).any() else float("nan")
        out.append({"flipped": bool(p[i] != pc[i]), "shift_flagged": sf, "shift_other": so,
                    "ratio": sf / so if so and np.isfinite(sf) else float("nan")})
    return out



# ---------------------------------------------------------------------------------------------
# (c) Latent Shift as the input counterfactual, and its relative change with a colour classifier

def _as_images(X, autoencoder, name="X_points") -> np.ndarray:
    """Rows of ``X`` (flattened or not) reshaped to the autoencoder's per-input shape, float64."""
    X = np.asarray(X, np.float64)
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"{name} must be a non-empty (k, ...) array; got shape {X.shape}.")
    shape = tuple(getattr(autoencoder, "input_shape_", X.shape[1:]))
    if int(np.prod(X.shape[1:])) != int(np.prod(shape)):
        raise ValueError(f"{name} has {int(np.prod(X.shape[1:]))} values per input but the autoencoder was fitted on "
                         f"inputs of shape {shape}; pass the same images (flattened or not).")
    return X.reshape(len(X), *shape)


def _ls_options(options):
    kw = dict(DIGIT_LS, device="cpu", dtype=torch.float64, n_frames=2)
    if options is not None:
        if not isinstance(options, dict):
            raise TypeError(f"ls_options must be a dict of latent_shift() keyword arguments; got {type(options).__name__}.")
        kw.update(options)
    return kw


def latent_shift_counterfactual(autoencoder, **ls_options):
    """A ``counterfactual(model, X) -> X_cf`` callable for :func:`input_counterfactual_bridge`: Latent Shift.

    For each row the base classifier is ``P_model(predicted class | x)`` of the ReLU network (so the search
    removes the prediction); settings default to :data:`cfdkit.spurious.alignment.DIGIT_LS` on CPU in float64.

    Parameters
    ----------
    autoencoder : fitted :class:`~cfdkit.spurious.autoencoder.Autoencoder` (or any encode/decode object with
        ``input_shape_``), trained on randomly coloured digits
    **ls_options : passed to :func:`~cfdkit.spurious.latent_shift.latent_shift`

    Returns
    -------
    callable ``(model, X (k, ...)) -> X_cf`` of ``X``'s shape (counterfactuals ``D(z_λ)``)
    """
    check_autoencoder(autoencoder)
    kw = _ls_options(ls_options)

    def counterfactual(model, X):
        net = as_relu_net(model)
        Xi = _as_images(X, autoencoder, "X")
        cls = net.predict(Xi.reshape(len(Xi), -1))
        out = np.empty_like(Xi)
        for c in (0, 1):
            sel = np.flatnonzero(cls == c)
            if len(sel):
                out[sel] = latent_shift(ReLUNetProba(net.params, c), autoencoder, Xi[sel], **kw).x_cf
        return out.reshape(np.shape(X))

    return counterfactual


def ls_colour_rc(model, X, autoencoder, colour, classes=None, ls_options=None) -> dict:
    """Does the Latent Shift counterfactual of ``model`` implicate colour?  Relative change (Eq. 3) per input.

    Base classifier ``f_b = P_model(class c | x)``, downstream ``f_1 = P(colour of class c | x)`` (class 1 ↔
    green, ``colour`` returns P(green)): ``RC = [f_1(D(z_λ)) − f_1(D(z_0))] / [f_b(D(z_λ)) − f_b(D(z_0))]``.
    RC ≈ 1: the counterfactual removes the class by removing its colour; ≈ 0: colour untouched; < 0: the
    opposite colour.  For misclassified bias-conflicting digits ``c`` (the prediction) is the digit's own colour.

    Parameters
    ----------
    model : ReLUNet (or its ``nn.Sequential``) on flattened images
    X : (k, ...) images, flattened or of the autoencoder's input shape
    autoencoder : encode/decode object (e.g. :class:`~cfdkit.spurious.autoencoder.Autoencoder`)
    colour : differentiable torch classifier ``x -> P(green) (n,)`` (e.g. ``RobustClassifier.torch_proba()``)
    classes : (k,) int in {0, 1} or None
        The base class per input; None: the model's prediction.  Keep the original prediction when comparing a
        retrained network with the original one.
    ls_options : dict or None, :func:`~cfdkit.spurious.latent_shift.latent_shift` settings (default ``DIGIT_LS``)

    Returns
    -------
    dict with ``rc`` (k,), ``base_change`` (k,) (``f_b`` before − after; keep inputs with > 0.3 as the paper
    does), ``classes`` (k,), ``reason`` (k,) str, ``x_cf`` (counterfactuals, ``X``'s shape)
    """
    net = as_relu_net(model)
    check_autoencoder(autoencoder)
    check_classifier(colour, "colour")
    Xi = _as_images(X, autoencoder, "X")
    k = len(Xi)
    if classes is None:
        classes = net.predict(Xi.reshape(k, -1))
    else:
        classes = np.asarray(classes)
        if classes.shape != (k,) or not np.isin(classes, (0, 1)).all():
            raise ValueError(f"classes must be a (k,) = ({k},) array of 0/1 base classes; got {classes!r}.")
    kw = _ls_options(ls_options)
    rc, bc = np.full(k, np.nan), np.full(k, np.nan)
    reason = np.array([""] * k, dtype=object)
    xcf = np.empty_like(Xi)
    for c in (0, 1):
        sel = np.flatnonzero(classes == c)
        if len(sel) == 0:
            continue
        df, res = cf_alignment(ReLUNetProba(net.params, c), {"colour": ComplementProba(colour, c == 1)}, autoencoder,
                               Xi[sel], **kw)
        rc[sel], bc[sel] = df["rc"].to_numpy(), df["base_change"].to_numpy()
        reason[sel], xcf[sel] = res.reason, res.x_cf
    return {"rc": rc, "base_change": bc, "classes": classes.astype(np.int64), "reason": reason.astype(str),
            "x_cf": xcf.reshape(np.shape(X))}
