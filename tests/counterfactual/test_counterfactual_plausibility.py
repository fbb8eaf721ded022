"""Counterfactual images and their plausibility statistics."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.counterfactual import CounterfactualError, counterfactual_images, plausibility_stats

SIZE = 32


def _ramp_blob_hole(region_of):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    ramp = (0.2 + 0.4 * xx / (SIZE - 1)).astype(np.float32)
    top, left, side = region_of(SIZE)
    image = ramp.copy()
    image[top:top + side, left:left + side] = 0.9
    hole = np.zeros((SIZE, SIZE), dtype=bool)
    hole[top - 2:top + side + 2, left - 2:left + side + 2] = True
    return ramp[None], image[None], hole[None]


def test_counterfactual_images_keep_the_outside(region_of):
    _, image, hole = _ramp_blob_hole(region_of)
    for name in ("inpaint", "blur", "noise", "constant"):
        cf = counterfactual_images(image, hole, perturbation=name)
        assert cf.shape == image.shape
        assert np.array_equal(cf[~hole], image[~hole])


def test_plausibility_stats_rank_the_operators(region_classifier, region_of):
    ramp, image, hole = _ramp_blob_hole(region_of)
    model = region_classifier(SIZE, region_of(SIZE)).eval()
    table = plausibility_stats(model, image, hole, perturbations=("inpaint", "blur", "noise", "constant"),
                               image_ids=["a"])
    assert list(table.columns) == ["image_id", "perturbation", "metric", "value"]
    v = table.set_index(["perturbation", "metric"]).value
    assert v["none", "abnormal_score"] > 0.99
    # Inpainting continues the surroundings: the abnormal evidence and the brightness gap are gone.
    assert v["inpaint", "abnormal_score"] < 0.5 < v["blur", "abnormal_score"]
    assert v["inpaint", "mean_gap"] < 0.02 < v["blur", "mean_gap"]
    # Noise adds texture the smooth neighbourhood does not have.
    assert v["noise", "std_ratio"] > 1.5 > v["inpaint", "std_ratio"]
    without_model = plausibility_stats(None, image, hole, perturbations=("blur",))
    assert set(without_model.metric) == {"mean_gap", "std_ratio"}


def test_bad_masks_raise(region_of):
    _, image, hole = _ramp_blob_hole(region_of)
    with pytest.raises(CounterfactualError, match="binary"):
        plausibility_stats(None, image, hole * 0.5)
    with pytest.raises(CounterfactualError, match="empty"):
        plausibility_stats(None, image, np.zeros_like(hole))
    with pytest.raises(CounterfactualError, match="no unmasked neighbourhood"):
        plausibility_stats(None, image, np.ones_like(hole))
    with pytest.raises(CounterfactualError, match="not among perturbations"):
        plausibility_stats(None, image, hole, perturbations=("blur",), perturbation_options={"noise": {"std": 0.1}})
