"""The in-memory dataset every loader returns (the data contract of the book).

An :class:`ImageSet` holds square grayscale images at the working size with
their image-level labels and ground-truth regions, whatever the source
(synthetic, RSNA, SIIM or a folder of files).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from helpers._cache import stable_hash
from helpers.data.errors import DataError

__all__ = ["ImageSet"]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images, labels and ground-truth regions at one working size.

    Attributes
    ----------
    images : numpy.ndarray
        ``float32`` array of shape ``(N, S, S)`` in ``[0, 1]``; bright means
        dense (the MONOCHROME2 convention).
    labels : numpy.ndarray
        ``int64`` array of shape ``(N,)`` with values in ``{0, 1}``; 1 is
        "abnormal" (lung opacity, pneumothorax).
    masks : numpy.ndarray
        ``bool`` array of shape ``(N, S, S)``: the annotated region of each
        image (union of its boxes or of its segmentation regions); all
        ``False`` when the image has no annotated region.
    boxes : list of numpy.ndarray
        One ``float64`` array of shape ``(k, 4)`` per image with the boxes
        ``x, y, width, height`` in working-size pixels (``x`` is the column of
        the left edge, ``y`` the row of the top edge); ``k = 0`` for negatives.
    ids : list of str
        Unique image identifiers (RSNA ``patientId``, SIIM ``ImageId``, file
        stem, or the synthetic id).
    patient_ids : list of str
        Patient of each image; splits keep a patient's images together.
    source : str
        Where the images came from (``"synthetic"``, ``"rsna"``, ``"siim"``,
        ``"folder"``).

    Raises
    ------
    DataError
        When the arrays do not have the shapes, types or values above.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    boxes: list
    ids: list
    patient_ids: list
    source: str

    def __post_init__(self) -> None:
        images, labels, masks = self.images, self.labels, self.masks
        if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.ndim != 3:
            raise DataError(
                f"ImageSet.images must be a float32 array of shape (N, S, S), got "
                f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
            )
        n, h, w = images.shape
        if h != w:
            raise DataError(f"ImageSet.images must be square, got {h}x{w} pixels")
        for start in range(0, n if images.size else 0, 256):  # in blocks: no N x S x S temporary for a memory map
            block = images[start:start + 256]
            if not np.isfinite(block).all() or block.min() < 0.0 or block.max() > 1.0:
                raise DataError("ImageSet.images must be finite and lie in [0, 1]")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (n,):
            raise DataError(
                f"ImageSet.labels must be an int64 array of shape ({n},), got "
                f"{getattr(labels, 'dtype', type(labels).__name__)} {getattr(labels, 'shape', '')}"
            )
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise DataError(f"ImageSet.labels must be 0 or 1, got values {sorted(set(labels.tolist()))}")
        if not isinstance(masks, np.ndarray) or masks.dtype != np.bool_ or masks.shape != images.shape:
            raise DataError(
                f"ImageSet.masks must be a bool array of shape {images.shape}, got "
                f"{getattr(masks, 'dtype', type(masks).__name__)} {getattr(masks, 'shape', '')}"
            )
        for name in ("boxes", "ids", "patient_ids"):
            value = getattr(self, name)
            if not isinstance(value, list) or len(value) != n:
                raise DataError(f"ImageSet.{name} must be a list of {n} entries, got {type(value).__name__} of length {len(value) if hasattr(value, '__len__') else '?'}")
        for i, b in enumerate(self.boxes):
            if not isinstance(b, np.ndarray) or b.ndim != 2 or b.shape[1] != 4 or b.dtype != np.float64:
                raise DataError(f"ImageSet.boxes[{i}] (image {self.ids[i]!r}) must be a float64 array of shape (k, 4), got {getattr(b, 'dtype', type(b).__name__)} {getattr(b, 'shape', '')}")
        if len(set(self.ids)) != n:
            seen: set = set()
            dup = next(x for x in self.ids if x in seen or seen.add(x))
            raise DataError(f"ImageSet.ids must be unique; {dup!r} occurs more than once")
        if not all(isinstance(x, str) for x in self.ids) or not all(isinstance(x, str) for x in self.patient_ids):
            raise DataError("ImageSet.ids and ImageSet.patient_ids must be strings")

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        """The working size ``S`` (pixels) of the square images."""
        return int(self.images.shape[1])

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageSet":
        """The images at ``indices`` (integer positions, in the order given).

        Raises
        ------
        DataError
            When an index is not an integer in ``[0, len(self))``.
        """
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"subset() takes a 1-D sequence of integer positions, got dtype {idx.dtype} shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataError(f"subset() indices must lie in [0, {len(self)}), got min {idx.min()} max {idx.max()}")
        return ImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            masks=self.masks[idx],
            boxes=[self.boxes[i] for i in idx],
            ids=[self.ids[i] for i in idx],
            patient_ids=[self.patient_ids[i] for i in idx],
            source=self.source,
        )

    def tensor(self):
        """Images as a ``torch.float32`` tensor of shape ``(N, 1, S, S)`` (a copy)."""
        import torch  # imported lazily: the data package does not need torch otherwise

        return torch.from_numpy(np.ascontiguousarray(self.images)[:, None].copy())

    def fingerprint(self) -> str:
        """Stable hash of ids, labels, pixels, masks and boxes (a cache key).

        Two image sets have the same fingerprint exactly when they hold the
        same images (bit for bit), labels, masks, boxes and ids, in the same
        order.
        """
        images = np.ascontiguousarray(self.images, dtype="<f4")
        masks = np.packbits(np.ascontiguousarray(self.masks), axis=None)
        boxes = np.concatenate([np.asarray(b, dtype="<f8").reshape(-1, 4) for b in self.boxes] or [np.zeros((0, 4))])
        counts = np.array([len(b) for b in self.boxes], dtype="<i8")
        return stable_hash(
            {
                "shape": list(self.images.shape),
                "ids": list(self.ids),
                "patient_ids": list(self.patient_ids),
                "labels": self.labels.tolist(),
                "images_sha256": hashlib.sha256(images.reshape(-1).view(np.uint8)).hexdigest(),  # no copy of a memory map
                "masks_sha256": hashlib.sha256(masks.tobytes()).hexdigest(),
                "boxes_sha256": hashlib.sha256(boxes.tobytes() + counts.tobytes()).hexdigest(),
            }
        )

    def __repr__(self) -> str:
        return (
            f"ImageSet(source={self.source!r}, n={len(self)}, size={self.size}, "
            f"positives={int(self.labels.sum())}, annotated={int(self.masks.any(axis=(1, 2)).sum()) if len(self) else 0})"
        )
