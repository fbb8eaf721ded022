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


def show(verdicts: pd.DataFrame, *, caption: str | None = None):
    """The verdicts of one chapter as a compact table: both rule sets per method, the book's Holm-adjusted.

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    def outcome(p):
        return "undecided" if p is None else ("PASS" if p else "FAIL")

    view = pd.DataFrame({
        "method": verdicts["method"], "rules": verdicts["rules"], "criterion": verdicts["criterion"],
        "verdict": verdicts["passed"].map(outcome),
        "unadjusted": verdicts["passed_unadjusted"].map(outcome),
        "statistic": verdicts["statistic"], "value": verdicts["value"],
        "CI low": verdicts["ci_low"], "CI high": verdicts["ci_high"],
        "p (one-sided)": verdicts["p_value"], "p (Holm)": verdicts["p_holm"],
    })
    styler = view.style.format(precision=3, na_rep="–").hide(axis="index")
    return styler.set_caption(caption) if caption else styler
