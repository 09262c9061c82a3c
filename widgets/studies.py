"""Explorers over whole studies: pick sizes/seeds, press Run, see the table and the figure.

Each explorer wraps a *run* callable returning a pandas DataFrame (by
default the matching function of ``cfdkit.studies``, imported when Run
is pressed) and a pure *summary* function turning that frame into the table
shown; the figure is drawn from the summary.  The summaries are tested on
their own; the explorers only wire controls to ``run(**kwargs)``.

The explorers read the frames that ``cfdkit.studies`` returns.  Small pure
*adapters* (tested on their own) turn them into the column contracts the
summaries read; frames already in that contract pass through unchanged:

* noise sweep: :func:`noise_sweep_runs` -> one row per (ratio, seed):
  ``noise_ratio, seed, mean_size, accuracy`` (optionally ``found_rate``), from
  ``experiments.noise_sweep(...).attrs["runs"]`` (column ``noise``);
* group bias: :func:`tag_bias_points` -> one row per audited test point:
  ``tag`` (``"X"``/``"Y"``), ``size``, ``share_in_B``, from
  ``experiments.tag_bias(...).attrs["points"]`` (column ``share_in_biased``);
* method comparison: ``method, k, mean_abs_delta`` (``experiments.figure2`` as is);
* relabel vs remove: :func:`relabel_remove_table` -> one row per (data set, noise,) method:
  ``method, points, mean_size, in_noise, not_in_noise`` from ``experiments.relabel_vs_remove``
  (``n_found, mean_noisy, mean_normal``), or aggregated from per-point rows
  ``method, size, in_noise, not_in_noise``.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable

import numpy as np
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
    "noise_sweep_runs",
    "tag_bias_points",
    "relabel_remove_table",
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


# ------------------------------------------------------------------ adapters: cfdkit.studies -> contracts
def noise_sweep_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (noise ratio, seed) with ``noise_ratio, seed, mean_size, accuracy[, found_rate]``.

    Accepts the frame of ``cfdkit.studies.noise_sweep`` (its per-run rows are in
    ``df.attrs["runs"]``, column ``noise``), its ``attrs["runs"]`` frame itself, or a frame
    already in the contract.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"noise sweep: expected a pandas DataFrame, got {type(df).__name__}.")
    if "noise_ratio" in df.columns:
        return df
    runs = df.attrs.get("runs")
    src = runs if isinstance(runs, pd.DataFrame) else df
    if "noise" not in src.columns:
        raise ValueError(f"noise sweep: the result has no column 'noise' or 'noise_ratio'; it has {list(src.columns)}.")
    out = src.rename(columns={"noise": "noise_ratio"})
    if "seed" not in out.columns:
        out = out.assign(seed=0)
    return out


def tag_bias_points(df: pd.DataFrame) -> pd.DataFrame:
    """One row per audited (misclassified) test point with ``tag, size, share_in_B``.

    Accepts the frame of ``cfdkit.studies.tag_bias`` (per-point rows in
    ``df.attrs["points"]``, column ``share_in_biased``), that points frame, or a frame
    already in the contract.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"group bias: expected a pandas DataFrame, got {type(df).__name__}.")
    if "share_in_B" in df.columns:
        return df
    pts = df.attrs.get("points")
    src = pts if isinstance(pts, pd.DataFrame) else df
    if "share_in_biased" not in src.columns:
        raise ValueError("group bias: expected cfdkit.studies.tag_bias's frame (per-point rows in "
                         f"attrs['points']) or a column 'share_in_B'; got {list(src.columns)}.")
    return src.rename(columns={"share_in_biased": "share_in_B"})


def relabel_remove_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (data set, noise,) method: ``points`` (with a set), ``mean_size``, ``in_noise``, ``not_in_noise``.

    Reads ``cfdkit.studies.relabel_vs_remove`` (``n_found, mean_size, mean_noisy,
    mean_normal``; the ``dataset`` / ``noise`` columns are kept when they vary) or
    per-point rows ``method, size, in_noise, not_in_noise`` (sets of size 0 = not found are dropped).
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"relabel vs remove: expected a pandas DataFrame, got {type(df).__name__}.")
    if "mean_noisy" in df.columns:
        _need(df, ["method", "n_found", "mean_size", "mean_noisy", "mean_normal"], "relabel vs remove")
        keys = [c for c in ("dataset", "noise") if c in df.columns and df[c].nunique() > 1]
        out = df[keys + ["method", "n_found", "mean_size", "mean_noisy", "mean_normal"]].rename(
            columns={"n_found": "points", "mean_noisy": "in_noise", "mean_normal": "not_in_noise"})
        return out.reset_index(drop=True)
    _need(df, ["method", "size", "in_noise", "not_in_noise"], "relabel vs remove")
    ok = df[df["size"] > 0]
    g = ok.groupby("method", sort=False).agg(points=("size", "size"), mean_size=("size", "mean"),
                                             in_noise=("in_noise", "mean"), not_in_noise=("not_in_noise", "mean"))
    return g.reset_index()


def summarize_noise_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """Mean (and std over seeds) of ``|S_t|`` and accuracy per noise ratio (any :func:`noise_sweep_runs` input)."""
    df = noise_sweep_runs(df)
    _need(df, ["noise_ratio", "mean_size", "accuracy"], "noise sweep")
    agg = {"mean_size": ["mean", "std"], "accuracy": ["mean", "std"]}
    if "found_rate" in df.columns:
        agg["found_rate"] = ["mean"]
    g = df.groupby("noise_ratio").agg(agg)
    g.columns = ["mean_size", "mean_size_std", "accuracy", "accuracy_std"] + (
        ["found_rate"] if "found_rate" in df.columns else [])
    g["seeds"] = df.groupby("noise_ratio").size()
    return g.reset_index()


