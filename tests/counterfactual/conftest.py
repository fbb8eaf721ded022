"""Fixtures of the counterfactual tests: a classifier that looks only at a known square, and its images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


class RegionClassifier(nn.Module):
    """Two-class classifier whose abnormal logit sees only the square ``region`` of the image.

    A fixed 3x3 mean filter, a ReLU of its excess over ``level``, then the mean
    of that response over the square ``(top, left, side)``: the abnormal logit
    is ``gain * (mean - offset)``, the normal logit 0. Pixels outside the
    square (beyond the filter's 1-pixel reach) cannot change the output.
    """

    def __init__(self, size: int, region: tuple[int, int, int], *, level: float = 0.5, gain: float = 40.0,
                 offset: float = 0.05) -> None:
        super().__init__()
        self.architecture = "region"
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=True)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 9.0)
            self.conv.bias.fill_(-level)
        self.relu = nn.ReLU()
        top, left, side = region
        window = torch.zeros(1, 1, size, size)
        window[..., top:top + side, left:left + side] = 1.0
        self.register_buffer("window", window)
        self.gain, self.offset = gain, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        response = self.relu(self.conv(x))
        pooled = (response * self.window).sum(dim=(1, 2, 3)) / self.window.sum()
        abnormal = self.gain * (pooled - self.offset)
        return torch.stack([torch.zeros_like(abnormal), abnormal], dim=1)


def two_squares(n: int, *, size: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` images ``(n, size, size)``: a smooth dim background, a bright square in the known region and a
    bright distractor square elsewhere (its position varies with the seed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    side = size // 4
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        image = 0.2 + 0.1 * xx + 0.05 * yy + 0.02 * rng.standard_normal((size, size))
        image[region_of(size)[0]:region_of(size)[0] + side, region_of(size)[1]:region_of(size)[1] + side] = 0.9
        top = int(rng.integers(size // 2 + 2, size - side - 1))
        left = int(rng.integers(1, size // 2 - side))
        image[top:top + side, left:left + side] = 0.9
        out[i] = np.clip(image, 0.0, 1.0)
    return out


def region_of(size: int) -> tuple[int, int, int]:
    """The known square ``(top, left, side)``: a quarter of the side, in the upper right quadrant."""
    side = size // 4
    return size // 8, size // 2 + size // 8, side



# The helpers above as fixtures: test modules do not import this conftest (module name clashes across folders).
@pytest.fixture(scope="session")
def region_classifier():
    """The :class:`RegionClassifier` class."""
    return RegionClassifier


@pytest.fixture(scope="session", name="region_of")
def _region_of_fixture():
    """The function :func:`region_of`."""
    return region_of


@pytest.fixture(scope="session", name="two_squares")
def _two_squares_fixture():
    """The function :func:`two_squares`."""
    return two_squares


def stripe_images(n: int, *, size: int = 32, period: float = 6.0, seed: int = 0) -> np.ndarray:
    """``n`` images of a periodic stripe texture: ``0.5 + 0.3 sin(2 pi (x cos a + y sin a) / period + phase)``.

    Orientation ``a`` (within 20 degrees of vertical stripes) and phase vary per image; a little seeded
    pixel noise (std 0.01). A harmonic fill of a square of it is flat; the stripes have a texture ratio of 1.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        a = rng.uniform(-0.35, 0.35)
        phase = rng.uniform(0, 2 * np.pi)
        image = 0.5 + 0.3 * np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period + phase)
        out[i] = np.clip(image + 0.01 * rng.standard_normal((size, size)), 0.0, 1.0)
    return out


def image_set(images: np.ndarray, labels) -> "object":
    """An :class:`helpers.data.ImageSet` of ``images`` with ``labels`` (empty masks and boxes)."""
    from helpers.data import ImageSet

    n = len(images)
    return ImageSet(images=np.ascontiguousarray(images, dtype=np.float32), labels=np.asarray(labels, dtype=np.int64),
                    masks=np.zeros(images.shape, bool), boxes=[np.zeros((0, 4)) for _ in range(n)],
                    ids=[f"img-{i}" for i in range(n)], patient_ids=[f"p-{i}" for i in range(n)], source="test")


def inpainter_settings(cache_dir, **overrides):
    """Smoke settings for a brief inpainter training at 32 px in ``cache_dir``."""
    from helpers.config import resolve

    values = dict(image_size=32, inpainter_steps=150, inpainter_batch_size=8, inpainter_crop=32,
                  inpainter_learning_rate=3e-3, inpainter_texture_weight=5.0)
    values.update(overrides)
    return resolve("smoke", cache_dir=str(cache_dir), **values)


@pytest.fixture(scope="session", name="stripe_images")
def _stripe_images_fixture():
    """The function :func:`stripe_images`."""
    return stripe_images


@pytest.fixture(scope="session", name="image_set")
def _image_set_fixture():
    """The function :func:`image_set`."""
    return image_set


@pytest.fixture(scope="session", name="inpainter_settings")
def _inpainter_settings_fixture():
    """The function :func:`inpainter_settings`."""
    return inpainter_settings


@pytest.fixture(scope="session")
def stripe_inpainter(tmp_path_factory):
    """``(weights_path, record, settings, data)``: an inpainter trained briefly (150 steps) on 48 stripe images.

    Images 0-47 are negatives (the training images), 48-55 positives (must be ignored); all in the train split.
    """
    from helpers.counterfactual import get_trained_inpainter

    images = stripe_images(56, seed=3)
    labels = [0] * 48 + [1] * 8
    data = image_set(images, labels)
    settings = inpainter_settings(tmp_path_factory.mktemp("inpainter-cache"))
    path, record = get_trained_inpainter(settings, data, {"train": np.arange(56)})
    return path, record, settings, data
