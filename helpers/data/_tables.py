"""Shared input helpers of the loaders: CSV tables with column checks, box
annotations (RSNA layout), argument checks and finding image files by stem."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from helpers.data.errors import DataError

__all__ = [
    "MIN_SOURCE_SIZE",
    "Allocator",
    "zeros_allocator",
    "read_table",
    "BoxAnnotation",
    "parse_boxes",
    "check_boxes_inside",
    "check_image_size",
    "check_limit",
    "check_min_source_size",
    "check_source_size",
    "image_path",
    "check_inside",
    "progress_bar",
    "find_files",
    "one_file",
]

#: Smallest short side, in pixels, of a source image the loaders accept (their ``min_source_size`` default).
#: Below it the annotations say little: a box or region blown up to the working size covers most of the image
#: (a 1 x 1 image becomes a 100 % mask). The book's smallest working size is 32 too.
MIN_SOURCE_SIZE = 32

#: ``allocate(name, shape, dtype)``: the zero-filled ``"images"`` / ``"masks"`` array a loader decodes into.
Allocator = Callable[[str, tuple, Any], np.ndarray]


def zeros_allocator(name: str, shape: tuple, dtype: Any) -> np.ndarray:
    """The loaders' default :data:`Allocator`: arrays in memory (``numpy.zeros``)."""
    return np.zeros(shape, dtype)


