"""``FlipExplorer``: one test point, its flip set ``S_t``, the probability path, and a real retrain.

The widget is a thin view.  Everything it shows comes from small pure
functions in this module, which are tested on their own:

* :func:`describe_rows` -- one short string per row of a feature table,
* :func:`search_texts` -- test points whose text contains every query word,
* :func:`point_summary` -- text, label, predicted probability and ``|S_t|`` of one test point,
* :func:`flip_set_table` -- the table of ``S_t`` (training text, label, new label, effect),
* :func:`probability_path` -- estimated ``P(y=1)`` as the greedy set grows,
* :func:`verify_point` -- retrain with ``S_t`` relabeled and report the new probability;
* :func:`minimal_point` -- the verified minimal set and the certified lower bound of one test point
  (``RelabelAudit.minimal_sets`` on that row only), beside Algorithm 1's ``|S_t|``;
* :func:`minimal_sentence` -- "Algorithm 1 says 61 labels; 7 really suffice; no fewer than 3 can";
* :func:`minimal_set_table` -- the verified minimal set's training rows;
* :func:`path_figure` -- the path drawn by :func:`cfdkit.plots.probability_path`.

Only the public cfdkit API is used: ``RelabelAudit.flip_sets``,
``RelabelAudit.retrain_probabilities``, ``RelabelAudit.minimal_sets``, ``RelabelAudit.y_train_``,
``FlipSets.indices / effects / path / prob / size / threshold`` and
``MinimalSets.size / status / lower_bound / new_prob / one_minimal / indices``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ExplorerError",
    "FlipExplorer",
    "describe_rows",
    "search_texts",
    "point_summary",
    "flip_set_table",
    "probability_path",
    "verify_point",
    "minimal_point",
    "minimal_sentence",
    "minimal_set_table",
    "path_figure",
]


class ExplorerError(ValueError):
    """A selection the explorer cannot show; its message is meant for the user."""


# ------------------------------------------------------------------ pure logic
def describe_rows(X, feature_names: Sequence[str] | None = None, max_items: int = 6) -> list[str]:
    """One short human-readable string per row of ``X``.

    ``X`` may be a pandas DataFrame (``"col=value, ..."``), a dense array or a
    scipy sparse matrix (the ``max_items`` largest-magnitude non-zero features,
    ``"name=value"``).  Used to show tabular or numeric training points in the
    ``S_t`` table where there are no texts.
    """
    if isinstance(X, pd.DataFrame):
        cols = list(X.columns)
        out = []
        for row in X.itertuples(index=False):
            items = [f"{c}={_fmt(v)}" for c, v in zip(cols, row)]
            out.append(", ".join(items[:max_items]) + (", …" if len(items) > max_items else ""))
        return out
    if hasattr(X, "tocsr"):
        X = X.tocsr()
        n, d = X.shape
        names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
        out = []
        for i in range(n):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            cols, vals = X.indices[lo:hi], X.data[lo:hi]
            order = np.argsort(-np.abs(vals), kind="stable")[:max_items]
            out.append(", ".join(f"{names[cols[j]]}={_fmt(vals[j])}" for j in order) or "(empty)")
        return out
    A = np.asarray(X)
    if A.ndim != 2:
        raise ValueError(f"X must be 2-D (rows x features); got shape {A.shape}.")
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(A.shape[1])]
    out = []
    for row in A:
        order = np.argsort(-np.abs(row), kind="stable")[:max_items]
        out.append(", ".join(f"{names[j]}={_fmt(row[j])}" for j in order))
    return out


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    return str(v)


def search_texts(texts: Sequence[str], query: str, limit: int = 20) -> list[int]:
    """Indices of the texts containing every word of ``query`` (case-insensitive), at most ``limit``.

    A query that is a plain integer also matches the test point with that index.
    An empty query matches nothing.
    """
    if query is not None and not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}.")
    if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"limit must be a non-negative int, got {limit!r}.")
    q = (query or "").strip()
    if not q or texts is None:
        return []
    hits: list[int] = []
    if q.isdigit() and int(q) < len(texts):
        hits.append(int(q))
    words = [w for w in re.split(r"\s+", q.lower()) if w]
    for i, t in enumerate(texts):
        if len(hits) >= limit:
            break
        low = str(t).lower()
        if all(w in low for w in words) and i not in hits:
            hits.append(i)
    return hits[:limit]


def _check_index(res, i) -> int:
    if i is None:
        raise ExplorerError("No test point selected; pick one with the slider or the search box.")
    n = len(res.size)
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise ExplorerError(f"The test point must be an integer index; got {i!r}.")
    if not 0 <= int(i) < n:
        raise ExplorerError(f"Test point {i} does not exist; there are {n} test points (0 to {n - 1}).")
    return int(i)


def _check_len(seq, need: int, name: str, what: str) -> None:
    """``seq`` must have at least ``need`` entries (else a readable :class:`ExplorerError`)."""
    if seq is None:
        return
    try:
        n = len(seq)
    except TypeError:
        raise ExplorerError(f"{name} must be a sequence (one entry per {what}), got {type(seq).__name__}.") from None
    if n < need:
        raise ExplorerError(f"{name} has {n} entries but {what} #{need - 1} is needed; pass one entry per "
                            f"{what} (the same rows as the audit).")


def _label_name(v, label_names) -> str:
    if v is None:
        return "—"
    v = int(v)
    if label_names is not None and v in (0, 1) and len(label_names) > v:
        return f"{label_names[v]} ({v})"
    return str(v)


def point_summary(res, i, texts=None, labels=None, label_names=None) -> dict:
    """What the header of the explorer shows for test point ``i``.

    Returns a dict with ``index, text, label, prob, predicted, size, found,
    threshold, estimated_new_prob``.
    """
    i = _check_index(res, i)
    _check_len(texts, i + 1, "texts", "test point")
    _check_len(labels, i + 1, "labels", "test point")
    prob = float(res.prob[i])
    pred = int(prob > res.threshold)
    size = int(res.size[i])
    return {
        "index": i,
        "text": None if texts is None else str(texts[i]),
        "label": None if labels is None else int(labels[i]),
        "label_name": None if labels is None else _label_name(labels[i], label_names),
        "prob": prob,
        "predicted": pred,
        "predicted_name": _label_name(pred, label_names),
        "size": size,
        "found": size > 0,
        "threshold": float(res.threshold),
        "estimated_new_prob": float(res.path(i)[-1]) if size else float("nan"),
    }


def flip_set_table(res, i, train_labels, train_texts=None, label_names=None, max_rows: int | None = 50) -> pd.DataFrame:
    """The table of ``S_t`` for test point ``i``, in greedy order.

    Columns: ``rank`` (1-based), ``train_index``, ``text`` (training text or
    feature description, when given), ``label`` (current training label),
    ``new_label`` (the label it would get: ``1 - label`` for relabeling),
    ``effect`` (estimated change of ``P(y=1)``) and ``prob_after`` (estimated
    ``P(y=1)`` once this and all earlier members are relabeled).  At most
    ``max_rows`` rows (None: all).  Empty (same columns) where no set exists.
    """
    i = _check_index(res, i)
    if max_rows is not None and (isinstance(max_rows, (bool, np.bool_)) or not isinstance(max_rows, (int, np.integer))
                                 or max_rows < 0):
        raise ExplorerError(f"max_rows must be a non-negative int or None, got {max_rows!r}.")
    idx = res.indices(i)
    eff = res.effects(i)
    path = res.path(i)[1:]
    y = np.asarray(train_labels)
    cols = ["rank", "train_index"] + (["text"] if train_texts is not None else []) + [
        "label", "new_label", "effect", "prob_after"]
    if idx.size == 0:
        return pd.DataFrame({c: [] for c in cols})
    if max_rows is not None:
        idx, eff, path = idx[:max_rows], eff[:max_rows], path[:max_rows]
    need = int(idx.max()) + 1
    _check_len(y, need, "train_labels", "training point")
    _check_len(train_texts, need, "train_texts", "training point")
    lab = y[idx].astype(int)
    new = lab if getattr(res, "kind", "relabel") == "remove" else 1 - lab
    data = {"rank": np.arange(1, idx.size + 1), "train_index": idx}
    if train_texts is not None:
        data["text"] = [str(train_texts[j]) for j in idx]
    data["label"] = [_label_name(v, label_names) for v in lab]
    data["new_label"] = (["(removed)"] * idx.size if getattr(res, "kind", "relabel") == "remove"
                         else [_label_name(v, label_names) for v in new])
    data["effect"] = eff
    data["prob_after"] = path
    return pd.DataFrame(data, columns=cols)


def probability_path(res, i) -> pd.DataFrame:
    """Estimated ``P(y=1)`` after relabeling the first ``k`` members of ``S_t``, ``k = 0..|S_t|``.

    Columns ``k``, ``prob``, ``crossed`` (the prediction at ``k`` differs from
    the original one).  One row (``k = 0``) where no set exists.
    """
    i = _check_index(res, i)
    p = res.path(i)
    pred0 = p[0] > res.threshold
    return pd.DataFrame({"k": np.arange(p.size), "prob": p, "crossed": (p > res.threshold) != pred0})


def path_figure(res, i, ax=None, title: str | None = None):
    """Figure of test point ``i``'s probability path with the threshold ``tau`` (:func:`cfdkit.plots.probability_path`)."""
    from cfdkit import plots

    i = _check_index(res, i)
    return plots.probability_path(res.path(i), res.threshold, ax=ax,
                                  title=title or f"Test point {i}: probability path")


