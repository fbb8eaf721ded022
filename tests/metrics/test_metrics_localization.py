"""Localization metrics on analytic fixtures (all-in, none-in, half-in, empty mask, constant map)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from helpers.metrics import (
    ConstantMapWarning,
    EmptyMaskWarning,
    MetricInputError,
    UndefinedMetricWarning,
    auprc_trapezoid,
    average_precision,
    hit,
    iou_otsu,
    localization_table,
    localization_with_reason,
    roc_auc,
)

# A 4x4 image whose mask is the left half (8 of 16 pixels, prevalence 0.5).
MASK = np.zeros((4, 4), dtype=bool)
MASK[:, :2] = True


def _map(cells) -> np.ndarray:
    out = np.zeros((4, 4))
    for r, c in cells:
        out[r, c] = 1.0
    return out


ALL_IN = MASK.astype(float)  # high exactly on the mask
NONE_IN = (~MASK).astype(float)  # high exactly outside the mask
HALF_IN = _map([(0, 0), (0, 1), (1, 0), (1, 1)])  # high on half of the mask, nowhere else
STRADDLE = _map([(0, 1), (0, 2), (1, 1), (1, 2)])  # high on 2 pixels inside, 2 outside
CONSTANT = np.full((4, 4), 0.3)
EMPTY = np.zeros((4, 4), dtype=bool)


def _ap_by_hand(scores: np.ndarray, labels: np.ndarray) -> float:
    """Independent AP: sum over distinct thresholds (descending) of (R_n - R_{n-1}) * P_n."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        selected = scores >= t
        tp = np.sum(labels & selected)
        precision, recall = tp / selected.sum(), tp / labels.sum()
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


class TestAnalyticFixtures:
    def test_all_in(self):
        assert average_precision(ALL_IN, MASK) == 1.0
        assert auprc_trapezoid(ALL_IN, MASK) == 1.0
        assert roc_auc(ALL_IN, MASK) == 1.0
        assert iou_otsu(ALL_IN, MASK) == 1.0
        assert hit(ALL_IN, MASK) == 1.0

    def test_none_in_is_prevalence_level(self):
        # Ties at 0 among all mask pixels: AP = prevalence exactly.
        assert average_precision(NONE_IN, MASK) == pytest.approx(0.5)
        assert roc_auc(NONE_IN, MASK) == 0.0
        assert iou_otsu(NONE_IN, MASK) == 0.0
        assert hit(NONE_IN, MASK) == 0.0

    def test_none_in_strict_ranking_below_prevalence(self):
        # Scores 4 > 3 > 2 > 1, mask on the two lowest: AP = .5 * 1/3 + .5 * 2/4 = 5/12.
        saliency = np.array([[4.0, 3.0], [2.0, 1.0]])
        mask = np.array([[False, False], [True, True]])
        assert average_precision(saliency, mask) == pytest.approx(5 / 12)

    def test_half_in(self):
        # Threshold 1: P = 4/4, R = 4/8; threshold 0: P = 8/16, R = 1.
        assert average_precision(HALF_IN, MASK) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)  # 0.75
        # Trapezoid through (0, 1), (.5, 1), (1, .5): 0.5 + 0.5 * (1 + .5) / 2.
        assert auprc_trapezoid(HALF_IN, MASK) == pytest.approx(0.875)
        # ROC AUC: half the positives beat every negative, the other half tie with them.
        assert roc_auc(HALF_IN, MASK) == pytest.approx(0.5 + 0.5 * 0.5)
        # Otsu keeps the 4 bright pixels, all inside the 8-pixel mask.
        assert iou_otsu(HALF_IN, MASK) == pytest.approx(4 / 8)
        assert hit(HALF_IN, MASK) == 1.0

    def test_trapezoid_hand_case(self):
        # Scores 4, 3, 2, 1 with labels 1, 0, 1, 0:
        # PR points (R, P): (0, 1), (.5, 1), (.5, .5), (1, 2/3), (1, .5).
        # Trapezoid: .5 * 1 + .5 * (.5 + 2/3) / 2 = 19/24; step-wise AP = (1 + 2/3) / 2 = 5/6.
        saliency = np.array([[4.0, 3.0], [2.0, 1.0]])
        mask = np.array([[True, False], [True, False]])
        assert auprc_trapezoid(saliency, mask) == pytest.approx(19 / 24)
        assert average_precision(saliency, mask) == pytest.approx(5 / 6)

    def test_constant_map(self):
        # Rank metrics: chance level, no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert average_precision(CONSTANT, MASK) == pytest.approx(0.5)
            assert auprc_trapezoid(CONSTANT, MASK) == pytest.approx((1 + 0.5) / 2)
            assert roc_auc(CONSTANT, MASK) == pytest.approx(0.5)
        with pytest.warns(ConstantMapWarning, match="constant map"):
            assert np.isnan(iou_otsu(CONSTANT, MASK))
        with pytest.warns(ConstantMapWarning):
            assert np.isnan(hit(CONSTANT, MASK))

    @pytest.mark.parametrize("metric", [average_precision, auprc_trapezoid, roc_auc, iou_otsu, hit])
    def test_empty_mask_is_nan_never_zero(self, metric):
        for saliency in (ALL_IN, HALF_IN, CONSTANT):
            with pytest.warns(EmptyMaskWarning, match="empty mask"):
                assert np.isnan(metric(saliency, EMPTY))

    def test_empty_mask_pointing_game_is_not_a_hit(self):
        # Quantus stores NaN into a bool array, i.e. True: an empty mask counts as a hit.
        buggy = np.array([False])
        buggy[0] = np.nan
        assert buggy[0]  # the numpy behaviour behind the bug
        with pytest.warns(EmptyMaskWarning):
            value = hit(ALL_IN, EMPTY)
        assert not value == 1.0 and np.isnan(value)

    def test_full_mask_is_undefined_for_every_metric(self):
        # Any map, even a random one, would score 1 against a whole-image mask.
        from helpers.metrics import FullMaskWarning

        full = np.ones((4, 4), dtype=bool)
        random_map = np.random.default_rng(0).random((4, 4))
        for metric in (average_precision, auprc_trapezoid, roc_auc, iou_otsu, hit):
            with pytest.warns(FullMaskWarning, match="whole image"):
                assert np.isnan(metric(random_map, full)), metric.__name__
        with pytest.warns(UndefinedMetricWarning, match="whole image"):
            assert np.isnan(roc_auc(HALF_IN, full))


