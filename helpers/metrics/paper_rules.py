"""Arun et al.'s (2021) verdict rules, as published: point estimates, judged against the paper's baselines.

The paper states its verdicts in words and figures, not as formulas. Read
from the paper (research note ``paper-spec.md`` §1.3-1.6), each rule here
decides on **point estimates** (means over the test images, and over
replicates where the paper averaged replicates), and reports the p-values the
paper reports beside them. Nothing is adjusted for multiple comparisons,
because the paper adjusted nothing.

* **Localization utility**: the map's mean per-image trapezoid AUPRC against
  the *localization network's* (U-Net / RetinaNet) and the average-mask
  prior's; the paper found every map below its network ("p < 0.005"), so a
  map passes only when it is at least as good as the network and better
  than the prior.
* **Weight randomization**: the mean cascading curve (mean over images per
  replicate, then over replicates) ends below the method's random-pair
  baseline, the dashed line of their figure 3.
* **Label randomization** (MIDL 2020 short paper): the same test for the
  maps of the permuted-label model; the paper reports only a ranking
  (Grad-CAM "most sensitive"), so the rule is ours by analogy.
* **Repeatability / reproducibility**: the mean SSIM between maps of two
  replicates (two architectures) reaches the *network baseline*, the SSIM
  between the outputs of two independently trained localization networks.

SSIM specification: the paper's maps were compared with scikit-image 0.16's
defaults, which assumed ``data_range=2`` for float maps
(:data:`helpers.metrics.PAPER_SSIM`); its network baseline compared uint8
PNGs (``data_range=255``, i.e. the full range, :data:`PAPER_NETWORK_SSIM`).
The chapters pass values computed with those specifications to these rules.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267.
.. [2] Arun, N. et al. (2020). Assessing the validity of saliency maps for
   abnormality localization in medical imaging. MIDL 2020 short paper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.metrics._checks import MetricInputError
from helpers.metrics.similarity import DEFAULT_SSIM
from helpers.metrics.statistics import Verdict, bootstrap_test, paired_bootstrap_diff, wilcoxon_paired

__all__ = [
    "PAPER_NETWORK_SSIM",
    "READING_PRECISION",
    "paper_localization",
    "paper_randomization",
    "paper_repeatability",
    "paper_reproducibility",
]

#: SSIM settings of the paper's network baseline: uint8 PNG outputs compared
#: over their full range, i.e. ``data_range`` = the maps' range (1 for [0, 1]).
PAPER_NETWORK_SSIM: dict[str, Any] = dict(DEFAULT_SSIM)

#: Precision of the numbers read off the paper's figures (``helpers.reference``,
#: tag ``[F]``): a difference this small cannot be decided from them.
READING_PRECISION = 0.01


def _mean(values, name: str) -> tuple[float, np.ndarray | None]:
    """(mean, array or None): a number is a reported mean; an array is averaged per row, then over rows."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        if not np.isfinite(arr):
            raise MetricInputError(f"{name} must be a finite number or per-image values, got {values!r}")
        return float(arr), None
    if arr.ndim > 2:
        raise MetricInputError(f"{name} must be a number, (images,) or (replicates, images); got shape {arr.shape}")
    rows = arr if arr.ndim == 2 else arr[None, :]
    with np.errstate(invalid="ignore"):
        per_row = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in rows])
    mean = float(np.nanmean(per_row)) if np.isfinite(per_row).any() else np.nan
    return mean, arr


def _baseline_values(baseline):
    if hasattr(baseline, "values") and not isinstance(baseline, np.ndarray):
        return baseline.values
    return baseline


def _point_decision(difference: float, *, better: str, tolerance: float) -> bool | None:
    if not np.isfinite(difference):
        return None
    # 1e-9: two readings typed with two decimals differ by 0.0100000000000001
    if tolerance > 0 and abs(difference) <= tolerance + 1e-9:
        return None
    return bool(difference < 0) if better == "below" else bool(difference >= 0)


def _shifted_ci(arr, shift: float, *, n_bootstrap: int, level: float, seed: int) -> tuple[float, float]:
    if arr is None:
        return np.nan, np.nan
    test = bootstrap_test(arr, n_bootstrap=n_bootstrap, level=level, seed=seed)
    return test.low - shift, test.high - shift