def verify_point(audit, X_test, res, i) -> dict:
    """Retrain with ``S_t`` of test point ``i`` relabeled; the real new probability.

    Calls ``audit.retrain_probabilities(X_test[i:i+1], [S_t])`` (one refit).
    Returns ``index, size, old_prob, estimated_prob, new_prob, flipped,
    threshold``.  Raises :class:`ExplorerError` (a readable message) where
    there is no set, and wraps a failed refit the same way.
    """
    i = _check_index(res, i)
    idx = res.indices(i)
    if idx.size == 0:
        raise ExplorerError(f"Test point {i} has no flip set S_t (Algorithm 1 found none), so there is nothing "
                            "to retrain with.")
    row = X_test[i:i + 1] if not isinstance(X_test, pd.DataFrame) else X_test.iloc[i:i + 1]
    try:
        new = float(audit.retrain_probabilities(row, [idx], kind=getattr(res, "kind", "relabel"))[0])
    except Exception as exc:  # the widget must show a message, never a traceback
        raise ExplorerError(f"Retraining failed: {type(exc).__name__}: {exc}") from exc
    old = float(res.prob[i])
    return {
        "index": i,
        "size": int(idx.size),
        "old_prob": old,
        "estimated_prob": float(res.path(i)[-1]),
        "new_prob": new,
        # NaN: the refit did not converge, so whether it flips is unknown (never shown as "not flipped")
        "flipped": None if not np.isfinite(new) else bool((new > res.threshold) != (old > res.threshold)),
        "converged": bool(np.isfinite(new)),
        "threshold": float(res.threshold),
    }


