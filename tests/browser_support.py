"""What the browser tests share: where Chromium is, a free local port, and an environment whose kernels import
this checkout's cfdkit and cfdkit_widgets."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

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
