"""A self-contained HTML report of an audit, readable without Python (``cfdkit audit`` writes ``report.html``).

The report opens with a plain-language summary (what was audited, the class names, what the threshold means,
how many predictions can be overturned by how few training labels), then every number with a one-line meaning,
the cases a reader learns from (largest gaps between Algorithm 1's estimate and the minimal set, the most robust
and the most fragile predictions), figures with captions and, per case, the test point itself (its text, or its
features) and the training rows of its set with the label change ``old -> new``.  It has no external links: one
file to mail to an auditor.

:func:`report_rows` loads the texts/raw rows of a ``cfdkit audit`` run again through
:func:`cfdkit.data.prepare` (the one preparation path, same seed and subset); :func:`audit_report_html`
renders; :func:`write_audit_report` does both and writes the file atomically.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["report_rows", "fragile_points", "audit_report_html", "write_audit_report", "CLASS_NAMES",
           "VOCABULARY", "METRIC_MEANINGS"]

#: What labels 0 and 1 mean, per data set (the loaders' ``meta["positive_class"]`` in words).
CLASS_NAMES = {"hate-speech": ("not hate", "hate"), "sst2": ("negative", "positive"),
               "loan": ("repaid", "defaulted"), "synthetic": ("class 0", "class 1")}

#: The one paragraph that says what the words of every cfdkit output mean (README, notebooks and reports).
VOCABULARY = (
    "An <b>estimated set</b> is Algorithm 1's answer: training labels that a linear estimate of retraining "
    "predicts will flip the prediction; it is fast but can be too large, or not flip at all. A <b>verified "
    "set</b> is one where the model was really retrained with those labels changed and the prediction moved to "
    "the other side of the threshold. Each retraining answers in one of two ways: <b>converged</b> (the retraining "
    "was run to its tolerance and the new probability read off) or <b>certified</b> (a mathematical proof, from a "
    "partly finished retraining, that the prediction lands on one side of the threshold). A <b>minimal set</b> is "
    "a verified set from which no single label can be dropped without losing the flip; it is <b>proven "
    "minimal</b> when a certified lower bound (no smaller relabeling can flip the prediction) equals its size.")

#: summary.json key -> (label, one-line meaning) shown in the report's table of numbers.
METRIC_MEANINGS = {
    "n_test": ("test predictions audited", "Test points whose prediction was examined."),
    "n_train": ("training rows", "Rows the model was trained on; a set is a choice among them."),
    "accuracy": ("accuracy", "Share of the audited test predictions that match the true label."),
    "threshold": ("threshold", "The model predicts class 1 when its probability of class 1 is above this."),
    "threshold_from": ("threshold set by", "Where the threshold came from (--threshold or the paper's value)."),
    "l2": ("L2 regularization", "Strength of the penalty on large weights (objective: losses + l2/2 |w|^2)."),
    "l2_from": ("L2 set by", "Where the regularization came from (--l2 or the paper's value)."),
    "seed": ("seed", "Seeds the choice of test rows (--n-test) and the solvers: the same seed gives the same run."),
    "minimal_found_rate": ("minimal set found", "Share of predictions with a verified minimal set."),
    "n_minimal_found": ("predictions with a minimal set", "How many predictions a verified set overturns."),
    "median_verified_size": ("median minimal set size", "Typical number of training labels that really suffice."),
    "median_lower_bound": ("median certified lower bound",
                           "Typical number of labels proven necessary (no relabeling of fewer flips)."),
    "proven_minimal_rate": ("proven minimal", "Share of minimal sets whose size equals the certified lower bound."),
    "median_estimated_size": ("median estimated set size (same run)",
                              "Algorithm 1's typical estimate, for comparison with the minimal set."),
    "found_rate": ("estimated set found", "Share of predictions for which Algorithm 1 proposes a set."),
    "flip_rate": ("estimated set flips when retrained",
                  "Share of predictions whose estimated set really flips them (retrained to convergence)."),
    "success_ratio": ("estimated sets that flip",
                      "Flipping estimated sets as a share of the sets proposed; equals the line above when every "
                      "prediction has an estimated set."),
    "mean_size": ("mean estimated set size", "Average size of Algorithm 1's sets (labels)."),
    "median_size": ("median estimated set size", "Typical size of Algorithm 1's sets (labels)."),
    "n_not_converged": ("retrainings without an answer",
                        "Checks of estimated sets whose retraining did not reach its tolerance (counted as unknown)."),
    "verified": ("estimated sets checked", "Whether Algorithm 1's sets were checked by retraining."),
    "minimal": ("minimal sets searched", "Whether the search for minimal sets ran (off with --estimate-only)."),
    "seconds": ("total time, seconds", "Wall-clock time of the whole run."),
    "seconds_minimal": ("minimal search, seconds", "Time spent finding and verifying the minimal sets."),
    "seconds_algorithm1": ("Algorithm 1, seconds", "Time of the linear estimate for all predictions."),
    "seconds_verify": ("checking estimates, seconds", "Time spent retraining to check Algorithm 1's sets."),
    "dataset": ("data set", "The data audited."),
    "features": ("features", "How the inputs were turned into numbers."),
}

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top} th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.point{border:1px solid #ccc;border-radius:6px;padding:10px 14px;margin:16px 0;background:#fcfcfc}
.text{font-family:Georgia,serif;background:#fff;border-left:3px solid #888;padding:4px 8px;margin:6px 0}
.flip{font-weight:bold;color:#a40000;white-space:nowrap} .muted{color:#777;font-size:.9em}
.figs figure{margin:12px 0} .figs img{max-width:100%;width:720px;border:1px solid #eee}
figcaption{font-size:.95em;color:#333;max-width:760px} .plain{font-size:1.08em;max-width:860px}
.key{color:#999;font-size:.8em;font-family:monospace}
"""


