"""Bootstrap CIs, the paired Wilcoxon test, Holm's correction and the verdict rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from helpers.metrics import (
    MetricInputError,
    Verdict,
    bootstrap_ci,
    holm,
    paired_bootstrap_diff,
    random_pair_baseline,
    bootstrap_test,
    wilcoxon_paired,
)


class TestBootstrapCI:
    def test_contains_the_mean_and_is_deterministic(self):
        values = np.random.default_rng(0).normal(0.4, 0.1, size=50)
        ci = bootstrap_ci(values, seed=3)
        assert ci.estimate == pytest.approx(values.mean())
        assert ci.low < ci.estimate < ci.high and ci.contains(values.mean())
        assert ci == bootstrap_ci(values, seed=3)
        assert (ci.low, ci.high) != (bootstrap_ci(values, seed=4).low, bootstrap_ci(values, seed=4).high)
        assert ci.level == 0.95 and ci.n == 50 and ci.n_dropped == 0 and ci.n_bootstrap == 1000
        assert ci.method == "percentile" and ci.reason == ""

    def test_width_matches_normal_theory(self):
        values = np.random.default_rng(1).normal(0.0, 1.0, size=400)
        ci = bootstrap_ci(values, n_bootstrap=2000, seed=0)
        half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
        assert (ci.high - ci.low) / 2 == pytest.approx(half_width, rel=0.15)
        # A higher level gives a wider interval.
        wide = bootstrap_ci(values, n_bootstrap=2000, seed=0, level=0.99)
        assert wide.low < ci.low and wide.high > ci.high

    def test_nans_dropped_and_counted(self):
        values = np.array([0.1, np.nan, 0.3, 0.5, np.nan, 0.7])
        ci = bootstrap_ci(values)
        assert ci.n == 4 and ci.n_dropped == 2
        assert ci.estimate == pytest.approx(0.4)
        assert ci == bootstrap_ci(values[np.isfinite(values)]).__class__(**{**ci.as_dict(), "n_dropped": 2})

    def test_other_statistic(self):
        values = np.array([0.0, 0.0, 0.0, 1.0, 10.0])
        ci = bootstrap_ci(values, statistic=np.median)
        assert ci.estimate == 0.0 and ci.low <= 0.0 <= ci.high

    def test_degenerate_inputs(self):
        ci = bootstrap_ci([0.3, 0.3, 0.3])
        assert (ci.estimate, ci.low, ci.high) == (0.3, 0.3, 0.3)
        ci = bootstrap_ci([0.3])
        assert ci.estimate == 0.3 and np.isnan(ci.low) and np.isnan(ci.high) and "single value" in ci.reason
        ci = bootstrap_ci([np.nan, np.nan])
        assert np.isnan(ci.estimate) and ci.n == 0 and ci.n_dropped == 2 and ci.reason == "no finite values"
        assert not ci.contains(0.0)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(level=95), "confidence level"),
            (dict(n_bootstrap=0), "n_bootstrap"),
            (dict(method="bca"), "bootstrap method"),
        ],
    )
    def test_bad_options(self, kwargs, match):
        with pytest.raises(MetricInputError, match=match):
            bootstrap_ci([0.1, 0.2], **kwargs)

    def test_bad_values(self):
        with pytest.raises(MetricInputError, match="1-D"):
            bootstrap_ci(np.zeros((3, 3)))
        with pytest.raises(MetricInputError, match="inf"):
            bootstrap_ci([0.1, np.inf])


class TestPairedBootstrap:
    def test_equals_bootstrap_of_differences(self):
        rng = np.random.default_rng(2)
        a, b = rng.random(30), rng.random(30)
        paired = paired_bootstrap_diff(a, b, seed=5)
        direct = bootstrap_ci(a - b, seed=5)
        assert (paired.estimate, paired.low, paired.high) == (direct.estimate, direct.low, direct.high)

    def test_constant_shift_and_dropped_pairs(self):
        a = np.array([0.5, 0.6, np.nan, 0.9, 0.2])
        b = a - 0.1
        b[4] = np.nan
        ci = paired_bootstrap_diff(a, b)
        assert ci.n == 3 and ci.n_dropped == 2
        assert ci.estimate == pytest.approx(0.1) and ci.low == pytest.approx(0.1) and ci.high == pytest.approx(0.1)

    def test_pairing_removes_image_difficulty(self):
        rng = np.random.default_rng(3)
        difficulty = rng.uniform(0, 1, size=40)
        a = difficulty + 0.05 + rng.normal(0, 0.01, size=40)
        b = difficulty
        assert paired_bootstrap_diff(a, b).low > 0  # paired: clearly above 0
        unpaired_low = bootstrap_ci(a).low - bootstrap_ci(b).high
        assert unpaired_low < 0  # unpaired intervals overlap

    def test_length_mismatch(self):
        with pytest.raises(MetricInputError, match="one value of each per image"):
            paired_bootstrap_diff([0.1, 0.2], [0.1])


class TestWilcoxon:
    def test_agrees_with_scipy(self):
        rng = np.random.default_rng(4)
        a, b = rng.random(25), rng.random(25) + 0.1
        result = wilcoxon_paired(a, b)
        expected = wilcoxon(a, b)
        assert result.statistic == pytest.approx(expected.statistic)
        assert result.pvalue == pytest.approx(expected.pvalue)
        assert result.n == 25 and result.n_dropped == 0 and result.reason == ""
        greater = wilcoxon_paired(b, a, alternative="greater")
        assert greater.pvalue == pytest.approx(wilcoxon(b, a, alternative="greater").pvalue)

    def test_nan_pairs_dropped(self):
        rng = np.random.default_rng(5)
        a, b = rng.random(12), rng.random(12)
        a[0], b[5] = np.nan, np.nan
        result = wilcoxon_paired(a, b)
        keep = np.isfinite(a) & np.isfinite(b)
        assert result.n == 10 and result.n_dropped == 2
        assert result.pvalue == pytest.approx(wilcoxon(a[keep], b[keep]).pvalue)

    def test_too_few_pairs(self):
        result = wilcoxon_paired([1.0, 2, 3, 4, 5], [0.0, 0, 0, 0, 0])
        assert np.isnan(result.pvalue) and "min_pairs=6" in result.reason and result.n == 5
        # Six pairs all in one direction reach the smallest two-sided p: 2 / 2**6.
        result = wilcoxon_paired([1.0, 2, 3, 4, 5, 6], [0.0] * 6)
        assert result.pvalue == pytest.approx(2 / 64)
        # Zero differences do not count.
        result = wilcoxon_paired([1.0, 2, 3, 4, 5, 6, 7], [1.0, 2, 0, 0, 0, 0, 0])
        assert np.isnan(result.pvalue) and "5 non-zero" in result.reason

    def test_bad_alternative(self):
        with pytest.raises(MetricInputError, match="alternative"):
            wilcoxon_paired([1.0] * 8, [0.0] * 8, alternative="bigger")


class TestHolm:
    def test_hand_example(self):
        # Sorted p: .01, .03, .04 (m = 3) -> .03, .06, max(.06, .04) = .06.
        np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
        np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])
        np.testing.assert_allclose(holm([0.4, 0.6]), [0.8, 0.8])  # running max, then clipped below 1
        np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])

    def test_nan_kept_and_not_counted(self):
        out = holm([0.01, np.nan, 0.04])
        assert np.isnan(out[1])
        np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
        assert np.all(np.isnan(holm([np.nan, np.nan])))

    def test_never_below_raw_and_order_preserving(self):
        p = np.random.default_rng(6).random(20) ** 3
        adjusted = holm(p)
        assert np.all(adjusted >= p) and np.all(adjusted <= 1)
        order = np.argsort(p)
        assert np.all(np.diff(adjusted[order]) >= 0)

    def test_bad_pvalues(self):
        with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
            holm([0.1, 1.5])


class TestBootstrapTest:
    def test_one_level_matches_bootstrap_ci_and_p_agrees_with_the_ci(self):
        rng = np.random.default_rng(3)
        values = 0.1 + rng.normal(0, 0.2, size=40)
        test = bootstrap_test(values, n_bootstrap=500, seed=1)
        ci = bootstrap_ci(values, n_bootstrap=500, seed=1)
        assert (test.low, test.high) == pytest.approx((ci.low, ci.high))
        assert test.estimate == pytest.approx(values.mean())
        # the one-sided p is below 2.5 % exactly when the 95 % CI excludes 0 from below
        assert (test.pvalue < 0.025) == (test.low > 0)

    def test_alternative_sides(self):
        below = np.linspace(-0.5, -0.3, 20)
        assert bootstrap_test(below, alternative="less").pvalue < 0.01
        assert bootstrap_test(below, alternative="greater").pvalue > 0.99
        assert bootstrap_test(below + 0.6, threshold=0.1, alternative="greater").pvalue < 0.01

    def test_two_levels_widen_the_interval_with_replicate_spread(self):
        rng = np.random.default_rng(4)
        images = rng.normal(0, 0.05, size=30)
        same = np.stack([images + 0.2] * 3)
        spread = np.stack([images + 0.2 + shift for shift in (-0.15, 0.0, 0.15)])
        t_same = bootstrap_test(same, n_bootstrap=800, seed=0)
        t_spread = bootstrap_test(spread, n_bootstrap=800, seed=0)
        assert t_same.n_replicates == 3 and t_same.n_images == 30 and t_same.n == 90
        assert t_spread.estimate == pytest.approx(t_same.estimate)
        assert (t_spread.high - t_spread.low) > 2 * (t_same.high - t_same.low)

    def test_nan_and_degenerate_inputs(self):
        t = bootstrap_test([0.2, np.nan, 0.4, 0.3])
        assert t.n == 3 and t.n_dropped == 1
        assert np.isnan(bootstrap_test([0.1]).pvalue) and "single value" in bootstrap_test([0.1]).reason
        constant = bootstrap_test([0.3] * 5)
        assert constant.low == constant.high == 0.3 and constant.pvalue < 0.01
        assert bootstrap_test([0.3] * 5, threshold=0.5).pvalue == 1.0
        with pytest.raises(MetricInputError, match="alternative"):
            bootstrap_test([0.1, 0.2], alternative="two-sided")
        with pytest.raises(MetricInputError, match="shape"):
            bootstrap_test(np.zeros((2, 2, 2)))

    def test_deterministic(self):
        v = np.random.default_rng(5).random((2, 12))
        assert bootstrap_test(v, seed=3) == bootstrap_test(v, seed=3)


def test_holm_on_a_known_case():
    # Holm (1979): p = (0.01, 0.04, 0.03, 0.005), m = 4 -> sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # at alpha 0.05 only the two smallest are rejected, where unadjusted all four would be
    assert list(adjusted < 0.05) == [True, False, False, True]


def test_roc_auc_ci_lives_in_metrics_and_models_keeps_its_error_type():
    from helpers import metrics
    from helpers.models import ModelError
    from helpers.models import roc_auc_ci as models_roc_auc_ci

    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    ci = metrics.roc_auc_ci(y, s, n_bootstrap=300, seed=0)
    assert ci.auc == 0.75 and ci.low <= 0.75 <= ci.high and ci == models_roc_auc_ci(y, s, n_bootstrap=300, seed=0)
    with pytest.raises(metrics.MetricInputError, match="both classes"):
        metrics.roc_auc_ci([1, 1], [0.2, 0.3])
    with pytest.raises(ModelError, match="3 labels but 2 scores"):
        models_roc_auc_ci([0, 1, 1], [0.2, 0.3])
