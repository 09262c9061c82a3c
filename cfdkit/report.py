"""A self-contained HTML report of an audit, readable without Python (``cfdkit audit`` writes ``report.html``).

The report holds the run's summary, its figures (embedded as base64 PNG) and, for the most fragile test
points (those with the smallest flip sets ``S_t``), the point itself (its text, or its features), its
prediction, and the training rows of its set with their text and the label change ``old -> new`` that
would flip it.  It has no external links: one file to mail to an auditor.

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

__all__ = ["report_rows", "fragile_points", "audit_report_html", "write_audit_report"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top} th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.point{border:1px solid #ccc;border-radius:6px;padding:10px 14px;margin:16px 0;background:#fcfcfc}
.text{font-family:Georgia,serif;background:#fff;border-left:3px solid #888;padding:4px 8px;margin:6px 0}
.flip{font-weight:bold;color:#a40000;white-space:nowrap} .muted{color:#777;font-size:.9em}
.figs img{max-width:48%;margin:4px;border:1px solid #eee}
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
    rows = []
    for k, v in summary.items():
        if k == "notes":
            continue
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif v is None:
            v = "—"
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td class='num'>{html.escape(str(v))}</td></tr>")
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in summary.get("notes") or [])
    return f"<table class='summary'>{''.join(rows)}</table>" + (f"<ul class='notes'>{notes}</ul>" if notes else "")


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
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(name)}</h1>",
             "<p class='muted'>Which training labels, had they been different, would have changed each prediction? "
             "For every test point, Algorithm 1 (Yang, Xu &amp; Yu 2024) searched the smallest set S<sub>t</sub> of "
             "training points whose relabeling flips the logistic-regression prediction"
             + (", and retraining with the set relabeled checked it." if summary.get("verified") else
                " (not verified by retraining in this run).") + "</p>",
             "<h2>Summary</h2>", _summary_table(summary)]
    figs = [f for f in figures if Path(f).is_file()]
    parts.append("<h2>Figures</h2>")
    parts.append("<div class='figs'>" + "".join(_img(f) for f in figs) + "</div>" if figs
                 else "<p class='muted'>No figures in this run (--no-plots).</p>")
    pts = fragile_points(df, n_points)
    parts.append(f"<h2>The {len(pts)} most fragile test points</h2>")
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
    if "minimal_size" in df.columns:
        parts.append(_minimal_section(df, rows, y_train, thr, n_points, max_set_rows))
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
                     max_set_rows: int) -> str:
    """``cfdkit audit --minimal``: the verified minimal sets beside Algorithm 1's, smallest first.

    ``df`` carries ``minimal_size, minimal_status, lower_bound, minimal_new_prob, minimal_indices`` and
    optionally ``minimal_one_minimal`` (one per row, from :meth:`RelabelAudit.minimal_sets`); a set whose
    1-minimality was not established (a leave-one-out refit did not converge) is marked as such.
    """
    ver = df[df["minimal_status"] == "verified"]
    n_ver = len(ver)
    parts = ["<h2 id='minimal'>Verified minimal sets</h2>",
             "<p class='muted'>Algorithm 1's set is a linear estimate. Each set below was found by a search that "
             "refits the model: relabeling it and retraining really flips the prediction (a converged refit), it "
             "was shrunk until dropping any one of its labels stops the flip (each checked by a refit; a set where "
             "a check could not be completed says so), and no "
             "relabeling of fewer than <i>lower bound</i> labels can flip it (a certificate; 1 where none holds). "
             f"{n_ver} of {len(df)} test points have a verified set.</p>"]
    if n_ver == 0:
        return "".join(parts)
    key = (ver["prob"] - thr).abs()
    top = ver.assign(_m=key.to_numpy()).sort_values(["minimal_size", "_m"], kind="stable").head(n_points)
    over = "".join(
        f"<tr><td class='num'><a href='#minimal-{int(r['test_index'])}'>{int(r['test_index'])}</a></td>"
        f"<td class='num'>{int(r['size']) if int(r['size']) > 0 else '—'}</td>"
        f"<td class='num'>{int(r['minimal_size'])}</td><td class='num'>{int(r['lower_bound'])}</td>"
        f"<td class='num'>{float(r['prob']):.4f} &rarr; {float(r['minimal_new_prob']):.4f}</td></tr>"
        for _, r in top.iterrows())
    parts.append("<table class='overview minimal'><tr><th>test row</th><th>Algorithm 1 |S<sub>t</sub>|</th>"
                 "<th>verified size</th><th>lower bound</th><th>P(y=1) before &rarr; retrained</th></tr>"
                 f"{over}</table>")
    pos = {int(t): k for k, t in enumerate(df["test_index"].to_numpy())}
    for _, r in top.iterrows():
        idx = np.asarray(r["minimal_indices"], dtype=np.int64)
        shown = idx[:max_set_rows]
        est = int(r["size"])
        says = (f"Algorithm 1 says {est} label{'s' if est != 1 else ''}; " if est > 0 else
                "Algorithm 1 finds no set; ")
        k, lb = int(r["minimal_size"]), int(r["lower_bound"])
        unsure = ("" if bool(r.get("minimal_one_minimal", True)) else
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
