"""Tiny models and images shared by the saliency tests (CPU, 16-32 px, one thread)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn


def tiny_cnn(*, seed: int = 0, functional_relu: bool = False) -> nn.Module:
    """conv-ReLU-conv-ReLU-avgpool-linear on (N, 1, S, S); ReLUs are modules unless ``functional_relu``."""

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
            self.conv2 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
            self.relu1 = nn.ReLU()
            self.relu2 = nn.ReLU()
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            x = x * 2.0 - 1.0
            if functional_relu:
                x = F.relu(self.conv2(F.relu(self.conv1(x))))
            else:
                x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Tiny()
    return model


def smooth_model(*, seed: int = 0) -> nn.Module:
    """A smooth (softplus) network: the integrand of IG is smooth, so quadrature converges."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(1, 4, 3, padding=1),
                act=nn.Softplus(),
                pool=nn.AdaptiveAvgPool2d(2),
                flat=nn.Flatten(),
                fc=nn.Linear(16, 2),
            )
        )
    return model


class LinearModel(nn.Module):
    """logits = W x + b: integrated gradients are exactly ``W * (x - baseline)``."""

    def __init__(self, size: int, *, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(2, size * size, generator=gen))
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


def blob_images(n: int, size: int, *, seed: int = 0) -> np.ndarray:
    """Smooth images in [0, 1]: a few Gaussian blobs on a gradient background (few Felzenszwalb segments)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        img = 0.2 + 0.3 * yy
        for _ in range(3):
            cy, cx = rng.uniform(0.2, 0.8, size=2)
            r = rng.uniform(0.08, 0.2)
            img = img + rng.uniform(0.3, 0.6) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img = (img - img.min()) / (img.max() - img.min())
        out[i] = img
    return out


@pytest.fixture
def tiny():
    return tiny_cnn(seed=0)


@pytest.fixture
def images16():
    return blob_images(3, 16, seed=1)
