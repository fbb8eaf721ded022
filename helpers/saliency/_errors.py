"""Errors and warnings of :mod:`helpers.saliency` (all errors are ``ValueError`` subclasses)."""

from __future__ import annotations

__all__ = [
    "SaliencyError",
    "UnknownMethodError",
    "UnknownSettingError",
    "RegistryError",
    "MapCacheError",
    "CorruptCacheEntryError",
    "ConstantMapWarning",
]


class SaliencyError(ValueError):
    """Bad input to a saliency method: images, target, setting value or model."""


class UnknownMethodError(SaliencyError):
    """A method name that is not registered; the message lists the registered ones."""


class UnknownSettingError(SaliencyError):
    """A setting keyword a method does not take; the message lists the valid ones."""


class RegistryError(SaliencyError):
    """An invalid registration (name taken, bad defaults, bad post-processing kind)."""


class MapCacheError(SaliencyError):
    """Bad use of :class:`helpers.saliency.cache.MapCache` (ids, shapes, keys)."""


class CorruptCacheEntryError(MapCacheError):
    """A cached map file that cannot be read or does not match its key.

    Attributes
    ----------
    path : str
        The offending file.
    """

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        super().__init__(
            f"corrupt saliency-map cache entry {self.path}: {reason}. Delete the file (it is recomputed on the "
            "next call) or open the cache with MapCache(root, on_corrupt='recompute')"
        )


class ConstantMapWarning(UserWarning):
    """Some maps were constant (e.g. an all-zero GradCAM) and were returned as all zeros."""
