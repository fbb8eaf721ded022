"""Tiny hand-made data for the trainable-saliency tests: a bright disk in the left half."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.data.imageset import ImageSet


def left_blob_set(n: int, *, size: int = 32, seed: int = 0, side: str = "left") -> ImageSet:
    """Noise images; every odd image is positive with a bright disk in the ``side`` half.

    The disk (radius size/8) is the ground-truth mask; its bounding box is the box.
    """
    rng = np.random.default_rng(seed)
    images = (0.2 + 0.3 * rng.random((n, size, size))).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.int64)
    masks = np.zeros((n, size, size), dtype=bool)
    boxes = []
    yy, xx = np.mgrid[:size, :size]
    radius = size // 8
    for i in range(n):
        if labels[i]:
            cy = int(rng.integers(size // 4, 3 * size // 4))
            cx = int(rng.integers(radius + 1, size // 2 - radius))
            if side == "right":
                cx = size - 1 - cx
            disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
            masks[i] = disk
            images[i][disk] += 0.4
            boxes.append(np.array([[cx - radius, cy - radius, 2 * radius + 1, 2 * radius + 1]], dtype=np.float64))
        else:
            boxes.append(np.zeros((0, 4), dtype=np.float64))
    return ImageSet(
        images=np.clip(images, 0, 1).astype(np.float32),
        labels=labels,
        masks=masks,
        boxes=boxes,
        ids=[f"img{seed}-{i}" for i in range(n)],
        patient_ids=[f"pat{seed}-{i}" for i in range(n)],
        source="synthetic",
    )


@pytest.fixture(scope="session")
def blob_data():
    """96 images (48 positive) and a train/val/test split."""
    data = left_blob_set(96, size=32, seed=3)
    splits = {"train": np.arange(0, 64), "val": np.arange(64, 80), "test": np.arange(80, 96)}
    return data, splits

