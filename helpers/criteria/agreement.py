"""Repeatability and reproducibility: judge map agreement by both rule sets.

The book's rules (:func:`helpers.metrics.verdict_repeatability`,
:func:`helpers.metrics.verdict_reproducibility`): per-image agreement minus
the image's random-pair similarity, CI-based, over images and pairs. The
paper's rules (:func:`helpers.metrics.paper_repeatability`,
:func:`helpers.metrics.paper_reproducibility`): the mean SSIM (paper
specification) reaches the network baseline (two localization networks,
compared over their full range, :data:`helpers.metrics.PAPER_NETWORK_SSIM`,
which equals the book's specification, metric ``"ssim"``).

References
----------
.. [1] Arun et al. (2021), figure 4.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers import metrics
from helpers.criteria._verdicts import apply_holm, verdict_frame

__all__ = ["judge", "CRITERIA_RULES"]

#: criterion -> (book rule, paper rule)
CRITERIA_RULES = {
    "repeatability": (metrics.verdict_repeatability, metrics.paper_repeatability),
    "reproducibility": (metrics.verdict_reproducibility, metrics.paper_reproducibility),
}


def _pairs_array(scores: pd.DataFrame, method: str, metric: str, image_ids: Sequence[str]) -> np.ndarray:
    part = scores[(scores["method"] == method) & (scores["metric"] == metric)]
    if part.empty:
        raise ValueError(f"no {metric!r} agreement rows for method {method!r}")
    wide = part.assign(replicate=part["replicate"].astype(str)).pivot_table(
        index="replicate", columns="image_id", values="value", dropna=False)
    return wide[list(image_ids)].to_numpy(dtype=float)


def judge(scores: pd.DataFrame, chance: Mapping[tuple[str, str], metrics.RandomPairBaseline],
          network: Mapping[str, np.ndarray], *, criterion: str, methods: Sequence[str], architecture: str,
          image_ids: Sequence[str], n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Verdicts of repeatability or reproducibility for every method, both rule sets.

    Parameters
    ----------
    scores : pandas.DataFrame
        Per-image agreement of each pair of models: ``method, replicate`` (the
        pair's label), ``image_id, metric, value`` with metrics ``"ssim"`` and
        ``"ssim_paper"`` (:func:`helpers.criteria.similarity_rows`).
    chance : mapping
        ``("ssim", method)`` -> random-pair baseline of one model's maps (the
        book's chance level).
    network : mapping
        ``"ssim"`` -> per-image SSIM between two localization networks.
    criterion : {"repeatability", "reproducibility"}
    methods, architecture, image_ids, n_bootstrap, seed, level
        As in :func:`helpers.criteria.randomization.judge`.

    Returns
    -------
    pandas.DataFrame
        Verdict rows, two per method, the book's Holm-adjusted.
    """
    if criterion not in CRITERIA_RULES:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA_RULES)}, got {criterion!r}")
    book_rule, paper_rule = CRITERIA_RULES[criterion]
    net = np.asarray(network["ssim"], dtype=float)
    entries = []
    opts = dict(n_bootstrap=n_bootstrap, seed=seed, level=level)
    for method in methods:
        entries.append((method, architecture, book_rule(
            _pairs_array(scores, method, "ssim", image_ids), chance[("ssim", method)], network_baseline=net,
            **opts)))
        entries.append((method, architecture, paper_rule(
            _pairs_array(scores, method, "ssim_paper", image_ids), net, **opts)))
    return apply_holm(verdict_frame(entries))