#: Strings pandas reads as missing by default; the loaders keep them for the number columns only, so that an
#: id spelled ``NA``, ``null``, ``None`` or ``nan`` stays that id.
_NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
               "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def read_table(path: Path, required: list[str], *, id_column: str, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV with pandas, check its columns, keep ids as strings.

    The id column (and ``text_columns``) are read literally: ``NA``,
    ``null``, ``None`` or ``nan`` there are ids, not missing values; only an
    empty field is missing. The other columns read pandas' usual missing-value
    spellings as NaN (an empty box is ``,,,,``).

    Column names are compared after stripping surrounding whitespace (the
    SIIM file's header is ``ImageId, EncodedPixels``), and the frame's columns
    are renamed to the stripped names. The frame gets a ``_line`` column: the
    line of each row in the file (the header is line 1).

    Raises
    ------
    DataError
        When the file is missing, unreadable, or lacks a required column; the
        message names the file, the missing columns and the expected header.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation table {str(path)!r} does not exist; expected a CSV with header {','.join(required)}")
    text_columns = {id_column, *text_columns}
    try:
        header = pd.read_csv(path, nrows=0).columns
        # ids (and other name columns) are read literally: only an empty field is missing there
        na_values = {c: ([""] if str(c).strip() in text_columns else list(_NA_STRINGS)) for c in header}
        df = pd.read_csv(path, dtype={c: str for c in header if str(c).strip() in text_columns},
                         keep_default_na=False, na_values=na_values, skipinitialspace=False)
    except Exception as exc:  # parser errors, encoding errors, empty file
        raise DataError(f"cannot read {str(path)!r} as CSV (expected header {','.join(required)}): {type(exc).__name__}: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{str(path)!r} lacks column(s) {', '.join(missing)}; found {', '.join(map(repr, df.columns))}; "
            f"expected header: {','.join(required)}"
        )
    if df[id_column].isna().any():
        line = int(np.flatnonzero(df[id_column].isna().to_numpy())[0]) + 2
        raise DataError(f"{str(path)!r} line {line}: empty {id_column}")
    df[id_column] = df[id_column].str.strip()
    if (df[id_column] == "").any():
        line = int(np.flatnonzero((df[id_column] == "").to_numpy())[0]) + 2
        raise DataError(f"{str(path)!r} line {line}: empty {id_column}")
    df["_line"] = np.arange(len(df)) + 2
    return df


@dataclass
class BoxAnnotation:
    """The label and boxes of one image, in the image's own pixel coordinates."""

    label: int
    boxes: np.ndarray  # (k, 4) float64 x, y, width, height
    lines: list[int] = field(default_factory=list)  # CSV line of each box
    first_line: int = 0


def parse_boxes(df: pd.DataFrame, path: Path, *, id_column: str, limit: int | None = None) -> dict[str, BoxAnnotation]:
    """Group an ``id,x,y,width,height,Target`` table by image, in order of first appearance.

    Rules: one row per box; a row with ``Target`` 0 has an empty box; a row
    with ``Target`` 1 has a box, or an empty box when only the image-level
    label is known; all rows of an image share its ``Target``; exact duplicate
    rows count once.

    Raises
    ------
    DataError
        For a ``Target`` other than 0/1, a partly empty box, a box on a
        ``Target`` 0 row, a non-positive width or height, or an image whose
        rows disagree on ``Target``; the message names the file, line and id.
    """
    cols = [id_column, "x", "y", "width", "height", "Target"]
    df = df.drop_duplicates(subset=cols, keep="first")
    out: dict[str, BoxAnnotation] = {}
    box_cols = ["x", "y", "width", "height"]
    try:
        box_values = df[box_cols].apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{str(path)!r}: the box columns x, y, width, height must be numbers or empty: {exc}") from exc
    targets = pd.to_numeric(df["Target"], errors="coerce").to_numpy()
    ids = df[id_column].to_numpy()
    lines = df["_line"].to_numpy()
    for row in range(len(df)):
        image_id, line, target, box = ids[row], int(lines[row]), targets[row], box_values[row]
        where = f"{str(path)!r} line {line} ({id_column} {image_id!r})"
        if not (target == 0 or target == 1):
            raise DataError(f"{where}: Target must be 0 or 1, got {df['Target'].iloc[row]!r}")
        empty = np.isnan(box)
        if empty.any() and not empty.all():
            raise DataError(f"{where}: the box x, y, width, height is partly empty ({box.tolist()}); give all four or none")
        if target == 0 and not empty.all():
            raise DataError(f"{where}: a Target 0 row must have an empty box, got {box.tolist()}")
        if not empty.any() and (box[2] <= 0 or box[3] <= 0):
            raise DataError(f"{where}: box width and height must be positive, got width {box[2]} height {box[3]}")
        ann = out.get(image_id)
        if ann is None:
            if limit is not None and len(out) >= limit:
                continue
            ann = out[image_id] = BoxAnnotation(label=int(target), boxes=np.zeros((0, 4)), first_line=line)
        elif ann.label != int(target):
            raise DataError(f"{where}: Target {int(target)} contradicts Target {ann.label} on line {ann.first_line} for the same image")
        if not empty.any():
            ann.boxes = np.vstack([ann.boxes, box[None]])
            ann.lines.append(line)
    return out


def check_boxes_inside(ann: BoxAnnotation, *, height: int, width: int, path: Path, image_id: str, image_file: Path, id_column: str) -> None:
    """Raise when a box reaches outside the ``height x width`` image (a 1e-6 pixel tolerance)."""
    tol = 1e-6
    for box, line in zip(ann.boxes, ann.lines):
        x, y, w, h = box
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            raise DataError(
                f"{str(path)!r} line {line} ({id_column} {image_id!r}): box x={x:g} y={y:g} width={w:g} height={h:g} "
                f"reaches outside the {width}x{height} (columns x rows) image {str(image_file)!r}"
            )


def check_image_size(image_size) -> int:
    """``image_size`` as an int, or a :class:`DataError`."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or int(image_size) < 8:
        raise DataError(f"image_size must be an integer number of pixels >= 8, got {image_size!r}")
    return int(image_size)


def check_limit(limit) -> int | None:
    """``limit`` as None or a positive int, or a :class:`DataError`."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or int(limit) < 1:
        raise DataError(f"limit must be None or a positive integer number of images, got {limit!r}")
    return int(limit)


def stratified_sample(ids: list[str], labels, n: int | None, *, seed: int) -> list[str]:
    """A seeded, label-stratified subsample of ``n`` of ``ids``, in their original order.

    Each label keeps its share of ``n`` (largest-remainder rounding, ties to
    the smaller label); the images of a label are drawn without replacement
    with ``numpy.random.default_rng([seed, 0x5A3])``. ``n`` ``None`` or at
    least ``len(ids)`` keeps every id.

    Raises
    ------
    DataError
        When ``n`` is not ``None`` or a positive integer.
    """
    n = check_limit(n)
    if n is None or n >= len(ids):
        return list(ids)
    labels = np.asarray(labels, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / len(ids)
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")  # largest remainder first
    take[order[: n - int(take.sum())]] += 1
    rng = np.random.default_rng([int(seed), 0x5A3])
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
                           for c, k in zip(classes, take)])
    return [ids[i] for i in np.sort(keep)]


def check_min_source_size(min_source_size) -> int:
    """``min_source_size`` as a positive int, or a :class:`DataError`."""
    if isinstance(min_source_size, bool) or not isinstance(min_source_size, (int, np.integer)) or int(min_source_size) < 1:
        raise DataError(f"min_source_size must be a positive integer number of pixels, got {min_source_size!r}")
    return int(min_source_size)


