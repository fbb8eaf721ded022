"""Execute the book's notebooks with papermill, build the HTML book and check it in a browser.

Command line (``python -m helpers.book --help``)::

    python -m helpers.book execute --preset smoke [--param NAME=VALUE ...] [--only NAME ...] [--strict]
    python -m helpers.book html [--strict]
    python -m helpers.book check [--html _build/html]
    python -m helpers.book structure notebooks/*.ipynb

``execute`` runs the parameterized sources ``notebooks/<name>.ipynb`` in
:data:`CHAPTERS` order (the scorecard last: it reads every other chapter's
results table) and writes the executed copies to ``book/executed/``; ``html``
renders them with Jupyter Book 1.x (execution off: papermill already ran);
``check`` opens every built page in headless Chromium and fails on a page
that does not load, a notebook error, a broken image or a chapter without a
figure; ``structure`` checks the sources against the layout below.

Structure of a chapter notebook
-------------------------------
Every notebook in ``notebooks/`` follows the Project Pythia cookbook layout,
so that a reader always finds the same things in the same place, and
:func:`check_notebook_structure` enforces it (the test suite runs it on every
notebook):

1. A markdown cell starting with the chapter title as a level-1 heading
   (``# Localization utility``); Jupyter Book takes the page title from it.
2. ``## Overview`` -- what the chapter asks and answers, in a few bullets.
3. ``## Prerequisites`` -- a markdown table of concepts (with links to
   earlier chapters), their importance (necessary / helpful) and the time the
   chapter takes on each preset.
4. The Colab cell, a code cell that installs the book's package only when the
   notebook runs in Google Colab (on our machines and in CI it does nothing)::

       import sys

       if "google.colab" in sys.modules:  # running in Colab: install the book's helpers
           %pip install --quiet "saliency-trust-book @ git+https://github.com/saliency-trust-book/saliency-trust-book"

   (:func:`colab_cell_source` returns this text; a fork changes the URL.)
5. The parameters cell: a code cell tagged ``parameters`` that assigns
   exactly the names of :data:`helpers.config.NOTEBOOK_PARAMETERS` and
   nothing else, ``preset = "default"`` and every other one ``None`` (= the
   preset's value)::

       preset = "default"
       dataset = None
       ...

   papermill injects the values given to ``execute`` in a cell tagged
   ``injected-parameters`` right after it. The next code cell calls
   ``settings = helpers.config.resolve(preset, dataset=dataset, ...)``.
6. Imports, then the chapter's sections (``##`` headings), each a question,
   the code that answers it and a figure or table with the answer in words.
   Results go to ``results/<notebook>.csv`` (tidy, see CONTRIBUTING.md) and
   figures to ``results/figures/`` via :func:`helpers.plots.save_figure`.
7. ``## Summary`` -- what was found, on which data and preset, with its
   limits; optionally ``### What's next``.
8. ``## Resources`` -- papers (``{cite:p}`` keys of ``book/references.bib``),
   library documentation, the code in ``helpers/``.

Sources are stored without outputs (``execution_count`` None, no outputs);
executed copies are generated and not kept in git.
"""

from __future__ import annotations

import argparse
import ast
import base64
import binascii
import csv
import datetime as _dt
import difflib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from helpers._cache import atomic_write
from helpers.config import NOTEBOOK_PARAMETERS, PRESETS, Settings

__all__ = [
    "CHAPTERS",
    "EXECUTED_DIR",
    "NOTEBOOKS_DIR",
    "REPOSITORY_URL",
    "PACKAGE_SPEC",
    "CHROMIUM_FLAGS",
    "BookError",
    "BookInputError",
    "NotebookStructureError",
    "NotebookFailed",
    "BuildFailed",
    "CheckFailed",
    "NotebookRun",
    "PageReport",
    "parse_params",
    "execute",
    "html",
    "check",
    "check_notebook_structure",
    "colab_cell_source",
    "available_toc",
    "main",
]

#: The chapters in EXECUTION order: the scorecard reads every other chapter's table, so it runs last.
CHAPTERS: tuple[str, ...] = (
    "00_data_and_models",
    "01_localization_utility",
    "02_randomization_sensitivity",
    "03_repeatability",
    "04_reproducibility",
    "06_trainable_saliency",
    "07_counterfactual_inpainting",
    "05_scorecard",
)

