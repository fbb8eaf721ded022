"""Bringing images, masks and boxes from a file's own size to the working size.

Images are resampled with ``skimage.transform.resize`` (bilinear, with
Gaussian anti-aliasing when shrinking). Masks use an *area rule*: an output
pixel is inside when more than half of its area is covered by the input mask.
Non-square inputs are stretched to the square working size (as Arun et al.
did when they resized every film to 320 x 320), boxes being scaled along
each axis.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import resize as _sk_resize

__all__ = ["resize_image", "resize_mask", "boxes_mask", "tight_box", "scale_boxes"]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """``float32 (size, size)`` in ``[0, 1]``; returned unchanged (as float32) when already that size."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=False)
    out = _sk_resize(image.astype(np.float64), (size, size), order=1, mode="reflect", anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix: share of output cell ``i`` covered by input cell ``j``.

    Written by hand because no library here offers exact area-weighted
    resampling of a binary mask (``skimage.transform.resize`` interpolates, and
    ``block_reduce`` needs integer factors).
    """
    edges_out = np.arange(n_out + 1) * (n_in / n_out)  # output cell borders in input pixels
    lo = np.maximum(edges_out[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges_out[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(hi - lo, 0.0, None) / (n_in / n_out)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a boolean mask with the area > 1/2 rule.

    Output pixel ``(i, j)`` is inside when the input mask covers more than
    half of its area. A non-empty mask never becomes empty: when no output
    pixel passes the rule (a region smaller than half an output pixel), the
    output pixel with the largest covered share is kept, so that a positive
    image keeps a ground-truth region.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == (size, size):
        return mask.copy()
    rows = _area_matrix(mask.shape[0], size)
    cols = _area_matrix(mask.shape[1], size)
    share = rows @ mask.astype(np.float64) @ cols.T
    out = share > 0.5
    if mask.any() and not out.any():
        out[np.unravel_index(np.argmax(share), share.shape)] = True
    return out


def boxes_mask(boxes: np.ndarray, size: int) -> np.ndarray:
    """Union of boxes (working-size pixels) as a ``bool (size, size)`` mask.

    A pixel is inside a box when its centre is; a box too small to contain a
    pixel centre marks the pixel that contains the box's centre.
    """
    out = np.zeros((size, size), bool)
    centres = np.arange(size) + 0.5
    for x, y, w, h in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cols = (centres >= x) & (centres <= x + w)
        rows = (centres >= y) & (centres <= y + h)
        if cols.any() and rows.any():
            out[np.ix_(rows, cols)] = True
        else:
            r = min(int(y + h / 2.0), size - 1)
            c = min(int(x + w / 2.0), size - 1)
            out[r, c] = True
    return out


def tight_box(mask: np.ndarray) -> np.ndarray:
    """``(4,)`` float64 box ``x, y, width, height`` around a non-empty mask (pixel edges)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], dtype=np.float64)


def scale_boxes(boxes: np.ndarray, *, from_height: int, from_width: int, size: int) -> np.ndarray:
    """Boxes from an ``from_height x from_width`` image to the ``size x size`` working image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    sx, sy = size / from_width, size / from_height
    b[:, [0, 2]] *= sx
    b[:, [1, 3]] *= sy
    return b
