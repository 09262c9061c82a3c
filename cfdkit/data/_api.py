"""``load(name)`` dispatcher and ``list_datasets()``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ._base import Dataset
from ._synthetic import make_synthetic
from ._tabular import FAIRNESS_NAMES, load_fairness, load_loan
from ._text import load_hate_speech, load_sst2

__all__ = ["load", "list_datasets"]

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "hate-speech": load_hate_speech,
    "sst2": load_sst2,
    "loan": load_loan,
    "synthetic": make_synthetic,
    **{n: partial(load_fairness, n) for n in FAIRNESS_NAMES},
}

_ALIASES = {
    "hatespeech": "hate-speech",
    "hate-speech-stormfront": "hate-speech",
    "hate-speech18": "hate-speech",
    "stormfront": "hate-speech",
    "sst": "sst2",
    "sst-2": "sst2",
    "sst2-binary": "sst2",
    "loan-default": "loan",
    "loan-default-partial-20k": "loan",
}


def list_datasets() -> list[str]:
    """Canonical names accepted by :func:`load`, in a stable order."""
    return list(_LOADERS)


def canonical_name(name: str) -> str:
    """The registry key of a data set name or alias (as :func:`load` reads it); ``ValueError`` naming the valid
    names for an unknown one, ``TypeError`` for a non-string."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str such as 'sst2', got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    if key not in _LOADERS:
        raise ValueError(f"unknown data set name={name!r}; valid names: {', '.join(list_datasets())}")
    return key


def load(name: str, **kwargs) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets` (``hate-speech, sst2, loan, synthetic,
        salary, student, german, compas, default, bank, adult``); case,
        ``_`` vs ``-`` and a few aliases (``hate_speech``, ``sst-2``) are
        accepted.
    **kwargs
        Passed to the loader (:func:`load_hate_speech`, :func:`load_sst2`,
        :func:`load_loan`, :func:`make_synthetic` or :func:`load_fairness`).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid names).
    """
    return _LOADERS[canonical_name(name)](**kwargs)
