"""``NeuralCFDExplorer``: counterfactual datasets for a small ReLU network, one test case at a time.

Kim, Mitchell & Wang (NLDL 2026), Algorithm 1 as implemented by :class:`cfdkit.neural.NeuralCFD`:
rank the training points once, flip the top-k labels for k = 1..m, retrain, stop at the first k
whose network predicts the other class.  The explorer shows, for a chosen data set and test case,

* the ranking: the top training rows with their scores (only ψ-candidates, as the search uses),
* Search (with a busy indicator): the labels flipped and the logit before and after,
* the paper's "is it meaningful?" view: the flipped training rows' feature values next to the test row's.

Everything shown comes from small pure functions (tested on their own):
:func:`load_neural_data`, :func:`check_index`, :func:`top_ranked`, :func:`ranking_table`,
:func:`logit_summary`, :func:`flip_comparison`.  Bad selections give a readable message
(:class:`~cfdkit_widgets.flip.ExplorerError`), never a traceback.
"""

from __future__ import annotations

import html
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .flip import ExplorerError

__all__ = ["NeuralCFDExplorer", "NeuralData", "load_neural_data", "check_index", "top_ranked", "ranking_table",
           "logit_summary", "flip_comparison", "RANKING_CHOICES", "LABEL_NAMES"]

#: Rankings offered in the dropdown (all registered in ``cfdkit.neural.RANKINGS``).
RANKING_CHOICES = ("combined", "lr_surrogate", "activation_pattern", "l2_distance", "influence", "random")

#: What label 1 / 0 mean for the data sets cfdkit ships (``cfdkit.data.load_fairness``).
LABEL_NAMES = {
    "salary": ("salary ≤ 25k", "salary > 25k"),
    "german": ("bad credit", "good credit"),
    "student": ("fail", "pass"),
    "compas": ("no recid.", "recid. in 2 yrs"),
    "default": ("no default", "default"),
    "bank": ("no", "subscribes"),
    "adult": ("income ≤ 50K", "income > 50K"),
}


class NeuralData(NamedTuple):
    """Model inputs (numeric arrays) plus the same rows as readable feature tables."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train_rows: pd.DataFrame
    test_rows: pd.DataFrame
    name: str = "data"
    label_names: tuple = ("0", "1")


# ------------------------------------------------------------------ pure logic
def load_neural_data(name: str, data_home=None, seed: int = 0) -> NeuralData:
    """The arrays of :func:`cfdkit.data.prepare` (the one preparation path: one-hot + standardized) and, for
    display, the raw feature values of the same rows, from the same single load (synthetic data get ``x0, x1, ...``)."""
    from cfdkit.data import prepare

    try:
        p = prepare(name, seed=seed, data_home=data_home)
    except (KeyError, ValueError, TypeError, FileNotFoundError) as exc:
        raise ExplorerError(f"Could not load data set {name!r}: {exc}") from None
    if p.texts_train is not None:
        raise ExplorerError(f"{name!r} is a text data set; the neural explorer takes tabular data sets.")
    Xtr, Xte = np.asarray(p.X_train, np.float64), np.asarray(p.X_test, np.float64)
    tr, te = p.info.get("raw_train"), p.info.get("raw_test")
    if tr is None or te is None:
        cols = [f"x{j}" for j in range(Xtr.shape[1])]
        tr, te = pd.DataFrame(Xtr, columns=cols), pd.DataFrame(Xte, columns=cols)
    return NeuralData(Xtr, p.y_train, Xte, p.y_test, tr.reset_index(drop=True), te.reset_index(drop=True),
                      p.info["dataset"], LABEL_NAMES.get(p.info["dataset"], ("0", "1")))


def check_index(index, n: int, what: str = "test case") -> int:
    """``index`` as an int in ``[0, n)``, else a readable :class:`ExplorerError`."""
    if index is None:
        raise ExplorerError(f"No {what} selected.")
    if isinstance(index, (bool, np.bool_)):
        raise ExplorerError(f"{what.capitalize()} {index!r} is not a number.")
    if isinstance(index, (float, np.floating)) and not float(index).is_integer():
        raise ExplorerError(f"{what.capitalize()} {index!r} is not a whole number.")
    try:
        i = int(index)
    except (TypeError, ValueError, OverflowError):
        raise ExplorerError(f"{what.capitalize()} {index!r} is not a number.") from None
    if n <= 0:
        raise ExplorerError(f"There are no {what}s.")
    if not 0 <= i < n:
        raise ExplorerError(f"{what.capitalize()} #{i} does not exist (choose 0 to {n - 1}).")
    return i


def top_ranked(scores, mask=None, top: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` highest-scoring candidates of one test case: ``(train_indices, scores)``.

    ``scores`` is one row of ``NeuralCFD.rank`` (higher = flip first); ``mask`` the ψ-candidates
    (``True`` = may be flipped).  Ties keep training order, as in ``cfdkit.neural.masked_order``.
    """
    from cfdkit.neural import masked_order

    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ExplorerError(f"top must be a positive int (rows to show), got {top!r}.")
    s = np.asarray(scores, dtype=np.float64).reshape(1, -1)
    if s.shape[1] == 0:
        raise ExplorerError("scores is empty: there are no training rows to rank.")
    m = None if mask is None else np.asarray(mask, dtype=bool).reshape(1, -1)
    if m is not None and m.shape != s.shape:
        raise ExplorerError(f"mask has {m.shape[1]} entries but scores has {s.shape[1]}; pass one per training row.")
    order, n_cand = masked_order(s, m, min(int(top), s.shape[1]))
    idx = order[0][order[0] >= 0]
    return idx, s[0, idx]


