"""The chapter structure of the source notebooks, and the Colab install cell they carry.

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

       if "google.colab" in sys.modules:  # running in Colab: install the pinned book helpers
           %pip install --quiet "saliency-trust-book @ git+https://github.com/saliency-trust-book/saliency-trust-book@v0.1.0"
           print(...)  # where caches and results go in Colab

   (:func:`colab_cell_source` returns this text; it installs the tag
   ``v`` + :data:`BOOK_VERSION` of :data:`REPOSITORY_URL`, and
   ``python -m helpers.book pin-colab`` writes it into every notebook.)
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

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

from helpers import __version__
from helpers.book._base import NOTEBOOKS_DIR, BookInputError, NotebookStructureError, _root
from helpers.config import COLAB_HOME, HOME_ENV, NOTEBOOK_PARAMETERS

__all__ = [
    "REPOSITORY_URL",
    "BOOK_VERSION",
    "PACKAGE_SPEC",
    "colab_cell_source",
    "check_notebook_structure",
    "pin_colab",
]

#: The book's repository (launch buttons, Colab install). A fork changes it here and in ``_config.yml``.
REPOSITORY_URL = "https://github.com/saliency-trust-book/saliency-trust-book"
#: The released version the Colab cell installs (tag ``v<BOOK_VERSION>`` of :data:`REPOSITORY_URL`): the
#: package's own ``helpers.__version__``, which equals ``pyproject.toml``'s version (a test checks it). After a
#: version bump, run ``python -m helpers.book pin-colab`` and tag the release.
BOOK_VERSION = __version__
#: What the Colab cell installs: a tag, never the moving tip of the default branch.
PACKAGE_SPEC = f"saliency-trust-book @ git+{REPOSITORY_URL}@v{BOOK_VERSION}"

_REQUIRED_HEADINGS = ("Overview", "Prerequisites", "Summary", "Resources")


def _read_notebook(path: Path):
    import nbformat  # the book extra; imported only when a notebook is read

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


def colab_cell_source() -> str:
    """Source of the Colab cell every chapter carries.

    In Colab only, it installs :data:`PACKAGE_SPEC` (the pinned release) and
    says where caches and results go: :data:`helpers.config.COLAB_HOME`, or
    the folder in the ``SALIENCY_BOOK_HOME`` environment variable (a Google
    Drive folder keeps them across runtime resets; see ``book/real-data.md``).
    Elsewhere it does nothing.
    """
    return (
        "# Running in Google Colab? Install the book's helper package first (elsewhere this does nothing).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:  # running in Colab: install the pinned book helpers\n'
        f'    %pip install --quiet "{PACKAGE_SPEC}"\n'
        "    import os\n"
        f'    print("Caches and results go to", os.environ.get("{HOME_ENV}", "{COLAB_HOME}"),\n'
        '          "- lost when the runtime resets unless that is a Google Drive folder "\n'
        '          "(see the page \'Running on real data and on a GPU\').")'
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
                        "run `python -m helpers.book pin-colab`")
    elif PACKAGE_SPEC not in colab[0].source:
        # a fork that changed REPOSITORY_URL learns here which notebooks still install the old package
        problems.append(f"the Colab cell does not install {PACKAGE_SPEC!r} (helpers.book.REPOSITORY_URL "
                        f"at BOOK_VERSION); run `python -m helpers.book pin-colab`")
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


def _colab_cell_index(cells: list[dict]) -> int | None:
    for index, cell in enumerate(cells):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "code" and "google.colab" in source and re.search(r"[%!]\s*pip\s+install", source):
            return index
    return None


def _dump_notebook(nb: dict) -> str:
    """The notebook JSON as nbformat writes it (indent 1, sorted keys, UTF-8, final newline)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def pin_colab(*, root: str | os.PathLike | None = None, check: bool = False) -> list[Path]:
    """Write :func:`colab_cell_source` into the Colab cell of every ``notebooks/*.ipynb``.

    Only that cell's source changes; the rest of each file stays byte for
    byte as it was (a notebook whose JSON is not in nbformat's own layout is
    refused rather than reformatted).

    Parameters
    ----------
    root : path, optional
        Repository root (default: the current folder).
    check : bool
        Change nothing; only report the notebooks whose cell differs.

    Returns
    -------
    list of Path
        The notebooks that were (or, with ``check``, would be) changed.

    Raises
    ------
    NotebookStructureError
        A notebook without a Colab cell, or not in nbformat's JSON layout.
    """
    root = _root(root)
    wanted = colab_cell_source().splitlines(keepends=True)
    changed: list[Path] = []
    for path in sorted((root / NOTEBOOKS_DIR).glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        try:
            nb = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NotebookStructureError(f"{path} is not a readable Jupyter notebook: {exc}") from exc
        if _dump_notebook(nb) != text:
            raise NotebookStructureError(f"{path} is not in nbformat's JSON layout (indent 1, sorted keys); "
                                         f"save it once with Jupyter or nbformat, then run pin-colab again")
        index = _colab_cell_index(nb.get("cells", []))
        if index is None:
            raise NotebookStructureError(f"{path} has no Colab cell (a code cell: if \"google.colab\" in "
                                         f"sys.modules: %pip install ...) to pin")
        if nb["cells"][index]["source"] == wanted:
            continue
        changed.append(path)
        if not check:
            nb["cells"][index]["source"] = wanted
            path.write_text(_dump_notebook(nb), encoding="utf-8")
    return changed
