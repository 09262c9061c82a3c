"""What the browser tests share: where Chromium is, a free local port, and an environment whose kernels import
this checkout's cfdkit and cfdkit_widgets."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CFDKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
    or "/usr/bin/chromium"


def require_chromium() -> None:
    """Skip the calling module where Chromium is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}; apt-get install -y chromium (see tests/BROWSER_SETUP.md)",
                    allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkout_env() -> dict:
    """``os.environ`` with this checkout (and its ``.shim``, if any) first on PYTHONPATH."""
    env = dict(os.environ)
    shim = ROOT / ".shim"
    extra = [str(ROOT)] + ([str(shim)] if shim.exists() else [])
    env["PYTHONPATH"] = os.pathsep.join(extra + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# The flags this machine kind's own browser probe uses: without the background-networking ones Chromium keeps
# opening connections to Google's hosts, which a closed network refuses (or, on some machines, never answers).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def launch_chromium(playwright):
    """Headless Chromium at :data:`CHROMIUM`, started with :data:`CHROMIUM_ARGS`."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def offline_page(browser, **kwargs):
    """A new page whose requests may only reach this machine (localhost, ``file:``, ``data:``, ``blob:``).

    Everything else is aborted at once and its address appended to ``page.blocked_urls``.  The tests must not
    depend on the network: a page that waits for a CDN (Voila's template asks jsdelivr for Font Awesome) would
    otherwise wait as long as the network takes to answer -- at once where a name does not resolve, never where
    packets are dropped, and then the page's ``load`` event never fires.
    """
    context = browser.new_context(**kwargs)
    blocked: list[str] = []

    def _route(route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("file", "data", "blob") or (parts.hostname or "") in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", _route)
    page = context.new_page()
    page.blocked_urls = blocked
    return page


def log_tail(path, n: int = 60) -> str:
    """The last ``n`` lines of a server's log, for a failure message."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(no log at {path}: {e})"
    return "\n".join(lines[-n:])
