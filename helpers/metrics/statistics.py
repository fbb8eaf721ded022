"""Confidence intervals, paired tests, multiplicity correction and the verdict rules.

The unit of every statistic is the *image*: per-image values (an AP, an SSIM)
are resampled over images. NaN values (undefined metrics: empty masks,
constant maps) are dropped and counted, never replaced by 0.

Each of the four criteria of Arun et al. (2021) becomes an explicit, testable
rule (:func:`verdict_localization`, :func:`verdict_randomization`,
:func:`verdict_repeatability`, :func:`verdict_reproducibility`). The paper
judged its curves and boxes by eye ("goes below the dashed line"); here every
rule compares a bootstrap confidence bound with a baseline or threshold, the
rule's sentence is returned with the verdict so the book states it next to
the outcome, and every parameter of a rule is a keyword.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [2] Efron, B., Tibshirani, R. J. (1993). An Introduction to the Bootstrap.
   Chapman & Hall (percentile intervals).
.. [3] Saporta, A. et al. (2022). Benchmarking saliency methods for chest
   X-ray interpretation. Nature Machine Intelligence 4, 867-878 (paired
   bootstrap CIs over images).
.. [4] Wilcoxon, F. (1945). Individual comparisons by ranking methods.
   Biometrics Bulletin 1(6), 80-83.
.. [5] Holm, S. (1979). A simple sequentially rejective multiple test
   procedure. Scandinavian Journal of Statistics 6(2), 65-70.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import stats

from helpers.metrics._checks import MetricInputError, as_values

__all__ = [
    "BootstrapCI",
    "WilcoxonResult",
    "Verdict",
    "bootstrap_ci",
    "paired_bootstrap_diff",
    "wilcoxon_paired",
    "holm",
    "verdict_localization",
    "verdict_randomization",
    "verdict_repeatability",
    "verdict_reproducibility",
]

BOOTSTRAP_METHODS = ("percentile", "basic", "BCa")


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic of per-image values with its bootstrap confidence interval.

    Attributes
    ----------
    estimate : float
        The statistic on the (NaN-free) values.
    low, high : float
        Confidence bounds; NaN when fewer than 2 values remain (see ``reason``).
    level : float
        Confidence level, e.g. 0.95.
    n : int
        Values used (NaNs dropped).
    n_dropped : int
        NaN values dropped.
    n_bootstrap : int
        Bootstrap resamples.
    method : str
        Interval method of ``scipy.stats.bootstrap``.
    reason : str
        Why the interval is undefined (``""`` when it is defined).
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int
    n_dropped: int
    n_bootstrap: int
    method: str
    reason: str = ""

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high`` (False when the interval is undefined)."""
        return bool(self.low <= value <= self.high)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view for tables."""
        return dict(
            estimate=self.estimate, low=self.low, high=self.high, level=self.level, n=self.n,
            n_dropped=self.n_dropped, n_bootstrap=self.n_bootstrap, method=self.method, reason=self.reason,
        )


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test of paired per-image values.

    Attributes
    ----------
    statistic, pvalue : float
        As ``scipy.stats.wilcoxon``; NaN when the test is not run (``reason``).
    n : int
        Complete pairs (both values finite).
    n_dropped : int
        Pairs dropped because one value is NaN.
    alternative : str
    reason : str
    """

    statistic: float
    pvalue: float
    n: int
    n_dropped: int
    alternative: str
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """Outcome of one criterion for one method.

    Attributes
    ----------
    criterion : str
        ``"localization"``, ``"randomization"``, ``"repeatability"`` or
        ``"reproducibility"``.
    passed : bool or None
        ``None`` when the data cannot decide (too few values; see ``numbers``).
    rule : str
        The rule as a sentence, with its parameters filled in.
    numbers : dict
        Every number the rule used (and a few it only reports).
    statistic : str
        The key in ``numbers`` of the estimate the rule judges (its CI is
        ``numbers["ci_low"]``, ``numbers["ci_high"]``); see :attr:`value`
        and :attr:`ci`.
    """

    criterion: str
    passed: bool | None
    rule: str
    numbers: dict[str, Any] = field(default_factory=dict)
    statistic: str = ""

    @property
    def value(self) -> float:
        """The estimate the rule judges (``numbers[statistic]``; NaN when undefined)."""
        return self._number(self.statistic)

    @property
    def ci(self) -> tuple[float, float]:
        """Its confidence interval ``(numbers["ci_low"], numbers["ci_high"])`` (NaN when undefined)."""
        return self._number("ci_low"), self._number("ci_high")

    def _number(self, key: str) -> float:
        if not key:
            raise MetricInputError(f"this {self.criterion} verdict names no statistic (Verdict.statistic is empty)")
        value = self.numbers.get(key)
        return float("nan") if value is None else float(value)

    @property
    def outcome(self) -> str:
        """``"pass"``, ``"fail"`` or ``"undecided"``."""
        return "undecided" if self.passed is None else ("pass" if self.passed else "fail")

    def __str__(self) -> str:
        shown = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.numbers.items()
        )
        return f"{self.criterion}: {self.outcome.upper()} — {self.rule} [{shown}]"


