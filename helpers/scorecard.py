"""The scorecard: one pass/fail cell per method and criterion, with its numbers.

Chapters record each verdict with :func:`record_verdict`, which writes four
rows into the chapter's tidy results table (``verdict_<criterion>`` = 1/0/NaN,
and the statistic with its confidence interval). The scorecard chapter reads
only those tables (:func:`cells`) and renders them (:func:`styled`,
:func:`heatmap`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CRITERIA", "record_verdict", "cells", "styled", "heatmap"]

#: Criterion id -> (column title, what the number is)
CRITERIA: dict[str, tuple[str, str]] = {
    "localization": ("Localization utility", "mean AP − prior AP"),
    "randomization": ("Weight randomization", "SSIM at last state"),
    "label_randomization": ("Label randomization", "SSIM to permuted-label model"),
    "repeatability": ("Repeatability", "SSIM between replicates"),
    "reproducibility": ("Reproducibility", "SSIM between architectures"),
}


def record_verdict(table, criterion: str, verdict: Any, *, method: str, architecture: str = "",
                   value: float | None = None, ci: tuple[float, float] | None = None) -> None:
    """Write a verdict and the statistic behind it into a chapter's results table.

    Parameters
    ----------
    table : helpers.results.ResultTable
        The chapter's table.
    criterion : str
        A key of :data:`CRITERIA`.
    verdict : helpers.metrics.Verdict
        What the rule of :mod:`helpers.metrics.statistics` decided; ``passed``
        ``None`` (too few valid images) is written as NaN.
    method, architecture : str
        Which map and which model.
    value : float, optional
        The statistic the rule looked at (see :data:`CRITERIA`); default
        ``verdict.value``.
    ci : (float, float), optional
        Its 95 % confidence interval; default ``verdict.ci``.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    passed = getattr(verdict, "passed", None)
    flag = math.nan if passed is None else float(bool(passed))
    value = verdict.value if value is None else value
    low, high = verdict.ci if ci is None else ci
    for suffix, v in (("", flag), ("_value", value), ("_ci_low", low), ("_ci_high", high)):
        table.add(metric=f"verdict_{criterion}{suffix}", value=v, method=method, architecture=architecture)


def cells(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, criterion) from the verdict rows of the results tables.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, criterion, title, passed, value, ci_low, ci_high, notebook``
        (``passed`` is True, False or None).
    """
    v = results[results["metric"].str.startswith("verdict_")].copy()
    if v.empty:
        raise ValueError("no verdict rows in the results tables: run chapters 01-04 (and 06, 07) first")
    v["criterion"] = v["metric"].str.replace("verdict_", "", n=1)
    v["part"] = "passed"
    for suffix in ("_value", "_ci_low", "_ci_high"):
        hit = v["criterion"].str.endswith(suffix)
        v.loc[hit, "part"] = suffix[1:]
        v.loc[hit, "criterion"] = v.loc[hit, "criterion"].str[: -len(suffix)]
    # groupby (not pivot_table): only the (method, criterion) pairs that exist
    wide = (v.groupby(["method", "criterion", "notebook", "part"], sort=False)["value"].first()
            .unstack("part").reset_index())
    for col in ("passed", "value", "ci_low", "ci_high"):
        if col not in wide:
            wide[col] = np.nan
    # object dtype, so that the cells are True/False/None even when no verdict is undecided
    wide["passed"] = pd.Series([None if (p is None or (isinstance(p, float) and math.isnan(p))) else bool(p)
                                for p in wide["passed"]], index=wide.index, dtype=object)
    wide["title"] = [CRITERIA.get(c, (c, ""))[0] for c in wide["criterion"]]
    order = {c: i for i, c in enumerate(CRITERIA)}
    wide["_o"] = wide["criterion"].map(order).fillna(len(order))
    wide = wide.sort_values(["method", "_o"]).drop(columns="_o")
    return wide[["method", "criterion", "title", "passed", "value", "ci_low", "ci_high", "notebook"]].reset_index(drop=True)


def _cell_text(row) -> str:
    if row["passed"] is None:
        mark = "n/a"
    else:
        mark = "PASS" if row["passed"] else "FAIL"
    if np.isfinite(row["value"]):
        ci = f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if np.isfinite(row["ci_low"]) else ""
        return f"{mark} {row['value']:.2f}{ci}"
    return mark


def styled(card: pd.DataFrame, *, method_order: list[str] | None = None):
    """A pandas Styler: methods as rows, criteria as columns, green PASS / red FAIL cells."""
    text = card.assign(cell=card.apply(_cell_text, axis=1)).pivot_table(
        index="method", columns="title", values="cell", aggfunc="first")
    cols = [CRITERIA[c][0] for c in CRITERIA if CRITERIA[c][0] in text.columns]
    text = text[cols + [c for c in text.columns if c not in cols]]
    if method_order:
        text = text.loc[[m for m in method_order if m in text.index] + [m for m in text.index if m not in method_order]]

    def colour(v):
        if not isinstance(v, str):
            return "color: #999"
        if v.startswith("PASS"):
            return "background-color: #d9f2d9"
        if v.startswith("FAIL"):
            return "background-color: #f8d7da"
        return "color: #777"

    return (text.style.map(colour).set_caption(
        "Verdict per method and criterion: the statistic behind it and its 95 % CI (see the rules above)")
            .set_table_styles([{"selector": "td", "props": "font-family: monospace; font-size: 0.85em"}]))


def heatmap(card: pd.DataFrame):
    """A pass/fail grid figure (green pass, red fail, grey not available) with the numbers."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    titles = [CRITERIA[c][0] for c in CRITERIA if c in set(card["criterion"])]
    methods = list(dict.fromkeys(card["method"]))
    grid = np.full((len(methods), len(titles)), np.nan)
    labels = np.full(grid.shape, "", dtype=object)
    for _, r in card.iterrows():
        if r["title"] not in titles:
            continue
        i, j = methods.index(r["method"]), titles.index(r["title"])
        grid[i, j] = np.nan if r["passed"] is None else float(r["passed"])
        labels[i, j] = f"{r['value']:.2f}" if np.isfinite(r["value"]) else "–"
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(titles), 0.9 + 0.42 * len(methods)))
    cmap = ListedColormap(["#e8a0a8", "#9fd89f"])
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.imshow(np.where(np.isnan(grid), 1.0, np.nan), cmap=ListedColormap(["#dddddd"]), aspect="auto")
    for i in range(len(methods)):
        for j in range(len(titles)):
            ax.text(j, i, labels[i, j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(titles)), titles, rotation=20, ha="right")
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xlabel("trust criterion")
    ax.set_ylabel("saliency method")
    ax.set_title("Scorecard (green: pass, red: fail, grey: not available); numbers as in the table")
    fig.tight_layout()
    return fig
