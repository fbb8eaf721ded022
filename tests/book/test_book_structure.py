"""The repository's own notebooks follow the chapter structure and install the pinned release in Colab."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers import book

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / book.NOTEBOOKS_DIR).glob("*.ipynb"))


def test_every_chapter_has_a_notebook():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(book.CHAPTERS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_chapter_structure(path):
    book.check_notebook_structure(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_install_cell_carries_the_one_pin(path):
    cell = json.loads(path.read_text())["cells"][1]
    source = "".join(cell["source"])
    assert source == book.colab_cell_source()
    installs = re.findall(r'%pip install --quiet "([^"]+)"', source)
    assert installs == [book.PACKAGE_SPEC]
    assert book.PACKAGE_SPEC.endswith(f"@v{book.BOOK_VERSION}")  # a tag, not the moving tip


def test_book_version_is_the_package_version():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1) == book.BOOK_VERSION


def test_pin_colab_changes_only_the_install_cell(tmp_path):
    (tmp_path / "_config.yml").write_text("title: t\n")
    shutil.copytree(REPO / book.NOTEBOOKS_DIR, tmp_path / book.NOTEBOOKS_DIR)
    path = tmp_path / book.NOTEBOOKS_DIR / "03_repeatability.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][1]["source"] = ["import sys\n", 'if "google.colab" in sys.modules:\n',
                                '    %pip install "saliency-trust-book @ git+https://github.com/o/r"']
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
    with pytest.raises(book.NotebookStructureError, match=r"does not install .*run `python -m helpers.book pin-colab`"):
        book.check_notebook_structure(path)
    assert book.pin_colab(root=tmp_path, check=True) == [path]
    assert book.pin_colab(root=tmp_path) == [path]
    assert path.read_bytes() == (REPO / book.NOTEBOOKS_DIR / path.name).read_bytes()
    assert book.pin_colab(root=tmp_path) == []


def test_pin_colab_refuses_to_reformat_a_notebook(tmp_path):
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / book.NOTEBOOKS_DIR).mkdir()
    nb = json.loads(NOTEBOOKS[0].read_text())
    path = tmp_path / book.NOTEBOOKS_DIR / NOTEBOOKS[0].name
    path.write_text(json.dumps(nb, indent=2))
    with pytest.raises(book.NotebookStructureError, match="not in nbformat's JSON layout"):
        book.pin_colab(root=tmp_path)


def test_cli_pin_colab_check_exits_1_when_a_notebook_is_not_pinned(tmp_path, capsys):
    (tmp_path / "_config.yml").write_text("title: t\n")
    shutil.copytree(REPO / book.NOTEBOOKS_DIR, tmp_path / book.NOTEBOOKS_DIR)
    assert book.main(["--root", str(tmp_path), "pin-colab", "--check"]) == 0
    path = tmp_path / book.NOTEBOOKS_DIR / "00_data_and_models.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][1]["source"] = [line.replace("@v", "@main-") for line in nb["cells"][1]["source"]]
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
    assert book.main(["--root", str(tmp_path), "pin-colab", "--check"]) == 1
    assert "not pinned" in capsys.readouterr().out
