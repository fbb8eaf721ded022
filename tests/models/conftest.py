"""Tiny, fast fixtures for the model tests: 32 px toy images with a bright disc on positives."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import Settings
from helpers.data.imageset import ImageSet



def toy_imageset(n: int = 64, size: int = 32, seed: int = 0) -> ImageSet:
    """``n`` noisy images; odd indices are positives with a bright disc (their mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.4, 0.08, (n, size, size))
    labels = (np.arange(n) % 2).astype(np.int64)
    masks = np.zeros((n, size, size), bool)
    boxes = []
    for i in range(n):
        if labels[i]:
            r = size * rng.uniform(0.1, 0.2)
            cy, cx = rng.uniform(0.3, 0.7, 2) * size
            masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            images[i][masks[i]] += 0.3
            boxes.append(np.array([[cx - r, cy - r, 2 * r, 2 * r]]))
        else:
            boxes.append(np.zeros((0, 4)))
    return ImageSet(
        images=np.clip(images, 0, 1).astype(np.float32),
        labels=labels,
        masks=masks,
        boxes=boxes,
        ids=[f"toy-{seed}-{i}" for i in range(n)],
        patient_ids=[f"patient-{seed}-{i}" for i in range(n)],
        source="toy",
    )


@pytest.fixture
def toy():
    """Factory of toy image sets: ``toy(n, size, seed)``."""
    return toy_imageset


@pytest.fixture
def toy_splits():
    """Train/val/test index arrays of a 64-image toy set (both classes in each)."""
    return {"train": np.arange(0, 40), "val": np.arange(40, 52), "test": np.arange(52, 64)}


@pytest.fixture
def tiny_settings(tmp_path):
    """Settings for a one-epoch smallcnn on 32 px toy images, cached under ``tmp_path``."""
    return Settings(
        preset="smoke",
        image_size=32,
        architectures=("smallcnn",),
        epochs=1,
        batch_size=16,
        learning_rate=1e-3,
        patience=1,
        n_bootstrap=50,
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
        results_dir=str(tmp_path / "results"),
    )
