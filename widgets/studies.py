"""Explorers over whole studies: pick sizes/seeds, press Run, see the table and the figure.

Each explorer wraps a *run* callable returning a pandas DataFrame (by
default the matching function of ``cfdkit.studies``, imported when Run
is pressed), a pure *summary* function turning that frame into the table
shown, and draws its figure with the matching function of :mod:`cfdkit.plots`.
The summaries are tested on their own; the explorers only wire controls to
``run(**kwargs)``.

One vocabulary: the summaries read the frames of ``cfdkit.studies`` with the
studies' own column names and keep them:

* noise sweep (``cfdkit.studies.noise_sweep``): one row per ``noise`` ratio with
  ``mean_size, mean_size_std, accuracy, accuracy_std, found_rate, n_seeds``;
* group bias (``cfdkit.studies.tag_bias``): one row per ``tag`` with ``n_found, mean_size,
  mean_share_in_biased`` (plus ``found_rate, share_from_X, share_from_Y`` from its ``attrs["groups"]``,
  :func:`cfdkit.linear.group_report`); its per-point rows (``attrs["points"]``: ``tag, size, share_in_biased``)
  are summarized the same way;
* method comparison (``cfdkit.studies.figure2``): ``method, k, mean_abs_delta``;
* relabel vs remove (``cfdkit.studies.relabel_vs_remove``): per (``dataset``, ``noise``,) ``method``:
  ``n_found, mean_size, mean_noisy, mean_normal``.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable

import pandas as pd

__all__ = [
    "StudyExplorer",
    "NoiseSweepExplorer",
    "GroupBiasExplorer",
    "MethodComparisonExplorer",
    "RelabelRemoveExplorer",
    "summarize_noise_sweep",
    "summarize_tag_bias",
    "summarize_method_comparison",
    "summarize_relabel_remove",
    "parse_float_list",
]


def _need(df: pd.DataFrame, cols, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: the result has no column(s) {missing}; it has {list(df.columns)}.")


def parse_float_list(text: str, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """``"0, 0.1 0.2"`` -> ``[0.0, 0.1, 0.2]``; every value must lie in ``[lo, hi]``."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    if not parts:
        raise ValueError("Enter at least one number, e.g. '0, 0.1, 0.2'.")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"Could not read {text!r} as numbers; write them like '0, 0.1, 0.2'.") from None
    bad = [v for v in vals if not lo <= v <= hi]
    if bad:
        raise ValueError(f"Values {bad} are outside [{lo:g}, {hi:g}].")
    return vals


# ------------------------------------------------------------------ summaries of cfdkit.studies frames
def summarize_noise_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """The frame of ``cfdkit.studies.noise_sweep`` as shown: one row per ``noise`` ratio.

    Columns ``noise, mean_size, accuracy`` and, where the frame has them, ``mean_size_std,
    accuracy_std, found_rate, n_seeds`` (mean and std over seeds, as the study computed them).
    The per-(ratio, seed) rows (``attrs["runs"]``) are refused: they are not one row per ratio.
    """
    _need(df, ["noise", "mean_size", "accuracy"], "noise sweep")
    if df["noise"].duplicated().any():
        raise ValueError("noise sweep: expected one row per noise ratio (the frame cfdkit.studies.noise_sweep "
                         "returns), but some ratios repeat; pass that frame, not its attrs['runs'].")
    cols = [c for c in ("noise", "mean_size", "mean_size_std", "accuracy", "accuracy_std", "found_rate", "n_seeds")
            if c in df.columns]
    return df[cols].sort_values("noise").reset_index(drop=True)


_TAG_COLS = ["tag", "n_found", "mean_size", "mean_share_in_biased"]