class TestHitTies:
    def test_tie_rules(self):
        # Four maximal pixels, two of them inside the mask.
        assert hit(STRADDLE, MASK) == 0.5
        assert hit(STRADDLE, MASK, ties="fraction") == 0.5
        assert hit(STRADDLE, MASK, ties="all") == 0.0
        assert hit(STRADDLE, MASK, ties="any") == 1.0
        # First maximal pixel in raster order is (0, 1): inside.
        assert hit(STRADDLE, MASK, ties="first") == 1.0
        # Here it is (0, 2): outside, although half the maxima are inside.
        outside_first = _map([(0, 2), (0, 3), (1, 0), (1, 1)])
        assert hit(outside_first, MASK, ties="first") == 0.0
        assert hit(outside_first, MASK, ties="fraction") == 0.5

    def test_unique_maximum(self):
        saliency = HALF_IN * 0.5
        saliency[3, 3] = 1.0  # unique maximum outside the mask
        for rule in ("fraction", "all", "any", "first"):
            assert hit(saliency, MASK, ties=rule) == 0.0

    def test_unknown_rule(self):
        with pytest.raises(MetricInputError, match="tie rule"):
            hit(HALF_IN, MASK, ties="median")


class TestAgainstLibraries:
    def test_average_precision_matches_sklearn_and_hand_formula(self):
        rng = np.random.default_rng(0)
        for _ in range(5):
            saliency = rng.random((32, 32)).round(2)  # rounding creates ties
            mask = np.zeros((32, 32), dtype=bool)
            r, c = rng.integers(0, 24, size=2)
            mask[r : r + 8, c : c + 6] = True
            expected = average_precision_score(mask.ravel(), saliency.ravel())
            assert average_precision(saliency, mask) == pytest.approx(expected, abs=1e-12)
            assert average_precision(saliency, mask) == pytest.approx(_ap_by_hand(saliency.ravel(), mask.ravel()), abs=1e-12)

    def test_iou_matches_hand_threshold(self):
        from skimage.filters import threshold_otsu

        rng = np.random.default_rng(1)
        saliency = 0.2 * rng.random((32, 32))
        saliency[10:20, 10:20] += 1.0
        mask = np.zeros((32, 32), dtype=bool)
        mask[12:22, 12:22] = True
        predicted = saliency > threshold_otsu(saliency)
        expected = (predicted & mask).sum() / (predicted | mask).sum()
        assert iou_otsu(saliency, mask) == pytest.approx(expected)
        # Otsu separates the bright 10x10 block: IoU of two 10x10 squares offset by 2 is 64/136.
        # skimage's threshold is the centre of a 256-bin histogram bin, so a few of the
        # brightest background pixels (upper half of that bin) join the foreground.
        assert 0.4 < iou_otsu(saliency, mask) <= 64 / 136


