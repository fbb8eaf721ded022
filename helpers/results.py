"""Tidy result tables: one row per measurement, one CSV per notebook.

Every chapter writes ``<results_dir>/<notebook>.csv`` with the columns of
:data:`COLUMNS`; the scorecard chapter reads only these tables. Writes are
atomic, so an interrupted notebook never leaves a truncated table behind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from helpers._cache import atomic_write

__all__ = ["COLUMNS", "ResultTable", "read_results", "ResultsError"]

#: Columns of every results table, in order.
COLUMNS = ("notebook", "method", "architecture", "replicate", "state", "image_id", "metric", "value")


class ResultsError(ValueError):
    """A results table is missing or malformed."""


class ResultTable:
    """Collects measurements of one notebook and writes them as a tidy CSV.

    Parameters
    ----------
    notebook : str
        Notebook name, e.g. ``"01_localization_utility"``.
    results_dir : str or Path
        Folder of the results tables.

    Examples
    --------
    >>> t = ResultTable("01_localization_utility", "/tmp/results")
    >>> t.add(method="GRAD", metric="average_precision", value=0.31, image_id="p1")
    >>> len(t.frame())
    1
    """

    def __init__(self, notebook: str, results_dir: str | Path) -> None:
        self.notebook = notebook
        self.results_dir = Path(results_dir)
        self._rows: list[dict[str, Any]] = []

    @property
    def path(self) -> Path:
        return self.results_dir / f"{self.notebook}.csv"

    def add(self, *, metric: str, value: float, method: str = "", architecture: str = "",
            replicate: int | str = "", state: str = "", image_id: str = "") -> None:
        """Add one measurement."""
        self._rows.append(
            dict(notebook=self.notebook, method=method, architecture=architecture,
                 replicate=replicate, state=state, image_id=image_id, metric=metric,
                 value=float(value) if value is not None else math.nan)
        )

    def extend(self, frame: pd.DataFrame, **constant: Any) -> None:
        """Add every row of a tidy frame; ``constant`` fills the columns it lacks.

        The frame must carry ``metric`` and ``value``; other columns of
        :data:`COLUMNS` default to ``constant`` or the empty string.
        """
        missing = {"metric", "value"} - set(frame.columns)
        if missing:
            raise ResultsError(f"a results frame needs columns {sorted(missing)}; it has {list(frame.columns)}")
        unknown = set(constant) - set(COLUMNS)
        if unknown:
            raise ResultsError(f"unknown results columns {sorted(unknown)}; valid: {', '.join(COLUMNS)}")
        for rec in frame.to_dict("records"):
            row = {c: constant.get(c, "") for c in COLUMNS}
            row.update({k: v for k, v in rec.items() if k in COLUMNS})
            row["notebook"] = self.notebook
            self._rows.append(row)

    def frame(self) -> pd.DataFrame:
        """The measurements so far as a DataFrame with :data:`COLUMNS`."""
        df = pd.DataFrame(self._rows, columns=list(COLUMNS))
        df["value"] = df["value"].astype(float)
        return df

    def save(self) -> Path:
        """Write the table atomically and return its path."""
        df = self.frame()
        atomic_write(self.path, lambda tmp: df.to_csv(tmp, index=False))
        return self.path


def read_results(results_dir: str | Path, notebooks: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and concatenate results tables.

    Parameters
    ----------
    results_dir : str or Path
        Folder of the tables.
    notebooks : iterable of str, optional
        Which notebooks to read (default: every ``*.csv`` with the results columns).

    Raises
    ------
    ResultsError
        Named tables are missing (the one-line message lists every one and
        the command that writes them) or a table lacks columns.
    """
    results_dir = Path(results_dir)
    if notebooks is None:
        paths = sorted(p for p in results_dir.glob("[0-9][0-9]_*.csv"))
    else:
        paths = [results_dir / f"{nb}.csv" for nb in notebooks]
    absent = [p.stem for p in paths if not p.exists()]
    if absent:
        # one line, all of them: what a reader who opened a later chapter alone (in Colab, say) has to run
        raise ResultsError(f"results of {', '.join(absent)} are missing in {results_dir}/: execute "
                           f"{'that notebook' if len(absent) == 1 else 'those notebooks'} first with the same "
                           f"results_dir (python -m helpers.book execute --only {' '.join(absent)}; "
                           f"in Colab, open and run {'it' if len(absent) == 1 else 'them'})")
    frames = []
    for path in paths:
        df = pd.read_csv(path, dtype={"replicate": str, "image_id": str, "state": str,
                                      "method": str, "architecture": str}, keep_default_na=False,
                         na_values={"value": ["nan", "NaN", ""]})
        missing = set(COLUMNS) - set(df.columns)
        if missing:
            raise ResultsError(f"{path} lacks columns {sorted(missing)}; expected header: {','.join(COLUMNS)}")
        frames.append(df[list(COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out


def summarize(df: pd.DataFrame, by: list[str], *, value: str = "value") -> pd.DataFrame:
    """Mean, median, standard deviation and count of ``value`` per group (NaN-aware)."""
    g = df.groupby(by, sort=False)[value]
    out = g.agg(mean="mean", median="median", std="std", n="count").reset_index()
    return out


def as_records(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy of a mapping (numpy scalars to Python)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in mapping.items()}
