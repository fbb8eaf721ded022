"""The book pipeline: notebook structure, parameters, papermill execution, TOC pruning,
the HTML page checker, and one real Jupyter Book build checked in headless Chromium.

Everything runs on tiny hand-made notebooks in temporary roots; nothing is written to
the repository's own ``book/executed``, ``results`` or ``_build``.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers import book
from helpers.config import NOTEBOOK_PARAMETERS

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------
# hand-made notebooks

def _png(size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _params_source(names=NOTEBOOK_PARAMETERS) -> str:
    return "\n".join('preset = "default"' if n == "preset" else f"{n} = None" for n in names)


def _chapter(*, title="# A chapter", headings=("Overview", "Prerequisites", "Summary", "Resources"),
             colab=True, params: str | None = None, tag="parameters", body=(), colab_after=False):
    """A source notebook following the chapter structure; keyword arguments break one piece."""
    cells = [new_markdown_cell(f"{title}\n\nWhat this chapter asks.")]
    if "Overview" in headings:
        cells.append(new_markdown_cell("## Overview\n\n- one question"))
    if "Prerequisites" in headings:
        cells.append(new_markdown_cell("## Prerequisites\n\n| Concepts | Importance |\n| --- | --- |\n"
                                       "| SSIM | helpful |"))
    colab_cell = new_code_cell(book.colab_cell_source())
    pcell = new_code_cell(_params_source() if params is None else params)
    if tag:
        pcell.metadata["tags"] = [tag]
    if colab and not colab_after:
        cells.append(colab_cell)
    cells.append(pcell)
    if colab and colab_after:
        cells.append(colab_cell)
    cells.extend(new_code_cell(src) for src in body)
    if "Summary" in headings:
        cells.append(new_markdown_cell("## Summary\n\nWhat we found."))
    if "Resources" in headings:
        cells.append(new_markdown_cell("## Resources\n\n- a paper"))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _executed_chapter(name: str, *, figure: bool = True):
    """An executed copy as papermill leaves it: outputs stored, one PNG figure (or none)."""
    nb = _chapter(title=f"# Chapter {name}")
    code = nb.cells[-3]  # the parameters cell
    code.execution_count = 1
    plot = new_code_cell("fig", execution_count=2)
    plot.outputs = [new_output("stream", name="stdout", text="drawing\n")]
    if figure:
        plot.outputs.append(new_output("display_data", data={
            "image/png": base64.b64encode(_png(16)).decode(), "text/plain": "<Figure>"}))
        plot.metadata["mystnb"] = {"figure": {"caption": f"What chapter {name} shows.", "name": f"fig-{name}"}}
    nb.cells.insert(-2, plot)
    return nb


def _root(tmp_path: Path) -> Path:
    """A minimal repository root: ``_config.yml`` and the book's real ``_toc.yml``."""
    (tmp_path / "_config.yml").write_text("title: t\n")
    shutil.copy(REPO / "_toc.yml", tmp_path / "_toc.yml")
    return tmp_path


# --------------------------------------------------------------------------
# check_notebook_structure

def test_structure_accepts_a_chapter_following_the_layout(tmp_path):
    book.check_notebook_structure(_write(_chapter(), tmp_path / "ok.ipynb"))


@pytest.mark.parametrize("kwargs, expected", [
    (dict(tag=None), r"exactly one cell tagged 'parameters', found 0"),
    (dict(tag="params"), r"exactly one cell tagged 'parameters'"),
    (dict(colab=False), r"no Colab cell"),
    (dict(colab_after=True), r"Colab cell must come before the parameters cell"),
    (dict(title="A title without hash"), r"level-1 heading"),
    (dict(headings=("Overview", "Prerequisites", "Resources")), r"no '## Summary' heading"),
    (dict(headings=("Prerequisites", "Summary", "Resources")), r"no '## Overview' heading"),
    (dict(params=_params_source(NOTEBOOK_PARAMETERS[:-1])), r"lacks \['overrides'\]"),
    (dict(params=_params_source() + "\nbatch = 4"), r"not notebook parameters: \['batch'\] \(valid: preset, "),
    (dict(params=_params_source() + "\nseed = 1"), r"assigns \['seed'\] more than once"),
    (dict(params=_params_source() + "\nprint(seed)"), r"assignments only, found: \['print\(seed\)'\]"),
    (dict(params="preset = ("), r"not valid Python"),
])
def test_structure_names_each_missing_piece(tmp_path, kwargs, expected):
    path = _write(_chapter(**kwargs), tmp_path / "bad.ipynb")
    with pytest.raises(book.NotebookStructureError, match=expected) as info:
        book.check_notebook_structure(path)
    assert str(path) in str(info.value)