class TestInputValidation:
    @pytest.mark.parametrize(
        "saliency, mask, match",
        [
            (np.zeros((4, 5)), MASK, "same shape"),
            (np.zeros((1, 4, 4)), MASK, "2-D"),
            (np.full((4, 4), np.nan), MASK, "NaN"),
            (HALF_IN, MASK.astype(int) * 2, "0 and 1"),
            (HALF_IN, MASK[None], "2-D"),
            ("abc", MASK, "numeric"),
        ],
    )
    def test_bad_input(self, saliency, mask, match):
        with pytest.raises(MetricInputError, match=match):
            average_precision(saliency, mask)

    def test_error_is_value_error_and_01_masks_accepted(self):
        assert issubclass(MetricInputError, ValueError)
        assert average_precision(HALF_IN, MASK.astype(np.uint8)) == average_precision(HALF_IN, MASK)


class TestWithReason:
    def test_reasons_without_warnings(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert localization_with_reason(HALF_IN, EMPTY, metric="hit") == (pytest.approx(np.nan, nan_ok=True), "empty mask")
            value, reason = localization_with_reason(CONSTANT, MASK, metric="iou_otsu")
            assert np.isnan(value) and reason == "constant map"
            assert localization_with_reason(STRADDLE, MASK, metric="hit", ties="all") == (0.0, "")
            assert localization_with_reason(HALF_IN, MASK) == (pytest.approx(0.75), "")

    def test_unknown_metric(self):
        with pytest.raises(MetricInputError, match="unknown localization metric"):
            localization_with_reason(HALF_IN, MASK, metric="dice")


class TestTable:
    def test_tidy_rows_match_single_functions(self):
        maps = np.stack([ALL_IN, HALF_IN, STRADDLE])
        masks = np.stack([MASK, MASK, MASK])
        table = localization_table(maps, masks, ["a", "b", "c"])
        assert list(table.columns) == ["image_id", "metric", "value"]
        assert len(table) == 3 * 5
        assert table["value"].dtype == np.float64
        wide = table.pivot(index="image_id", columns="metric", values="value")
        for image_id, saliency in zip("abc", maps):
            assert wide.loc[image_id, "average_precision"] == pytest.approx(average_precision(saliency, MASK))
            assert wide.loc[image_id, "auprc_trapezoid"] == pytest.approx(auprc_trapezoid(saliency, MASK))
            assert wide.loc[image_id, "iou_otsu"] == pytest.approx(iou_otsu(saliency, MASK))
            assert wide.loc[image_id, "hit"] == pytest.approx(hit(saliency, MASK))
            assert wide.loc[image_id, "roc_auc"] == pytest.approx(roc_auc(saliency, MASK))

    def test_nan_rows_summarized_with_reasons(self):
        maps = np.stack([ALL_IN, HALF_IN, CONSTANT])
        masks = np.stack([MASK, EMPTY, MASK])
        with pytest.warns(UndefinedMetricWarning) as record:
            table = localization_table(maps, masks, ["a", "b", "c"], metrics=["average_precision", "hit"], with_reason=True)
        messages = " ".join(str(w.message) for w in record)
        assert "localization_table[hit]: 2 of 3 values are NaN" in messages
        assert "localization_table[average_precision]: 1 of 3" in messages
        row = table[(table.image_id == "c") & (table.metric == "hit")].iloc[0]
        assert np.isnan(row.value) and row.reason == "constant map"
        row = table[(table.image_id == "a") & (table.metric == "hit")].iloc[0]
        assert row.value == 1.0 and row.reason == ""
        assert isinstance(table, pd.DataFrame)

    @pytest.mark.parametrize(
        "ids, match",
        [(["a", "b"], "one id per map"), (["a", "a", "b"], "unique")],
    )
    def test_bad_ids(self, ids, match):
        maps = np.stack([ALL_IN] * 3)
        with pytest.raises(MetricInputError, match=match):
            localization_table(maps, np.stack([MASK] * 3), ids)

    def test_shape_mismatch(self):
        with pytest.raises(MetricInputError, match="same shape"):
            localization_table(np.stack([ALL_IN] * 2), np.stack([MASK] * 3), ["a", "b"])