def paper_localization(
    map_values,
    network_values,
    prior_values,
    *,
    metric: str = "AUPRC",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Localization utility as Arun et al. judged it: the map against the localization network and the prior.

    Rule: **pass** when the map's mean per-image ``metric`` (the paper: the
    trapezoid AUPRC) is at least the localization network's mean and above
    the average-mask prior's mean; **fail** otherwise. Point estimates, as the
    paper's; the two-sided Wilcoxon signed-rank p-values against each baseline
    are reported (the paper's test is not stated; its abstract gives
    ``p < 0.005`` for the network comparison), and so is the paired bootstrap
    CI of the difference to the network (not part of the rule).

    Parameters
    ----------
    map_values, network_values, prior_values : array_like (N,) or float
        Per-image values on the same images, or (for the paper's own table)
        the reported means.
    metric, level, n_bootstrap, seed
        Name in the rule; the reported CI's settings.

    Returns
    -------
    Verdict
        ``rules="paper"``, ``statistic="difference_vs_network"``.
    """
    mean_map, m = _mean(map_values, "map_values")
    mean_net, n = _mean(network_values, "network_values")
    mean_prior, p = _mean(prior_values, "prior_values")
    numbers: dict[str, Any] = dict(mean_map=mean_map, mean_network=mean_net, mean_prior=mean_prior,
                                   difference_vs_network=mean_map - mean_net,
                                   difference_vs_prior=mean_map - mean_prior,
                                   p_vs_network=np.nan, p_vs_prior=np.nan, ci_low=np.nan, ci_high=np.nan)
    if m is not None and n is not None and m.shape == n.shape and m.ndim == 1:
        numbers["p_vs_network"] = wilcoxon_paired(m, n).pvalue
        ci = paired_bootstrap_diff(m, n, n_bootstrap=n_bootstrap, level=level, seed=seed)
        numbers.update(ci_low=ci.low, ci_high=ci.high, n=ci.n)
    if m is not None and p is not None and m.shape == p.shape and m.ndim == 1:
        numbers["p_vs_prior"] = wilcoxon_paired(m, p).pvalue
    if not all(np.isfinite([mean_map, mean_net, mean_prior])):
        passed = None
    else:
        passed = bool(mean_map >= mean_net and mean_map > mean_prior)
    rule = (f"passes when the mean per-image {metric} of the map is at least the localization network's and "
            f"above the average-mask prior's (point estimates, as Arun et al.)")
    return Verdict("localization", passed, rule, numbers, statistic="difference_vs_network", rules="paper")


def paper_randomization(
    final_state_values,
    baseline,
    *,
    criterion: str = "randomization",
    tolerance: float = 0.0,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Sensitivity to randomization as Arun et al. judged it: the mean curve ends below the dashed line.

    Rule: **pass** when the mean similarity at the last state (mean over
    images per replicate, then over replicates, as their figure 3) is below
    the mean random-pair baseline; **fail** otherwise. With ``tolerance > 0``
    (the paper's own numbers are figure readings, :data:`READING_PRECISION`)
    a difference within the tolerance is **undecided**.

    Parameters
    ----------
    final_state_values : array_like (N,), (R, N) or float
    baseline : RandomPairBaseline, array_like (N,) or float
    criterion : {"randomization", "label_randomization"}, optional
    tolerance : float, optional
    level, n_bootstrap, seed
        Settings of the reported CI of the difference (not part of the rule).

    Returns
    -------
    Verdict
        ``rules="paper"``, ``statistic="difference"`` (final − baseline).
    """
    if criterion not in ("randomization", "label_randomization"):
        raise MetricInputError(f"criterion must be 'randomization' or 'label_randomization', got {criterion!r}")
    mean_final, arr = _mean(final_state_values, "final_state_values")
    mean_base, _ = _mean(_baseline_values(baseline), "baseline")
    difference = mean_final - mean_base
    low, high = _shifted_ci(arr, mean_base, n_bootstrap=n_bootstrap, level=level, seed=seed)
    numbers = dict(mean_final=mean_final, baseline=mean_base, difference=difference, ci_low=low, ci_high=high,
                   tolerance=float(tolerance))
    what = "last cascade state" if criterion == "randomization" else "permuted-label model"
    rule = (f"passes when the mean SSIM of the {what}'s maps to the trained maps is below the mean random-pair "
            "baseline (point estimates: the curve ends below the dashed line, as Arun et al.)"
            + (f"; a difference within ±{tolerance:g} is undecided" if tolerance > 0 else ""))
    return Verdict(criterion, _point_decision(difference, better="below", tolerance=tolerance), rule, numbers,
                   statistic="difference", rules="paper")


def _paper_agreement(criterion: str, pair_description: str, values, network_values, *, tolerance: float,
                     level: float, n_bootstrap: int, seed: int) -> Verdict:
    mean, arr = _mean(values, "values")
    mean_net, _ = _mean(network_values, "network_values")
    difference = mean - mean_net
    low, high = _shifted_ci(arr, mean_net, n_bootstrap=n_bootstrap, level=level, seed=seed)
    numbers = dict(mean=mean, network_mean=mean_net, difference_vs_network=difference, ci_low=low, ci_high=high,
                   tolerance=float(tolerance))
    rule = (f"passes when the mean SSIM between maps of {pair_description} reaches the network baseline (mean SSIM "
            "between two independently trained localization networks; point estimates, as Arun et al.)"
            + (f"; a difference within ±{tolerance:g} is undecided" if tolerance > 0 else ""))
    return Verdict(criterion, _point_decision(difference, better="above", tolerance=tolerance), rule, numbers,
                   statistic="difference_vs_network", rules="paper")


def paper_repeatability(values, network_values, *, tolerance: float = 0.0, level: float = 0.95,
                        n_bootstrap: int = 1000, seed: int = 0) -> Verdict:
    """Repeatability as Arun et al. judged it: mean SSIM between replicates vs two localization networks.

    Parameters
    ----------
    values : array_like (N,), (P, N) or float
        SSIM (:data:`helpers.metrics.PAPER_SSIM`) between replicate maps.
    network_values : array_like (N,) or float
        SSIM (:data:`PAPER_NETWORK_SSIM`) between two localization networks' outputs.
    tolerance, level, n_bootstrap, seed
        As in :func:`paper_randomization`.

    Returns
    -------
    Verdict
    """
    return _paper_agreement("repeatability", "two replicates of the same architecture", values, network_values,
                            tolerance=tolerance, level=level, n_bootstrap=n_bootstrap, seed=seed)


def paper_reproducibility(values, network_values, *, tolerance: float = 0.0, level: float = 0.95,
                          n_bootstrap: int = 1000, seed: int = 0) -> Verdict:
    """Reproducibility as Arun et al. judged it: mean SSIM between architectures vs two localization networks.

    As :func:`paper_repeatability` for maps of two different architectures.

    Returns
    -------
    Verdict
    """
    return _paper_agreement("reproducibility", "two different architectures", values, network_values,
                            tolerance=tolerance, level=level, n_bootstrap=n_bootstrap, seed=seed)