def _describe_table(X, idx, max_items: int = 8) -> list[str]:
    """Short ``name=value`` descriptions of rows ``idx`` of a numeric matrix or DataFrame."""
    import scipy.sparse as sp

    idx = np.asarray(idx, dtype=np.int64)
    if isinstance(X, pd.DataFrame):
        out = []
        for _, row in X.iloc[idx].iterrows():
            items = [f"{c}={_fmt(v)}" for c, v in row.items()]
            out.append(", ".join(items[:max_items]) + (" ..." if len(items) > max_items else ""))
        return out
    if sp.issparse(X):
        X = X.tocsr()
        out = []
        for i in idx:
            r = X.getrow(int(i))
            items = [f"x{j}={_fmt(v)}" for j, v in zip(r.indices, r.data)]
            out.append(", ".join(items[:max_items]) + (" ..." if len(items) > max_items else "") or "(all zero)")
        return out
    A = np.asarray(X)
    return [", ".join(f"x{j}={_fmt(v)}" for j, v in enumerate(A[i, :max_items]))
            + (" ..." if A.shape[1] > max_items else "") for i in idx]


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


def report_rows(dataset: str, features: str | None = None, *, seed: int = 0, n_test: int | None = None,
                data_home=None, test_index=None) -> dict:
    """Texts (or raw rows / features) and training labels of a ``cfdkit audit`` run, via :func:`cfdkit.data.prepare`.

    The rows are selected by ``seed`` and ``n_test`` only (not by the features), so text data sets are read
    with their cheapest features (``bow``) even when the run used embeddings.

    Parameters
    ----------
    test_index : array-like (n_test,), optional
        The run's ``test_index`` column; when given it must equal the rows prepared here (else ValueError:
        the report would show other points than were audited).

    Returns
    -------
    dict
        ``describe_train(idx) -> list[str]``, ``describe_test(idx) -> list[str]`` (idx: positions in the
        prepared training / test rows), ``y_train`` (int64, (n_train,)), ``kind`` ("text" or "features"),
        ``train_index`` (original row of each prepared training row).
    """
    from .data.prepare import FEATURES, canonical_dataset, prepare

    ds = canonical_dataset(dataset)
    feats = features or FEATURES[ds][0]
    if feats == "embeddings":  # same rows, no embedding model needed for the texts
        feats = FEATURES[ds][0]
    prep = prepare(ds, feats, seed=seed, n_test=n_test, data_home=data_home)
    if test_index is not None and not np.array_equal(np.asarray(prep.info["test_index"]), np.asarray(test_index)):
        raise ValueError("the rows prepared for the report are not the audited test rows; pass the run's dataset, "
                         "seed and n_test unchanged.")
    if prep.texts_train is not None:
        tr, te = prep.texts_train, prep.texts_test
        kind = "text"
        d_train = lambda idx: [str(tr[int(i)]) for i in idx]  # noqa: E731
        d_test = lambda idx: [str(te[int(i)]) for i in idx]  # noqa: E731
    else:
        raw_tr, raw_te = prep.info.get("raw_train"), prep.info.get("raw_test")
        A_tr = raw_tr if raw_tr is not None else prep.X_train
        A_te = raw_te if raw_te is not None else prep.X_test
        kind = "features"
        d_train = lambda idx: _describe_table(A_tr, idx)  # noqa: E731
        d_test = lambda idx: _describe_table(A_te, idx)  # noqa: E731
    return {"describe_train": d_train, "describe_test": d_test, "y_train": prep.y_train, "kind": kind,
            "train_index": np.asarray(prep.info["train_index"])}


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(Path(path).stem)}' src='data:image/png;base64,{data}'>"


