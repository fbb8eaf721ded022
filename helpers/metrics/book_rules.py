"""The book's verdict rules: one CI-based, one-sided test per criterion.

Arun et al. (2021) judged point estimates by eye ("the curve goes below the
dashed line", "below the localization network"); those rules are in
:mod:`helpers.metrics.paper_rules`. The book's rules are stricter and ours:

* each compares the method with a baseline **measured on the same images**
  (the average-mask prior, the image's own random-pair similarity), so every
  rule is a paired, per-image difference whose zero means "no better than the
  baseline";
* each decides with a one-sided percentile-bootstrap test of that mean
  difference at ``alpha = (1 - level) / 2`` (2.5 % for the default 95 %
  interval: the test rejects exactly when the two-sided 95 % CI excludes 0 on
  the rule's side), because 24-100 test images leave means that move by
  several hundredths from one draw of images to the next;
* where independently trained replicates exist, the values are a
  ``(replicates, images)`` array and both levels are resampled
  (:func:`helpers.metrics.bootstrap_test`), so a verdict cannot rest on one
  lucky training run;
* each returns a raw one-sided p-value, so that the many verdicts of one
  criterion (ten methods) can be adjusted together with Holm's procedure
  (:func:`helpers.criteria.apply_holm`).

:data:`RULE_REASONS` states, per criterion, why the rule is what it is; the
chapters and the scorecard print it beside the verdicts.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267.
.. [2] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS.
.. [3] Efron, B., Tibshirani, R. J. (1993). An Introduction to the Bootstrap.
.. [4] Holm, S. (1979). A simple sequentially rejective multiple test
   procedure. Scandinavian Journal of Statistics 6(2), 65-70.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.metrics._checks import MetricInputError, as_values
from helpers.metrics.statistics import Verdict, bootstrap_test, paired_bootstrap_diff, wilcoxon_paired

__all__ = [
    "RULE_REASONS",
    "per_image_baseline",
    "verdict_localization",
    "verdict_randomization",
    "verdict_repeatability",
    "verdict_reproducibility",
]

#: Why each of the book's rules is what it is (printed beside the verdicts).
RULE_REASONS: dict[str, str] = {
    "localization": (
        "the average-mask prior knows only where lesions usually are; a map that cannot beat it on the same "
        "images adds nothing a reader could use to localize. A CI rather than a point estimate because the mean "
        "AP of a few dozen images moves by several hundredths from one draw of images to the next."
    ),
    "randomization": (
        "the random-pair baseline is itself measured on a finite sample, so the final-state similarity of each "
        "image is compared with that image's own random-pair similarity (paired), and the mean difference must "
        "be below 0 with its CI: a map whose fully randomized version still resembles the original more than "
        "an unrelated image's map does is not explaining what the model learned."
    ),
    "label_randomization": (
        "as for weight randomization: maps of a model that could only memorize permuted labels must look no "
        "more like the true-label model's maps than maps of unrelated images do; judged only when the permuted "
        "model has actually fitted its permuted training labels."
    ),
    "repeatability": (
        "the paper's 0.5 line has no stated meaning, and an SSIM level depends on how sparse the maps are "
        "(unrelated sparse maps score 0.28 at data_range=1 and 0.42 at data_range=2). The scale-free zero is the "
        "method's own random-pair similarity on the same images: two training runs must agree on an image "
        "more than one run's maps of two different images do, by a CI above 0."
    ),
    "reproducibility": (
        "as for repeatability, with two different architectures: their maps of an image must agree more than "
        "one model's maps of two different images do, by a CI above 0."
    ),
}


def _alpha(level: float) -> float:
    return (1.0 - float(level)) / 2.0


def per_image_baseline(baseline, name: str = "baseline") -> np.ndarray:
    """Per-image values of a baseline: a :class:`~helpers.metrics.RandomPairBaseline` or an array.

    Raises
    ------
    MetricInputError
        For a single number: the book's rules pair each image with its own
        baseline value (the baseline's uncertainty must enter the verdict).
    """
    if hasattr(baseline, "values") and not isinstance(baseline, np.ndarray):
        baseline = baseline.values
    if np.ndim(baseline) == 0:
        raise MetricInputError(
            f"{name} must hold one value per image (a RandomPairBaseline or an array), not the single number "
            f"{baseline!r}: the book's rules compare each image with its own baseline value "
            "(helpers.metrics.random_pair_baseline(...).values)"
        )
    values = as_values(baseline, name)
    if not np.isfinite(values).any():
        raise MetricInputError(f"{name} has no finite value; expected per-image values")
    return values


def _paired(values, baseline: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != baseline.shape[0]:
        raise MetricInputError(
            f"{name} has shape {arr.shape} but the baseline has {baseline.shape[0]} per-image values; expected "
            f"({baseline.shape[0]},) or (replicates, {baseline.shape[0]}) with the images in the baseline's order"
        )
    return arr - baseline[None, :] if arr.ndim == 2 else arr - baseline


def _decide(test, level: float) -> bool | None:
    return None if not np.isfinite(test.pvalue) or test.reason else bool(test.pvalue < _alpha(level))


def _common(test, level: float) -> dict[str, Any]:
    return dict(n=test.n, n_images=test.n_images, n_replicates=test.n_replicates, n_dropped=test.n_dropped,
                mean_difference=test.estimate, ci_low=test.low, ci_high=test.high, p_value=test.pvalue,
                alpha=_alpha(level), reason=test.reason)


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
    """Localization utility (book rule): does the map beat the average-mask prior on the same images?

    Rule: **pass** when the one-sided bootstrap test of the mean per-image
    difference (map − prior) in ``metric`` against ``margin`` rejects at
    ``alpha = (1 - level) / 2`` (equivalently: the two-sided ``level`` CI lies
    above ``margin``); **fail** otherwise; **undecided** with fewer than 2
    complete pairs. See :data:`RULE_REASONS`.

    The comparison with the untrained (fully randomized) model's maps is
    reported in ``numbers`` (``*_vs_untrained``) but does not enter the rule.

    Parameters
    ----------
    trained_values, baseline_values : array_like, shape (N,)
        Per-image metric of the trained model's maps and of the prior, same
        images in the same order (NaN = undefined, dropped pairwise). The
        trained values may be ``(replicates, N)``.
    untrained_values : array_like, shape (N,), optional
        Per-image metric of the untrained model's maps.
    margin : float, optional
        Required improvement over the prior (default 0).
    metric : str, optional
        Name used in the rule's sentence.
    level, n_bootstrap, seed
        As in :func:`helpers.metrics.bootstrap_test`.

    Returns
    -------
    Verdict
        ``statistic = "mean_difference"``; ``numbers["p_value"]`` is the raw
        one-sided p-value (Holm-adjusted later over the methods).
    """
    prior = as_values(baseline_values, "baseline_values")
    diff = _paired(trained_values, prior, "trained_values")
    test = bootstrap_test(diff, threshold=margin, alternative="greater", n_bootstrap=n_bootstrap, level=level,
                          seed=seed)
    tr = np.asarray(trained_values, dtype=np.float64)
    tr_flat = tr.mean(axis=0) if tr.ndim == 2 else tr
    x, y, _ = _pairs_finite(tr_flat, prior)
    numbers: dict[str, Any] = dict(
        _common(test, level),
        mean_method=float(np.mean(x)) if x.size else np.nan,
        mean_prior=float(np.mean(y)) if y.size else np.nan,
        margin=float(margin),
        wilcoxon_p=wilcoxon_paired(tr_flat, prior).pvalue,
    )
    if untrained_values is not None:
        vs = paired_bootstrap_diff(tr_flat, untrained_values, n_bootstrap=n_bootstrap, level=level, seed=seed)
        u = as_values(untrained_values, "untrained_values")
        numbers.update(
            mean_untrained=float(np.nanmean(u)) if np.isfinite(u).any() else np.nan,
            difference_vs_untrained=vs.estimate,
            ci_low_vs_untrained=vs.low,
            ci_high_vs_untrained=vs.high,
            beats_untrained=None if not np.isfinite(vs.low) else bool(vs.low > 0),
        )
    rule = (
        f"passes when the mean per-image {metric} difference, saliency map minus average-mask prior, is above "
        f"{margin:g} by a one-sided bootstrap test at {_alpha(level):.3g} ({n_bootstrap} resamples over images; "
        f"equivalently its {level:.0%} CI lies above {margin:g})"
    )
    return Verdict("localization", _decide(test, level), rule, numbers, statistic="mean_difference", rules="book")


def _pairs_finite(a, b):
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], int(x.size - keep.sum())


def verdict_randomization(
    final_state_values,
    baseline,
    *,
    criterion: str = "randomization",
    metric: str = "SSIM",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Sensitivity to randomization (book rule): per-image final-state similarity vs that image's random pairs.

    Rule: for every image, ``d = s_final − s_pairs``, where ``s_final`` is the
    similarity between the map of the fully randomized (or permuted-label)
    model and the trained model's map, and ``s_pairs`` is the similarity
    between the trained model's map of that image and its maps of random other
    images (the random-pair baseline of that image). **pass** when the mean of
    ``d`` is below 0 by a one-sided bootstrap test at ``(1 - level) / 2``
    (over images, and over replicates when ``final_state_values`` has a
    replicate axis); **fail** otherwise; **undecided** with fewer than 2 values.

    Parameters
    ----------
    final_state_values : array_like, shape (N,) or (R, N)
        Per-image similarity at the last state (per replicate), NaN = undefined.
    baseline : RandomPairBaseline or array_like, shape (N,)
        Per-image random-pair similarity (a single number is refused: see
        :func:`per_image_baseline`).
    criterion : {"randomization", "label_randomization"}, optional
    metric, level, n_bootstrap, seed
        As in :func:`verdict_localization`.

    Returns
    -------
    Verdict
        ``statistic = "mean_difference"``.
    """
    if criterion not in ("randomization", "label_randomization"):
        raise MetricInputError(f"criterion must be 'randomization' or 'label_randomization', got {criterion!r}")
    base = per_image_baseline(baseline)
    diff = _paired(final_state_values, base, "final_state_values")
    test = bootstrap_test(diff, threshold=0.0, alternative="less", n_bootstrap=n_bootstrap, level=level, seed=seed)
    final = np.asarray(final_state_values, dtype=np.float64)
    numbers = dict(
        _common(test, level),
        mean_final=float(np.nanmean(final)) if np.isfinite(final).any() else np.nan,
        mean_baseline=float(np.nanmean(base)),
    )
    what = "fully randomized" if criterion == "randomization" else "permuted-label"
    rule = (
        f"passes when the per-image {metric} between the {what} model's maps and the trained model's maps, minus "
        f"that image's random-pair {metric}, has a mean below 0 by a one-sided bootstrap test at "
        f"{_alpha(level):.3g} ({n_bootstrap} resamples over images and replicates)"
    )
    return Verdict(criterion, _decide(test, level), rule, numbers, statistic="mean_difference", rules="book")


def _verdict_agreement(criterion: str, pair_description: str, values, chance, *, network_baseline, metric: str,
                       level: float, n_bootstrap: int, seed: int) -> Verdict:
    base = per_image_baseline(chance, "chance")
    diff = _paired(values, base, "values")
    test = bootstrap_test(diff, threshold=0.0, alternative="greater", n_bootstrap=n_bootstrap, level=level,
                          seed=seed)
    arr = np.asarray(values, dtype=np.float64)
    numbers: dict[str, Any] = dict(
        _common(test, level),
        mean=float(np.nanmean(arr)) if np.isfinite(arr).any() else np.nan,
        mean_chance=float(np.nanmean(base)),
    )
    if network_baseline is not None:
        net = np.asarray(network_baseline, dtype=np.float64)
        net_mean = float(np.nanmean(net)) if net.ndim else float(net)
        numbers.update(network_mean=net_mean, difference_vs_network=numbers["mean"] - net_mean)
    rule = (
        f"passes when the per-image {metric} between maps of {pair_description}, minus the image's random-pair "
        f"{metric} (one model's maps of different images), has a mean above 0 by a one-sided bootstrap test at "
        f"{_alpha(level):.3g} ({n_bootstrap} resamples over images and pairs)"
    )
    return Verdict(criterion, _decide(test, level), rule, numbers, statistic="mean_difference", rules="book")


def verdict_repeatability(
    values,
    chance,
    *,
    network_baseline=None,
    metric: str = "SSIM",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Repeatability (book rule): do two training runs agree on an image more than on different images?

    Rule: per image, ``d = s_replicates − s_pairs`` (similarity between the
    maps of two independently trained replicates of one architecture, minus
    the image's random-pair similarity); **pass** when the mean of ``d`` is
    above 0 by a one-sided bootstrap test at ``(1 - level) / 2``; **fail**
    otherwise; **undecided** with fewer than 2 values. See :data:`RULE_REASONS`
    for why this replaces the earlier 0.5 threshold.

    Parameters
    ----------
    values : array_like, shape (N,) or (P, N)
        Per-image similarity of each replicate pair.
    chance : RandomPairBaseline or array_like, shape (N,)
        Per-image random-pair similarity of the same method.
    network_baseline : float or array_like, optional
        Agreement of two independently trained localization networks; reported
        (``network_mean``, ``difference_vs_network``), not part of the rule
        (it is the paper's rule, :func:`helpers.metrics.paper_rules.paper_repeatability`).
    metric, level, n_bootstrap, seed
        As in :func:`verdict_localization`.

    Returns
    -------
    Verdict
    """
    return _verdict_agreement("repeatability", "two independently trained replicates of the same architecture",
                              values, chance, network_baseline=network_baseline, metric=metric, level=level,
                              n_bootstrap=n_bootstrap, seed=seed)


def verdict_reproducibility(
    values,
    chance,
    *,
    network_baseline=None,
    metric: str = "SSIM",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Reproducibility (book rule): do two architectures agree on an image more than on different images?

    As :func:`verdict_repeatability`, for the maps of two different
    architectures trained on the same data.

    Returns
    -------
    Verdict
    """
    return _verdict_agreement("reproducibility", "two different architectures trained on the same data",
                              values, chance, network_baseline=network_baseline, metric=metric, level=level,
                              n_bootstrap=n_bootstrap, seed=seed)
