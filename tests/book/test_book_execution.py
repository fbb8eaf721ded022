"""Executed copies read as chapters: no progress bars in their outputs, plumbing cells tagged for the page."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import book
from helpers.config import NOTEBOOK_PARAMETERS

REPO = Path(__file__).resolve().parents[2]


def _chapter(body: list[str]):
    params = new_code_cell("\n".join('preset = "default"' if n == "preset" else f"{n} = None"
                                     for n in NOTEBOOK_PARAMETERS))
    params.metadata["tags"] = ["parameters"]
    cells = [new_markdown_cell("# A chapter\n\n## Overview\n\n- a question"), new_code_cell(book.colab_cell_source()),
             params, *[new_code_cell(src) for src in body], new_markdown_cell("## Summary\n\nFound.")]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_tag_plumbing_removes_colab_and_parameters_and_folds_the_injected_cell():
    nb = _chapter(["x = 1"])
    injected = new_code_cell('preset = "smoke"')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(3, injected)
    assert book.tag_plumbing(nb) == [1, 2, 3]
    assert nb.cells[1].metadata["tags"] == ["remove-cell"]
    assert nb.cells[2].metadata["tags"] == ["parameters", "remove-cell"]
    assert nb.cells[3].metadata["tags"] == ["injected-parameters", "hide-cell"]
    assert "tags" not in nb.cells[4].metadata
    assert book.tag_plumbing(nb) == []  # idempotent


def test_executed_copy_has_no_progress_bars_and_tagged_plumbing(tmp_path):
    root = tmp_path
    (root / "_config.yml").write_text("title: t\n")
    shutil.copy(REPO / "_toc.yml", root / "_toc.yml")
    nb = _chapter([
        "import os, sys\nprint('TQDM_DISABLE =', os.environ.get('TQDM_DISABLE'))",
        # a bar that would print on stderr, and the helpers' own bar asked for explicitly
        "from tqdm.std import tqdm\nfor _ in tqdm(range(30), desc='bar', mininterval=0): pass",
        "from helpers.data._tables import progress_bar\nfor _ in progress_bar(range(30), desc='data', progress=True): pass",
    ])
    (root / "notebooks").mkdir()
    nbformat.write(nb, str(root / "notebooks" / "00_data_and_models.ipynb"))
    before = os.environ.get("TQDM_DISABLE")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env_path) if p)  # the kernel imports helpers
    try:
        book.execute(preset="smoke", only=["00_data_and_models"], root=root, progress=False,
                     params={"results_dir": str(tmp_path / "results")})
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert os.environ.get("TQDM_DISABLE") == before  # restored for this process
    executed = nbformat.read(str(root / book.EXECUTED_DIR / "00_data_and_models.ipynb"), as_version=4)
    text = "".join(out.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []))
    assert "TQDM_DISABLE = 1" in text
    assert not book.PROGRESS_RE.search(text), text
    tags = {i: c.metadata.get("tags", []) for i, c in enumerate(executed.cells)}
    assert tags[1] == ["remove-cell"] and "remove-cell" in tags[2]
    assert tags[3] == ["injected-parameters", "hide-cell"]