def _summary_table(summary: dict) -> str:
    """Every number of the run: a label, its value, a one-line meaning and its summary.json key."""
    rows = []
    keys = [k for k in METRIC_MEANINGS if k in summary] + [k for k in summary if k not in METRIC_MEANINGS]
    for k in keys:
        v = summary[k]
        if k == "notes":
            continue
        if (k.endswith("_rate") or k in ("accuracy", "success_ratio")) and isinstance(v, float):
            v = f"{100 * v:.1f} %"
        elif isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, bool):
            v = "yes" if v else "no"
        elif v is None:
            v = "—"
        label, meaning = METRIC_MEANINGS.get(k, (k.replace("_", " "), ""))
        rows.append(f"<tr data-key='{html.escape(str(k))}'><th>{html.escape(label)}</th>"
                    f"<td class='num'>{html.escape(str(v))}</td><td>{html.escape(meaning)}</td>"
                    f"<td class='key'>{html.escape(str(k))}</td></tr>")
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in summary.get("notes") or [])
    return ("<table class='summary'><tr><th>number</th><th>value</th><th>what it means</th>"
            "<th class='key'>summary.json</th></tr>" + "".join(rows) + "</table>"
            + (f"<ul class='notes'>{notes}</ul>" if notes else ""))


def _n(k, word: str) -> str:
    """``1 label``, ``2 labels``, ``2.5 labels``."""
    return f"{k:g} {word}" + ("" if k == 1 else "s")


def _class_names(summary: dict) -> tuple:
    return CLASS_NAMES.get(str(summary.get("dataset")), ("class 0", "class 1"))


def _threshold_words(summary: dict, neg: str, pos: str) -> str:
    thr = summary.get("threshold", 0.5)
    base = (f"The model predicts &ldquo;{pos}&rdquo; when its probability of &ldquo;{pos}&rdquo; is above the "
            f"threshold {thr:g}, otherwise &ldquo;{neg}&rdquo;. ")
    if summary.get("threshold_from") == "--threshold":
        return base + "This threshold was chosen for this run (--threshold)."
    if summary.get("dataset") == "hate-speech":
        return base + ("It is 0.25 rather than 0.5 because only about one training post in nine is hate: at 0.5 "
                       "the model would rarely predict hate. The paper this audit follows (Yang, Xu &amp; Yu 2024) "
                       "uses 0.25 for this data set too.")
    return base + "At 0.5 the model simply predicts the more likely class."


