"""Means with bootstrap CIs of tidy measurements, and the verdicts as a table a reader can scan."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from helpers import metrics

__all__ = ["summarize", "show"]


def summarize(scores: pd.DataFrame, by: Sequence[str], *, n_bootstrap: int = 1000, seed: int = 0,
              level: float = 0.95) -> pd.DataFrame:
    """Mean, median, count and the bootstrap CI of the mean of ``value`` per group (NaN-aware).

    Parameters
    ----------
    scores : pandas.DataFrame
        Tidy rows with a ``value`` column and the ``by`` columns.
    by : sequence of str
    n_bootstrap, seed, level
        Of :func:`helpers.metrics.bootstrap_ci` (resampling the group's values).

    Returns
    -------
    pandas.DataFrame
        ``by`` columns then ``mean, median, n, ci_low, ci_high``.
    """
    rows = []
    for key, group in scores.groupby(list(by), sort=False):
        values = group["value"].to_numpy(dtype=float)
        ci = metrics.bootstrap_ci(values, n_bootstrap=n_bootstrap, seed=seed, level=level)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(dict(zip(by, key), mean=float(np.nanmean(values)) if np.isfinite(values).any() else np.nan,
                         median=float(np.nanmedian(values)) if np.isfinite(values).any() else np.nan,
                         n=int(np.isfinite(values).sum()), ci_low=ci.low, ci_high=ci.high))
    return pd.DataFrame(rows, columns=[*by, "mean", "median", "n", "ci_low", "ci_high"])


#: Short names of the statistics in :func:`show`.
_STATISTIC_LABELS = {"mean_difference": "Δ vs baseline (paired)", "difference_vs_network": "Δ vs network",
                     "difference": "Δ vs baseline"}


def show(verdicts: pd.DataFrame, *, caption: str | None = None):
    """The verdicts of one chapter as a compact table: both rule sets per method, the book's Holm-adjusted.

    Columns: method, rule set, verdict (with the unadjusted one where Holm
    changed it), the statistic the rule judged with its 95 % CI, and the
    one-sided p-value raw and Holm-adjusted (the book's rules only).

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    def outcome(p):
        return "undecided" if p is None else ("PASS" if p else "FAIL")

    def verdict(row):
        now, raw = outcome(row["passed"]), outcome(row["passed_unadjusted"])
        return now if now == raw else f"{now} (unadjusted {raw})"

    def number(row):
        if not np.isfinite(row["value"]):
            return "–"
        ci = f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]" if np.isfinite(row["ci_low"]) else ""
        return f"{row['value']:+.3f}{ci}"

    def pvalues(row):
        if not np.isfinite(row["p_value"]):
            return "–"
        return f"{row['p_value']:.3f} / {row['p_holm']:.3f}" if np.isfinite(row["p_holm"]) else f"{row['p_value']:.3f}"

    view = pd.DataFrame({
        "method": verdicts["method"],
        "rules": verdicts["rules"].map({"book": "book", "paper": "paper"}),
        "verdict": verdicts.apply(verdict, axis=1),
        "statistic": verdicts["statistic"].map(lambda s: _STATISTIC_LABELS.get(s, s)),
        "value [95% CI]": verdicts.apply(number, axis=1),
        "p / p Holm": verdicts.apply(pvalues, axis=1),
    })
    if verdicts["criterion"].nunique() > 1:
        view.insert(1, "criterion", verdicts["criterion"].str.replace("_", " "))
    styler = view.style.hide(axis="index")
    return styler.set_caption(caption) if caption else styler
