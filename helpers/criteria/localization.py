"""Localization utility: judge per-image localization scores by both rule sets.

The book's rule (:func:`helpers.metrics.verdict_localization`): per-image AP
of the map against the average-mask prior, paired, CI-based. The paper's
rule (:func:`helpers.metrics.paper_localization`): mean trapezoid AUPRC
against the localization network and the prior, point estimates.

References
----------
.. [1] Arun et al. (2021), figure 2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers import metrics
from helpers.criteria._verdicts import apply_holm, verdict_frame

__all__ = ["judge"]


def _per_image(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    part = scores[scores["metric"] == metric]
    if part.empty:
        raise ValueError(f"the localization scores hold no {metric!r} rows; they come from "
                         "helpers.metrics.localization_table")
    # dropna=False keeps images whose value is NaN (undefined) as rows; the (method, state) combinations
    # that do not exist (the prior has no "trained" state) come out all-NaN and are dropped.
    wide = part.pivot_table(index="image_id", columns=["method", "state"], values="value", sort=False,
                            dropna=False)
    present = set(part[["method", "state"]].drop_duplicates().itertuples(index=False, name=None))
    return wide[[c for c in wide.columns if c in present]]


def _column(per: pd.DataFrame, method: str, state: str | None) -> np.ndarray:
    cols = [c for c in per.columns if c[0] == method and (state is None or c[1] == state)]
    if not cols:
        raise ValueError(f"the localization scores have no rows for {method!r}"
                         + (f" in state {state!r}" if state else "")
                         + f"; methods present: {sorted(set(c[0] for c in per.columns))}")
    return per[cols[0]].to_numpy(dtype=float)


def judge(scores: pd.DataFrame, *, methods: Sequence[str], architecture: str, prior: str = "Average mask",
          network: str = "U-Net", trained_state: str = "trained", untrained_state: str | None = "untrained",
          book_metric: str = "average_precision", paper_metric: str = "auprc_trapezoid",
          n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Verdicts of localization utility for every method, both rule sets, the book's Holm-adjusted.

    Parameters
    ----------
    scores : pandas.DataFrame
        Tidy per-image scores (``method, state, image_id, metric, value``) of
        the methods' maps and of the baselines ``prior`` and ``network`` (any
        state), as :func:`helpers.metrics.localization_table` writes them.
    methods : sequence of str
        The methods to judge (one Holm family).
    architecture : str
        Written into the rows.
    prior, network : str
        ``method`` names of the average-mask prior and the localization network.
    trained_state, untrained_state : str
        States of the trained maps and (reported only) the untrained maps.
    book_metric, paper_metric : str
        The book judges AP; the paper judged the trapezoid AUPRC.
    n_bootstrap, seed, level
        Of every CI and test.

    Returns
    -------
    pandas.DataFrame
        :data:`helpers.criteria.VERDICT_COLUMNS` rows, two per method.
    """
    book = _per_image(scores, book_metric)
    paper = _per_image(scores, paper_metric)
    entries = []
    opts = dict(n_bootstrap=n_bootstrap, seed=seed, level=level)
    for method in methods:
        untrained = None
        if untrained_state is not None and any(c == (method, untrained_state) for c in book.columns):
            untrained = _column(book, method, untrained_state)
        entries.append((method, architecture, metrics.verdict_localization(
            _column(book, method, trained_state), _column(book, prior, None), untrained_values=untrained,
            metric="AP", **opts)))
        entries.append((method, architecture, metrics.paper_localization(
            _column(paper, method, trained_state), _column(paper, network, None), _column(paper, prior, None),
            metric="trapezoid AUPRC", **opts)))
    return apply_holm(verdict_frame(entries))