#: Where the parameterized sources live (relative to the repository root).
NOTEBOOKS_DIR = "notebooks"
#: Where the executed copies go; ``_toc.yml`` refers to them.
EXECUTED_DIR = "book/executed"
#: The book's repository (launch buttons, Colab install). A fork changes it here and in ``_config.yml``.
REPOSITORY_URL = "https://github.com/saliency-trust-book/saliency-trust-book"
#: What the Colab cell installs.
PACKAGE_SPEC = f"saliency-trust-book @ git+{REPOSITORY_URL}"

#: Headless Chromium on a machine without network: no GPU, no background traffic, fresh profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

_REQUIRED_HEADINGS = ("Overview", "Prerequisites", "Summary", "Resources")
_TIMINGS_COLUMNS = ("notebook", "preset", "seconds", "date")


class BookError(Exception):
    """A step of the book pipeline failed; the message says which and what to do."""


class BookInputError(BookError, ValueError):
    """A bad argument: unknown parameter, preset or chapter, missing folder."""


class NotebookStructureError(BookInputError):
    """A source notebook does not follow the chapter structure (see the module docstring)."""


class NotebookFailed(BookError):
    """A notebook raised while papermill executed it."""


class BuildFailed(BookError):
    """``jupyter-book build`` failed (or, in strict mode, warned)."""


class CheckFailed(BookError):
    """A built page failed the browser check."""


# --------------------------------------------------------------------------
# helpers

def _root(root: str | os.PathLike | None) -> Path:
    """The repository root: ``root`` or the current folder; it must hold ``_config.yml``."""
    path = Path(root) if root is not None else Path.cwd()
    path = path.resolve()
    if not (path / "_config.yml").is_file():
        raise BookInputError(f"{path} is not the book's repository root (no _config.yml there); "
                             f"run from the repository root or pass --root")
    return path


