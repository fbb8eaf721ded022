"""Verdict tables: every verdict of a chapter as one tidy row, both rule sets, Holm-adjusted.

A chapter's verdicts go to ``<results_dir>/<notebook>.verdicts.csv`` with the
columns of :data:`VERDICT_COLUMNS`; every row carries the run's fingerprint
(``run``), so that :func:`read_verdicts` can refuse to combine the tables of
different runs. The scorecard reads these tables only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from helpers._cache import atomic_write
from helpers.metrics import RULE_SETS, Verdict, holm
from helpers.results import MixedRunsError, ResultsError

__all__ = [
    "VERDICT_COLUMNS",
    "MixedRunsError",
    "verdict_frame",
    "apply_holm",
    "write_verdicts",
    "read_verdicts",
    "verdicts_path",
]

#: Columns of every verdicts table, in order.
VERDICT_COLUMNS = (
    "notebook", "criterion", "rules", "method", "architecture", "passed", "passed_unadjusted", "statistic",
    "value", "ci_low", "ci_high", "p_value", "p_holm", "alpha", "n", "rule_text", "reason", "run",
)


def _flag(passed) -> Any:
    return None if passed is None else bool(passed)


def verdict_frame(entries: Iterable[tuple[str, str, Verdict]], *, notebook: str = "", run: str = "") -> pd.DataFrame:
    """One row per verdict.

    Parameters
    ----------
    entries : iterable of (method, architecture, Verdict)
    notebook, run : str
        The chapter and the run fingerprint written into every row.

    Returns
    -------
    pandas.DataFrame
        :data:`VERDICT_COLUMNS`; ``passed`` equals ``passed_unadjusted`` until
        :func:`apply_holm` adjusts the book's rows.
    """
    rows = []
    for method, architecture, v in entries:
        if v.rules not in RULE_SETS:
            raise ValueError(f"verdict of {method} names unknown rules {v.rules!r}; valid: {', '.join(RULE_SETS)}")
        low, high = v.ci
        rows.append(dict(
            notebook=notebook, criterion=v.criterion, rules=v.rules, method=method, architecture=architecture,
            passed=_flag(v.passed), passed_unadjusted=_flag(v.passed), statistic=v.statistic, value=v.value,
            ci_low=low, ci_high=high, p_value=float(v.numbers.get("p_value", math.nan)), p_holm=math.nan,
            alpha=float(v.numbers.get("alpha", math.nan)), n=float(v.numbers.get("n", math.nan)),
            rule_text=v.rule, reason=str(v.numbers.get("reason", "") or ""), run=run,
        ))
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    for col in ("passed", "passed_unadjusted"):
        frame[col] = frame[col].astype(object)
    return frame


def apply_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjust the book's verdicts within each criterion (the methods of one criterion are one family).

    For ``rules == "book"``: ``p_holm`` = Holm's adjusted one-sided p-value
    over the rows of the same criterion, and ``passed`` = ``p_holm < alpha``
    (``None`` where the unadjusted verdict is undecided). The paper's rules
    decide on point estimates and carry no p-value: their rows are unchanged.

    Returns
    -------
    pandas.DataFrame
        A copy.

    References
    ----------
    .. [1] Holm, S. (1979). Scandinavian Journal of Statistics 6(2), 65-70.
    """
    out = frame.copy()
    for col in ("passed", "passed_unadjusted"):
        out[col] = out[col].astype(object)
    book = out["rules"] == "book"
    for _, idx in out[book].groupby("criterion").groups.items():
        rows = out.loc[idx]
        decided = rows["passed_unadjusted"].map(lambda p: p is not None)
        p = np.where(decided, rows["p_value"].to_numpy(dtype=float), np.nan)
        adjusted = holm(p)
        out.loc[idx, "p_holm"] = adjusted
        out.loc[idx, "passed"] = pd.Series(
            [None if not d else bool(a < al) for d, a, al in zip(decided, adjusted, rows["alpha"])],
            index=idx, dtype=object)
    return out


def verdicts_path(results_dir: str | Path, notebook: str) -> Path:
    """``<results_dir>/<notebook>.verdicts.csv``."""
    return Path(results_dir) / f"{notebook}.verdicts.csv"


def write_verdicts(frame: pd.DataFrame, *, notebook: str, results_dir: str | Path, run: str) -> Path:
    """Write a chapter's verdicts (atomically), stamped with the notebook and the run fingerprint."""
    if not run:
        raise ValueError("write_verdicts needs the run fingerprint (Study.run_id)")
    out = frame.copy()
    out["notebook"] = notebook
    out["run"] = run
    path = verdicts_path(results_dir, notebook)
    atomic_write(path, lambda tmp: out[list(VERDICT_COLUMNS)].to_csv(tmp, index=False))
    return path


def _as_flag(v) -> Any:
    if isinstance(v, str):
        if v == "True":
            return True
        if v == "False":
            return False
        return None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return bool(v)


def read_verdicts(results_dir: str | Path, notebooks: Iterable[str], *, run: str | None = None) -> pd.DataFrame:
    """Read the verdicts tables of ``notebooks`` and check that they come from one run.

    Parameters
    ----------
    results_dir : str or Path
    notebooks : iterable of str
    run : str, optional
        The fingerprint the tables must carry (e.g. the scorecard's own
        settings); default: they must agree with each other.

    Raises
    ------
    ResultsError
        A table is missing or malformed (names the chapter and how to run it).
    MixedRunsError
        The tables carry different run fingerprints: names the chapters of
        each run and the command that re-runs them with one set of parameters.
    """
    notebooks = list(notebooks)
    absent = [nb for nb in notebooks if not verdicts_path(results_dir, nb).exists()]
    if absent:
        # one line naming every missing chapter: what a reader who opened the scorecard alone has to run
        raise ResultsError(f"verdicts of {', '.join(absent)} are missing in {results_dir}/: run chapter(s) "
                           f"{', '.join(absent)} first with the same parameters "
                           f"(python -m helpers.book execute --only {' '.join(absent)})")
    frames = []
    for nb in notebooks:
        path = verdicts_path(results_dir, nb)
        df = pd.read_csv(path, dtype={"method": str, "architecture": str, "rule_text": str, "reason": str,
                                      "run": str, "statistic": str, "passed": object, "passed_unadjusted": object},
                         keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in
                                                           ("value", "ci_low", "ci_high", "p_value", "p_holm",
                                                            "alpha", "n")})
        missing = set(VERDICT_COLUMNS) - set(df.columns)
        if missing:
            raise ResultsError(f"{path} lacks columns {sorted(missing)}; re-run chapter {nb}")
        frames.append(df[list(VERDICT_COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    for col in ("passed", "passed_unadjusted"):
        out[col] = pd.Series([_as_flag(v) for v in out[col]], index=out.index, dtype=object)
    runs = out.groupby("run", sort=False)["notebook"].unique()
    expected = run
    if len(runs) > 1 or (expected is not None and set(runs.index) != {expected}):
        parts = "; ".join(f"run {r or '(none)'}: {', '.join(nbs)}" for r, nbs in runs.items())
        want = f" (this chapter's settings are run {expected})" if expected is not None else ""
        raise MixedRunsError(
            f"the verdicts tables in {results_dir} come from different runs{want} — {parts}. Re-run those "
            f"chapters with one set of parameters: python -m helpers.book execute --only "
            f"{' '.join(dict.fromkeys(out['notebook']))} 05_scorecard [--preset P --param ...]"
        )
    return out
