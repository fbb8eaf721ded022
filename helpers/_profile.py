"""Where the book's time goes: one JSON line per training and per map computation, when asked for.

Set ``SALIENCY_BOOK_PROFILE=/path/profile.jsonl`` (``bench/bench_book.py``
does) and every model training and every map computation appends
``{"kind", "what", "seconds", "chapter", "pid", ...}`` to that file;
``helpers.book execute`` names the chapter of each kernel in
``SALIENCY_BOOK_CHAPTER``. Without the variable nothing is written and
nothing is measured beyond a clock read.

Lines are appended with one ``write`` each in append mode, so chapters
running side by side (``--jobs 2``) can share the file.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["PROFILE_ENV", "CHAPTER_ENV", "record"]

#: The file the records go to (unset: no record).
PROFILE_ENV = "SALIENCY_BOOK_PROFILE"
#: The chapter a kernel runs (set by ``helpers.book execute``).
CHAPTER_ENV = "SALIENCY_BOOK_CHAPTER"


def record(kind: str, what: str, seconds: float, **fields: Any) -> None:
    """Append one record (``kind`` is ``"training"`` or ``"maps"``) when :data:`PROFILE_ENV` is set."""
    path = os.environ.get(PROFILE_ENV)
    if not path:
        return
    row = {"kind": kind, "what": what, "seconds": round(float(seconds), 3),
           "chapter": os.environ.get(CHAPTER_ENV, ""), "pid": os.getpid(), **fields}
    line = json.dumps(row, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
