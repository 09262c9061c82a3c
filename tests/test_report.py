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
    out = tmp_path / "aud"
    s = _audit(out, "--dataset", "synthetic", "--n-test", "20", "--seed", "1")
    _check_file(out)
    df = pd.read_csv(out / "sets.csv")
    found = df[df["size"] > 0].sort_values("size", kind="stable")
    y_train = prepare("synthetic", seed=1, n_test=20).y_train
    sync_api = _browser()

    def look(page):
        assert page.locator("h1").inner_text().startswith("cfdkit audit: synthetic")
        pts = page.locator(".point")
        assert pts.count() == min(10, len(found))
        # every image decoded by the browser (a broken data URI has naturalWidth 0)
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 100)")
        first = pts.first
        tid = int(first.get_attribute("id").split("-")[1])
        row = df[df["index"] == tid].iloc[0]
        assert row["size"] == found["size"].min()
        idx = [int(v) for v in str(row["training_indices"]).split()]
        cells = first.locator("table.set tr").all()[1:]
        assert len(cells) == min(25, len(idx))
        for tr, i in zip(cells, idx):
            tds = tr.locator("td").all_inner_texts()
            assert int(tds[0]) == i
            assert tds[3].replace(" ", "") == f"{y_train[i]}→{1 - y_train[i]}"
        return True

    assert _open(sync_api, out / "report.html", look)
    assert s["n_test"] == 20


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
        page.evaluate("document.querySelectorAll('h2')[2].scrollIntoView()")
        page.wait_for_timeout(200)
        page.screenshot(path=str(ART / "report.png"))
        return True

    assert _open(sync_api, out / "report.html", look)
    assert "most fragile test points" in page_text
