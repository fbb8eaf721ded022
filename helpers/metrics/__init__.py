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
                           :func:`average_mask_prior`, :func:`leave_one_out_prior`
``statistics``             :func:`bootstrap_ci`, :func:`bootstrap_test`,
                           :func:`paired_bootstrap_diff`,
                           :func:`wilcoxon_paired`, :func:`roc_auc_ci`,
                           :func:`holm`, :class:`Verdict`
``book_rules``             the book's CI-based rules ``verdict_*``
``paper_rules``            Arun et al.'s rules ``paper_*``
=========================  ==================================================
"""

from __future__ import annotations

from helpers.metrics._checks import (
    ConstantMapWarning,
    EmptyMaskWarning,
    FullMaskWarning,
    MetricInputError,
    UndefinedMetricWarning,
)
from helpers.metrics.baselines import RandomPairBaseline, average_mask_prior, leave_one_out_prior, random_pair_baseline
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
    RULE_SETS,
    AUCInterval,
    BootstrapCI,
    BootstrapTest,
    Verdict,
    WilcoxonResult,
    bootstrap_ci,
    bootstrap_test,
    holm,
    paired_bootstrap_diff,
    roc_auc_ci,
    wilcoxon_paired,
)
from helpers.metrics.book_rules import (
    RULE_REASONS,
    per_image_baseline,
    verdict_localization,
    verdict_randomization,
    verdict_repeatability,
    verdict_reproducibility,
)
from helpers.metrics.paper_rules import (
    PAPER_NETWORK_SSIM,
    READING_PRECISION,
    paper_localization,
    paper_randomization,
    paper_repeatability,
    paper_reproducibility,
)

__all__ = [
    # errors and warnings
    "MetricInputError",
    "SimilaritySpecError",
    "UndefinedMetricWarning",
    "ConstantMapWarning",
    "EmptyMaskWarning",
    "FullMaskWarning",
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
    "leave_one_out_prior",
    # statistics and verdicts
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
    # the book's rules
    "RULE_REASONS",
    "per_image_baseline",
    "verdict_localization",
    "verdict_randomization",
    "verdict_repeatability",
    "verdict_reproducibility",
    # Arun et al.'s rules
    "PAPER_NETWORK_SSIM",
    "READING_PRECISION",
    "paper_localization",
    "paper_randomization",
    "paper_repeatability",
    "paper_reproducibility",
]
