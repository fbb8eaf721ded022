"""The scorecard: one verdict per method, criterion and rule set, read from the chapters' verdicts tables.

Chapters judge each criterion with :mod:`helpers.criteria` and write
``<notebook>.verdicts.csv``; the scorecard chapter reads those tables only
(:func:`helpers.criteria.read_verdicts`, which refuses tables of different
runs), re-applies Holm's adjustment over every method of a criterion
(:func:`adjust`), and renders both rule sets side by side
(:func:`table`, :func:`helpers.plots.scorecard_panels`), the paper's own
counts beside ours (:func:`counts_beside_paper`) and, in words, where the
two rule sets disagree (:func:`disagreements`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from helpers.criteria import apply_holm, verdict_counts
from helpers.plots import VERDICT_COLORS

__all__ = ["CRITERIA", "BOOK_ONLY", "RULES_TITLES", "adjust", "table", "disagreements", "counts_beside_paper", "outcome"]

#: Criterion id -> (column title, book statistic, paper statistic)
CRITERIA: dict[str, tuple[str, str, str]] = {
    "localization": ("Localization utility", "mean AP − prior AP", "mean AUPRC − network AUPRC"),
    "randomization": ("Weight randomization", "final SSIM − own random-pair SSIM",
                      "mean final SSIM − mean baseline"),
    "label_randomization": ("Label randomization", "permuted-model SSIM − own random-pair SSIM",
                            "mean SSIM − mean baseline"),
    "repeatability": ("Repeatability", "replicate SSIM − own random-pair SSIM", "mean SSIM − network SSIM"),
    "reproducibility": ("Reproducibility", "architecture SSIM − own random-pair SSIM",
                        "mean SSIM − network SSIM"),
    # Chapter 08 (helpers.criteria.shortcut): the book's rule only; Arun et al. have no such criterion.
    "shortcut": ("Reveals a shortcut", "marker mass share, shortcut − honest model", "–"),
}

#: Criteria judged by the book's rules only (no paper rule exists): never a disagreement between rule sets.
BOOK_ONLY = ("shortcut",)

#: Rule set -> its name in the book.
RULES_TITLES = {"book": "book's rules (CI, Holm)", "paper": "Arun et al.'s rules"}


def outcome(passed) -> str:
    """``"pass"``, ``"fail"`` or ``"undecided"``."""
    return "undecided" if passed is None else ("pass" if passed else "fail")


def adjust(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Holm over every method of a criterion in the whole book (the chapters adjusted only their own methods)."""
    return apply_holm(verdicts)


def _cell(row) -> str:
    mark = {"pass": "PASS", "fail": "FAIL", "undecided": "n/a"}[outcome(row["passed"])]
    value = row["value"]
    if value is None or not np.isfinite(value):
        return mark
    ci = f" [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]" if np.isfinite(row["ci_low"]) else ""
    p = f" p={row['p_holm']:.3f}" if np.isfinite(row["p_holm"]) else ""
    return f"{mark} {value:+.2f}{ci}{p}"


def table(verdicts: pd.DataFrame, *, rules: str | None = None, method_order: list[str] | None = None):
    """Methods as rows, (criterion, rule set) as columns: outcome, statistic, CI and Holm-adjusted p.

    Parameters
    ----------
    verdicts : pandas.DataFrame
        Verdict rows (:data:`helpers.criteria.VERDICT_COLUMNS`).
    rules : {"book", "paper"}, optional
        Show one rule set (one column per criterion, a table that fits a
        page); default both side by side.
    method_order : list of str, optional

    Colours: Okabe-Ito blue (pass) and vermillion (fail), readable with
    red-green colour blindness; grey for undecided.
    """
    if rules is not None:
        verdicts = verdicts[verdicts["rules"] == rules]
    v = verdicts.assign(cell=verdicts.apply(_cell, axis=1),
                        title=verdicts["criterion"].map(lambda c: CRITERIA.get(c, (c,))[0]),
                        rule_set=verdicts["rules"].map(RULES_TITLES))
    text = v.pivot_table(index="method", columns=["title", "rule_set"], values="cell", aggfunc="first")
    state = v.pivot_table(index="method", columns=["title", "rule_set"], values="passed",
                          aggfunc=lambda s: outcome(s.iloc[0]))
    order = [(CRITERIA[c][0], RULES_TITLES[r]) for c in CRITERIA for r in ("book", "paper")]
    cols = [c for c in order if c in text.columns]
    text, state = text[cols], state.reindex(columns=cols)
    if rules is not None:  # one rule set: the criterion alone names the column
        text.columns = [c[0] for c in cols]
        state.columns = [c[0] for c in cols]
    if method_order:
        rows = [m for m in method_order if m in text.index] + [m for m in text.index if m not in method_order]
        text, state = text.loc[rows], state.loc[rows]
    colours = {"pass": VERDICT_COLORS[True], "fail": VERDICT_COLORS[False], "undecided": VERDICT_COLORS[None]}

    def css(_):
        return state.apply(lambda col: [
            f"background-color: {colours.get(s, '#FFFFFF')}; color: {'white' if s in ('pass', 'fail') else 'black'}"
            if isinstance(s, str) else "" for s in col])

    # The table takes its column's width and wraps its cells (and caption) instead of running past it: with six
    # criteria a row of "PASS +0.04 [+0.02, +0.05] p=0.010" cells is wider than the book's text column.
    return (text.fillna("–").style.apply(css, axis=None)
            .set_table_styles([
                {"selector": "", "props": "width: 100%; table-layout: fixed"},
                {"selector": "caption", "props": "white-space: normal; caption-side: top"},
                {"selector": "th", "props": "overflow-wrap: break-word; hyphens: auto; font-size: 0.85em"},
                # the method names need less than an equal share, the criteria's headers ("Reproducibility") more
                {"selector": "thead tr:first-child th:first-child", "props": "width: 11%"},
                {"selector": "td", "props": "font-family: monospace; font-size: 0.75em; overflow-wrap: anywhere"},
            ]))


