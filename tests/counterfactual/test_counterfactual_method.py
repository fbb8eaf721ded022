"""Saliency method "CF" through the registry of helpers.saliency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers.counterfactual  # noqa: F401  (registers "CF")
from helpers import saliency
from helpers.counterfactual import SETTINGS, CounterfactualError, counterfactual_saliency, optimize_mask

SIZE = 32


@pytest.fixture(scope="module")
def model_and_images(region_classifier, region_of, two_squares):
    return region_classifier(SIZE, region_of(SIZE)).eval(), two_squares(2, size=SIZE, seed=2)


def test_cf_is_registered_with_its_perturbation_as_a_setting():
    assert "CF" in saliency.METHODS
    defaults = saliency.method_defaults("CF")
    assert defaults == SETTINGS
    # The learned inpainter is the default fill; its weights are the study's (an option).
    assert defaults["perturbation"] == "inpaint_learned" and defaults["perturbation_options"] is None
    assert saliency.get("CF").n_passes(defaults) == defaults["steps"]


@pytest.mark.parametrize("perturbation", ["blur", "constant"])
def test_explain_returns_the_optimized_masks(model_and_images, perturbation):
    model, images = model_and_images
    maps = saliency.explain(model, images, "CF", perturbation=perturbation, steps=8, mask_stride=4)
    direct = optimize_mask(model, images, perturbation=perturbation, steps=8, mask_stride=4).masks
    assert maps.shape == (2, SIZE, SIZE) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, direct, atol=1e-6)  # post-processing "none": the mask is the map
    # batch_size is explain()'s: one image per call gives the same maps.
    one = saliency.explain(model, images, "CF", perturbation=perturbation, steps=8, mask_stride=4, batch_size=1)
    np.testing.assert_allclose(one, maps, atol=1e-5)


def test_explain_resolves_the_target(model_and_images):
    model, images = model_and_images
    positive = saliency.explain(model, images, "CF", target="positive", perturbation="blur", steps=4, mask_stride=4)
    direct = optimize_mask(model, images, target=1, perturbation="blur", steps=4, mask_stride=4).masks
    np.testing.assert_allclose(positive, direct, atol=1e-6)


def test_bad_settings_raise(model_and_images):
    model, images = model_and_images
    with pytest.raises(saliency.UnknownSettingError, match="perturbaton"):
        saliency.explain(model, images, "CF", perturbaton="blur")
    with pytest.raises(CounterfactualError, match="unknown perturbation"):
        saliency.explain(model, images, "CF", perturbation="smudge")
    with pytest.raises(CounterfactualError, match="unknown CF settings"):
        counterfactual_saliency(model, torch.from_numpy(images)[:, None], target=None, batch_size=2)
