"""Find a data file in the data home, or download it and verify it.

Order of sources for a missing file:

1. a *mirror* (``mirror=`` argument, else ``CFDKIT_DATA_MIRROR``): a base URL
   laid out exactly like the data home; when a mirror is given, nothing else
   is contacted;
2. otherwise the original public source pinned in the registry (a verbatim
   download, or a download plus a converter for derived files).

Downloads are written to a uniquely named temporary file in the destination
folder, checked against the registry's sha256 and only then moved into place
with :func:`os.replace`, so the data home never holds a half-written file.
Temporary files are removed on errors, ``Ctrl-C`` and ``SIGTERM``; those of a
process killed with ``SIGKILL`` are swept (after a day) by the next download
into the same folder.  Files get the usual umask-respecting mode (``0o644``
for umask 022), so a shared data home stays readable for everybody.

A corrupt or truncated upstream archive (for example a cut-off ``.tar.gz``)
is reported for that source, and the next source is tried.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from ._atomic import cleanup_on_terminate, sweep_stale, temp_in, write_atomic

from ._checksum import sha256_bytes, sha256_file
from ._convert import CONVERTERS
from ._errors import ChecksumError, DownloadError
from ._home import DATA_HOME_ENV, MIRROR_ENV, data_home as _resolve_home
from ._registry import RemoteFile, get_file_spec

__all__ = ["fetch_file", "verify_file"]

_TIMEOUT = 60.0
_CHUNK = 1 << 16
_USER_AGENT = "cfdkit-datasets (+https://pypi.org/project/cfdkit)"


def _mirror_url(mirror: str, relpath: str) -> str:
    return mirror.rstrip("/") + "/" + urllib.parse.quote(relpath)


def _checksum_message(spec: RemoteFile, where: str, actual: str, fix: str) -> str:
    return (
        f"Checksum mismatch for data file {spec.path!r} ({where}): expected sha256 "
        f"{spec.sha256}, got {actual}. {fix}"
    )


def verify_file(path: str | os.PathLike, spec: RemoteFile, *, use_cache: bool = True) -> Path:
    """Check that ``path`` holds exactly the bytes registered for ``spec``.

    Parameters
    ----------
    path : path-like
        Local file.
    spec : RemoteFile
        Registry entry.
    use_cache : bool, default True
        Reuse a digest computed earlier in this process for the same
        (path, size, mtime, ctime, inode).

    Returns
    -------
    pathlib.Path
        ``path``, when it checks out.

    Raises
    ------
    ChecksumError
        Wrong size or sha256; the message names the file and the fix.
    """
    path = Path(path)
    fix = (
        f"The file is corrupt or truncated (or a different version). Delete {str(path)!r} "
        "and load again to re-download it, or call fetch_file(..., force=True)."
    )
    size = path.stat().st_size
    if size != spec.size:
        actual = sha256_file(path, use_cache=use_cache)
        raise ChecksumError(
            _checksum_message(spec, f"{path}, {size} bytes instead of {spec.size}", actual, fix),
            path=str(path), expected=spec.sha256, actual=actual,
        )
    actual = sha256_file(path, use_cache=use_cache)
    if actual != spec.sha256:
        raise ChecksumError(
            _checksum_message(spec, str(path), actual, fix),
            path=str(path), expected=spec.sha256, actual=actual,
        )
    return path


def _open(url: str):
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    return urllib.request.urlopen(req, timeout=_TIMEOUT)  # noqa: S310 (http/https only)


def _stream(url: str, sink, *, desc: str, progress: bool) -> None:
    """Copy the body of ``url`` into ``sink`` (a callable taking bytes)."""
    with _open(url) as resp:
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)
        try:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                sink(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def _reason(exc: BaseException) -> tuple[str, int | None]:
    status = getattr(exc, "code", None) if isinstance(exc, urllib.error.HTTPError) else None
    if status is not None:
        reason = f"the server answered HTTP {status}"
        if status == 404:
            reason += " (not found: the mirror or source does not have this file)"
    elif isinstance(exc, CorruptUpstreamError):
        reason = str(exc)
    else:
        reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return reason, status


def _download_error(
    spec: RemoteFile, target: Path, home: Path, attempts: list[tuple[str, BaseException]]
) -> DownloadError:
    reasons = [(url, *_reason(exc)) for url, exc in attempts]
    url, _, status = reasons[-1]
    if len(reasons) == 1:
        where = f"could not download it from {url} ({reasons[0][1]})"
    else:
        where = "could not obtain it from any of its sources: " + "; ".join(
            f"{u} ({r})" for u, r, _ in reasons)
    return DownloadError(
        f"Data file {spec.path!r} is missing: looked for it at {str(target)!r} "
        f"(data home {str(home)!r}) "
        f"and {where}. To fix: set {DATA_HOME_ENV} "
        f"(or pass data_home=) to a folder that already holds {spec.path!r}, for "
        f"example a copy of the project's shared/data folder; or connect to the internet; "
        f"or set {MIRROR_ENV} (or pass mirror=) to a base URL laid out like the data home.",
        path=spec.path, url=url, status=status,
    )


class CorruptUpstreamError(ValueError):
    """The bytes from one upstream source could not be converted (corrupt or truncated archive)."""


#: What the converters raise on a corrupt or truncated archive / file.
_CORRUPT = (EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError, csv.Error,
            KeyError, IndexError, ValueError, OSError)


def _temp_in(folder: Path, name: str) -> tuple[int, Path]:
    return temp_in(folder, name)


def _download_verbatim(spec: RemoteFile, target: Path, url: str, *, progress: bool) -> None:
    """Stream ``url`` into a temp file next to ``target``; verify; replace."""
    fd, tmp = _temp_in(target.parent, target.name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:

            def sink(chunk: bytes) -> None:
                h.update(chunk)
                out.write(chunk)

            _stream(url, sink, desc=target.name, progress=progress)
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if actual != spec.sha256:
            raise ChecksumError(
                _checksum_message(
                    spec, f"downloaded from {url}", actual,
                    "The download was corrupt or the source changed; nothing was saved. "
                    "Try again later, or use another mirror / data home.",
                ),
                path=url, expected=spec.sha256, actual=actual,
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_atomic(target: Path, data: bytes) -> None:
    write_atomic(target, data)


def _download_converted(spec: RemoteFile, target: Path, url: str, *, progress: bool) -> None:
    """Download upstream bytes, convert them, verify and store atomically."""
    up = spec.upstream
    buf = bytearray()
    _stream(url, buf.extend, desc=Path(urllib.parse.urlparse(url).path).name, progress=progress)
    raw = bytes(buf)
    if up.sha256 is not None and sha256_bytes(raw) != up.sha256:
        raise ChecksumError(
            f"Upstream bytes for {spec.path!r} from {url} have sha256 {sha256_bytes(raw)}, "
            f"expected {up.sha256}; the source changed or the download was corrupt. "
            "Nothing was saved; use a mirror or a data home that holds the file.",
            path=url, expected=up.sha256, actual=sha256_bytes(raw),
        )
    try:
        data = CONVERTERS[up.convert](raw)
    except _CORRUPT as exc:
        raise CorruptUpstreamError(
            f"the archive downloaded from {url} is corrupt or truncated ({len(raw)} bytes; "
            f"{type(exc).__name__}: {exc}); nothing was saved"
        ) from exc
    actual = sha256_bytes(data)
    if actual != spec.sha256:
        raise ChecksumError(
            _checksum_message(
                spec, f"rebuilt from {url}", actual,
                "The upstream data differ from the pinned version; nothing was saved. "
                "Use a mirror or a data home that holds the file.",
            ),
            path=url, expected=spec.sha256, actual=actual,
        )
    _write_atomic(target, data)


def fetch_file(
    path: str,
    data_home: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Return the local path of a registered data file, downloading it if needed.

    Parameters
    ----------
    path : str
        Registry path relative to the data home, for example
        ``"fairness/adult/adult.data"``.
    data_home : str or path-like, optional
        See :func:`cfdkit.data.data_home`.
    mirror : str, optional
        Base URL laid out like the data home.  Defaults to the environment
        variable ``CFDKIT_DATA_MIRROR``.  When set, only the mirror is tried.
    force : bool, default False
        Download again even if a file is already present (the old file is
        replaced only once the new one has been verified).
    progress : bool, default True
        Show a ``tqdm`` progress bar while downloading.

    Returns
    -------
    pathlib.Path
        Verified local file.

    Raises
    ------
    ChecksumError
        The present file, or the downloaded bytes, do not match the registry.
    DownloadError
        The file is missing and could not be downloaded (no network, HTTP
        error such as 404, no known source).
    KeyError
        ``path`` is not a registered file.
    """
    spec = get_file_spec(path)
    home = _resolve_home(data_home)
    target = home.joinpath(*spec.path.split("/"))
    if target.exists() and not force:
        return verify_file(target, spec)

    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, "").strip() or None
    if mirror is not None:
        if not isinstance(mirror, str) or not mirror.startswith(("http://", "https://", "file://")):
            raise ValueError(
                f"mirror must be an http(s):// or file:// base URL, got {mirror!r}; "
                f"fix the mirror= argument or {MIRROR_ENV}."
            )
        urls, convert = [_mirror_url(mirror, spec.path)], False
    elif spec.upstream is not None:
        urls, convert = list(spec.upstream.urls), spec.upstream.convert is not None
    else:
        raise DownloadError(
            f"Data file {spec.path!r} is missing: looked for it at {str(target)!r}. It has no "
            f"public upstream source (it was written for the cfdkit data folder). To fix: set "
            f"{DATA_HOME_ENV} (or pass data_home=) to a folder that holds it, for example a "
            f"copy of the project's shared/data folder, or set {MIRROR_ENV} to a mirror.",
            path=spec.path,
        )

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"Cannot create {str(target.parent)!r} to store {spec.path!r}: {exc}. Pass a "
            f"writable data_home= or set {DATA_HOME_ENV}.",
            path=spec.path,
        ) from exc

    sweep_stale(target.parent, target.name)  # temp files of killed downloads (SIGKILL)
    attempts: list[tuple[str, BaseException]] = []
    with cleanup_on_terminate():
        for url in urls:
            try:
                if convert:
                    _download_converted(spec, target, url, progress=progress)
                else:
                    _download_verbatim(spec, target, url, progress=progress)
            except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
                if isinstance(exc, (ChecksumError, DownloadError)):
                    raise
                attempts.append((url, exc))
                continue
            return verify_file(target, spec)
    err = _download_error(spec, target, home, attempts)
    raise err from attempts[-1][1]
