"""The torch device of a run: the ``device`` setting (:class:`helpers.config.Settings`) made a :class:`torch.device`.

It lives on the torch side so that :mod:`helpers.config`, which validates the
setting's form, imports no torch.
"""

from __future__ import annotations

from typing import Any

import torch

from helpers.config import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device"]

#: The forms the ``device`` parameter takes (the message of every bad value lists them).
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"


def resolve_device(device: Any = "auto") -> torch.device:
    """The :class:`torch.device` of a ``device`` setting.

    Parameters
    ----------
    device : str or torch.device, optional
        ``"auto"`` (default: the CUDA GPU when one is present, else the CPU),
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; a
        :class:`torch.device` is returned as it is.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        ``device`` is not a string, names no device of the forms above, or
        asks for CUDA on a machine without a CUDA GPU. The message names the
        ``device`` parameter.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ConfigError(f"device must be a string, got {device!r} ({type(device).__name__}); valid: {DEVICE_CHOICES}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {device!r} (parameter 'device'); valid: {DEVICE_CHOICES}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is available; use device='auto' or 'cpu'")
    return dev
