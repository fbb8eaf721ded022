"""Execute the chapter notebooks with papermill, record their timings, and shape the executed copies as pages.

The executed copies (``book/executed/<name>.ipynb``) are what the book
renders; the sources in ``notebooks/`` stay as users open them. Two things
make an executed copy read as a chapter rather than a log:

* The kernels run with ``TQDM_DISABLE=1`` (:data:`KERNEL_ENV`): tqdm >= 4.66
  reads its defaults from ``TQDM_*`` variables, so no progress bar is drawn
  into a cell output. Progress still shows on a terminal and in an
  interactive notebook, where nobody sets the variable.
* The plumbing cells get Jupyter Book tags (:data:`PLUMBING_TAGS`,
  :func:`tag_plumbing`): the Colab cell and the parameters cell are removed
  from the page, papermill's injected-parameters cell is folded behind a
  toggle.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from helpers._cache import atomic_write
from helpers._profile import CHAPTER_ENV
from helpers.book._base import (
    CHAPTERS,
    chapter_needs,
    EXECUTED_DIR,
    NOTEBOOKS_DIR,
    BookError,
    BookInputError,
    CacheChanged,
    NotebookFailed,
    NotebookStructureError,
    _closest,
    _root,
)
from helpers.book.structure import _assigned_names, _colab_cell_index, _parameters_cell, _read_notebook, check_notebook_structure
from helpers.config import NOTEBOOK_PARAMETERS, OVERRIDES_PARAMETER, PRESETS, SETTINGS_FIELDS, default_dirs
from helpers.precompute import CHAPTER_REQUESTS

__all__ = ["NotebookRun", "KERNEL_ENV", "PLUMBING_TAGS", "parse_params", "execute", "tag_plumbing", "cache_snapshot",
           "cache_changes"]

_TIMINGS_COLUMNS = ("notebook", "preset", "seconds", "date")

#: Seconds of each chapter on `default` (fresh clone, 2 cores, 2026-12-01): the order of ``--jobs`` runs
#: when ``timings.csv`` has no record yet (longest first keeps the last lane short).
_SECONDS_HINT: dict[str, float] = {"00_data_and_models": 431, "01_localization_utility": 300,
                                   "02_randomization_sensitivity": 397, "03_repeatability": 146,
                                   "04_reproducibility": 115, "06_trainable_saliency": 469,
                                   "07_counterfactual_inpainting": 255, "08_shortcuts": 150, "05_scorecard": 18}

#: Environment of the papermill kernels: no tqdm bar in any cell output (tqdm >= 4.66 reads ``TQDM_*``).
KERNEL_ENV: dict[str, str] = {"TQDM_DISABLE": "1"}

#: Jupyter Book tags of the plumbing cells in an executed copy. The Colab cell does nothing outside Colab and the
#: parameters cell only lists defaults (``None`` = the preset's), so both are removed from the page; the
#: injected-parameters cell says which preset and overrides produced the page's numbers, so it stays one click
#: away behind a toggle (``hide-cell``) instead of being removed.
PLUMBING_TAGS: dict[str, str] = {"colab": "remove-cell", "parameters": "remove-cell",
                                 "injected-parameters": "hide-cell"}


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook."""

    notebook: str
    seconds: float
    output: Path


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``NAME=VALUE`` strings into notebook parameters.

    Values are YAML literals: ``64`` is an int, ``[smallcnn, resnet18]`` a
    list, ``null`` None, ``/data/rsna`` a string (quote a value that YAML
    would read otherwise, e.g. ``"'no'"``).

    Raises
    ------
    BookInputError
        Malformed item, a name that is neither in
        :data:`helpers.config.NOTEBOOK_PARAMETERS` nor a field of
        :class:`helpers.config.Settings` (the message lists the valid ones),
        ``preset`` (use ``--preset``), or a name given twice.

    Notes
    -----
    Names of :data:`~helpers.config.NOTEBOOK_PARAMETERS` are injected as
    themselves; every other :class:`~helpers.config.Settings` field
    (``epochs``, ``method_settings``, ``model``, ...) is packed into the
    ``overrides`` mapping that every notebook passes to
    :meth:`helpers.study.Study.from_parameters`.
    """
    params: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    settable = NOTEBOOK_PARAMETERS + tuple(n for n in SETTINGS_FIELDS if n not in NOTEBOOK_PARAMETERS)
    for item in items or ():
        if "=" not in item:
            raise BookInputError(f"--param {item!r} must have the form NAME=VALUE, e.g. image_size=64")
        name, text = item.split("=", 1)
        name = name.strip()
        if name == "preset":
            raise BookInputError("the preset is chosen with --preset, not --param preset=...")
        if name == OVERRIDES_PARAMETER:
            raise BookInputError(f"--param {name}=... is not needed: pass each setting as --param NAME=VALUE")
        if name not in settable:
            valid = ", ".join(n for n in settable if n not in ("preset", OVERRIDES_PARAMETER))
            raise BookInputError(f"unknown parameter {name!r}; valid parameters (notebook parameters and every "
                                 f"helpers.config.Settings field): {valid}.{_closest(name, settable)}")
        if name in params or name in overrides:
            raise BookInputError(f"--param {name} is given twice")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise BookInputError(f"--param {item!r}: the value is not a YAML literal ({exc})") from None
        (params if name in NOTEBOOK_PARAMETERS else overrides)[name] = value
    if overrides:
        params[OVERRIDES_PARAMETER] = overrides  # every notebook passes it to Study.from_parameters
    return params


def _plan(root: Path, only: Sequence[str] | None, strict: bool) -> list[str]:
    if only:
        unknown = [n for n in only if n not in CHAPTERS]
        if unknown:
            raise BookInputError(f"unknown chapter(s) {unknown} for --only; chapters: {', '.join(CHAPTERS)}."
                                 f"{_closest(unknown[0], CHAPTERS)}")
    src = root / NOTEBOOKS_DIR
    present = {p.stem for p in src.glob("*.ipynb")} if src.is_dir() else set()
    strays = sorted(present - set(CHAPTERS))
    if strays:
        message = (f"notebooks {strays} in {NOTEBOOKS_DIR}/ are not chapters of the book "
                   f"(add them to helpers.book.CHAPTERS and _toc.yml)")
        if strict:
            raise BookInputError(message)
        print(f"note: {message}; not executed")
    wanted = [n for n in CHAPTERS if not only or n in only]
    missing = [n for n in wanted if n not in present]
    if missing:
        if strict:
            raise BookInputError(f"--strict: chapters {missing} have no source notebook in {src}/")
        for name in missing:
            print(f"note: skipping {name}: {NOTEBOOKS_DIR}/{name}.ipynb is not written yet")
    return [n for n in wanted if n in present]


def _check_parameters_declared(path: Path, params: Mapping[str, Any]) -> int:
    """Index of the parameters cell; every injected name must be declared there."""
    nb = _read_notebook(path)
    found = _parameters_cell(nb)
    if found is None:
        raise NotebookStructureError(f"{path} has no code cell tagged 'parameters': papermill would inject the "
                                     f"parameters at the top, where the notebook's own assignments override them")
    index, cell = found
    names, _ = _assigned_names(cell.source, path)
    undeclared = [n for n in params if n not in names]
    if undeclared:
        raise NotebookStructureError(f"{path}: its parameters cell does not declare {undeclared}; "
                                     f"every notebook declares {', '.join(NOTEBOOK_PARAMETERS)}")
    return index


def _record_timing(path: Path, run: NotebookRun, preset: str) -> None:
    rows: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != _TIMINGS_COLUMNS:
                raise BookError(f"{path} has columns {reader.fieldnames}, expected {list(_TIMINGS_COLUMNS)}; "
                                f"move it away to start a new timings table")
            rows = list(reader)
    rows.append(dict(notebook=run.notebook, preset=preset, seconds=f"{run.seconds:.1f}",
                     date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")))

    def _write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_TIMINGS_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, _write)


def _failure_message(name: str, src: Path, out: Path, exc: Exception, param_index: int) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # The executed copy has the injected-parameters cell right after the parameters cell.
        index = exc.cell_index - 1 if exc.cell_index > param_index + 1 else exc.cell_index
        first = next((line for line in str(exc.source).splitlines() if line.strip()), "")
        return (f"notebook {name} failed in cell {index + 1} of {src} (In [{exc.exec_count}], "
                f"starting {first.strip()!r}): {exc.ename}: {exc.evalue}\n"
                f"The partially executed copy is {out}; open it to see the traceback.")
    return (f"notebook {name} failed: {type(exc).__name__}: {exc}\n"
            f"The partially executed copy (if any) is {out}.")


def execute(
    *,
    preset: str = "default",
    params: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
    strict: bool = False,
    out: str | os.PathLike = EXECUTED_DIR,
    root: str | os.PathLike | None = None,
    kernel: str = "python3",
    progress: bool = True,
    timeout: int | None = None,
    jobs: int = 1,
    after_precompute: bool = False,
) -> list[NotebookRun]:
    """Execute the chapter notebooks with papermill, in :data:`CHAPTERS` order (or ``jobs`` at a time).

    Parameters
    ----------
    preset : {"smoke", "default", "paper"}
        Injected as ``preset`` into every notebook.
    params : mapping, optional
        More notebook parameters (names of :data:`helpers.config.NOTEBOOK_PARAMETERS`);
        their values are validated by each notebook's ``helpers.config.resolve`` call.
    only : sequence of str, optional
        Run these chapters only (still in execution order).
    strict : bool
        Every planned chapter must exist and pass :func:`check_notebook_structure`;
        otherwise a missing notebook is skipped with a note.
    out : path
        Folder of the executed copies, relative to ``root`` (default ``book/executed``).
    root : path, optional
        Repository root (default: the current folder); the kernels run there.
    kernel : str
        Jupyter kernel name.
    progress : bool
        papermill's per-cell progress bar.
    timeout : int, optional
        Seconds a cell may run (default: no limit).
    jobs : int, optional
        Chapters run side by side (default 1: one after the other). With
        ``jobs > 1`` chapter 00 runs first and alone, the scorecard last, and
        the chapters in between ``jobs`` at a time (:func:`~helpers.book._base.chapter_needs`),
        longest first by the last recorded timings of this preset. Each
        kernel gets ``OMP_NUM_THREADS`` = the cores (``$OMP_NUM_THREADS`` or
        all) divided by the chapters running beside it, and all of them when
        it runs alone. Chapters that need the same model or maps wait for
        each other on the cache entry's lock (:func:`helpers._cache.entry_lock`)
        instead of computing it twice, so the results are those of a serial
        run. No per-cell progress bar is drawn then.
    after_precompute : bool, optional
        The cache was filled by ``python -m helpers.book precompute`` with the
        same preset and parameters: first the chapters that
        :data:`helpers.precompute.CHAPTER_REQUESTS` plans are run, and
        :class:`CacheChanged` is raised, naming the files, if they added or
        changed any file in ``cache_dir`` (they trained or computed what the
        plan misses); then the other chapters (the shortcuts chapter, which
        trains its own small models, and the scorecard).

    The kernels run with :data:`KERNEL_ENV` added to the environment (no
    progress bars in the pages) and every executed copy gets
    :data:`PLUMBING_TAGS` (:func:`tag_plumbing`).

    Returns
    -------
    list of NotebookRun
        The executed notebooks with their wall time, also appended to
        ``<results_dir>/timings.csv`` (``notebook, preset, seconds, date``).

    Raises
    ------
    BookInputError
        Unknown preset, parameter or chapter; a missing notebook in strict mode.
    NotebookStructureError
        A notebook without a parameters cell declaring the injected names
        (or, in strict mode, not following the chapter structure).
    NotebookFailed
        A cell raised; the message names the notebook and the cell, and the
        partially executed copy stays in ``out`` for inspection.
    CacheChanged
        With ``after_precompute``: a planned chapter added or changed a cache file.
    """
    root = _root(root)
    if preset not in PRESETS:
        raise BookInputError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}.{_closest(preset, PRESETS)}")
    params = dict(params or {})
    bad = [n for n in params if n not in NOTEBOOK_PARAMETERS or n == "preset"]
    if bad:
        raise BookInputError(f"unknown notebook parameter(s) {bad}; valid: "
                             f"{', '.join(n for n in NOTEBOOK_PARAMETERS if n != 'preset')}")
    wall_start = time.perf_counter()
    plan = _plan(root, only, strict)
    src_dir = root / NOTEBOOKS_DIR
    out_dir = root / out
    injected = {"preset": preset, **params}
    param_index = {}
    for name in plan:  # fail before running anything
        if strict:
            check_notebook_structure(src_dir / f"{name}.ipynb")
        param_index[name] = _check_parameters_declared(src_dir / f"{name}.ipynb", injected)
    timings_path = _folder(params, "results_dir", root) / "timings.csv"
    if not plan:
        print(f"nothing to execute: no chapter notebook in {src_dir}/")
        return []

    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = _check_jobs(jobs)
    cores = _cores()
    print(f"executing {len(plan)} notebook(s) with preset={preset!r}"
          + (f" and {params}" if params else "") + f" -> {out_dir}"
          + (f", {jobs} at a time on {cores} core(s)" if jobs > 1 else ""))
    order = _longest_first(plan, timings_path, preset)
    runs: dict[str, NotebookRun] = {}

    def finished(name: str, seconds: float) -> None:
        run = NotebookRun(name, seconds, out_dir / f"{name}.ipynb")
        _record_timing(timings_path, run, preset)  # only this process writes the table
        runs[name] = run
        print(f"[{name}] done in {run.seconds:.1f} s", flush=True)

    job = dict(src_dir=str(src_dir), out_dir=str(out_dir), injected=injected, kernel=kernel, root=str(root),
               timeout=timeout)

    def run(names: Sequence[str]) -> None:
        if jobs == 1:
            for name in names:
                print(f"[{name}]", flush=True)
                finished(name, _run_notebook(name, progress=progress, env=dict(KERNEL_ENV),
                                             param_index=param_index[name], **job))
        else:
            _run_side_by_side([n for n in order if n in names], jobs=jobs, cores=cores, job=job,
                              param_index=param_index, finished=finished)

    if after_precompute:
        planned = [n for n in plan if n in CHAPTER_REQUESTS]
        cache_dir = _folder(params, "cache_dir", root)
        before = cache_snapshot(cache_dir)
        run(planned)
        changed = cache_changes(before, cache_snapshot(cache_dir))
        if changed:
            raise CacheChanged(
                f"after `precompute`, the chapters {', '.join(planned)} added or changed {len(changed)} file(s) in "
                f"{cache_dir}/ (e.g. {', '.join(changed[:5])}): they trained or computed what the plan of "
                "helpers.precompute.CHAPTER_REQUESTS misses, or `precompute` ran with other parameters than "
                "these. Run `python -m helpers.book precompute` with the same --preset and --param first.")
        print(f"after precompute: the chapters {', '.join(planned)} changed nothing in {cache_dir}/", flush=True)
        run([n for n in plan if n not in CHAPTER_REQUESTS])
    else:
        run(plan)
    ordered = [runs[n] for n in plan if n in runs]
    total = sum(r.seconds for r in ordered)
    width = max(len(r.notebook) for r in ordered)
    print(f"\n{'notebook':<{width}}  seconds")
    for r in ordered:
        print(f"{r.notebook:<{width}}  {r.seconds:7.1f}")
    print(f"{'total':<{width}}  {total:7.1f}   (timings appended to {timings_path})")
    if jobs > 1:
        print(f"{'wall':<{width}}  {time.perf_counter() - wall_start:7.1f}   ({jobs} chapters at a time)")
    return ordered


def _folder(params: Mapping[str, Any], name: str, root: Path) -> Path:
    """The folder parameter ``name`` (``cache_dir``, ``results_dir``) the kernels will use, relative paths under ``root``."""
    folder = Path(params.get(name) or default_dirs()[name])
    return folder if folder.is_absolute() else root / folder


def cache_snapshot(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (relative path) with its modification time (ns) and size; ``{}`` if absent."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


def cache_changes(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]) -> list[str]:
    """Sorted paths of ``after`` that are new or whose time or size differ from ``before`` (removals are not changes).

    Lock files (``.<entry>.lock``, :func:`helpers._cache.entry_lock`) are left out: taking a lock writes no result.
    """
    return sorted(p for p, stamp in after.items()
                  if before.get(p) != stamp and not Path(p).name.endswith(".lock"))


def _check_jobs(jobs: Any) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BookInputError(f"--jobs must be a positive integer (chapters run side by side), got {jobs!r}")
    return jobs


def _cores() -> int:
    """Cores the kernels may use: ``$OMP_NUM_THREADS`` when set, else all of this machine's."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise BookInputError(f"OMP_NUM_THREADS={text!r} is not an integer; unset it or give a core count") from None
        if value >= 1:
            return value
    return os.cpu_count() or 1


