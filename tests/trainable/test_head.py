"""The aggregations of the evidence head, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from helpers.trainable import POOLINGS, EvidenceHead, TrainableConfigError, aggregate


def _maps(seed=0, shape=(3, 2, 4, 5)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("r", [0.5, 5.0, 20.0])
def test_lse_is_the_log_mean_exp_over_locations(r):
    maps = _maps()
    expected = (logsumexp(r * maps.numpy().reshape(3, 2, -1), axis=2) - np.log(20)) / r
    np.testing.assert_allclose(aggregate(maps, pooling="lse", r=r).numpy(), expected, rtol=1e-12)


def test_lse_lies_between_mean_and_max_and_tends_to_them():
    maps = _maps(1)
    flat = maps.flatten(2)
    mean, peak = flat.mean(2), flat.amax(2)
    for r in (0.1, 1.0, 10.0):
        value = aggregate(maps, pooling="lse", r=r)
        assert torch.all(value >= mean - 1e-12) and torch.all(value <= peak + 1e-12)
    torch.testing.assert_close(aggregate(maps, pooling="lse", r=1e-4), mean, atol=1e-3, rtol=0)
    torch.testing.assert_close(aggregate(maps, pooling="lse", r=1e3), peak, atol=5e-3, rtol=0)


def test_constant_map_aggregates_to_its_value_for_every_pooling():
    maps = torch.full((2, 2, 3, 3), 1.7, dtype=torch.float64)
    attention = torch.full((2, 1, 3, 3), 1 / 9, dtype=torch.float64)
    for pooling in POOLINGS:
        out = aggregate(maps, pooling=pooling, r=5.0, attention=attention)
        torch.testing.assert_close(out, torch.full((2, 2), 1.7, dtype=torch.float64))


def test_max_mean_attention_by_hand():
    maps = _maps(2)
    flat = maps.numpy().reshape(3, 2, -1)
    np.testing.assert_allclose(aggregate(maps, pooling="max").numpy(), flat.max(2))
    np.testing.assert_allclose(aggregate(maps, pooling="mean").numpy(), flat.mean(2))
    weights = torch.softmax(torch.randn(3, 20, dtype=torch.float64), dim=1).view(3, 1, 4, 5)
    expected = (flat * weights.numpy().reshape(3, 1, -1)).sum(2)
    np.testing.assert_allclose(aggregate(maps, pooling="attention", attention=weights).numpy(), expected)


def test_attention_head_equals_ilse_linear_classifier_on_pooled_embedding():
    torch.manual_seed(0)
    head = EvidenceHead(6, pooling="attention", attention_dim=4).double()
    features = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    logits, maps, weights = head(features)
    assert torch.allclose(weights.flatten(2).sum(2), torch.ones(2, 1, dtype=torch.float64))
    embedding = (features.flatten(2) * weights.flatten(2)).sum(2)  # sum_u a_u h_u (Ilse et al. eq. 6)
    expected = embedding @ head.evidence.weight.view(2, 6).T + head.evidence.bias
    torch.testing.assert_close(logits, expected)


def test_bad_options_raise():
    with pytest.raises(TrainableConfigError, match="unknown pooling"):
        aggregate(_maps(), pooling="median")
    with pytest.raises(TrainableConfigError, match="sharpness"):
        EvidenceHead(4, r=0.0)
    with pytest.raises(TrainableConfigError, match="attention weights"):
        aggregate(_maps(), pooling="attention")
    with pytest.raises(TrainableConfigError, match=r"\(N, C, h, w\)"):
        aggregate(torch.zeros(2, 3), pooling="mean")
