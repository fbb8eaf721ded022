"""helpers.criteria.shortcut: marker metrics, the AUC gap and the "reveals a shortcut" verdict, on analytic fixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.criteria import shortcut as sc
from helpers.data.synthetic import generate, labels_and_markers
from helpers.metrics import MetricInputError
from helpers.saliency import explain

SIZE = 64


def _corner_mask(n=3, size=16):
    m = np.zeros((n, size, size), bool)
    m[:, 1:4, 1:3] = True  # 6 pixels
    return m


def test_mass_share_of_analytic_maps():
    k = _corner_mask()
    maps = np.zeros(k.shape)
    maps[0][k[0]] = 1.0  # all mass on the marker
    maps[1] = 1.0  # uniform: the marker's area share
    maps[2][~k[2]] = 1.0  # none on it
    share = sc.marker_mass_share(maps, k)
    assert share[0] == 1.0 and share[2] == 0.0
    assert share[1] == pytest.approx(sc.marker_area_share(k)[1]) == pytest.approx(6 / 256)
    assert np.isnan(sc.marker_mass_share(np.zeros_like(maps), k)).all()  # an empty map points nowhere


def test_pointing_game_with_tolerance_and_ties():
    k = _corner_mask()
    maps = np.zeros(k.shape)
    maps[0, 2, 1] = 1.0  # on the marker
    maps[1, 2, 3] = 1.0  # one pixel right of it
    maps[2, 10, 10] = 1.0  # far away
    assert list(sc.marker_pointing(maps, k, tolerance=0)) == [1.0, 0.0, 0.0]
    assert list(sc.marker_pointing(maps, k, tolerance=1)) == [1.0, 1.0, 0.0]
    tie = np.zeros(k.shape)
    tie[:, 2, 1] = tie[:, 10, 10] = 1.0
    assert sc.marker_pointing(tie, k)[0] == 0.5
    assert np.isnan(sc.marker_pointing(np.ones(k.shape), k)).all()  # constant maps
    with pytest.raises(MetricInputError):
        sc.marker_pointing(maps, k.astype(int))


class MarkerOnly(nn.Module):
    """Analytic fixture: a linear two-class model whose abnormal logit reads only the marker's pixels."""

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32)[None, None])
        self.relu = nn.ReLU()  # identity on non-negative inputs; lets guided backpropagation run

    def forward(self, x):  # noqa: D102
        z = self.relu(x * self.weight).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.mark.parametrize("method, settings", [("GRAD", {}), ("SG", {"n_samples": 4}), ("IG", {"n_steps": 5}),
                                              ("SIG", {"n_samples": 2, "n_steps": 4}), ("GBP", {})])
def test_a_model_that_sees_only_the_marker_gets_maps_on_the_marker(method, settings):
    """The gradient of a model that reads only the marker is the marker mask: every gradient method points there."""
    s = generate(3, size=SIZE, seed=1, marker_presence="all", marker_placement="upper_left", marker_size=0.3)
    weight = s.marker_masks[0].astype(np.float32)
    model = MarkerOnly(weight).eval()
    maps = explain(model, s.images, method, target=1, progress=False, **settings)
    own = np.repeat(weight[None].astype(bool), len(s), axis=0)  # the pixels the model reads
    assert np.nanmin(sc.marker_mass_share(maps, own)) > 0.95
    assert np.nanmin(sc.marker_pointing(maps, own, tolerance=0)) == 1.0


def test_auc_gap_is_zero_for_a_model_blind_to_the_marker_and_large_for_one_that_reads_it():
    rng = np.random.default_rng(0)
    n = 300
    for c in (0.0, 1.0):
        d = labels_and_markers(n, seed=3, confounder_strength=c, marker_presence="independent" if c == 0 else "confounded")
        y, marker = d["true_labels"], d["markers"].astype(float)
        disease = y + rng.normal(0, 1.0, n)  # a weak disease signal
        blind = sc.auc_gap(y, disease, disease, disease, n_bootstrap=300)
        assert blind.gap == 0.0 and blind.low == 0.0 == blind.high  # the marker changes nothing it sees
        # a model that reads the marker (plus the same disease signal)
        reads = sc.auc_gap(y, disease + 3 * marker, disease + 3, disease, n_bootstrap=300, seed=1)
        if c == 0.0:  # correlation 0: the gap is about 0 and its CI covers 0
            assert abs(reads.gap) < 0.05 and reads.low <= 0.0 <= reads.high
        else:
            assert reads.gap > 0.2 and reads.low > 0.1
            assert reads.confounded > 0.95 and reads.confounded_low <= reads.confounded <= reads.confounded_high


