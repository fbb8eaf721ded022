"""The paper's own numbers through the paper's rules: do we get the paper's verdicts back?

:func:`paper_reference_verdicts` feeds the figure readings of
:mod:`helpers.reference` through :mod:`helpers.metrics.paper_rules`. The
readings are about ±0.01 (:data:`helpers.metrics.READING_PRECISION`), so a
difference that small is *undecided* from them: on RSNA the rules give the
paper's 2 of 8 randomization failures exactly; on SIIM they give 4 certain
failures and 3 methods within the reading precision of their baseline
(GRAD, GCAM, GBP), which brackets the paper's count of 5.

References
----------
.. [1] Arun et al. (2021), figures 2-4 and the text's counts.
"""

from __future__ import annotations

import pandas as pd

from helpers import metrics, reference
from helpers.config import PAPER_METHODS
from helpers.criteria._verdicts import verdict_frame

__all__ = ["paper_reference_verdicts", "verdict_counts"]


def paper_reference_verdicts(*, tolerance: float = metrics.READING_PRECISION) -> pd.DataFrame:
    """The paper's verdicts recomputed from its own reported means.

    Parameters
    ----------
    tolerance : float, optional
        Differences within it are undecided (default: the reading precision).

    Returns
    -------
    pandas.DataFrame
        Verdict rows (:data:`helpers.criteria.VERDICT_COLUMNS`, ``rules="paper"``)
        plus a ``dataset`` column (``"SIIM"``, ``"RSNA"``); criteria
        localization, randomization, repeatability, reproducibility.
    """
    frames = []
    util = reference.paper_utility()
    util = util[(util.statistic == "mean") & (util.source == "[F]")]
    rand = reference.paper_randomization()
    rep = reference.paper_repeatability()
    for ds in reference.DATASETS:
        u = util[util.dataset == ds]
        net = float(u[u.method == "Net"].value.iloc[0])
        avg = float(u[u.method == "Avg"].value.iloc[0])
        r = rand[rand.dataset == ds]
        q = rep[rep.dataset == ds]
        entries = []
        for m in PAPER_METHODS:
            mean_map = float(u[(u.method == m) & (u.state == "trained")].value.iloc[0])
            entries.append((m, "InceptionV3", metrics.paper_localization(mean_map, net, avg)))
            final = float(r[(r.method == m) & (r.state == "1")].value.iloc[0])
            base = float(r[(r.method == m) & (r.state == "baseline")].value.iloc[0])
            entries.append((m, "InceptionV3", metrics.paper_randomization(final, base, tolerance=tolerance)))
            for crit, rule in (("repeatability", metrics.paper_repeatability),
                               ("reproducibility", metrics.paper_reproducibility)):
                qc = q[q.criterion == crit]
                value = float(qc[qc.method == m].value.iloc[0])
                network = float(qc[qc.method == "Net"].value.iloc[0])
                entries.append((m, "InceptionV3", rule(value, network, tolerance=tolerance)))
        frames.append(verdict_frame(entries, notebook="paper").assign(dataset=ds))
    return pd.concat(frames, ignore_index=True)


def verdict_counts(verdicts: pd.DataFrame, *, by: tuple[str, ...] = ("rules", "criterion")) -> pd.DataFrame:
    """Pass / fail / undecided counts per group of verdict rows."""
    v = verdicts.assign(outcome=verdicts["passed"].map(
        lambda p: "undecided" if p is None else ("pass" if p else "fail")))
    out = v.groupby(list(by) + ["outcome"], sort=False).size().unstack("outcome", fill_value=0)
    for col in ("pass", "fail", "undecided"):
        if col not in out:
            out[col] = 0
    return out[["pass", "fail", "undecided"]].reset_index()
