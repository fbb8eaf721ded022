"""Perturbation operators: outside pixels untouched, neighbourhood-conditioned fills, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.counterfactual import (
    PERTURBATIONS,
    BiharmonicInpainting,
    CounterfactualError,
    GaussianNoise,
    diffusion_fill,
    make_perturbation,
)

SIZE = 32


def _ramp_with_blob() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear ramp (harmonic), the same ramp with a bright blob, and a binary hole over the blob."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    ramp = (0.2 + 0.5 * xx / (SIZE - 1) + 0.1 * yy / (SIZE - 1)).astype(np.float32)
    hole = np.zeros((SIZE, SIZE), dtype=np.float32)
    hole[10:20, 12:22] = 1.0
    blob = ramp.copy()
    blob[12:18, 14:20] = 0.95
    as_t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    return as_t(ramp), as_t(blob), as_t(hole)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_pixels_outside_the_mask_are_untouched(name, request):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 1, SIZE, SIZE), dtype=np.float32))
    mask = torch.zeros_like(x)
    mask[0, :, 4:14, 6:20] = 1.0
    mask[1, :, 20:30, 2:9] = 1.0
    # The learned inpainter needs trained weights (the session's brief stripe training).
    options = {"weights": str(request.getfixturevalue("stripe_inpainter")[0])} if name == "inpaint_learned" else {}
    out = make_perturbation(name, options).perturb(x, mask)
    outside = mask == 0
    assert torch.equal(out[outside], x[outside])
    # ... and the operator does change the masked pixels of a random image.
    assert (out[~outside] - x[~outside]).abs().max() > 0.05


@pytest.mark.parametrize("name", ["inpaint", "inpaint_biharmonic"])
def test_neighbourhood_fill_replaces_the_blob_by_the_surroundings(name):
    ramp, blob, hole = _ramp_with_blob()
    out = make_perturbation(name).perturb(blob, hole)
    # The fill ignores what is under the hole: the harmonic ramp is recovered, the blob is gone.
    assert (out - ramp).abs().max() < 0.02


@pytest.mark.parametrize("name", ["blur", "noise"])
def test_heuristic_perturbations_keep_a_trace_of_the_blob_or_add_texture(name):
    ramp, blob, hole = _ramp_with_blob()
    out = make_perturbation(name).perturb(blob, hole)
    assert (out - ramp)[hole.bool()].abs().max() > 0.1


def test_diffusion_fill_is_exact_for_a_harmonic_image_and_differentiable():
    ramp, _, hole = _ramp_with_blob()
    soft = (0.8 * hole).requires_grad_(True)
    fill = diffusion_fill(ramp, soft)
    assert (fill - ramp).abs().max() < 0.01
    ramp2, blob, _ = _ramp_with_blob()
    out = make_perturbation("inpaint").perturb(blob, soft)
    (grad,) = torch.autograd.grad(out.sum(), soft)
    assert grad[hole.bool()].abs().max() > 0


def test_fully_masked_image_is_filled_with_its_mean():
    x = torch.linspace(0, 1, SIZE * SIZE).reshape(1, 1, SIZE, SIZE)
    fill = diffusion_fill(x, torch.ones_like(x))
    assert torch.allclose(fill, x.mean().expand_as(fill), atol=1e-4)
    fill_bh = BiharmonicInpainting().fill(x, torch.ones_like(x))
    assert torch.allclose(fill_bh, x.mean().expand_as(fill_bh), atol=1e-6)


def test_noise_is_seeded_per_image_and_independent_of_the_batch():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((3, 1, SIZE, SIZE), dtype=np.float32))
    mask = torch.ones_like(x)
    op = GaussianNoise(std=0.1, seed=4)
    together = op.perturb(x, mask)
    alone = torch.cat([op.perturb(x[i:i + 1], mask[i:i + 1]) for i in range(3)])
    assert torch.equal(together, alone)
    assert not torch.equal(together, GaussianNoise(std=0.1, seed=5).perturb(x, mask))


def test_bad_input_raises():
    x = torch.full((1, 1, SIZE, SIZE), 0.5)
    with pytest.raises(CounterfactualError, match="unknown perturbation 'smudge'"):
        make_perturbation("smudge")
    with pytest.raises(CounterfactualError, match="unknown options"):
        make_perturbation("blur", {"sigma": 3})
    with pytest.raises(CounterfactualError, match="relative_sigma"):
        make_perturbation("blur", {"relative_sigma": 0.0})
    with pytest.raises(CounterfactualError, match="std"):
        make_perturbation("noise", {"std": -1.0})
    with pytest.raises(CounterfactualError, match="value"):
        make_perturbation("constant", {"value": 2.0})
    with pytest.raises(CounterfactualError, match="already built"):
        make_perturbation(GaussianNoise(), {"std": 0.1})
    from helpers.counterfactual.perturbations import as_image_batch, as_mask_batch

    with pytest.raises(CounterfactualError, match=r"\[0, 1\]"):
        as_image_batch(x * 3)
    with pytest.raises(CounterfactualError, match="single-channel"):
        as_image_batch(torch.zeros(1, 3, SIZE, SIZE))
    with pytest.raises(CounterfactualError, match="shape"):
        as_mask_batch(torch.zeros(1, 1, SIZE, SIZE - 1), x)
    with pytest.raises(CounterfactualError, match=r"\[0, 1\]"):
        as_mask_batch(torch.full((1, 1, SIZE, SIZE), 1.5), x)
