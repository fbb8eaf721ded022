"""The learned inpainter: bit-exact outside pixels, texture on stripes, cache key and checked weights."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from helpers._cache import stable_hash
from helpers.counterfactual import (
    CounterfactualError,
    InpainterError,
    LearnedInpainting,
    load_inpainter,
    make_perturbation,
    plausibility_stats,
)
from helpers.counterfactual.inpainter import inpainter_spec, random_masks

SIZE = 32


def _square(n: int, top: int = 10, side: int = 12) -> np.ndarray:
    hole = np.zeros((n, SIZE, SIZE), dtype=bool)
    hole[:, top:top + side, top:top + side] = True
    return hole


def test_pixels_outside_the_mask_are_bit_exact_for_binary_and_soft_masks(stripe_inpainter, stripe_images):
    op = LearnedInpainting(weights=str(stripe_inpainter[0]))
    x = torch.from_numpy(stripe_images(3, seed=11))[:, None]
    binary = torch.from_numpy(_square(3)).float()[:, None]
    soft = random_masks(3, SIZE, seed=5)  # optimizer-like masks: bilinear, values strictly between 0 and 1 at edges
    for m in (binary, soft):
        out = op.perturb(x, m)
        outside = m == 0
        assert outside.any() and torch.equal(out[outside], x[outside])
        assert (out[~outside] - x[~outside]).abs().max() > 0.01  # and the hole is filled


def test_restores_stripes_better_than_the_harmonic_fill(stripe_inpainter, stripe_images):
    images = stripe_images(8, seed=21)  # unseen stripe images
    holes = _square(8)
    table = plausibility_stats(None, images, holes, perturbations=("inpaint_learned", "inpaint"),
                               perturbation_options={"inpaint_learned": {"weights": str(stripe_inpainter[0])}})
    ratio = table[table.metric == "std_ratio"].groupby("perturbation").value.median()
    # The harmonic fill is flat inside the square; the learned fill carries the stripes' texture.
    assert ratio["inpaint"] < 0.6
    assert abs(ratio["inpaint_learned"] - 1.0) < abs(ratio["inpaint"] - 1.0)


def test_trained_on_negatives_only_and_key_follows_the_training_data(stripe_inpainter, image_set):
    path, record, settings, data = stripe_inpainter
    assert record["n_train"] == 48  # the 8 positives are not training images
    negatives = data.subset(np.arange(48))
    key = stable_hash(inpainter_spec(settings, negatives))
    assert path.name == f"inpainter-{key}.pt" and record["key"] == key
    changed = negatives.images.copy()
    changed[0, 0, 0] = 1.0 - changed[0, 0, 0]  # one pixel of one training image
    assert stable_hash(inpainter_spec(settings, image_set(changed, [0] * 48))) != key
    for field, value in (("inpainter_steps", 151), ("inpainter_channels", (8, 16, 16)), ("seed", 1),
                         ("inpainter_texture_weight", 4.0)):
        assert stable_hash(inpainter_spec(dataclasses.replace(settings, **{field: value}), negatives)) != key, field


def test_a_second_call_reads_the_cache(stripe_inpainter):
    from helpers.counterfactual import get_trained_inpainter

    path, record, settings, data = stripe_inpainter
    again_path, again = get_trained_inpainter(settings, data, {"train": np.arange(len(data))})
    assert again_path == path and again == json.loads(path.with_suffix(".json").read_text()) == record


def test_a_corrupted_weights_file_is_detected(stripe_inpainter, tmp_path):
    path = stripe_inpainter[0]
    copy, sidecar = tmp_path / path.name, tmp_path / path.with_suffix(".json").name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    copy.write_bytes(bytes(data))
    sidecar.write_bytes(path.with_suffix(".json").read_bytes())
    with pytest.raises(InpainterError, match="corrupted"):
        load_inpainter(copy)
    with pytest.raises(InpainterError, match="corrupted"):
        make_perturbation("inpaint_learned", {"weights": str(copy)})
    sidecar.unlink()
    with pytest.raises(InpainterError, match="does not exist"):
        load_inpainter(copy)


def test_fill_is_differentiable_and_independent_of_the_batch(stripe_inpainter, stripe_images):
    op = LearnedInpainting(weights=str(stripe_inpainter[0]))
    x = torch.from_numpy(stripe_images(3, seed=4))[:, None]
    m = random_masks(3, SIZE, seed=9).requires_grad_(True)
    out = op.perturb(x, m)
    (grad,) = torch.autograd.grad(out.sum(), m)
    assert grad.abs().max() > 0
    with torch.no_grad():
        alone = torch.cat([op.perturb(x[i:i + 1], m[i:i + 1]) for i in range(3)])
        assert torch.allclose(op.perturb(x, m), alone, atol=1e-5)


def test_random_masks_are_seeded_and_sized_like_the_optimizer_masks():
    a, b = random_masks(30, 80, seed=1), random_masks(30, 80, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, random_masks(30, 80, seed=2))
    area = a.flatten(1).mean(dim=1)
    assert float(area.min()) > 0.005 and float(area.max()) < 0.25 and 0.0 <= float(a.min()) <= float(a.max()) <= 1.0


def test_missing_weights_and_bad_settings_raise(stripe_inpainter, inpainter_settings, image_set, tmp_path):
    from helpers.counterfactual import get_trained_inpainter

    with pytest.raises(CounterfactualError, match="needs perturbation_options"):
        make_perturbation("inpaint_learned")
    _, _, _, data = stripe_inpainter
    positives_only = image_set(data.images[48:], [1] * 8)
    with pytest.raises(InpainterError, match="no negative"):
        get_trained_inpainter(inpainter_settings(tmp_path), positives_only, {"train": np.arange(8)})
    with pytest.raises(InpainterError, match="steps"):
        get_trained_inpainter(inpainter_settings(tmp_path, inpainter_steps=0), data, {"train": np.arange(56)})