def check_source_size(image: np.ndarray, *, minimum: int, image_file: Path, image_id: str, id_column: str) -> None:
    """Raise when the source image's short side is below ``minimum`` pixels (default :data:`MIN_SOURCE_SIZE`)."""
    h, w = image.shape[:2]
    if min(h, w) < minimum:
        raise DataError(
            f"image {str(image_file)!r} ({id_column} {image_id!r}) is {w}x{h} (columns x rows) pixels; source images "
            f"must be at least {minimum} px on the short side (MIN_SOURCE_SIZE = {MIN_SOURCE_SIZE}): a smaller one "
            f"blown up to the working size turns its boxes into most of the image"
        )


def _plain_name(image_id: str, *, table: Path, line: int, id_column: str) -> None:
    bad = (not image_id or image_id in (".", "..") or "/" in image_id or "\\" in image_id or "\0" in image_id
           or os.path.isabs(image_id))
    if bad:
        raise DataError(
            f"{str(table)!r} line {line}: {id_column} {image_id!r} is not a plain file name (it holds a path "
            f"separator, '..' or an absolute path); ids name files inside the dataset's folder"
        )


def check_inside(path: Path, root: Path, *, image_id: str, table: Path, line: int, id_column: str) -> Path:
    """``path`` resolved (symlinks followed); a :class:`DataError` when that lies outside ``root``."""
    resolved = Path(path).resolve()
    base = Path(root).resolve()
    if resolved != base and base not in resolved.parents:
        raise DataError(
            f"{str(table)!r} line {line}: the file of {id_column} {image_id!r}, {str(path)!r}, resolves to "
            f"{str(resolved)!r}, outside the dataset folder {str(base)!r}; copy the image into the folder instead "
            f"of linking it"
        )
    return resolved


def image_path(folder: Path, image_id: str, suffix: str, *, root: Path, table: Path, line: int, id_column: str) -> Path:
    """``folder / (image_id + suffix)`` for an id that is a plain file name and a file that stays inside ``root``.

    Raises
    ------
    DataError
        An id with a path separator, ``..`` or an absolute path, or a file
        (after following symlinks) outside ``root``; the message names the
        id, the table and its line.
    """
    _plain_name(image_id, table=table, line=line, id_column=id_column)
    path = Path(folder) / f"{image_id}{suffix}"
    check_inside(path, root, image_id=image_id, table=table, line=line, id_column=id_column)
    return path


def progress_bar(iterable, *, desc: str, progress: bool | None):
    """tqdm over ``iterable``; ``progress=None`` shows it only on a terminal, ``False`` never.

    ``True`` leaves ``disable`` to tqdm's default, so that ``TQDM_DISABLE=1``
    (set for the book's papermill kernels) still hides the bar: passing
    ``disable=False`` would override the environment and draw the bar into
    the executed notebook.
    """
    from tqdm.auto import tqdm

    if progress is False:
        options = {"disable": True}
    elif progress is None and "TQDM_DISABLE" not in os.environ:
        options = {"disable": None}  # tqdm: only when the output is a terminal
    else:
        options = {}  # tqdm's default, which TQDM_* environment variables override
    return tqdm(iterable, desc=desc, leave=False, **options)


def find_files(root: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """Every file under ``root`` (recursively) whose suffix is in ``suffixes`` (case-insensitive), by stem."""
    index: dict[str, list[Path]] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            stem, dot, ext = name.rpartition(".")
            if dot and f".{ext.lower()}" in suffixes:
                index.setdefault(stem, []).append(Path(folder) / name)
    return index


def one_file(index: dict[str, list[Path]], image_id: str, *, root: Path, table: Path, what: str,
             line: int, id_column: str) -> Path:
    """The one file named ``image_id`` (any listed suffix) below ``root``, which must resolve inside ``root``."""
    _plain_name(image_id, table=table, line=line, id_column=id_column)
    found = index.get(image_id, [])
    if not found:
        raise DataError(f"no {what} named {image_id!r} under {str(root)!r} (listed in {str(table)!r})")
    if len(found) > 1:
        raise DataError(f"image {image_id!r} of {str(table)!r} is ambiguous: {', '.join(sorted(map(str, found)))}")
    check_inside(found[0], root, image_id=image_id, table=table, line=line, id_column=id_column)
    return found[0]