def _closest(name: str, valid: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise BookInputError(f"notebook {path} does not exist") from None
    except Exception as exc:  # nbformat raises several types for unreadable JSON
        raise NotebookStructureError(f"{path} is not a readable Jupyter notebook: {exc}") from exc


def _parameters_cell(nb) -> tuple[int, Any] | None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return index, cell
    return None


def _assigned_names(source: str, path: Path) -> tuple[list[str], list[str]]:
    """Names assigned at top level of a parameters cell, and the statements that are not assignments."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookStructureError(f"{path}: the parameters cell is not valid Python: {exc}") from exc
    names: list[str] = []
    other: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            names.extend(t.id for t in node.targets)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names.append(node.target.id)
        else:
            other.append(ast.get_source_segment(source, node) or type(node).__name__)
    return names, other


# --------------------------------------------------------------------------
# notebook structure

def colab_cell_source() -> str:
    """Source of the Colab cell every chapter carries (installs the package in Colab only)."""
    return (
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:  # running in Colab: install the book\'s helpers\n'
        f'    %pip install --quiet "{PACKAGE_SPEC}"'
    )


def check_notebook_structure(path: str | os.PathLike) -> None:
    """Check a source notebook against the chapter structure (see the module docstring).

    Checks: a level-1 title heading in the first cell; ``## Overview``,
    ``## Prerequisites`` (with a table), ``## Summary`` and ``## Resources``
    headings; the Colab cell installing :data:`PACKAGE_SPEC`; one code cell tagged ``parameters`` that
    assigns exactly :data:`helpers.config.NOTEBOOK_PARAMETERS` and nothing
    else; no stored outputs or execution counts.

    Parameters
    ----------
    path : str or Path
        A notebook of ``notebooks/``.

    Raises
    ------
    NotebookStructureError
        Listing every problem found, with the notebook's path.
    """
    path = Path(path)
    nb = _read_notebook(path)
    problems: list[str] = []
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not re.match(r"^#\s+\S", cells[0].source.lstrip()):
        problems.append("the first cell must be a markdown cell starting with the title as a level-1 "
                        "heading ('# Title')")
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    for heading in _REQUIRED_HEADINGS:
        pattern = re.compile(rf"^#{{2,3}}\s+{heading}\b", re.MULTILINE)
        hits = [src for src in markdown if pattern.search(src)]
        if not hits:
            problems.append(f"no '## {heading}' heading")
        elif heading == "Prerequisites" and not any(re.search(r"^\s*\|.*\|\s*$", src, re.MULTILINE) for src in hits):
            problems.append("the Prerequisites section has no markdown table (| Concepts | Importance | Notes |)")
    colab = [c for c in cells if c.cell_type == "code" and "google.colab" in c.source
             and re.search(r"[%!]\s*pip\s+install", c.source)]
    if not colab:
        problems.append("no Colab cell (a code cell: if \"google.colab\" in sys.modules: %pip install ...); "
                        "see helpers.book.colab_cell_source()")
    elif PACKAGE_SPEC not in colab[0].source:
        # a fork that changed REPOSITORY_URL learns here which notebooks still install the old package
        problems.append(f"the Colab cell does not install {PACKAGE_SPEC!r} (helpers.book.REPOSITORY_URL); "
                        f"use helpers.book.colab_cell_source()")
    tagged = [(i, c) for i, c in enumerate(cells)
              if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"expected exactly one cell tagged 'parameters', found {len(tagged)}")
    else:
        index, cell = tagged[0]
        if cell.cell_type != "code":
            problems.append("the cell tagged 'parameters' must be a code cell")
        else:
            try:
                names, other = _assigned_names(cell.source, path)
            except NotebookStructureError as exc:
                problems.append(str(exc).split(": ", 1)[-1])
            else:
                expected = list(NOTEBOOK_PARAMETERS)
                missing = [n for n in expected if n not in names]
                extra = [n for n in names if n not in expected]
                doubled = sorted({n for n in names if names.count(n) > 1})
                if missing:
                    problems.append(f"the parameters cell lacks {missing}")
                if extra:
                    problems.append(f"the parameters cell assigns names that are not notebook parameters: "
                                    f"{extra} (valid: {', '.join(expected)})")
                if doubled:
                    problems.append(f"the parameters cell assigns {doubled} more than once")
                if other:
                    problems.append(f"the parameters cell must hold assignments only, found: {other}")
        if colab and cells.index(colab[0]) > index:
            problems.append("the Colab cell must come before the parameters cell (it installs what the "
                            "notebook imports)")
    with_outputs = [i for i, c in enumerate(cells) if c.cell_type == "code"
                    and (c.get("outputs") or c.get("execution_count") is not None)]
    if with_outputs:
        problems.append(f"cells {with_outputs} store outputs or execution counts; clear them "
                        f"(sources are kept without outputs)")
    if problems:
        raise NotebookStructureError(f"{path} does not follow the chapter structure:\n  - "
                                     + "\n  - ".join(problems))


# --------------------------------------------------------------------------
# execute

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
        Malformed item, a name that is not in
        :data:`helpers.config.NOTEBOOK_PARAMETERS` (the message lists the
        valid ones), ``preset`` (use ``--preset``), or a name given twice.
    """
    params: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise BookInputError(f"--param {item!r} must have the form NAME=VALUE, e.g. image_size=64")
        name, text = item.split("=", 1)
        name = name.strip()
        if name == "preset":
            raise BookInputError("the preset is chosen with --preset, not --param preset=...")
        if name not in NOTEBOOK_PARAMETERS:
            valid = ", ".join(n for n in NOTEBOOK_PARAMETERS if n != "preset")
            raise BookInputError(f"unknown notebook parameter {name!r}; valid parameters: {valid}."
                                 f"{_closest(name, NOTEBOOK_PARAMETERS)}")
        if name in params:
            raise BookInputError(f"--param {name} is given twice")
        try:
            params[name] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise BookInputError(f"--param {item!r}: the value is not a YAML literal ({exc})") from None
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
) -> list[NotebookRun]:
    """Execute the chapter notebooks with papermill, in :data:`CHAPTERS` order.

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
    """
    root = _root(root)
    if preset not in PRESETS:
        raise BookInputError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}.{_closest(preset, PRESETS)}")
    params = dict(params or {})
    bad = [n for n in params if n not in NOTEBOOK_PARAMETERS or n == "preset"]
    if bad:
        raise BookInputError(f"unknown notebook parameter(s) {bad}; valid: "
                             f"{', '.join(n for n in NOTEBOOK_PARAMETERS if n != 'preset')}")
    plan = _plan(root, only, strict)
    src_dir = root / NOTEBOOKS_DIR
    out_dir = root / out
    injected = {"preset": preset, **params}
    param_index = {}
    for name in plan:  # fail before running anything
        if strict:
            check_notebook_structure(src_dir / f"{name}.ipynb")
        param_index[name] = _check_parameters_declared(src_dir / f"{name}.ipynb", injected)
    results_dir = Path(params.get("results_dir") or Settings.results_dir)
    timings_path = (root / results_dir / "timings.csv") if not results_dir.is_absolute() else results_dir / "timings.csv"
    if not plan:
        print(f"nothing to execute: no chapter notebook in {src_dir}/")
        return []

    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    print(f"executing {len(plan)} notebook(s) with preset={preset!r}"
          + (f" and {params}" if params else "") + f" -> {out_dir}")
    for name in plan:
        src = src_dir / f"{name}.ipynb"
        dst = out_dir / f"{name}.ipynb"
        print(f"[{name}]", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(src), str(dst), parameters=injected, kernel_name=kernel, cwd=str(root),
                                progress_bar=progress, log_output=False, request_save_on_cell_execute=True,
                                execution_timeout=timeout)
        except Exception as exc:  # papermill / nbclient raise several types; all are reported alike
            raise NotebookFailed(_failure_message(name, src, dst, exc, param_index[name])) from exc
        run = NotebookRun(name, time.perf_counter() - start, dst)
        _record_timing(timings_path, run, preset)
        runs.append(run)
        print(f"[{name}] done in {run.seconds:.1f} s", flush=True)
    total = sum(r.seconds for r in runs)
    width = max(len(r.notebook) for r in runs)
    print(f"\n{'notebook':<{width}}  seconds")
    for r in runs:
        print(f"{r.notebook:<{width}}  {r.seconds:7.1f}")
    print(f"{'total':<{width}}  {total:7.1f}   (timings appended to {timings_path})")
    return runs


