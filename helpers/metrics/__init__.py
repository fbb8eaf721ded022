"""Metrics of the four criteria: localization utility, map similarity, baselines, statistics.

Numpy in, numpy/float out. Maps are 2-D float arrays, masks 2-D bool arrays;
batches are ``(N, H, W)`` stacks handled by the batched functions
(:func:`localization_table`, :func:`paired_similarity`,
:func:`random_pair_baseline`).

Undefined values are NaN with a reason, never a silent 0, 1 or hit:
an empty mask (:class:`EmptyMaskWarning`), a constant map
(:class:`ConstantMapWarning`). Bad input raises :class:`MetricInputError`
(a ``ValueError``).

=========================  ==================================================
module                     contents
=========================  ==================================================
``localization``           :func:`average_precision`, :func:`auprc_trapezoid`,
                           :func:`roc_auc`, :func:`iou_otsu`, :func:`hit`,
                           :func:`localization_table`
``similarity``             :func:`ssim` (:data:`DEFAULT_SSIM`,
                           :data:`PAPER_SSIM`, :data:`ADEBAYO_SSIM`),
                           :func:`spearman`, :func:`hog_similarity`,
                           :func:`similarity`, :func:`paired_similarity`
``baselines``              :func:`random_pair_baseline`,
                           :func:`average_mask_prior`
``statistics``             :func:`bootstrap_ci`, :func:`paired_bootstrap_diff`,
                           :func:`wilcoxon_paired`, :func:`holm`, and the
                           verdict rules ``verdict_*``
=========================  ==================================================
"""

from __future__ import annotations

from helpers.metrics._checks import (
    ConstantMapWarning,
    EmptyMaskWarning,
    MetricInputError,
    UndefinedMetricWarning,
)
from helpers.metrics.baselines import RandomPairBaseline, average_mask_prior, random_pair_baseline
from helpers.metrics.localization import (
    DEFAULT_LOCALIZATION_METRICS,
    HIT_TIE_RULES,
    LOCALIZATION_METRICS,
    auprc_trapezoid,
    average_precision,
    hit,
    iou_otsu,
    localization_table,
    localization_with_reason,
    roc_auc,
)
from helpers.metrics.similarity import (
    ADEBAYO_SSIM,
    DEFAULT_SSIM,
    PAPER_SSIM,
    SIMILARITY_METRICS,
    SSIM_SPEC_KEYS,
    SimilaritySpecError,
    hog_cells,
    hog_similarity,
    paired_similarity,
    similarity,
    similarity_with_reason,
    spearman,
    ssim,
    ssim_spec,
    ssim_with_reason,
)
from helpers.metrics.statistics import (
    BootstrapCI,
    Verdict,
    WilcoxonResult,
    bootstrap_ci,
    holm,
    paired_bootstrap_diff,
    verdict_localization,
    verdict_randomization,
    verdict_repeatability,
    verdict_reproducibility,
    wilcoxon_paired,
)

__all__ = [
    # errors and warnings
    "MetricInputError",
    "SimilaritySpecError",
    "UndefinedMetricWarning",
    "ConstantMapWarning",
    "EmptyMaskWarning",
    # localization
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
    # similarity
    "DEFAULT_SSIM",
    "PAPER_SSIM",
    "ADEBAYO_SSIM",
    "SSIM_SPEC_KEYS",
    "SIMILARITY_METRICS",
    "ssim_spec",
    "ssim",
    "ssim_with_reason",
    "spearman",
    "hog_cells",
    "hog_similarity",
    "similarity",
    "similarity_with_reason",
    "paired_similarity",
    # baselines
    "RandomPairBaseline",
    "random_pair_baseline",
    "average_mask_prior",
    # statistics and verdicts
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
