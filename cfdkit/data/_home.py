"""Where cfdkit looks for data files (the *data home*)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_home", "DATA_HOME_ENV", "MIRROR_ENV"]

#: Environment variable naming the data home.
DATA_HOME_ENV = "CFDKIT_DATA_HOME"
#: Environment variable naming a mirror base URL laid out like the data home.
MIRROR_ENV = "CFDKIT_DATA_MIRROR"


def data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Return the folder that holds (or will hold) the data files.

    The layout inside it mirrors the project's ``shared/data`` folder
    exactly, for example ``<home>/hate_speech_stormfront/hate_speech_stormfront.jsonl``
    or ``<home>/fairness/adult/adult.data``, so pointing ``CFDKIT_DATA_HOME``
    at a copy of ``shared/data`` works directly.

    Parameters
    ----------
    data_home : str or path-like, optional
        Explicit folder.  When ``None``, the environment variable
        ``CFDKIT_DATA_HOME`` is used, and when that is unset or empty, the
        per-user cache folder ``platformdirs.user_cache_dir("cfdkit")``.

    Returns
    -------
    pathlib.Path
        Absolute path (``~`` expanded).  The folder is not created here.

    Raises
    ------
    TypeError
        If ``data_home`` is neither ``None``, a string nor path-like.
    """
    if data_home is None:
        env = os.environ.get(DATA_HOME_ENV, "").strip()
        if env:
            return Path(env).expanduser().resolve()
        import platformdirs

        return Path(platformdirs.user_cache_dir("cfdkit")).expanduser().resolve()
    if not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            f"data_home must be a str, a path-like object or None, got "
            f"{type(data_home).__name__}; pass the folder that holds the data "
            f"files, or set {DATA_HOME_ENV}."
        )
    if isinstance(data_home, str) and not data_home.strip():
        raise ValueError(
            "data_home is an empty string; pass a folder path or None "
            f"(None uses {DATA_HOME_ENV} or the user cache folder)."
        )
    return Path(data_home).expanduser().resolve()
