"""helpers.criteria.comparison: a clearly better, a clearly worse and a tied comparison give the three verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import criteria, metrics
from helpers.criteria.comparison import COMPARISON_COLUMNS, REFERENCE, verdict_word

OPTS = dict(n_bootstrap=300, seed=0)
IMAGES = [f"img{i:02d}" for i in range(12)]


def _tidy(**maps) -> pd.DataFrame:
    """Tidy per-image rows of localization_table's shape: image_id, method, metric, value."""
    return pd.concat([pd.DataFrame({"image_id": IMAGES, "method": name, "metric": "average_precision",
                                    "value": np.asarray(values, dtype=float)}) for name, values in maps.items()],
                     ignore_index=True)


BASE = np.linspace(0.2, 0.6, 12)
JITTER = np.array([0.01, -0.01] * 6)


def test_verdict_word_analytic():
    assert verdict_word(0.01, 0.2) == "better"
    assert verdict_word(-0.2, -0.01) == "worse"
    assert verdict_word(-0.1, 0.1) == "not distinguishable"
    assert verdict_word(0.0, 0.1) == "not distinguishable"  # touching 0 is not above it
    assert verdict_word(0.6, 0.7, reference_low=0.3, reference_high=0.5) == "better"
    assert verdict_word(0.1, 0.2, reference_low=0.3, reference_high=0.5) == "worse"
    assert verdict_word(0.2, 0.35, reference_low=0.3, reference_high=0.5) == "not distinguishable"
    assert verdict_word(0.01, 0.2, higher_is_better=False) == "worse"
    assert verdict_word(np.nan, 0.2) == "undecided"
    assert verdict_word(0.1, 0.2, reference_low=np.nan, reference_high=0.5) == "undecided"


def test_compare_paired_gives_better_worse_and_not_distinguishable():
    scores = _tidy(A=BASE, better=BASE + 0.2 + JITTER, worse=BASE - 0.2 + JITTER, tied=BASE + JITTER)
    table = criteria.compare_paired(scores, compared="A", against=["better", "worse", "tied"],
                                    metric="average_precision", **OPTS)
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert list(table.against) == ["better", "worse", "tied"] and (table.compared == "A").all()
    # A minus a map 0.2 higher is 0.2 lower: "worse"; and the other way round.
    assert list(table.verdict) == ["worse", "better", "not distinguishable"]
    np.testing.assert_allclose(table.value, [-0.2, 0.2, 0.0], atol=1e-12)
    assert (table.ci_low <= table.value).all() and (table.value <= table.ci_high).all()
    assert (table.n == 12).all() and (table.statistic == "mean_difference").all()
    assert table.loc[0, "p_value"] < 0.01 and table.loc[2, "p_value"] > 0.5  # Wilcoxon, two-sided
    assert "paired" in table.loc[0, "rule_text"]


def test_compare_paired_is_the_paired_bootstrap_and_wilcoxon_of_the_sorted_images():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=12), rng.uniform(size=12)
    scores = _tidy(a=a, b=b).sample(frac=1.0, random_state=0)  # row order must not matter
    row = criteria.compare_paired(scores, compared="a", against="b", **OPTS).iloc[0]
    d = metrics.paired_bootstrap_diff(a, b, **OPTS)
    assert (row.value, row.ci_low, row.ci_high) == (d.estimate, d.low, d.high)
    assert row.p_value == metrics.wilcoxon_paired(a, b).pvalue


def test_compare_paired_drops_images_without_both_values_and_lower_is_better_flips():
    worse = BASE + 0.2 + JITTER
    worse[0] = np.nan
    table = criteria.compare_paired(_tidy(A=BASE, err=worse), compared="err", against="A", higher_is_better=False,
                                    **OPTS)
    assert table.loc[0, "n"] == 11 and table.loc[0, "verdict"] == "worse"


def test_compare_paired_refuses_doubled_images_and_missing_maps():
    scores = _tidy(A=BASE, B=BASE)
    with pytest.raises(ValueError, match="more than one"):
        criteria.compare_paired(pd.concat([scores, scores.iloc[:1]]), compared="A", against="B")
    with pytest.raises(ValueError, match=r"no rows for \['C'\]"):
        criteria.compare_paired(scores, compared="A", against="C")
    with pytest.raises(ValueError, match="no 'iou' rows"):
        criteria.compare_paired(scores, compared="A", against="B", metric="iou")


def test_compare_means_judges_each_group_against_the_reference_by_overlap():
    frame = pd.concat([pd.DataFrame({"map": name, "value": values}) for name, values in (
        ("low", BASE * 0.1), ("same", BASE + JITTER), ("high", BASE + 1.0), ("ceiling", BASE))], ignore_index=True)
    table = criteria.compare_means(frame, by="map", reference="ceiling", **OPTS)
    assert list(table.compared) == ["low", "same", "high", "ceiling"]
    assert list(table.verdict) == ["worse", "not distinguishable", "better", REFERENCE]
    assert list(table.against) == ["ceiling"] * 3 + [""]
    ci = metrics.bootstrap_ci(BASE, **OPTS)
    assert tuple(table.iloc[3][["value", "ci_low", "ci_high"]]) == (ci.estimate, ci.low, ci.high)
    with pytest.raises(ValueError, match="no rows of the reference 'U-Net'"):
        criteria.compare_means(frame, by="map", reference="U-Net")


def test_compare_means_with_too_few_values_is_undecided():
    frame = pd.DataFrame({"map": ["one", "ref", "ref", "ref"], "value": [0.5, 0.1, 0.2, 0.3]})
    assert criteria.compare_means(frame, by="map", reference="ref", **OPTS).loc[0, "verdict"] == "undecided"


def test_compare_auc_gives_the_three_verdicts_and_roc_auc_ci_numbers():
    y = np.array([0, 1] * 20)
    signal = np.linspace(0, 1, 40)
    good = y + 0.1 * signal  # separates the classes: AUC 1
    bad = 1 - y + 0.1 * signal  # inverted: AUC 0
    middling = signal  # no information
    table = criteria.compare_auc(y, {"middling": middling, "good": good, "bad": bad, "also middling": middling[::-1]},
                                 **OPTS)
    assert list(table.compared) == ["middling", "good", "bad", "also middling"]
    assert list(table.verdict) == [REFERENCE, "better", "worse", "not distinguishable"]
    assert table.loc[1, "value"] == 1.0 and table.loc[2, "value"] == 0.0 and (table.n == 40).all()
    auc = metrics.roc_auc_ci(y, middling, **OPTS)
    assert tuple(table.iloc[0][["value", "ci_low", "ci_high"]]) == (auc.auc, auc.low, auc.high)
    assert criteria.compare_auc(y, {"good": good, "bad": bad}, reference="bad", **OPTS).verdict.tolist() == [
        "better", REFERENCE]
    with pytest.raises(ValueError, match="reference 'x'"):
        criteria.compare_auc(y, {"good": good}, reference="x")