def _check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise MetricInputError(f"level must be a confidence level in (0, 1), e.g. 0.95; got {level!r}")
    return float(level)


def _check_n_bootstrap(n_bootstrap: int) -> int:
    if not (isinstance(n_bootstrap, (int, np.integer)) and not isinstance(n_bootstrap, bool) and n_bootstrap >= 1):
        raise MetricInputError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    return int(n_bootstrap)


def bootstrap_ci(
    values,
    *,
    statistic: Callable[..., Any] = np.nanmean,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    method: str = "percentile",
) -> BootstrapCI:
    """Bootstrap confidence interval of a statistic of per-image values.

    NaN values are dropped first (and counted in ``n_dropped``); the images
    that remain are resampled with replacement ``n_bootstrap`` times by
    ``scipy.stats.bootstrap``.

    Parameters
    ----------
    values : array_like, shape (N,)
        One value per image; NaN = undefined.
    statistic : callable, optional
        Reduces a 1-D array to a number; numpy reductions that take ``axis``
        (``np.nanmean``, ``np.median`` ...) are vectorized. Default: mean.
    n_bootstrap : int, optional
        Resamples (default 1000).
    level : float, optional
        Confidence level (default 0.95: the 2.5 and 97.5 percentiles).
    seed : int, optional
        Seed of ``numpy.random.default_rng``: same seed, same interval.
    method : {"percentile", "basic", "BCa"}, optional
        Interval method (default percentile, as CheXlocalize).

    Returns
    -------
    BootstrapCI
        ``low``/``high`` are NaN (with ``reason``) when fewer than 2 values remain.

    References
    ----------
    .. [1] Efron and Tibshirani (1993).
    """
    level = _check_level(level)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    if method not in BOOTSTRAP_METHODS:
        raise MetricInputError(f"unknown bootstrap method {method!r}; expected one of {', '.join(BOOTSTRAP_METHODS)}")
    arr = as_values(values, "values")
    finite = arr[np.isfinite(arr)]
    n, n_dropped = int(finite.size), int(arr.size - finite.size)
    common = dict(level=level, n=n, n_dropped=n_dropped, n_bootstrap=n_bootstrap, method=method)
    if n == 0:
        return BootstrapCI(np.nan, np.nan, np.nan, reason="no finite values", **common)
    estimate = float(statistic(finite))
    if n == 1:
        return BootstrapCI(estimate, np.nan, np.nan, reason="a single value has no sampling spread", **common)
    if np.all(finite == finite[0]):
        # Every resample is the same: the interval is the point (scipy would
        # warn about degenerate data and, for BCa, return NaN).
        return BootstrapCI(estimate, estimate, estimate, **common)
    result = stats.bootstrap(
        (finite,),
        statistic,
        n_resamples=n_bootstrap,
        confidence_level=level,
        method=method,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return BootstrapCI(estimate, float(low), float(high), **common)


def _pairs(a, b, name_a: str = "a", name_b: str = "b") -> tuple[np.ndarray, np.ndarray, int]:
    x = as_values(a, name_a)
    y = as_values(b, name_b)
    if x.shape != y.shape:
        raise MetricInputError(
            f"{name_a} has {x.size} values but {name_b} has {y.size}; paired statistics need one value of each per image"
        )
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], int(x.size - keep.sum())


