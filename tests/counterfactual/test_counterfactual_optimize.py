"""Mask optimization: the objective decreases, the area term sets the area, the mask finds the known region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.counterfactual import CounterfactualError, optimize_mask

SIZE = 32
STRIDE = 4


@pytest.fixture(scope="module")
def case(region_classifier, region_of, two_squares):
    top, left, side = region_of(SIZE)
    model = region_classifier(SIZE, (top, left, side)).eval()
    images = two_squares(2, size=SIZE, seed=1)
    inside = np.zeros((SIZE, SIZE), dtype=bool)
    inside[top:top + side, left:left + side] = True
    distractor = (images > 0.8) & ~inside[None]
    return model, images, inside, distractor, 2 * side * side / SIZE**2


def test_objective_decreases(case):
    model, images, _, _, area = case
    result = optimize_mask(model, images, perturbation="inpaint", mask_stride=STRIDE, target_area=area, steps=40)
    h = result.history
    assert list(h.columns[:3]) == ["image", "step", "objective"]
    assert len(h) == 2 * 41 and set(h.step) == set(range(41))
    first = h[h.step == 0].objective.to_numpy()
    last = h[h.step == 40].objective.to_numpy()
    assert np.all(last < 0.3 * first)
    # The trend is downward all along, not only between the end points.
    per_step = h.groupby("step").objective.mean().to_numpy()
    assert per_step[30:].mean() < per_step[10:20].mean() < per_step[:5].mean()
    assert np.all(result.score_counterfactual < 0.2 * result.score_original)


def test_mask_finds_the_region_the_classifier_looks_at(case):
    model, images, inside, distractor, area = case
    for perturbation in ("inpaint", "blur"):
        masks = optimize_mask(model, images, perturbation=perturbation, mask_stride=STRIDE, target_area=area).masks
        for mask, other in zip(masks, distractor):
            # The equally bright distractor square, which the classifier cannot see, stays unmasked.
            assert mask[inside].mean() > 0.7, perturbation
            assert mask[other].mean() < 0.1, perturbation


def test_area_term_controls_the_mask_area(case):
    model, images, _, _, _ = case
    x = images[:1]
    common = dict(perturbation="constant", mask_stride=STRIDE, steps=30)
    areas = [optimize_mask(model, x, target_area=a, **common).masks.mean() for a in (0.05, 0.1, 0.3)]
    assert areas[0] < areas[1] < areas[2]
    # The sorted constraint is soft: below the area of the evidence (6 % here) the score wins a little.
    assert abs(areas[0] - 0.05) < 0.04 and abs(areas[1] - 0.1) < 0.03 and abs(areas[2] - 0.3) < 0.03
    # A mean-area penalty: a heavier weight pulls the area to its target, no weight lets the mask spread.
    mean = dict(common, area_penalty="mean", target_area=0.05)
    free = optimize_mask(model, x, lambda_area=0.0, **mean).masks.mean()
    tight = optimize_mask(model, x, lambda_area=20.0, **mean).masks.mean()
    assert tight < free - 0.1
    assert abs(tight - 0.05) < 0.05


def test_deterministic_and_batch_independent(case):
    model, images, _, _, area = case
    common = dict(perturbation="noise", mask_stride=STRIDE, target_area=area, steps=15)
    together = optimize_mask(model, images, batch_size=2, **common)
    again = optimize_mask(model, images, batch_size=2, **common)
    alone = optimize_mask(model, images, batch_size=1, **common)
    assert np.array_equal(together.masks, again.masks)
    np.testing.assert_allclose(together.masks, alone.masks, atol=1e-5)


def test_non_differentiable_operator_and_preservation_game(case):
    model, images, inside, _, area = case
    bh = optimize_mask(model, images[:1], perturbation="inpaint_biharmonic", mask_stride=STRIDE, target_area=area,
                       steps=20, refresh_every=5)
    assert bh.masks[0][inside].mean() > 0.6
    keep = optimize_mask(model, images[:1], game="preservation", perturbation="constant", mask_stride=STRIDE,
                         target_area=area, steps=30)
    # To keep the evidence, the region the classifier looks at must be kept.
    assert keep.masks[0][inside].mean() > 0.6
    assert keep.score_counterfactual[0] > 0


def test_result_fields(case):
    model, images, _, _, _ = case
    r = optimize_mask(model, images, perturbation="blur", mask_stride=STRIDE, steps=3, target=[1, 0])
    assert r.masks.shape == (2, SIZE, SIZE) and r.masks.dtype == np.float32
    assert r.low_res.shape == (2, SIZE // STRIDE, SIZE // STRIDE)
    assert 0.0 <= r.masks.min() and r.masks.max() <= 1.0
    assert r.target.tolist() == [1, 0]
    assert r.counterfactuals.shape == (2, SIZE, SIZE)
    assert r.settings["perturbation"] == "blur" and r.settings["perturbation_options"] == {"relative_sigma": 0.05}


def test_bad_input_raises(case, region_classifier, region_of):
    model, images, _, _, _ = case
    with pytest.raises(CounterfactualError, match="training mode"):
        optimize_mask(region_classifier(SIZE, region_of(SIZE)).train(), images)
    with pytest.raises(CounterfactualError, match="target_area"):
        optimize_mask(model, images, target_area=1.5)
    with pytest.raises(CounterfactualError, match="steps"):
        optimize_mask(model, images, steps=0)
    with pytest.raises(CounterfactualError, match="mask_stride"):
        optimize_mask(model, images, mask_stride=64)
    with pytest.raises(CounterfactualError, match="score"):
        optimize_mask(model, images, score="loss")
    with pytest.raises(CounterfactualError, match="game"):
        optimize_mask(model, images, game="insertion")
    with pytest.raises(CounterfactualError, match="target classes"):
        optimize_mask(model, images, perturbation="constant", target=2)
    with pytest.raises(CounterfactualError, match="one class per image"):
        optimize_mask(model, images, perturbation="constant", target=[1, 1, 1])
    with pytest.raises(CounterfactualError, match=r"\[0, 1\]"):
        optimize_mask(model, images * 2)
    with pytest.raises(CounterfactualError, match="torch.nn.Module"):
        optimize_mask(lambda x: x, images)
    with pytest.raises(TypeError):
        optimize_mask(model, images, 10)  # options are keyword-only
    # The default fill, the learned inpainter, has no default weights: it says what it needs.
    with pytest.raises(CounterfactualError, match="needs perturbation_options"):
        optimize_mask(model, images)