def _longest_first(plan: Sequence[str], timings_path: Path, preset: str) -> list[str]:
    """``plan`` longest first: the last recorded seconds of each chapter on ``preset``, else :data:`_SECONDS_HINT`."""
    last: dict[str, float] = {}
    if timings_path.exists():
        with timings_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("preset") == preset:
                    try:
                        last[row["notebook"]] = float(row["seconds"])
                    except (KeyError, TypeError, ValueError):
                        continue
    hint = {n: last.get(n, _SECONDS_HINT.get(n, 0.0)) for n in plan}
    return sorted(plan, key=lambda n: -hint[n])


def _run_notebook(name: str, *, src_dir: str, out_dir: str, injected: Mapping[str, Any], kernel: str, root: str,
                  timeout: int | None, progress: bool, env: Mapping[str, str], param_index: int) -> float:
    """Execute one chapter with papermill (in this process's environment plus ``env``); its wall seconds."""
    import papermill as pm  # the book extra: only `execute` needs it

    src, dst = Path(src_dir) / f"{name}.ipynb", Path(out_dir) / f"{name}.ipynb"
    start = time.perf_counter()
    try:
        with _environment({**env, CHAPTER_ENV: name}):  # the kernel inherits this process's environment
            pm.execute_notebook(str(src), str(dst), parameters=dict(injected), kernel_name=kernel, cwd=root,
                                progress_bar=progress, log_output=False, request_save_on_cell_execute=True,
                                execution_timeout=timeout)
    except Exception as exc:  # papermill / nbclient raise several types; all are reported alike
        raise NotebookFailed(_failure_message(name, src, dst, exc, param_index)) from exc
    _tag_executed_copy(dst)
    return time.perf_counter() - start


