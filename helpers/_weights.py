"""Torch weights on disk with a content hash: serialize once, hash the bytes, verify on read.

Every weights cache of the book (classifiers, U-Net localizers,
self-explaining models) stores the SHA-256 of the exact bytes of its
``.pt`` file in the entry's JSON record and checks it before deserializing,
so a flipped bit is detected instead of loading a silently different model
(see :mod:`helpers._cache` for what a cache then does).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from helpers._cache import sha256_bytes

__all__ = ["WeightsIntegrityError", "state_dict_payload", "read_checked_state_dict"]


class WeightsIntegrityError(ValueError):
    """A weights file that cannot be read, or whose bytes do not match the SHA-256 of its record."""


def state_dict_payload(model: nn.Module) -> tuple[bytes, str]:
    """The bytes ``torch.save`` writes for ``model``'s state dict (on the CPU) and their SHA-256 hex digest."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return payload, sha256_bytes(payload)


def read_checked_state_dict(path: str | os.PathLike, *, sha256: Any, record_file: str | os.PathLike) -> Mapping[str, Any]:
    """Read a weights file, check its bytes against ``sha256`` (from ``record_file``), then deserialize it.

    Parameters
    ----------
    path : path
        The ``.pt`` file.
    sha256 : str
        The hex digest stored in the entry's record at write time.
    record_file : path
        The record it came from (named in errors).

    Returns
    -------
    dict
        The state dict (``torch.load(..., weights_only=True)``).

    Raises
    ------
    WeightsIntegrityError
        The record has no digest (written before weights were hashed), the
        file cannot be read, its digest differs, or it does not deserialize.
    """
    path = Path(path)
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise WeightsIntegrityError(
            f"record {str(record_file)!r} holds no SHA-256 of its weights file {str(path)!r} "
            "(written by an older version): the weights cannot be checked"
        )
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise WeightsIntegrityError(f"cannot read cached weights {str(path)!r} ({error})") from error
    actual = sha256_bytes(payload)
    if actual != sha256:
        raise WeightsIntegrityError(
            f"cached weights {str(path)!r} have SHA-256 {actual[:16]}..., but its record {str(record_file)!r} "
            f"says {sha256[:16]}...: the file changed after it was written"
        )
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike
        raise WeightsIntegrityError(f"cannot read cached weights {str(path)!r} ({type(error).__name__}: {error})") from error