def _plain_summary(df: pd.DataFrame, summary: dict) -> str:
    """The opening paragraphs: what was audited and what it found, in words."""
    neg, pos = _class_names(summary)
    n = len(df)
    nt = summary.get("n_train", "?")
    nt = f"{nt:,}" if isinstance(nt, (int, np.integer)) else nt
    what = (f"This report audits a logistic-regression model trained on {nt} training "
            f"rows of the {html.escape(str(summary.get('dataset')))} data ({html.escape(str(summary.get('features')))} "
            f"features; labels: 0 = &ldquo;{neg}&rdquo;, 1 = &ldquo;{pos}&rdquo;) and {n} of its test predictions. "
            "The question for each prediction: which training labels, had they been different, would have "
            "changed it?")
    out = [f"<p class='plain'>{what} {_threshold_words(summary, neg, pos)}</p>"]
    if "minimal_size" in df.columns:
        ver = df["minimal_status"] == "verified"
        k = int(ver.sum())
        sizes = df.loc[ver, "minimal_size"].to_numpy()
        if k:
            one, five = int((sizes == 1).sum()), int((sizes <= 5).sum())
            med = float(np.median(sizes))
            proven = int(np.asarray(df.loc[ver, "proven_minimal"], dtype=bool).sum()) if "proven_minimal" in df \
                else 0
            est = df.loc[ver & (df["size"] > 0), "size"]
            found = (f"<b>{k} of {n} predictions ({100 * k / max(n, 1):.0f} %) can be overturned</b> by relabeling "
                     f"training rows and retraining: the median minimal set has {_n(med, 'label')}, "
                     f"the smallest {int(sizes.min())}, the largest {int(sizes.max())}. {_n(one, 'prediction')} "
                     f"can be overturned by changing a single training label, {five} by changing at most five. For {proven} of the {k}, a certificate proves that no smaller "
                     "relabeling exists (proven minimal).")
            if len(est):
                found += (f" Algorithm 1, the fast linear estimate, proposes a median of {float(est.median()):g} "
                          f"labels for the same predictions: an estimate, shown beside the minimal sets below.")
        else:
            found = (f"<b>None of the {n} predictions can be overturned</b> by any relabeling the search tried "
                     "(no verified set was found).")
        if n - k and k:
            found += f" For the other {_n(n - k, 'prediction')} no verified set was found."
        out.append(f"<p class='plain'>{found}</p>")
    else:
        f = df["size"] > 0
        out.append(f"<p class='plain'>This run reports Algorithm 1's estimated sets only (--estimate-only): for "
                   f"{int(f.sum())} of {n} predictions it proposes a set (median "
                   f"{(float(df.loc[f, 'size'].median()) if f.any() else float('nan')):g} labels). These are linear "
                   "estimates; run without --estimate-only for verified minimal sets.</p>")
    out.append(f"<p class='plain vocabulary'>{VOCABULARY}</p>")
    return "\n".join(out)


def _case_table(rows: pd.DataFrame, cls: str, neg_pos: tuple, link: str = "minimal") -> str:
    neg, pos = neg_pos
    body = "".join(
        f"<tr><td class='num'>" + (f"<a href='#{link}-{int(r['test_index'])}'>{int(r['test_index'])}</a>"
                                   if r.get("_detail", False) else f"{int(r['test_index'])}") + "</td>"
        f"<td>{pos if int(r['predicted_label']) == 1 else neg}</td><td class='num'>{float(r['prob']):.3f}</td>"
        f"<td class='num'>{int(r['size']) if int(r['size']) > 0 else '—'}</td>"
        f"<td class='num'>{int(r['minimal_size']) if r['minimal_status'] == 'verified' else 'none found'}</td>"
        f"<td class='num'>{int(r['lower_bound'])}</td></tr>" for _, r in rows.iterrows())
    return (f"<table class='cases {cls}'><tr><th>test row</th><th>predicted</th><th>P({pos})</th>"
            "<th>estimated set size</th><th>minimal set size</th><th>certified lower bound</th></tr>"
            f"{body}</table>")


