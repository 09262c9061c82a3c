"""sha256 of files, with a per-process cache keyed by file identity.

The cache key is ``(path, size, mtime_ns, ctime_ns, inode)``.  Any write to
the file (including truncation) changes at least the size or the
modification/change time, so a corrupted file is re-hashed and caught;
``os.utime`` cannot reset ``ctime``, so touching timestamps back does not
hide a change either.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["sha256_file", "sha256_bytes", "clear_checksum_cache"]

_CHUNK = 1 << 20
_cache: dict[tuple, str] = {}
_lock = threading.Lock()


def _key(path: Path) -> tuple:
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, *, use_cache: bool = True) -> str:
    """Hex sha256 of a file's bytes.

    Parameters
    ----------
    path : str or path-like
        File to hash.
    use_cache : bool, default True
        Reuse a digest computed earlier in this process for the same file
        identity (path, size, mtime, ctime, inode).

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    path = Path(path).resolve()
    key = _key(path) if use_cache else None
    if key is not None:
        with _lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if key is not None:
        with _lock:
            _cache[key] = digest
    return digest


def clear_checksum_cache() -> None:
    """Forget all cached digests (the next check re-reads every file)."""
    with _lock:
        _cache.clear()
