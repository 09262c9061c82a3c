"""``NeuronTuneExplorer``: which neurons carry the colour bias, and what the labels and the inputs say about it.

Built only on the public cfdkit API (:mod:`cfdkit.spurious.neurontune`, :mod:`cfdkit.spurious.bridge`,
:mod:`cfdkit.spurious.data`, :class:`cfdkit.neural.NeuralCFD`).  For a ReLU network trained on binary coloured
digits (red/green correlated with digit ≥ 5) it shows

* per class, the spuriousness score δ of every neuron of the last hidden layer as a bar chart, with the neurons
  flagged at the chosen λ and rule,
* worst-group and mean accuracy of ERM, NeuronTune and its two controls (no mask, random mask),
* for a chosen misclassified bias-conflicting test point: its counterfactual dataset (which training labels flip
  it), its activation on the flagged neurons, and — if a counterfactual callable is given (Latent Shift lives on
  another branch) — the input counterfactual next to the original.

Everything shown comes from small pure functions tested on their own: :func:`prepare_state`, :func:`flag_table`,
:func:`delta_figure`, :func:`accuracy_table`, :func:`point_view`.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["NeuronTuneExplorer", "ExplorerState", "prepare_state", "flag_table", "delta_figure", "accuracy_table",
           "point_view"]


@dataclass
class ExplorerState:
    """Data, network, identification result and candidate test points shared by the views."""

    data: object
    cfd: object
    X_train: np.ndarray
    X_ide: np.ndarray
    y_ide: np.ndarray
    X_tune: np.ndarray
    y_tune: np.ndarray
    X_test: np.ndarray
    base: object           # NeuronTune identified at λ = 0 (δ does not depend on λ or rule)
    points: np.ndarray     # indices of misclassified bias-conflicting test points


def prepare_state(rho=0.95, seed=0, n_train=400, hidden=(16, 16), epochs=300, budget=8) -> ExplorerState:
    """Train the ReLU network (``NeuralCFD``) on flattened binary coloured digits and identify δ on half of the
    validation set."""
    import torch

    from cfdkit.neural import FIXED_STEP_RECIPE, NeuralCFD
    from cfdkit.spurious.bridge import flatten_digits
    from cfdkit.spurious.data import colored_digits
    from cfdkit.spurious.neurontune import NeuronTune
    from cfdkit.studies.neurontune import halves

    d = colored_digits("binary", rho=rho, seed=seed, n_train=n_train)
    Xtr, Xv, Xte = flatten_digits(d.X_train), flatten_digits(d.X_val), flatten_digits(d.X_test)
    cfd = NeuralCFD(hidden=hidden, budget=budget, seed=seed, epochs=epochs, progress=False, num_threads=1,
                    dtype=torch.float32, **FIXED_STEP_RECIPE).fit(Xtr, d.y_train)
    h1, _ = halves(len(d.y_val), seed)
    base = NeuronTune(cfd.model_, rule="any").identify(Xv[h1], d.y_val[h1])
    pred = cfd.model_.predict(Xte)
    pts = np.flatnonzero((pred != d.y_test) & (d.color_id_test != d.y_test))
    return ExplorerState(d, cfd, Xtr, Xv[h1], d.y_val[h1], Xtr, d.y_train, Xte, base, pts)


def flag_table(delta, lam=0.0, rule="any") -> pd.DataFrame:
    """One row per neuron: δ per class, the rule's score and whether it is flagged at λ."""
    from cfdkit.spurious.neurontune import flag_neurons, neuron_scores

    delta = np.asarray(delta, float)
    df = pd.DataFrame({f"delta_class{c}": delta[c] for c in range(delta.shape[0])})
    df.index.name = "neuron"
    df["score"] = neuron_scores(delta, rule)
    df["flagged"] = flag_neurons(delta, lam, rule)
    return df


def delta_figure(delta, lam=0.0, rule="any"):
    """Bar chart per class of δ for every neuron; flagged neurons in red, the λ line dashed."""
    import matplotlib.pyplot as plt

    t = flag_table(delta, lam, rule)
    C = delta.shape[0]
    fig, axes = plt.subplots(C, 1, figsize=(7, 1.9 * C), sharex=True)
    axes = np.atleast_1d(axes)
    for c, ax in enumerate(axes):
        ax.bar(t.index, t[f"delta_class{c}"], color=np.where(t["flagged"], "tab:red", "tab:gray"))
        ax.axhline(lam, ls="--", c="k", lw=0.8)
        ax.set_ylabel(f"δ, class {c}")
    axes[-1].set_xlabel(f"neuron (red: flagged, rule={rule!r}, λ={lam:g})")
    fig.tight_layout()
    return fig