def _row(X_test, i):
    return X_test.iloc[i:i + 1] if isinstance(X_test, pd.DataFrame) else X_test[i:i + 1]


def minimal_point(audit, X_test, res, i, max_size: int | None = None) -> dict:
    """The verified minimal relabel set of test point ``i`` beside Algorithm 1's ``S_t``.

    Calls ``audit.minimal_sets(X_test[i:i+1], max_size=max_size)`` — the selected row only.  Returns
    ``index, estimated_size`` (Algorithm 1's ``|S_t|`` from ``res``; 0 = none), ``size`` (0 = none found),
    ``status`` (``"verified"``: an exact, converged refit flips the prediction; ``"not_found"``),
    ``lower_bound`` (certified: no relabeling of fewer labels flips it), ``new_prob`` (after the refit; NaN
    where none), ``one_minimal``, ``indices`` (int64), ``old_prob``, ``threshold`` and ``sentence``
    (:func:`minimal_sentence`).  Raises :class:`ExplorerError` (a readable message) when the search fails.
    """
    i = _check_index(res, i)
    try:
        ms = audit.minimal_sets(_row(X_test, i), max_size=max_size)
    except Exception as exc:  # the widget must show a message, never a traceback
        raise ExplorerError(f"The minimal-set search failed: {type(exc).__name__}: {exc}") from exc
    out = {
        "index": i,
        "estimated_size": int(res.size[i]),
        "size": int(ms.size[0]),
        "status": str(ms.status[0]),
        "lower_bound": int(ms.lower_bound[0]),
        "new_prob": float(ms.new_prob[0]),
        "one_minimal": bool(ms.one_minimal[0]),
        "proven_minimal": bool(ms.proven_minimal[0]),
        "indices": ms.indices(0),
        "old_prob": float(res.prob[i]),
        "threshold": float(res.threshold),
    }
    out["sentence"] = minimal_sentence(out)
    return out