def paired_bootstrap_diff(
    a,
    b,
    *,
    statistic: Callable[..., Any] = np.mean,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    method: str = "percentile",
) -> BootstrapCI:
    """Paired bootstrap CI of ``statistic(a - b)`` over images.

    Images are resampled as pairs, so the interval reflects the per-image
    differences (image difficulty cancels). Pairs where either value is NaN
    are dropped and counted.

    Parameters
    ----------
    a, b : array_like, shape (N,)
        Two values per image (same order), e.g. a method's AP and the prior's AP.
    statistic, n_bootstrap, level, seed, method
        As in :func:`bootstrap_ci`; default statistic: mean difference.

    Returns
    -------
    BootstrapCI
        Of the differences ``a - b``.
    """
    x, y, n_dropped = _pairs(a, b)
    ci = bootstrap_ci(x - y, statistic=statistic, n_bootstrap=n_bootstrap, level=level, seed=seed, method=method)
    return BootstrapCI(
        ci.estimate, ci.low, ci.high, ci.level, ci.n, n_dropped, ci.n_bootstrap, ci.method, ci.reason
    )


def wilcoxon_paired(a, b, *, alternative: str = "two-sided", min_pairs: int = 6) -> WilcoxonResult:
    """Wilcoxon signed-rank test on paired per-image values (``scipy.stats.wilcoxon``).

    Pairs with a NaN are dropped (counted in ``n_dropped``); zero differences
    are discarded by the test (``zero_method="wilcox"``).

    Parameters
    ----------
    a, b : array_like, shape (N,)
    alternative : {"two-sided", "greater", "less"}, optional
        ``"greater"``: ``a`` tends to exceed ``b``.
    min_pairs : int, optional
        Fewer non-zero paired differences than this give a NaN p-value with a
        reason. Default 6: with 5 pairs the smallest possible two-sided exact
        p-value is 2/2⁵ = 0.0625, so the test could never reject at 5 %.

    Returns
    -------
    WilcoxonResult
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise MetricInputError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    x, y, n_dropped = _pairs(a, b)
    n = int(x.size)
    nonzero = int(np.count_nonzero(x - y))
    if nonzero < min_pairs:
        reason = f"only {nonzero} non-zero paired difference(s) (< min_pairs={min_pairs})"
        return WilcoxonResult(np.nan, np.nan, n, n_dropped, alternative, reason)
    result = stats.wilcoxon(x, y, alternative=alternative, zero_method="wilcox")
    return WilcoxonResult(float(result.statistic), float(result.pvalue), n, n_dropped, alternative)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error rate).

    Written by hand because neither scipy nor scikit-learn ships it (scipy's
    ``false_discovery_control`` is Benjamini-Hochberg/Yekutieli, a different
    error rate) and statsmodels is not a dependency.

    Parameters
    ----------
    pvalues : array_like, shape (m,)
        Raw p-values; NaN entries (tests not run) stay NaN and do not count
        towards the number of tests.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order: sort ascending, multiply the k-th
        smallest by ``m - k + 1``, take the running maximum, clip at 1.

    References
    ----------
    .. [1] Holm (1979).
    """
    p = as_values(pvalues, "pvalues")
    finite = np.isfinite(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise MetricInputError(f"pvalues must lie in [0, 1], got {p[finite][(p[finite] < 0) | (p[finite] > 1)][:3].tolist()}")
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(finite)
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def _baseline_mean(baseline, name: str) -> float:
    """A number from a float, an object with ``.mean`` (RandomPairBaseline) or per-image values."""
    if hasattr(baseline, "mean") and not isinstance(baseline, np.ndarray) and not callable(baseline.mean):
        value = float(baseline.mean)
    elif np.ndim(baseline) == 0:
        value = float(baseline)
    else:
        values = as_values(baseline, name)
        if not np.isfinite(values).any():
            raise MetricInputError(f"{name} has no finite value; expected per-image values or a number")
        value = float(np.nanmean(values))
    if not np.isfinite(value):
        raise MetricInputError(f"{name} must be a finite number, got {value!r}")
    return value


def verdict_localization(
    trained_values,
    baseline_values,
    *,
    untrained_values=None,
    margin: float = 0.0,
    metric: str = "AP",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Localization utility: does the map beat the average-mask prior?

    Rule: **pass** when the ``level`` paired-bootstrap CI of the mean per-image
    difference (map − prior) in ``metric`` lies entirely above ``margin``
    (default 0); **fail** otherwise; **undecided** with fewer than 2 complete
    pairs. The prior (:func:`helpers.metrics.average_mask_prior`) knows only
    where lesions usually are; a map that cannot beat it adds nothing a
    radiologist could use for localization. Arun et al. compared boxes by eye
    (and found the prior above all maps but XRAI on RSNA).

    The comparison with the untrained (fully randomized) model's maps is
    reported in ``numbers`` (``*_vs_untrained``) but does not enter the rule.

    Parameters
    ----------
    trained_values, baseline_values : array_like, shape (N,)
        Per-image metric of the trained model's maps and of the prior, same
        images in the same order (NaN = undefined, dropped pairwise).
    untrained_values : array_like, shape (N,), optional
        Per-image metric of the untrained model's maps.
    margin : float, optional
        Required improvement over the prior (default 0).
    metric : str, optional
        Name used in the rule's sentence.
    level, n_bootstrap, seed
        As in :func:`bootstrap_ci`.

    Returns
    -------
    Verdict
    """
    diff = paired_bootstrap_diff(trained_values, baseline_values, n_bootstrap=n_bootstrap, level=level, seed=seed)
    x, y, _ = _pairs(trained_values, baseline_values)
    test = wilcoxon_paired(trained_values, baseline_values)
    numbers: dict[str, Any] = dict(
        n=diff.n,
        n_dropped=diff.n_dropped,
        mean_method=float(np.mean(x)) if x.size else np.nan,
        mean_prior=float(np.mean(y)) if y.size else np.nan,
        mean_difference=diff.estimate,
        ci_low=diff.low,
        ci_high=diff.high,
        wilcoxon_p=test.pvalue,
    )
    if untrained_values is not None:
        vs = paired_bootstrap_diff(trained_values, untrained_values, n_bootstrap=n_bootstrap, level=level, seed=seed)
        u = as_values(untrained_values, "untrained_values")
        numbers.update(
            mean_untrained=float(np.nanmean(u)) if np.isfinite(u).any() else np.nan,
            difference_vs_untrained=vs.estimate,
            ci_low_vs_untrained=vs.low,
            ci_high_vs_untrained=vs.high,
            beats_untrained=None if not np.isfinite(vs.low) else bool(vs.low > 0),
        )
    passed = None if not np.isfinite(diff.low) else bool(diff.low > margin)
    rule = (
        f"passes when the {level:.0%} paired bootstrap CI ({n_bootstrap} resamples over images) of the mean "
        f"per-image {metric} difference, saliency map minus average-mask prior, lies entirely above {margin:g}"
    )
    return Verdict("localization", passed, rule, numbers, statistic="mean_difference")


def verdict_randomization(
    final_state_values,
    baseline,
    *,
    metric: str = "SSIM",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Sensitivity to cascading randomization: does the curve end below the random-pair baseline?

    Rule: **pass** when the upper bound of the ``level`` bootstrap CI of the
    mean per-image similarity between the fully randomized model's maps and
    the trained model's maps lies *below* the random-pair baseline (mean
    similarity between trained-model maps of two different images); **fail**
    otherwise; **undecided** with fewer than 2 values. This is Arun et al.'s
    "the curve goes below the dashed line", made statistical: a map that
    survives the destruction of every learned weight looks more like the
    original than two unrelated images' maps do, so it does not explain what
    the model learned.

    Parameters
    ----------
    final_state_values : array_like, shape (N,)
        Per-image similarity (last cascade state vs original), NaN = undefined.
    baseline : float, RandomPairBaseline or array_like
        The random-pair baseline: a number, a
        :class:`~helpers.metrics.RandomPairBaseline` (its ``mean``), or
        per-image baseline values (their NaN-free mean).
    metric, level, n_bootstrap, seed
        As in :func:`verdict_localization`.

    Returns
    -------
    Verdict
    """
    base = _baseline_mean(baseline, "baseline")
    ci = bootstrap_ci(final_state_values, n_bootstrap=n_bootstrap, level=level, seed=seed)
    passed = None if not np.isfinite(ci.high) else bool(ci.high < base)
    numbers = dict(
        n=ci.n, n_dropped=ci.n_dropped, mean_final=ci.estimate, ci_low=ci.low, ci_high=ci.high, baseline=base
    )
    rule = (
        f"passes when the upper bound of the {level:.0%} bootstrap CI ({n_bootstrap} resamples over images) of the "
        f"mean {metric} between the fully randomized model's maps and the trained model's maps lies below the "
        f"random-pair baseline (mean {metric} between trained-model maps of different images)"
    )
    return Verdict("randomization", passed, rule, numbers, statistic="mean_final")


def _verdict_agreement(
    criterion: str,
    pair_description: str,
    values,
    *,
    threshold: float,
    network_baseline,
    metric: str,
    level: float,
    n_bootstrap: int,
    seed: int,
) -> Verdict:
    if not (isinstance(threshold, (int, float)) and np.isfinite(threshold)):
        raise MetricInputError(f"threshold must be a finite number, got {threshold!r}")
    ci = bootstrap_ci(values, n_bootstrap=n_bootstrap, level=level, seed=seed)
    passed = None if not np.isfinite(ci.low) else bool(ci.low >= threshold)
    numbers: dict[str, Any] = dict(
        n=ci.n, n_dropped=ci.n_dropped, mean=ci.estimate, ci_low=ci.low, ci_high=ci.high, threshold=float(threshold)
    )
    if network_baseline is not None:
        net = _baseline_mean(network_baseline, "network_baseline")
        numbers.update(
            network_mean=net,
            difference_vs_network=ci.estimate - net,
            reaches_network=None if not np.isfinite(ci.high) else bool(ci.high >= net),
        )
    rule = (
        f"passes when the lower bound of the {level:.0%} bootstrap CI ({n_bootstrap} resamples over images) of the "
        f"mean per-image {metric} between maps of {pair_description} is at least {threshold:g}"
        + (" (the reference line drawn at 0.5 in Arun et al.'s repeatability figure)" if threshold == 0.5 else "")
    )
    return Verdict(criterion, passed, rule, numbers, statistic="mean")


def verdict_repeatability(
    values,
    *,
    threshold: float = 0.5,
    network_baseline=None,
    metric: str = "SSIM",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Repeatability: do two training runs of the same architecture give similar maps?

    Rule: **pass** when the lower bound of the ``level`` bootstrap CI of the
    mean per-image similarity between the maps of two independently trained
    replicates (same architecture, different seeds) is at least ``threshold``
    (default 0.5, the reference line drawn in Arun et al.'s repeatability
    figure); **fail** otherwise; **undecided** with fewer than 2 values.

    Parameters
    ----------
    values : array_like, shape (N,)
        Per-image similarity of replicate A's and replicate B's maps.
    threshold : float, optional
        Minimum acceptable mean similarity.
    network_baseline : float or array_like, optional
        Agreement of two independently trained *localization networks* (Arun
        et al.: U-Nets / RetinaNets). Reported in ``numbers``
        (``network_mean``, ``difference_vs_network``, ``reaches_network`` =
        the CI's upper bound reaches the network's mean); not part of the rule.
    metric, level, n_bootstrap, seed
        As in :func:`verdict_localization`.

    Returns
    -------
    Verdict
    """
    return _verdict_agreement(
        "repeatability",
        "two independently trained replicates of the same architecture",
        values,
        threshold=threshold,
        network_baseline=network_baseline,
        metric=metric,
        level=level,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


def verdict_reproducibility(
    values,
    *,
    threshold: float = 0.5,
    network_baseline=None,
    metric: str = "SSIM",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Reproducibility: do two different architectures give similar maps?

    Rule: **pass** when the lower bound of the ``level`` bootstrap CI of the
    mean per-image similarity between the maps of two different architectures
    trained on the same data (Arun et al.: InceptionV3 vs DenseNet121) is at
    least ``threshold`` (default 0.5, the reference line of the paper's
    repeatability figure); **fail** otherwise; **undecided** with fewer than 2
    values. ``network_baseline`` as in :func:`verdict_repeatability`.

    Returns
    -------
    Verdict
    """
    return _verdict_agreement(
        "reproducibility",
        "two different architectures trained on the same data",
        values,
        threshold=threshold,
        network_baseline=network_baseline,
        metric=metric,
        level=level,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
