"""Executed copies read as chapters: no progress bars in their outputs, plumbing cells tagged for the page."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import book
from helpers.book import execution
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


def test_cache_changes_lists_new_and_changed_files_but_not_locks_or_removals():
    before = {"maps/a.npz": (1, 10), "maps/b.npz": (1, 10), "models/gone.pt": (1, 5)}
    after = {"maps/a.npz": (1, 10), "maps/b.npz": (2, 10), "maps/c.npz": (3, 7), "maps/.c.npz.lock": (3, 0)}
    assert execution.cache_changes(before, after) == ["maps/b.npz", "maps/c.npz"]
    assert execution.cache_changes(after, after) == []
    assert execution.cache_snapshot("/nonexistent/folder") == {}


def _tiny_book(root: Path, writes: dict[str, str]) -> dict:
    """Chapters 00, 01 (planned by precompute) and 08 (not planned), each appending its name to a log in
    cache_dir/../log.txt and writing the files of ``writes[name]`` (a path relative to cache_dir) into the cache."""
    (root / "_config.yml").write_text("title: t\n")
    shutil.copy(REPO / "_toc.yml", root / "_toc.yml")
    (root / "notebooks").mkdir()
    for name in ("00_data_and_models", "01_localization_utility", "08_shortcuts"):
        body = ["from pathlib import Path\n"
                f"Path(cache_dir).mkdir(parents=True, exist_ok=True)\n"
                f"with open(Path(cache_dir).parent / 'log.txt', 'a') as fh: fh.write({name!r} + '\\n')"]
        if name in writes:
            body.append(f"p = Path(cache_dir) / {writes[name]!r}\np.parent.mkdir(parents=True, exist_ok=True)\n"
                        "p.write_text('x')")
        nbformat.write(_chapter(body), str(root / "notebooks" / f"{name}.ipynb"))
    return {"cache_dir": str(root / "cache"), "results_dir": str(root / "results")}


def _with_repo_on_path(fn):
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env_path) if p)  # the kernel imports helpers
    try:
        return fn()
    finally:
        os.environ["PYTHONPATH"] = env_path


def test_after_precompute_runs_planned_chapters_first_and_lets_unplanned_ones_write(tmp_path):
    params = _tiny_book(tmp_path, {"08_shortcuts": "models/shortcut.pt"})
    (tmp_path / "cache" / "maps").mkdir(parents=True)
    (tmp_path / "cache" / "maps" / "precomputed.npz").write_text("x")
    runs = _with_repo_on_path(lambda: book.execute(preset="smoke", root=tmp_path, progress=False, params=params,
                                                   after_precompute=True))
    assert [r.notebook for r in runs] == ["00_data_and_models", "01_localization_utility", "08_shortcuts"]
    assert (tmp_path / "log.txt").read_text().split() == [r.notebook for r in runs]
    assert (tmp_path / "cache" / "models" / "shortcut.pt").exists()  # the unplanned chapter trains its own


def test_after_precompute_fails_naming_what_a_planned_chapter_computed(tmp_path):
    params = _tiny_book(tmp_path, {"01_localization_utility": "maps/missed-by-the-plan.npz"})
    with pytest.raises(book.CacheChanged, match=r"maps/missed-by-the-plan\.npz.*precompute"):
        _with_repo_on_path(lambda: book.execute(preset="smoke", root=tmp_path, progress=False, params=params,
                                                after_precompute=True))
    assert "08_shortcuts" not in (tmp_path / "log.txt").read_text()  # nothing runs after the failure
