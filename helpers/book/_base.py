"""What every part of :mod:`helpers.book` shares: the chapter list, the book's folders and the errors.

The other modules import from here and never from each other's private names
the wrong way round: ``structure`` ← ``execute``, ``build``, ``check`` ← ``cli``
(see :mod:`helpers.book`).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "CHAPTERS",
    "FIRST_CHAPTER",
    "LAST_CHAPTER",
    "chapter_needs",
    "NOTEBOOKS_DIR",
    "EXECUTED_DIR",
    "BookError",
    "BookInputError",
    "NotebookStructureError",
    "NotebookFailed",
    "BuildFailed",
    "CheckFailed",
    "CacheChanged",
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
    "08_shortcuts",
    "05_scorecard",
)

#: The chapter every other one reads models and data from, and the one that reads every other chapter's tables.
FIRST_CHAPTER = "00_data_and_models"
LAST_CHAPTER = "05_scorecard"


def chapter_needs(name: str, planned: Sequence[str]) -> tuple[str, ...]:
    """The planned chapters that must have finished before ``name`` starts (``execute --jobs N``).

    Chapter 00 generates the data and trains the classifiers every chapter
    reads; the scorecard reads every chapter's verdicts. The chapters in
    between only share cache entries (models, maps), which
    :func:`helpers._cache.entry_lock` keeps from being computed twice, so
    they may run side by side in any order.
    """
    if name == FIRST_CHAPTER:
        return ()
    if name == LAST_CHAPTER:
        return tuple(n for n in planned if n != LAST_CHAPTER)
    return tuple(n for n in planned if n == FIRST_CHAPTER)


#: Where the parameterized sources live (relative to the repository root).
NOTEBOOKS_DIR = "notebooks"
#: Where the executed copies go; ``_toc.yml`` refers to them.
EXECUTED_DIR = "book/executed"


class BookError(Exception):
    """A step of the book pipeline failed; the message says which and what to do."""


class BookInputError(BookError, ValueError):
    """A bad argument: unknown parameter, preset or chapter, missing folder."""


class NotebookStructureError(BookInputError):
    """A source notebook does not follow the chapter structure (see :mod:`helpers.book.structure`)."""


class NotebookFailed(BookError):
    """A notebook raised while papermill executed it."""


class BuildFailed(BookError):
    """``jupyter-book build`` failed (or, in strict mode, warned)."""


class CheckFailed(BookError):
    """A built page failed the browser check."""


class CacheChanged(BookError):
    """Chapters run after ``precompute`` trained a model or computed maps that the plan had not."""


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
