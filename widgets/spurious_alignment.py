"""``AlignmentExplorer``: watch a Latent Shift counterfactual morph and read CF alignment off it.

Cohen, Blankemeier & Chaudhari (TMLR), Figure 1: an image is encoded, its code is moved against the
base classifier's gradient, and the decoded frames are shown to the base and the downstream
classifiers; plotting the downstream outputs against the base output shows whether they move together
(relative change, Eq. 3).  The explorer shows, for a chosen test digit and base classifier,

* the frames from the reconstruction to the counterfactual (a frame slider),
* every classifier's output along the frames, against the base output (the paper's alignment plot),
  with the relative change of each downstream classifier,
* the alignment matrix (mean relative change, kept inputs only) of all classifiers given.

A search that stops at λ = 0 (every frame is the reconstruction) has no counterfactual: the explorer says so
("no counterfactual (search stopped at λ = 0)") and shows no relative change, because Eq. 3's tie rule would
read 0 = 0 as RC = 1 for every classifier.  Where the base output did not move, or moved less than the
paper's ``base_change_limit`` (0.3), the relative change is labelled as such rather than as an alignment.
The explorer opens on the first digit whose base classifier has a real counterfactual.

Everything shown comes from small pure functions, tested on their own: :func:`check_index`,
:func:`morph`, :func:`morph_table`, :func:`morph_figure`, :func:`matrix_figure`.  They use only the
public ``cfdkit.spurious`` API; bad selections give a readable :class:`ExplorerError`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .flip import ExplorerError
from .neural import check_index as _check_index


def check_index(index, n: int) -> int:
    """A digit index in [0, n) (see :func:`cfdkit_widgets.check_index`)."""
    return _check_index(index, n, "digit")

__all__ = ["AlignmentExplorer", "morph", "morph_table", "morph_figure", "matrix_figure", "rc_reading",
           "first_real_counterfactual", "NO_COUNTERFACTUAL", "BASE_CHANGE_LIMIT"]

#: What the explorer shows instead of a relative change when the search found no counterfactual.
NO_COUNTERFACTUAL = "no counterfactual (search stopped at λ = 0)"
#: The paper's filter: an input counts only when its base prediction fell by more than this.
BASE_CHANGE_LIMIT = 0.3


def rc_reading(m: dict, name: str) -> str:
    """How the explorer reads the relative change of downstream ``name`` in a :func:`morph` result.

    ``"no counterfactual (search stopped at λ = 0)"`` when every frame has λ = 0; ``"no change in the base
    output (RC undefined; the tie rule's 1.00 is not an alignment)"`` when the base output did not move;
    otherwise ``"RC = +0.42"``, followed by ``" (base fell only 0.12 < 0.3: not counted)"`` when the base
    output fell less than :data:`BASE_CHANGE_LIMIT`.
    """
    if m["degenerate"]:
        return NO_COUNTERFACTUAL
    if name == m["base"]:
        return "base"
    bc = m["base_change"]
    if bc == 0:
        return "no change in the base output (RC undefined; the tie rule's 1.00 is not an alignment)"
    txt = f"RC = {m['rc'][name]:+.2f}"
    if not bc > BASE_CHANGE_LIMIT:
        txt += f" (base fell only {bc:.2f} < {BASE_CHANGE_LIMIT}: not counted)"
    return txt


def morph(classifiers: dict, base: str, autoencoder, x, n_frames: int = 8, **latent_shift_kwargs) -> dict:
    """Latent Shift for one input and every classifier's output along the frames.

    Parameters
    ----------
    classifiers : dict name -> torch classifier (x -> (n,) in [0, 1]); ``base`` must be a key
    base : str
    autoencoder : encode/decode object
    x : array of shape (*shape) (one input)
    n_frames : int >= 2

    Returns
    -------
    dict with ``frames`` (n_frames, *shape), ``lambdas`` (n_frames,), ``outputs`` DataFrame
    (frames x classifiers), ``reason`` (the stop rule), ``rc`` {downstream: relative change; NaN when there is
    no counterfactual}, ``degenerate`` (True when every frame has λ = 0: no counterfactual), ``base_change``
    (base output at the reconstruction minus at the counterfactual).
    """
    from cfdkit.spurious.alignment import relative_change
    from cfdkit.spurious.latent_shift import latent_shift, outputs

    if base not in classifiers:
        raise ExplorerError(f"base classifier {base!r} is unknown; choose one of {sorted(classifiers)}.")
    x = np.asarray(x)
    r = latent_shift(classifiers[base], autoencoder, x[None], n_frames=n_frames, **latent_shift_kwargs)
    frames = r.frames[0]
    out = pd.DataFrame({name: outputs(f, frames) for name, f in classifiers.items()})
    lambdas = r.frames_lambda[0]
    degenerate = bool(np.all(lambdas == 0))
    rc = {k: float("nan") if degenerate else
          float(relative_change([out[base].iloc[0]], [out[base].iloc[-1]], [out[k].iloc[0]], [out[k].iloc[-1]])[0])
          for k in classifiers if k != base}
    return {"frames": frames, "lambdas": lambdas, "outputs": out, "reason": str(r.reason[0]),
            "rc": rc, "base": base, "degenerate": degenerate,
            "base_change": float(out[base].iloc[0] - out[base].iloc[-1])}


def first_real_counterfactual(classifier, autoencoder, X, start: int = 0, limit: int = 64,
                              base_change_limit: float = BASE_CHANGE_LIMIT, **latent_shift_kwargs) -> int | None:
    """The first index ``>= start`` (among the next ``limit`` inputs) whose Latent Shift search moves past λ = 0
    and lowers the base output by more than ``base_change_limit``; None if there is none.  One batched search."""
    from cfdkit.spurious.latent_shift import latent_shift

    X = np.asarray(X)
    start = check_index(start, len(X))
    sel = np.arange(start, min(len(X), start + int(limit)))
    kw = dict(latent_shift_kwargs)
    kw["n_frames"] = 2
    r = latent_shift(classifier, autoencoder, X[sel], **kw)
    ok = np.flatnonzero((r.lambda_ > 0) & (r.base_change > base_change_limit))
    return int(sel[ok[0]]) if len(ok) else None


def morph_table(m: dict) -> pd.DataFrame:
    """Outputs at the reconstruction and the counterfactual, their change and the relative change."""
    out = m["outputs"]
    df = pd.DataFrame({"before": out.iloc[0], "after": out.iloc[-1]})
    df["change"] = df["after"] - df["before"]
    df["relative change"] = [np.nan if m["degenerate"] else 1.0 if k == m["base"] else m["rc"][k]
                              for k in df.index]
    df["reading"] = [rc_reading(m, k) for k in df.index]
    return df


def _rgb(img):
    img = np.asarray(img, dtype=float)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)
    return np.clip(img, 0, 1)


def morph_figure(m: dict, frame: int | None = None):
    """Frames on top (the selected one outlined), the alignment plot below (outputs vs base output)."""
    import matplotlib.pyplot as plt

    frames, out, base = m["frames"], m["outputs"], m["base"]
    F = len(frames)
    frame = F - 1 if frame is None else check_index(frame, F)
    fig = plt.figure(figsize=(max(6, 1.1 * F), 5.2))
    gs = fig.add_gridspec(2, F, height_ratios=[1, 2.2])
    for j in range(F):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(_rgb(frames[j]), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"λ={m['lambdas'][j]:.3g}", fontsize=7)
        if j == frame:
            for s in ax.spines.values():
                s.set_color("black"), s.set_linewidth(3)
    ax = fig.add_subplot(gs[1, :])
    xb = out[base].to_numpy()
    for k in out.columns:
        lab = f"{k} (base)" if k == base else f"{k}: {rc_reading(m, k)}"
        ax.plot(xb, out[k].to_numpy(), "o-", lw=2 if k == base else 1.2, label=lab)
    ax.axvline(xb[frame], color="grey", ls=":")
    ax.invert_xaxis()
    ax.set_xlabel(f"base classifier output ({base}); counterfactual to the right")
    ax.set_ylabel("classifier output")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(NO_COUNTERFACTUAL + f"; stop rule: {m['reason']}" if m["degenerate"]
                 else f"stop rule: {m['reason']}", fontsize=9)
    fig.tight_layout()
    return fig


def matrix_figure(matrix):
    """Heatmap of an :class:`cfdkit.spurious.alignment.AlignmentMatrix` (mean RC, n in each cell)."""
    import matplotlib.pyplot as plt

    M = matrix.mean.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 + 1.1 * M.shape[1], 1.0 + 0.6 * M.shape[0]))
    im = ax.imshow(M, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(M.shape[1]), matrix.mean.columns, rotation=30, ha="right")
    ax.set_yticks(range(M.shape[0]), matrix.mean.index)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(j, i, f"{M[i, j]:.2f}\nn={int(matrix.n.iat[i, j])}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("downstream classifier"), ax.set_ylabel("base classifier")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


class AlignmentExplorer:
    """Pick a test digit and a base classifier; step through the counterfactual frame by frame.

    Parameters
    ----------
    classifiers : dict name -> torch classifier
    autoencoder : encode/decode object
    X : array (n, *shape), the inputs to choose from
    matrix : AlignmentMatrix or None, shown below (compute it with ``alignment_matrix``)
    n_frames : int
    latent_shift_kwargs : dict passed to Latent Shift (e.g. ``DIGIT_LS``)
    index : int or None
        The digit shown first; None (default): the first digit whose first base classifier has a real
        counterfactual (:func:`first_real_counterfactual`), or 0 if none of the first 64 has one.
    """

    def __init__(self, classifiers: dict, autoencoder, X, matrix=None, n_frames: int = 8,
                 latent_shift_kwargs: dict | None = None, index: int | None = None):
        import ipywidgets as W

        if not classifiers:
            raise ExplorerError("give at least one classifier.")
        self.classifiers, self.ae, self.X = dict(classifiers), autoencoder, np.asarray(X)
        self.matrix, self.n_frames = matrix, int(n_frames)
        self.kw = dict(latent_shift_kwargs or {})
        if index is None:
            first = first_real_counterfactual(next(iter(self.classifiers.values())), autoencoder, self.X, **self.kw)
            index = 0 if first is None else first
        self.index = W.BoundedIntText(value=check_index(index, len(self.X)), min=0, max=len(self.X) - 1,
                                      description="digit")
        self.base = W.Dropdown(options=list(self.classifiers), description="base")
        self.frame = W.IntSlider(value=self.n_frames - 1, min=0, max=self.n_frames - 1, description="frame")
        self.out = W.Output()
        self.mat = W.Output()
        self._m = None
        for w in (self.index, self.base):
            w.observe(lambda _: self.recompute(), names="value")
        self.frame.observe(lambda _: self.draw(), names="value")
        self.widget = W.VBox([W.HBox([self.index, self.base]), self.frame, self.out, self.mat])
        self.widget.add_class("cfd-alignment-explorer")  # the browser tests find it by this class
        self.recompute()
        if matrix is not None:
            import matplotlib.pyplot as plt
            from IPython.display import display

            with self.mat:
                fig = matrix_figure(matrix)
                display(fig)
                plt.close(fig)

    def recompute(self):
        try:
            i = check_index(self.index.value, len(self.X))
            self._m = morph(self.classifiers, self.base.value, self.ae, self.X[i], n_frames=self.n_frames, **self.kw)
        except (ExplorerError, ValueError, TypeError) as e:
            self._m = None
            self.out.clear_output()
            with self.out:
                print(f"cannot show this selection: {e}")
            return
        self.draw()

    def draw(self):
        if self._m is None:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.out.clear_output(wait=True)
        with self.out:
            fig = morph_figure(self._m, self.frame.value)
            display(fig)
            plt.close(fig)
            display(morph_table(self._m).round(3))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
