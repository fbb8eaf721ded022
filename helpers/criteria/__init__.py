"""The trust criteria as a library: judge any model's measurements by both rule sets.

Each criterion module offers a ``judge(...)`` that takes tidy per-image
measurements and returns a verdicts table (:data:`VERDICT_COLUMNS`): one row
per method and rule set (``"book"``: the book's CI-based rules, Holm-adjusted
within the criterion; ``"paper"``: Arun et al.'s rules as published).

=====================  ======================================================
module                 contents
=====================  ======================================================
``localization``       :func:`judge` of localization utility
``randomization``      :func:`judge` of weight and label randomization
``agreement``          :func:`judge` of repeatability and reproducibility
``shortcut``           "reveals a shortcut": marker mass share, pointing game
                       on the marker, AUC gap, :func:`judge`
``reference``          :func:`paper_reference_verdicts`: the paper's numbers
                       through the paper's rules; :func:`verdict_counts`
``comparison``         "is A better than B?": :func:`compare_paired`
                       (paired CI of a per-image difference),
                       :func:`compare_means`, :func:`compare_auc` (CI overlap
                       against a reference), :func:`verdict_word`
=====================  ======================================================

Shared: :func:`summarize` (means with bootstrap CIs), :func:`show` (a
chapter's verdicts as a table), :func:`similarity_rows` and :func:`random_pair_baselines` (SSIM under
the book's and the paper's specification), :func:`verdict_frame`,
:func:`apply_holm`, :func:`write_verdicts`, :func:`read_verdicts` (refuses
tables of different runs, :class:`MixedRunsError`).
"""

from __future__ import annotations

from helpers.criteria import agreement, comparison, localization, randomization, shortcut
from helpers.criteria._summary import show, summarize
from helpers.criteria._similarity import SSIM_SPECS, random_pair_baselines, similarity_rows
from helpers.criteria.comparison import (
    COMPARISON_COLUMNS,
    COMPARISON_VERDICTS,
    compare_auc,
    compare_means,
    compare_paired,
    verdict_word,
)
from helpers.criteria._verdicts import (
    VERDICT_COLUMNS,
    MixedRunsError,
    apply_holm,
    read_verdicts,
    verdict_frame,
    verdicts_path,
    write_verdicts,
)
from helpers.criteria.reference import paper_reference_verdicts, verdict_counts

__all__ = [
    "localization",
    "randomization",
    "agreement",
    "shortcut",
    "comparison",
    "COMPARISON_COLUMNS",
    "COMPARISON_VERDICTS",
    "compare_paired",
    "compare_means",
    "compare_auc",
    "verdict_word",
    "SSIM_SPECS",
    "similarity_rows",
    "random_pair_baselines",
    "VERDICT_COLUMNS",
    "MixedRunsError",
    "verdict_frame",
    "apply_holm",
    "write_verdicts",
    "read_verdicts",
    "verdicts_path",
    "paper_reference_verdicts",
    "verdict_counts",
    "summarize",
    "show",
]