def test_structure_lists_every_problem_at_once(tmp_path):
    path = _write(_chapter(colab=False, headings=("Overview",)), tmp_path / "bad.ipynb")
    with pytest.raises(book.NotebookStructureError) as info:
        book.check_notebook_structure(path)
    message = str(info.value)
    for piece in ("no Colab cell", "no '## Prerequisites'", "no '## Summary'", "no '## Resources'"):
        assert piece in message


def test_structure_requires_a_prerequisites_table(tmp_path):
    nb = _chapter()
    nb.cells[2].source = "## Prerequisites\n\nKnow what a gradient is."
    with pytest.raises(book.NotebookStructureError, match="Prerequisites section has no markdown table"):
        book.check_notebook_structure(_write(nb, tmp_path / "t.ipynb"))


def test_structure_rejects_stored_outputs(tmp_path):
    nb = _chapter(body=["1 + 1"])
    nb.cells[-3].execution_count = 3
    nb.cells[-3].outputs = [new_output("execute_result", data={"text/plain": "2"}, execution_count=3)]
    with pytest.raises(book.NotebookStructureError, match=r"store outputs or execution counts"):
        book.check_notebook_structure(_write(nb, tmp_path / "o.ipynb"))


def test_structure_of_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(book.BookInputError, match="does not exist"):
        book.check_notebook_structure(tmp_path / "absent.ipynb")
    (tmp_path / "junk.ipynb").write_text("{not json")
    with pytest.raises(book.NotebookStructureError, match="not a readable Jupyter notebook"):
        book.check_notebook_structure(tmp_path / "junk.ipynb")


def test_structure_requires_the_colab_cell_to_install_this_repository(tmp_path):
    nb = _chapter()
    nb.cells[3].source = book.colab_cell_source().replace(book.REPOSITORY_URL, "https://github.com/other/fork")
    with pytest.raises(book.NotebookStructureError, match=r"Colab cell does not install 'saliency-trust-book @"):
        book.check_notebook_structure(_write(nb, tmp_path / "fork.ipynb"))


def test_colab_cell_installs_only_in_colab():
    src = book.colab_cell_source()
    assert 'if "google.colab" in sys.modules:' in src
    assert f'%pip install --quiet "{book.PACKAGE_SPEC}"' in src
    assert book.PACKAGE_SPEC.startswith("saliency-trust-book @ git+" + book.REPOSITORY_URL)


def test_repository_url_matches_the_book_config():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"]["url"] == book.REPOSITORY_URL
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_toc_lists_every_chapter_and_page():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = book.build._toc_files(toc)
    chapters = [f.split("/")[-1] for f in files if f.startswith(book.EXECUTED_DIR + "/")]
    # reading order: the scorecard closes the book after the two "beyond" chapters ...
    assert chapters == ["00_data_and_models", "01_localization_utility", "02_randomization_sensitivity",
                        "03_repeatability", "04_reproducibility", "06_trainable_saliency",
                        "07_counterfactual_inpainting", "08_shortcuts", "05_scorecard"]
    # ... and it is also executed last: it reads every other chapter's table
    assert book.CHAPTERS[-1] == "05_scorecard" and sorted(book.CHAPTERS) == sorted(chapters)
    for page in ("book/intro", "book/real-data", "book/references"):
        assert page in files and (REPO / f"{page}.md").is_file()


# --------------------------------------------------------------------------
# parse_params

def test_parse_params_reads_yaml_literals():
    params = book.parse_params(["image_size=64", "architectures=[smallcnn, resnet18]", "data_dir=/data/rsna",
                                "n_replicates=null", "seed=7", "device=auto", "dataset='no'"])
    assert params == {"image_size": 64, "architectures": ["smallcnn", "resnet18"], "data_dir": "/data/rsna",
                      "n_replicates": None, "seed": 7, "device": "auto", "dataset": "no"}
    assert book.parse_params(None) == {} and book.parse_params([]) == {}


