"""helpers.models.relu: every ReLU is a non-inplace module; the checker catches functional ones; gradcam_layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import GuidedBackprop, Saliency
from torch import nn

from helpers.models import ARCHITECTURES, ModelError, assert_relu_modules, build, count_relu_calls, gradcam_layer

SIZE = {"smallcnn": 32, "resnet18": 64, "resnet50": 64, "densenet121": 64, "inception_v3": 80}


@pytest.fixture(scope="module")
def models():
    """One eval-mode model per architecture (built once for the module)."""
    return {name: build(name, seed=0).eval() for name in ARCHITECTURES}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_no_functional_relu_in_any_forward(models, name):
    model = models[name]
    calls = assert_relu_modules(model, torch.rand(2, 1, SIZE[name], SIZE[name]))
    assert calls.functional_calls == 0
    assert calls.module_calls > 0
    assert calls.inplace_modules == ()


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "densenet121", "inception_v3"])
def test_each_relu_module_is_applied_exactly_once(models, name):
    """One module per application: torchvision's ResNet reuses one ``relu`` per block."""
    model = models[name]
    counts: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: counts.__setitem__(n, counts.get(n, 0) + 1))
        for n, m in model.named_modules()
        if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        model(torch.rand(1, 1, SIZE[name], SIZE[name]))
    for h in handles:
        h.remove()
    assert counts and set(counts.values()) == {1}
    assert len(counts) == sum(isinstance(m, nn.ReLU) for m in model.modules())


class _Functional(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.how = how

    def forward(self, x):
        x = self.conv(x)
        x = {"F.relu": F.relu, "torch.relu": torch.relu, "Tensor.relu": lambda t: t.relu(), "F.relu_inplace": lambda t: F.relu(t, inplace=True)}[self.how](x)
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize("how", ["F.relu", "torch.relu", "Tensor.relu", "F.relu_inplace"])
def test_checker_catches_every_functional_relu(how):
    model = _Functional(how)
    calls = count_relu_calls(model, torch.rand(1, 1, 8, 8))
    assert calls.functional_calls == 1 and calls.module_calls == 0
    with pytest.raises(ModelError, match="functional ReLU"):
        assert_relu_modules(model, torch.rand(1, 1, 8, 8))


def test_checker_catches_inplace_modules_and_stock_torchvision():
    inplace = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten())
    with pytest.raises(ModelError, match=r"in-place nn.ReLU modules \['1'\]"):
        assert_relu_modules(inplace, torch.rand(1, 1, 8, 8))
    stock = torchvision.models.densenet121(weights=None).eval()  # F.relu after `features`
    calls = count_relu_calls(stock, torch.rand(1, 3, 64, 64))
    assert calls.functional_calls == 1 and len(calls.inplace_modules) > 0
    with pytest.raises(ModelError, match="no nn.ReLU module"):
        assert_relu_modules(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()), torch.rand(1, 1, 8, 8))


class _Head(nn.Module):
    """conv -> ReLU (module or functional) -> pool -> linear with a negative weight (negative gradients reach the ReLU)."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():  # both channels active on positive images; the second one's gradient is negative
            self.conv.weight.copy_(torch.stack([torch.full((1, 3, 3), 0.1), torch.full((1, 3, 3), 0.2)]))
            self.conv.bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0]]))
        self.functional = functional

    def forward(self, x):
        x = self.conv(x)
        x = F.relu(x) if self.functional else self.relu(x)
        return self.fc(x.mean(dim=(2, 3)))


def test_guided_backprop_is_guided_only_through_relu_modules():
    """Why it matters: Captum's GuidedBackprop equals the plain gradient where ReLUs are functional."""
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    functional, modular = _Head(functional=True), _Head(functional=False)
    plain = Saliency(functional).attribute(x, target=0, abs=False)
    assert torch.allclose(Saliency(modular).attribute(x, target=0, abs=False), plain)
    assert torch.allclose(GuidedBackprop(functional).attribute(x, target=0), plain)
    guided = GuidedBackprop(modular).attribute(x, target=0)
    assert (plain < 0).all() and (guided > 0).all()  # 0.1 - 0.2 per tap; guidance drops the negative channel


@pytest.mark.parametrize(
    "name, layer",
    [("smallcnn", "block4"), ("resnet18", "layer4"), ("resnet50", "layer4"), ("densenet121", "features"), ("inception_v3", "Mixed_7c")],
)
def test_gradcam_layer_is_the_rectified_map_that_the_head_pools(models, name, layer):
    model = models[name]
    module = gradcam_layer(model)
    assert module is model.get_submodule(layer)
    seen = []
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        logits = model(torch.rand(2, 1, SIZE[name], SIZE[name]))
    handle.remove()
    (feature_map,) = seen
    assert feature_map.ndim == 4 and (feature_map >= 0).all()
    head = model.classifier if name == "densenet121" else model.fc
    assert torch.allclose(head(feature_map.mean(dim=(2, 3))), logits, atol=1e-5)


def test_densenet_final_relu_is_a_module_inside_features(models):
    features = models["densenet121"].features
    assert list(features.named_children())[-1][0] == "relu5"
    assert isinstance(features.relu5, nn.ReLU)


def test_gradcam_layer_needs_a_zoo_model():
    with pytest.raises(ModelError, match="helpers.models.build"):
        gradcam_layer(torchvision.models.resnet18(weights=None))