def _check_names(label_names) -> None:
    if isinstance(label_names, str) or not hasattr(label_names, "__len__") or len(label_names) < 2:
        raise ExplorerError(f"label_names must be a pair (name of label 0, name of label 1), got {label_names!r}.")


def ranking_table(idx, scores, y_train, train_rows: pd.DataFrame | None = None, label_names=("0", "1"),
                  max_features: int = 4) -> pd.DataFrame:
    """One row per ranked training point: ``rank, train_index, score, label`` and its first features."""
    idx = np.asarray(idx, dtype=np.int64).ravel()
    y = np.asarray(y_train)
    _check_names(label_names)
    if np.asarray(scores).size != idx.size:
        raise ExplorerError(f"scores has {np.asarray(scores).size} entries but idx has {idx.size}.")
    if idx.size and (idx.min() < 0 or idx.max() >= len(y)):
        raise ExplorerError(f"training row #{int(idx.max() if idx.max() >= len(y) else idx.min())} does not exist "
                            f"(y_train has {len(y)} rows).")
    if train_rows is not None and idx.size and idx.max() >= len(train_rows):
        raise ExplorerError(f"train_rows has {len(train_rows)} rows but training row #{int(idx.max())} is ranked.")
    df = pd.DataFrame({"rank": np.arange(1, len(idx) + 1), "train_index": idx,
                       "score": np.asarray(scores, dtype=np.float64),
                       "label": [label_names[int(v)] for v in np.asarray(y_train)[idx]]})
    if train_rows is not None and len(idx):
        feats = train_rows.iloc[idx, :max_features].reset_index(drop=True)
        df = pd.concat([df, feats], axis=1)
    return df


def logit_summary(result, j: int = 0, label_names=("0", "1")) -> dict:
    """Logit and class of test row ``j`` of a :class:`cfdkit.neural.CFDResult` before and after the flips.

    Returns ``found, k, flipped_indices`` (the training rows relabeled, as in ``CFDResult.to_frame``),
    ``logit_before, logit_after, pred_before, pred_after, budget, ranking, n_candidates, searched``,
    ``specificity`` (1 - share of random same-size label sets from the same pool that also flip it; NaN
    where no CFD) and ``verdict`` ("finding" / "indistinguishable from noise" / "no CFD" / ...).
    """
    _check_names(label_names)
    j = check_index(j, len(result.logit), "test row")
    before = float(result.logit[j])
    after = float(result.new_logit[j]) if result.found[j] else float("nan")
    pb = int(before > 0)
    spec, verdict = getattr(result, "specificity", None), getattr(result, "verdict", None)   # duck-typed results
    return {"found": bool(result.found[j]), "k": int(result.k[j]), "flipped_indices": result.indices(j).tolist(),
            "logit_before": before, "logit_after": after, "pred_before": label_names[pb],
            "pred_after": label_names[int(after > 0)] if result.found[j] else None,
            "budget": int(result.budget), "ranking": result.ranking,
            "n_candidates": int(result.n_candidates[j]), "searched": bool(result.searched[j]),
            "specificity": float(spec[j]) if spec is not None else float("nan"),
            "verdict": str(verdict[j]) if verdict is not None else ("not checked" if result.found[j] else "no CFD")}


