"""Every method on every architecture of the model zoo (small inputs, cheap settings, untrained weights).

One test per architecture (the model is built once): every method returns
finite ``[0, 1]`` maps of the input's size, and guided backpropagation really
is guided, i.e. differs from the plain gradient. That second check has teeth:
``test_saliency_methods.py`` shows that with functional ReLUs Captum's GBP
equals the gradient (and that ``explain`` refuses such models).
"""

from __future__ import annotations

import numpy as np
import pytest

import helpers.saliency as S
from helpers.data.synthetic import generate
from helpers.models import ARCHITECTURES, build

CHEAP = {
    "SG": {"n_samples": 2},
    "IG": {"n_steps": 2},
    "SIG": {"n_samples": 2, "n_steps": 2},
    "XRAI": {"n_steps": 2},
    "OCC": {"window": 0.5, "stride": 0.5},
}
BUILTIN = ("GRAD", "SG", "IG", "SIG", "GCAM", "XRAI", "GBP", "GGCAM", "OCC")


@pytest.fixture(scope="module")
def radiographs():
    # the same pixels for every 64-px architecture, so XRAI's segments are computed once (per-process cache)
    return {s: generate(2, size=s, seed=0, positive_fraction=1.0, progress=False).images for s in (64, 80)}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_method_on_every_architecture_and_guided_backprop_is_guided(arch, radiographs):
    size = 80 if arch == "inception_v3" else 64  # InceptionV3 needs >= 75 px
    model = build(arch, image_size=size, seed=0)
    images = radiographs[size]
    assert set(BUILTIN) <= set(S.METHODS)
    raws = {}
    for method in BUILTIN:
        maps, raw, _ = S.explain_with_details(model, images, method, **CHEAP.get(method, {}))
        assert maps.shape == (2, size, size) and maps.dtype == np.float32, method
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0, method
        assert np.isfinite(raw).all() and raw.shape[0] == 2 and raw.shape[-2:] == (size, size), method
        raws[method] = raw
    grad, gbp = raws["GRAD"], raws["GBP"]  # same (predicted) class for both
    scale = np.abs(grad).max()
    assert scale > 0
    assert np.abs(gbp - grad).max() > 0.05 * scale, arch
    assert np.corrcoef(gbp.ravel(), grad.ravel())[0, 1] < 0.999, arch  # not a mere rescaling either