def summarize_tag_bias(df: pd.DataFrame) -> pd.DataFrame:
    """Per tag: ``n_found`` (audited points with a set), mean ``|S_t|`` and ``mean_share_in_biased``.

    Reads the frame of ``cfdkit.studies.tag_bias`` (one row per tag, used as is) or its per-point
    rows (``attrs["points"]``, or that frame itself: ``tag, size, share_in_biased``), which are
    averaged over the points where a set was found, as the study does.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"group bias: expected a pandas DataFrame, got {type(df).__name__}.")
    if "mean_share_in_biased" in df.columns:
        _need(df, _TAG_COLS, "group bias")
        return _with_group_report(df[_TAG_COLS].reset_index(drop=True), df.attrs.get("groups"))
    pts = df if "share_in_biased" in df.columns else df.attrs.get("points")
    if not isinstance(pts, pd.DataFrame):
        raise ValueError("group bias: expected cfdkit.studies.tag_bias's frame (column 'mean_share_in_biased', "
                         f"or per-point rows in attrs['points']); got {list(df.columns)}.")
    _need(pts, ["tag", "size", "share_in_biased"], "group bias")
    ok = pts[pts["size"] > 0]
    g = ok.groupby("tag").agg(n_found=("size", "size"), mean_size=("size", "mean"),
                              mean_share_in_biased=("share_in_biased", "mean"))
    return g.reset_index()[_TAG_COLS]


def _with_group_report(table: pd.DataFrame, groups) -> pd.DataFrame:
    """Add ``found_rate`` and ``share_from_<tag>`` of :func:`cfdkit.linear.group_report` (the study's
    ``attrs["groups"]``, one row per tag) to the per-tag table, where the study computed it."""
    if not isinstance(groups, pd.DataFrame) or groups.index.name != "tag":
        return table
    cols = ["found_rate"] + [c for c in groups.columns if c.startswith("share_from_")]
    return table.merge(groups[cols], left_on="tag", right_index=True, how="left")


def summarize_method_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ``|Δp|`` per method (rows) and ``k`` (columns), methods ordered by their mean."""
    _need(df, ["method", "k", "mean_abs_delta"], "method comparison")
    t = df.pivot_table(index="method", columns="k", values="mean_abs_delta", aggfunc="mean")
    return t.loc[t.mean(axis=1).sort_values(ascending=False).index]


def summarize_relabel_remove(df: pd.DataFrame) -> pd.DataFrame:
    """Per (data set, noise,) method: ``n_found, mean_size, mean_noisy, mean_normal`` (Table 4).

    Reads the frame of ``cfdkit.studies.relabel_vs_remove``; ``mean_noisy`` / ``mean_normal`` split
    the mean ``|S_t|`` into training points inside / outside the noise set.  The ``dataset`` and
    ``noise`` columns are kept where they vary.
    """
    cols = ["method", "n_found", "mean_size", "mean_noisy", "mean_normal"]
    _need(df, cols, "relabel vs remove")
    keys = [c for c in ("dataset", "noise") if c in df.columns and df[c].nunique() > 1]
    return df[keys + cols].reset_index(drop=True)


def _resolve(name: str) -> Callable:
    try:
        mod = importlib.import_module("cfdkit.studies")
    except ImportError as exc:
        raise RuntimeError(f"cfdkit.studies is not available in this install ({exc}); pass run=... "
                           "to the explorer.") from None
    fn = getattr(mod, name, None)
    if fn is None:
        raise RuntimeError(f"cfdkit.studies has no function {name!r} in this version; pass run=... "
                           "to the explorer.")
    return fn


