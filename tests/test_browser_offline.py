"""The browser tests' offline pages: a request that leaves this machine is aborted at once and recorded.

CI once waited 420 s for Voila's page to fire ``load`` while the page's Font Awesome stylesheet (asked of a CDN)
was never answered.  Here a page asks a host that would never answer (the request is held, as a network that
drops packets would hold it): under :func:`offline_page` the page loads at once and names the request it blocked.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from browser_support import launch_chromium, offline_page, require_chromium

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed; see tests/BROWSER_SETUP.md")
require_chromium()

EXTERNAL = "https://cdn.example.com/never/answers.css"


def test_offline_page_aborts_external_requests(tmp_path: Path):
    html = tmp_path / "page.html"
    html.write_text(f'<html><head><link rel="stylesheet" href="{EXTERNAL}"></head><body><p id="x">hi</p></body>'
                    "</html>")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        try:
            # first without the helper, the external request held forever: "load" does not come
            held = b.new_page()
            held.route(EXTERNAL, lambda route: None)
            with pytest.raises(sync_api.TimeoutError):
                held.goto(html.as_uri(), timeout=3_000)
            # then offline: loads at once, local content there, the request named
            page = offline_page(b)
            t0 = time.monotonic()
            page.goto(html.as_uri(), timeout=30_000)
            assert time.monotonic() - t0 < 10
            assert page.locator("#x").inner_text() == "hi"
            assert page.blocked_urls == [EXTERNAL]
        finally:
            b.close()