def telling_cases(df: pd.DataFrame, threshold: float, n: int = 5) -> dict:
    """The rows a reader learns from: ``gaps`` (largest estimated − minimal size among rows with both),
    ``robust`` (largest minimal sets first, then rows with none found, farthest from the threshold first) and
    ``fragile`` (smallest minimal sets, closest to the threshold first); each a frame of up to ``n`` rows."""
    d = df.assign(_m=(df["prob"] - threshold).abs().to_numpy())
    ver = d["minimal_status"] == "verified"
    both = d[ver & (d["size"] > 0)]
    gaps = both.assign(_gap=(both["size"] - both["minimal_size"]).to_numpy())
    gaps = gaps[gaps["_gap"] > 0].sort_values(["_gap", "_m"], ascending=[False, True], kind="stable").head(n)
    robust = pd.concat([d[~ver].sort_values("_m", ascending=False, kind="stable"),
                        d[ver].sort_values(["minimal_size", "_m"], ascending=[False, False], kind="stable")]).head(n)
    fragile = d[ver].sort_values(["minimal_size", "_m"], kind="stable").head(n)
    return {"gaps": gaps, "robust": robust, "fragile": fragile}


def _cases_section(df: pd.DataFrame, summary: dict, n: int) -> tuple:
    """The "cases to learn from" tables and the test rows whose sets are shown in full below."""
    thr = summary.get("threshold", 0.5)
    names = _class_names(summary)
    c = telling_cases(df, thr, n)
    detail = list(dict.fromkeys([int(t) for t in c["fragile"]["test_index"]] +
                                [int(t) for t in c["gaps"]["test_index"]]))
    mark = (lambda f: f.assign(_detail=f["test_index"].astype(int).isin(detail).to_numpy()))
    parts = ["<h2 id='cases'>Cases to learn from</h2>",
             "<h3>Where the estimate was furthest off</h3>",
             "<p>Algorithm 1's estimated set against the minimal set found by retraining, largest gap first. "
             "The estimate is what a linear approximation of retraining predicts; the minimal set is what "
             "retraining shows.</p>",
             _case_table(mark(c["gaps"]), "gaps", names) if len(c["gaps"]) else
             "<p class='muted'>No prediction has a minimal set smaller than its estimated set.</p>",
             "<h3>The most robust predictions</h3>",
             "<p>Predictions that need the most relabeled training labels to change (or where no verified set was "
             "found at all).</p>", _case_table(mark(c["robust"]), "robust", names),
             "<h3>The most fragile predictions</h3>",
             "<p>Predictions that the fewest relabeled training labels overturn; often these sit close to the "
             "threshold, where little is needed.</p>",
             _case_table(mark(c["fragile"]), "fragile", names) if len(c["fragile"]) else
             "<p class='muted'>No verified set.</p>"]
    return "\n".join(parts), detail


#: Caption per figure file (stem); a figure without one is shown with its file name.
CAPTIONS = {
    "estimated_vs_minimal": ("Each dot is one test prediction: the size of Algorithm 1's estimated set (across) "
                             "against the size of the minimal set found by retraining (up). Dots below the dashed "
                             "line are predictions where fewer labels really suffice than estimated."),
    "size_distribution": ("How large Algorithm 1's estimated sets are, as a share of the training set: one bar per "
                          "range of sizes, its height the number of test predictions. The dashed line marks 2 % of "
                          "the training set."),
    "size_vs_confidence": ("Algorithm 1's estimated set size (up, log scale) against how far the prediction's "
                           "probability is from the threshold (across): predictions far from the threshold need "
                           "larger sets."),
}


def _figure(path: Path) -> str:
    stem = Path(path).stem
    cap = CAPTIONS.get(stem, html.escape(stem))
    return f"<figure>{_img(path)}<figcaption>{cap}</figcaption></figure>"


def fragile_points(df: pd.DataFrame, n_points: int = 10) -> pd.DataFrame:
    """The ``n_points`` test points with the smallest found sets (ties: closest to the threshold first)."""
    found = df[df["size"] > 0]
    key = found["margin"] if "margin" in found else (found["prob"] - 0.5).abs()
    return found.assign(_m=key.to_numpy()).sort_values(["size", "_m"], kind="stable").head(n_points).drop(columns="_m")


def _verdict_word(r) -> str:
    if "flipped" not in r.index:
        return "not verified"
    if "converged" in r.index and pd.notna(r["converged"]) and not bool(r["converged"]):
        return "did not converge"
    if pd.isna(r["flipped"]):
        return "unknown"
    return "flipped" if bool(r["flipped"]) else "not flipped"