class StudyExplorer:
    """Controls + Run button -> ``run(**kwargs)`` -> summary table and figure.

    Subclasses define :meth:`_controls` (name -> widget), :meth:`kwargs`
    (the call's keyword arguments from the controls), ``summarize`` and
    :meth:`draw` (a :mod:`cfdkit.plots` function).  ``result`` holds the last raw
    frame, ``summary`` its summary and ``figure`` the last figure drawn.
    """

    title = "Study"
    experiment = ""  # name in cfdkit.studies
    summarize: Callable[[pd.DataFrame], pd.DataFrame] = staticmethod(lambda df: df)

    def __init__(self, run: Callable | None = None, result: pd.DataFrame | None = None, **defaults):
        import ipywidgets as W

        self._run = run
        self.defaults = defaults
        self.result = None
        self.summary = None
        self.figure = None
        self.controls = self._controls(W, **defaults)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   layout=W.Layout(width="auto", min_width="max-content", overflow="visible"))
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="160px", visibility="hidden"))
        self.status = W.HTML()
        self.message = W.HTML()
        self.table = W.HTML()
        self.plot = W.Output(layout=W.Layout(min_height="240px"))
        self.widget = W.VBox([W.HTML(f"<b>{html.escape(self.title)}</b>"),
                              W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")),
                              W.HBox([self.run_button, self.progress, self.status]),
                              self.message, W.HBox([self.plot, self.table])])
        self.widget.add_class("cfd-study-explorer")
        self.run_button.add_class("cfd-run")
        self.run_button.on_click(lambda _b: self.run())
        if result is not None:
            self.show(result)

    # ---- to override
    def _controls(self, W, **defaults) -> dict:
        return {}

    def kwargs(self) -> dict:
        return {}

    def draw(self, summary: pd.DataFrame, result: pd.DataFrame):
        """The figure shown (a :class:`matplotlib.figure.Figure` from :mod:`cfdkit.plots`), or None."""
        return None

    # ---- actions
    def run(self) -> pd.DataFrame | None:
        """Call the study with the controls' values and show what it returns."""
        self.message.value = ""
        self.progress.layout.visibility = "visible"
        self.run_button.disabled = True
        self.status.value = "⏳ running…"
        try:
            kw = self.kwargs()
            fn = self._run or _resolve(self.experiment)
            df = fn(**kw)
            self.show(df)
        except Exception as exc:  # shown in the widget, never a traceback
            self.status.value = ""
            self._error(f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, RuntimeError))
                        else str(exc))
            return None
        finally:
            self.progress.layout.visibility = "hidden"
            self.run_button.disabled = False
        self.status.value = f"<span class='cfd-run-result'>done: {len(df)} result rows</span>"
        return df

    def show(self, df: pd.DataFrame) -> None:
        """Show a result frame (e.g. one computed in the notebook)."""
        summary = type(self).summarize(df)
        self.result, self.summary = df, summary
        self.table.value = ("<div style='max-height:320px;overflow:auto'>"
                            + summary.to_html(float_format=lambda v: f"{v:.3f}", border=0, classes="cfd-table")
                            + "</div>")
        self.plot.clear_output(wait=True)
        fig = self.figure = self.draw(summary, df)
        if fig is None:
            return
        import matplotlib.pyplot as plt

        with self.plot:
            try:
                from IPython import get_ipython
                if get_ipython() is not None:
                    from IPython.display import display
                    display(fig)
            except ImportError:  # pragma: no cover
                pass
            plt.close(fig)

    def _error(self, msg: str) -> None:
        self.message.value = f"<div class='cfd-error' style='color:#a40000'>⚠ {html.escape(msg)}</div>"

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


class NoiseSweepExplorer(StudyExplorer):
    """``|S_t|`` and accuracy as the share of flipped training labels grows (§3.3, Figure 6).

    ``run(dataset=..., features=None, noise_ratios=[...], seeds=[...], n_test=..., progress=False)``;
    default ``cfdkit.studies.noise_sweep``; figure :func:`cfdkit.plots.noise_sweep`.
    """

    title = "Noise sweep: |S_t| and accuracy vs noise ratio"
    experiment = "noise_sweep"
    summarize = staticmethod(summarize_noise_sweep)

    DATASETS = ("hate-speech", "sst2", "loan", "synthetic")

    def _controls(self, W, dataset="hate-speech", noise_ratios="0, 0.1, 0.2, 0.3, 0.4, 0.5", seeds=2, n_test=50, **_):
        text = noise_ratios if isinstance(noise_ratios, str) else ", ".join(f"{v:g}" for v in noise_ratios)
        return {"dataset": W.Dropdown(options=list(self.DATASETS), value=dataset, description="data set"),
                "noise_ratios": W.Text(value=text, description="noise ratios", layout=W.Layout(width="340px")),
                "seeds": W.IntSlider(value=seeds, min=1, max=10, description="seeds"),
                "n_test": W.IntSlider(value=n_test, min=10, max=500, step=10, description="test points")}

    def kwargs(self) -> dict:
        return {"dataset": self.controls["dataset"].value, "features": None,
                "noise_ratios": parse_float_list(self.controls["noise_ratios"].value, 0.0, 1.0),
                "seeds": list(range(self.controls["seeds"].value)),
                "n_test": self.controls["n_test"].value, "progress": False}

    def draw(self, summary, result):
        from cfdkit import plots

        return plots.noise_sweep(summary)


