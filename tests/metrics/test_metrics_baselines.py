"""Random-pair similarity baseline and average-mask prior."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.metrics import (
    DEFAULT_SSIM,
    PAPER_SSIM,
    ConstantMapWarning,
    MetricInputError,
    RandomPairBaseline,
    SimilaritySpecError,
    average_mask_prior,
    average_precision,
    hit,
    iou_otsu,
    random_pair_baseline,
    similarity,
    ssim,
)


def _maps(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size))


class TestRandomPairBaseline:
    def test_never_pairs_an_image_with_itself(self):
        result = random_pair_baseline(_maps(12), seed=0, n_pairs=5)
        assert isinstance(result, RandomPairBaseline)
        assert result.partners.shape == (12, 5) and result.n_pairs == 5
        for i, row in enumerate(result.partners):
            assert i not in row
            assert len(set(row.tolist())) == 5  # distinct partners
            assert row.min() >= 0 and row.max() < 12

    def test_self_pairs_would_show(self):
        # Maps identical to themselves only: a self-pair would score SSIM 1.
        result = random_pair_baseline(_maps(8), seed=3, n_pairs=7)
        assert np.all(result.values < 0.5)

    def test_values_are_mean_similarity_to_partners(self):
        maps = _maps(10, seed=1)
        result = random_pair_baseline(maps, seed=4, n_pairs=3, metric="ssim", **PAPER_SSIM)
        for i in range(10):
            expected = np.mean([ssim(maps[i], maps[j], **PAPER_SSIM) for j in result.partners[i]])
            assert result.values[i] == pytest.approx(expected)
        assert result.mean == pytest.approx(result.values.mean())
        assert result.std == pytest.approx(result.values.std(ddof=1))
        assert result.ci.estimate == pytest.approx(result.mean)
        assert result.ci.low <= result.mean <= result.ci.high
        assert result.settings == PAPER_SSIM and result.metric == "ssim" and result.seed == 4

    def test_other_metrics(self):
        maps = _maps(6, size=32, seed=2)
        result = random_pair_baseline(maps, seed=0, n_pairs=2, metric="spearman_abs")
        expected = np.mean([similarity(maps[0], maps[j], metric="spearman_abs") for j in result.partners[0]])
        assert result.values[0] == pytest.approx(expected)
        assert result.settings == {}
        result = random_pair_baseline(maps, seed=0, n_pairs=2, metric="hog")
        assert result.settings == {"pixels_per_cell": (10, 10)}

    def test_deterministic_per_seed(self):
        maps = _maps(15, seed=5)
        first = random_pair_baseline(maps, seed=11, n_pairs=4)
        second = random_pair_baseline(maps, seed=11, n_pairs=4)
        np.testing.assert_array_equal(first.partners, second.partners)
        np.testing.assert_array_equal(first.values, second.values)
        assert (first.ci.low, first.ci.high) == (second.ci.low, second.ci.high)
        other = random_pair_baseline(maps, seed=12, n_pairs=4)
        assert not np.array_equal(first.partners, other.partners)

    def test_few_images_use_every_other_image(self):
        maps = _maps(4, seed=6)
        result = random_pair_baseline(maps, seed=0)  # n_pairs=50 > N-1=3
        assert result.n_pairs == 3
        for i, row in enumerate(result.partners):
            assert sorted(row.tolist()) == [j for j in range(4) if j != i]
        # Every pair is used: the mean is the mean of all pairwise similarities.
        pair_mean = np.mean([ssim(maps[i], maps[j]) for i in range(4) for j in range(4) if i != j])
        assert result.mean == pytest.approx(pair_mean)

    def test_constant_maps_are_dropped_and_counted(self):
        maps = _maps(5, seed=7)
        maps[0] = 0.5
        with pytest.warns(ConstantMapWarning, match="values are NaN"):
            result = random_pair_baseline(maps, seed=0, n_pairs=4)
        assert np.isnan(result.values[0])  # all of its pairs are undefined
        assert np.all(np.isfinite(result.values[1:]))  # the others average their defined pairs
        assert result.n_undefined == 8  # image 0's 4 pairs, seen from both sides
        assert result.ci.n_dropped == 1 and result.ci.n == 4
        assert result.mean == pytest.approx(np.mean(result.values[1:]))

    def test_bad_input(self):
        with pytest.raises(MetricInputError, match="at least 2 images"):
            random_pair_baseline(_maps(1), seed=0)
        with pytest.raises(MetricInputError, match="n_pairs"):
            random_pair_baseline(_maps(3), seed=0, n_pairs=0)
        with pytest.raises(SimilaritySpecError, match="unknown similarity metric"):
            random_pair_baseline(_maps(3), seed=0, metric="cosine")
        with pytest.raises(SimilaritySpecError, match="unknown SSIM setting"):
            random_pair_baseline(_maps(3), seed=0, range=1.0)
        with pytest.raises(TypeError):
            random_pair_baseline(_maps(3))  # the seed is required
        assert random_pair_baseline(_maps(3), seed=0).settings == DEFAULT_SSIM


class TestAverageMaskPrior:
    def _masks(self) -> np.ndarray:
        masks = np.zeros((4, 4, 4), dtype=bool)
        masks[0, :2, :2] = True  # top-left quadrant
        masks[1, :2, :] = True  # top half
        # masks[2], masks[3]: negatives (empty)
        return masks

    def test_positives_only_values(self):
        prior = average_mask_prior(self._masks())
        expected = np.zeros((4, 4))
        expected[:2, :2] = 1.0  # covered by both positives
        expected[:2, 2:] = 0.5  # covered by one of two
        np.testing.assert_array_equal(prior, expected)
        assert prior.dtype == np.float64

    def test_all_images_values(self):
        prior = average_mask_prior(self._masks(), positives_only=False)
        expected = np.zeros((4, 4))
        expected[:2, :2] = 2 / 4
        expected[:2, 2:] = 1 / 4
        np.testing.assert_array_equal(prior, expected)

    def test_labels_select_positives(self):
        masks = self._masks()
        prior = average_mask_prior(masks, labels=[1, 0, 0, 0])
        np.testing.assert_array_equal(prior, masks[0].astype(float))
        with pytest.raises(MetricInputError, match="one label per mask"):
            average_mask_prior(masks, labels=[1, 0])
        with pytest.raises(MetricInputError, match="0 or 1"):
            average_mask_prior(masks, labels=[2, 0, 0, 0])

    def test_no_positive(self):
        with pytest.raises(MetricInputError, match="no positive image"):
            average_mask_prior(np.zeros((3, 4, 4), dtype=bool))
        np.testing.assert_array_equal(average_mask_prior(np.zeros((3, 4, 4), dtype=bool), positives_only=False), 0.0)

    def test_both_priors_localize_identically(self):
        # The docstring's claim: the two priors differ by a constant factor, which no
        # localization metric sees.
        rng = np.random.default_rng(0)
        masks = np.zeros((20, 16, 16), dtype=bool)
        for k in range(10):
            r, c = rng.integers(0, 10, size=2)
            masks[k, r : r + 6, c : c + 5] = True
        positives, everyone = average_mask_prior(masks), average_mask_prior(masks, positives_only=False)
        np.testing.assert_allclose(everyone, positives * 0.5)
        test_mask = np.zeros((16, 16), dtype=bool)
        test_mask[4:10, 3:9] = True
        for metric in (average_precision, iou_otsu, hit):
            assert metric(positives, test_mask) == pytest.approx(metric(everyone, test_mask))

    def test_bad_masks(self):
        with pytest.raises(MetricInputError, match=r"\(N, H, W\)"):
            average_mask_prior(np.zeros((4, 4), dtype=bool))
        with pytest.raises(MetricInputError, match="0 and 1"):
            average_mask_prior(np.full((2, 4, 4), 3))


def test_leave_one_out_prior_is_the_mean_of_the_other_masks():
    from helpers.metrics import MetricInputError, leave_one_out_prior

    masks = np.zeros((3, 2, 2), bool)
    masks[0, 0, 0] = masks[1, 0, 0] = masks[2, 1, 1] = True
    prior = leave_one_out_prior(masks)
    np.testing.assert_allclose(prior[0], [[0.5, 0.0], [0.0, 0.5]])
    np.testing.assert_allclose(prior[2], [[1.0, 0.0], [0.0, 0.0]])  # never knows where its own lesion is
    with pytest.raises(MetricInputError, match="at least 2"):
        leave_one_out_prior(masks[:1])
