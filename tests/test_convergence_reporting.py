"""Issue 8 §3.2: a verification refit that did not converge is marked everywhere it is reported."""

import numpy as np
import pandas as pd

import cfdkit_widgets as cw
from cfdkit import RelabelAudit
from cfdkit.studies.linear import summarize_points


def test_summary_counts_not_converged_rows_apart():
    df = pd.DataFrame({"found": [True, True, True, False], "size": [3, 4, 5, 0], "size_pct": [1.0] * 4,
                       "correct": [True] * 4, "flipped": [1.0, np.nan, 0.0, 0.0],
                       "converged": [True, False, True, True]})
    df.attrs = {"seconds_algorithm1": 1.0}
    s = summarize_points(df)
    assert s["n_not_converged"] == 1
    assert s["flip_rate"] == 1 / 3                # over the 3 converged rows, the unknown row is not "not flipped"
    assert s["success_ratio"] == 1 / 2            # over the 2 converged rows with a set


def test_flip_explorer_shows_unknown_when_the_refit_did_not_converge(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)); y = (X[:, 0] > 0).astype(int)
    audit = RelabelAudit(l2=1.0).fit(X, y)
    res = audit.flip_sets(X[:5])
    i = int(np.flatnonzero(res.found)[0])
    monkeypatch.setattr(type(audit), "retrain_probabilities", lambda self, *a, **k: np.array([np.nan]))
    out = cw.verify_point(audit, X[:5], res, i)
    assert out["flipped"] is None and out["converged"] is False
    ex = cw.FlipExplorer(audit, X[:5], result=res)
    assert "did not converge" in ex._verify_html(out)
