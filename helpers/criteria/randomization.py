"""Sensitivity to weight and label randomization: judge final-state similarities by both rule sets.

The book's rule (:func:`helpers.metrics.verdict_randomization`): per image,
final-state SSIM minus that image's random-pair SSIM, CI-based, over images
and replicates. The paper's rule (:func:`helpers.metrics.paper_randomization`):
the mean curve ends below the mean random-pair baseline (paper SSIM
specification).

References
----------
.. [1] Arun et al. (2021), figure 3. .. [2] Adebayo et al. (2018).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers import metrics
from helpers.criteria._verdicts import apply_holm, verdict_frame
from helpers.metrics import Verdict

__all__ = ["judge", "final_state_array"]


def final_state_array(final: pd.DataFrame, *, method: str, metric: str, image_ids: Sequence[str]) -> np.ndarray:
    """``(replicates, images)`` values of one method and metric, images in ``image_ids`` order."""
    part = final[(final["method"] == method) & (final["metric"] == metric)]
    if part.empty:
        raise ValueError(f"no final-state {metric!r} rows for method {method!r}")
    rep = part["replicate"] if "replicate" in part else pd.Series(0, index=part.index)
    wide = part.assign(replicate=rep.astype(str)).pivot_table(index="replicate", columns="image_id",
                                                              values="value", dropna=False)
    missing = [i for i in image_ids if i not in wide.columns]
    if missing:
        raise ValueError(f"final-state rows of {method} lack images {missing[:3]}")
    return wide[list(image_ids)].to_numpy(dtype=float)


def _undecided(criterion: str, rules: str, reason: str) -> Verdict:
    return Verdict(criterion, None, f"not judged: {reason}", {"reason": reason}, statistic="", rules=rules)


def judge(final: pd.DataFrame, baselines: Mapping[tuple[str, str], metrics.RandomPairBaseline], *,
          methods: Sequence[str], architecture: str, image_ids: Sequence[str],
          criterion: str = "randomization", precondition: tuple[bool, str] = (True, ""),
          n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Verdicts of weight (or label) randomization for every method, both rule sets.

    Parameters
    ----------
    final : pandas.DataFrame
        Per-image similarities of the last state (or of the permuted-label
        model) to the trained maps: ``method, replicate, image_id, metric,
        value`` with ``metric`` ``"ssim"`` (book) and ``"ssim_paper"`` (paper).
    baselines : mapping
        ``(metric, method)`` -> random-pair baseline of the trained maps, for
        both metrics (:func:`helpers.criteria.random_pair_baselines`).
    methods, architecture, image_ids
        What is judged, the architecture written into the rows, the images'
        order of the baselines.
    criterion : {"randomization", "label_randomization"}
    precondition : (bool, str)
        ``(False, reason)`` makes every verdict undecided with that reason
        (the permuted-label model did not fit its labels).
    n_bootstrap, seed, level
        Of every CI and test.

    Returns
    -------
    pandas.DataFrame
        Verdict rows, two per method, the book's Holm-adjusted.
    """
    ok, reason = precondition
    entries = []
    opts = dict(n_bootstrap=n_bootstrap, seed=seed, level=level)
    for method in methods:
        if not ok:
            entries += [(method, architecture, _undecided(criterion, r, reason)) for r in ("book", "paper")]
            continue
        book = final_state_array(final, method=method, metric="ssim", image_ids=image_ids)
        paper = final_state_array(final, method=method, metric="ssim_paper", image_ids=image_ids)
        entries.append((method, architecture, metrics.verdict_randomization(
            book, baselines[("ssim", method)], criterion=criterion, **opts)))
        entries.append((method, architecture, metrics.paper_randomization(
            paper, baselines[("ssim_paper", method)], criterion=criterion, **opts)))
    return apply_holm(verdict_frame(entries))
