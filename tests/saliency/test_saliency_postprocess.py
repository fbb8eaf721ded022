"""Post-processing: Arun et al.'s VisualizeImageGrayscale, min-max, constant and sparse maps."""

from __future__ import annotations

import numpy as np
import pytest
from saliency.core.visualization import VisualizeImageGrayscale

from helpers.saliency import ConstantMapWarning, SaliencyError
from helpers.saliency.postprocess import channel_sum, minmax, normalize, passthrough, postprocess, visualize_grayscale


def test_paper_postprocessing_matches_pair_on_random_maps():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 3, 20, 20))  # signed, three channels
    maps, constant = visualize_grayscale(raw)
    assert not constant.any()
    for i in range(3):
        expected = VisualizeImageGrayscale(np.moveaxis(raw[i], 0, -1))  # PAIR takes (H, W, C)
        np.testing.assert_allclose(maps[i], expected, atol=1e-6)


def test_paper_postprocessing_analytic_ramp_is_clipped_at_the_99th_percentile():
    raw = -np.arange(100, dtype=np.float64).reshape(1, 10, 10)  # |raw| = 0..99: sign is discarded
    maps, constant = visualize_grayscale(raw)
    p99 = np.percentile(np.arange(100), 99)  # 98.01 (linear interpolation)
    assert p99 == pytest.approx(98.01)
    expected = np.clip(np.arange(100) / p99, 0, 1).reshape(10, 10)
    np.testing.assert_allclose(maps[0], expected, rtol=1e-6)
    assert maps[0].flat[99] == 1.0 and maps[0].flat[98] < 1.0  # only the top value is clipped
    assert maps.dtype == np.float32 and not constant[0]


def test_paper_postprocessing_sums_absolute_values_over_channels():
    raw = np.zeros((1, 2, 4, 4))
    raw[0, 0, 0, 0] = 2.0
    raw[0, 1, 0, 0] = -2.0  # would cancel in a signed sum
    raw[0, 0, 1, 1] = 1.0
    maps, _ = visualize_grayscale(raw, percentile=100)
    assert maps[0, 0, 0] == 1.0 and maps[0, 1, 1] == pytest.approx(0.25)
    assert channel_sum(raw)[0, 0, 0] == 0.0  # the raw 2-D map is the signed sum


def test_constant_maps_become_zeros_flagged_and_warned():
    raw = np.stack([np.zeros((8, 8)), np.full((8, 8), 3.0), np.eye(8)])
    for kind in ("paper", "minmax"):
        maps, constant = normalize(raw, kind=kind)
        assert constant.tolist() == [True, True, False]
        assert np.isfinite(maps).all() and (maps[:2] == 0).all()
        assert maps[2].max() == 1.0
    with pytest.warns(ConstantMapWarning, match="2 of 3"):
        postprocess(raw, kind="paper", label="GCAM")


def test_sparse_map_takes_the_limit_of_the_paper_formula():
    raw = np.zeros((1, 20, 20))
    raw[0, 3, 4] = 5.0  # one pixel in 400: the 99th percentile equals the minimum
    raw[0, 7, 7] = 1.0
    maps, constant = visualize_grayscale(raw)
    assert not constant[0]
    assert maps[0, 3, 4] == 1.0 and maps[0, 7, 7] == 1.0 and maps.sum() == 2.0


def test_minmax_keeps_the_sign_order():
    raw = np.array([[[-2.0, 0.0], [1.0, 2.0]]])
    maps, constant = minmax(raw)
    np.testing.assert_allclose(maps[0], [[0.0, 0.5], [0.75, 1.0]])
    assert not constant[0]


def test_passthrough_checks_the_range():
    maps, constant = passthrough(np.array([[[0.0, 0.5], [1.0, 1.0 + 1e-7]]]))
    assert maps.max() == 1.0 and not constant[0]
    with pytest.raises(SaliencyError, match=r"\[0, 1\]"):
        passthrough(np.array([[[0.0, 1.5]]]))


def test_non_finite_or_misshapen_raw_maps_raise():
    with pytest.raises(SaliencyError, match="NaN"):
        visualize_grayscale(np.array([[[np.nan, 1.0]]]), label="IG")
    with pytest.raises(SaliencyError, match="shape"):
        visualize_grayscale(np.zeros((4, 4)))
    with pytest.raises(SaliencyError, match="kind"):
        normalize(np.zeros((1, 4, 4)), kind="sqrt")
