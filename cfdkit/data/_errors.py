"""Exceptions raised while locating, downloading and checking data files."""

from __future__ import annotations

__all__ = ["ChecksumError", "DownloadError"]


class ChecksumError(ValueError):
    """A data file's bytes do not match the sha256 in the registry.

    Attributes
    ----------
    path : str
        The file (or URL) whose bytes were checked.
    expected, actual : str
        Expected and actual sha256 (hex).
    """

    def __init__(self, message: str, *, path: str, expected: str, actual: str):
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual


class DownloadError(OSError):
    """A missing data file could not be obtained (no network, HTTP error, ...).

    Attributes
    ----------
    path : str
        Registry path of the file, relative to the data home.
    url : str or None
        The last URL tried.
    status : int or None
        HTTP status code when the server answered with an error.
    """

    def __init__(self, message: str, *, path: str, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.path = path
        self.url = url
        self.status = status