def audit_report_html(df: pd.DataFrame, summary: dict, rows: dict, *, figures: Sequence = (), n_points: int = 10,
                      max_set_rows: int = 25, title: str | None = None) -> str:
    """Render the report.

    Parameters
    ----------
    df : pandas.DataFrame (n_test rows)
        The frame of :func:`cfdkit.studies.audit_points`: ``test_index, y_true, prob, predicted_label, size,
        indices`` (and ``margin, flipped, new_prob, converged`` where present).
    summary : dict
        What ``cfdkit audit`` writes to ``summary.json``.
    rows : dict
        From :func:`report_rows`.
    figures : sequence of paths to PNG files
        Embedded as base64.
    n_points : int
        How many of the most fragile points (smallest ``|S_t|``) to show.
    max_set_rows : int
        Training rows shown per set (the rest are counted).
    """
    for c in ("test_index", "y_true", "prob", "predicted_label", "size", "indices"):
        if c not in df.columns:
            raise ValueError(f"df has no column {c!r}; pass the frame of cfdkit.studies.audit_points.")
    if not isinstance(n_points, (int, np.integer)) or n_points < 0:
        raise ValueError(f"n_points must be an integer >= 0; got {n_points!r}.")
    y_train = np.asarray(rows["y_train"])
    thr = summary.get("threshold", 0.5)
    name = title or f"cfdkit audit: {summary.get('dataset')} / {summary.get('features')}"
    has_minimal = "minimal_size" in df.columns
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(name)}</h1>",
             "<h2 id='plain'>In plain words</h2>", _plain_summary(df, summary),
             "<h2>The numbers</h2>", _summary_table(summary)]
    detail = []
    if has_minimal:
        cases, detail = _cases_section(df, summary, min(5, n_points) if n_points else 0)
        parts.append(cases)
    figs = [f for f in figures if Path(f).is_file()]
    order = {k: i for i, k in enumerate(CAPTIONS)}
    figs = sorted(figs, key=lambda f: order.get(Path(f).stem, len(order)))
    parts.append("<h2>Figures</h2>")
    parts.append("<div class='figs'>" + "".join(_figure(f) for f in figs) + "</div>" if figs
                 else "<p class='muted'>No figures in this run (--no-plots).</p>")
    if has_minimal:
        parts.append(_minimal_section(df, rows, y_train, thr, n_points, max_set_rows, detail=detail,
                                      names=_class_names(summary)))
    parts.append("<h2 id='estimated'>Algorithm 1's estimated sets</h2>")
    parts.append("<p class='muted'>For every test point, Algorithm 1 (Yang, Xu &amp; Yu 2024) estimates a set "
                 "S<sub>t</sub> of training points whose relabeling flips the prediction, from a linear "
                 "approximation of retraining"
                 + (", and retraining with the set relabeled checked it." if summary.get("verified") else
                    " (not checked by retraining in this run).")
                 + (" These are estimates; the minimal sets above are the verified answer." if has_minimal else "")
                 + "</p>")
    pts = fragile_points(df, n_points)
    parts.append(f"<h3>The {len(pts)} most fragile test points, as estimated</h3>")
    parts.append("<p class='muted'>Smallest sets first. Relabeling the training rows listed (old &rarr; new label) "
                 "and retraining changes the prediction of the test point above them.</p>")
    if pts.empty:
        parts.append("<p>No test point has a set: no prediction can be flipped by relabeling training points "
                     "(as estimated).</p>")
    if not pts.empty:
        over = "".join(
            f"<tr><td class='num'><a href='#test-{int(r['test_index'])}'>{int(r['test_index'])}</a></td>"
            f"<td class='num'>{int(r['size'])}</td><td class='num'>{float(r['prob']):.4f}</td>"
            f"<td>{_verdict_word(r)}</td></tr>" for _, r in pts.iterrows())
        parts.append("<table class='overview'><tr><th>test row</th><th>|S<sub>t</sub>|</th><th>P(y=1)</th>"
                     f"<th>retrained</th></tr>{over}</table>")
    pos = {int(t): k for k, t in enumerate(df["test_index"].to_numpy())}
    for _, r in pts.iterrows():
        k = pos[int(r["test_index"])]
        desc = rows["describe_test"]([k])[0]
        idx = np.asarray(r["indices"], dtype=np.int64)
        shown = idx[:max_set_rows]
        texts = rows["describe_train"](shown)
        old = y_train[shown]
        # binary labels: relabel = flip; a result that names the new labels (more classes) is shown as it is
        new = np.asarray(r["new_labels"], dtype=np.int64)[:max_set_rows] if "new_labels" in r.index else 1 - old
        verdict = ""
        if "flipped" in r.index and pd.notna(r.get("flipped")):
            verdict = (f" Retrained: P(y=1) = {float(r['new_prob']):.4f}, "
                       + ("<span class='flip'>flipped</span>" if bool(r["flipped"]) else "not flipped") + ".")
        elif "converged" in r.index and pd.notna(r["converged"]) and not bool(r["converged"]):
            verdict = " Retraining did not converge (no answer)."
        tag = "blockquote" if rows["kind"] == "text" else "div"
        parts.append(
            f"<div class='point' id='test-{int(r['test_index'])}'>"
            f"<h3>Test row {int(r['test_index'])}: |S<sub>t</sub>| = {int(r['size'])}</h3>"
            f"<{tag} class='text'>{html.escape(desc)}</{tag}>"
            f"<p>True label {int(r['y_true'])}; predicted {int(r['predicted_label'])} "
            f"(P(y=1) = {float(r['prob']):.4f}, threshold {thr}).{verdict}</p>"
            + _set_table(rows, idx, shown, texts, old, new) + "</div>")
    parts.append("<p class='muted'>Written by cfdkit. Training rows are positions in the audited training set "
                 "(\"original row\": the row of the data set's training file).</p></body></html>")
    return "\n".join(parts)