def disagreements(verdicts: pd.DataFrame) -> list[str]:
    """Sentences, one per (method, criterion) where the two rule sets decide differently, saying why."""
    lines = []
    wide = verdicts.pivot_table(index=["method", "criterion"], columns="rules",
                                values=["passed", "value", "ci_low", "ci_high"], aggfunc="first")
    for (method, criterion), row in wide.iterrows():
        if criterion in BOOK_ONLY:
            continue
        book, paper = row.get(("passed", "book")), row.get(("passed", "paper"))
        if outcome(book) == outcome(paper):
            continue
        title = CRITERIA.get(criterion, (criterion,))[0]
        why = _why(criterion, book, paper, row)
        lines.append(f"**{method}, {title.lower()}**: the book's rule says {outcome(book)}, the paper's "
                     f"{outcome(paper)} — {why}")
    return lines


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}"


def _why(criterion: str, book, paper, row) -> str:
    bval, pval = row.get(("value", "book")), row.get(("value", "paper"))
    if book is None or paper is None:
        return "one rule set could not decide (too few valid images or an unmet precondition)"
    if criterion == "localization":
        return (f"the book compares AP with the average-mask prior (difference {_fmt(bval)}), the paper the "
                f"trapezoid AUPRC with the localization network (difference {_fmt(pval)})")
    if criterion in ("randomization", "label_randomization"):
        return (f"the paper compares point estimates (mean difference {_fmt(pval)} in the paper's SSIM), the book "
                f"asks a paired per-image difference to be below 0 with its CI ({_fmt(bval)} "
                f"[{_fmt(row.get(('ci_low', 'book')))}, {_fmt(row.get(('ci_high', 'book')))}]) after Holm")
    return (f"the paper asks the maps to agree as well as two localization networks do (difference "
            f"{_fmt(pval)}), the book that they agree more than maps of different images by a CI above 0 "
            f"(difference to chance {_fmt(bval)} [{_fmt(row.get(('ci_low', 'book')))}, "
            f"{_fmt(row.get(('ci_high', 'book')))}])")


def counts_beside_paper(verdicts: pd.DataFrame, paper_reference: pd.DataFrame) -> pd.DataFrame:
    """Failures per criterion: this run under each rule set, beside the paper's own on SIIM and RSNA.

    Parameters
    ----------
    verdicts : pandas.DataFrame
        This run's verdicts (both rule sets).
    paper_reference : pandas.DataFrame
        :func:`helpers.criteria.paper_reference_verdicts`.

    Returns
    -------
    pandas.DataFrame
        One row per criterion: ``"fail / judged"`` for this run's book and
        paper rules, and for the paper's numbers on each dataset (undecided
        ones are named ``(+k within reading precision)``).
    """
    def fmt(c):
        judged = c["pass"] + c["fail"]
        extra = f" (+{c['undecided']} undecided)" if c["undecided"] else ""
        return f"{c['fail']} / {judged}{extra}"

    ours = verdict_counts(verdicts, by=("rules", "criterion"))
    theirs = verdict_counts(paper_reference, by=("dataset", "criterion"))
    rows = []
    for crit in CRITERIA:
        row = {"criterion": CRITERIA[crit][0]}
        for rules in ("book", "paper"):
            hit = ours[(ours.rules == rules) & (ours.criterion == crit)]
            row[f"this run, {RULES_TITLES[rules]}"] = fmt(hit.iloc[0]) if len(hit) else "–"
        for ds in ("SIIM", "RSNA"):
            hit = theirs[(theirs.dataset == ds) & (theirs.criterion == crit)]
            row[f"paper's numbers, {ds}"] = fmt(hit.iloc[0]) if len(hit) else "not reported"
        rows.append(row)
    return pd.DataFrame(rows).set_index("criterion")
