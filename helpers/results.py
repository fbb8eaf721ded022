"""Tidy result tables: one row per measurement, one CSV per notebook.

Every chapter writes ``<results_dir>/<notebook>.csv`` with the columns of
:data:`COLUMNS`; the scorecard chapter reads only these tables. Writes are
atomic, so an interrupted notebook never leaves a truncated table behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from helpers._cache import atomic_write, stable_hash

__all__ = ["COLUMNS", "ResultTable", "read_results", "ResultsError", "MixedRunsError", "code_version",
           "run_fingerprint", "run_path", "RUN_EXCLUDED_SETTINGS"]

#: Settings that do not change a single number of a run and so stay out of its fingerprint.
RUN_EXCLUDED_SETTINGS = ("cache_dir", "results_dir", "device")

#: Columns of every results table, in order.
COLUMNS = ("notebook", "method", "architecture", "replicate", "state", "image_id", "metric", "value")


class ResultsError(ValueError):
    """A results table is missing or malformed."""


class MixedRunsError(ResultsError):
    """Results tables of different runs (other parameters, data or code) were about to be combined."""


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the source of the ``helpers`` package (every ``.py`` file, path and content).

    It changes with any edit of the package, which is what a run's
    fingerprint must notice; it needs no git checkout (a pip-installed
    package in Colab has none).
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_fingerprint(settings, *, data_fingerprint: str) -> dict[str, str]:
    """What identifies one run of the book: preset, settings, data and code.

    Parameters
    ----------
    settings : helpers.config.Settings
    data_fingerprint : str
        :meth:`helpers.data.ImageSet.fingerprint` of the run's whole dataset.

    Returns
    -------
    dict
        ``preset``, ``settings`` (hash of every setting but
        :data:`RUN_EXCLUDED_SETTINGS`), ``data``, ``code``
        (:func:`code_version`) and ``run`` (a hash of the four).
    """
    resolved = {k: v for k, v in settings.as_dict().items() if k not in RUN_EXCLUDED_SETTINGS}
    out = dict(preset=str(settings.preset), settings=stable_hash(resolved), data=str(data_fingerprint),
               code=code_version())
    out["run"] = stable_hash(out, length=12)
    return out


def run_path(results_dir: str | Path, notebook: str) -> Path:
    """``<results_dir>/<notebook>.run.json``: the fingerprint of the run that wrote the table."""
    return Path(results_dir) / f"{notebook}.run.json"


class ResultTable:
    """Collects measurements of one notebook and writes them as a tidy CSV.

    Parameters
    ----------
    notebook : str
        Notebook name, e.g. ``"01_localization_utility"``.
    results_dir : str or Path
        Folder of the results tables.
    run : dict, optional
        The run's fingerprint (:func:`run_fingerprint`), written beside the
        table as ``<notebook>.run.json`` by :meth:`save`.

    Examples
    --------
    >>> t = ResultTable("01_localization_utility", "/tmp/results")
    >>> t.add(method="GRAD", metric="average_precision", value=0.31, image_id="p1")
    >>> len(t.frame())
    1
    """

    def __init__(self, notebook: str, results_dir: str | Path, *, run: Mapping[str, str] | None = None) -> None:
        self.notebook = notebook
        self.results_dir = Path(results_dir)
        self.run = dict(run) if run is not None else None
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
        if self.run is not None:
            text = json.dumps(self.run, indent=1, sort_keys=True)
            atomic_write(run_path(self.results_dir, self.notebook), lambda tmp: tmp.write_text(text))
        return self.path


def read_results(results_dir: str | Path, notebooks: Iterable[str] | None = None, *,
                 run: str | None = None) -> pd.DataFrame:
    """Read and concatenate results tables.

    Parameters
    ----------
    results_dir : str or Path
        Folder of the tables.
    notebooks : iterable of str, optional
        Which notebooks to read (default: every ``*.csv`` with the results columns).
    run : str, optional
        When given, every table's ``<notebook>.run.json`` must carry this run
        id (``run_fingerprint(...)["run"]``).

    Raises
    ------
    ResultsError
        Named tables are missing (the one-line message lists every one and
        the command that writes them) or a table lacks columns.
    MixedRunsError
        ``run`` is given and a table was written by another run.
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
        if run is not None:
            _check_run(path, run)
        frames.append(df[list(COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out


def _check_run(path: Path, run: str) -> None:
    sidecar = run_path(path.parent, path.stem)
    found = json.loads(sidecar.read_text()).get("run") if sidecar.exists() else None
    if found != run:
        raise MixedRunsError(
            f"{path} was written by run {found or '(unknown: no ' + sidecar.name + ')'}, not by this run {run} "
            f"(other parameters, data or code): re-run chapter {path.stem} with this chapter's parameters "
            f"(python -m helpers.book execute --only {path.stem} [--preset P --param ...])"
        )


def summarize(df: pd.DataFrame, by: list[str], *, value: str = "value") -> pd.DataFrame:
    """Mean, median, standard deviation and count of ``value`` per group (NaN-aware)."""
    g = df.groupby(by, sort=False)[value]
    out = g.agg(mean="mean", median="median", std="std", n="count").reset_index()
    return out


def as_records(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy of a mapping (numpy scalars to Python)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in mapping.items()}