# --------------------------------------------------------------------------
# html

def _toc_files(toc: Any) -> list[str]:
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def _prune(node: Any, missing: set[str]) -> Any:
    """Copy of a TOC node without the entries whose ``file`` is in ``missing`` and without emptied parts."""
    if isinstance(node, list):
        out = []
        for item in node:
            if isinstance(item, dict) and item.get("file") in missing:
                continue
            pruned = _prune(item, missing)
            if isinstance(item, dict) and ("chapters" in item or "sections" in item) and "file" not in item:
                key = "chapters" if "chapters" in item else "sections"
                if not pruned.get(key):
                    continue
            out.append(pruned)
        return out
    if isinstance(node, dict):
        return {k: _prune(v, missing) if isinstance(v, (list, dict)) else v for k, v in node.items()}
    return node


def available_toc(root: str | os.PathLike | None = None) -> tuple[dict, list[str]]:
    """The TOC of ``_toc.yml`` restricted to executed chapters that exist, and the missing ones.

    Returns
    -------
    toc : dict
        ``_toc.yml`` without the entries under ``book/executed/`` whose
        notebook is absent (and without parts left empty).
    missing : list of str
        Chapter names whose executed notebook is absent.
    """
    root = _root(root)
    toc_path = root / "_toc.yml"
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BookInputError(f"cannot read {toc_path}: {exc}") from None
    executed = [f for f in _toc_files(toc) if f.startswith(EXECUTED_DIR + "/")]
    missing_files = {f for f in executed if not (root / f"{f}.ipynb").is_file()}
    missing = [Path(f).name for f in executed if f in missing_files]
    return (_prune(toc, missing_files) if missing_files else toc), missing


