"""Torch weights on disk with a content hash: serialize once, hash the bytes, verify on read.

Every weights cache of the book (classifiers, U-Net localizers,
self-explaining models) stores the SHA-256 of the exact bytes of its
``.pt`` file in the entry's JSON record and checks it before deserializing,
so a flipped bit is detected instead of loading a silently different model
(see :mod:`helpers._cache` for what a cache then does).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from helpers._cache import (
    CorruptCacheWarning,
    atomic_write,
    atomic_write_bytes,
    check_on_corrupt,
    set_aside,
    sha256_bytes,
)

__all__ = ["WeightsIntegrityError", "state_dict_payload", "read_checked_state_dict", "load_checked_entry", "write_entry"]


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


def load_checked_entry(
    model: nn.Module,
    weights: str | os.PathLike,
    record_file: str | os.PathLike,
    *,
    key: str,
    on_corrupt: str,
    error: type[ValueError],
    what: str,
) -> dict | None:
    """Load a cache entry (weights + JSON record) into ``model`` after checking it, or apply the corrupt-entry policy.

    The record is written before the weights (:func:`write_entry`), so a
    weights file without its record is damage, while a record without its
    weights is an interrupted write (no entry). The record must be a JSON
    object whose ``key`` is ``key``; the weights must match its
    ``weights_sha256`` and load into ``model`` (``strict=True``).

    Parameters
    ----------
    model : torch.nn.Module
        Freshly built model of the entry's architecture (loaded in place).
    weights, record_file : path
    key : str
        The cache key the entry must belong to.
    on_corrupt : {"recompute", "raise"}
        See :mod:`helpers._cache`.
    error : type
        The cache's ``ValueError`` subclass raised under ``"raise"``.
    what : str
        Names the artifact in messages (``"localizer"`` ...).

    Returns
    -------
    dict or None
        The record, or ``None`` when there is no entry or a corrupt one was
        set aside (``"recompute"``; a :class:`~helpers._cache.CorruptCacheWarning`
        names it): the caller then trains and writes a new one.

    Raises
    ------
    error
        ``on_corrupt="raise"`` and the entry fails a check; the message names
        the file and the fix.
    """
    check_on_corrupt(on_corrupt, error=error)
    weights, record_file = Path(weights), Path(record_file)
    if not weights.exists():
        return None
    try:
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError) as exc:
            raise WeightsIntegrityError(f"cannot read the record {str(record_file)!r} of cached weights {str(weights)!r} ({exc})") from exc
        if not isinstance(record, dict) or record.get("key") != key:
            raise WeightsIntegrityError(f"record {str(record_file)!r} does not belong to {what} key {key}")
        state = read_checked_state_dict(weights, sha256=record.get("weights_sha256"), record_file=record_file)
        try:
            model.load_state_dict(state, strict=True)
        except Exception as exc:
            raise WeightsIntegrityError(f"cached weights {str(weights)!r} do not fit the {what} ({exc})") from exc
    except WeightsIntegrityError as exc:
        if on_corrupt == "raise":
            raise error(f"corrupt cached {what}: {exc}; delete {str(weights)!r} and {str(record_file)!r} to retrain, "
                        "or pass on_corrupt='recompute'") from exc
        moved = [str(set_aside(p)) for p in (weights, record_file) if p.exists()]
        warnings.warn(f"corrupt cached {what}: {exc}; set aside as {moved} and retraining", CorruptCacheWarning, stacklevel=3)
        return None
    return record


def write_entry(model: nn.Module, weights: str | os.PathLike, record_file: str | os.PathLike, record: dict) -> dict:
    """Write ``record`` (with the weights' ``weights_sha256`` added) and then the weights, each atomically; returns the record."""
    payload, record["weights_sha256"] = state_dict_payload(model)
    text = json.dumps(record, indent=1)
    atomic_write(record_file, lambda tmp: tmp.write_text(text))
    atomic_write_bytes(weights, payload)
    return record
