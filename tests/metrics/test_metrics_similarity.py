"""Map similarity: SSIM with a recorded spec, Spearman, HOG, the dispatcher and the batched version."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from helpers.metrics import (
    ADEBAYO_SSIM,
    DEFAULT_SSIM,
    PAPER_SSIM,
    SIMILARITY_METRICS,
    ConstantMapWarning,
    MetricInputError,
    SimilaritySpecError,
    hog_cells,
    hog_similarity,
    paired_similarity,
    similarity,
    similarity_with_reason,
    spearman,
    ssim,
    ssim_spec,
    ssim_with_reason,
)

RNG = np.random.default_rng(0)
A = RNG.random((32, 32))
B = RNG.random((32, 32))
CONSTANT = np.full((32, 32), 0.5)


def _smooth(seed: int, size: int = 32) -> np.ndarray:
    """A smooth blob map in [0, 1] (saliency-like: structure, not noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.2, 0.8, size=2) * size
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))
    return (blob - blob.min()) / (blob.max() - blob.min())


class TestSSIM:
    def test_identical_maps_score_one(self):
        assert ssim(A, A) == pytest.approx(1.0)
        assert ssim(A, A, **PAPER_SSIM) == pytest.approx(1.0)
        assert ssim(A, A, **ADEBAYO_SSIM) == pytest.approx(1.0)

    @pytest.mark.parametrize("spec", [DEFAULT_SSIM, PAPER_SSIM, ADEBAYO_SSIM], ids=["default", "paper", "adebayo"])
    def test_agrees_with_skimage(self, spec):
        rng = np.random.default_rng(1)
        for _ in range(3):
            a, b = rng.random((40, 36)), rng.random((40, 36))
            assert ssim(a, b, **spec) == pytest.approx(structural_similarity(a, b, **spec), abs=1e-12)

    def test_spec_is_recorded_and_complete(self):
        assert DEFAULT_SSIM == dict(
            data_range=1.0, win_size=7, gaussian_weights=False, use_sample_covariance=True, K1=0.01, K2=0.03
        )
        assert PAPER_SSIM == {**DEFAULT_SSIM, "data_range": 2.0}
        assert ssim_spec() == DEFAULT_SSIM
        assert ssim_spec(data_range=2) == PAPER_SSIM
        assert ADEBAYO_SSIM["gaussian_weights"] is True

    def test_paper_range_inflates_dissimilar_maps(self):
        # Bigger data_range -> bigger stabilizing constants -> SSIM of unrelated low-contrast
        # maps (most saliency maps are dark) pulled up.
        assert ssim(0.1 * A, 0.1 * B, **PAPER_SSIM) > ssim(0.1 * A, 0.1 * B) + 0.05

    def test_a_spec_override_changes_the_value(self):
        assert ssim(A, B, win_size=3) != pytest.approx(ssim(A, B))

    @pytest.mark.parametrize("first, second", [(A, CONSTANT), (CONSTANT, A), (CONSTANT, CONSTANT)])
    def test_constant_map_is_nan_with_warning(self, first, second):
        # skimage would return 1.0 for two equal constants: never a silent 1.0.
        assert structural_similarity(CONSTANT, CONSTANT, data_range=1.0) == 1.0
        with pytest.warns(ConstantMapWarning, match="constant map"):
            assert np.isnan(ssim(first, second))

    def test_with_reason_variant_does_not_warn(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value, reason = ssim_with_reason(A, CONSTANT)
            assert np.isnan(value) and reason == "constant map (map_b)"
            value, reason = ssim_with_reason(CONSTANT, CONSTANT)
            assert reason == "constant map (both maps)"
            value, reason = ssim_with_reason(A, B)
            assert reason == "" and value == pytest.approx(ssim(A, B))

    @pytest.mark.parametrize(
        "spec, match",
        [
            (dict(datarange=1.0), "unknown SSIM setting"),
            (dict(channel_axis=0), "unknown SSIM setting"),
            (dict(win_size=6), "odd integer"),
            (dict(data_range=0), "positive"),
            (dict(sigma=1.5), "gaussian_weights=True"),
            (dict(gaussian_weights="yes"), "True or False"),
        ],
    )
    def test_bad_spec(self, spec, match):
        with pytest.raises(SimilaritySpecError, match=match):
            ssim(A, B, **spec)

    def test_bad_maps(self):
        with pytest.raises(MetricInputError, match="data_range"):
            ssim(A * 2, B)  # spans [0, 2] but data_range=1
        assert ssim(A * 2, B, data_range=2.0) == pytest.approx(structural_similarity(A * 2, B, data_range=2.0))
        with pytest.raises(MetricInputError, match="window"):
            ssim(A[:5, :5], B[:5, :5])
        with pytest.raises(MetricInputError, match="same shape"):
            ssim(A, B[:30])
        with pytest.raises(MetricInputError, match="2-D"):
            ssim(A.ravel(), B.ravel())
        assert issubclass(SimilaritySpecError, ValueError)


class TestSpearman:
    def test_signed_and_absolute_differ_on_a_sign_flip(self):
        a = np.array([[-2.0, -1.0], [1.0, 2.0]])
        b = -a
        assert spearman(a, b, absolute=False) == pytest.approx(-1.0)
        assert spearman(a, b, absolute=True) == pytest.approx(1.0)
        assert spearman(a, b) == pytest.approx(1.0)  # absolute is the default

    def test_agrees_with_scipy(self):
        signed_a, signed_b = A - 0.5, B - 0.3
        expected = spearmanr(np.abs(signed_a).ravel(), np.abs(signed_b).ravel()).statistic
        assert spearman(signed_a, signed_b) == pytest.approx(expected)
        expected = spearmanr(signed_a.ravel(), signed_b.ravel()).statistic
        assert spearman(signed_a, signed_b, absolute=False) == pytest.approx(expected)

    def test_constant_map(self):
        with pytest.warns(ConstantMapWarning):
            assert np.isnan(spearman(A, CONSTANT))
        # |x| of a sign-alternating constant-magnitude map is constant.
        checker = np.where((np.indices((4, 4)).sum(0) % 2) == 0, 1.0, -1.0)
        with pytest.warns(ConstantMapWarning):
            assert np.isnan(spearman(checker, np.arange(16.0).reshape(4, 4)))
        assert not np.isnan(spearman(checker, np.arange(16.0).reshape(4, 4), absolute=False))


class TestHOG:
    def test_identical_maps_score_one(self):
        a = _smooth(0, 64)
        assert hog_similarity(a, a) == pytest.approx(1.0)

    def test_invariant_to_intensity_scaling(self):
        a = _smooth(1, 64)
        assert hog_similarity(a, 0.3 * a + 0.1) == pytest.approx(1.0)

    def test_different_maps_score_lower(self):
        a, b = _smooth(2, 64), _smooth(3, 64)
        assert hog_similarity(a, b) < 0.9

    def test_cells_adapt_to_small_maps(self):
        assert hog_cells((64, 64)) == (16, 16)
        assert hog_cells((128, 96)) == (16, 16)
        assert hog_cells((32, 32)) == (10, 10)  # one 3x3-cell block fits
        assert hog_cells((32, 64)) == (10, 16)
        assert hog_cells((32, 32), pixels_per_cell=(4, 4)) == (4, 4)
        with pytest.raises(MetricInputError, match="too small"):
            hog_cells((2, 32))
        with pytest.raises(MetricInputError, match="positive integers"):
            hog_cells((32, 32), pixels_per_cell=(0, 4))
        # The 32-px maps are scored, not rejected.
        assert hog_similarity(_smooth(0), _smooth(0)) == pytest.approx(1.0)

    def test_constant_map(self):
        with pytest.warns(ConstantMapWarning):
            assert np.isnan(hog_similarity(_smooth(0), CONSTANT))


class TestDispatcher:
    def test_each_metric_matches_its_function(self):
        a, b = _smooth(4, 48), _smooth(5, 48)
        assert similarity(a, b) == ssim(a, b)
        assert similarity(a, b, metric="ssim", **PAPER_SSIM) == ssim(a, b, **PAPER_SSIM)
        assert similarity(a, b - 0.5, metric="spearman_abs") == spearman(a, b - 0.5, absolute=True)
        assert similarity(a, b - 0.5, metric="spearman_signed") == spearman(a, b - 0.5, absolute=False)
        assert similarity(a, b, metric="hog") == hog_similarity(a, b)
        assert similarity(a, b, metric="hog", pixels_per_cell=(8, 8)) == hog_similarity(a, b, pixels_per_cell=(8, 8))
        assert set(SIMILARITY_METRICS) == {"ssim", "spearman_abs", "spearman_signed", "hog"}

    def test_bad_metric_or_options(self):
        with pytest.raises(SimilaritySpecError, match="unknown similarity metric"):
            similarity(A, B, metric="pearson")
        with pytest.raises(SimilaritySpecError, match="takes no options"):
            similarity(A, B, metric="spearman_abs", data_range=1.0)
        with pytest.raises(SimilaritySpecError, match="pixels_per_cell"):
            similarity(A, B, metric="hog", win_size=7)

    def test_with_reason(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value, reason = similarity_with_reason(CONSTANT, A, metric="spearman_abs")
        assert np.isnan(value) and reason == "constant map (map_a)"


class TestPaired:
    def test_matches_a_loop_and_flags_nan(self):
        rng = np.random.default_rng(7)
        maps_a = rng.random((4, 16, 16))
        maps_b = rng.random((4, 16, 16))
        maps_b[2] = 0.25
        with pytest.warns(ConstantMapWarning, match="1 of 4 values are NaN"):
            values, reasons = paired_similarity(maps_a, maps_b, return_reasons=True)
        assert values.shape == (4,) and values.dtype == np.float64
        for i in (0, 1, 3):
            assert values[i] == pytest.approx(ssim(maps_a[i], maps_b[i]))
            assert reasons[i] == ""
        assert np.isnan(values[2]) and reasons[2] == "constant map (map_b)"

    def test_options_pass_through(self):
        rng = np.random.default_rng(8)
        maps_a, maps_b = rng.random((3, 16, 16)), rng.random((3, 16, 16))
        values = paired_similarity(maps_a, maps_b, metric="ssim", **PAPER_SSIM)
        assert values == pytest.approx([ssim(x, y, **PAPER_SSIM) for x, y in zip(maps_a, maps_b)])
        values = paired_similarity(maps_a, maps_b, metric="spearman_signed")
        assert values == pytest.approx([spearman(x, y, absolute=False) for x, y in zip(maps_a, maps_b)])

    def test_bad_stacks(self):
        with pytest.raises(MetricInputError, match="same shape"):
            paired_similarity(np.zeros((3, 8, 8)), np.zeros((2, 8, 8)))
        with pytest.raises(MetricInputError, match=r"\(N, H, W\)"):
            paired_similarity(np.zeros((8, 8)), np.zeros((8, 8)))