def _jupyter_book_command(root: Path, *, toc: Path | None, strict: bool) -> list[str]:
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(root),
           "--builder", "html"]
    if toc is not None:
        cmd += ["--toc", str(toc)]
    if strict:
        # -n: every unresolved cross-reference warns; --all: warnings of unchanged pages come back.
        cmd += ["-W", "--keep-going", "-n", "--all"]
    return cmd


def html(*, strict: bool = False, root: str | os.PathLike | None = None) -> Path:
    """Build the HTML book with Jupyter Book 1.x into ``<root>/_build/html``.

    Notebooks are not executed (``execute_notebooks: off``): run
    :func:`execute` first.

    Parameters
    ----------
    strict : bool
        Every chapter of ``_toc.yml`` must have its executed notebook, and
        Sphinx warnings are errors (``-W --keep-going -n``, full rebuild).
        Otherwise missing chapters are left out of a TOC copy written to
        ``_build/_toc.available.yml`` and named on the console.
    root : path, optional
        Repository root (default: the current folder).

    Returns
    -------
    Path
        The HTML folder.

    Raises
    ------
    BookInputError
        Strict mode with missing executed notebooks.
    BuildFailed
        ``jupyter-book build`` exited non-zero (its output names the pages).
    """
    root = _root(root)
    toc, missing = available_toc(root)
    toc_arg: Path | None = None
    if missing:
        if strict:
            raise BookInputError(f"--strict: executed notebooks missing for {missing} in {root / EXECUTED_DIR}; "
                                 f"run `python -m helpers.book execute` first")
        toc_arg = root / "_build" / "_toc.available.yml"
        text = ("# Generated by `python -m helpers.book html`: _toc.yml without the chapters whose\n"
                f"# executed notebook is missing ({', '.join(missing)}).\n"
                + yaml.safe_dump(toc, sort_keys=False))
        atomic_write(toc_arg, lambda tmp: tmp.write_text(text))
        print(f"note: building without {len(missing)} chapter(s) not executed yet: {', '.join(missing)}")
    cmd = _jupyter_book_command(root, toc=toc_arg, strict=strict)
    print("$ jupyter-book " + " ".join(cmd[4:]), flush=True)
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise BuildFailed(f"jupyter-book build failed (exit {proc.returncode})"
                          + (" with warnings as errors" if strict else "")
                          + "; the messages above name the pages and lines")
    out = root / "_build" / "html"
    print(f"book built: {out / 'index.html'}")
    return out


# --------------------------------------------------------------------------
# check

