"""Similarity of two saliency maps: SSIM, Spearman rank correlation, HOG correlation.

These are the comparisons of the randomization, repeatability and
reproducibility criteria. Every function takes two 2-D maps of the same shape
and returns a float; :func:`paired_similarity` scores two ``(N, H, W)``
stacks pair by pair.

A constant map (either one) makes every similarity here undefined: SSIM would
return an arbitrary number (``1.0`` for two equal constants, a tiny value for a
constant against a varying map), Spearman correlation has no ranks. The result
is NaN with a :class:`~helpers.metrics.ConstantMapWarning`; the
``*_with_reason`` functions return ``(value, reason)`` instead of warning.
Arun et al. (2021) dropped these NaNs before averaging, as
:func:`helpers.metrics.bootstrap_ci` does (and counts them).

SSIM settings are one explicit, recorded dictionary (:data:`DEFAULT_SSIM`);
never rely on scikit-image's defaults, which changed under the paper's feet
(see :data:`PAPER_SSIM`).

References
----------
.. [1] Wang, Z., Bovik, A. C., Sheikh, H. R., Simoncelli, E. P. (2004). Image
   quality assessment: from error visibility to structural similarity. IEEE
   Trans. Image Processing 13(4), 600-612. doi:10.1109/TIP.2003.819861
.. [2] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS.
   arXiv:1810.03292
.. [3] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [4] Dalal, N., Triggs, B. (2005). Histograms of oriented gradients for human
   detection. CVPR.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from helpers.metrics._checks import (
    REASON_CONSTANT_MAP,
    ConstantMapWarning,
    MetricInputError,
    as_map,
    as_maps,
    is_constant,
    same_shape,
    warn_summary,
    warn_undefined,
)

__all__ = [
    "ConstantMapWarning",
    "SimilaritySpecError",
    "DEFAULT_SSIM",
    "PAPER_SSIM",
    "ADEBAYO_SSIM",
    "SSIM_SPEC_KEYS",
    "SIMILARITY_METRICS",
    "HOG_CELLS_PER_BLOCK",
    "ssim_spec",
    "ssim",
    "ssim_with_reason",
    "spearman",
    "hog_cells",
    "hog_similarity",
    "similarity",
    "similarity_with_reason",
    "paired_similarity",
]

Result = tuple[float, str]


class SimilaritySpecError(MetricInputError):
    """An unknown similarity metric, an unknown SSIM setting or an invalid value for one."""


#: The book's SSIM: maps in ``[0, 1]`` (``data_range=1``), 7×7 uniform window,
#: sample covariance, Wang et al.'s constants. Record it with every result.
DEFAULT_SSIM: dict[str, Any] = dict(
    data_range=1.0, win_size=7, gaussian_weights=False, use_sample_covariance=True, K1=0.01, K2=0.03
)

#: What Arun et al. (2021) effectively computed: ``structural_similarity(m1, m2)``
#: without ``data_range`` on float maps, for which scikit-image ≈0.16 assumed the
#: float dtype range ``[-1, 1]``, i.e. ``data_range=2``. Larger stabilizing
#: constants (``C = (K·2)²``) pull SSIM of dissimilar low-contrast maps upwards.
PAPER_SSIM: dict[str, Any] = {**DEFAULT_SSIM, "data_range": 2.0}

#: Adebayo et al. (2018): Gaussian-weighted window (σ = 1.5, 11 taps, the
#: scikit-image window for ``gaussian_weights=True``). Their scikit-image also
#: assumed ``data_range=2`` for float maps; we keep ``1.0`` (maps in ``[0, 1]``);
#: combine with ``data_range=2.0`` to reproduce them exactly.
ADEBAYO_SSIM: dict[str, Any] = {**DEFAULT_SSIM, "gaussian_weights": True, "sigma": 1.5, "win_size": 11}

#: Settings :func:`ssim` accepts (keyword arguments of
#: ``skimage.metrics.structural_similarity``).
SSIM_SPEC_KEYS = ("data_range", "win_size", "gaussian_weights", "use_sample_covariance", "K1", "K2", "sigma")

#: Names accepted by :func:`similarity`.
SIMILARITY_METRICS = ("ssim", "spearman_abs", "spearman_signed", "hog")

#: ``cells_per_block`` of the HOG descriptor (scikit-image's default, as Adebayo et al. used).
HOG_CELLS_PER_BLOCK = (3, 3)

_RANGE_TOLERANCE = 1e-9


def ssim_spec(**spec: Any) -> dict[str, Any]:
    """The complete SSIM settings: :data:`DEFAULT_SSIM` updated with ``spec``, validated.

    Parameters
    ----------
    **spec
        Any of :data:`SSIM_SPEC_KEYS`, e.g. ``**PAPER_SSIM`` or
        ``gaussian_weights=True, sigma=1.5, win_size=11``.

    Returns
    -------
    dict
        Plain dict (suitable for :func:`helpers._cache.stable_hash` and result
        tables).

    Raises
    ------
    SimilaritySpecError
        Unknown key, non-positive ``data_range``/``sigma``, even or < 3
        ``win_size``, ``sigma`` without ``gaussian_weights=True``.
    """
    unknown = sorted(set(spec) - set(SSIM_SPEC_KEYS))
    if unknown:
        raise SimilaritySpecError(f"unknown SSIM setting(s) {unknown}; valid settings: {', '.join(SSIM_SPEC_KEYS)}")
    full = {**DEFAULT_SSIM, **spec}
    if not (isinstance(full["data_range"], (int, float)) and float(full["data_range"]) > 0):
        raise SimilaritySpecError(f"SSIM data_range must be a positive number, got {full['data_range']!r}")
    full["data_range"] = float(full["data_range"])
    win = full["win_size"]
    if not (isinstance(win, (int, np.integer)) and not isinstance(win, bool) and win >= 3 and win % 2 == 1):
        raise SimilaritySpecError(f"SSIM win_size must be an odd integer >= 3, got {win!r}")
    full["win_size"] = int(win)
    for key in ("K1", "K2"):
        if not (isinstance(full[key], (int, float)) and float(full[key]) > 0):
            raise SimilaritySpecError(f"SSIM {key} must be a positive number, got {full[key]!r}")
        full[key] = float(full[key])
    for key in ("gaussian_weights", "use_sample_covariance"):
        if not isinstance(full[key], (bool, np.bool_)):
            raise SimilaritySpecError(f"SSIM {key} must be True or False, got {full[key]!r}")
        full[key] = bool(full[key])
    if "sigma" in full:
        if not full["gaussian_weights"]:
            raise SimilaritySpecError("SSIM sigma only applies with gaussian_weights=True; drop it or set gaussian_weights=True")
        if not (isinstance(full["sigma"], (int, float)) and float(full["sigma"]) > 0):
            raise SimilaritySpecError(f"SSIM sigma must be a positive number, got {full['sigma']!r}")
        full["sigma"] = float(full["sigma"])
    return full


def _pair(map_a, map_b) -> tuple[np.ndarray, np.ndarray]:
    a = as_map(map_a, "map_a")
    b = as_map(map_b, "map_b")
    same_shape(a, b, "map_a", "map_b")
    return a, b


def _constant_reason(a: np.ndarray, b: np.ndarray) -> str:
    ca, cb = is_constant(a), is_constant(b)
    if ca and cb:
        return f"{REASON_CONSTANT_MAP} (both maps)"
    if ca:
        return f"{REASON_CONSTANT_MAP} (map_a)"
    if cb:
        return f"{REASON_CONSTANT_MAP} (map_b)"
    return ""


def _ssim(a: np.ndarray, b: np.ndarray, spec: Mapping[str, Any]) -> Result:
    win = spec["win_size"]
    if min(a.shape) < win:
        raise MetricInputError(
            f"maps of shape {a.shape} are smaller than the SSIM window win_size={win}; "
            f"expected both sides >= {win} (or pass a smaller odd win_size)"
        )
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi - lo > spec["data_range"] * (1 + _RANGE_TOLERANCE):
        raise MetricInputError(
            f"maps span [{lo:.4g}, {hi:.4g}] (range {hi - lo:.4g}) but SSIM data_range={spec['data_range']}; "
            "expected maps within the data range (normalize them to [0, 1], or pass the true data_range)"
        )
    reason = _constant_reason(a, b)
    if reason:
        return np.nan, reason
    return float(structural_similarity(a, b, **spec)), ""


def ssim_with_reason(map_a, map_b, **spec: Any) -> Result:
    """``(value, reason)`` of :func:`ssim`, without warnings (``reason == ""`` when defined)."""
    return _ssim(*_pair(map_a, map_b), ssim_spec(**spec))


def ssim(map_a, map_b, **spec: Any) -> float:
    """Structural similarity of two 2-D maps with explicit, recorded settings.

    ``skimage.metrics.structural_similarity(map_a, map_b, **ssim_spec(**spec))``
    on the 2-D maps (never on flattened 1-D vectors, as Quantus' batched SSIM
    does).

    Parameters
    ----------
    map_a, map_b : array_like, shape (H, W)
        Finite maps whose values lie within a range of width ``data_range``
        (``[0, 1]`` maps for :data:`DEFAULT_SSIM`).
    **spec
        Overrides of :data:`DEFAULT_SSIM`: any of :data:`SSIM_SPEC_KEYS`. Pass
        ``**PAPER_SSIM`` to reproduce Arun et al. (2021), ``**ADEBAYO_SSIM`` for
        the Gaussian window of Adebayo et al. (2018).

    Returns
    -------
    float
        In ``[-1, 1]``; 1 for identical (non-constant) maps. NaN with a
        :class:`~helpers.metrics.ConstantMapWarning` when either map is
        constant.

    Raises
    ------
    SimilaritySpecError
        An unknown or invalid setting.
    MetricInputError
        Maps that are not 2-D, differ in shape, contain NaN/inf, are smaller
        than the window, or span more than ``data_range``.

    References
    ----------
    .. [1] Wang et al. (2004); Arun et al. (2021); Adebayo et al. (2018). See
       the module docstring.
    """
    value, reason = ssim_with_reason(map_a, map_b, **spec)
    if reason:
        warn_undefined("ssim", reason)
    return value


def _spearman(a: np.ndarray, b: np.ndarray, absolute: bool) -> Result:
    if absolute:
        a, b = np.abs(a), np.abs(b)
    reason = _constant_reason(a, b)
    if reason:
        return np.nan, reason
    return float(spearmanr(a.ravel(), b.ravel()).statistic), ""


def spearman(map_a, map_b, *, absolute: bool = True) -> float:
    """Spearman rank correlation of the pixels of two maps (Adebayo et al., 2018).

    Parameters
    ----------
    map_a, map_b : array_like, shape (H, W)
        Finite maps of any scale.
    absolute : bool, optional
        ``True`` (default) ranks ``|map|`` — Adebayo's "absolute value" variant,
        blind to sign flips; ``False`` ranks the signed maps (the "diverging"
        variant), which only makes sense for raw signed attributions.

    Returns
    -------
    float
        In ``[-1, 1]``; NaN with a :class:`~helpers.metrics.ConstantMapWarning`
        if either (absolute) map is constant.

    References
    ----------
    .. [1] Adebayo et al. (2018); ``scipy.stats.spearmanr``.
    """
    value, reason = _spearman(*_pair(map_a, map_b), bool(absolute))
    if reason:
        warn_undefined("spearman", reason)
    return value


def hog_cells(shape: tuple[int, int], *, pixels_per_cell: tuple[int, int] = (16, 16)) -> tuple[int, int]:
    """The ``pixels_per_cell`` :func:`hog_similarity` actually uses for maps of ``shape``.

    The requested cell size is kept when the image holds at least one HOG block
    (:data:`HOG_CELLS_PER_BLOCK` = 3 cells) along each axis; otherwise it is
    shrunk, per axis, to ``side // 3`` so that exactly one block fits. Adebayo
    et al. used 16-pixel cells on 299-pixel images (18 cells per side); on the
    book's small working sizes (64 px: 4 cells; 32 px: 10-px cells, 3 cells)
    the descriptor is coarser — report the effective cell size with the result.

    Raises
    ------
    MetricInputError
        A non-positive cell size, or a side shorter than 3 pixels.
    """
    try:
        requested = tuple(int(p) for p in pixels_per_cell)
    except TypeError:
        raise MetricInputError(f"pixels_per_cell must be a pair of positive integers, got {pixels_per_cell!r}") from None
    if len(requested) != 2 or min(requested) < 1:
        raise MetricInputError(f"pixels_per_cell must be a pair of positive integers, got {pixels_per_cell!r}")
    out = []
    for side, cell, block in zip(shape, requested, HOG_CELLS_PER_BLOCK):
        if side < block:
            raise MetricInputError(f"maps of shape {tuple(shape)} are too small for HOG; expected sides >= {block} pixels")
        out.append(min(cell, side // block))
    return (out[0], out[1])


def _minmax(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


def _hog(a: np.ndarray, b: np.ndarray, pixels_per_cell: tuple[int, int]) -> Result:
    cells = hog_cells(a.shape, pixels_per_cell=pixels_per_cell)
    reason = _constant_reason(a, b)
    if reason:
        return np.nan, reason
    features = [
        hog(_minmax(x), pixels_per_cell=cells, cells_per_block=HOG_CELLS_PER_BLOCK, block_norm="L2-Hys", feature_vector=True)
        for x in (a, b)
    ]
    if is_constant(features[0]) or is_constant(features[1]):
        return np.nan, "constant HOG features"
    return float(spearmanr(features[0], features[1]).statistic), ""


def hog_similarity(map_a, map_b, *, pixels_per_cell: tuple[int, int] = (16, 16)) -> float:
    """Spearman correlation of the HOG descriptors of two maps (Adebayo et al., 2018).

    Each map is min-max normalized to ``[0, 1]`` (Adebayo's ``normalize_image``),
    described by ``skimage.feature.hog`` (9 orientations, 3×3-cell blocks,
    L2-Hys), and the two descriptors are rank-correlated. HOG compares the
    *edges* of the maps, so it is less sensitive to their overall intensity
    than SSIM or pixel ranks.

    Parameters
    ----------
    map_a, map_b : array_like, shape (H, W)
    pixels_per_cell : pair of int, optional
        Requested HOG cell size (Adebayo: 16×16); shrunk for small maps as
        documented in :func:`hog_cells`.

    Returns
    -------
    float
        In ``[-1, 1]``; 1 for identical non-constant maps. NaN with a
        :class:`~helpers.metrics.ConstantMapWarning` if either map is constant.

    References
    ----------
    .. [1] Adebayo et al. (2018); Dalal and Triggs (2005). See the module docstring.
    """
    value, reason = _hog(*_pair(map_a, map_b), pixels_per_cell)
    if reason:
        warn_undefined("hog_similarity", reason)
    return value


def _resolve(metric: str, options: Mapping[str, Any]):
    """Validate ``metric``/``options`` once; return ``f(a, b) -> (value, reason)`` on checked arrays."""
    if metric not in SIMILARITY_METRICS:
        raise SimilaritySpecError(f"unknown similarity metric {metric!r}; expected one of {', '.join(SIMILARITY_METRICS)}")
    if metric == "ssim":
        spec = ssim_spec(**options)
        return lambda a, b: _ssim(a, b, spec)
    if metric in ("spearman_abs", "spearman_signed"):
        if options:
            raise SimilaritySpecError(f"metric {metric!r} takes no options, got {sorted(options)}")
        absolute = metric == "spearman_abs"
        return lambda a, b: _spearman(a, b, absolute)
    unknown = sorted(set(options) - {"pixels_per_cell"})
    if unknown:
        raise SimilaritySpecError(f"metric 'hog' takes only pixels_per_cell, got {unknown}")
    cells = options.get("pixels_per_cell", (16, 16))
    return lambda a, b: _hog(a, b, cells)


def similarity_with_reason(map_a, map_b, *, metric: str = "ssim", **options: Any) -> Result:
    """``(value, reason)`` of :func:`similarity`, without warnings."""
    return _resolve(metric, options)(*_pair(map_a, map_b))


def similarity(map_a, map_b, *, metric: str = "ssim", **options: Any) -> float:
    """One similarity metric by name.

    Parameters
    ----------
    map_a, map_b : array_like, shape (H, W)
    metric : {"ssim", "spearman_abs", "spearman_signed", "hog"}, optional
        :func:`ssim`, :func:`spearman` with ``absolute=True`` / ``False``, or
        :func:`hog_similarity`.
    **options
        SSIM settings (see :func:`ssim_spec`) for ``"ssim"``;
        ``pixels_per_cell`` for ``"hog"``; nothing for the Spearman metrics.

    Returns
    -------
    float
        NaN with a :class:`~helpers.metrics.ConstantMapWarning` when undefined.

    Raises
    ------
    SimilaritySpecError
        Unknown metric or an option the metric does not take.
    """
    value, reason = similarity_with_reason(map_a, map_b, metric=metric, **options)
    if reason:
        warn_undefined(metric, reason)
    return value


def paired_similarity(maps_a, maps_b, *, metric: str = "ssim", return_reasons: bool = False, **options: Any):
    """Similarity of ``maps_a[i]`` with ``maps_b[i]`` for every ``i``.

    Parameters
    ----------
    maps_a, maps_b : array_like, shape (N, H, W)
        Two stacks of maps of the same images, e.g. the original model's maps
        and one randomized state's maps, or two replicates' maps.
    metric : str, optional
        See :func:`similarity`.
    return_reasons : bool, optional
        Also return the list of reasons (``""`` where defined).
    **options
        As in :func:`similarity`.

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
        One value per pair, NaN where undefined (one summary warning for the
        batch). With ``return_reasons=True``: ``(values, reasons)``.
    """
    fn = _resolve(metric, options)
    a = as_maps(maps_a, "maps_a")
    b = as_maps(maps_b, "maps_b")
    same_shape(a, b, "maps_a", "maps_b")
    results = [fn(x, y) for x, y in zip(a, b)]
    values = np.array([v for v, _ in results], dtype=np.float64)
    reasons = [r for _, r in results]
    warn_summary(f"paired_similarity[{metric}]", reasons, len(results))
    if return_reasons:
        return values, reasons
    return values