def test_auc_gap_table_judges_each_gap_against_zero():
    y = np.array([0, 1] * 20)
    noise = np.linspace(0, 0.5, 40)
    honest = y + noise  # the marker changes nothing it sees: gap 0
    reads = sc.auc_gap(y, y + noise, np.ones(40) + noise[::-1], noise[::-1], n_bootstrap=300)  # AUC 1 -> about 0.5
    inverted = sc.auc_gap(y, 1 - y + noise, honest, honest, n_bootstrap=300)  # confounded AUC 0, de-confounded 1
    gaps = {"honest": sc.auc_gap(y, honest, honest, honest, n_bootstrap=300), "shortcut": reads, "inverted": inverted}
    table = sc.auc_gap_table(gaps)
    assert list(table.index) == ["honest", "shortcut", "inverted"]
    assert list(table.verdict) == ["not distinguishable", "better", "worse"]
    assert table.loc["shortcut", "value"] == reads.gap and table.loc["shortcut", "ci_low"] == reads.low
    assert table.loc["honest", "against"] == "honest: de-confounded" and (table.n == 40).all()


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    y = np.array([0, 1, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.4, 0.8, 0.2, 0.2, 0.9])
    assert sc._auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_auc_gap_refuses_bad_input():
    with pytest.raises(MetricInputError):
        sc.auc_gap([0, 0, 0], [1, 2, 3], [1, 2, 3], [1, 2, 3])
    with pytest.raises(MetricInputError):
        sc.auc_gap([0, 1], [1, 2], [1, 2, 3], [1, 2])


def _scores(share_shortcut, share_honest, method="GRAD"):
    rows = []
    for model, shares in (("c = 1", share_shortcut), ("c = 0", share_honest)):
        for i, v in enumerate(shares):
            rows.append(dict(model=model, method=method, image_id=f"im{i}", metric="marker_mass_share", value=v))
            rows.append(dict(model=model, method=method, image_id=f"im{i}", metric="marker_pointing",
                             value=float(v > 0.3)))
    return pd.DataFrame(rows)


def test_verdict_reveals_when_the_shortcut_maps_sit_on_the_marker():
    rng = np.random.default_rng(2)
    honest = rng.uniform(0.0, 0.05, 12)
    reveals = sc.judge(_scores(honest + 0.4, honest), methods=["GRAD"], shortcut_model="c = 1", honest_model="c = 0",
                       architecture="smallcnn", n_bootstrap=500)
    row = reveals.iloc[0]
    assert row.criterion == "shortcut" and row.rules == "book" and row.passed is True
    assert row.value == pytest.approx(0.4) and row.ci_low > 0
    hides = sc.judge(_scores(honest, honest + rng.normal(0, 0.01, 12)), methods=["GRAD"], shortcut_model="c = 1",
                     honest_model="c = 0", architecture="smallcnn", n_bootstrap=500)
    assert hides.iloc[0].passed is False
    v = sc.verdict_reveals(honest + 0.4, honest, shortcut_pointing=np.ones(12), honest_pointing=np.zeros(12),
                           n_bootstrap=200)
    assert v.numbers["pointing_shortcut"] == 1.0 and v.numbers["pointing_honest"] == 0.0
    assert sc.verdict_reveals([np.nan], [0.1], n_bootstrap=50).passed is None


def test_first_revealing_takes_the_smallest_strength():
    def frame(passed):
        return pd.DataFrame({"method": ["GRAD", "GCAM"], "passed": pd.Series(passed, dtype=object)})

    table = sc.first_revealing({1.0: frame([True, True]), 0.5: frame([False, True]).iloc[:1]})
    assert table.loc["GCAM", "c = 0.5"] == "not computed"
    table = sc.first_revealing({1.0: frame([True, True]), 0.5: frame([False, True])})
    assert table.loc["GCAM", "first reveals at"] == 0.5 and table.loc["GRAD", "first reveals at"] == 1.0
    assert table.loc["GRAD", "c = 0.5"] == "hides"


def test_judge_takes_trainable_as_one_more_method_and_refuses_a_map_without_its_honest_pair():
    """TRAINABLE's rows are judged like a post-hoc method's (one Holm family); the U-Net, trained on the shortcut
    dataset only, has no honest model's maps to be paired with and is refused by name."""
    rng = np.random.default_rng(4)
    honest = rng.uniform(0.0, 0.05, 12)
    scores = pd.concat([_scores(honest + 0.4, honest, "GRAD"), _scores(honest + 0.3, honest, "TRAINABLE")],
                       ignore_index=True)
    verdicts = sc.judge(scores, methods=["GRAD", "TRAINABLE"], shortcut_model="c = 1", honest_model="c = 0",
                        architecture="smallcnn", n_bootstrap=500)
    row = verdicts.set_index("method").loc["TRAINABLE"]
    assert row.passed is True and row.value == pytest.approx(0.3)
    assert verdicts.p_holm.max() >= verdicts.p_value.max()  # adjusted over the two methods
    first = sc.first_revealing({1.0: verdicts})
    assert first.loc["TRAINABLE", "first reveals at"] == 1.0
    unet = _scores(honest, honest, "U-Net")
    unet = pd.concat([scores, unet[unet.model == "c = 1"]], ignore_index=True)
    with pytest.raises(ValueError, match="no marker scores of method 'U-Net' for model 'c = 0'"):
        sc.judge(unet, methods=["U-Net"], shortcut_model="c = 1", honest_model="c = 0", architecture="unet")
