"""From a raw attribution to a ``[0, 1]`` saliency map.

Arun et al. pass every attribution through PAIR's ``VisualizeImageGrayscale``
(absolute value summed over the colour channels, clipped at the 99th
percentile, scaled to ``[0, 1]``) and then min-max normalize the result once
more before computing any metric [1]_. After the first step the map already
spans exactly ``[0, 1]``, so the second normalization is the identity except
for constant maps, which this module handles explicitly.

A constant raw map (an all-zero GradCAM, a dead network) has no meaningful
normalization: PAIR divides 0 by 0 and returns NaN. Here it becomes an all-zero
map, and the low-level functions report it in a boolean ``constant`` array;
:func:`postprocess` also emits a :class:`ConstantMapWarning`. Similarity
metrics downstream turn a constant map into a NaN score with a reason.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267. Code:
   github.com/QTIM-Lab/Assessing-Saliency-Maps, ``scripts/create_maps_rsna.py``.
.. [2] PAIR saliency, ``saliency/core/visualization.py``
   (``VisualizeImageGrayscale``), github.com/PAIR-code/saliency.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from helpers.saliency._errors import ConstantMapWarning, SaliencyError

__all__ = ["as_channels", "visualize_grayscale", "minmax", "passthrough", "normalize", "postprocess", "warn_constant", "channel_sum"]


def as_channels(raw: Any, *, label: str = "attribution") -> np.ndarray:
    """``raw`` (torch or numpy, ``(N, H, W)`` or ``(N, C, H, W)``) as a finite ``float64`` ``(N, C, H, W)`` array.

    Raises
    ------
    SaliencyError
        Wrong number of dimensions or non-finite values.
    """
    if hasattr(raw, "detach"):
        raw = raw.detach().cpu().numpy()
    arr = np.asarray(raw, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise SaliencyError(f"{label}: expected a raw attribution of shape (N, H, W) or (N, C, H, W), got {arr.shape}")
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    if bad.any():
        raise SaliencyError(f"{label}: raw attribution of image(s) {np.flatnonzero(bad).tolist()} contains NaN or inf")
    return arr


def channel_sum(raw: Any, *, label: str = "attribution") -> np.ndarray:
    """Signed sum over channels: the raw 2-D map ``(N, H, W)`` ``float32``."""
    return as_channels(raw, label=label).sum(axis=1).astype(np.float32)


def _constant(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(len(a), -1)
    return flat.max(axis=1) == flat.min(axis=1)


def visualize_grayscale(raw: Any, *, percentile: float = 99.0, label: str = "attribution") -> tuple[np.ndarray, np.ndarray]:
    """Arun et al.'s post-processing (PAIR ``VisualizeImageGrayscale``), batched.

    ``a = sum_c |raw_c|``; ``map = clip((a - min a) / (p - min a), 0, 1)`` with
    ``p`` the ``percentile``-th percentile of ``a`` (numpy's linear
    interpolation, as PAIR).

    Parameters
    ----------
    raw : array or tensor, ``(N, H, W)`` or ``(N, C, H, W)``
    percentile : float, optional
        Clipping percentile (99 in the paper).

    Returns
    -------
    maps : ndarray ``(N, H, W)`` float32 in ``[0, 1]``
    constant : ndarray ``(N,)`` bool
        Maps whose ``a`` was constant; they are returned as all zeros.

    Notes
    -----
    When more than ``100 - percentile`` % of the pixels share the minimum (a
    sparse map, e.g. a rectified GradCAM that is zero almost everywhere),
    ``p == min a`` while some pixels are larger: PAIR's formula divides by
    zero. The map returned then is its limit, 1 where ``a > min a`` and 0
    elsewhere (such a map is not flagged constant).
    """
    if not 0.0 < float(percentile) <= 100.0:
        raise SaliencyError(f"percentile must lie in (0, 100], got {percentile!r}")
    a = np.abs(as_channels(raw, label=label)).sum(axis=1)
    n = len(a)
    flat = a.reshape(n, -1)
    vmin = flat.min(axis=1)
    vmax = np.percentile(flat, percentile, axis=1)
    constant = _constant(a)
    out = np.zeros_like(a)
    span = vmax - vmin
    for i in range(n):  # a handful of images: per-image branches stay readable
        if constant[i]:
            continue
        if span[i] > 0:
            out[i] = np.clip((a[i] - vmin[i]) / span[i], 0.0, 1.0)
        else:  # limit of the formula, see Notes
            out[i] = (a[i] > vmin[i]).astype(np.float64)
    return out.astype(np.float32), constant


def minmax(raw: Any, *, label: str = "attribution") -> tuple[np.ndarray, np.ndarray]:
    """Min-max scaling of the signed channel sum to ``[0, 1]``.

    Returns
    -------
    maps : ndarray ``(N, H, W)`` float32
    constant : ndarray ``(N,)`` bool
        Constant maps, returned as all zeros.
    """
    a = as_channels(raw, label=label).sum(axis=1)
    constant = _constant(a)
    flat = a.reshape(len(a), -1)
    vmin = flat.min(axis=1)[:, None, None]
    span = (flat.max(axis=1) - flat.min(axis=1))[:, None, None]
    out = np.where(constant[:, None, None], 0.0, (a - vmin) / np.where(span > 0, span, 1.0))
    return np.clip(out, 0.0, 1.0).astype(np.float32), constant


def passthrough(raw: Any, *, label: str = "attribution", atol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """The channel sum, which must already lie in ``[0, 1]`` (post-processing kind ``"none"``).

    Values within ``atol`` outside ``[0, 1]`` are clipped; constant maps are
    flagged but kept as they are.

    Raises
    ------
    SaliencyError
        Values further outside ``[0, 1]``.
    """
    a = as_channels(raw, label=label).sum(axis=1)
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if lo < -atol or hi > 1.0 + atol:
        raise SaliencyError(
            f"{label}: post-processing 'none' needs raw maps in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "register the method with postprocess='minmax' or 'paper'"
        )
    return np.clip(a, 0.0, 1.0).astype(np.float32), _constant(a)


_KINDS = {"paper": visualize_grayscale, "minmax": minmax, "none": passthrough}


def normalize(raw: Any, *, kind: str = "paper", label: str = "attribution") -> tuple[np.ndarray, np.ndarray]:
    """Post-process ``raw`` with ``kind`` (``"paper"``, ``"minmax"`` or ``"none"``).

    Returns
    -------
    maps : ndarray ``(N, H, W)`` float32 in ``[0, 1]``
    constant : ndarray ``(N,)`` bool
    """
    if kind not in _KINDS:
        raise SaliencyError(f"unknown post-processing kind {kind!r}; valid: {', '.join(_KINDS)}")
    return _KINDS[kind](raw, label=label)


def postprocess(raw: Any, *, kind: str = "paper", label: str = "attribution") -> np.ndarray:
    """:func:`normalize`, warning (:class:`ConstantMapWarning`) when some maps were constant.

    Returns
    -------
    ndarray ``(N, H, W)`` float32 in ``[0, 1]``
    """
    maps, constant = normalize(raw, kind=kind, label=label)
    warn_constant(constant, label=label, stacklevel=2)
    return maps


def warn_constant(constant: np.ndarray, *, label: str, stacklevel: int = 2) -> None:
    """Emit a :class:`ConstantMapWarning` naming the constant maps, if any."""
    constant = np.asarray(constant, dtype=bool)
    if constant.any():
        warnings.warn(
            f"{label}: {int(constant.sum())} of {len(constant)} map(s) are constant (images "
            f"{np.flatnonzero(constant).tolist()[:10]}) and were returned as all zeros; similarity metrics treat "
            "them as undefined",
            ConstantMapWarning,
            stacklevel=stacklevel + 1,
        )