def write_audit_report(path, df: pd.DataFrame, summary: dict, *, dataset: str, features: str | None = None,
                       seed: int = 0, n_test: int | None = None, data_home=None, figures: Sequence = (),
                       n_points: int = 10) -> Path:
    """Write ``report.html`` for a ``cfdkit audit`` run (atomically: a temporary file, then ``os.replace``)."""
    rows = report_rows(dataset, features, seed=seed, n_test=n_test, data_home=data_home,
                       test_index=df["test_index"].to_numpy())
    if len(rows["y_train"]) != summary.get("n_train", len(rows["y_train"])):
        raise ValueError(f"the report's training rows ({len(rows['y_train'])}) are not the audited ones "
                         f"({summary.get('n_train')}).")
    text = audit_report_html(df, summary, rows, figures=figures, n_points=n_points)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _set_table(rows: dict, idx, shown, texts, old, new) -> str:
    """The training rows of one set: position, original row, text or features, label old -> new."""
    body = "".join(
        f"<tr><td class='num'>{int(i)}</td><td class='num'>{int(rows['train_index'][int(i)])}</td>"
        f"<td>{html.escape(t)}</td><td class='flip'>{int(o)} &rarr; {int(n)}</td></tr>"
        for i, t, o, n in zip(shown, texts, old, new))
    more = (f"<p class='muted'>... and {len(idx) - len(shown)} more training rows.</p>"
            if len(idx) > len(shown) else "")
    return ("<table class='set'><tr><th>training row</th><th>original row</th><th>"
            + ("text" if rows["kind"] == "text" else "features") + "</th><th>label old &rarr; new</th></tr>"
            + body + "</table>" + more)


def minimal_bound_words(size: int, lower_bound: int) -> str:
    """What the certified lower bound adds to "``size`` really suffice": nothing for one label (one is the
    least there is), "; no fewer than L can" for a certificate above 1, else that none rules out fewer."""
    if size <= 1:
        return ""
    if lower_bound > 1:
        return f"; no fewer than {lower_bound} can"
    return "; no certificate rules out fewer"


