"""The counterfactual-alignment studies (Cohen, Blankemeier & Chaudhari): coloured digits, a planted tabular
feature, the bridge to label-flip counterfactual datasets, and the records of ``cfdkit reproduce --only
cf-alignment``.

The methods (Eq. 3, the alignment matrix, rectification, Latent Shift) are in :mod:`cfdkit.spurious.alignment` and
:mod:`cfdkit.spurious.latent_shift`; the paper's numbers in :data:`cfdkit.studies.paper.CF_ALIGNMENT_PAPER`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data import load
from ..data.features import tabular_features
from ..neural import FIXED_STEP_RECIPE, NeuralCFD
from ..spurious.alignment import DIGIT_LS, alignment_matrix, cf_alignment, summarize_rc
from ..spurious.autoencoder import Autoencoder, random_colour_digits
from ..spurious.data import BINARY_COLORS, ColoredDigits, colored_digits, paint
from ..spurious.latent_shift import compose
from ..spurious.nets import ComplementProba, ReLUNetProba
from ..spurious.robust import RobustClassifier, group_metrics
from .paper import CF_ALIGNMENT_PAPER

__all__ = ["DigitSetup", "digit_setup", "robust_comparison", "induced_correlation", "planted_adult",
           "tabular_planted_comparison", "cfd_bridge", "cf_alignment_records", "colour_tools", "PAPER", "DIGIT_LS"]

#: The paper's values the records are compared with (:data:`cfdkit.studies.paper.CF_ALIGNMENT_PAPER`).
PAPER = CF_ALIGNMENT_PAPER


@dataclass
class DigitSetup:
    """Everything the digit study needs: data, autoencoder and reference classifiers.

    Attributes
    ----------
    data : ColoredDigits (binary, the requested rho)
    ae : fitted Autoencoder (trained on randomly coloured training-pool digits)
    colour : RobustClassifier predicting a = green (logistic regression, weight decay 0.1, trained on
        randomly red/green repainted digits)
    unbiased : RobustClassifier for y = digit >= 5 trained on the same unbiased repainting
    X_unbiased, a_unbiased : the repainted training images and their colours
    """

    data: object
    ae: object
    colour: object
    unbiased: object
    X_unbiased: np.ndarray
    a_unbiased: np.ndarray
    config: dict


def _sizes(fast: bool) -> dict:
    # Classifiers get 40 epochs in both presets: trained longer (80), the ERM classifier's logits reach
    # |f| ~ 13-22, σ'(f) ~ 1e-6 makes ∂f_b/∂z vanish, the search then stops on max_lambda (500000) for a
    # quarter of the inputs and RC collapses (0.06 instead of 0.36, measured on 200 test digits): a real
    # limitation of gradient counterfactuals on over-confident classifiers, kept out of the comparison.
    return dict(ae_epochs=40 if fast else 80, ae_n=2000 if fast else 4000, epochs=40,
                n_test=200 if fast else 400, n_bridge=16 if fast else 40)


def digit_setup(rho: float = 0.99, seed: int = 0, fast: bool = False, device=None, data=None) -> DigitSetup:
    """Binary coloured digits at ``rho``, an autoencoder on random colours, colour and unbiased classifiers.

    Parameters
    ----------
    rho : float in (0.5, 1)
    seed : int
    fast : bool (smaller autoencoder training, fewer epochs)
    device : torch device or None
    data : ColoredDigits or None
        Binary coloured digits to use instead of ``colored_digits("binary", rho, seed)`` (e.g.
        :func:`~cfdkit.spurious.data.augmented_colored_digits`); ``rho`` is then taken from ``data``. The
        autoencoder is trained on ``data``'s grey training digits painted in random colours.
    """
    cfg = _sizes(fast)
    if data is None:
        d = colored_digits("binary", rho=rho, seed=seed)
        Xae = random_colour_digits(cfg["ae_n"], seed=seed, index=d.info["train_index"])
    else:
        if not isinstance(data, ColoredDigits) or data.mode != "binary":
            raise TypeError(f"data must be binary ColoredDigits (colored_digits('binary', ...) or "
                            f"augmented_colored_digits(...)); got {type(data).__name__}.")
        d, rho = data, data.rho
        r = np.random.default_rng([seed, 4242])
        pick = r.integers(0, len(d.gray_train), size=cfg["ae_n"])
        Xae = paint(d.gray_train[pick], r.uniform(0.05, 1.0, size=(len(pick), 3)))
    ae = Autoencoder(latent_dim=16, hidden=(128,), epochs=cfg["ae_epochs"], seed=seed, device=device).fit(Xae)
    rng = np.random.default_rng(seed + 1000)
    a_u = rng.integers(0, 2, size=len(d.y_train))
    X_u = paint(d.gray_train, BINARY_COLORS[a_u])
    # logistic regression with weight decay: a soft "greenness" score (logits ~ 3), not a saturated one,
    # so that its probability responds to partial recolouring and Eq. 4's composition has a gradient
    colour = RobustClassifier("erm", hidden=(), weight_decay=0.1, epochs=cfg["epochs"], seed=seed,
                              device=device).fit(X_u, a_u)
    unbiased = RobustClassifier("erm", epochs=cfg["epochs"], seed=seed, device=device).fit(X_u, d.y_train)
    return DigitSetup(data=d, ae=ae, colour=colour, unbiased=unbiased, X_unbiased=X_u, a_unbiased=a_u,
                      config=dict(cfg, rho=rho, seed=seed, fast=fast))


def _method_kwargs(method: str, epochs: int) -> dict:
    return {"erm": {}, "groupdro": {"eta": 0.01, "weight_decay": 1e-3},
            "jtt": {"jtt_epochs": max(2, epochs // 8), "jtt_upweight": 20}, "flac": {"alpha": 2.0}}[method]


def robust_comparison(setup: DigitSetup, methods=("erm", "groupdro", "jtt", "flac"), seed: int = 0,
                      device=None, progress: bool = False) -> pd.DataFrame:
    """Train each method on ``setup.data`` and report RC with the colour classifier, AUC and WGA.

    AUC is computed on the bias-conflicting test digits (colour disagrees with the label), as the
    paper evaluates "inversely correlated" samples; WGA over the four test groups ``2y + a``.
    RC uses the first ``n_test`` test digits (all four groups, balanced colours).

    Returns
    -------
    DataFrame indexed by method: ``rc, rc_se, rc_n, auc, wga, acc``.
    """
    d = setup.data
    ep = setup.config["epochs"]
    f_col = setup.colour.torch_proba()
    bias_train = setup.colour.predict_proba(d.X_train)[:, 1]
    Xt = d.X_test[: setup.config["n_test"]]
    conflicting = d.color_id_test != d.y_test
    rows = {}
    from tqdm.auto import tqdm

    for m in tqdm(methods, disable=not progress, desc="methods", leave=False):
        clf = RobustClassifier(m, epochs=ep, seed=seed, device=device, **_method_kwargs(m, ep))
        clf.fit(d.X_train, d.y_train, groups=d.groups_train, bias=bias_train)
        met = group_metrics(clf.predict_proba(d.X_test)[:, 1], d.y_test, d.groups_test, auc_mask=conflicting)
        df, _ = cf_alignment(clf.torch_proba(), {"colour": f_col}, setup.ae, Xt, device=device, **DIGIT_LS)
        mu, se, n = summarize_rc(df["rc"], df["base_change"])
        rows[m] = {"rc": mu, "rc_se": se, "rc_n": n, "auc": met["auc"], "wga": met["wga"], "acc": met["acc"]}
    return pd.DataFrame(rows).T


def induced_correlation(setup: DigitSetup, biased=None, device=None) -> pd.DataFrame:
    """RC with the colour classifier for the unbiased classifier, an ERM classifier trained on the biased
    data (``biased``, trained here if None) and the Eq. 4 composition ``σ(f_unbiased) + 0.3 σ(f_colour)``.

    Returns
    -------
    DataFrame indexed by ``unbiased, biased, composed``: ``rc, rc_se, rc_n``.
    """
    d = setup.data
    if biased is None:
        biased = RobustClassifier("erm", epochs=setup.config["epochs"], seed=setup.config["seed"],
                                  device=device).fit(d.X_train, d.y_train)
    f_col = setup.colour.torch_proba()
    bases = {"unbiased": setup.unbiased.torch_proba(), "biased": biased.torch_proba(),
             "composed": compose([(setup.unbiased.torch_proba(), 1.0), (f_col, 0.3)])}
    M = alignment_matrix(bases, {"colour": f_col}, setup.ae, d.X_test[: setup.config["n_test"]], device=device,
                         **DIGIT_LS)
    return pd.DataFrame({"rc": M.mean["colour"], "rc_se": M.stderr["colour"], "rc_n": M.n["colour"]})


# ---------------------------------------------------------------------------------------------
# planted feature on a tabular set (Adult)

def planted_adult(rho: float = 0.95, n_train: int = 3000, n_test: int = 2000, seed: int = 0):
    """Adult (``cfdkit.data.load('adult')``) features plus a planted binary column ``s``.

    In training ``P(s = y) = rho``; in the test subset ``s`` is drawn independently of ``y`` (fair coin).
    The column is coded ±1 and appended last.  Groups ``g = 2y + s``.

    Returns
    -------
    dict with X_train, y_train, s_train, g_train, X_test, y_test, s_test, g_test, X_indep (training rows
    with an independent ``s``, for the autoencoder and the spurious classifier), s_indep.
    """
    ds = load("adult")
    Xtr, Xte, _ = tabular_features(ds)
    rng = np.random.default_rng(seed)
    itr = rng.choice(len(Xtr), size=min(n_train, len(Xtr)), replace=False)
    ite = rng.choice(len(Xte), size=min(n_test, len(Xte)), replace=False)
    ytr, yte = ds.y_train[itr], ds.y_test[ite]
    s_tr = np.where(rng.random(len(itr)) < rho, ytr, 1 - ytr)
    s_te = rng.integers(0, 2, size=len(ite))
    s_in = rng.integers(0, 2, size=len(itr))
    add = lambda X, s: np.c_[X, 2.0 * s - 1.0]  # noqa: E731
    return dict(X_train=add(Xtr[itr], s_tr), y_train=ytr, s_train=s_tr, g_train=2 * ytr + s_tr,
                X_test=add(Xte[ite], s_te), y_test=yte, s_test=s_te, g_test=2 * yte + s_te,
                X_indep=add(Xtr[itr], s_in), s_indep=s_in)


def tabular_planted_comparison(rho: float = 0.95, seed: int = 0, fast: bool = False, device=None,
                               methods=("erm", "groupdro", "jtt", "flac")) -> pd.DataFrame:
    """The robust-training comparison on Adult with a planted spurious column.

    The autoencoder (linear output) and the spurious classifier (predicts ``s``) are trained on the
    training rows with an independent ``s``.  Latent Shift's pixel rule is set to 1.0 (a budget on
    Σ|Δx| relative to Σ|x| has no meaning for standardised features; it is kept loose).

    Returns
    -------
    DataFrame indexed by method: ``rc, rc_se, rc_n, auc, wga, acc``.
    """
    D = planted_adult(rho=rho, n_train=2000 if fast else 4000, n_test=1000 if fast else 2000, seed=seed)
    ep = 20 if fast else 40
    ae = Autoencoder(latent_dim=16, hidden=(64,), output="linear", epochs=ep * 2, seed=seed,
                     device=device).fit(D["X_indep"])
    spur = RobustClassifier("erm", epochs=ep, seed=seed, device=device).fit(D["X_indep"], D["s_indep"])
    f_s = spur.torch_proba()
    bias_train = spur.predict_proba(D["X_train"])[:, 1]
    conflicting = D["s_test"] != D["y_test"]
    ls = dict(DIGIT_LS, max_pixel_frac=1.0)
    rows = {}
    for m in methods:
        clf = RobustClassifier(m, epochs=ep, seed=seed, device=device, **_method_kwargs(m, ep))
        clf.fit(D["X_train"], D["y_train"], groups=D["g_train"], bias=bias_train)
        met = group_metrics(clf.predict_proba(D["X_test"])[:, 1], D["y_test"], D["g_test"], auc_mask=conflicting)
        df, _ = cf_alignment(clf.torch_proba(), {"spurious": f_s}, ae, D["X_test"][: (300 if fast else 600)],
                             device=device, **ls)
        mu, se, n = summarize_rc(df["rc"], df["base_change"])
        rows[m] = {"rc": mu, "rc_se": se, "rc_n": n, "auc": met["auc"], "wga": met["wga"], "acc": met["acc"]}
    return pd.DataFrame(rows).T


# ---------------------------------------------------------------------------------------------
# the bridge to counterfactual datasets

def cfd_bridge(rho: float = 0.95, seed: int = 0, fast: bool = False, setup: DigitSetup | None = None,
               budget: int = 10, device=None) -> tuple[pd.DataFrame, dict]:
    """Label-flip counterfactual datasets (``NeuralCFD``) beside Latent Shift for the same test digits.

    A ``cfdkit.neural.NeuralCFD`` ReLU network (hidden (8, 8)) is trained on the flattened binary
    digits at ``rho``.  For bias-conflicting test digits (colour disagrees with the label):

    * the **CFD** (Algorithm 1, ``budget`` flips, ψ = same label as the prediction) -- its share of
      bias-aligned training points (a = y) and of points in the test digit's colour, against the
      same shares in the candidate pool;
    * **Latent Shift** on the same network (base: P(predicted class)) with downstream
      P(the test digit's own colour) from the colour classifier: RC > 0 means the counterfactual
      removes the prediction by removing the colour.

    Returns
    -------
    frame : DataFrame, one row per test digit
    summary : dict with ``cfd_found``, ``cfd_bias_aligned_share``, ``pool_bias_aligned_share``,
        ``cfd_same_colour_share``, ``pool_same_colour_share``, ``ls_rc_own_colour`` (mean over kept
        inputs), ``ls_n``, ``both_implicate_colour`` (share of digits with a CFD where both do)
    """
    if setup is None:
        setup = digit_setup(rho=rho, seed=seed, fast=fast, device=device)
    d = setup.data
    Xtr = d.X_train.reshape(len(d.X_train), -1).astype(np.float64)
    Xte = d.X_test.reshape(len(d.X_test), -1).astype(np.float64)
    conf = np.flatnonzero(d.color_id_test != d.y_test)[: setup.config["n_bridge"]]
    cfd = NeuralCFD(hidden=(8, 8), budget=budget, seed=seed, epochs=300, progress=False, num_threads=1,
                    device="cpu", **FIXED_STEP_RECIPE).fit(Xtr, d.y_train)   # recipe of its recorded numbers
    res = cfd.search(Xte[conf])
    pred = (res.logit > 0).astype(np.int64)
    a_tr, y_tr = d.color_id_train, d.y_train
    rows = []
    for j, t in enumerate(conf):
        cand = np.flatnonzero(y_tr == pred[j])
        flips = res.order[j, : res.k[j]] if res.found[j] else np.array([], dtype=np.int64)
        own = d.color_id_test[t]
        rows.append({"test_index": int(t), "y": int(d.y_test[t]), "colour": int(own), "pred": int(pred[j]),
                     "cfd_found": bool(res.found[j]), "cfd_size": int(res.k[j]),
                     "cfd_bias_aligned": float(np.mean(a_tr[flips] == y_tr[flips])) if len(flips) else np.nan,
                     "pool_bias_aligned": float(np.mean(a_tr[cand] == y_tr[cand])),
                     "cfd_same_colour": float(np.mean(a_tr[flips] == own)) if len(flips) else np.nan,
                     "pool_same_colour": float(np.mean(a_tr[cand] == own))})
    frame = pd.DataFrame(rows)
    params = cfd.model_.params
    f_green = setup.colour.torch_proba()
    own_all = d.color_id_test[conf]
    bc, rc = np.full(len(conf), np.nan), np.full(len(conf), np.nan)
    for c in (0, 1):          # base: P(predicted class); downstream: P(own colour); one search per pair
        for a in (0, 1):
            sel = np.flatnonzero((pred == c) & (own_all == a))
            if len(sel) == 0:
                continue
            df, _ = cf_alignment(ReLUNetProba(params, c), {"own_colour": ComplementProba(f_green, a == 1)}, setup.ae,
                                 d.X_test[conf[sel]], dtype=torch.float64, device="cpu", **DIGIT_LS)
            bc[sel], rc[sel] = df["base_change"].to_numpy(), df["rc"].to_numpy()
    frame["ls_base_change"] = bc
    frame["ls_rc_own_colour"] = rc
    df = frame.rename(columns={"ls_base_change": "base_change", "ls_rc_own_colour": "rc"})
    mu, se, n = summarize_rc(df["rc"], df["base_change"])
    f = frame[frame["cfd_found"]]
    kept = f["ls_base_change"] > 0.3
    both = ((f["cfd_same_colour"] > f["pool_same_colour"]) & kept & (f["ls_rc_own_colour"] > 0.3))
    summary = {"n_test": int(len(frame)), "cfd_found": float(frame["cfd_found"].mean()),
               "cfd_bias_aligned_share": float(f["cfd_bias_aligned"].mean()) if len(f) else float("nan"),
               "pool_bias_aligned_share": float(frame["pool_bias_aligned"].mean()),
               "cfd_same_colour_share": float(f["cfd_same_colour"].mean()) if len(f) else float("nan"),
               "pool_same_colour_share": float(frame["pool_same_colour"].mean()),
               "ls_rc_own_colour": mu, "ls_rc_own_colour_se": se, "ls_n": n,
               "both_implicate_colour": float(both[kept].mean()) if kept.any() else float("nan")}
    return frame, summary


# ---------------------------------------------------------------------------------------------
# records for `cfdkit reproduce --only cf-alignment`

def _rec(dataset, features, metric, value, paper=None):
    return {"study": "cf-alignment", "dataset": dataset, "features": features, "metric": metric,
            "paper": paper, "cfdkit": float(value)}


def cf_alignment_records(fast: bool, seed: int = 0, progress: bool = False) -> list[dict]:
    """Run the CF-alignment study and return flat records.

    Metrics (dataset ``colored-digits-rho0.99`` unless noted): ``rc_unbiased``, ``rc_biased``,
    ``rc_composed``; for each method in erm/groupdro/jtt/flac ``rc_<m>``, ``auc_<m>``, ``wga_<m>``
    (also on ``colored-digits-rho0.95`` and ``adult-planted-rho0.95``, with ``paper`` None); the bridge
    (``colored-digits-rho0.95``): ``cfd_bias_aligned_share``, ``pool_bias_aligned_share``,
    ``cfd_same_colour_share``, ``pool_same_colour_share``, ``ls_rc_own_colour``,
    ``both_implicate_colour``.  ``paper`` holds the paper's counterpart (:data:`PAPER`): Fig. 4 for
    the composition, Table 1 (Waterbirds) for ERM/GroupDRO/JTT, Table 3 (alpha = 30000) for FLAC.
    """
    if not isinstance(fast, bool):
        raise TypeError(f"fast must be a bool; got {fast!r}.")
    torch.manual_seed(seed)
    recs = []
    feats = "pixels (3x8x8), MLP AE latent 16"
    for rho in (0.99, 0.95):
        ds = f"colored-digits-rho{rho}"
        setup = digit_setup(rho=rho, seed=seed, fast=fast)
        comp = robust_comparison(setup, seed=seed, progress=progress)
        if rho == 0.99:
            ind = induced_correlation(setup)
            for k in ("unbiased", "biased", "composed"):
                recs.append(_rec(ds, feats, f"rc_{k}", ind.loc[k, "rc"], PAPER[f"rc_{k}"]))
        for m in comp.index:
            for met in ("rc", "auc", "wga"):
                p = PAPER.get(f"{met}_{m}") if rho == 0.99 else None
                recs.append(_rec(ds, feats, f"{met}_{m}", comp.loc[m, met], p))
        if rho == 0.95:
            _, summ = cfd_bridge(rho=rho, seed=seed, setup=setup)
            for k in ("cfd_bias_aligned_share", "pool_bias_aligned_share", "cfd_same_colour_share",
                      "pool_same_colour_share", "ls_rc_own_colour", "both_implicate_colour"):
                recs.append(_rec(ds, "flattened pixels, NeuralCFD (8, 8)", k, summ[k]))
    tab = tabular_planted_comparison(rho=0.95, seed=seed, fast=fast)
    for m in tab.index:
        for met in ("rc", "auc", "wga"):
            recs.append(_rec("adult-planted-rho0.95", "one-hot + standardised + planted column", f"{met}_{m}",
                             tab.loc[m, met]))
    return recs


def colour_tools(data, seed: int = 0, fast: bool = False, device="cpu"):
    """The autoencoder and colour classifier of the CF-alignment digit setup, for a bridge data set.

    As :func:`digit_setup`: an :class:`~cfdkit.spurious.autoencoder.Autoencoder`
    (latent 16, hidden 128) on randomly coloured training-pool digits, and a logistic regression (weight decay
    0.1) predicting green on the training digits repainted red/green at random.

    Parameters
    ----------
    data : binary ``ColoredDigits`` (``colored_digits('binary', ...)``)

    Returns
    -------
    (autoencoder, colour) -- ``colour`` a differentiable torch ``x -> P(green)``
    """
    cfg = _sizes(fast)
    Xae = random_colour_digits(cfg["ae_n"], seed=seed, index=data.info["train_index"])
    ae = Autoencoder(latent_dim=16, hidden=(128,), epochs=cfg["ae_epochs"], seed=seed, device=device).fit(Xae)
    a_u = np.random.default_rng(seed + 1000).integers(0, 2, size=len(data.y_train))
    colour = RobustClassifier("erm", hidden=(), weight_decay=0.1, epochs=cfg["epochs"], seed=seed,
                              device=device).fit(paint(data.gray_train, BINARY_COLORS[a_u]), a_u)
    return ae, colour.torch_proba()