def accuracy_table(state: ExplorerState, lam=0.0, rule="any", tune="train", seed=0) -> pd.DataFrame:
    """WGA and mean accuracy on the test set: ERM, NeuronTune, no-mask and random-mask controls."""
    from cfdkit.spurious.neurontune import NeuronTune, worst_group_accuracy
    from cfdkit.studies.neurontune import halves

    d = state.data
    if tune not in ("train", "dagger"):
        raise ValueError(f"tune={tune!r} is unknown; use 'train' (training set) or 'dagger' (other validation half).")
    if tune == "train":
        Xt, yt = state.X_tune, state.y_tune
    else:
        from cfdkit.spurious.bridge import flatten_digits
        _, h2 = halves(len(d.y_val), seed)
        Xt, yt = flatten_digits(d.X_val)[h2], d.y_val[h2]
    rows = []
    p = state.cfd.model_.predict(state.X_test)
    rows.append(("ERM", worst_group_accuracy(p, d.y_test, d.groups_test), float(np.mean(p == d.y_test)), 0))
    for name, neurons in (("NeuronTune", "flagged"), ("control: no mask", "none"), ("control: random mask", "random")):
        nt = NeuronTune(state.cfd.model_, lam=lam, rule=rule, neurons=neurons, seed=seed).fit(
            Xt, yt, state.X_ide, state.y_ide)
        p = nt.predict(state.X_test)
        rows.append((name, worst_group_accuracy(p, d.y_test, d.groups_test), float(np.mean(p == d.y_test)),
                     int(nt.masked_.sum())))
    return pd.DataFrame(rows, columns=["model", "worst-group acc", "mean acc", "masked neurons"])


def point_view(state: ExplorerState, i: int, lam=0.0, rule="any", ranking="combined", counterfactual=None) -> dict:
    """For test point ``i`` (an index into ``state.points``): its CFD, its flagged-neuron activations and (if
    ``counterfactual`` is given) the input counterfactual.

    Returns
    -------
    dict with ``test_index``, ``label``, ``colour``, ``prediction``, ``cfd`` (training indices), ``cfd_found``,
    ``cfd_colours`` (colour ids of the flipped training digits), ``flagged`` (neuron indices),
    ``activation_flagged`` (the point's activation on them), ``counterfactual`` (image (3, H, W) or None),
    ``counterfactual_prediction``.
    """
    from cfdkit.spurious.neurontune import flag_neurons, split_model

    if not len(state.points):
        raise ValueError("there is no misclassified bias-conflicting test point for this network.")
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not (0 <= i < len(state.points)):
        raise ValueError(f"point index i={i!r} must be an int in [0, {len(state.points)}).")
    t = int(state.points[i])
    d = state.data
    flagged = flag_neurons(state.base.delta_, lam, rule)
    opts = {"neurons": np.flatnonzero(flagged)} if flagged.any() else {}
    if ranking == "neurontune_activation" and not flagged.any():
        raise ValueError("no neuron is flagged at this λ and rule; the neurontune_activation ranking needs some.")
    state.cfd.ranking_options = opts
    res = state.cfd.search(state.X_test[[t]], ranking=ranking)
    flips = res.indices(0)
    sm = split_model(state.cfd.model_)
    v = sm.embed(state.X_test[[t]])[0]
    out = {"test_index": t, "label": int(d.y_test[t]), "colour": "red" if d.color_id_test[t] == 0 else "green",
           "prediction": int(state.cfd.model_.predict(state.X_test[[t]])[0]), "cfd": flips.tolist(),
           "cfd_found": bool(res.found[0]), "cfd_colours": ["red" if c == 0 else "green" for c in d.color_id_train[flips]],
           "flagged": np.flatnonzero(flagged).tolist(), "activation_flagged": v[flagged].tolist(),
           "counterfactual": None, "counterfactual_prediction": None}
    if counterfactual is not None:
        xcf = np.asarray(counterfactual(state.cfd.model_, state.X_test[[t]]))
        out["counterfactual"] = xcf.reshape(d.X_test.shape[1:])
        out["counterfactual_prediction"] = int(state.cfd.model_.predict(xcf.reshape(1, -1))[0])
    return out


