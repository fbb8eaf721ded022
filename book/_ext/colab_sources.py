"""Point the launch buttons of executed chapters at their parameterized source notebooks.

The book's chapter pages are the executed copies ``book/executed/<name>.ipynb``
that papermill writes; they are generated and not in git, so the launch
button that sphinx-book-theme builds for them
(``https://colab.research.google.com/github/<org>/<repo>/blob/<branch>/book/executed/<name>.ipynb``)
would open a file that does not exist on GitHub. This extension rewrites the
launch URLs of those pages to the source notebook ``notebooks/<name>.ipynb``,
which is in git and runs from scratch in Colab (its first cell installs the
book's package there).

Configuration (``_config.yml`` -> ``sphinx: config:``)::

    colab_sources:
      book/executed/: notebooks/

maps a docname prefix to the repository path prefix of the sources. A page
whose source notebook is missing from the repository, or whose launch
buttons cannot be found, is reported as a Sphinx warning (an error under
``-W``), never skipped silently.

The theme adds its launch buttons in an ``html-page-context`` handler with
priority 501 (sphinx-book-theme 1.3.0, ``header_buttons/launch.py``); this
handler runs after it (priority 502) and edits ``context["header_buttons"]``.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

__version__ = "1.0"


def _launch_group(context: dict) -> dict | None:
    for button in context.get("header_buttons") or []:
        if button.get("type") == "group" and button.get("label") == "launch-buttons":
            return button
    return None


def source_path(pagename: str, mapping: dict[str, str]) -> str | None:
    """Repository path of the source notebook of ``pagename``, or None when no prefix matches."""
    for doc_prefix, src_prefix in mapping.items():
        if pagename.startswith(doc_prefix):
            return f"{src_prefix}{pagename[len(doc_prefix):]}.ipynb"
    return None


def rewrite_launch_buttons(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler: swap the executed copy's path for the source's in launch URLs."""
    mapping = app.config.colab_sources or {}
    new_path = source_path(pagename, mapping)
    if new_path is None:
        return
    theme = app.config.html_theme_options or {}
    book_relpath = str(theme.get("path_to_docs", "")).strip("/")
    prefix = f"{book_relpath}/" if book_relpath else ""
    old_path = f"{prefix}{pagename}.ipynb"
    repo_root = Path(app.srcdir).joinpath(*[".."] * len(Path(book_relpath).parts)).resolve()
    if not (repo_root / new_path).is_file():
        LOGGER.warning(f"colab_sources: the launch button of {pagename} would open {new_path}, "
                       f"which is not in the repository ({repo_root / new_path})",
                       type="colab_sources", location=pagename)
    group = _launch_group(context)
    if group is None:
        LOGGER.warning(f"colab_sources: page {pagename} has no launch buttons to point at {new_path} "
                       f"(is launch_buttons.colab_url set and the page a notebook?)",
                       type="colab_sources", location=pagename)
        return
    changed = 0
    for button in group.get("buttons", []):
        url = button.get("url")
        if isinstance(url, str) and old_path in url:
            button["url"] = url.replace(old_path, new_path)
            changed += 1
    if not changed:
        LOGGER.warning(f"colab_sources: no launch URL of {pagename} contains {old_path}; "
                       f"the theme's URL format changed?", type="colab_sources", location=pagename)


def setup(app: Sphinx) -> dict:
    app.add_config_value("colab_sources", {}, "html", types=[dict])
    app.connect("html-page-context", rewrite_launch_buttons, priority=502)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
