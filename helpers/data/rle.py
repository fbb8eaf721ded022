"""Run-length encoding of the SIIM-ACR Pneumothorax challenge (stage 1).

The organisers' ``train-rle.csv`` stores each region as pairs ``start length``
over the image flattened in **column-major** order (their ``rle2mask`` reshapes
to ``(width, height)`` and the caller transposes), where each ``start`` is
counted from the **end of the previous run** (from pixel 0 for the first run).
``-1`` marks an image without pneumothorax. This is not the absolute,
row-major RLE of other Kaggle challenges, so it is written here by hand; the
stage-2 files of the challenge switched to absolute starts and are not read by
this module.

References
----------
.. [1] SIIM-ACR Pneumothorax Segmentation, ``mask_functions.py`` (``mask2rle``,
   ``rle2mask``), Kaggle, 2019.
.. [2] Arun et al., "Assessing the trustworthiness of saliency maps for
   localizing abnormalities in medical imaging", Radiology: AI, 2021.
"""

from __future__ import annotations

import numpy as np

from helpers.data.errors import DataError

__all__ = ["rle_encode", "rle_decode", "EMPTY_RLE"]

#: The string of an image without any region.
EMPTY_RLE = "-1"


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask as a SIIM stage-1 run-length string.

    Parameters
    ----------
    mask : array_like of bool or {0, 1}, shape (height, width)
        The region; any non-zero value counts as inside.

    Returns
    -------
    str
        ``"start length start length ..."`` with relative starts over the
        column-major flattening, or ``"-1"`` for an empty mask.

    Raises
    ------
    DataError
        When ``mask`` is not 2-D.

    Examples
    --------
    >>> m = np.zeros((3, 2), bool); m[1:, 0] = True; m[0, 1] = True
    >>> rle_encode(m)
    '1 3'
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"rle_encode() needs a 2-D mask (height, width), got shape {m.shape}")
    flat = (m != 0).ravel(order="F").astype(np.int8)
    edges = np.diff(np.concatenate(([0], flat, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if starts.size == 0:
        return EMPTY_RLE
    lengths = ends - starts
    previous_end = np.concatenate(([0], ends[:-1]))
    pairs = np.stack([starts - previous_end, lengths], axis=1).ravel()
    return " ".join(map(str, pairs.tolist()))


def rle_decode(rle: str, *, height: int, width: int, name: str = "RLE string") -> np.ndarray:
    """Decode a SIIM stage-1 run-length string into a boolean mask.

    Parameters
    ----------
    rle : str
        ``"-1"`` (empty) or pairs ``start length`` with starts relative to the
        end of the previous run over the column-major flattening. Surrounding
        whitespace is ignored.
    height, width : int
        Size of the image the string was encoded on (the DICOM's ``Rows``
        and ``Columns``).
    name : str, optional
        How to name the string in error messages (e.g. file, row, ImageId).

    Returns
    -------
    numpy.ndarray
        ``bool`` array of shape ``(height, width)``.

    Raises
    ------
    DataError
        For a string that is not whitespace-separated non-negative integers
        in pairs, for a zero or negative run length, and for a run that goes
        past the last pixel.
    """
    if not isinstance(rle, str):
        raise DataError(f"{name}: expected a run-length string ('-1' or 'start length ...'), got {rle!r}")
    if int(height) < 1 or int(width) < 1:
        raise DataError(f"{name}: height and width must be positive, got {height}x{width}")
    text = rle.strip()
    mask = np.zeros(int(height) * int(width), dtype=np.int8)
    if text == EMPTY_RLE:
        return mask.astype(bool).reshape((height, width), order="F")
    tokens = text.split()
    if not tokens:
        raise DataError(f"{name}: empty run-length string; expected '-1' for an empty mask or 'start length ...' pairs")
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("+-").isdigit())
        raise DataError(f"{name}: {bad!r} is not an integer; expected '-1' or whitespace-separated 'start length' integer pairs") from None
    if values.size % 2:
        raise DataError(f"{name}: odd number of integers ({values.size}); expected 'start length' pairs")
    starts, lengths = values[0::2], values[1::2]
    if (starts < 0).any():
        raise DataError(f"{name}: negative start offset {starts[starts < 0][0]}; offsets count from the end of the previous run and are >= 0 ('-1' alone marks an empty mask)")
    if (lengths <= 0).any():
        raise DataError(f"{name}: run length {lengths[lengths <= 0][0]} is not positive")
    # absolute start of run j = sum of all previous offsets and lengths + its own offset
    absolute = np.cumsum(starts) + np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ends = absolute + lengths
    if ends[-1] > mask.size:
        raise DataError(
            f"{name}: run ending at pixel {int(ends[-1])} goes past the {height}x{width} image "
            f"({mask.size} pixels); was it encoded at another image size?"
        )
    # difference array: +1 where a run starts, -1 where it ends (vectorized fill)
    np.add.at(mask, absolute, 1)
    np.add.at(mask, ends[ends < mask.size], -1)
    return (np.cumsum(mask) > 0).reshape((height, width), order="F")