def minimal_sentence(m: dict) -> str:
    """One line comparing the two sets: "Algorithm 1 says 61 labels; 7 really suffice; no fewer than 3 can".

    A verified set of one label needs no third clause (nothing smaller exists); a set whose certified lower bound
    equals its size is "proven minimal".

    ``m`` has ``estimated_size``, ``size``, ``status`` and ``lower_bound`` (as :func:`minimal_point` returns).
    """
    est, size, lb = int(m["estimated_size"]), int(m["size"]), int(m["lower_bound"])
    first = (f"Algorithm 1 says {est} label{'s' if est != 1 else ''}" if est > 0
             else "Algorithm 1 finds no set")
    if m["status"] == "verified":
        second = f"{size} really suffice{'s' if size == 1 else ''}"
    else:
        second = "no set that really flips it was found"
    if m["status"] == "verified" and size == 1:
        return f"{first}; {second}"                     # one label: nothing smaller exists
    if m["status"] == "verified" and lb >= size:
        third = "proven minimal: no fewer can"
    elif lb > 1:
        third = f"no fewer than {lb} can"
    else:
        third = "no certificate rules out fewer"
    return f"{first}; {second}; {third}"


def minimal_set_table(m: dict, train_labels, train_texts=None, label_names=None, max_rows: int | None = 50,
                      estimated=None) -> pd.DataFrame:
    """The verified minimal set of :func:`minimal_point`'s result ``m``: ``train_index, (text), label, new_label``.

    With ``estimated`` (the training rows of Algorithm 1's ``S_t``, in its order) the table starts with
    ``rank_in_S_t`` (1 = the row Algorithm 1 ranks first; empty where the row is not in ``S_t``) and ``in_S_t``
    (✓ where the row is also in ``S_t``), and lists the rows of ``S_t`` first, by that rank.
    Empty (same columns) where no set was found; at most ``max_rows`` rows (None: all).
    """
    idx = np.asarray(m["indices"], dtype=np.int64)
    lead = ["rank_in_S_t", "in_S_t"] if estimated is not None else []
    cols = lead + ["train_index"] + (["text"] if train_texts is not None else []) + ["label", "new_label"]
    if idx.size == 0:
        return pd.DataFrame({c: [] for c in cols})
    rank = None
    if estimated is not None:
        pos = {int(j): r + 1 for r, j in enumerate(np.asarray(estimated, dtype=np.int64))}
        r = np.array([pos.get(int(j), 0) for j in idx])
        order = np.lexsort((idx, np.where(r > 0, r, np.iinfo(np.int64).max)))
        idx, rank = idx[order], r[order]
    if max_rows is not None:
        idx = idx[:max_rows]
        rank = None if rank is None else rank[:max_rows]
    y = np.asarray(train_labels)
    need = int(idx.max()) + 1
    _check_len(y, need, "train_labels", "training point")
    _check_len(train_texts, need, "train_texts", "training point")
    lab = y[idx].astype(int)
    data = {}
    if rank is not None:
        data["rank_in_S_t"] = [str(int(v)) if v > 0 else "" for v in rank]
        data["in_S_t"] = ["✓" if v > 0 else "" for v in rank]
    data["train_index"] = idx
    if train_texts is not None:
        data["text"] = [str(train_texts[j]) for j in idx]
    data["label"] = [_label_name(v, label_names) for v in lab]
    data["new_label"] = [_label_name(v, label_names) for v in 1 - lab]
    return pd.DataFrame(data, columns=cols)


