"""Confidence intervals, paired tests, multiplicity correction and the :class:`Verdict`.

The unit of every statistic is the *image*: per-image values (an AP, an SSIM)
are resampled over images; where independently trained replicates exist the
values form a ``(replicates, images)`` array and both levels are resampled
(:func:`bootstrap_test`). NaN values (undefined metrics: empty masks,
constant maps) are dropped and counted, never replaced by 0.

The verdict rules that use these statistics live in
:mod:`helpers.metrics.book_rules` (the book's CI-based rules) and
:mod:`helpers.metrics.paper_rules` (Arun et al.'s rules as published).

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
from typing import Any, Callable, NamedTuple

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from helpers.metrics._checks import MetricInputError, as_values

__all__ = [
    "BootstrapCI",
    "WilcoxonResult",
    "Verdict",
    "bootstrap_ci",
    "paired_bootstrap_diff",
    "wilcoxon_paired",
    "AUCInterval",
    "roc_auc_ci",
    "holm",
    "BootstrapTest",
    "bootstrap_test",
    "RULE_SETS",
]

#: The two rule sets every criterion is judged by: Arun et al.'s rules as
#: published, and the book's stricter CI-based rules.
RULE_SETS = ("book", "paper")

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
        ``"localization"``, ``"randomization"``, ``"label_randomization"``,
        ``"repeatability"`` or ``"reproducibility"``.
    passed : bool or None
        ``None`` when the data cannot decide (too few values, or a
        precondition not met; see ``numbers["reason"]``).
    rule : str
        The rule as a sentence, with its parameters filled in.
    numbers : dict
        Every number the rule used (and a few it only reports).
    statistic : str
        The key in ``numbers`` of the estimate the rule judges (its CI is
        ``numbers["ci_low"]``, ``numbers["ci_high"]``); see :attr:`value`
        and :attr:`ci`.
    rules : {"book", "paper"}
        Which rule set decided (:data:`RULE_SETS`).
    """

    criterion: str
    passed: bool | None
    rule: str
    numbers: dict[str, Any] = field(default_factory=dict)
    statistic: str = ""
    rules: str = "book"

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
        return f"{self.criterion} ({self.rules} rules): {self.outcome.upper()} — {self.rule} [{shown}]"


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


class AUCInterval(NamedTuple):
    """ROC AUC with a bootstrap percentile confidence interval (:func:`roc_auc_ci`)."""

    auc: float
    low: float
    high: float
    level: float
    n_bootstrap: int


