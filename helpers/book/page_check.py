"""The page check: open every built page in headless Chromium and fail on what a reader would complain about.

A page fails, with a message naming the page and the problem, when

* Chromium cannot load it, or it shows a notebook error (a traceback output,
  papermill's error marker, a traceback in a stderr output);
* an ``<img>`` has an empty source, a missing file, bytes that do not decode,
  a remote source (the book must read offline), or did not load in the
  browser (``naturalWidth`` 0);
* a cell output holds progress-bar text (tqdm's ``42%|███▌ | 5/12 [00:01<00:02, 3.1it/s]``,
  :data:`PROGRESS_RE`);
* a code block is wider than its column (measured in the browser:
  ``scrollWidth > clientWidth`` of a displayed ``<pre>`` in ``<main>``);

and a chapter page (``book/executed/``) also fails when it has no figure, no
``Overview`` or ``Summary`` section (:data:`CHAPTER_SECTIONS`), or a figure
(an image in a cell output) without a numbered caption (myst-nb's
``mystnb.figure.caption`` and ``name`` in the cell metadata, numbered by
``numfig``).

Every page gets a full-page screenshot in ``_build/screenshots/`` (one PNG
per page, ``book__executed__01_localization_utility.png``) so anyone can look.
Chromium is set up by ``python -m helpers.book setup-check``
(:func:`helpers.book.browser.install_chromium`), not by the check.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Sequence

from helpers.book import browser
from helpers.book._base import EXECUTED_DIR, BookInputError, CheckFailed, _root

__all__ = ["PageReport", "PROGRESS_RE", "CHAPTER_SECTIONS", "check"]

#: Progress-bar text as tqdm draws it: the bar (``42%|``), a rate (``3.1it/s``, ``2.5pass/s``, ``1.2s/it``) or
#: the elapsed<remaining clock (``[00:01<00:02``).
PROGRESS_RE = re.compile(r"\d{1,3}%\|"
                         r"|\d(?:\.\d+)?\s?(?:it|pass|image|img|batch|epoch|B)/s\b"
                         r"|\ds/(?:it|pass|image|batch|epoch)\b"
                         r"|\[\d{1,2}:\d{2}(?::\d{2})?<")
#: Sections every chapter page has (level-2 headings).
CHAPTER_SECTIONS = ("Overview", "Summary")


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


@dataclass
class _Figure:
    caption: str = ""
    numbered: bool = False
    images: int = 0


class _DomParser(HTMLParser):
    """Collects what the check needs from a rendered DOM: images, figures and captions, outputs, headings."""

    _VOID = {"img", "br", "hr", "meta", "link", "input", "source", "area", "base", "col", "embed", "wbr", "track"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, frozenset[str]]] = []
        self.images: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stderr_text: list[str] = []
        self.output_text: list[str] = []
        self.headings: list[tuple[int, str]] = []
        self.figures: list[_Figure] = []
        self.title = ""
        self.has_main = False
        self.browser_error = False
        self._in_title = False
        self._open_figures: list[_Figure] = []
        self._captions: list[list[str]] = []   # text of open <figcaption>s
        self._stderr: list[list[str]] = []     # text of open stderr outputs
        self._outputs: list[list[str]] = []    # text of open cell outputs
        self._heading: list[str] | None = None

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
            output = "cell_output" in inside or "output" in inside
            self.images.append(dict(src=a.get("src"), alt=a.get("alt") or "", output=output,
                                    figure=self._open_figures[-1] if self._open_figures else None))
            if output and self._open_figures:
                self._open_figures[-1].images += 1
            return
        if tag in self._VOID:
            return
        self.stack.append((tag, classes))
        if "traceback" in classes or ("output" in classes and "error" in classes):
            self.errors.append("a notebook error output (traceback)")
        if "stderr" in classes:
            self._stderr.append([])
        if "cell_output" in classes:
            self._outputs.append([])
        if tag == "figure":
            self._open_figures.append(_Figure())
        if tag == "figcaption":
            self._captions.append([])
        if "caption-number" in classes and self._open_figures:
            self._open_figures[-1].numbered = True
        if tag in ("h1", "h2", "h3") and self._heading is None:
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in self._VOID:
            return
        # pop to the matching tag (the DOM from Chromium is well formed; be tolerant anyway)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                for name, classes in reversed(self.stack[i:]):
                    self._close(name, classes)
                del self.stack[i:]
                break

    def _close(self, tag: str, classes: frozenset[str]) -> None:
        if "stderr" in classes and self._stderr:
            self.stderr_text.append("".join(self._stderr.pop()))
        if "cell_output" in classes and self._outputs:
            self.output_text.append("".join(self._outputs.pop()))
        if tag == "figcaption" and self._captions:
            text = " ".join("".join(self._captions.pop()).split())
            if self._open_figures:
                self._open_figures[-1].caption = text
        if tag == "figure" and self._open_figures:
            self.figures.append(self._open_figures.pop())
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            text = " ".join("".join(self._heading).split()).rstrip("#¶ ").strip()
            self.headings.append((int(tag[1]), text))
            self._heading = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        for buf in (*self._stderr, *self._outputs, *self._captions):
            buf.append(data)
        if self._heading is not None:
            self._heading.append(data)


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


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(html_dir).parts))


_REFRESH_RE = re.compile(r"""<meta\s+http-equiv=["']?refresh["']?\s+content=["']?\s*\d+\s*;\s*url=([^"'>\s]+)""",
                         re.IGNORECASE)


def _redirect_target(page: Path) -> str | None:
    """Target of a page that only redirects (``<meta http-equiv="refresh">``, e.g. Jupyter Book's index.html)."""
    head = page.read_text(errors="replace")[:2000]
    match = _REFRESH_RE.search(head)
    if match and "<body" not in head.lower():
        return match.group(1)
    return None




def _progress_lines(texts: Sequence[str]) -> list[str]:
    return [" ".join(line.split()) for text in texts for line in re.split(r"[\r\n]+", text)
            if PROGRESS_RE.search(line)]


def judge(report: PageReport, dom: str, layout: dict[str, Any], *, page: Path, html_dir: Path) -> None:
    """Apply every rule of the check to a rendered page (its DOM and :data:`browser.MEASURE_JS`'s layout).

    Parameters
    ----------
    report : PageReport
        Filled in place: ``problems``, ``notes``, ``images``, ``figures``.
    dom : str
        The DOM as the browser rendered it.
    layout : dict
        ``broken_images`` and ``overflowing_code`` as measured in the browser.
    page, html_dir : Path
        The page's file and the built book's folder (image files are resolved against them).
    """
    parser = _DomParser()
    parser.feed(dom)
    if parser.browser_error or not parser.has_main:
        report.problems.append("the page did not render (browser error page or no <main> element)")
    report.problems.extend(dict.fromkeys(parser.errors))
    for text in parser.stderr_text:
        if "Traceback (most recent call last)" in text:
            report.problems.append("a stderr output holds a Python traceback")
        elif not PROGRESS_RE.search(text):
            text = text.replace("Copy to clipboard", "")  # sphinx-copybutton's button label
            report.notes.append("stderr output: " + " ".join(text.split())[:80])
    progress = _progress_lines(parser.output_text)
    if progress:
        report.problems.append(f"progress-bar output in the page ({len(progress)} line(s), first "
                               f"{progress[0][:70]!r}): the kernel must run with TQDM_DISABLE=1 "
                               f"(helpers.book.execute does) and no bar may force disable=False")
    file_problems = {}
    for img in parser.images:
        problem = _check_img(img["src"], page, html_dir)
        if problem:
            file_problems[img["src"]] = problem
            report.problems.append(problem)
    for src in layout.get("broken_images", []):
        if src not in file_problems:
            report.problems.append(f"image {src[:80]} failed to load in the browser (naturalWidth 0)")
    for block in layout.get("overflowing_code", []):
        report.problems.append(f"a code line overflows its column by {block['excess']} px: {block['text'][:60]!r}")
    for block in layout.get("wide_outputs", []):
        # a note, not a failure: the book's CSS keeps such an output scrolling inside its cell, so the
        # page keeps its width (a page wider than the window is a failure, below)
        report.notes.append(f"an output (table or figure) is {block['excess']} px wider than its column and "
                               f"scrolls sideways: {block['text'][:60]!r}")
    if layout.get("page_overflow", 0) > 1:
        report.problems.append(f"the page is {layout['page_overflow']} px wider than the window: a reader has to "
                               "scroll sideways")
    report.images = len(parser.images)
    outputs = [img for img in parser.images if img["output"]]
    report.figures = len(outputs)
    if not report.chapter:
        return
    if report.figures == 0:
        report.problems.append("a notebook chapter without any figure (no image in a cell output)")
    found = {text for level, text in parser.headings if level == 2}
    for section in CHAPTER_SECTIONS:
        if section not in found:
            report.problems.append(f"a chapter page without its {section} section (no '## {section}' heading)")
    uncaptioned = sum(1 for img in outputs if img["figure"] is None or not img["figure"].caption)
    if uncaptioned:
        report.problems.append(f"{uncaptioned} of {len(outputs)} figure(s) have no caption: give each figure cell "
                               f"metadata mystnb.figure.caption and .name")
    unnumbered = [f for f in parser.figures if f.images and f.caption and not f.numbered]
    if unnumbered:
        report.problems.append(f"{len(unnumbered)} figure caption(s) are not numbered (first "
                               f"{unnumbered[0].caption[:50]!r}): numfig numbers figures with a mystnb.figure.name")


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
    rendering = browser.render(chromium, page, profile=profile, screenshot=shot, timeout=timeout)
    report.notes.extend(rendering.notes)
    if not rendering.ok or not rendering.dom.strip():
        report.problems.append(f"Chromium could not load the page ({rendering.error or 'empty DOM'})")
        return report
    judge(report, rendering.dom, rendering.layout, page=page, html_dir=html_dir)
    if shot is not None:
        if rendering.screenshot is not None and shot.is_file() and shot.stat().st_size > 0:
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
    """Open every built page in headless Chromium and check what a reader would see (the rules: module docstring).

    Chromium must be installed (``python -m helpers.book setup-check``); it
    runs with :data:`helpers.book.browser.CHROMIUM_FLAGS` and a fresh
    profile per page, driven over the DevTools pipe
    (:func:`helpers.book.browser.render`).

    Parameters
    ----------
    html_dir : path, optional
        The built book (default ``<root>/_build/html``).
    root : path, optional
        Repository root, used for the default ``html_dir`` (default: the current folder).
    screenshots : bool
        Save a full-page PNG of every page next to ``html_dir`` (``../screenshots``).
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
    BookError
        Chromium is not installed (the message says how to set it up).
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
    if not selected:
        raise BookInputError(f"no pages to check in {html_dir}")
    chromium = browser.find_chromium()
    shots_dir = html_dir.parent / "screenshots"
    if screenshots:
        shots_dir.mkdir(parents=True, exist_ok=True)
    print(f"checking {len(selected)} page(s) of {html_dir} in headless Chromium")
    with tempfile.TemporaryDirectory(prefix="book-check-") as profiles:
        jobs = [(page, Path(profiles) / f"profile{k}") for k, page in enumerate(selected)]
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
