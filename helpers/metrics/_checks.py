"""Input validation, errors and warnings shared by the metrics modules.

Every metric of :mod:`helpers.metrics` takes plain numpy arrays. Bad input
(wrong number of dimensions, mismatched shapes, NaN/inf pixels, a non-binary
mask) raises :class:`MetricInputError`, whose message names the argument and
says what is expected. A metric that is *undefined* for valid input (an empty
ground-truth mask, a constant map) returns NaN and says why with a warning of
a dedicated :class:`UndefinedMetricWarning` subclass; the ``*_with_reason``
variants return the reason instead of warning.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Iterable

import numpy as np

__all__ = [
    "MetricInputError",
    "UndefinedMetricWarning",
    "ConstantMapWarning",
    "EmptyMaskWarning",
    "FullMaskWarning",
    "REASON_CONSTANT_MAP",
    "REASON_EMPTY_MASK",
    "REASON_FULL_MASK",
]


class MetricInputError(ValueError):
    """A map, mask or option that a metric cannot take (the message says what is expected)."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for this (valid) input and was returned as NaN."""


class ConstantMapWarning(UndefinedMetricWarning):
    """A constant saliency map: similarity, Otsu IoU and the pointing game are undefined (NaN).

    A constant map carries no spatial information. SSIM would return a
    meaningless number for it (``1.0`` for two equal constants), Spearman
    correlation has no ranks and Otsu's method no threshold, so these metrics
    return NaN instead of a silent value.
    """


class EmptyMaskWarning(UndefinedMetricWarning):
    """An empty ground-truth mask: localization metrics are undefined (NaN), never a hit or a zero."""


class FullMaskWarning(UndefinedMetricWarning):
    """A ground-truth mask covering the whole image: localization metrics are undefined (NaN), any map would score 1."""


REASON_CONSTANT_MAP = "constant map"
REASON_EMPTY_MASK = "empty mask"
REASON_FULL_MASK = "mask covers the whole image"

_WARNING_FOR_REASON = {
    REASON_CONSTANT_MAP: ConstantMapWarning,
    REASON_EMPTY_MASK: EmptyMaskWarning,
    REASON_FULL_MASK: FullMaskWarning,
}


def warn_undefined(metric: str, reason: str, *, stacklevel: int = 3) -> None:
    """Warn that ``metric`` returned NaN because of ``reason``."""
    category = _WARNING_FOR_REASON.get(reason.split(" (")[0], UndefinedMetricWarning)
    warnings.warn(f"{metric} is undefined: {reason}; returning NaN", category, stacklevel=stacklevel)


def warn_summary(metric: str, reasons: Iterable[str], total: int, *, stacklevel: int = 3) -> None:
    """One warning for a batch: how many of ``total`` values are NaN, grouped by reason."""
    counts = Counter(r for r in reasons if r)
    if not counts:
        return
    n_nan = sum(counts.values())
    detail = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    categories = {_WARNING_FOR_REASON.get(r.split(" (")[0], UndefinedMetricWarning) for r in counts}
    category = categories.pop() if len(categories) == 1 else UndefinedMetricWarning
    warnings.warn(f"{metric}: {n_nan} of {total} values are NaN ({detail})", category, stacklevel=stacklevel)


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else f"a {type(x).__name__}"


def as_map(x: Any, name: str = "saliency_map") -> np.ndarray:
    """``x`` as a finite 2-D float64 array, or :class:`MetricInputError`."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be a 2-D numeric array, got {_describe(x)}") from None
    if arr.ndim != 2:
        raise MetricInputError(f"{name} must be a 2-D array (H, W), got {arr.ndim}-D with shape {arr.shape}")
    if arr.size == 0:
        raise MetricInputError(f"{name} is empty (shape {arr.shape}); expected at least one pixel")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise MetricInputError(f"{name} has {n_bad} NaN/inf pixel(s); expected finite values")
    return arr


def as_mask(x: Any, name: str = "mask") -> np.ndarray:
    """``x`` as a 2-D bool array; integer/float arrays must hold only 0 and 1."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise MetricInputError(f"{name} must be a 2-D boolean array (H, W), got {arr.ndim}-D with shape {arr.shape}")
    return _binary(arr, name)


def _binary(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise MetricInputError(f"{name} must be boolean (or 0/1 numbers), got dtype {arr.dtype}")
    values = np.unique(arr)
    if not np.all(np.isin(values, (0, 1))):
        shown = ", ".join(repr(v) for v in values[:5].tolist())
        raise MetricInputError(f"{name} must be boolean (or hold only 0 and 1), found values {shown}")
    return arr.astype(bool)


def as_maps(x: Any, name: str = "maps") -> np.ndarray:
    """``x`` as a finite 3-D float64 stack ``(N, H, W)``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be a numeric array (N, H, W), got {_describe(x)}") from None
    if arr.ndim != 3:
        raise MetricInputError(f"{name} must be a stack of 2-D maps (N, H, W), got {arr.ndim}-D with shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise MetricInputError(f"{name} is empty (shape {arr.shape}); expected at least one map of at least one pixel")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1))
        raise MetricInputError(f"{name} has NaN/inf pixels in map(s) {bad[:5].tolist()}; expected finite values")
    return arr


def as_masks(x: Any, name: str = "masks") -> np.ndarray:
    """``x`` as a 3-D bool stack ``(N, H, W)``."""
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise MetricInputError(f"{name} must be a stack of 2-D masks (N, H, W), got {arr.ndim}-D with shape {arr.shape}")
    return _binary(arr, name)


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise :class:`MetricInputError` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise MetricInputError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; expected the same shape")


def is_constant(x: np.ndarray) -> bool:
    """True when every value of ``x`` is the same."""
    return bool(np.all(x == x.flat[0]))


def as_values(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D float64 array (NaN allowed: metrics report undefined values as NaN)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be a 1-D sequence of numbers, got {_describe(x)}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D (one value per image), got shape {arr.shape}")
    if np.any(np.isinf(arr)):
        raise MetricInputError(f"{name} contains inf; expected finite values or NaN for undefined ones")
    return arr