def _bootstrap_aucs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of every row of ``(B, N)`` resampled labels/scores; NaN for a row with one class.

    Written by hand (the Mann-Whitney form ``(R1 - n1 (n1 + 1) / 2) / (n1 n0)``
    with scipy's average ranks, which equals scikit-learn's ROC AUC including
    ties) because it is vectorized over the resamples: scikit-learn scores one
    resample per call, about 1 ms each.
    """
    ranks = stats.rankdata(scores, axis=1)
    n1 = labels.sum(axis=1).astype(np.float64)
    n0 = labels.shape[1] - n1
    r1 = np.where(labels == 1, ranks, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n1 > 0) & (n0 > 0), (r1 - n1 * (n1 + 1) / 2) / (n1 * n0), np.nan)


def roc_auc_ci(labels, scores, *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> AUCInterval:
    """ROC AUC of a classifier's scores (scikit-learn) with a percentile bootstrap CI over images.

    Parameters
    ----------
    labels : array_like (N,) of {0, 1}
    scores : array_like (N,)
        Higher means class 1.
    n_bootstrap : int, optional
        Resamples (with replacement) of the N images. Resamples that miss a
        class have no AUC and are skipped; at least half must be usable.
    seed : int, optional
        Seed of ``numpy.random.default_rng``: same seed, same interval.
    level : float, optional
        Coverage of the interval (default 0.95).

    Returns
    -------
    AUCInterval
        ``auc, low, high, level, n_bootstrap``.

    Raises
    ------
    MetricInputError
        Lengths differ, a class is missing, too few resamples hold both
        classes, or ``level``/``n_bootstrap`` invalid.

    References
    ----------
    .. [1] Efron, B., Tibshirani, R. J. (1993). An Introduction to the
       Bootstrap, ch. 13 (percentile interval).
    """
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise MetricInputError(f"roc_auc_ci: {y.size} labels but {s.size} scores")
    if not set(np.unique(y).tolist()) == {0, 1}:
        raise MetricInputError(f"roc_auc_ci needs labels of both classes 0 and 1, got {sorted(set(y.tolist()))}")
    if not (0 < level < 1) or int(n_bootstrap) < 1:
        raise MetricInputError(f"roc_auc_ci needs 0 < level < 1 and n_bootstrap >= 1, got level={level!r}, "
                               f"n_bootstrap={n_bootstrap!r}")
    auc = float(roc_auc_score(y, s))
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, int(n_bootstrap), 256):  # chunks bound the memory of (resamples, N) arrays
        idx = rng.integers(0, y.size, (min(256, int(n_bootstrap) - start), y.size))
        draws.append(_bootstrap_aucs(y[idx], s[idx]))
    draws = np.concatenate(draws)
    draws = draws[np.isfinite(draws)]
    if draws.size < max(1, int(n_bootstrap) // 2):
        raise MetricInputError(f"roc_auc_ci: too few resamples contain both classes ({draws.size} of {n_bootstrap}); "
                               "the set is too small")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return AUCInterval(auc=auc, low=float(low), high=float(high), level=float(level), n_bootstrap=int(n_bootstrap))


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




@dataclass(frozen=True)
class BootstrapTest:
    """A mean with its bootstrap CI and a one-sided bootstrap p-value against a threshold.

    Attributes
    ----------
    estimate : float
        NaN-free mean of the values.
    low, high : float
        Two-sided percentile CI at ``level`` (NaN when undefined, see ``reason``).
    pvalue : float
        One-sided percentile-bootstrap p-value of the hypothesis that the mean
        lies on the ``alternative`` side of ``threshold``:
        ``(1 + #{resampled means on the other side or equal}) / (1 + n_bootstrap)``.
        With the two-sided CI at ``level``, ``pvalue < (1 - level) / 2``
        exactly when the CI excludes the threshold on that side (up to the
        percentile interpolation).
    threshold : float
    alternative : {"greater", "less"}
    level : float
    n : int
        Finite values used (images × replicates).
    n_images, n_replicates : int
        Columns and rows of the array after NaN-only rows/columns are dropped.
    n_dropped : int
        NaN values dropped.
    n_bootstrap : int
    reason : str
        Why the CI / p-value is undefined (``""`` when defined).
    """

    estimate: float
    low: float
    high: float
    pvalue: float
    threshold: float
    alternative: str
    level: float
    n: int
    n_images: int
    n_replicates: int
    n_dropped: int
    n_bootstrap: int
    reason: str = ""


def _one_sided_p(distribution: np.ndarray, threshold: float, alternative: str) -> float:
    other_side = distribution <= threshold if alternative == "greater" else distribution >= threshold
    return float((1 + np.count_nonzero(other_side)) / (1 + distribution.size))


def bootstrap_test(
    values,
    *,
    threshold: float = 0.0,
    alternative: str = "greater",
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapTest:
    """Bootstrap CI of a mean and a one-sided p-value against ``threshold``.

    One-dimensional values (one per image) are resampled over images with
    ``scipy.stats.bootstrap`` (percentile CI, the same resamples give the
    p-value). A two-dimensional array ``(replicates, images)`` (e.g. a
    per-image statistic of each of three independently trained replicates,
    the same images in every row) is resampled at both levels: replicates
    with replacement, then images with replacement, the same image draw for
    every replicate row, so that both the image-to-image and the
    run-to-run variability enter the interval. scipy has no two-level
    bootstrap, hence the hand-written resampling for that case.

    Parameters
    ----------
    values : array_like, shape (N,) or (R, N)
        NaN = undefined (dropped from every mean).
    threshold : float, optional
        The value the mean is tested against (default 0: a difference).
    alternative : {"greater", "less"}, optional
        The side of ``threshold`` the rule wants the mean on.
    n_bootstrap, level, seed
        As in :func:`bootstrap_ci`.

    Returns
    -------
    BootstrapTest
        ``pvalue`` NaN (with ``reason``) when fewer than 2 finite values remain.

    References
    ----------
    .. [1] Efron and Tibshirani (1993), sections 13.3 and 16.4 (percentile
       intervals; bootstrap hypothesis tests).
    .. [2] Field, C. A., Welsh, A. H. (2007). Bootstrapping clustered data.
       Journal of the Royal Statistical Society B 69(3), 369-390.
    """
    level = _check_level(level)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    if alternative not in ("greater", "less"):
        raise MetricInputError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    if not (isinstance(threshold, (int, float, np.floating)) and np.isfinite(threshold)):
        raise MetricInputError(f"threshold must be a finite number, got {threshold!r}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise MetricInputError(f"values must be (images,) or (replicates, images); got shape {arr.shape}")
    arr = as_values(arr.ravel(), "values").reshape(arr.shape)
    finite = np.isfinite(arr)
    arr = arr[finite.any(axis=1)][:, finite.any(axis=0)]
    finite = np.isfinite(arr)
    n, n_dropped = int(finite.sum()), int(np.asarray(values, dtype=np.float64).size - finite.sum())
    r, n_img = arr.shape if n else (0, 0)
    common = dict(threshold=float(threshold), alternative=alternative, level=level, n=n, n_images=n_img,
                  n_replicates=r, n_dropped=n_dropped, n_bootstrap=n_bootstrap)
    if n == 0:
        return BootstrapTest(np.nan, np.nan, np.nan, np.nan, reason="no finite values", **common)
    estimate = float(np.nanmean(arr))
    if n == 1:
        return BootstrapTest(estimate, np.nan, np.nan, np.nan, reason="a single value has no sampling spread",
                             **common)
    if np.all(arr[finite] == arr[finite][0]):
        # Every resample is the same number: the interval is the point, and the
        # test is decided by which side of the threshold it lies on.
        on_side = estimate > threshold if alternative == "greater" else estimate < threshold
        p = 1.0 / (1 + n_bootstrap) if on_side else 1.0
        return BootstrapTest(estimate, estimate, estimate, p, **common)
    rng = np.random.default_rng(seed)
    if r == 1:
        row = arr[0][finite[0]]
        result = stats.bootstrap((row,), np.mean, n_resamples=n_bootstrap, confidence_level=level,
                                 method="percentile", rng=rng)
        low, high = (float(x) for x in result.confidence_interval)
        distribution = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    else:
        rows = rng.integers(0, r, size=(n_bootstrap, r))
        cols = rng.integers(0, n_img, size=(n_bootstrap, n_img))
        sub = arr[rows[:, :, None], cols[:, None, :]]
        with np.errstate(invalid="ignore"):
            distribution = np.nanmean(sub.reshape(n_bootstrap, -1), axis=1)
        distribution = distribution[np.isfinite(distribution)]
        alpha = (1.0 - level) / 2.0
        low, high = (float(x) for x in np.quantile(distribution, [alpha, 1.0 - alpha]))
    return BootstrapTest(estimate, low, high, _one_sided_p(distribution, threshold, alternative), **common)