# ------------------------------------------------------------------ the widget
def _table_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<i>S<sub>t</sub> is empty: no set of training labels is estimated to flip this prediction.</i>"
    fmt = {"effect": "{:+.4f}".format, "prob_after": "{:.4f}".format}
    body = df.to_html(index=False, escape=True, formatters=fmt, classes="cfd-table", border=0)
    return ("<div style='max-height:320px;overflow:auto'>"
            "<style>.cfd-table td{max-width:520px;white-space:normal;font-size:12px;padding:2px 6px}"
            ".cfd-table th{font-size:12px;text-align:left}</style>" + body + "</div>")


class FlipExplorer:
    """Pick a test point; see its flip set ``S_t``, the probability path, and verify by retraining.

    Parameters
    ----------
    audit : cfdkit.RelabelAudit
        Fitted.
    X_test : array, sparse matrix or DataFrame of features
        The rows the audit's ``flip_sets`` ran on (or will run on).
    texts, labels : sequence, optional
        Test texts (enables the search box) and true test labels.
    train_texts, train_labels : sequence, optional
        Training texts (or :func:`describe_rows` strings) and labels for the
        ``S_t`` table; ``train_labels`` defaults to ``audit.y_train_``.
    result : cfdkit.FlipSets, optional
        Precomputed ``audit.flip_sets(X_test)``; computed here otherwise.
    label_names : pair of str, optional
        Names of labels 0 and 1, e.g. ``("noHate", "hate")``.
    index : int, default: the first point with a set
    max_rows : int, default 50
        Rows of the ``S_t`` table shown.

    Attributes (the widgets, for tests and layouts)
    -----------------------------------------------
    slider, search, matches, header, table, plot, verify_button, progress, status, widget
    """

    def __init__(self, audit, X_test, texts=None, labels=None, train_texts=None, train_labels=None, result=None,
                 *, label_names=None, index: int | None = None, max_rows: int = 50):
        import ipywidgets as W

        self.audit = audit
        self.X_test = X_test
        self.texts = texts
        self.labels = None if labels is None else np.asarray(labels)
        self.train_texts = train_texts
        self.train_labels = np.asarray(audit.y_train_ if train_labels is None else train_labels)
        self.label_names = label_names
        self.max_rows = max_rows
        self.result = audit.flip_sets(X_test) if result is None else result
        self.verified: dict[int, dict] = {}
        self.minimal: dict[int, dict] = {}
        self.path_data = None
        n = len(self.result.size)
        n_train = len(self.train_labels)
        for nm, seq, want, what in (("texts", texts, n, "test point"), ("labels", self.labels, n, "test point"),
                                    ("train_texts", train_texts, n_train, "training point")):
            if seq is not None and len(seq) != want:
                raise ValueError(f"{nm} has {len(seq)} entries but there are {want} {what}s; pass one entry per "
                                 f"{what}, in the same order as the audit's rows.")
        if max_rows is not None and (isinstance(max_rows, (bool, np.bool_))
                                     or not isinstance(max_rows, (int, np.integer)) or max_rows < 0):
            raise ValueError(f"max_rows must be a non-negative int or None, got {max_rows!r}.")
        if index is not None and (isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer))
                                  or not 0 <= index < max(n, 1)):
            raise ValueError(f"index must be an int in [0, {max(n - 1, 0)}] (a test point), got {index!r}.")
        if index is None:
            found = np.nonzero(self.result.size > 0)[0]
            index = int(found[0]) if found.size else 0

        self.slider = W.IntSlider(value=index, min=0, max=max(n - 1, 0), description="test point",
                                  continuous_update=False, layout=W.Layout(width="420px"))
        self.search = W.Text(placeholder="search test texts…", description="search",
                             layout=W.Layout(width="420px", display="" if texts is not None else "none"))
        self.matches = W.Dropdown(options=[], description="matches",
                                  layout=W.Layout(width="640px", display="none"))
        self.header = W.HTML()
        self.table = W.HTML()
        self.plot = W.Output(layout=W.Layout(min_height="240px"))
        fit = W.Layout(width="auto", min_width="max-content", overflow="visible")       # the label never cut off
        self.verify_button = W.Button(description="Verify the estimate (retrain)", icon="refresh", layout=fit,
                                      tooltip="Retrain the model with S_t relabeled and check the prediction")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", bar_style="info",
                                      layout=W.Layout(width="160px", visibility="hidden"))
        self.status = W.HTML()
        self.message = W.HTML()
        self.minimal_button = W.Button(description="Find the minimal set (retrains)", icon="search",
                                       button_style="primary", layout=W.Layout(width="auto", min_width="max-content",
                                                                               overflow="visible"),
                                       tooltip="Search the smallest set that really flips this prediction "
                                               "(refits; this test point only) and a certified lower bound")
        self.minimal_status = W.HTML()
        self.minimal_table = W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>FlipExplorer</b> — which training labels, relabeled, flip this prediction?"),
            W.HBox([self.slider, self.search]), self.matches, self.message, self.header,
            W.HTML("<b>The answer: the minimal set</b> (verified by retraining)"),
            W.HBox([self.minimal_button, self.minimal_status], layout=W.Layout(flex_flow="row wrap",
                                                                               align_items="center")),
            self.minimal_table,
            W.HTML("<b>Algorithm 1's estimated set S<sub>t</sub></b> (a linear estimate)"),
            W.HBox([self.verify_button, self.progress, self.status], layout=W.Layout(flex_flow="row wrap",
                                                                                     align_items="center")),
            W.HBox([self.plot, self.table], layout=W.Layout(flex_flow="row wrap")),
        ])
        self.minimal_status.layout = W.Layout(flex="1 1 400px")
        self.plot.layout = W.Layout(min_height="240px", flex="0 0 auto")
        self.table.layout = W.Layout(flex="1 1 420px")
        self.minimal_button.add_class("cfd-minimal")
        self.minimal_status.add_class("cfd-minimal-status")
        self.widget.add_class("cfd-flip-explorer")
        self.verify_button.add_class("cfd-verify")
        self.status.add_class("cfd-verify-status")

        self.slider.observe(lambda ch: self.show(ch["new"]), names="value")
        self.search.observe(lambda ch: self._on_search(ch["new"]), names="value")
        self.matches.observe(self._on_match, names="value")
        self.verify_button.on_click(lambda _b: self.run_verify())
        self.minimal_button.on_click(lambda _b: self.run_minimal())
        self.show(index)

    # ---- actions
    @property
    def index(self) -> int:
        return int(self.slider.value)

    def show(self, i) -> None:
        """Render test point ``i`` (header, table, path).  Bad indices give a message."""
        self.status.value = ""
        self.minimal_status.value = ""
        self.minimal_table.value = ""
        try:
            s = point_summary(self.result, i, self.texts, self.labels, self.label_names)
            table = flip_set_table(self.result, i, self.train_labels, self.train_texts, self.label_names,
                                   self.max_rows)
        except ExplorerError as exc:
            self._error(str(exc))
            return
        self.message.value = ""
        self.header.value = self._header_html(s)
        shown = f" (first {self.max_rows} of {s['size']})" if s["size"] > self.max_rows else ""
        self.table.value = f"<b>S<sub>t</sub>{shown}</b>" + _table_html(table)
        self.verify_button.disabled = not s["found"]
        if s["index"] in self.verified:
            self.status.value = self._verify_html(self.verified[s["index"]])
        if s["index"] in self.minimal:
            self._show_minimal(self.minimal[s["index"]])
        self.path_data = probability_path(self.result, s["index"])
        self.plot.clear_output(wait=True)
        with self.plot:
            import matplotlib.pyplot as plt
            fig = path_figure(self.result, s["index"])
            if _in_ipython():
                from IPython.display import display
                display(fig)
            plt.close(fig)

    def _on_search(self, query) -> None:
        if self.texts is None:
            return
        hits = search_texts(self.texts, query)
        if not (query or "").strip():
            self.matches.layout.display = "none"
            self.message.value = ""
            return
        if not hits:
            self.matches.options = []
            self.matches.layout.display = "none"
            self._error(f"No test text contains {query!r}.")
            return
        self.message.value = ""
        self.matches.options = [(f"#{j}: {str(self.texts[j])[:90]}", j) for j in hits]
        self.matches.layout.display = ""
        self.matches.value = hits[0]

    def _on_match(self, ch) -> None:
        if ch["new"] is not None:
            self.slider.value = int(ch["new"])

    def run_verify(self, i=None) -> dict | None:
        """Retrain for test point ``i`` (default: the selected one) and show the outcome."""
        i = self.index if i is None else i
        self.progress.layout.visibility = "visible"
        self.progress.value = 0
        self.verify_button.disabled = True
        self.status.value = "<span class='cfd-running'>⏳ retraining with S<sub>t</sub> relabeled…</span>"
        try:
            out = verify_point(self.audit, self.X_test, self.result, i)
        except ExplorerError as exc:
            self.status.value = ""
            self._error(str(exc))
            return None
        finally:
            self.progress.value = 1
            self.progress.layout.visibility = "hidden"
            self.verify_button.disabled = False
        self.verified[out["index"]] = out
        self.message.value = ""
        self.status.value = self._verify_html(out)
        return out

    def run_minimal(self, i=None, max_size: int | None = None) -> dict | None:
        """Search the verified minimal set of test point ``i`` (default: the selected one) and show it
        beside ``S_t`` with its lower bound (:func:`minimal_point`; this row only)."""
        i = self.index if i is None else i
        self.minimal_button.disabled = True
        self.minimal_status.value = "<span class='cfd-running'>⏳ searching (refits)…</span>"
        try:
            out = minimal_point(self.audit, self.X_test, self.result, i, max_size=max_size)
        except ExplorerError as exc:
            self.minimal_status.value = ""
            self._error(str(exc))
            return None
        finally:
            self.minimal_button.disabled = False
        self.minimal[out["index"]] = out
        self.message.value = ""
        self._show_minimal(out)
        return out

    def _show_minimal(self, m) -> None:
        self.minimal_status.value = self._minimal_html(m)
        est = self.result.indices(m["index"]) if m["estimated_size"] > 0 else np.empty(0, dtype=np.int64)
        table = minimal_set_table(m, self.train_labels, self.train_texts, self.label_names, self.max_rows,
                                  estimated=est)
        if table.empty:
            self.minimal_table.value = "<i>No verified minimal set was found.</i>"
            return
        table = table.rename(columns={"rank_in_S_t": "rank in S_t", "in_S_t": "also in S_t"})
        body = table.to_html(index=False, escape=True, classes="cfd-table cfd-minimal-table", border=0)
        shown = f" (first {self.max_rows} of {m['size']})" if self.max_rows is not None and m["size"] > self.max_rows else ""
        both = int((np.isin(np.asarray(m["indices"]), est)).sum())
        self.minimal_table.value = (f"<b>minimal set{shown}</b>: {both} of its {m['size']} rows are also in "
                                    "S<sub>t</sub> (rank = position in Algorithm 1's order)"
                                    "<style>.cfd-minimal-table td{max-width:560px;white-space:normal;font-size:12px;"
                                    "padding:2px 6px}.cfd-minimal-table th{font-size:12px;text-align:left}</style>"
                                    "<div style='max-height:320px;overflow:auto'>" + body + "</div>")

    # ---- rendering
    def _minimal_html(self, m) -> str:
        if m["status"] == "verified":
            tail = (f" Refit with these {m['size']} labels changed: P(y=1) {m['old_prob']:.4f} → "
                    f"<b>{m['new_prob']:.4f}</b> (τ = {m['threshold']:g})"
                    + ("; 1-minimal (dropping any one label stops the flip)." if m["one_minimal"] else "."))
        else:
            tail = ""
        return (f"<span class='cfd-minimal-result'>minimal set: "
                f"<b>{m['size'] if m['status'] == 'verified' else 'none found'}</b> · certified lower bound: "
                f"<b>{m['lower_bound']}</b>" + (" (proven minimal)" if m.get("proven_minimal") else "")
                + f" · Algorithm 1: <b>{m['estimated_size'] or 'none'}</b> — {html.escape(m['sentence'])}.{tail}"
                "</span>")

    def _error(self, msg: str) -> None:
        self.message.value = f"<div class='cfd-error' style='color:#a40000'>⚠ {html.escape(msg)}</div>"

    def _header_html(self, s) -> str:
        parts = [f"<b>Test point #{s['index']}</b>"]
        if s["text"] is not None:
            parts.append(f"<div style='margin:4px 0;padding:4px;background:#f4f4f4'>{html.escape(s['text'])}</div>")
        lab = f"true label <b>{html.escape(s['label_name'])}</b> · " if s["label"] is not None else ""
        size = (f"estimated set |S<sub>t</sub>| = <b>{s['size']}</b> (estimated P(y=1) after: "
                f"{s['estimated_new_prob']:.4f})" if s["found"] else "estimated set |S<sub>t</sub>| = <b>none found</b>")
        parts.append(f"<div>{lab}predicted <b>{html.escape(s['predicted_name'])}</b> · "
                     f"P(y=1) = <b>{s['prob']:.4f}</b> (τ = {s['threshold']:g}) · {size}</div>")
        return "".join(parts)

    def _verify_html(self, out) -> str:
        if out["flipped"] is None:
            return ("<span class='cfd-verify-result'><b style='color:#a06000'>the refit did not converge</b>: "
                    f"whether relabeling these {out['size']} labels flips the prediction is unknown.</span>")
        verdict = ("<b style='color:#0a7a0a'>flipped ✔</b>" if out["flipped"]
                   else "<b style='color:#a40000'>not flipped ✘</b>")
        return (f"<span class='cfd-verify-result'>Retrained with {out['size']} labels changed: P(y=1) "
                f"{out['old_prob']:.4f} → <b>{out['new_prob']:.4f}</b> (estimated {out['estimated_prob']:.4f}); "
                f"{verdict}</span>")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
        return get_ipython() is not None
    except ImportError:  # pragma: no cover
        return False
