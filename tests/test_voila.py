"""The explorers as an app: ``voila notebooks/explorer.ipynb`` served, opened in headless Chromium, one explorer driven.

Starts Voilà on 127.0.0.1 (a free port; the kernel imports cfdkit and cfdkit_widgets from this checkout), waits
until the page has rendered the FlipExplorer, clicks its Verify button, waits for the retraining's answer and
screenshots the explorer to tests/artifacts/voila_explorer.png.  The server is stopped at the end, also on
failure; every wait is bounded.  Skips, saying why, where Playwright, Chromium or Voilà is missing
(setup: tests/BROWSER_SETUP.md).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "tests" / "artifacts"
from browser_support import (checkout_env, free_port, launch_chromium, log_tail, offline_page,  # noqa: E402
                             require_chromium)
START_S = 120          # server up
RENDER_S = 420         # every cell of the notebook executed (CFDKIT_FAST sizes) and the widgets drawn
VERIFY_S = 120         # one verification refit

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed; see tests/BROWSER_SETUP.md")
if importlib.util.find_spec("voila") is None:
    pytest.skip("voila is not installed; pip install 'cfdkit[notebooks]'", allow_module_level=True)
require_chromium()



@pytest.fixture(scope="module")
def voila_app(tmp_path_factory):
    port = free_port()
    env = checkout_env()   # the kernel imports cfdkit and cfdkit_widgets from this checkout
    env["CFDKIT_FAST"] = "1"
    env.setdefault("CFDKIT_DATA_HOME", str(ROOT.parent / "shared" / "data"))
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path_factory.mktemp("jupyter_config"))
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    ART.mkdir(exist_ok=True)
    log = open(ART / "voila.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", "notebooks/explorer.ipynb", "--no-browser", "--Voila.ip=127.0.0.1",
         f"--Voila.port={port}", "--Voila.port_retries=0", "--VoilaConfiguration.show_tracebacks=True",
         f"--VoilaExecutor.timeout={RENDER_S}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}; see {ART / 'voila.log'}")
            try:
                urllib.request.urlopen(f"{base}/voila/static/", timeout=2)
                break
            except urllib.error.HTTPError:     # the server answers (404 on the folder): it is up
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"voila did not start within {START_S} s; see {ART / 'voila.log'}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_voila_explorer_app_verify(voila_app):
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        page = None
        try:
            page = offline_page(b, viewport={"width": 1400, "height": 1000})
            # "commit", not "load": the page streams while the kernel executes the cells; the selectors below
            # wait for what the test needs, each with its own bound
            page.goto(voila_app + "/", timeout=START_S * 1000, wait_until="commit")
            ex = page.locator(".cfd-flip-explorer").first
            page.wait_for_selector(".cfd-flip-explorer .cfd-verify", timeout=RENDER_S * 1000)
            # the app rendered the notebook's explorers, not a traceback
            assert "Traceback" not in page.locator("body").inner_text()
            assert "FlipExplorer" in ex.inner_text() and ex.locator("table.cfd-table").count() == 1
            before = ex.locator("table.cfd-table").inner_text()
            # drive it: the "test point" slider one step right (keyboard on its handle), the table follows;
            # then verify that point's set by retraining
            handle = ex.locator(".noUi-handle").first
            handle.focus()
            handle.press("ArrowRight")
            page.wait_for_function("(b) => document.querySelector('.cfd-flip-explorer table.cfd-table')"
                                   ".innerText !== b", arg=before, timeout=30_000)
            ex.locator(".cfd-verify").click()
            page.wait_for_selector(".cfd-verify-result", timeout=VERIFY_S * 1000)
            txt = ex.locator(".cfd-verify-result").inner_text()
            assert "Retrained with" in txt and "flipped" in txt
            ex.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            ex.screenshot(path=str(ART / "voila_explorer.png"))
            # the whole app was served: the four study explorers and the neural one after the FlipExplorer
            page.wait_for_selector(".cfd-neural-explorer", timeout=RENDER_S * 1000)
            assert page.locator(".cfd-study-explorer").count() == 4
            assert "Traceback" not in page.locator("body").inner_text()
        except Exception:
            # shown with the failure: what the server and the kernel said, and what the page wanted from outside
            print(f"blocked requests: {getattr(page, 'blocked_urls', None)}\n--- voila.log (tail) ---\n"
                  f"{log_tail(ART / 'voila.log')}")
            raise
        finally:
            b.close()
