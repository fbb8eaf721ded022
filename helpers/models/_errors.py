"""Errors raised by :mod:`helpers.models`."""

from __future__ import annotations

from helpers._cache import CorruptCacheWarning

__all__ = ["ModelError", "CacheCorruptError", "CacheWarning"]


class ModelError(ValueError):
    """A bad architecture name, weights file, input or training setting."""


class CacheCorruptError(ModelError):
    """A cached weights or record file exists but cannot be read back."""


class CacheWarning(CorruptCacheWarning):
    """A corrupt cache entry was set aside (renamed ``*.corrupt``) and the model retrained."""
