"""report.html: ``cfdkit audit`` writes a self-contained report; opened in headless Chromium.

The rendering is checked on its own (escaping, order, bad input), then end to end: ``cfdkit audit`` on the
synthetic data (no files needed) and, where the data are present, on SST-2 (texts), whose page is screenshot
to tests/artifacts/report.png for the README.  The browser parts skip, saying why, where Playwright or
Chromium is missing (setup: tests/BROWSER_SETUP.md).
"""
import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cfdkit.data import prepare
from cfdkit.report import audit_report_html, fragile_points, report_rows

from conftest import ROOT, shared_data_dir

ART = ROOT / "tests" / "artifacts"
from browser_support import CHROMIUM, launch_chromium, offline_page  # noqa: E402


def _frame():
    return pd.DataFrame({"test_index": [10, 11, 12, 13], "y_true": [0, 1, 1, 0], "prob": [0.2, 0.55, 0.7, 0.45],
                         "predicted_label": [0, 1, 1, 0], "size": [3, 1, 0, 1], "margin": [0.3, 0.05, 0.2, 0.05],
                         "flipped": [True, True, False, np.nan], "new_prob": [0.6, 0.4, np.nan, 0.45],
                         "converged": [True, True, True, False], "indices": [[2, 0, 1], [1], [], [3]]})


def _rows(texts_train, texts_test, y):
    return {"describe_train": lambda idx: [texts_train[int(i)] for i in idx],
            "describe_test": lambda idx: [texts_test[int(i)] for i in idx],
            "y_train": np.asarray(y), "kind": "text", "train_index": np.arange(len(y)) + 100}


def test_render_orders_escapes_and_labels():
    df = _frame()
    rows = _rows(["t0", "<b>t1</b>", "t2", "t3"], ["q0", "q1", "q2", "<script>alert(1)</script>"], [0, 1, 1, 0])
    page = audit_report_html(df, {"dataset": "x", "features": "y", "n_train": 4, "verified": True}, rows, n_points=10)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;t1&lt;/b&gt;" in page
    # smallest set first; ties: closest to the threshold first (11 and 13 both size 1, margin 0.05: stable order)
    assert list(fragile_points(df)["test_index"]) == [11, 13, 10]
    order = [int(m) for m in re.findall(r"<div class='point' id='test-(\d+)'>", page)]
    assert order == [11, 13, 10]
    # old -> new labels: training row 1 had label 1
    block = page.split("id='test-11'")[1].split("</div>")[0]
    assert "1 &rarr; 0" in block and "101" in block          # original row = train_index
    assert "did not converge" in page.split("id='test-13'")[1].split("</div>")[0]
    assert "No figures in this run" in page and "<img" not in page      # no PNGs given (--no-plots)
    assert page.count("<div class='point'") == 3                        # test row 12 has no set
    one = audit_report_html(df, {}, rows, n_points=1)
    assert one.count("<div class='point'") == 1 and "id='test-11'" in one
    assert not re.search(r"(src|href)=['\"](https?:|//|file:)", page)


def test_render_refuses_bad_input():
    rows = _rows(["a"], ["b"], [0])
    with pytest.raises(ValueError, match="no column 'indices'"):
        audit_report_html(_frame().drop(columns="indices"), {}, rows)
    with pytest.raises(ValueError, match="n_points"):
        audit_report_html(_frame(), {}, rows, n_points=-1)


def test_report_rows_refuse_other_rows():
    with pytest.raises(ValueError, match="not the audited test rows"):
        report_rows("synthetic", seed=0, n_test=5, test_index=np.arange(5) + 1)
    r = report_rows("synthetic", seed=0, n_test=5)
    p = prepare("synthetic", seed=0, n_test=5)
    assert r["kind"] == "features" and np.array_equal(r["y_train"], p.y_train)
    assert r["describe_test"]([0])[0].startswith(f"x0={p.X_test[0, 0]:.3g}")


def _audit(out, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "cfdkit", "audit", "--out", str(out), *args], capture_output=True,
                       text=True, env=env, cwd=str(ROOT), timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "summary.json").read_text())


def _check_file(out):
    page = (out / "report.html").read_text()
    assert not re.search(r"(src|href)=['\"](https?:|//|file:)", page)        # self-contained
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    pngs = sorted(out.glob("*.png"))
    assert len(imgs) == len(pngs) >= 1
    assert sorted(base64.b64decode(i) for i in imgs) == sorted(p.read_bytes() for p in pngs)
    return page


def _browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed; see "
                                   "tests/BROWSER_SETUP.md")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}; apt-get install -y chromium (see tests/BROWSER_SETUP.md)")
    return sync_api


def _open(sync_api, path, fn):
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        try:
            page = offline_page(b, viewport={"width": 1200, "height": 1500})
            page.goto(path.resolve().as_uri())
            out = fn(page)
            # the report is one self-contained file: it asks the network for nothing
            assert page.blocked_urls == [], f"the report requested {page.blocked_urls}"
            return out
        finally:
            b.close()


