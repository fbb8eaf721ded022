"""Bring your own model (helpers.models.external): contract, class index, functional ReLUs, GradCAM layer, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import saliency
from helpers.models import ExternalModel, InputContract, ModelError, build, count_relu_calls, gradcam_layer, load_model
from helpers.models.external import IMAGENET_MEAN, IMAGENET_STD, find_gradcam_layer, functional_relu_sites
from helpers.saliency import SaliencyError


class FunctionalNet(nn.Module):
    """Two convolutions with functional ReLUs (one in place) and a 3-output head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x), inplace=True)
        return self.fc(x.mean(dim=(2, 3)))


class ModuleNet(FunctionalNet):
    """The same network with nn.ReLU modules: what guided backpropagation must see."""

    def __init__(self) -> None:
        super().__init__()
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def make_functional_net() -> nn.Module:
    """``package.module:function`` factory used by the tests."""
    torch.manual_seed(0)
    return FunctionalNet()


def _pair(class_index: int = 2):
    net = make_functional_net()
    twin = ModuleNet()
    twin.load_state_dict(net.state_dict(), strict=False)
    contract = InputContract(class_index=class_index)
    return (ExternalModel(net, contract=contract, architecture="f", identity="f"),
            ExternalModel(twin, contract=contract, architecture="m", identity="m"))


@pytest.fixture()
def images():
    return torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def test_functional_relus_are_routed_and_guided_backprop_equals_the_module_twin(images):
    wrapped, twin = _pair()
    assert wrapped.convert_relus(images) == 2
    calls = count_relu_calls(wrapped, images)
    assert calls.functional_calls == 0 and calls.module_calls == 2
    torch.testing.assert_close(wrapped(images), twin(images))
    gbp = saliency.attribute(wrapped, images, "GBP", target=1)
    np.testing.assert_allclose(gbp, saliency.attribute(twin, images, "GBP", target=1), rtol=1e-5, atol=1e-7)
    assert not np.allclose(gbp, saliency.attribute(wrapped, images, "GRAD", target=1))


def test_unconverted_functional_relus_make_guided_backprop_refuse_naming_the_module(images):
    wrapped, _ = _pair()
    assert functional_relu_sites(wrapped, images) == ["net", "net"]
    with pytest.raises(SaliencyError, match="functionally"):
        saliency.attribute(wrapped, images, "GBP", target=1)


def test_a_multi_output_model_is_explained_at_the_chosen_class(images):
    wrapped, _ = _pair(class_index=2)
    raw = wrapped.raw_outputs(images)
    out = wrapped(images)
    torch.testing.assert_close(out, torch.stack([-raw[:, 2] / 2, raw[:, 2] / 2], dim=1))
    torch.testing.assert_close(out.softmax(1)[:, 1], torch.sigmoid(raw[:, 2]))
    bad, _ = _pair(class_index=3)
    with pytest.raises(ModelError, match="model_class_index=3 .* 3 output"):
        bad(images)


def test_the_contract_repeats_channels_normalizes_and_resizes():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    wrapped = ExternalModel(net, contract=InputContract(channels=3, normalization="imagenet", input_size=24),
                            architecture="c", identity="c")
    x = torch.rand(2, 1, 16, 16)
    seen = wrapped.model_input(x)
    assert seen.shape == (2, 3, 24, 24)
    up = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    expected = (up - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(seen, expected)
    symmetric = ExternalModel(net, contract=InputContract(channels=3, normalization=[-1, 1]), architecture="c",
                              identity="c")
    torch.testing.assert_close(symmetric.model_input(x), (x * 2 - 1).repeat(1, 3, 1, 1))
    with pytest.raises(ModelError, match=r"\(N, 1, H, W\)"):
        wrapped(torch.rand(2, 3, 16, 16))


def test_a_callable_spec_loads_weights_and_a_wrong_channel_count_names_the_fix(tmp_path, images):
    torch.save(make_functional_net().state_dict(), tmp_path / "w.pt")
    spec = f"{__name__}:make_functional_net={tmp_path / 'w.pt'}"
    model = load_model(spec, contract=InputContract(class_index=0), image_size=16)
    assert count_relu_calls(model, images).functional_calls == 0
    assert model.gradcam_layer_name == "relus.1"  # the last spatial map: after conv2's ReLU
    assert gradcam_layer(model) is model.relus[1]
    with pytest.raises(ModelError, match="model_channels=3; pass --param model_channels=1"):
        load_model(spec, contract=InputContract(channels=3, class_index=0), image_size=16)


def test_a_book_state_dict_loads_as_the_zoo_model_itself(tmp_path):
    reference = build("smallcnn", seed=3).eval()
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    model = load_model(f"smallcnn={tmp_path / 'w.pt'}", image_size=32)
    assert type(model) is type(reference) and model.architecture == "smallcnn"
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(model(x), reference(x))
    with pytest.raises(ModelError, match="do not fit"):
        load_model(f"resnet18={tmp_path / 'w.pt'}", image_size=32)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"smallcnn={tmp_path / 'missing.pt'}", image_size=32)
    with pytest.raises(ModelError, match="model_normalization must be"):
        load_model(f"smallcnn={tmp_path / 'w.pt'}", contract=InputContract(normalization="imagenet"),
                   image_size=32)


def test_a_torchscript_model_explains_gradients_and_refuses_guided_and_gradcam_with_the_fix(tmp_path):
    net = build("smallcnn", seed=0).eval()
    torch.jit.trace(net, torch.rand(1, 1, 32, 32), check_trace=False).save(str(tmp_path / "m.ts"))
    model = load_model(str(tmp_path / "m.ts"), contract=InputContract(input_size=32), image_size=32)
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(model(x), net(x))
    assert saliency.explain(model, x, "GRAD").shape == (2, 32, 32)
    with pytest.raises(SaliencyError, match="TorchScript"):
        saliency.explain(model, x, "GBP")
    with pytest.raises(SaliencyError, match="model_gradcam_layer"):
        saliency.explain(model, x, "GCAM")
    with pytest.raises(ModelError, match="is not a TorchScript file"):
        torch.save(net.state_dict(), tmp_path / "w.pt")
        load_model(str(tmp_path / "w.pt"), image_size=32)


def test_find_gradcam_layer_skips_one_pixel_maps():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 2))
    assert find_gradcam_layer(net, torch.rand(1, 1, 8, 8)) == "1"
