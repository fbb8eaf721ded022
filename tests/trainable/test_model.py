"""The self-explaining classifier on every backbone of the zoo."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from torch import nn

from helpers.models import assert_relu_modules
from helpers.trainable import (
    POOLINGS,
    SelfExplainingClassifier,
    TrainableConfigError,
    build_self_explaining,
    truncate_at,
)

SIZES = {"smallcnn": 32, "resnet18": 32, "resnet50": 32, "densenet121": 32, "inception_v3": 80}


@pytest.mark.parametrize("architecture", list(SIZES))
def test_map_has_the_input_size_and_logits_are_the_lse_of_the_maps(architecture):
    size = SIZES[architecture]
    model = build_self_explaining(architecture, seed=0, probe_size=size).eval()
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, maps, _ = model.forward_with_maps(x)
        evidence = model.evidence_map(x, target=1)
    assert model.architecture == architecture + "+saliency-head"
    assert logits.shape == (2, 2) and maps.shape[:2] == (2, 2)
    assert evidence.shape == (2, size, size)
    # The class score is the stated aggregation of the map (LSE, r), recomputed by hand.
    flat = maps.double().numpy().reshape(2, 2, -1)
    expected = (logsumexp(model.r * flat, axis=2) - np.log(flat.shape[2])) / model.r
    np.testing.assert_allclose(logits.double().numpy(), expected, rtol=1e-5, atol=1e-5)
    # The head sits on the GradCAM layer of the zoo model, under its torchvision name.
    assert model.feature_layer_name.startswith("backbone.")
    assert assert_relu_modules(model, x).functional_calls == 0


def test_backbone_keeps_the_zoo_models_layer_outputs():
    from helpers.models import build, gradcam_layer

    base = build("smallcnn", seed=3).eval()
    x = torch.rand(2, 1, 48, 48)
    captured = []
    handle = gradcam_layer(base).register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        base(x)
    handle.remove()
    model = build_self_explaining("smallcnn", seed=3, probe_size=48).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(x), captured[0])
    assert "fc" not in dict(model.named_modules()) and "backbone.fc" not in dict(model.named_modules())


@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_pooling_is_its_stated_aggregation(pooling):
    model = build_self_explaining("smallcnn", pooling=pooling, r=3.0, seed=0).eval()
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, maps, weights = model.forward_with_maps(x)
    flat = maps.double().numpy().reshape(3, 2, -1)
    if pooling == "lse":
        expected = (logsumexp(3.0 * flat, axis=2) - np.log(flat.shape[2])) / 3.0
    elif pooling == "max":
        expected = flat.max(axis=2)
    elif pooling == "mean":
        expected = flat.mean(axis=2)
    else:
        a = weights.double().numpy().reshape(3, 1, -1)
        np.testing.assert_allclose(a.sum(axis=2), 1.0, rtol=1e-6)
        expected = (a * flat).sum(axis=2)
    np.testing.assert_allclose(logits.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (weights is None) == (pooling != "attention")


def test_evidence_map_is_the_bilinear_upsampling_of_the_target_class_map():
    model = build_self_explaining("smallcnn", seed=0).eval()
    x = torch.rand(2, 1, 32, 32)
    target = torch.tensor([1, 0])
    with torch.no_grad():
        maps = model.class_maps(x)
        evidence = model.evidence_map(x, target=target)
    expected = F.interpolate(maps, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(evidence[0], expected[0, 1])
    torch.testing.assert_close(evidence[1], expected[1, 0])
    with pytest.raises(TrainableConfigError, match="target classes"):
        model.evidence_map(x, target=2)
    with pytest.raises(TrainableConfigError, match="one per image"):
        model.evidence_map(x, target=[1, 1, 1])


def test_decision_map_is_the_log_odds_of_the_explained_class():
    model = build_self_explaining("smallcnn", seed=0).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        z1, z0 = model.evidence_map(x, target=1), model.evidence_map(x, target=0)
        torch.testing.assert_close(model.decision_map(x, target=1), z1 - z0)
        torch.testing.assert_close(model.decision_map(x, target=torch.tensor([0, 1])),
                                   torch.stack([(z0 - z1)[0], (z1 - z0)[1]]))


def test_trainable_saliency_explains_the_decision_and_uses_the_papers_postprocessing():
    from helpers.saliency import registry
    from helpers.trainable.method import trainable_saliency

    model = build_self_explaining("smallcnn", seed=0).eval()
    x = torch.rand(2, 1, 32, 32)
    raw = trainable_saliency(model, x, target=torch.tensor([1, 1]))
    with torch.no_grad():
        expected = torch.relu(model.evidence_map(x, target=1) - model.evidence_map(x, target=0))
    torch.testing.assert_close(raw, expected)
    assert registry.get("TRAINABLE").postprocess == "paper"


def test_build_is_seeded():
    a = build_self_explaining("smallcnn", seed=5).state_dict()
    b = build_self_explaining("smallcnn", seed=5).state_dict()
    c = build_self_explaining("smallcnn", seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.evidence.weight"], c["head.evidence.weight"])


def test_bad_input_raises():
    model = build_self_explaining("smallcnn", seed=0)
    with pytest.raises(TrainableConfigError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(TrainableConfigError, match="attention"):
        model.attention_weights(torch.rand(2, 1, 32, 32))


class _FunctionalBetween(nn.Module):
    """A model whose forward applies a function between two modules (cannot be cut)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.conv2(self.conv1(x) * 2.0)


def test_truncate_refuses_what_a_chain_of_modules_cannot_reproduce():
    with pytest.raises(TrainableConfigError, match="do not reproduce"):
        truncate_at(_FunctionalBetween(), "conv2", probe_size=16)
    with pytest.raises(TrainableConfigError, match="no module named"):
        truncate_at(_FunctionalBetween(), "conv9", probe_size=16)


def test_truncate_keeps_names_and_module_objects():
    seq = nn.Sequential(OrderedDict(a=nn.Conv2d(1, 2, 3), b=nn.ReLU(), c=nn.Conv2d(2, 2, 3), d=nn.Flatten()))
    cut = truncate_at(seq, "c", probe_size=16)
    assert [name for name, _ in cut.named_children()] == ["a", "b", "c"]
    assert cut.c is seq.c


def test_self_explaining_classifier_on_a_custom_backbone():
    backbone = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
    model = SelfExplainingClassifier(backbone, 8, pooling="mean")
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(model(x), model.class_maps(x).mean(dim=(2, 3)))
