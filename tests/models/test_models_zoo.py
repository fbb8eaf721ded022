"""helpers.models.zoo: building, input contract, seeding and local pretrained weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from helpers.models import ARCHITECTURES, MIN_IMAGE_SIZE, ModelError, build, load_pretrained
from helpers.models.zoo import InputScaling

# Small inputs keep the big networks cheap; InceptionV3 needs at least 75 px.
SIZE = {"smallcnn": 32, "resnet18": 64, "resnet50": 64, "densenet121": 64, "inception_v3": 80}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_maps_one_channel_images_to_two_logits(name):
    model = build(name, seed=0).eval()
    x = torch.rand(2, 1, SIZE[name], SIZE[name])
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 2)
    assert torch.isfinite(out).all()
    assert model.architecture == name
    first_name, first = next(iter(model.named_children()))
    assert first_name == "input_scaling" and isinstance(first, InputScaling)


def test_input_scaling_maps_unit_interval_to_minus_one_one():
    scaling = InputScaling(in_channels=1, min_size=1, architecture="x")
    x = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    assert torch.equal(scaling(x), torch.tensor([-1.0, -0.5, 1.0]).view(1, 1, 1, 3))


def test_seed_fixes_the_initial_weights_and_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    a, b, c = build("resnet18", seed=3), build("resnet18", seed=3), build("resnet18", seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert not torch.equal(a.layer4[1].conv2.weight, c.layer4[1].conv2.weight)


def test_in_channels_sets_the_first_convolution():
    model = build("smallcnn", in_channels=3, seed=0).eval()
    assert model.block1.conv.in_channels == 3
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    assert build("resnet18", seed=0).conv1.in_channels == 1
    assert build("densenet121", seed=0).features.conv0.in_channels == 1


def test_num_classes_sets_the_head():
    assert build("resnet18", num_classes=3, seed=0).fc.out_features == 3
    assert build("densenet121", num_classes=5, seed=0).classifier.out_features == 5


def test_inception_has_no_auxiliary_head_and_no_input_transform():
    model = build("inception_v3", seed=0)
    assert model.AuxLogits is None and not model.aux_logits and not model.transform_input
    model.train()
    out = model(torch.rand(2, 1, 80, 80))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2)  # a tensor, not InceptionOutputs, in train mode


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(ModelError, match="valid architectures: smallcnn, resnet18, resnet50, densenet121, inception_v3"):
        build("vgg16")
    assert issubclass(ModelError, ValueError)


@pytest.mark.parametrize("option", [{"num_classes": 0}, {"in_channels": -1}, {"num_classes": 2.0}])
def test_bad_options_raise(option):
    with pytest.raises(ModelError, match="positive integer"):
        build("smallcnn", **option)


def test_too_small_input_fails_at_build_when_the_size_is_known_else_at_forward():
    assert MIN_IMAGE_SIZE["inception_v3"] == 75
    with pytest.raises(ModelError, match="at least 75 px, got image_size=64"):
        build("inception_v3", image_size=64)
    build("inception_v3", image_size=75, seed=0)
    model = build("densenet121", seed=0).eval()
    with pytest.raises(ModelError, match="at least 29x29 px, got 16x16"):
        model(torch.rand(1, 1, 16, 16))


def test_wrong_input_shape_is_named():
    model = build("smallcnn", seed=0)
    with pytest.raises(ModelError, match=r"expects images of shape \(N, 1, S, S\).*\(2, 3, 32, 32\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ModelError, match=r"\(1, 32, 32\)"):
        model(torch.rand(1, 32, 32))


def test_pretrained_imagenet_resnet_sums_rgb_kernels_and_keeps_a_fresh_head(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)  # stands for downloaded ImageNet weights
    path = tmp_path / "resnet18-rgb.pt"
    torch.save(reference.state_dict(), path)
    fresh_head = build("resnet18", seed=1).fc.weight
    model = build("resnet18", pretrained=path, seed=1)
    assert torch.allclose(model.conv1.weight, reference.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert torch.equal(model.fc.weight, fresh_head)  # 1000-class head skipped
    report = model.pretrained_report
    assert report["adapted_first_conv"] is True
    assert report["skipped_head"] == ["fc.bias", "fc.weight"]
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["loaded"] == len(reference.state_dict()) - 2
    assert len(report["sha256"]) == 64


def test_pretrained_own_checkpoint_round_trips_with_its_head_and_reports_extra_keys(tmp_path):
    source = build("smallcnn", seed=0)
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "own.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    model = build("smallcnn", seed=1, pretrained=path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.pretrained_report["unexpected"] == ["extra.weight"]
    assert model.pretrained_report["adapted_first_conv"] is False


def test_pretrained_densenet_accepts_torchvision_legacy_key_names(tmp_path):
    source = build("densenet121", seed=0)
    legacy = {}
    for key, value in source.state_dict().items():
        for old, new in (("norm1.", "norm.1."), ("conv1.", "conv.1."), ("norm2.", "norm.2."), ("conv2.", "conv.2.")):
            if "denselayer" in key:
                key = key.replace("." + old, "." + new)
        legacy[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet-legacy.pt"
    torch.save(legacy, path)
    model = build("densenet121", seed=1, pretrained=path)
    assert torch.equal(model.features.denseblock4.denselayer16.conv2.weight, source.features.denseblock4.denselayer16.conv2.weight)


def test_pretrained_errors_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist.*never downloaded"):
        build("resnet18", pretrained=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read weights file .*garbage.pt"):
        build("resnet18", pretrained=garbage)
    other = tmp_path / "smallcnn.pt"
    torch.save(build("smallcnn", seed=0).state_dict(), other)
    with pytest.raises(ModelError, match="does not fit architecture 'resnet18'.*smallcnn.pt|smallcnn.pt.*does not fit architecture 'resnet18'"):
        build("resnet18", pretrained=other)
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ModelError, match="does not hold a state dict"):
        build("smallcnn", pretrained=tensor_file)


def test_load_pretrained_needs_a_zoo_model(tmp_path):
    with pytest.raises(ModelError, match="helpers.models.build"):
        load_pretrained(torch.nn.Linear(2, 2), tmp_path / "x.pt")
