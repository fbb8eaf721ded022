"""The page check's reader rules, one by one, on small hand-made pages.

The rules run on a DOM and the layout the browser measured
(:func:`helpers.book.page_check.judge`); the measurement itself and the
full-page screenshot are checked in real headless Chromium when it is installed.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from helpers.book import browser, page_check

CHAPTER = "book/executed/02_randomization_sensitivity.html"
SECTIONS = '<h1>Chapter</h1><h2>Overview<a class="headerlink" href="#overview">#</a></h2><h2>Summary¶</h2>'


def _png(width: int = 8, height: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _figure(name: str = "fig.png", caption: str | None = "What to look at.", numbered: bool = True) -> str:
    img = f'<div class="cell_output docutils container"><img src="../../_images/{name}" alt=""/></div>'
    if caption is None:
        return img
    number = '<span class="caption-number">Figure 1 </span>' if numbered else ""
    return (f'<figure class="align-default" id="fig-a">{img}<figcaption><p>{number}'
            f'<span class="caption-text">{caption}</span></p></figcaption></figure>')


def _judge(tmp_path: Path, body: str, *, rel: str = CHAPTER, layout: dict | None = None) -> page_check.PageReport:
    html_dir = tmp_path / "html"
    page = html_dir / rel
    page.parent.mkdir(parents=True, exist_ok=True)
    (html_dir / "_images").mkdir(parents=True, exist_ok=True)
    (html_dir / "_images" / "fig.png").write_bytes(_png())
    dom = f"<html><head><title>p</title></head><body><main>{body}</main></body></html>"
    page.write_text(dom)
    report = page_check.PageReport(rel, chapter=rel.startswith("book/executed/"))
    page_check.judge(report, dom, layout or {}, page=page, html_dir=html_dir)
    return report


def test_a_chapter_as_a_reader_wants_it_passes(tmp_path):
    report = _judge(tmp_path, SECTIONS + _figure() + '<div class="cell_output"><pre>AUC 0.91</pre></div>')
    assert report.ok, report.problems
    assert (report.images, report.figures) == (1, 1)


@pytest.mark.parametrize("text", [
    "SG:   4%|▏         | 16/400 [00:01<00:30, 12.70pass/s]",
    "synthesizing: 100%|██████████| 240/240",
    "training 3/10 [00:12<00:28,  4.01s/it]",
    "IG:  37 image [00:03, 11.2image/s]",
])
def test_progress_bar_output_fails(tmp_path, text):
    body = SECTIONS + _figure() + f'<div class="cell_output"><div class="output stderr"><pre>{text}\n</pre></div></div>'
    report = _judge(tmp_path, body)
    assert len(report.problems) == 1 and report.problems[0].startswith("progress-bar output in the page (1 line(s)")
    assert not report.notes  # reported once, as the problem, not again as a stderr note


def test_numbers_that_look_a_little_like_progress_pass(tmp_path):
    body = SECTIONS + _figure() + ('<div class="cell_output"><pre>ratio 0.47 (47%) | AP 0.91 | 12 images, '
                                   '3.5 s per map</pre></div>')
    assert _judge(tmp_path, body).ok


def test_an_overflowing_code_line_fails_with_its_text(tmp_path):
    layout = {"overflowing_code": [{"text": "settings = resolve(preset, dataset=dataset, data_dir=data", "excess": 212}]}
    report = _judge(tmp_path, SECTIONS + _figure(), layout=layout)
    assert report.problems == ["a code line overflows its column by 212 px: "
                               "'settings = resolve(preset, dataset=dataset, data_dir=data'"]


def test_a_wide_output_and_a_page_wider_than_the_window_fail(tmp_path):
    layout = {"wide_outputs": [{"text": "method rules criterion verdict", "excess": 340}], "page_overflow": 300}
    report = _judge(tmp_path, SECTIONS + _figure(), layout=layout)
    assert report.problems == ["the page is 300 px wider than the window: a reader has to scroll sideways"]
    assert ("an output (table or figure) is 340 px wider than its column and scrolls sideways: "
            "'method rules criterion verdict'") in report.notes


def test_an_image_that_did_not_load_in_the_browser_fails(tmp_path):
    report = _judge(tmp_path, SECTIONS + _figure(), layout={"broken_images": ["../../_images/fig.png"]})
    assert report.problems == ["image ../../_images/fig.png failed to load in the browser (naturalWidth 0)"]
    # a missing file is reported once, by the file check, not again by the browser
    report = _judge(tmp_path / "b", SECTIONS + _figure("gone.png"), layout={"broken_images": ["../../_images/gone.png"]})
    assert len(report.problems) == 1 and "is missing" in report.problems[0]


@pytest.mark.parametrize("missing", ["Overview", "Summary"])
def test_a_chapter_without_overview_or_summary_fails(tmp_path, missing):
    sections = SECTIONS.replace(missing, "Something else")
    report = _judge(tmp_path, sections + _figure())
    assert report.problems == [f"a chapter page without its {missing} section (no '## {missing}' heading)"]
    # a level-3 heading of that name is not the section
    report = _judge(tmp_path / "b", sections + f"<h3>{missing}</h3>" + _figure())
    assert len(report.problems) == 1


def test_a_figure_without_a_caption_fails(tmp_path):
    report = _judge(tmp_path, SECTIONS + _figure() + _figure(caption=None))
    assert report.problems == ["1 of 2 figure(s) have no caption: give each figure cell metadata "
                               "mystnb.figure.caption and .name"]


def test_an_unnumbered_caption_fails(tmp_path):
    report = _judge(tmp_path, SECTIONS + _figure(numbered=False))
    assert report.problems == ["1 figure caption(s) are not numbered (first 'What to look at.'): numfig numbers "
                               "figures with a mystnb.figure.name"]


def test_text_pages_need_no_sections_figures_or_captions(tmp_path):
    report = _judge(tmp_path, "<p>intro</p>" + _figure(caption=None).replace("../../", "../"), rel="book/intro.html")
    assert report.ok and not report.chapter


def test_looking_for_chromium_never_installs_it(monkeypatch):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser, "Path", lambda p: type("Absent", (), {"exists": lambda self: False})())
    monkeypatch.setattr(browser.subprocess, "run", lambda *a, **k: pytest.fail("the check ran a command"))
    with pytest.raises(browser.BookError, match="setup-check"):
        browser.find_chromium()


# --------------------------------------------------------------------------
# in real headless Chromium

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="Chromium is not installed (python -m helpers.book setup-check)")


@needs_chromium
def test_chromium_measures_overflow_and_broken_images_and_shoots_the_full_page(tmp_path):
    from PIL import Image

    (tmp_path / "ok.png").write_bytes(_png(40, 30))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    long_line = "x = " + " + ".join(f"value_{k}" for k in range(60))
    page = tmp_path / "page.html"
    page.write_text(f"""<html><body><main>
      <div style="width: 400px"><pre id="long">{long_line}</pre><pre>short = 1</pre>
      <pre style="white-space: pre-wrap; overflow-wrap: anywhere">{long_line}</pre></div>
      <details><summary>folded</summary><pre>{long_line}</pre></details>
      <img src="ok.png"><img src="broken.png">
      <div style="height: 2600px">tall</div>
      <div style="margin-left: 100px; width: 200px; height: 100px; background: rgb(255, 0, 0)"></div>
      <div style="height: 300px"></div></main></body></html>""")
    shot = tmp_path / "shot.png"
    rendering = browser.render(browser.find_chromium(), page, profile=tmp_path / "profile", screenshot=shot, timeout=60)
    assert rendering.ok, rendering.error
    overflow = rendering.layout["overflowing_code"]
    assert len(overflow) == 1 and overflow[0]["text"].startswith("x = value_0 + value_1") and overflow[0]["excess"] > 100
    assert rendering.layout["broken_images"] == ["broken.png"]
    assert "<main>" in rendering.dom
    with Image.open(shot) as im:
        assert im.width == browser.VIEWPORT_WIDTH and im.height >= 2900  # the whole page, not the window
        # below the first window, drawn where the page has it (not shifted sideways): the red block at x 100-300
        red = im.convert("RGB").getpixel
        top = next(y for y in range(im.height) if red((200, y)) == (255, 0, 0))
        assert top > 2600 and red((200, top + 50)) == (255, 0, 0)
        assert red((90, top + 50)) != (255, 0, 0) and red((310, top + 50)) != (255, 0, 0)


@needs_chromium
def test_chromium_reports_a_page_that_does_not_load(tmp_path):
    rendering = browser.render(browser.find_chromium(), tmp_path / "absent.html", profile=tmp_path / "p",
                               screenshot=None, timeout=60)
    assert not rendering.ok and "ERR_FILE_NOT_FOUND" in rendering.error


@needs_chromium
def test_chromium_measures_a_wide_table_in_an_output(tmp_path):
    cells = "".join(f"<td>column-{k}-with-long-text</td>" for k in range(30))
    page = tmp_path / "page.html"
    page.write_text(f"""<html><body><main><div style="width: 500px">
      <div class="cell_output" style="overflow-x: auto"><table><tr>{cells}</tr></table></div>
      <div class="cell_output"><p>narrow</p></div></div></main></body></html>""")
    rendering = browser.render(browser.find_chromium(), page, profile=tmp_path / "profile", screenshot=None,
                               timeout=60)
    assert rendering.ok, rendering.error
    wide = rendering.layout["wide_outputs"]
    assert len(wide) == 1 and wide[0]["text"].startswith("column-0") and wide[0]["excess"] > 500
    assert rendering.layout["page_overflow"] <= 1