@dataclass
class PageReport:
    """What the browser check found on one page."""

    page: str
    images: int = 0
    figures: int = 0
    chapter: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class _DomParser(HTMLParser):
    """Collects what the check needs from a rendered DOM: images, error outputs, figures."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, frozenset[str]]] = []
        self.images: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stderr_text: list[str] = []
        self.title = ""
        self.has_main = False
        self.browser_error = False
        self._in_title = False
        self._capture: list[list[str]] = []  # text buffers of open error/stderr outputs

    _VOID = {"img", "br", "hr", "meta", "link", "input", "source", "area", "base", "col", "embed", "wbr", "track"}

    def _classes(self) -> set[str]:
        out: set[str] = set()
        for _, classes in self.stack:
            out |= classes
        return out

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = frozenset((a.get("class") or "").split())
        if tag == "title":
            self._in_title = True
        if tag == "main":
            self.has_main = True
        if a.get("id") in ("main-frame-error", "sub-frame-error"):
            self.browser_error = True
        if a.get("id") == "papermill-error-cell":
            self.errors.append("papermill error marker: the notebook stopped on an exception")
        if tag == "img":
            inside = self._classes()
            self.images.append(dict(src=a.get("src"), alt=a.get("alt") or "",
                                    output="cell_output" in inside or "output" in inside,
                                    in_article="bd-article" in inside or "bd-content" in inside))
            return
        if tag in self._VOID:
            return
        self.stack.append((tag, classes))
        if "traceback" in classes or ("output" in classes and "error" in classes):
            self.errors.append("a notebook error output (traceback)")
        if "stderr" in classes:
            self._capture.append([])

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self._VOID:
            return
        # pop to the matching tag (the DOM from Chromium is well formed; be tolerant anyway)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                for _, classes in self.stack[i:]:
                    if "stderr" in classes and self._capture:
                        self.stderr_text.append("".join(self._capture.pop()))
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        for buf in self._capture:
            buf.append(data)


def _decode_image(data: bytes, what: str) -> str | None:
    """None when ``data`` is a decodable image, else the reason."""
    if not data:
        return f"{what} is empty"
    head = data[:512].lstrip()
    if head.startswith(b"<") and (b"<svg" in data[:4096] or head.startswith(b"<?xml")):
        import xml.etree.ElementTree as ET

        try:
            tag = ET.fromstring(data).tag
        except ET.ParseError as exc:
            return f"{what} is not valid SVG ({exc})"
        return None if tag.endswith("svg") else f"{what} is XML but not SVG (<{tag}>)"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.width < 1 or im.height < 1:
                return f"{what} has no pixels"
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return f"{what} is not a decodable image ({exc})"
    return None


def _check_img(src: str | None, page: Path, html_dir: Path) -> str | None:
    if src is None or not src.strip():
        return "an <img> has no or an empty src"
    src = src.strip()
    if src.startswith("data:"):
        header, _, payload = src.partition(",")
        try:
            data = base64.b64decode(payload, validate=True) if ";base64" in header else \
                urllib.parse.unquote_to_bytes(payload)
        except (binascii.Error, ValueError) as exc:
            return f"inline image {header[:40]} does not decode ({exc})"
        return _decode_image(data, f"inline image {header[:40]}")
    parsed = urllib.parse.urlparse(src)
    if parsed.scheme in ("http", "https"):
        return f"image {src} is remote; the book must be readable offline"
    if parsed.scheme not in ("", "file"):
        return f"image {src} has an unsupported scheme"
    target = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme == "file" else \
        (page.parent / urllib.parse.unquote(parsed.path))
    target = target.resolve()
    if not target.is_file():
        return f"image {src} is missing ({target})"
    return _decode_image(target.read_bytes(), f"image {src}")


def _find_chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return found
    cmd = "apt-get update && apt-get install -y chromium"
    if os.name != "posix" or os.geteuid() != 0:
        raise BookError(f"headless Chromium is needed for the check and is not installed; "
                        f"install Debian's package as root: {cmd}")
    print(f"Chromium is not installed; installing Debian's package: {cmd}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}  # no debconf prompt in CI
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        print("$ " + " ".join(step), flush=True)
        if subprocess.run(step, env=env).returncode != 0:
            raise BookError(f"`{' '.join(step)}` failed; install Chromium by hand ({cmd})")
    found = shutil.which("chromium")
    if not found:
        raise BookError("apt-get installed chromium but no `chromium` command is on PATH")
    return found


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(html_dir).parts))


_REFRESH_RE = re.compile(r"""<meta\s+http-equiv=["']?refresh["']?\s+content=["']?\s*\d+\s*;\s*url=([^"'>\s]+)""",
                         re.IGNORECASE)
# Chromium's stderr noise on a machine without a session bus or GPU: not a page problem.
_NOISE_RE = re.compile(r"dbus|Fontconfig|ALSA|libva|gpu_init|bytes written to file", re.IGNORECASE)


def _redirect_target(page: Path) -> str | None:
    """Target of a page that only redirects (``<meta http-equiv="refresh">``, e.g. Jupyter Book's index.html)."""
    head = page.read_text(errors="replace")[:2000]
    match = _REFRESH_RE.search(head)
    if match and "<body" not in head.lower():
        return match.group(1)
    return None


def _browser_reason(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip() and not _NOISE_RE.search(line)]
    return lines[-1].strip() if lines else f"exit code {code}, empty DOM"


def _render(chromium: str, page: Path, profile: Path, shot: Path | None, timeout: float) -> tuple[int, str, str]:
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1800", "--dump-dom"]
    if shot is not None:
        cmd.append(f"--screenshot={shot}")
    cmd.append(page.as_uri())
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "", f"Chromium did not finish within {timeout:.0f} s"
    return proc.returncode, proc.stdout, proc.stderr


def _check_page(page: Path, html_dir: Path, chromium: str, profile: Path, shots_dir: Path | None,
                timeout: float) -> PageReport:
    rel = page.relative_to(html_dir).as_posix()
    report = PageReport(rel, chapter=rel.startswith(EXECUTED_DIR + "/"))
    target = _redirect_target(page)
    if target is not None:
        resolved = (page.parent / urllib.parse.unquote(urllib.parse.urlparse(target).path)).resolve()
        if resolved.is_file():
            report.notes.append(f"redirects to {target}")
        else:
            report.problems.append(f"redirects to {target}, which does not exist")
        return report
    shot = shots_dir / (rel[:-5].replace("/", "__") + ".png") if shots_dir is not None else None
    if shot is not None and shot.exists():
        shot.unlink()
    code, dom, err = _render(chromium, page, profile, shot, timeout)
    parser = _DomParser()
    parser.feed(dom)
    if code != 0 or not dom.strip():
        report.problems.append(f"Chromium could not load the page ({_browser_reason(code, err)})")
    elif parser.browser_error or not parser.has_main:
        report.problems.append("the page did not render (browser error page or no <main> element)")
    report.problems.extend(dict.fromkeys(parser.errors))
    for text in parser.stderr_text:
        if "Traceback (most recent call last)" in text:
            report.problems.append("a stderr output holds a Python traceback")
        else:
            text = text.replace("Copy to clipboard", "")  # sphinx-copybutton's button label
            report.notes.append("stderr output: " + " ".join(text.split())[:80])
    for img in parser.images:
        problem = _check_img(img["src"], page, html_dir)
        if problem:
            report.problems.append(problem)
    report.images = len(parser.images)
    report.figures = sum(1 for img in parser.images if img["output"])
    if report.chapter and report.figures == 0:
        report.problems.append("a notebook chapter without any figure (no image in a cell output)")
    if shot is not None:
        if shot.is_file() and shot.stat().st_size > 0:
            report.screenshot = shot
        elif not report.problems:
            report.problems.append("Chromium wrote no screenshot")
    return report


def check(
    *,
    html_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    screenshots: bool = True,
    pages: Sequence[str] | None = None,
    workers: int = 2,
    timeout: float = 60.0,
) -> list[PageReport]:
    """Open every built page in headless Chromium and check what a reader would see.

    A page fails when Chromium cannot load it, when it shows a notebook error
    (a traceback output or papermill's error marker), when one of its
    ``<img>`` has an empty source, a missing file or bytes that do not decode
    as an image (inline ``data:`` images included; remote images fail: the
    book must read offline), or, for a chapter page (``book/executed/``),
    when it has no figure (no image in a cell output) at all. Screenshots go
    to ``_build/screenshots/`` for humans.

    The browser is Debian's ``chromium`` package. When ``/usr/bin/chromium``
    is missing and the check runs as root (CI, the book's machines), it runs
    ``apt-get update`` and ``apt-get install -y chromium`` itself, printing
    both commands; otherwise it stops and says to run them. Chromium is
    started with :data:`CHROMIUM_FLAGS`, a fresh ``--user-data-dir`` per page,
    ``--dump-dom`` (parsed with :mod:`html.parser`) and ``--screenshot``.

    Parameters
    ----------
    html_dir : path, optional
        The built book (default ``<root>/_build/html``).
    root : path, optional
        Repository root, used for the default ``html_dir`` (default: the current folder).
    screenshots : bool
        Save a PNG of every page next to ``html_dir`` (``../screenshots``).
    pages : sequence of str, optional
        Check only these pages (paths relative to ``html_dir``, e.g.
        ``"book/intro.html"``); default: every page.
    workers : int
        Chromium processes run at once.
    timeout : float
        Seconds Chromium may take per page.

    Returns
    -------
    list of PageReport

    Raises
    ------
    CheckFailed
        Some page failed; the message lists them with the reasons.
    """
    if html_dir is None:
        html_dir = _root(root) / "_build" / "html"
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise BookInputError(f"no built book in {html_dir} (index.html missing); run `python -m helpers.book html`")
    all_pages = _pages(html_dir)
    if pages is None:
        selected = all_pages
    else:
        known = {p.relative_to(html_dir).as_posix(): p for p in all_pages}
        unknown = [p for p in pages if p not in known]
        if unknown:
            raise BookInputError(f"pages {unknown} are not in {html_dir}; pages: {sorted(known)}")
        selected = [known[p] for p in pages]
    pages = selected
    if not pages:
        raise BookInputError(f"no pages to check in {html_dir}")
    chromium = _find_chromium()
    shots_dir = html_dir.parent / "screenshots"
    if screenshots:
        shots_dir.mkdir(parents=True, exist_ok=True)
    print(f"checking {len(pages)} page(s) of {html_dir} in headless Chromium")
    with tempfile.TemporaryDirectory(prefix="book-check-") as profiles:
        jobs = [(page, Path(profiles) / f"profile{k}") for k, page in enumerate(pages)]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            reports = list(pool.map(lambda job: _check_page(job[0], html_dir, chromium, job[1],
                                                            shots_dir if screenshots else None, timeout), jobs))
    width = max(len(r.page) for r in reports)
    print(f"\n{'page':<{width}}  status  images  figures")
    for r in reports:
        print(f"{r.page:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.images:>6}  {r.figures:>7}")
        for p in r.problems:
            print(f"{'':<{width}}    - {p}")
        for n in r.notes:
            print(f"{'':<{width}}    . {n}")
    failed = [r for r in reports if not r.ok]
    if screenshots:
        print(f"screenshots: {shots_dir}")
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(reports)} page(s) failed the browser check: "
                          + "; ".join(f"{r.page}: {', '.join(r.problems)}" for r in failed))
    print(f"all {len(reports)} page(s) passed")
    return reports