def test_cli_report_synthetic_in_chromium(tmp_path):
    """The report a non-Python reader gets, read back from Chromium: the plain-language summary with the class
    names and the threshold, every number with a meaning, the telling cases, figures with captions, and the
    minimal sets (the answer) before Algorithm 1's estimates, each with its training rows."""
    out = tmp_path / "aud"
    s = _audit(out, "--dataset", "synthetic", "--n-test", "20", "--seed", "1")
    _check_file(out)
    df = pd.read_csv(out / "sets.csv")
    ver = df[df["minimal_status"] == "verified"]
    y_train = prepare("synthetic", seed=1, n_test=20).y_train
    sync_api = _browser()

    def look(page):
        assert page.locator("h1").inner_text().startswith("cfdkit audit: synthetic")
        heads = page.locator("h2").all_inner_texts()
        assert heads[:2] == ["In plain words", "The numbers"]
        assert heads.index("Verified minimal sets") < heads.index("Algorithm 1's estimated sets")
        plain = " ".join(page.locator("p.plain").all_inner_texts())
        assert "labels: 0 = “class 0”, 1 = “class 1”" in plain
        assert "The model predicts “class 1” when its probability of “class 1” is above the threshold 0.5" in plain
        k, n = len(ver), len(df)
        assert f"{k} of {n} predictions ({100 * k / n:.0f} %) can be overturned" in plain
        med = float(ver["minimal_size"].median())
        assert f"the median minimal set has {med:g} label" in plain
        assert f"smallest {int(ver['minimal_size'].min())}, the largest {int(ver['minimal_size'].max())}" in plain
        assert f"For {int(ver['proven_minimal'].sum())} of the {k}, a certificate proves" in plain
        est = ver[ver["estimated_size"] > 0]["estimated_size"].median()
        assert f"proposes a median of {float(est):g} labels" in plain
        for word in ("estimated set", "verified set", "converged", "certified", "minimal set", "proven minimal"):
            assert word in plain
        # every number has a label and a one-line meaning (no bare keys as the only name)
        for tr in page.locator("table.summary tr[data-key]").all():
            label, value, meaning = tr.locator("th, td").all_inner_texts()[:3]
            assert label.strip() and meaning.strip(), tr.inner_text()
        row = page.locator("table.summary tr[data-key='minimal_found_rate'] td").first.inner_text()
        assert row == f"{100 * s['minimal_found_rate']:.1f} %"
        # the telling cases: the largest estimate -> minimal gap first
        both = ver[ver["estimated_size"] > 0]
        gap = (both["estimated_size"] - both["minimal_size"]).max()
        first_gap = page.locator("table.cases.gaps tr").nth(1).locator("td").all_inner_texts()
        assert int(first_gap[3]) - int(first_gap[4]) == gap
        assert page.locator("table.cases.robust tr").count() > 1 and page.locator("table.cases.fragile tr").count() > 1
        fr = page.locator("table.cases.fragile tr").nth(1).locator("td").all_inner_texts()
        assert int(fr[4]) == int(ver["minimal_size"].min())
        # figures: decoded by the browser, each with a caption
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 100)")
        caps = page.locator("figure figcaption").all_inner_texts()
        assert len(caps) == page.locator("img").count() >= 2 and all(len(c) > 60 for c in caps)
        # the first set shown in full is the smallest minimal set, with its rows and labels from sets.csv
        first = page.locator(".point").first
        tid = int(first.get_attribute("id").split("-")[1])
        assert first.get_attribute("id").startswith("minimal-")
        r = df[df["test_index"] == tid].iloc[0]
        assert r["minimal_size"] == ver["minimal_size"].min()
        idx = [int(v) for v in str(r["minimal_indices"]).split()]
        cells = first.locator("table.set tr").all()[1:]
        assert len(cells) == min(25, len(idx))
        for tr, i in zip(cells, idx):
            tds = tr.locator("td").all_inner_texts()
            assert int(tds[0]) == i
            assert tds[3].replace(" ", "") == f"{y_train[i]}→{1 - y_train[i]}"
        return True

    assert _open(sync_api, out / "report.html", look)
    assert s["n_test"] == 20


def test_plain_summary_names_classes_and_explains_the_threshold():
    """Hate speech: the class names, why the threshold is 0.25, and an estimate-only run that says it is one."""
    df = _frame()
    rows = _rows(["a", "b", "c", "d"], ["q0", "q1", "q2", "q3"], [0, 1, 1, 0])
    page = audit_report_html(df, {"dataset": "hate-speech", "features": "bow", "n_train": 4, "threshold": 0.25,
                                  "threshold_from": "default"}, rows)
    assert "0 = &ldquo;not hate&rdquo;, 1 = &ldquo;hate&rdquo;" in page
    assert "It is 0.25 rather than 0.5 because only about one training post in nine is hate" in page
    assert "Algorithm 1's estimated sets only (--estimate-only)" in page and "Verified minimal sets" not in page
    own = audit_report_html(df, {"dataset": "hate-speech", "threshold": 0.4, "threshold_from": "--threshold"}, rows)
    assert "chosen for this run (--threshold)" in own and "one training post in nine" not in own


@pytest.mark.slow
@pytest.mark.skipif(shared_data_dir() is None, reason="no shared data (CFDKIT_DATA_HOME or ../shared/data)")
def test_cli_report_sst2_texts_screenshot(tmp_path, monkeypatch):
    monkeypatch.setenv("CFDKIT_DATA_HOME", str(shared_data_dir()))
    out = tmp_path / "aud"
    _audit(out, "--dataset", "sst2", "--n-test", "30")
    page_text = _check_file(out)
    p = prepare("sst2", seed=0, n_test=30)
    sync_api = _browser()

    def look(page):
        first = page.locator(".point").first
        tid = int(first.get_attribute("id").split("-")[1])
        k = int(np.nonzero(p.info["test_index"] == tid)[0][0])
        assert first.locator(".text").inner_text().strip() == p.texts_test[k].strip()
        tds = first.locator("table.set tr").nth(1).locator("td").all_inner_texts()
        i = int(tds[0])
        assert tds[2].strip() == p.texts_train[i].strip()
        ART.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")                  # the plain-language summary first
        page.wait_for_timeout(200)
        page.screenshot(path=str(ART / "report.png"))
        return True

    assert _open(sync_api, out / "report.html", look)
    assert "most fragile test points" in page_text
