"""Verdict rows written by chapters come back as scorecard cells."""

import math
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import pytest

from helpers import scorecard
from helpers.results import ResultTable, read_results


def _write(tmp_path):
    t = ResultTable("01_localization_utility", tmp_path)
    scorecard.record_verdict(t, "localization", SimpleNamespace(passed=True), method="GRAD",
                             architecture="resnet18", value=0.12, ci=(0.05, 0.2))
    scorecard.record_verdict(t, "localization", SimpleNamespace(passed=None), method="GCAM",
                             architecture="resnet18", value=float("nan"), ci=(float("nan"), float("nan")))
    t.save()
    t2 = ResultTable("02_randomization_sensitivity", tmp_path)
    scorecard.record_verdict(t2, "randomization", SimpleNamespace(passed=False), method="GRAD",
                             value=0.7, ci=(0.6, 0.8))
    t2.add(metric="ssim", value=0.3, method="GRAD", state="Logits", image_id="1")
    t2.save()
    return read_results(tmp_path)


def test_cells_pivot_verdicts_with_their_numbers(tmp_path):
    card = scorecard.cells(_write(tmp_path))
    grad = card[card.method == "GRAD"].set_index("criterion")
    assert grad.loc["localization", "passed"] is True
    assert grad.loc["randomization", "passed"] is False
    assert grad.loc["randomization", "value"] == pytest.approx(0.7)
    assert grad.loc["localization", "ci_low"] == pytest.approx(0.05)
    gcam = card[card.method == "GCAM"].iloc[0]
    assert gcam["passed"] is None and math.isnan(gcam["value"])
    # localization comes before randomization (the order of CRITERIA)
    assert list(grad.index) == ["localization", "randomization"]


def test_styled_and_heatmap_render(tmp_path):
    card = scorecard.cells(_write(tmp_path))
    html = scorecard.styled(card, method_order=["GCAM", "GRAD"]).to_html()
    assert "PASS 0.12 [0.05, 0.20]" in html and "FAIL 0.70" in html and "n/a" in html
    fig = scorecard.heatmap(card)
    assert fig.axes[0].get_xlabel() == "trust criterion"


def test_unknown_criterion_and_empty_results_fail_loudly(tmp_path):
    t = ResultTable("01_localization_utility", tmp_path)
    with pytest.raises(ValueError, match="unknown criterion"):
        scorecard.record_verdict(t, "beauty", SimpleNamespace(passed=True), method="X", value=1, ci=(0, 1))
    empty = read_results(tmp_path)
    with pytest.raises(ValueError, match="no verdict rows"):
        scorecard.cells(empty.assign(metric=[]) if len(empty) else empty)


def test_record_verdict_reads_the_statistic_and_ci_from_the_verdict(tmp_path):
    from helpers import metrics

    # Per-image AP of a map that beats the prior by exactly 0.2 on every image:
    # every bootstrap mean is 0.2, so value and both CI ends are 0.2.
    v = metrics.verdict_localization([0.6, 0.7, 0.8], [0.4, 0.5, 0.6], n_bootstrap=50, seed=0)
    assert v.statistic == "mean_difference"
    assert v.value == pytest.approx(0.2) and v.ci == pytest.approx((0.2, 0.2))
    t = ResultTable("01_localization_utility", tmp_path)
    scorecard.record_verdict(t, "localization", v, method="GRAD")
    # an explicit value/ci still overrides the verdict's own
    scorecard.record_verdict(t, "localization", v, method="IG", value=0.5, ci=(0.4, 0.6))
    t.save()
    card = scorecard.cells(read_results(tmp_path)).set_index("method")
    assert card.loc["GRAD", "passed"] is True
    assert card.loc["GRAD", ["value", "ci_low", "ci_high"]].tolist() == pytest.approx([0.2, 0.2, 0.2])
    assert card.loc["IG", ["value", "ci_low", "ci_high"]].tolist() == pytest.approx([0.5, 0.4, 0.6])


def test_record_verdict_without_a_statistic_fails_loudly(tmp_path):
    from helpers.metrics import Verdict
    from helpers.metrics.statistics import MetricInputError

    t = ResultTable("01_localization_utility", tmp_path)
    with pytest.raises(MetricInputError, match="names no statistic"):
        scorecard.record_verdict(t, "localization", Verdict("localization", True, "by hand"), method="GRAD")