class GroupBiasExplorer(StudyExplorer):
    """§3.4: share of ``S_t`` inside the biased set ``B`` for misclassified "tag X" vs "tag Y" points.

    ``run(bias=..., share_x=..., n_test=..., seed=...)``; default ``cfdkit.studies.tag_bias``
    (loan data); figure :func:`cfdkit.plots.tag_bias`.
    """

    title = "Group attribution bias: how much of S_t lies in the biased set B?"
    experiment = "tag_bias"
    summarize = staticmethod(summarize_tag_bias)

    def _controls(self, W, bias=0.9, share_x=0.4, n_test=500, seed=0, **_):
        return {"bias": W.FloatSlider(value=bias, min=0.0, max=1.0, step=0.05, description="bias rate"),
                "share_x": W.FloatSlider(value=share_x, min=0.05, max=0.95, step=0.05, description="tag X share"),
                "n_test": W.IntSlider(value=n_test, min=10, max=2400, step=10, description="test points"),
                "seed": W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))}

    def kwargs(self) -> dict:
        return {k: w.value for k, w in self.controls.items()}

    def draw(self, summary, result):
        from cfdkit import plots

        return plots.tag_bias(summary)


class MethodComparisonExplorer(StudyExplorer):
    """Figure 2: mean ``|Δp|`` after relabeling the top-k training points ranked by each method.

    ``run(dataset=..., methods=[...], ks=[...], n_test=..., seed=..., progress=False)`` ->
    ``method, k, mean_abs_delta``; default ``cfdkit.studies.figure2``; figure :func:`cfdkit.plots.figure2`.
    The methods offered are the registered linear scores, ``cfdkit.linear.scores.METHODS``.
    """

    title = "Method comparison: mean |Δp| after relabeling the top-k points"
    experiment = "figure2"
    summarize = staticmethod(summarize_method_comparison)
    DATASETS = ("sst2", "hate-speech", "loan", "synthetic")

    def _controls(self, W, dataset="sst2", methods=None, ks="5, 10, 20", n_test=10, seed=0, **_):
        from cfdkit.linear.scores import METHODS

        names = list(METHODS)  # the score registry: a new score shows up here without touching the widget
        methods = names if methods is None else [methods] if isinstance(methods, str) else list(methods)
        text = ks if isinstance(ks, str) else ", ".join(str(k) for k in ks)
        return {"dataset": W.Dropdown(options=list(self.DATASETS), value=dataset, description="data set"),
                "methods": W.SelectMultiple(options=names, value=[m for m in methods if m in names],
                                            description="methods", rows=len(names),   # every method in view
                                            layout=W.Layout(width="340px")),
                "ks": W.Text(value=text, description="k values", layout=W.Layout(width="300px")),
                "n_test": W.IntSlider(value=n_test, min=5, max=200, step=5, description="test points"),
                "seed": W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))}

    def kwargs(self) -> dict:
        methods = list(self.controls["methods"].value)
        if not methods:
            raise ValueError("Select at least one method.")
        ks = [int(v) for v in parse_float_list(self.controls["ks"].value, 1, 1e9)]
        return {"dataset": self.controls["dataset"].value, "methods": methods, "ks": ks,
                "n_test": self.controls["n_test"].value, "seed": self.controls["seed"].value, "progress": False}

    def draw(self, summary, result):
        from cfdkit import plots

        return plots.figure2(result)


class RelabelRemoveExplorer(StudyExplorer):
    """§3.5 / Table 4: ``|S_t|`` for relabeling vs removal, split into noisy and clean points.

    ``run(datasets=(dataset,), noise=..., n_test=..., seed=..., progress=False)``; default
    ``cfdkit.studies.relabel_vs_remove``; figure :func:`cfdkit.plots.relabel_vs_remove`.
    """

    title = "Relabel vs remove: how many points, and how many of them noisy?"
    experiment = "relabel_vs_remove"
    summarize = staticmethod(summarize_relabel_remove)

    DATASETS = ("loan", "sst2", "hate-speech", "synthetic")

    def _controls(self, W, dataset="loan", noise=0.3, n_test=30, seed=0, **_):
        return {"dataset": W.Dropdown(options=list(self.DATASETS), value=dataset, description="data set"),
                "noise": W.FloatSlider(value=noise, min=0.0, max=0.5, step=0.05, description="noise"),
                "n_test": W.IntSlider(value=n_test, min=5, max=300, step=5, description="test points"),
                "seed": W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))}

    def kwargs(self) -> dict:
        c = self.controls
        return {"datasets": (c["dataset"].value,), "noise": c["noise"].value, "n_test": c["n_test"].value,
                "seed": c["seed"].value, "progress": False}

    def draw(self, summary, result):
        from cfdkit import plots

        return plots.relabel_vs_remove(result)
