"""Comparisons of two maps or two models measured on the same images: better, worse or not distinguishable.

A chapter that asks "is A better than B?" calls one function here and shows
the table it returns (:data:`COMPARISON_COLUMNS`: what is compared with what,
the statistic, its value and CI, a p-value where there is one, the verdict
word and the rule that gave it). Two rules:

* **paired** (:func:`compare_paired`): per-image values of two maps of the
  same images; the percentile bootstrap CI of the mean per-image difference
  ``compared - against`` (images resampled as pairs). *better* when the CI
  lies above 0, *worse* when below, otherwise *not distinguishable*; the
  two-sided Wilcoxon signed-rank p-value is reported beside it.
* **overlap** (:func:`compare_means`, :func:`compare_auc`): a statistic of
  each group with its own bootstrap CI; *better* when the group's CI lies
  wholly above the reference's, *worse* when wholly below, otherwise (the
  CIs overlap) *not distinguishable*. Non-overlap of two 95 % CIs is a
  conservative test of a difference (it implies p < 0.05, not the other way
  round), used where the values are not paired image by image or where a
  curve is read against a band.

A comparison whose CI is undefined (too few finite values) is *undecided*.

References
----------
.. [1] Efron, B., Tibshirani, R. J. (1993). An Introduction to the Bootstrap.
   Chapman & Hall (percentile intervals).
.. [2] Saporta, A. et al. (2022). Benchmarking saliency methods for chest
   X-ray interpretation. Nature Machine Intelligence 4, 867-878 (paired
   bootstrap CIs over images).
.. [3] Wilcoxon, F. (1945). Individual comparisons by ranking methods.
   Biometrics Bulletin 1(6), 80-83.
.. [4] Schenker, N., Gentleman, J. F. (2001). On judging the significance of
   differences by examining the overlap between confidence intervals. The
   American Statistician 55(3), 182-186.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers import metrics

__all__ = [
    "COMPARISON_COLUMNS",
    "COMPARISON_VERDICTS",
    "REFERENCE",
    "verdict_word",
    "compare_paired",
    "compare_means",
    "compare_auc",
]

#: Columns of every comparison table, in order.
COMPARISON_COLUMNS = ("compared", "against", "statistic", "value", "ci_low", "ci_high", "p_value", "n", "verdict",
                      "rule_text")

#: The verdict words of a comparison.
COMPARISON_VERDICTS = ("better", "worse", "not distinguishable", "undecided")

#: The ``verdict`` of the reference row of an overlap comparison (it is what the others are compared against).
REFERENCE = "reference"


def verdict_word(low: float, high: float, *, reference_low: float = 0.0, reference_high: float = 0.0,
                 higher_is_better: bool = True) -> str:
    """The verdict of an interval ``[low, high]`` against a reference interval (default: the point 0).

    Parameters
    ----------
    low, high : float
        CI of the compared statistic (of a paired difference: against 0).
    reference_low, reference_high : float, optional
        CI of the reference; ``0, 0`` for a difference.
    higher_is_better : bool, optional
        ``False`` swaps *better* and *worse* (e.g. an error rate).

    Returns
    -------
    str
        ``"better"`` (``low > reference_high``), ``"worse"``
        (``high < reference_low``), ``"not distinguishable"`` (the intervals
        overlap), or ``"undecided"`` when a bound is NaN.

    Examples
    --------
    >>> verdict_word(0.1, 0.3), verdict_word(-0.2, 0.1), verdict_word(0.1, 0.2, reference_low=0.3, reference_high=0.5)
    ('better', 'not distinguishable', 'worse')
    """
    bounds = (low, high, reference_low, reference_high)
    if not all(isinstance(b, (int, float, np.floating, np.integer)) and math.isfinite(float(b)) for b in bounds):
        return "undecided"
    above, below = float(low) > float(reference_high), float(high) < float(reference_low)
    if not higher_is_better:
        above, below = below, above
    return "better" if above else "worse" if below else "not distinguishable"


def _check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must be a confidence level in (0, 1), e.g. 0.95; got {level!r}")
    return float(level)


def _paired_rule(level: float, higher_is_better: bool) -> str:
    good, bad = ("above", "below") if higher_is_better else ("below", "above")
    return (f"paired {level:.0%} bootstrap CI over images of the mean per-image difference (compared - against): "
            f"better if it lies {good} 0, worse if {bad} 0, otherwise not distinguishable; Wilcoxon signed-rank "
            "p two-sided")


def _overlap_rule(statistic: str, level: float, higher_is_better: bool) -> str:
    good, bad = ("above", "below") if higher_is_better else ("below", "above")
    return (f"{level:.0%} bootstrap CIs of the {statistic}: better if the compared CI lies wholly {good} the "
            f"reference's, worse if wholly {bad}, otherwise (the CIs overlap) not distinguishable")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    for col in ("value", "ci_low", "ci_high", "p_value"):
        frame[col] = frame[col].astype(float)
    frame["n"] = frame["n"].astype(int)
    return frame


def _select(scores: pd.DataFrame, metric: str | None, needed: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ValueError(f"the scores have no column(s) {missing}; columns: {list(scores.columns)}")
    if metric is None:
        return scores
    if "metric" not in scores.columns:
        raise ValueError(f"metric={metric!r} is given but the scores have no 'metric' column")
    part = scores[scores["metric"] == metric]
    if part.empty:
        raise ValueError(f"the scores hold no {metric!r} rows; metrics present: {sorted(scores['metric'].unique())}")
    return part


def compare_paired(scores: pd.DataFrame, *, compared: str, against: Sequence[str] | str, by: str = "method",
                   metric: str | None = None, value: str = "value", index: str = "image_id",
                   higher_is_better: bool = True, statistic: str = "mean_difference", n_bootstrap: int = 1000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Compare one map with others image by image: paired bootstrap CI of the mean difference, and Wilcoxon.

    Parameters
    ----------
    scores : pandas.DataFrame
        Tidy per-image values: an ``index`` column (the image), a ``by``
        column (which map) and a ``value`` column, e.g. the rows of
        :func:`helpers.metrics.localization_table` with a ``method`` column.
        One row per image and map (after the ``metric`` filter).
    compared : str
        The ``by`` value of the map judged.
    against : str or sequence of str
        The ``by`` values it is compared with, one row each.
    by, value, index : str, optional
        Column names (defaults ``method``, ``value``, ``image_id``).
    metric : str, optional
        Keep the rows whose ``metric`` column equals it (e.g.
        ``"average_precision"``); ``None``: every row.
    higher_is_better : bool, optional
        ``False``: a negative difference is *better*.
    statistic : str, optional
        Name written in the ``statistic`` column.
    n_bootstrap, seed, level
        Of :func:`helpers.metrics.paired_bootstrap_diff` (every comparison
        uses the same seed).

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, one row per ``against``: ``value`` is the
        mean difference ``compared - against`` over the images where both are
        finite (``n`` of them; images are taken in sorted ``index`` order),
        ``ci_low``/``ci_high`` its CI, ``p_value`` the two-sided Wilcoxon
        signed-rank p (NaN under 6 non-zero differences), ``verdict`` one of
        :data:`COMPARISON_VERDICTS` (:func:`verdict_word` against 0).

    Raises
    ------
    ValueError
        A column or map is missing, or an image has two values of one map.

    References
    ----------
    .. [1] Efron and Tibshirani (1993); Saporta et al. (2022); Wilcoxon (1945).

    Examples
    --------
    >>> s = pd.DataFrame({"image_id": list("abcdef") * 2, "method": ["A"] * 6 + ["B"] * 6,
    ...                   "value": [0.9, 0.8, 0.9, 0.7, 0.8, 0.9] + [0.1, 0.2, 0.1, 0.3, 0.2, 0.1]})
    >>> compare_paired(s, compared="A", against="B", n_bootstrap=200).loc[0, "verdict"]
    'better'
    """
    level = _check_level(level)
    others = [against] if isinstance(against, str) else list(against)
    if not others:
        raise ValueError("against must name at least one map to compare with")
    part = _select(scores, metric, (index, by, value))
    doubled = part.duplicated([index, by])
    if doubled.any():
        first = part[doubled].iloc[0]
        raise ValueError(f"image {first[index]!r} has more than one {value!r} of {first[by]!r}; compare_paired needs "
                         f"one value per image and {by} (filter by metric or state first)")
    wide = part.pivot(index=index, columns=by, values=value).sort_index()
    missing = [m for m in [compared, *others] if m not in wide.columns]
    if missing:
        raise ValueError(f"the scores have no rows for {missing}; {by} values present: {sorted(map(str, wide.columns))}")
    x = wide[compared].to_numpy(dtype=float)
    rows = []
    for other in others:
        y = wide[other].to_numpy(dtype=float)
        d = metrics.paired_bootstrap_diff(x, y, n_bootstrap=n_bootstrap, seed=seed, level=level)
        w = metrics.wilcoxon_paired(x, y)
        rows.append(dict(compared=compared, against=other, statistic=statistic, value=d.estimate, ci_low=d.low,
                         ci_high=d.high, p_value=w.pvalue, n=d.n,
                         verdict=verdict_word(d.low, d.high, higher_is_better=higher_is_better),
                         rule_text=_paired_rule(level, higher_is_better)))
    return _frame(rows)