def test_parse_params_packs_every_other_settings_field_into_overrides():
    params = book.parse_params(["image_size=64", "epochs=3", "method_settings={SG: {n_samples: 5}}",
                                "model=[resnet18=weights.pt]", "pretrained=null"])
    assert params == {"image_size": 64, "overrides": {"epochs": 3, "method_settings": {"SG": {"n_samples": 5}},
                                                      "model": ["resnet18=weights.pt"], "pretrained": None}}
    with pytest.raises(book.BookInputError, match="not needed"):
        book.parse_params(["overrides={epochs: 3}"])


@pytest.mark.parametrize("items, expected", [
    (["image_sise=64"], r"unknown parameter 'image_sise'; valid parameters \(notebook parameters and every "
                        r"helpers.config.Settings field\): dataset, .*"
                        r"Did you mean 'image_size'\?"),
    (["preset=smoke"], r"--preset"),
    (["image_size"], r"NAME=VALUE"),
    (["seed=1", "seed=2"], r"given twice"),
    (["methods=[GRAD"], r"not a YAML literal"),
])
def test_parse_params_errors(items, expected):
    with pytest.raises(book.BookInputError, match=expected):
        book.parse_params(items)


# --------------------------------------------------------------------------
# execute

def test_execute_runs_papermill_in_order_records_timings_and_names_the_failing_cell(tmp_path, capsys):
    root = _root(tmp_path)
    # 00 runs at the root (cwd) with the injected parameters; 01 fails in its second code cell.
    _write(_chapter(body=["from pathlib import Path\nPath('probe.txt').write_text(f'{preset} {image_size}')"]),
           root / "notebooks" / "00_data_and_models.ipynb")
    _write(_chapter(body=["x = 1", "raise RuntimeError('boom in chapter one')"]),
           root / "notebooks" / "01_localization_utility.ipynb")
    with pytest.raises(book.NotebookFailed) as info:
        book.execute(preset="smoke", params={"image_size": 32}, root=root, progress=False)
    message = str(info.value)
    # the 7th cell of the source (title, Overview, Prerequisites, Colab, parameters, x = 1, raise), not
    # of the executed copy, which has papermill's injected-parameters cell in addition
    assert "notebook 01_localization_utility failed in cell 7 of" in message
    assert "RuntimeError: boom in chapter one" in message and "raise RuntimeError" in message
    partial = root / "book" / "executed" / "01_localization_utility.ipynb"
    assert partial.is_file()  # kept for inspection
    assert (root / "probe.txt").read_text() == "smoke 32"
    executed = nbformat.read(str(root / "book" / "executed" / "00_data_and_models.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'preset = "smoke"' in injected[0].source and "image_size = 32" in injected[0].source
    with (root / "results" / "timings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["notebook"], r["preset"]) for r in rows] == [("00_data_and_models", "smoke")]
    assert float(rows[0]["seconds"]) > 0
    out = capsys.readouterr().out
    for name in ("02_randomization_sensitivity", "05_scorecard"):
        assert f"skipping {name}" in out


def test_execute_rejects_bad_input_before_running(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(book.BookInputError, match=r"unknown preset 'smok'.*Did you mean 'smoke'"):
        book.execute(preset="smok", root=root)
    with pytest.raises(book.BookInputError, match=r"unknown notebook parameter\(s\) \['size'\]; valid: dataset"):
        book.execute(preset="smoke", params={"size": 3}, root=root)
    with pytest.raises(book.BookInputError, match=r"unknown chapter\(s\) \['01_localisation_utility'\].*"
                                                  r"Did you mean '01_localization_utility'"):
        book.execute(preset="smoke", only=["01_localisation_utility"], root=root)
    with pytest.raises(book.BookInputError, match=r"--strict: chapters \[.*'05_scorecard'\] have no source"):
        book.execute(preset="smoke", strict=True, root=root)
    with pytest.raises(book.BookInputError, match="not the book's repository root"):
        book.execute(preset="smoke", root=tmp_path / "nowhere")
    # a notebook without a tagged parameters cell would silently ignore the injected values
    _write(_chapter(tag=None), root / "notebooks" / "03_repeatability.ipynb")
    with pytest.raises(book.NotebookStructureError, match="no code cell tagged 'parameters'"):
        book.execute(preset="smoke", only=["03_repeatability"], root=root)
    # a notebook outside the book is refused in strict mode
    _write(_chapter(), root / "notebooks" / "99_extra.ipynb")
    with pytest.raises(book.BookInputError, match=r"\['99_extra'\].*not chapters of the book"):
        book.execute(preset="smoke", strict=True, root=root)
    assert not (root / "book" / "executed").exists()


def test_cli_reports_errors_with_exit_status_1(tmp_path, capsys):
    root = _root(tmp_path)
    assert book.main(["--root", str(root), "execute", "--preset", "smoke", "--param", "colour=red"]) == 1
    assert "unknown parameter 'colour'" in capsys.readouterr().err
    assert book.main(["--root", str(root), "execute", "--preset", "smoke"]) == 0  # nothing written yet
    assert "nothing to execute" in capsys.readouterr().out
    _write(_chapter(colab=False), root / "notebooks" / "00_data_and_models.ipynb")
    assert book.main(["--root", str(root), "structure"]) == 1
    assert "no Colab cell" in capsys.readouterr().out


# --------------------------------------------------------------------------
# available_toc

def test_available_toc_prunes_missing_chapters_and_empty_parts(tmp_path):
    root = _root(tmp_path)
    toc, missing = book.available_toc(root)
    assert missing == ["00_data_and_models", "01_localization_utility", "02_randomization_sensitivity",
                       "03_repeatability", "04_reproducibility", "06_trainable_saliency",
                       "07_counterfactual_inpainting", "08_shortcuts", "05_scorecard"]  # TOC (reading) order
    assert [p["caption"] for p in toc["parts"]] == ["Using the book"]
    assert toc["root"] == "book/intro"
    for name in ("00_data_and_models", "03_repeatability", "05_scorecard"):
        _write(_executed_chapter(name), root / book.EXECUTED_DIR / f"{name}.ipynb")
    toc, missing = book.available_toc(root)
    assert sorted(missing) == sorted(set(book.CHAPTERS) - {"00_data_and_models", "03_repeatability", "05_scorecard"})
    assert [p["caption"] for p in toc["parts"]] == ["Data and models", "The four trust criteria", "Verdict",
                                                     "Using the book"]
    assert toc["parts"][1]["chapters"] == [{"file": "book/executed/03_repeatability"}]
    for name in book.CHAPTERS:
        _write(_executed_chapter(name), root / book.EXECUTED_DIR / f"{name}.ipynb")
    full, missing = book.available_toc(root)
    assert missing == [] and full == yaml.safe_load((REPO / "_toc.yml").read_text())


def test_jupyter_book_command_turns_warnings_into_errors_when_strict(tmp_path):
    cmd = book.build._jupyter_book_command(tmp_path, toc=None, strict=True)
    assert cmd[0] == sys.executable and cmd[3:7] == ["build", str(tmp_path), "--builder", "html"]
    assert {"-W", "--keep-going", "-n", "--all"} <= set(cmd) and "--toc" not in cmd
    cmd = book.build._jupyter_book_command(tmp_path, toc=tmp_path / "t.yml", strict=False)
    assert "-W" not in cmd and cmd[cmd.index("--toc") + 1] == str(tmp_path / "t.yml")


def test_html_strict_refuses_missing_chapters(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(book.BookInputError, match=r"--strict: executed notebooks missing for \['00_data"):
        book.html(strict=True, root=root)


# --------------------------------------------------------------------------
# the page checker, on hand-made DOMs

def _page(tmp_path: Path, body: str, rel="book/executed/01_localization_utility.html") -> tuple[Path, Path]:
    html_dir = tmp_path / "html"
    page = html_dir / rel
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><head><title>p</title></head><body><main>{body}</main></body></html>")
    return html_dir, page


def _fake_render(monkeypatch, dom_of_page, layout=None):
    """Replace Chromium by the page's own file (the DOM it would dump) so the page logic runs without it."""
    def render(chromium, page, *, profile, screenshot, timeout):
        if screenshot is not None:
            screenshot.write_bytes(_png())
        return book.browser.Rendering(ok=True, dom=dom_of_page(page), layout=dict(layout or {}), screenshot=screenshot)
    monkeypatch.setattr(book.browser, "render", render)


def _check(tmp_path, monkeypatch, body, rel="book/executed/01_localization_utility.html", files=()):
    html_dir, page = _page(tmp_path, body, rel)
    for name, data in files:
        (html_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (html_dir / name).write_bytes(data)
    _fake_render(monkeypatch, lambda p: p.read_text())
    shots = html_dir.parent / "shots"
    shots.mkdir(exist_ok=True)
    return book.page_check._check_page(page, html_dir, "chromium", tmp_path / "profile", shots, 10)


SECTIONS = '<h2>Overview<a class="headerlink" href="#overview">#</a></h2><h2>Summary</h2>'
FIGURE = (SECTIONS + '<figure class="align-default" id="fig-one"><div class="cell_output docutils container">'
          '<img src="../../_images/fig.png" alt=""/></div><figcaption><p><span class="caption-number">Figure 1 '
          '</span><span class="caption-text">What to look at.</span></p></figcaption></figure>')


def test_page_with_a_figure_passes(tmp_path, monkeypatch):
    report = _check(tmp_path, monkeypatch, FIGURE, files=[("_images/fig.png", _png())])
    assert report.ok, report.problems
    assert (report.chapter, report.images, report.figures) == (True, 1, 1)
    assert report.screenshot is not None and report.screenshot.is_file()


def test_page_with_a_missing_image_fails(tmp_path, monkeypatch):
    report = _check(tmp_path, monkeypatch, FIGURE)
    assert not report.ok
    assert any(re.search(r"image \.\./\.\./_images/fig\.png is missing", p) for p in report.problems)


@pytest.mark.parametrize("src, expected", [
    ("data:image/png;base64,iVBORw0KGgo%%%", r"does not decode"),
    ("data:image/png;base64," + base64.b64encode(b"not a png at all").decode(), r"not a decodable image"),
    ("data:image/png;base64,", r"is empty"),
    ("", r"no or an empty src"),
    ("https://example.org/fig.png", r"remote"),
    ("data:image/svg+xml," + "%3Csvg%20xmlns%3D%22http%3A//www.w3.org/2000/svg%22%3E%3Cg%3E", r"not valid SVG"),
])
def test_broken_images_fail(tmp_path, monkeypatch, src, expected):
    report = _check(tmp_path, monkeypatch, f'<div class="cell_output"><img src="{src}"/></div>')
    assert any(re.search(expected, p) for p in report.problems), report.problems


def test_valid_inline_images_pass(tmp_path, monkeypatch):
    svg = "data:image/svg+xml,%3Csvg%20xmlns%3D%22http%3A//www.w3.org/2000/svg%22/%3E"
    png = "data:image/png;base64," + base64.b64encode(_png()).decode()
    report = _check(tmp_path, monkeypatch,
                    f'<div class="cell_output"><img src="{png}"/></div><p><img src="{svg}"/></p>', rel="book/intro.html")
    assert report.ok, report.problems
    assert (report.images, report.figures) == (2, 1)


@pytest.mark.parametrize("body, expected", [
    ('<div class="cell_output"><div class="output traceback highlight-ipythontb"><pre>ZeroDivisionError'
     '</pre></div></div>', "a notebook error output (traceback)"),
    ('<span id="papermill-error-cell"></span>', "papermill error marker"),
    ('<div class="output stderr"><pre>Traceback (most recent call last):\n  File x</pre></div>',
     "a stderr output holds a Python traceback"),
])
def test_error_text_in_a_page_fails(tmp_path, monkeypatch, body, expected):
    report = _check(tmp_path, monkeypatch, FIGURE + body, files=[("_images/fig.png", _png())])
    assert any(p.startswith(expected) for p in report.problems), report.problems


def test_stderr_warnings_are_notes_not_failures(tmp_path, monkeypatch):
    body = FIGURE + '<div class="output stderr"><pre>UserWarning: few images</pre></div>'
    report = _check(tmp_path, monkeypatch, body, files=[("_images/fig.png", _png())])
    assert report.ok and report.notes == ["stderr output: UserWarning: few images"]


def test_chapter_without_figure_fails_but_a_text_page_passes(tmp_path, monkeypatch):
    report = _check(tmp_path, monkeypatch, SECTIONS + "<p>text only</p><img src='../../_static/logo.png'/>",
                    files=[("_static/logo.png", _png())])
    assert report.problems == ["a notebook chapter without any figure (no image in a cell output)"]
    report = _check(tmp_path / "b", monkeypatch, "<p>text only</p>", rel="book/intro.html")
    assert report.ok and not report.chapter


def test_browser_error_page_and_empty_dom_fail(tmp_path, monkeypatch):
    html_dir, page = _page(tmp_path, "<p>x</p>", rel="book/intro.html")
    _fake_render(monkeypatch, lambda p: '<html><body><div id="main-frame-error">ERR_FILE_NOT_FOUND</div></body></html>')
    report = book.page_check._check_page(page, html_dir, "chromium", tmp_path / "p", None, 10)
    assert report.problems == ["the page did not render (browser error page or no <main> element)"]
    monkeypatch.setattr(book.browser, "render", lambda *a, **k: book.browser.Rendering(
        ok=False, error="Chromium did not finish within 10 s"))
    report = book.page_check._check_page(page, html_dir, "chromium", tmp_path / "p", None, 10)
    assert report.problems == ["Chromium could not load the page (Chromium did not finish within 10 s)"]


def test_redirect_pages_are_followed_on_disk(tmp_path):
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    report = book.page_check._check_page(html_dir / "index.html", html_dir, "chromium", tmp_path, None, 10)
    assert report.problems == ["redirects to book/intro.html, which does not exist"]
    (html_dir / "book").mkdir()
    (html_dir / "book" / "intro.html").write_text("<html><body><main></main></body></html>")
    report = book.page_check._check_page(html_dir / "index.html", html_dir, "chromium", tmp_path, None, 10)
    assert report.ok and report.notes == ["redirects to book/intro.html"]


def test_chromium_setup_is_an_explicit_step(monkeypatch, capsys):
    calls = []
    installed = {"done": False}

    def which(name):
        return "/usr/bin/chromium" if installed["done"] else None

    def run(cmd, env=None):
        calls.append((cmd, env.get("DEBIAN_FRONTEND")))
        if cmd[:2] == ["apt-get", "install"]:
            installed["done"] = True
        return type("P", (), {"returncode": 0})()

    monkeypatch.setattr(book.browser.shutil, "which", which)
    monkeypatch.setattr(book.browser, "Path", lambda p: type("Absent", (), {"exists": lambda self: False})())
    monkeypatch.setattr(book.browser.os, "geteuid", lambda: 0)
    monkeypatch.setattr(book.browser.subprocess, "run", run)
    # looking for the browser never installs it: the message names the setup step
    with pytest.raises(book.BookError, match=r"run `python -m helpers.book setup-check` \(as root: apt-get update"):
        book.find_chromium()
    assert calls == []
    assert book.install_chromium() == "/usr/bin/chromium"
    assert calls == [(["apt-get", "update"], "noninteractive"),
                     (["apt-get", "install", "-y", "chromium"], "noninteractive")]
    assert "installing Debian's package" in capsys.readouterr().out
    installed["done"] = False
    monkeypatch.setattr(book.browser.os, "geteuid", lambda: 1000)
    with pytest.raises(book.BookError, match="installing Chromium needs root"):
        book.install_chromium()


# --------------------------------------------------------------------------
# the Colab launch-button extension, on the context sphinx-book-theme builds

def _colab_ext():
    sys.path.insert(0, str(REPO / "book" / "_ext"))
    try:
        import colab_sources
    finally:
        sys.path.pop(0)
    return colab_sources


class _App:
    def __init__(self, srcdir, mapping):
        self.srcdir = str(srcdir)
        self.config = type("Config", (), {"colab_sources": mapping, "html_theme_options": {"path_to_docs": ""}})()


def _context(path):
    url = f"https://colab.research.google.com/github/o/r/blob/main/{path}"
    return {"header_buttons": [{"type": "group", "label": "launch-buttons",
                                "buttons": [{"label": "launch-colab-button", "url": url}]}]}


def test_colab_extension_points_executed_chapters_at_their_sources(tmp_path):
    ext = _colab_ext()
    mapping = {"book/executed/": "notebooks/"}
    assert ext.source_path("book/executed/03_repeatability", mapping) == "notebooks/03_repeatability.ipynb"
    assert ext.source_path("book/intro", mapping) is None
    _write(_chapter(), tmp_path / "notebooks" / "03_repeatability.ipynb")
    context = _context("book/executed/03_repeatability.ipynb")
    ext.rewrite_launch_buttons(_App(tmp_path, mapping), "book/executed/03_repeatability", "page.html", context, None)
    assert context["header_buttons"][0]["buttons"][0]["url"] == \
        "https://colab.research.google.com/github/o/r/blob/main/notebooks/03_repeatability.ipynb"
    context = _context("book/intro.md")  # a markdown page is left alone
    ext.rewrite_launch_buttons(_App(tmp_path, mapping), "book/intro", "page.html", context, None)
    assert context["header_buttons"][0]["buttons"][0]["url"].endswith("book/intro.md")


def test_colab_extension_warns_when_the_source_is_not_in_the_repository(tmp_path, monkeypatch):
    ext = _colab_ext()
    warnings = []
    monkeypatch.setattr(ext.LOGGER, "warning", lambda msg, **kw: warnings.append(msg))
    context = _context("book/executed/05_scorecard.ipynb")
    ext.rewrite_launch_buttons(_App(tmp_path, {"book/executed/": "notebooks/"}), "book/executed/05_scorecard",
                               "page.html", context, None)
    assert len(warnings) == 1 and "notebooks/05_scorecard.ipynb, which is not in the repository" in warnings[0]
    ext.rewrite_launch_buttons(_App(tmp_path, {"book/executed/": "notebooks/"}), "book/executed/05_scorecard",
                               "page.html", {"header_buttons": []}, None)
    assert "has no launch buttons" in warnings[-1]


# --------------------------------------------------------------------------
# one real build: the repository's pages + eight tiny executed chapters, strict, then Chromium

@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("bookroot")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "_static", root / "_static")
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("executed", "__pycache__"))
    for name in book.CHAPTERS:
        # the sources must exist: the Colab button points at them (colab_sources warns otherwise)
        _write(_chapter(title=f"# Chapter {name}"), root / book.NOTEBOOKS_DIR / f"{name}.ipynb")
        _write(_executed_chapter(name, figure=name != "05_scorecard"), root / book.EXECUTED_DIR / f"{name}.ipynb")
    html_dir = book.html(strict=True, root=root)  # -W --keep-going -n: any warning fails
    return root, html_dir


def test_strict_build_of_the_pages_and_colab_buttons(built_book):
    root, html_dir = built_book
    assert (html_dir / "index.html").is_file()
    refs = (html_dir / "book" / "references.html").read_text()
    # sphinxcontrib-bibtex rendered the whole bibliography: one entry per BibTeX record
    n_records = len(re.findall(r"^@\w+\{", (REPO / "book" / "references.bib").read_text(), re.MULTILINE))
    assert n_records >= 20
    assert refs.count('class="citation-list"') == 1
    assert refs.count('role="doc-biblioentry"') == n_records
    assert "Sanity checks for saliency maps" in refs
    page = (html_dir / "book" / "executed" / "02_randomization_sensitivity.html").read_text()
    urls = set(re.findall(r'https://colab\.research\.google\.com/github/[^"\']+', page))
    assert urls == {"https://colab.research.google.com/github/saliency-trust-book/saliency-trust-book/blob/main/"
                    "notebooks/02_randomization_sensitivity.ipynb"}
    assert "book/executed/02_randomization_sensitivity.ipynb" not in " ".join(urls)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (`python -m helpers.book check` installs it)")
def test_chromium_check_passes_and_fails_on_a_missing_figure(built_book):
    root, html_dir = built_book
    good = "book/executed/00_data_and_models.html"
    reports = book.check(html_dir=html_dir, pages=[good, "book/intro.html", "index.html"], screenshots=True)
    assert all(r.ok for r in reports)
    assert reports[0].figures == 1 and reports[0].screenshot.stat().st_size > 0
    # remove the figure file of the good chapter; the scorecard was built without any figure
    src = re.search(r'<img[^>]+src="([^"]+_images/[^"]+)"', (html_dir / good).read_text()).group(1)
    (html_dir / good).parent.joinpath(src).resolve().unlink()
    with pytest.raises(book.CheckFailed) as info:
        book.check(html_dir=html_dir, pages=[good, "book/executed/05_scorecard.html"], screenshots=False)
    message = str(info.value)
    assert message.startswith("2 of 2 page(s) failed")
    assert re.search(r"00_data_and_models.html: image \S*_images/\S+ is missing", message)
    assert "05_scorecard.html: a notebook chapter without any figure" in message
    with pytest.raises(book.BookInputError, match="not in"):
        book.check(html_dir=html_dir, pages=["book/nope.html"])