def flip_comparison(test_row: pd.Series, train_rows: pd.DataFrame, idx, y_train, label_names=("0", "1"),
                    test_label=None) -> pd.DataFrame:
    """Feature values side by side: the test row, then each flipped training row (features as rows).

    Column names say each training row's label change, e.g. ``"train #17: good credit → bad credit"``;
    a cell equal to the test row's value is kept as is, so matches are easy to spot.
    """
    _check_names(label_names)
    idx = [int(i) for i in np.asarray(idx, dtype=np.int64).ravel()]
    n = min(len(train_rows), len(np.asarray(y_train)))
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ExplorerError(f"training row(s) {bad} do not exist (train_rows / y_train have {n} rows).")
    head = "test row" + (f" (true: {label_names[int(test_label)]})" if test_label is not None else "")
    cols = {head: pd.Series(test_row).reset_index(drop=True)}
    for i in idx:
        y = int(np.asarray(y_train)[i])
        cols[f"train #{i}: {label_names[y]} → {label_names[1 - y]}"] = train_rows.iloc[i].reset_index(drop=True)
    out = pd.DataFrame(cols)
    out.index = list(pd.Series(test_row).index)
    out.index.name = "feature"
    return out


def _html_table(df: pd.DataFrame, index: bool = True, highlight: pd.DataFrame | None = None) -> str:
    body = df.to_html(index=index, border=0, classes="cfd-table", float_format=lambda v: f"{v:.3g}", escape=True)
    return f"<div style='max-height:360px;overflow:auto'>{body}</div>"