def summarize_tag_bias(df: pd.DataFrame) -> pd.DataFrame:
    """Per tag: number of audited points, mean ``|S_t|`` and mean share of ``S_t`` inside ``B``
    (any :func:`tag_bias_points` input)."""
    df = tag_bias_points(df)
    _need(df, ["tag", "size", "share_in_B"], "group bias")
    ok = df[df["size"] > 0]
    g = ok.groupby("tag").agg(points=("size", "size"), mean_size=("size", "mean"),
                              share_in_B=("share_in_B", "mean"))
    return g.reset_index()


def summarize_method_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ``|Δp|`` per method (rows) and ``k`` (columns), methods ordered by their mean."""
    _need(df, ["method", "k", "mean_abs_delta"], "method comparison")
    t = df.pivot_table(index="method", columns="k", values="mean_abs_delta", aggfunc="mean")
    return t.loc[t.mean(axis=1).sort_values(ascending=False).index]


def summarize_relabel_remove(df: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean ``|S_t|`` and its split into noisy / clean training points (Table 4); see
    :func:`relabel_remove_table`."""
    return relabel_remove_table(df)


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
    :meth:`draw`.  ``result`` holds the last raw frame, ``summary`` its summary.
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
        self.controls = self._controls(W, **defaults)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
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

    def draw(self, summary: pd.DataFrame, ax) -> None:
        summary.plot(ax=ax)

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
        import matplotlib.pyplot as plt

        with self.plot:
            fig, ax = plt.subplots(figsize=(5.5, 3.2))
            self.draw(summary, ax)
            fig.tight_layout()
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
    default ``cfdkit.studies.noise_sweep`` (read through :func:`noise_sweep_runs`).
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

    def draw(self, s, ax):
        ax.errorbar(s["noise_ratio"], s["mean_size"], yerr=s["mean_size_std"].fillna(0), marker="o", label="mean |S_t|")
        ax.set_xlabel("noise ratio")
        ax.set_ylabel("mean |S_t|")
        ax2 = ax.twinx()
        ax2.plot(s["noise_ratio"], s["accuracy"], "k--", marker="s", ms=3, label="test accuracy")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1.02)
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="upper right", fontsize=8)


class GroupBiasExplorer(StudyExplorer):
    """§3.4: share of ``S_t`` inside the biased set ``B`` for misclassified "tag X" vs "tag Y" points.

    ``run(bias=..., share_x=..., n_test=..., seed=...)``; default ``cfdkit.studies.tag_bias``
    (loan data; read through :func:`tag_bias_points`).
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

    def draw(self, s, ax):
        ax.bar(s["tag"].astype(str), s["share_in_B"], color=["#c0392b", "#2980b9"][: len(s)])
        for x, v in zip(range(len(s)), s["share_in_B"]):
            ax.text(x, v + 0.01, f"{v:.0%}", ha="center", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlabel("tag of the misclassified test point")
        ax.set_ylabel("mean share of S_t in B")


class MethodComparisonExplorer(StudyExplorer):
    """Figure 2: mean ``|Δp|`` after relabeling the top-k training points ranked by each method.

    ``run(dataset=..., methods=[...], ks=[...], n_test=..., seed=..., progress=False)`` ->
    ``method, k, mean_abs_delta``; default ``cfdkit.studies.figure2``.
    """

    title = "Method comparison: mean |Δp| after relabeling the top-k points"
    experiment = "figure2"
    summarize = staticmethod(summarize_method_comparison)
    METHODS = ("ip_relabel", "ip_remove", "influence", "relatif", "grad_dot", "grad_cos", "random")

    DATASETS = ("sst2", "hate-speech", "loan", "synthetic")

    def _controls(self, W, dataset="sst2", methods=METHODS, ks="5, 10, 20", n_test=10, seed=0, **_):
        text = ks if isinstance(ks, str) else ", ".join(str(k) for k in ks)
        return {"dataset": W.Dropdown(options=list(self.DATASETS), value=dataset, description="data set"),
                "methods": W.SelectMultiple(options=list(self.METHODS), value=[m for m in methods if m in self.METHODS],
                                            description="methods", rows=4),
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

    def draw(self, s, ax):
        for m, row in s.iterrows():
            ax.plot(list(s.columns), row.values, marker="o", ms=3, label=m)
        ax.set_xlabel("k (training points relabeled)")
        ax.set_ylabel("mean |Δp|")
        ax.legend(fontsize=7)


class RelabelRemoveExplorer(StudyExplorer):
    """§3.5 / Table 4: ``|S_t|`` for relabeling vs removal, split into noisy and clean points.

    ``run(datasets=(dataset,), noise=..., n_test=..., seed=..., progress=False)``; default
    ``cfdkit.studies.relabel_vs_remove`` (read through :func:`relabel_remove_table`).
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

    def draw(self, s, ax):
        x = np.arange(len(s))
        ax.bar(x, s["in_noise"], label="in noise set N")
        ax.bar(x, s["not_in_noise"], bottom=s["in_noise"], label="clean points")
        labels = [m.replace("removal_", "remove ") for m in s["method"]]
        if "dataset" in s.columns:
            labels = [f"{d}\n{m}" for d, m in zip(s["dataset"], labels)]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel("mean |S_t|")
        ax.legend(fontsize=8)