def compare_means(scores: pd.DataFrame, *, by: str, reference: str, value: str = "value", metric: str | None = None,
                  higher_is_better: bool = True, n_bootstrap: int = 1000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """The mean of every group with its bootstrap CI, each judged against a reference group by CI overlap.

    Parameters
    ----------
    scores : pandas.DataFrame
        Tidy values with a ``by`` column naming the group and a ``value``
        column (e.g. per-image APs of the trainable map at every box
        fraction, and the supervised U-Net's as the reference).
    by : str
        Column of the groups.
    reference : str
        The group the others are compared with (the ceiling, a baseline).
    value : str, optional
        Column of the values (default ``value``).
    metric : str, optional
        Keep the rows whose ``metric`` column equals it; ``None``: every row.
    higher_is_better : bool, optional
        ``False`` swaps *better* and *worse*.
    n_bootstrap, seed, level
        Of :func:`helpers.metrics.bootstrap_ci` of each group's mean (NaN
        values dropped), each with the same seed.

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, one row per group in order of first
        appearance (the values in row order): ``statistic`` ``"mean"``,
        ``value`` the mean, ``n`` the finite values, ``against`` the
        reference; the reference's own row has ``against`` empty and
        ``verdict`` :data:`REFERENCE`; the others :func:`verdict_word` of
        their CI against the reference's.

    Raises
    ------
    ValueError
        A column or the reference group is missing.

    References
    ----------
    .. [1] Efron and Tibshirani (1993); Schenker and Gentleman (2001).

    Examples
    --------
    >>> s = pd.DataFrame({"map": ["A"] * 4 + ["ceiling"] * 4, "value": [0.1, 0.2, 0.1, 0.2, 0.8, 0.9, 0.8, 0.9]})
    >>> compare_means(s, by="map", reference="ceiling", n_bootstrap=200)["verdict"].tolist()
    ['worse', 'reference']
    """
    level = _check_level(level)
    part = _select(scores, metric, (by, value))
    groups = {key: group[value].to_numpy(dtype=float) for key, group in part.groupby(by, sort=False)}
    if reference not in groups:
        raise ValueError(f"the scores have no rows of the reference {reference!r}; {by} values present: "
                         f"{[str(k) for k in groups]}")
    cis = {key: metrics.bootstrap_ci(v, n_bootstrap=n_bootstrap, seed=seed, level=level) for key, v in groups.items()}
    ref = cis[reference]
    rule = _overlap_rule("mean", level, higher_is_better)
    rows = []
    for key, ci in cis.items():
        is_ref = key == reference
        rows.append(dict(compared=key, against="" if is_ref else reference, statistic="mean", value=ci.estimate,
                         ci_low=ci.low, ci_high=ci.high, p_value=np.nan, n=ci.n,
                         verdict=REFERENCE if is_ref else verdict_word(
                             ci.low, ci.high, reference_low=ref.low, reference_high=ref.high,
                             higher_is_better=higher_is_better),
                         rule_text=rule))
    return _frame(rows)


def compare_auc(labels, scores: Mapping[str, Any], *, reference: str | None = None, n_bootstrap: int = 1000,
                seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Test ROC AUC of several classifiers on the same images, each judged against a reference by CI overlap.

    Parameters
    ----------
    labels : array_like (N,) of {0, 1}
        True labels of the test images.
    scores : mapping of str to array_like (N,)
        Each classifier's scores of the same images (higher means class 1).
    reference : str, optional
        The classifier the others are compared with; default the first.
    n_bootstrap, seed, level
        Of :func:`helpers.metrics.roc_auc_ci` (each classifier resampled
        with the same seed, hence the same images).

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, one row per classifier in the order of
        ``scores``: ``statistic`` ``"roc_auc"``, ``value`` the AUC, ``n`` the
        images; the reference's row has ``verdict`` :data:`REFERENCE`, the
        others :func:`verdict_word` of their CI against the reference's.

    Raises
    ------
    ValueError
        ``scores`` is empty or lacks ``reference``;
        :class:`helpers.metrics.MetricInputError` for labels or scores
        :func:`helpers.metrics.roc_auc_ci` refuses.

    References
    ----------
    .. [1] Efron and Tibshirani (1993), ch. 13; Schenker and Gentleman (2001).

    Examples
    --------
    >>> y = [0, 0, 0, 1, 1, 1] * 4
    >>> t = compare_auc(y, {"a": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9] * 4, "b": [0.9, 0.8, 0.7, 0.3, 0.2, 0.1] * 4},
    ...                 n_bootstrap=200)
    >>> t["verdict"].tolist()
    ['reference', 'worse']
    """
    level = _check_level(level)
    if not scores:
        raise ValueError("scores must name at least one classifier")
    reference = next(iter(scores)) if reference is None else reference
    if reference not in scores:
        raise ValueError(f"reference {reference!r} is not among the classifiers {list(scores)}")
    intervals = {name: metrics.roc_auc_ci(labels, s, n_bootstrap=n_bootstrap, seed=seed, level=level)
                 for name, s in scores.items()}
    ref = intervals[reference]
    n = int(np.asarray(labels).size)
    rule = _overlap_rule("test ROC AUC", level, True)
    rows = []
    for name, auc in intervals.items():
        is_ref = name == reference
        rows.append(dict(compared=name, against="" if is_ref else reference, statistic="roc_auc", value=auc.auc,
                         ci_low=auc.low, ci_high=auc.high, p_value=np.nan, n=n,
                         verdict=REFERENCE if is_ref else verdict_word(auc.low, auc.high, reference_low=ref.low,
                                                                       reference_high=ref.high),
                         rule_text=rule))
    return _frame(rows)
