"""``SpuriousExplorer``: is this digit classifier colour-biased, can its weights tell, and can it be fixed?

Built on an :class:`cfdkit.studies.ifbid.IFBiDResult` (``cfdkit.studies.ifbid.run_ifbid``), public API only. Pick a bias
level (colour-jitter variance) and one held-out model of the zoo and see

* its unbiased test accuracy and colour-score (Sialelli et al., Alg. 1),
* the test digits it gets wrong when they are painted in another class's colour,
* what the weight-reading detectors say about its bias level, and which layer the FGSM / GM step blames,
* the same numbers after a mitigation (reset, dropout, fine-tune, the step itself), applied live.

The logic lives in small pure functions (:func:`member_summary`, :func:`wrong_digits`,
:func:`apply_mitigation`, :func:`digits_figure`), tested on their own. Bad selections give a readable message
(:class:`~cfdkit_widgets.flip.ExplorerError`).
"""
from __future__ import annotations

import html

import numpy as np

from .flip import ExplorerError

__all__ = ["SpuriousExplorer", "member_summary", "wrong_digits", "apply_mitigation", "digits_figure",
           "summary_html"]


def _level_name(s2):
    from cfdkit.spurious import BIAS_LEVEL_NAMES, SIGMA2_LEVELS

    for s, n in zip(SIGMA2_LEVELS, BIAS_LEVEL_NAMES):
        if np.isclose(s, s2):
            return f"{n} bias"
    return "custom"


def _check_member(res, i):
    n = len(res.zoo_test)
    if not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
        raise ExplorerError(f"model {i!r} is not in the held-out zoo; pick 0..{n - 1}.")
    return int(i)


def member_summary(res, i: int, zoo=None, dropout=None, localisation: str = "gm") -> dict:
    """Numbers for held-out model ``i`` (of ``zoo``, default ``res.zoo_test``): accuracy, colour-score, detector
    verdicts and blamed layer."""
    from cfdkit.spurious import BIAS_LEVEL_NAMES, bias_report

    i = _check_member(res, i)
    z = (zoo if zoo is not None else res.zoo_test).subset([i])
    drop = None if dropout is None else {k: np.asarray(v)[[i]] for k, v in dropout.items()}
    rep = bias_report(z, res.data, n_images=res.config.n_images, seed=0, dropout=drop).iloc[0]
    verdicts = {}
    for kind in ("stats", "conv1x1_dense", "pca_knn"):
        det = res.fitted.get(kind)
        if det is not None:
            p = det.predict_proba(z)[0]
            verdicts[kind] = (BIAS_LEVEL_NAMES[int(det.classes_[p.argmax()])], float(p.max()))
    loc = res.localisation[localisation]
    return {"model": i, "sigma2": float(res.zoo_test.sigma2[i]), "true_level": _level_name(res.zoo_test.sigma2[i]),
            "accuracy": float(rep.accuracy), "aligned_accuracy": float(rep.aligned_accuracy),
            "conflicting_accuracy": float(rep.conflicting_accuracy), "color_score": float(rep.color_score),
            "verdicts": verdicts, "blamed_layer": str(loc["most_biased"][i]),
            "layer_scores": loc["layer_score"].iloc[i].to_dict()}


def wrong_digits(res, i: int, zoo=None, max_n: int = 12, dropout=None):
    """Test digits model ``i`` misclassifies although only their colour is off (colour of another class).

    Returns
    -------
    images : ndarray (k, H, W, 3) in [0, 1]; true : (k,); predicted : (k,); colour_class : (k,)
    """
    i = _check_member(res, i)
    z = (zoo if zoo is not None else res.zoo_test).subset([i])
    drop = None if dropout is None else {k: np.asarray(v)[[i]] for k, v in dropout.items()}
    d = res.data
    pred = z.predict_proba(d.X_test, dropout=drop, seed=0)[0].argmax(-1).cpu().numpy()
    sel = np.flatnonzero((pred != d.y_test) & (d.groups_test == 0))[:int(max_n)]
    return d.X_test[sel].transpose(0, 2, 3, 1), d.y_test[sel], pred[sel], d.color_id_test[sel]


def apply_mitigation(res, i: int, method: str, localisation: str = "gm"):
    """Mitigate held-out model ``i`` only; returns ``(zoo_with_model_i_changed, dropout_or_None)``."""
    from cfdkit.spurious import MITIGATIONS, ModelZoo, mitigate

    i = _check_member(res, i)
    if method not in MITIGATIONS:
        raise ExplorerError(f"mitigation {method!r} is unknown; pick one of {MITIGATIONS}.")
    if localisation not in res.localisation:
        raise ExplorerError(f"localisation {localisation!r} is unknown; pick one of {tuple(res.localisation)}.")
    new, drop = mitigate(res.zoo_test, res.localisation[localisation], method, data=res.data, seed=0)
    keep = np.arange(len(res.zoo_test)) == i
    params = {k: torch_where(keep, new.params[k], res.zoo_test.params[k]) for k in new.params}
    if drop is not None:
        drop = {k: np.where(keep, v, 0.0) for k, v in drop.items()}
    return ModelZoo(res.zoo_test.spec, params, res.zoo_test.meta, res.zoo_test.settings), drop


def torch_where(mask, a, b):
    import torch

    m = torch.as_tensor(mask, device=a.device).reshape(-1, *([1] * (a.dim() - 1)))
    return torch.where(m, a, b)