# --------------------------------------------------------------------------
# command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m helpers.book",
        description="Execute the book's notebooks (papermill), build the HTML book (Jupyter Book) and check it "
                    "in headless Chromium.",
    )
    p.add_argument("--root", default=None, help="repository root (default: the current folder)")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("execute", help="run notebooks/*.ipynb with papermill into book/executed/",
                       description=f"Run the chapter notebooks in this order: {', '.join(CHAPTERS)}.")
    e.add_argument("--preset", default="default", choices=list(PRESETS), help="preset of every notebook")
    e.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help=f"notebook parameter (YAML literal value); names: {', '.join(NOTEBOOK_PARAMETERS[1:])}")
    e.add_argument("--only", nargs="+", metavar="NAME", help="run these chapters only")
    e.add_argument("--strict", action="store_true",
                   help="every chapter must exist and follow the chapter structure")
    e.add_argument("--out", default=EXECUTED_DIR, help=f"folder of the executed copies (default {EXECUTED_DIR})")
    e.add_argument("--timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")
    e.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")

    h = sub.add_parser("html", help="build the HTML book into _build/html (no execution)")
    h.add_argument("--strict", action="store_true",
                   help="all chapters must be executed; Sphinx warnings are errors")

    c = sub.add_parser("check", help="open every built page in headless Chromium")
    c.add_argument("--html", default=None, help="built book folder (default _build/html)")
    c.add_argument("--no-screenshots", action="store_true", help="do not save screenshots")
    c.add_argument("--timeout", type=float, default=60.0, help="seconds per page")

    s = sub.add_parser("structure", help="check source notebooks against the chapter structure")
    s.add_argument("paths", nargs="*", help=f"notebooks (default: {NOTEBOOKS_DIR}/*.ipynb)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m helpers.book``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "execute":
            execute(preset=args.preset, params=parse_params(args.param), only=args.only, strict=args.strict,
                    out=args.out, root=args.root, progress=not args.no_progress, timeout=args.timeout)
        elif args.command == "html":
            html(strict=args.strict, root=args.root)
        elif args.command == "check":
            check(html_dir=args.html, root=args.root, screenshots=not args.no_screenshots, timeout=args.timeout)
        elif args.command == "structure":
            paths = [Path(p) for p in args.paths] or sorted((_root(args.root) / NOTEBOOKS_DIR).glob("*.ipynb"))
            failures = []
            for path in paths:
                try:
                    check_notebook_structure(path)
                    print(f"ok    {path}")
                except NotebookStructureError as exc:
                    failures.append(str(exc))
                    print(f"FAIL  {exc}")
            if failures:
                return 1
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