# ------------------------------------------------------------------ the widget
class NeuralCFDExplorer:
    """Pick a data set and a test case; see the ranking, search for a neural CFD, compare the rows.

    Parameters
    ----------
    datasets : sequence of str
        Names for :func:`load_neural_data` (``"salary"``, ``"german"``, ``"student"``, ...,
        ``"synthetic"``); each is loaded and its network fitted when first chosen.
    cfd : cfdkit.neural.NeuralCFD, optional
        A fitted model to explore instead; pass ``data`` (a :class:`NeuralData` or a tuple
        ``(X_train, y_train, X_test, y_test)``) with it.  Its budget/ranking are the defaults shown.
    budget, hidden, epochs, seed, ranking :
        Settings of the :class:`~cfdkit.neural.NeuralCFD` built for each data set
        (``NeuralCFD(hidden=hidden, budget=budget, ranking=ranking, seed=seed, epochs=epochs)``).
    top : int
        Training rows shown in the ranking table.
    index : int
        Test case shown first.
    data_home, loader :
        Where the data live; ``loader(name) -> NeuralData`` replaces :func:`load_neural_data`.

    Attributes (the widgets, for tests and layouts)
    -----------------------------------------------
    dataset, test_index, ranking, budget, search_button, progress, status, message, header,
    ranking_html, result_html, widget; ``last`` holds the last :func:`logit_summary` and
    ``comparison`` the last :func:`flip_comparison` frame.
    """

    def __init__(self, datasets=("salary", "german"), *, cfd=None, data=None, budget: int = 5, hidden=(8, 8),
                 epochs: int = 3000, seed: int = 0, ranking: str = "combined", top: int = 10, index: int = 0,
                 data_home=None, loader=None):
        import ipywidgets as W

        for nm, v, lo in (("budget", budget, 1), ("epochs", epochs, 1), ("seed", seed, 0), ("top", top, 1),
                          ("index", index, 0)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{nm} must be an int >= {lo}, got {v!r}.")
        if index > 10**6:
            raise ValueError(f"index must be at most 10**6, got {index!r}.")
        from cfdkit.neural.validation import check_hidden

        self.settings = {"hidden": check_hidden(hidden), "epochs": int(epochs), "seed": int(seed)}
        self.top = int(top)
        self.data_home = data_home
        self._loader = loader or (lambda name: load_neural_data(name, data_home, seed))
        self._models: dict[str, Any] = {}
        self._data: dict[str, NeuralData] = {}
        self.last: dict | None = None
        self.comparison: pd.DataFrame | None = None
        if cfd is not None:
            if data is None:
                raise ValueError("pass data=(X_train, y_train, X_test, y_test) or a NeuralData with cfd=...")
            data = self._as_data(data)
            if not hasattr(cfd, "model_"):
                cfd.fit(data.X_train, data.y_train)
            self._models[data.name], self._data[data.name] = cfd, data
            datasets = (data.name,)
            budget, ranking = cfd.budget, cfd.ranking if isinstance(cfd.ranking, str) else ranking
        if isinstance(datasets, str):
            datasets = (datasets,)
        datasets = tuple(datasets)
        if not datasets:
            raise ValueError("give at least one data set name, e.g. datasets=('salary', 'german').")
        rankings = list(RANKING_CHOICES) + ([ranking] if ranking not in RANKING_CHOICES else [])

        self.dataset = W.Dropdown(options=list(datasets), value=datasets[0], description="data set")
        self.test_index = W.BoundedIntText(value=int(index), min=0, max=10**6, description="test case",
                                           layout=W.Layout(width="200px"))
        self.ranking = W.Dropdown(options=rankings, value=ranking, description="ranking")
        self.budget = W.IntSlider(value=int(budget), min=1, max=max(30, int(budget)), description="budget m", continuous_update=False)
        self.search_button = W.Button(description="Search (retrain)", button_style="primary", icon="search",
                                      layout=W.Layout(width="auto", min_width="max-content", overflow="visible"),
                                      tooltip="Flip the top-k labels for k = 1..m, retrain, stop at the first flip")
        self.progress = W.IntProgress(value=0, min=0, max=1, bar_style="info",
                                      layout=W.Layout(width="160px", visibility="hidden"))
        self.status = W.HTML()
        self.message = W.HTML()
        self.header = W.HTML()
        self.ranking_html = W.HTML()
        self.result_html = W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>NeuralCFDExplorer</b> — which few training labels, flipped, change a ReLU network's prediction?"),
            W.HBox([self.dataset, self.test_index, self.ranking, self.budget], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.search_button, self.progress, self.status]),
            self.message, self.header, W.HTML("<b>Ranking</b> (top training rows, ψ-candidates only)"),
            self.ranking_html, self.result_html])
        self.widget.add_class("cfd-neural-explorer")
        self.search_button.add_class("cfd-search")

        self.dataset.observe(lambda ch: self.select(), names="value")
        self.test_index.observe(lambda ch: self.select(), names="value")
        self.ranking.observe(lambda ch: self.select(), names="value")
        self.budget.observe(lambda ch: self._clear_result(), names="value")
        self.search_button.on_click(lambda _b: self.run_search())
        self.select()

    # ---- data / model
    @staticmethod
    def _as_data(data) -> NeuralData:
        if isinstance(data, NeuralData):
            return data
        Xtr, ytr, Xte, yte = (np.asarray(a) for a in data[:4])
        cols = [f"x{j}" for j in range(Xtr.shape[1])]
        return NeuralData(Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64), pd.DataFrame(Xtr, columns=cols),
                          pd.DataFrame(Xte, columns=cols), "custom")

    def model(self, name: str | None = None):
        """The fitted :class:`~cfdkit.neural.NeuralCFD` of a data set (loaded and fitted on first use)."""
        name = self.dataset.value if name is None else name
        if name not in self._models:
            from cfdkit.neural import NeuralCFD

            self.status.value = f"⏳ loading {html.escape(name)} and training the network…"
            data = self._loader(name)
            cfd = NeuralCFD(hidden=self.settings["hidden"], budget=min(self.budget.value, len(data.y_train)),
                            ranking=self.ranking.value, seed=self.settings["seed"], epochs=self.settings["epochs"],
                            progress=False, num_threads=1)
            cfd.fit(data.X_train, data.y_train)
            self._data[name], self._models[name] = data, cfd
            self.status.value = ""
        return self._models[name]

    def data(self, name: str | None = None) -> NeuralData:
        name = self.dataset.value if name is None else name
        self.model(name)
        return self._data[name]

    # ---- actions
    def _clear_result(self):
        self.result_html.value = ""
        self.status.value = ""
        self.last, self.comparison = None, None

    def _error(self, msg: str) -> None:
        self.message.value = f"<div class='cfd-error' style='color:#a40000'>⚠ {html.escape(msg)}</div>"

    def select(self):
        """Show the chosen test case and its ranking (no retraining)."""
        self.message.value = ""
        self._clear_result()
        try:
            cfd, d = self.model(), self.data()
            i = check_index(self.test_index.value, len(d.y_test))
            x = d.X_test[i:i + 1]
            logit = float(cfd.model_.logit(x)[0])
            pred = int(logit > 0)
            from cfdkit.neural.filters import apply_psi

            mask = apply_psi(cfd.psi, d.X_train, d.y_train, x, np.array([pred]))
            idx, sc = top_ranked(cfd.rank(x, self.ranking.value, mask=mask)[0], mask[0], self.top)
        except ExplorerError as exc:
            self.header.value = self.ranking_html.value = ""
            self._error(str(exc))
            return None
        except Exception as exc:  # shown in the widget, never a traceback
            self.header.value = self.ranking_html.value = ""
            self.status.value = ""
            self._error(f"Could not show this test case: {type(exc).__name__}: {exc}")
            return None
        ln = d.label_names
        row = ", ".join(f"{k}={v}" for k, v in d.test_rows.iloc[i].items())
        self.header.value = (
            f"<div class='cfd-neural-header'><b>{html.escape(d.name)}</b>, test case #{i} of {len(d.y_test)}: "
            f"true <b>{html.escape(ln[int(d.y_test[i])])}</b>, predicted <b>{html.escape(ln[pred])}</b> "
            f"(logit {logit:+.3f}); {int(mask.sum())} of {len(d.y_train)} training labels may be flipped (ψ)."
            f"<br><span style='color:#555;font-size:90%'>{html.escape(row[:400])}</span></div>")
        self.ranking_html.value = _html_table(ranking_table(idx, sc, d.y_train, d.train_rows,
                                                            ln), index=False)
        return idx

    def run_search(self, index=None) -> dict | None:
        """Algorithm 1 for the chosen test case; shows the flips, the logits and the side-by-side rows."""
        self.message.value = ""
        self._clear_result()
        self.progress.layout.visibility = "visible"
        self.progress.value = 0
        self.search_button.disabled = True
        self.status.value = "⏳ retraining the network with the top-k labels flipped, k = 1..m…"
        try:
            cfd, d = self.model(), self.data()
            i = check_index(self.test_index.value if index is None else index, len(d.y_test))
            m = int(self.budget.value)
            if m > len(d.y_train):
                raise ExplorerError(f"The budget m = {m} exceeds the {len(d.y_train)} training rows.")
            res = cfd.search(d.X_test[i:i + 1], ranking=self.ranking.value, budget=m)
            s = logit_summary(res, 0, d.label_names)
            comp = flip_comparison(d.test_rows.iloc[i], d.train_rows, s["flipped_indices"], d.y_train, d.label_names,
                                   test_label=d.y_test[i]) if s["found"] else None
        except ExplorerError as exc:
            self.status.value = ""
            self._error(str(exc))
            return None
        except Exception as exc:  # shown in the widget, never a traceback
            self.status.value = ""
            self._error(f"Search failed: {type(exc).__name__}: {exc}")
            return None
        finally:
            self.progress.value = 1
            self.progress.layout.visibility = "hidden"
            self.search_button.disabled = False
        self.last, self.comparison = s, comp
        secs = res.rank_seconds + res.retrain_seconds
        secs += res.placebo_seconds
        if s["found"] and s["verdict"] != "finding":
            self.status.value = (f"<span class='cfd-search-result'>Flipping {s['k']} label(s) changes the prediction, "
                                 f"but this is <b>{html.escape(s['verdict'])}</b>: specificity {s['specificity']:.2f} "
                                 f"(random sets of {s['k']} label(s) from the same pool flip it "
                                 f"{1 - s['specificity']:.0%} of the time) ({secs:.1f} s)</span>")
        elif s["found"]:
            self.status.value = (f"<span class='cfd-search-result'>CFD found: flipping {s['k']} label(s) changes the "
                                 f"prediction ✔, specificity {s['specificity']:.2f} (random sets of the same size "
                                 f"flip it {1 - s['specificity']:.0%} of the time) ({secs:.1f} s)</span>")
        if s["found"]:
            self.result_html.value = (
                f"<div><b>Logit</b> {s['logit_before']:+.3f} ({html.escape(s['pred_before'])}) → "
                f"<b>{s['logit_after']:+.3f}</b> ({html.escape(s['pred_after'])}) after retraining with training "
                f"rows {s['flipped_indices']} relabeled.</div><b>Is it meaningful?</b> The test row next to the flipped "
                f"training rows:" + _html_table(comp))
        else:
            self.status.value = (f"<span class='cfd-search-result'>No CFD within budget m = {s['budget']}: the "
                                 f"prediction survives flipping the top {min(s['budget'], s['n_candidates'])} labels "
                                 f"({secs:.1f} s)</span>")
        return s

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