def _minimal_section(df: pd.DataFrame, rows: dict, y_train: np.ndarray, thr, n_points: int,
                     max_set_rows: int, detail=(), names=("class 0", "class 1")) -> str:
    """The verified minimal sets beside Algorithm 1's estimate: the smallest first, then the rows of ``detail``
    (test rows, e.g. the largest estimate -> minimal gaps) not among them.

    ``df`` carries ``minimal_size, minimal_status, lower_bound, minimal_new_prob, minimal_indices`` and
    optionally ``one_minimal`` (one per row, from :meth:`RelabelAudit.minimal_sets`); a set whose
    1-minimality was not established (a leave-one-out refit did not converge) is marked as such.
    """
    ver = df[df["minimal_status"] == "verified"]
    n_ver = len(ver)
    parts = ["<h2 id='minimal'>Verified minimal sets</h2>",
             "<p class='muted'>Each set below was found by a search that retrains the model: relabeling it and "
             "retraining really flips the prediction (verified), it was shrunk until dropping any one of its labels "
             "stops the flip (minimal; a set where a check could not be completed says so), and no relabeling of "
             "fewer than <i>lower bound</i> labels can flip it (certified; 1 where no certificate holds). "
             "Algorithm 1's estimate for the same prediction is named in each heading. "
             f"{n_ver} of {len(df)} test points have a verified set.</p>"]
    if n_ver == 0:
        return "".join(parts)
    key = (ver["prob"] - thr).abs()
    top = ver.assign(_m=key.to_numpy()).sort_values(["minimal_size", "_m"], kind="stable").head(n_points)
    more = ver[ver["test_index"].astype(int).isin([int(t) for t in detail])
               & ~ver["test_index"].isin(top["test_index"])]
    top = pd.concat([top, more.assign(_m=(more["prob"] - thr).abs().to_numpy())])
    over = "".join(
        f"<tr><td class='num'><a href='#minimal-{int(r['test_index'])}'>{int(r['test_index'])}</a></td>"
        f"<td class='num'>{int(r['size']) if int(r['size']) > 0 else '—'}</td>"
        f"<td class='num'>{int(r['minimal_size'])}</td><td class='num'>{int(r['lower_bound'])}</td>"
        f"<td class='num'>{float(r['prob']):.4f} &rarr; {float(r['minimal_new_prob']):.4f}</td></tr>"
        for _, r in top.iterrows())
    parts.append("<table class='overview minimal'><tr><th>test row</th><th>estimated set size</th>"
                 "<th>minimal set size</th><th>certified lower bound</th>"
                 f"<th>P({names[1]}) before &rarr; retrained</th></tr>"
                 f"{over}</table>")
    pos = {int(t): k for k, t in enumerate(df["test_index"].to_numpy())}
    for _, r in top.iterrows():
        idx = np.asarray(r["minimal_indices"], dtype=np.int64)
        shown = idx[:max_set_rows]
        est = int(r["size"])
        says = (f"Algorithm 1 says {est} label{'s' if est != 1 else ''}; " if est > 0 else
                "Algorithm 1 finds no set; ")
        k, lb = int(r["minimal_size"]), int(r["lower_bound"])
        unsure = ("" if bool(r.get("one_minimal", True)) else
                  " (not shown to be 1-minimal: a leave-one-out refit did not converge)")
        desc = rows["describe_test"]([pos[int(r["test_index"])]])[0]
        tag = "blockquote" if rows["kind"] == "text" else "div"
        parts.append(
            f"<div class='point' id='minimal-{int(r['test_index'])}'>"
            f"<h3>Test row {int(r['test_index'])}: {says}{k} really suffice{'s' if k == 1 else ''}"
            f"{minimal_bound_words(k, lb)}{unsure}</h3><{tag} class='text'>{html.escape(desc)}</{tag}>"
            f"<p>P(y=1) = {float(r['prob']):.4f} &rarr; {float(r['minimal_new_prob']):.4f} after relabeling "
            + ("this label" if k == 1 else f"these {k}") + f" and retraining (threshold {thr}).</p>"
            + _set_table(rows, idx, shown, rows["describe_train"](shown), y_train[shown], 1 - y_train[shown])
            + "</div>")
    return "\n".join(parts)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