def _run_side_by_side(order: Sequence[str], *, jobs: int, cores: int, job: Mapping[str, Any],
                      param_index: Mapping[str, int], finished) -> None:
    """Run the chapters of ``order`` ``jobs`` at a time, each in its own process, respecting :func:`chapter_needs`.

    Each chapter runs in a fresh process (``spawn``) so that its kernel
    inherits its own ``OMP_NUM_THREADS``; the first failure stops new starts,
    lets the running chapters finish and is raised.
    """
    import concurrent.futures as cf
    import multiprocessing

    pending = list(order)
    needs = {n: set(chapter_needs(n, order)) for n in order}
    done: set[str] = set()
    failure: BaseException | None = None
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: dict[cf.Future, str] = {}
        while pending or running:
            ready = [n for n in pending if needs[n] <= done] if failure is None else []
            while ready and len(running) < jobs:
                name = ready.pop(0)
                pending.remove(name)
                alongside = min(jobs, len(running) + 1 + len(ready))
                threads = max(1, cores // alongside)
                env = {**KERNEL_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
                print(f"[{name}] started ({threads} thread(s))", flush=True)
                running[pool.submit(_run_notebook, name, progress=False, env=env, param_index=param_index[name],
                                    **job)] = name
            if not running:
                break
            complete, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in complete:
                name = running.pop(future)
                try:
                    seconds = future.result()
                except BaseException as exc:  # noqa: BLE001 - re-raised once the running chapters are done
                    print(f"[{name}] FAILED", flush=True)
                    failure = failure or exc
                    continue
                done.add(name)
                finished(name, seconds)
    if failure is not None:
        raise failure
    skipped = [n for n in order if n not in done]
    if skipped:
        raise BookError(f"chapters {skipped} were not run: a chapter they need did not finish")


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set inside the block, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def tag_plumbing(nb) -> list[int]:
    """Tag the plumbing cells of an executed notebook with :data:`PLUMBING_TAGS` (in place).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed copy: the Colab cell, the cell tagged ``parameters`` and
        papermill's cell tagged ``injected-parameters``.

    Returns
    -------
    list of int
        Indices of the cells that got a tag (a tag already there is not repeated).
    """
    targets: list[tuple[int, str]] = []
    colab = _colab_cell_index(nb.cells)
    if colab is not None:
        targets.append((colab, PLUMBING_TAGS["colab"]))
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        for role in ("parameters", "injected-parameters"):
            if role in tags:
                targets.append((index, PLUMBING_TAGS[role]))
    tagged = []
    for index, tag in targets:
        tags = nb.cells[index].setdefault("metadata", {}).setdefault("tags", [])
        if tag not in tags:
            tags.append(tag)
            tagged.append(index)
    return sorted(tagged)


def _tag_executed_copy(path: Path) -> None:
    import nbformat  # the book extra, like papermill

    nb = nbformat.read(str(path), as_version=4)
    if tag_plumbing(nb):
        atomic_write(path, lambda tmp: nbformat.write(nb, str(tmp)))
