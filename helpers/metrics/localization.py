"""Localization utility: how well a saliency map points at the ground-truth region.

Every function takes one 2-D saliency map and one 2-D boolean mask of the same
shape and returns a float. The map may have any scale (only its ordering or
its Otsu binarization matters), but it must be finite.

NaN rules (never a silent 0 and never a silent hit):

==================  ===============  ===============  =========================
metric              empty mask       constant map     full mask
==================  ===============  ===============  =========================
average_precision   NaN              prevalence (=1)  NaN
auprc_trapezoid     NaN              (1 + prev) / 2   NaN
roc_auc             NaN              0.5              NaN (no negative pixel)
iou_otsu            NaN              NaN              NaN
hit                 NaN              NaN              NaN
==================  ===============  ===============  =========================

A mask that covers the whole image has no pixel outside it: any map, even a
random one, would score AP = AUPRC = hit = 1 and an Otsu IoU set by the
threshold alone, so every metric is undefined there (NaN with a
:class:`~helpers.metrics.FullMaskWarning`), as for the empty mask.

The rank-based metrics (AP, AUPRC, ROC AUC) have a well-defined chance value
for a constant map (it ranks every pixel equally), which is the honest score
of a map that localizes nothing; dropping such maps would bias a method's mean
upwards. Otsu's threshold and the location of "the" maximum do not exist for a
constant map, so those two metrics are NaN.

Each NaN comes with a warning (:class:`~helpers.metrics.EmptyMaskWarning`,
:class:`~helpers.metrics.ConstantMapWarning`); :func:`localization_with_reason`
returns the reason instead, and :func:`localization_table` scores a whole
batch with one summary warning.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [2] Saporta, A. et al. (2022). Benchmarking saliency methods for chest
   X-ray interpretation. Nature Machine Intelligence 4, 867-878.
   doi:10.1038/s42256-022-00536-x (CheXlocalize: Otsu mIoU and hit rate).
.. [3] Zhang, J. et al. (2018). Top-down neural attention by excitation
   backprop. IJCV 126, 1084-1102 (the pointing game).
.. [4] Hedström, A. et al. (2023). Quantus: an explainable AI toolkit for
   responsible evaluation of neural network explanations. JMLR 24(34).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from skimage.filters import threshold_otsu
from sklearn.metrics import auc, average_precision_score, jaccard_score, precision_recall_curve, roc_auc_score

from helpers.metrics._checks import (
    REASON_CONSTANT_MAP,
    REASON_EMPTY_MASK,
    REASON_FULL_MASK,
    MetricInputError,
    as_map,
    as_mask,
    as_maps,
    as_masks,
    is_constant,
    same_shape,
    warn_summary,
    warn_undefined,
)

__all__ = [
    "average_precision",
    "auprc_trapezoid",
    "roc_auc",
    "iou_otsu",
    "hit",
    "HIT_TIE_RULES",
    "LOCALIZATION_METRICS",
    "DEFAULT_LOCALIZATION_METRICS",
    "localization_with_reason",
    "localization_table",
]

Result = tuple[float, str]

#: How :func:`hit` scores a map whose maximum is reached by several pixels.
HIT_TIE_RULES = ("fraction", "all", "any", "first")


def _pair(saliency_map, mask) -> tuple[np.ndarray, np.ndarray]:
    s = as_map(saliency_map, "saliency_map")
    m = as_mask(mask, "mask")
    same_shape(s, m, "saliency_map", "mask")
    return s, m


def _undefined_mask(m: np.ndarray) -> str:
    """The reason a mask leaves every localization metric undefined, or ``""``."""
    if not m.any():
        return REASON_EMPTY_MASK
    if m.all():
        return REASON_FULL_MASK
    return ""


def _average_precision(s: np.ndarray, m: np.ndarray) -> Result:
    if reason := _undefined_mask(m):
        return np.nan, reason
    return float(average_precision_score(m.ravel(), s.ravel())), ""


def _auprc_trapezoid(s: np.ndarray, m: np.ndarray) -> Result:
    if reason := _undefined_mask(m):
        return np.nan, reason
    precision, recall, _ = precision_recall_curve(m.ravel(), s.ravel())
    return float(auc(recall, precision)), ""


def _roc_auc(s: np.ndarray, m: np.ndarray) -> Result:
    if reason := _undefined_mask(m):
        return np.nan, reason
    return float(roc_auc_score(m.ravel(), s.ravel())), ""


def _iou_otsu(s: np.ndarray, m: np.ndarray) -> Result:
    if reason := _undefined_mask(m):
        return np.nan, reason
    if is_constant(s):
        return np.nan, REASON_CONSTANT_MAP
    # skimage's convention: the foreground is strictly above the threshold.
    predicted = s > threshold_otsu(s)
    # Jaccard index of the positive class = |P ∩ G| / |P ∪ G| (the union is never
    # empty: the mask is not).
    return float(jaccard_score(m.ravel(), predicted.ravel())), ""


def _hit(s: np.ndarray, m: np.ndarray, ties: str = "fraction") -> Result:
    if ties not in HIT_TIE_RULES:
        raise MetricInputError(f"ties={ties!r} is not a tie rule of hit; expected one of {', '.join(HIT_TIE_RULES)}")
    if reason := _undefined_mask(m):
        return np.nan, reason
    if is_constant(s):
        return np.nan, REASON_CONSTANT_MAP
    if ties == "first":
        return float(m.flat[int(np.argmax(s))]), ""
    inside = m[s == s.max()]
    if ties == "fraction":
        return float(inside.mean()), ""
    if ties == "all":
        return float(inside.all()), ""
    return float(inside.any()), ""


def average_precision(saliency_map, mask) -> float:
    """Average precision of the pixels ranked by the map against the mask.

    ``sklearn.metrics.average_precision_score`` over all pixels (mask = positive
    class, map value = score): the step-wise area under the precision-recall
    curve, :math:`\\sum_n (R_n - R_{n-1}) P_n`. Unlike the trapezoid rule it
    does not interpolate optimistically between operating points.

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite map of any scale; higher = more salient.
    mask : array_like of bool, shape (H, W)
        Ground-truth region.

    Returns
    -------
    float
        In ``[prevalence-level, 1]`` for informative maps; exactly the mask's
        prevalence (fraction of True pixels) for a constant map; NaN (with an
        :class:`~helpers.metrics.EmptyMaskWarning`) when the mask is empty —
        never 0, which scikit-learn would return.

    References
    ----------
    .. [1] Saporta et al. (2022) and Arun et al. (2021); see the module docstring.
    """
    value, reason = _average_precision(*_pair(saliency_map, mask))
    if reason:
        warn_undefined("average_precision", reason)
    return value


def auprc_trapezoid(saliency_map, mask) -> float:
    """Area under the precision-recall curve by the trapezoid rule, as Arun et al. (2021) computed it.

    ``sklearn.metrics.precision_recall_curve`` then ``sklearn.metrics.auc(recall,
    precision)``. This linear interpolation between operating points is
    optimistic (scikit-learn's documentation says so): a constant map scores
    ``(1 + prevalence) / 2`` instead of the prevalence. Kept to compare with the
    paper's numbers; :func:`average_precision` is the primary metric.

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
    mask : array_like of bool, shape (H, W)

    Returns
    -------
    float
        NaN (with an :class:`~helpers.metrics.EmptyMaskWarning`) for an empty mask.

    References
    ----------
    .. [1] Arun et al. (2021), ``scripts/utility_fig_*.py`` of
       QTIM-Lab/Assessing-Saliency-Maps.
    """
    value, reason = _auprc_trapezoid(*_pair(saliency_map, mask))
    if reason:
        warn_undefined("auprc_trapezoid", reason)
    return value


def roc_auc(saliency_map, mask) -> float:
    """Pixel-wise ROC AUC of the map against the mask (a secondary number).

    With small masks ROC AUC is dominated by the many negative pixels and looks
    much better than AUPRC; report it next to AP, never instead of it.

    Returns
    -------
    float
        0.5 for a constant map; NaN (with a warning) for an empty mask or a mask
        that covers the whole image (ROC AUC needs both classes).
    """
    value, reason = _roc_auc(*_pair(saliency_map, mask))
    if reason:
        warn_undefined("roc_auc", reason)
    return value


def iou_otsu(saliency_map, mask) -> float:
    """Intersection over union of the Otsu-binarized map with the mask (CheXlocalize-style).

    The map is binarized at Otsu's threshold (``skimage.filters.threshold_otsu``,
    256-bin histogram over the map's own range; foreground = pixels strictly
    above the threshold), then ``|P ∩ G| / |P ∪ G|``. CheXlocalize min-max
    normalizes to uint8 before Otsu (same 256 levels) and fills contours; we
    skip the contour filling, which only matters for maps with holes.

    Returns
    -------
    float
        In ``[0, 1]``. NaN for an empty mask (as CheXlocalize's ``true_pos_only``
        mIoU: IoU is only defined where there is something to find) and NaN for
        a constant map (Otsu's method has no threshold: there is one grey
        level), each with a warning.

    References
    ----------
    .. [1] Saporta et al. (2022), CheXlocalize; Otsu, N. (1979). A threshold
       selection method from gray-level histograms. IEEE Trans. SMC 9(1), 62-66.
    """
    value, reason = _iou_otsu(*_pair(saliency_map, mask))
    if reason:
        warn_undefined("iou_otsu", reason)
    return value


def hit(saliency_map, mask, *, ties: str = "fraction") -> float:
    """Pointing game: does the map's maximum lie inside the mask?

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
    mask : array_like of bool, shape (H, W)
    ties : {"fraction", "all", "any", "first"}, optional
        Rule when several pixels share the maximum (common: the paper's
        post-processing clips maps at their 99th percentile, so about 1 % of
        the pixels equal the maximum).

        * ``"fraction"`` (default): the fraction of maximal pixels inside the
          mask — the expected hit when the tie is broken uniformly at random;
          1.0 or 0.0 when the maximum is unique.
        * ``"all"``: 1.0 only if every maximal pixel lies inside (strict).
        * ``"any"``: 1.0 if any maximal pixel lies inside (Quantus' rule;
          lenient).
        * ``"first"``: the first maximal pixel in raster order
          (``numpy.argmax``, CheXlocalize's rule; arbitrary).

        No tolerance radius is used.

    Returns
    -------
    float
        In ``[0, 1]``; NaN (with a warning) for an empty mask — Quantus' pointing
        game counts that as a hit, which is a bug — and for a constant map
        (every pixel is "the" maximum: the map points nowhere).

    References
    ----------
    .. [1] Zhang et al. (2018) (pointing game); Saporta et al. (2022) (hit rate);
       Hedström et al. (2023) (Quantus). See the module docstring.
    """
    s, m = _pair(saliency_map, mask)
    value, reason = _hit(s, m, ties)
    if reason:
        warn_undefined("hit", reason)
    return value


#: Name → function ``(map, mask) -> (value, reason)`` of every localization metric.
LOCALIZATION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], Result]] = {
    "average_precision": _average_precision,
    "auprc_trapezoid": _auprc_trapezoid,
    "roc_auc": _roc_auc,
    "iou_otsu": _iou_otsu,
    "hit": _hit,
}

#: Metrics scored by :func:`localization_table` unless told otherwise.
DEFAULT_LOCALIZATION_METRICS = ("average_precision", "auprc_trapezoid", "iou_otsu", "hit", "roc_auc")


def _check_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise MetricInputError("metrics is empty; expected at least one of " + ", ".join(LOCALIZATION_METRICS))
    for name in metrics:
        if name not in LOCALIZATION_METRICS:
            raise MetricInputError(
                f"unknown localization metric {name!r}; expected one of {', '.join(LOCALIZATION_METRICS)}"
            )
    return metrics


def localization_with_reason(saliency_map, mask, *, metric: str = "average_precision", ties: str = "fraction") -> Result:
    """``(value, reason)`` of one localization metric, without warnings.

    ``reason`` is ``""`` when the value is defined, else a short phrase
    (``"empty mask"``, ``"constant map"``, ``"mask covers the whole image"``).
    ``ties`` applies to ``metric="hit"`` only.
    """
    (name,) = _check_metrics(metric)
    s, m = _pair(saliency_map, mask)
    if name == "hit":
        return _hit(s, m, ties)
    return LOCALIZATION_METRICS[name](s, m)


def localization_table(
    maps,
    masks,
    ids: Sequence[str],
    *,
    metrics: Sequence[str] = DEFAULT_LOCALIZATION_METRICS,
    ties: str = "fraction",
    with_reason: bool = False,
) -> pd.DataFrame:
    """Score a batch of maps against their masks: one tidy row per (image, metric).

    Parameters
    ----------
    maps : array_like, shape (N, H, W)
        Saliency maps (or one prior map broadcast by the caller).
    masks : array_like of bool, shape (N, H, W)
        Ground-truth masks, one per map.
    ids : sequence of str, length N
        Image identifiers (unique).
    metrics : sequence of str, optional
        Names from :data:`LOCALIZATION_METRICS`; default
        :data:`DEFAULT_LOCALIZATION_METRICS`.
    ties : str, optional
        Tie rule of :func:`hit`.
    with_reason : bool, optional
        Add a ``reason`` column (``""`` where the value is defined). Off by
        default so that the table has exactly the columns of the results
        contract's ``image_id, metric, value`` part.

    Returns
    -------
    pandas.DataFrame
        Columns ``image_id`` (str), ``metric`` (str), ``value`` (float) [,
        ``reason``], rows in image order then metric order. NaN values are
        summarized in one :class:`~helpers.metrics.UndefinedMetricWarning`
        (subclass) per metric.
    """
    maps = as_maps(maps, "maps")
    masks = as_masks(masks, "masks")
    same_shape(maps, masks, "maps", "masks")
    ids = [str(i) for i in ids]
    if len(ids) != maps.shape[0]:
        raise MetricInputError(f"ids has {len(ids)} entries but maps has {maps.shape[0]}; expected one id per map")
    if len(set(ids)) != len(ids):
        raise MetricInputError("ids must be unique; found duplicates " + repr(sorted({i for i in ids if ids.count(i) > 1})[:5]))
    metrics = _check_metrics(metrics)
    if ties not in HIT_TIE_RULES:
        raise MetricInputError(f"ties={ties!r} is not a tie rule of hit; expected one of {', '.join(HIT_TIE_RULES)}")
    rows = []
    reasons: dict[str, list[str]] = {name: [] for name in metrics}
    for image_id, s, m in zip(ids, maps, masks):
        for name in metrics:
            value, reason = _hit(s, m, ties) if name == "hit" else LOCALIZATION_METRICS[name](s, m)
            reasons[name].append(reason)
            rows.append((image_id, name, value, reason))
    for name in metrics:
        warn_summary(f"localization_table[{name}]", reasons[name], len(ids))
    table = pd.DataFrame(rows, columns=["image_id", "metric", "value", "reason"])
    table["value"] = table["value"].astype(np.float64)
    if not with_reason:
        table = table.drop(columns="reason")
    return table

