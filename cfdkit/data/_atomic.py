"""Atomic, umask-respecting file writes in shared folders (data home, caches).

* :func:`temp_in` makes a uniquely named ``.<name>.<random>.part`` file next to
  the target and gives it the mode a plain ``open(..., "w")`` would give
  (``0o666 & ~umask``, usually ``0o644``) instead of ``mkstemp``'s ``0o600``,
  so other users sharing a data home can read what one user downloaded.
* :func:`write_atomic` writes bytes (or calls a writer) into such a temp file,
  then moves it into place with :func:`os.replace`; the temp file is removed
  on any exception, ``KeyboardInterrupt`` included.
* :func:`cleanup_on_terminate` turns ``SIGTERM`` / ``SIGHUP`` into an
  exception while a download runs (only in the main thread and only where no
  handler of the application's own is installed), so the temp file is removed
  and the process then still dies of that signal.
* ``SIGKILL`` cannot be caught: :func:`sweep_stale` removes temp files older
  than :data:`STALE_SECONDS` before the next write into the same folder.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

__all__ = ["STALE_SECONDS", "file_mode", "temp_in", "write_atomic", "sweep_stale", "cleanup_on_terminate"]

#: Temp files older than this (seconds) are considered left over by a killed process.
STALE_SECONDS = 24 * 3600

_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.part$")


def _umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no way to read it without setting it; put it straight back
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a newly created regular file: ``0o666 & ~umask`` (``0o644`` for umask 022)."""
    return 0o666 & ~_umask()


def temp_in(folder: Path, name: str) -> tuple[int, Path]:
    """Open a unique ``.<name>.<random>.part`` in ``folder``; return ``(fd, path)``.

    The file gets :func:`file_mode` (not ``mkstemp``'s ``0o600``).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        os.chmod(tmp, file_mode())
    except OSError:  # pragma: no cover - e.g. a file system without modes
        pass
    return fd, Path(tmp)


def sweep_stale(folder: Path, name: str | None = None, max_age: float = STALE_SECONDS) -> list[Path]:
    """Delete temp files (``.<name>.<random>.part``) in ``folder`` older than ``max_age`` seconds.

    Parameters
    ----------
    folder : path
        Folder to sweep (nothing happens when it does not exist).
    name : str, optional
        Only temp files of this target name; default all cfdkit temp files.
    max_age : float
        Age in seconds (by modification time).

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    pattern = f".{glob_escape(name)}.*.part" if name else ".*.part"
    removed = []
    for p in folder.glob(pattern):
        if not _TEMP_RE.match(p.name):
            continue
        try:
            if p.is_file() and now - p.stat().st_mtime > max_age:
                p.unlink()
                removed.append(p)
        except OSError:  # another process removed it, or no permission: leave it
            continue
    return removed


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a file name."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def write_atomic(target: Path, data: bytes | Callable[[object], None], *, fsync: bool = True) -> None:
    """Write ``data`` (bytes, or a callable taking the open binary file) to ``target`` atomically."""
    target = Path(target)
    fd, tmp = temp_in(target.parent, target.name)
    try:
        with os.fdopen(fd, "wb") as out:
            if callable(data):
                data(out)
            else:
                out.write(data)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Terminated(BaseException):
    """Raised inside :func:`cleanup_on_terminate` when SIGTERM/SIGHUP arrives."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


@contextmanager
def cleanup_on_terminate():
    """While the block runs, SIGTERM/SIGHUP raise :class:`Terminated` (so ``finally`` blocks run);
    afterwards the process is killed by the same signal, as it would have been.

    Does nothing outside the main thread, or for a signal whose handler is not
    the default one (the application handles it itself).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed = {}
    for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _raise_terminated)
                installed[sig] = signal.SIG_DFL
        except (ValueError, OSError):  # pragma: no cover
            continue
    try:
        yield
    except Terminated as exc:
        for sig, old in installed.items():
            signal.signal(sig, old)
        installed.clear()
        os.kill(os.getpid(), exc.signum)  # die of the signal, as without the handler
        raise  # pragma: no cover - only if the signal did not end the process
    finally:
        for sig, old in installed.items():
            signal.signal(sig, old)
