"""Use a user's torch module without changing it (train/eval mode, device, dtype)."""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def eval_mode(module):
    """Run the block with ``module`` (and every submodule) in ``eval()`` mode, then restore each one's mode.

    Parameters
    ----------
    module : torch.nn.Module or any callable (left alone when it has no ``modules()``)
    """
    if not isinstance(module, torch.nn.Module):
        yield module
        return
    modes = [(m, m.training) for m in module.modules()]
    try:
        for m, _ in modes:
            m.training = False
        yield module
    finally:
        for m, t in modes:
            m.training = t


def module_dtype_device(module, default_dtype=torch.float32):
    """The dtype and device of a module's first floating parameter (``default_dtype``/CPU without one)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return default_dtype, torch.device("cpu")