class NeuronTuneExplorer:
    """ipywidgets view: λ slider, rule and tuning-set choice, test point; δ bars, accuracies, CFD/neurons/CF.

    Parameters
    ----------
    state : ExplorerState or None (built with :func:`prepare_state` defaults)
    counterfactual : callable ``(model, X) -> X_cf`` or None
        An input counterfactual (e.g. Latent Shift from ``cfdkit.spurious.latent_shift``, another branch).
    """

    def __init__(self, state: ExplorerState | None = None, counterfactual=None):
        import ipywidgets as w

        self.state = prepare_state() if state is None else state
        self.counterfactual = counterfactual
        top = float(np.nanmax(np.abs(self.state.base.delta_))) if np.isfinite(self.state.base.delta_).any() else 1.0
        self.lam = w.FloatSlider(value=0.0, min=0.0, max=round(top, 2), step=round(top / 50, 3) or 0.01,
                                 description="λ")
        self.rule = w.ToggleButtons(options=["any", "all"], value="any", description="rule")
        self.tune = w.ToggleButtons(options=["train", "dagger"], value="train", description="tune on")
        self.point = w.IntSlider(value=0, min=0, max=max(0, len(self.state.points) - 1), description="test point")
        self.run = w.Button(description="CFD for this point")
        self.out_delta, self.out_acc, self.out_point = w.Output(), w.Output(), w.Output()
        self.lam.observe(lambda _: self._refresh(), names="value")
        self.rule.observe(lambda _: self._refresh(), names="value")
        self.tune.observe(lambda _: self._refresh(), names="value")
        self.run.on_click(lambda _: self._show_point())
        self.widget = w.VBox([w.HBox([self.lam, self.rule, self.tune]), self.out_delta, self.out_acc,
                              w.HBox([self.point, self.run]), self.out_point])
        self._refresh()

    def _refresh(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.out_delta.clear_output(wait=True)
        with self.out_delta:
            fig = delta_figure(self.state.base.delta_, self.lam.value, self.rule.value)
            display(fig)
            plt.close(fig)
        self.out_acc.clear_output(wait=True)
        with self.out_acc:
            display(accuracy_table(self.state, self.lam.value, self.rule.value, self.tune.value).round(3))

    def _show_point(self):
        import matplotlib.pyplot as plt
        from IPython.display import HTML, display

        self.out_point.clear_output(wait=True)
        with self.out_point:
            try:
                pv = point_view(self.state, self.point.value, self.lam.value, self.rule.value,
                                counterfactual=self.counterfactual)
            except ValueError as e:
                display(HTML(f"<b>{html.escape(str(e))}</b>"))
                return
            d = self.state.data
            n = 2 + min(4, len(pv["cfd"]))
            fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 1.9))
            axes[0].imshow(d.X_test[pv["test_index"]].transpose(1, 2, 0))
            axes[0].set_title(f"test y={pv['label']} pred={pv['prediction']}", fontsize=7)
            if pv["counterfactual"] is not None:
                axes[1].imshow(np.clip(pv["counterfactual"].transpose(1, 2, 0), 0, 1))
                axes[1].set_title(f"input CF pred={pv['counterfactual_prediction']}", fontsize=7)
            else:
                axes[1].text(0.5, 0.5, "Latent Shift:\nnot on this\nbranch", ha="center", va="center", fontsize=7)
            for ax, j in zip(axes[2:], pv["cfd"]):
                ax.imshow(d.X_train[j].transpose(1, 2, 0))
                ax.set_title(f"flip train {j} (y={d.y_train[j]})", fontsize=7)
            for ax in axes:
                ax.axis("off")
            display(fig)
            plt.close(fig)
            act = ", ".join(f"{k}:{a:.2f}" for k, a in zip(pv["flagged"], pv["activation_flagged"]))
            display(HTML(f"CFD found: {pv['cfd_found']} ({len(pv['cfd'])} labels, colours {pv['cfd_colours']})<br>"
                         f"activation on flagged neurons: {html.escape(act) or 'none flagged'}"))