def summary_html(s: dict, before: dict | None = None) -> str:
    """An HTML table of :func:`member_summary` (with a 'before' column when given)."""
    rows = [("true bias level", s["true_level"] + f" (σ² = {s['sigma2']})"),
            ("unbiased test accuracy", "accuracy"), ("bias-aligned / conflicting accuracy", None),
            ("colour-score", "color_score")]
    out = ["<table><tr><th></th>" + ("<th>before</th>" if before else "") + "<th>now</th></tr>"]
    for label, key in rows:
        if key is None:
            now = f"{s['aligned_accuracy']:.3f} / {s['conflicting_accuracy']:.3f}"
            bef = f"{before['aligned_accuracy']:.3f} / {before['conflicting_accuracy']:.3f}" if before else ""
        elif key in s and isinstance(s[key], float):
            now = f"{s[key]:.3f}"
            bef = f"{before[key]:.3f}" if before else ""
        else:
            now, bef = html.escape(key), html.escape(key) if before else ""
        out.append(f"<tr><td>{html.escape(label)}</td>" + (f"<td>{bef}</td>" if before else "") + f"<td>{now}</td></tr>")
    for kind, (lvl, p) in s["verdicts"].items():
        out.append(f"<tr><td>detector {html.escape(kind)} says</td>" + ("<td></td>" if before else "")
                   + f"<td>{html.escape(lvl)} bias (p = {p:.2f})</td></tr>")
    out.append("<tr><td>layer blamed by the weight step</td>" + ("<td></td>" if before else "")
               + f"<td>{html.escape(s['blamed_layer'])}</td></tr></table>")
    return "".join(out)


def digits_figure(images, true, pred, colour_class, ncols: int = 6):
    """A matplotlib figure of misclassified digits, titled 'true→pred (colour of c)'."""
    import matplotlib.pyplot as plt

    n = max(len(images), 1)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.6 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, ax in enumerate(axes.ravel()[:len(images)]):
        ax.imshow(np.clip(images[k], 0, 1), interpolation="nearest")
        ax.set_title(f"{true[k]}→{pred[k]} (c{colour_class[k]})", fontsize=8)
    if len(images) == 0:
        axes[0, 0].text(0.5, 0.5, "no colour-induced errors", ha="center", va="center")
    fig.tight_layout()
    return fig


class SpuriousExplorer:
    """Pick a bias level and a held-out model; see its bias, the detectors' verdict, and mitigate it live.

    Parameters
    ----------
    result : cfdkit.studies.ifbid.IFBiDResult
        From ``cfdkit.spurious.run_ifbid(fast=True)`` (or any size).

    Attributes
    ----------
    level, model, localisation, mitigation, apply_button, info, figure, message, widget
    """

    def __init__(self, result):
        import ipywidgets as W

        self.res = result
        s2 = sorted(set(np.round(result.zoo_test.sigma2, 6).tolist()))
        self.level = W.Dropdown(options=[(f"σ² = {s} ({_level_name(s)})", s) for s in s2], value=s2[0],
                                description="bias level")
        self.model = W.Dropdown(options=[], description="model")
        self.localisation = W.Dropdown(options=[("GM", "gm"), ("FGSM", "fgsm")], value="gm", description="localise")
        from cfdkit.spurious import MITIGATIONS

        self.mitigation = W.Dropdown(options=list(MITIGATIONS), value="finetune", description="mitigation")
        self.apply_button = W.Button(description="Apply mitigation", button_style="primary")
        self.message = W.HTML()
        self.info = W.HTML()
        self.figure = W.Output()
        self.widget = W.VBox([
            W.HTML("<b>SpuriousExplorer</b> — colour bias in a digit CNN, read from its weights"),
            W.HBox([self.level, self.model]), W.HBox([self.localisation, self.mitigation, self.apply_button]),
            self.message, self.info, self.figure])
        self.last: dict | None = None
        self.level.observe(lambda ch: self._fill_models(), names="value")
        self.model.observe(lambda ch: self.select(), names="value")
        self.localisation.observe(lambda ch: self.select(), names="value")
        self.apply_button.on_click(lambda b: self.apply())
        self._fill_models()

    def _fill_models(self):
        idx = np.flatnonzero(np.isclose(self.res.zoo_test.sigma2, self.level.value))
        self.model.options = [(f"model {int(i)}", int(i)) for i in idx]
        if len(idx):
            self.model.value = int(idx[0])
        self.select()

    def _show(self, s, before=None, zoo=None, dropout=None):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.info.value = summary_html(s, before)
        self.figure.clear_output(wait=True)
        with self.figure:
            fig = digits_figure(*wrong_digits(self.res, s["model"], zoo=zoo, dropout=dropout))
            display(fig)
            plt.close(fig)

    def select(self):
        """Show the chosen model as trained."""
        if self.model.value is None:
            return
        try:
            self.last = member_summary(self.res, self.model.value, localisation=self.localisation.value)
            self.message.value = ""
            self._show(self.last)
        except ExplorerError as e:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"

    def apply(self):
        """Apply the chosen mitigation to the chosen model and show before / after."""
        try:
            zoo, drop = apply_mitigation(self.res, self.model.value, self.mitigation.value, self.localisation.value)
            after = member_summary(self.res, self.model.value, zoo=zoo, dropout=drop,
                                   localisation=self.localisation.value)
            self.message.value = f"after <b>{html.escape(self.mitigation.value)}</b> " \
                                 f"({html.escape(self.localisation.value.upper())} localisation)"
            self._show(after, before=self.last, zoo=zoo, dropout=drop)
            self.after = after
        except ExplorerError as e:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
