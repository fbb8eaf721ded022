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
