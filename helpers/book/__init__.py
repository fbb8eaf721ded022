"""Execute the book's notebooks with papermill, build the HTML book and check it in a browser.

One module per concern; this package only re-exports their public names:

=============================  ====================================================================
:mod:`helpers.book.structure`  the chapter structure of ``notebooks/*.ipynb`` and the pinned Colab cell
:mod:`helpers.book.execution`  papermill runs in :data:`CHAPTERS` order, timings, executed copies as pages
:mod:`helpers.book.build`      the table of contents of what was executed, the Jupyter Book HTML build
:mod:`helpers.book.browser`    headless Chromium: setup (install), rendering a page over the DevTools pipe
:mod:`helpers.book.page_check` the page check: the rules a reader would complain about, screenshots
:mod:`helpers.book.cli`        ``python -m helpers.book {execute,html,setup-check,check,structure,pin-colab}``
=============================  ====================================================================

Imports flow one way: ``_base`` (chapters, folders, errors) ← ``structure`` ←
``execution``; ``_base`` ← ``build``; ``_base`` ← ``browser`` ← ``page_check``; all
of them ← ``cli``.
"""

from __future__ import annotations

from helpers.book._base import (
    CHAPTERS,
    EXECUTED_DIR,
    NOTEBOOKS_DIR,
    BookError,
    BookInputError,
    BuildFailed,
    CacheChanged,
    CheckFailed,
    NotebookFailed,
    NotebookStructureError,
)
from helpers.book.browser import CHROMIUM_FLAGS, find_chromium, install_chromium
from helpers.book.build import available_toc, html
from helpers.book.page_check import CHAPTER_SECTIONS, PROGRESS_RE, PageReport, check
from helpers.book.cli import main
from helpers.book.execution import KERNEL_ENV, PLUMBING_TAGS, NotebookRun, execute, parse_params, tag_plumbing
from helpers.book.structure import (
    BOOK_VERSION,
    PACKAGE_SPEC,
    REPOSITORY_URL,
    check_notebook_structure,
    colab_cell_source,
    pin_colab,
)

__all__ = [
    "CHAPTERS",
    "EXECUTED_DIR",
    "NOTEBOOKS_DIR",
    "REPOSITORY_URL",
    "BOOK_VERSION",
    "PACKAGE_SPEC",
    "CHROMIUM_FLAGS",
    "KERNEL_ENV",
    "PLUMBING_TAGS",
    "PROGRESS_RE",
    "CHAPTER_SECTIONS",
    "BookError",
    "BookInputError",
    "NotebookStructureError",
    "NotebookFailed",
    "BuildFailed",
    "CacheChanged",
    "CheckFailed",
    "NotebookRun",
    "PageReport",
    "parse_params",
    "execute",
    "tag_plumbing",
    "html",
    "check",
    "find_chromium",
    "install_chromium",
    "check_notebook_structure",
    "colab_cell_source",
    "pin_colab",
    "available_toc",
    "main",
]
