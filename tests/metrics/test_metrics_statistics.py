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
    verdict_localization,
    verdict_randomization,
    verdict_repeatability,
    verdict_reproducibility,
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


class TestVerdicts:
    def test_localization_pass_fail_undecided(self):
        rng = np.random.default_rng(7)
        prior = rng.uniform(0.1, 0.3, size=30)
        good = prior + 0.2 + rng.normal(0, 0.02, size=30)
        bad = prior - 0.1 + rng.normal(0, 0.02, size=30)
        untrained = prior - 0.05
        verdict = verdict_localization(good, prior, untrained_values=untrained)
        assert isinstance(verdict, Verdict) and verdict.criterion == "localization"
        assert verdict.passed is True and verdict.outcome == "pass"
        assert verdict.numbers["mean_difference"] == pytest.approx(np.mean(good - prior))
        assert verdict.numbers["ci_low"] > 0 and verdict.numbers["wilcoxon_p"] < 0.001
        assert verdict.numbers["beats_untrained"] is True
        assert "average-mask prior" in verdict.rule and "above 0" in verdict.rule and "95%" in verdict.rule
        assert verdict_localization(bad, prior).passed is False
        # A required margin larger than the improvement fails.
        margin = verdict_localization(good, prior, margin=0.5)
        assert margin.passed is False and "above 0.5" in margin.rule
        undecided = verdict_localization([0.5, np.nan], [0.1, 0.2])
        assert undecided.passed is None and undecided.outcome == "undecided" and "UNDECIDED" in str(undecided)

    def test_randomization(self):
        rng = np.random.default_rng(8)
        maps = rng.random((10, 16, 16))
        baseline = random_pair_baseline(maps, seed=0, n_pairs=5)
        low = np.full(20, baseline.mean - 0.2) + rng.normal(0, 0.01, size=20)
        high = np.full(20, baseline.mean + 0.3) + rng.normal(0, 0.01, size=20)
        passing = verdict_randomization(low, baseline)
        assert passing.passed is True and passing.numbers["baseline"] == baseline.mean
        assert passing.numbers["ci_high"] < baseline.mean
        assert "below the random-pair baseline" in passing.rule
        assert verdict_randomization(high, baseline).passed is False
        # Floats and per-image baseline values are accepted too.
        assert verdict_randomization(low, float(baseline.mean)).passed is True
        assert verdict_randomization(low, baseline.values).numbers["baseline"] == pytest.approx(baseline.mean)
        # Straddling the baseline: the upper bound is above it -> fail.
        straddle = baseline.mean + rng.normal(0, 0.05, size=20)
        assert verdict_randomization(straddle - straddle.mean() + baseline.mean, baseline).passed is False
        assert verdict_randomization([0.1], 0.5).passed is None
        with pytest.raises(MetricInputError, match="finite"):
            verdict_randomization(low, float("nan"))

    def test_repeatability_and_reproducibility(self):
        rng = np.random.default_rng(9)
        high = np.clip(0.8 + rng.normal(0, 0.05, size=25), 0, 1)
        low = np.clip(0.3 + rng.normal(0, 0.05, size=25), 0, 1)
        for fn, name in ((verdict_repeatability, "repeatability"), (verdict_reproducibility, "reproducibility")):
            verdict = fn(high, network_baseline=0.975)
            assert verdict.criterion == name and verdict.passed is True
            assert verdict.numbers["ci_low"] >= 0.5 and verdict.numbers["threshold"] == 0.5
            assert verdict.numbers["network_mean"] == 0.975 and verdict.numbers["reaches_network"] is False
            assert verdict.numbers["difference_vs_network"] == pytest.approx(high.mean() - 0.975)
            assert "at least 0.5" in verdict.rule and "reference line" in verdict.rule
            assert fn(low).passed is False
            assert fn(high, threshold=0.9).passed is False and "at least 0.9" in fn(high, threshold=0.9).rule
            assert fn(high, network_baseline=[0.7, 0.8]).numbers["reaches_network"] is True
        assert "same architecture" in verdict_repeatability(high).rule
        assert "different architectures" in verdict_reproducibility(high).rule
        # Mean just above the threshold but a wide CI: not enough.
        noisy = 0.55 + rng.normal(0, 0.3, size=8)
        assert verdict_repeatability(noisy).passed is False

    def test_str_lists_numbers(self):
        verdict = verdict_repeatability([0.9, 0.8, 0.85, 0.95])
        text = str(verdict)
        assert text.startswith("repeatability: PASS") and "ci_low=" in text and "n=4" in text


def test_each_verdict_names_the_statistic_it_judges():
    from helpers import metrics

    same = [0.3, 0.3, 0.3, 0.3]
    rand = metrics.verdict_randomization(same, 0.5, n_bootstrap=20, seed=0)
    assert rand.statistic == "mean_final" and rand.value == pytest.approx(0.3) and rand.ci == pytest.approx((0.3, 0.3))
    for rule in (metrics.verdict_repeatability, metrics.verdict_reproducibility):
        v = rule(same, n_bootstrap=20, seed=0)
        assert v.statistic == "mean" and v.value == pytest.approx(0.3) and v.passed is False
    # too few values: undecided, and the numbers read back as NaN rather than None
    one = metrics.verdict_repeatability([0.9], n_bootstrap=20, seed=0)
    assert one.passed is None and all(np.isnan(x) for x in one.ci)
