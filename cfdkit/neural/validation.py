"""Checks that only cfdkit.neural needs (bias budget, hidden widths, torch seed range).

Family-neutral checks (dense matrices, binary labels, index sets, flags, counts, choices,
callables) live in :mod:`cfdkit.core.validation`; this module adds the neural-specific ones.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..core.validation import check_number

__all__ = ["OWNER", "check_budget", "check_budget_param", "check_hidden", "check_param", "check_seed",
           "MAX_HIDDEN"]

#: Largest hidden width :func:`check_hidden` accepts (a (h, h) network then has >= h**2 = 4.3e9 weights).
MAX_HIDDEN = 65536


def check_param(value, name: str, **kw):
    """A numeric parameter of cfdkit.neural: :func:`cfdkit.core.validation.check_number` (finite, in range,
    integer where asked; ``bool``, strings, NaN and inf refused; the message names the argument, the range
    and the fix), with every refusal raised as ``ValueError`` -- the neural family's documented contract
    for bad parameter values, wrong types included."""
    try:
        return check_number(value, name, **kw)
    except TypeError as e:
        raise ValueError(str(e)) from None

#: How the family names itself in shared messages ("... needs dense input", "... needs real features").
OWNER = "cfdkit.neural (small dense networks)"


def check_budget_param(budget) -> int:
    """The ``budget`` parameter of :class:`~cfdkit.neural.NeuralCFD`: a positive int (``ValueError`` otherwise)."""
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ValueError(f"budget must be a positive int (bias budget m), got {budget!r}; e.g. budget=10.")
    return int(budget)


def check_budget(budget, n_train: int) -> int:
    """``1 <= budget <= n_train``."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral):
        raise TypeError(f"budget must be an int (the bias budget m), got {type(budget).__name__}; e.g. budget=10.")
    if budget <= 0:
        raise ValueError(f"budget must be >= 1 (number of labels that may be flipped), got {budget}.")
    if budget > n_train:
        raise ValueError(f"budget={budget} is larger than the training set ({n_train} rows); use budget <= {n_train}.")
    return int(budget)


def check_hidden(hidden, name: str = "hidden") -> tuple:
    """Two positive int hidden widths (the paper uses 4..32); ``name`` is the argument named in errors."""
    alt = " or a torch.nn.Module" if name == "network" else ""
    msg = (f"{name} must be two positive int widths (two hidden ReLU layers, paper: 4..32){alt}, "
           f"got {hidden!r}; e.g. {name}=(8, 8).")
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise ValueError(msg)
    h = tuple(hidden)
    if len(h) != 2 or any(isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral) or w < 1
                          for w in h):
        raise ValueError(msg)
    if any(w > MAX_HIDDEN for w in h):
        raise ValueError(f"{name} widths must be at most {MAX_HIDDEN:,} each, got {hidden!r} (the networks would not "
                         f"fit in memory); e.g. {name}=(8, 8).")
    return tuple(int(w) for w in h)


def check_seed(seed, name: str = "seed") -> int:
    """An int in ``[0, 2**63)``, the range of ``torch.Generator.manual_seed`` (numpy ints accepted;
    bools, floats and strings refused).  :func:`cfdkit.core.validation.check_seed` is numpy's
    ``[0, 2**32)``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        hint = f" (convert it: {name}=int({seed!r}))" if isinstance(seed, str) and seed.strip().isdigit() else ""
        raise TypeError(f"{name} must be a non-negative int such as 0, got {type(seed).__name__} {seed!r}{hint}.")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"{name} must be a non-negative int below 2**63, got {seed!r}.")
    return int(seed)
