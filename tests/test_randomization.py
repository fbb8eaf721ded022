"""Cascading / independent weight randomization by named blocks."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

from helpers.models import ARCHITECTURES, build
from helpers.randomization import (
    BATCHNORM_RULES,
    INCEPTION_PAPER_NAMES,
    NEVER_RANDOMIZED,
    NORMAL_STD,
    RANDOMIZATION_BLOCKS,
    REINIT_RULES,
    RandomizationError,
    block_seed,
    blocks_for,
    replicate_seed,
    fully_randomized,
    randomized_states,
    state_labels,
    unrandomized_parameters,
)


def _tiny() -> nn.Module:
    """A smallcnn-shaped Sequential (block1..block4 then fc) with conv, BN and biases."""

    def block(c_in, c_out):
        return nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, c_out, 3, padding=1), bn=nn.BatchNorm2d(c_out), relu=nn.ReLU()))

    return nn.Sequential(
        OrderedDict(
            block1=block(1, 4),
            block2=block(4, 6),
            block3=block(6, 6),
            block4=block(6, 8),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(8, 2),
        )
    )


def _as_trained(model: nn.Module, seed: int = 123) -> nn.Module:
    """Make every parameter and BN buffer differ from any initializer's value (a stand-in for training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05 + 0.01)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return model


def _tiny_model(**kwargs) -> nn.Module:
    model = _as_trained(_tiny())
    model.architecture = "smallcnn"
    return model


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _owner(name: str, blocks) -> str | None:
    for block in blocks:
        for root in block.modules:
            if name == root or name.startswith(root + "."):
                return block.label
    return None


def _is_param(model: nn.Module, name: str) -> bool:
    return name in dict(model.named_parameters())


class TestCascading:
    def test_top_down_states_change_above_and_keep_below(self):
        model = _tiny_model()
        original = _tensors(model)
        blocks = blocks_for(model)
        states = list(randomized_states(model, mode="cascading", seed=0))
        assert [label for label, _ in states] == ["Original", "Logits", "block4", "block3", "block2", "block1"]
        for k, (label, state) in enumerate(states):
            randomized = {b.label for b in blocks[:k]}
            for name, tensor in state.state_dict().items():
                owner = _owner(name, blocks)
                if owner in randomized and _is_param(model, name):
                    # Every element of every parameter of a randomized block is new.
                    assert not torch.isclose(tensor, original[name]).any(), (label, name)
                else:
                    # Blocks below, and BN running statistics (batchnorm="reset_affine"), untouched.
                    assert torch.equal(tensor, original[name]), (label, name)

    def test_first_state_is_an_unchanged_copy(self):
        model = _tiny_model()
        label, state = next(randomized_states(model))
        assert label == "Original" and state is not model
        for (name, a), b in zip(state.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name

    def test_subset_gives_the_same_states(self):
        model = _tiny_model()
        full = dict(randomized_states(model, seed=5))
        subset = list(randomized_states(model, seed=5, blocks=["block2", "Logits"]))
        assert [label for label, _ in subset] == ["Original", "Logits", "block2"]  # top-down whatever the order
        for label, state in subset[1:]:
            for name, tensor in state.state_dict().items():
                assert torch.equal(tensor, full[label].state_dict()[name]), (label, name)

    def test_fully_randomized_is_the_cascade_end(self):
        model = _tiny_model()
        *_, (label, last) = randomized_states(model, seed=2, reinit="glorot_uniform", batchnorm="reset_all")
        assert label == "block1"
        end = fully_randomized(model, seed=2, reinit="glorot_uniform", batchnorm="reset_all")
        for name, tensor in end.state_dict().items():
            assert torch.equal(tensor, last.state_dict()[name]), name


class TestIndependent:
    def test_only_one_block_changes(self):
        model = _tiny_model()
        original = _tensors(model)
        blocks = blocks_for(model)
        states = list(randomized_states(model, mode="independent", seed=0))
        assert [label for label, _ in states] == ["Original", "Logits", "block4", "block3", "block2", "block1"]
        for label, state in states[1:]:
            for name, tensor in state.state_dict().items():
                if _owner(name, blocks) == label and _is_param(model, name):
                    assert not torch.isclose(tensor, original[name]).any(), (label, name)
                else:
                    assert torch.equal(tensor, original[name]), (label, name)

    def test_block_weights_do_not_depend_on_the_mode(self):
        model = _tiny_model()
        cascade = dict(randomized_states(model, seed=9))
        independent = dict(randomized_states(model, mode="independent", seed=9))
        for label in ("Logits", "block3", "block1"):
            prefix = "fc." if label == "Logits" else f"{label}."
            for name, tensor in independent[label].state_dict().items():
                if name.startswith(prefix):
                    assert torch.equal(tensor, cascade[label].state_dict()[name]), (label, name)


class TestSafety:
    def test_callers_model_unchanged_and_rng_untouched(self):
        model = _tiny_model()
        before = _tensors(model)
        rng_before = torch.get_rng_state()
        for mode in ("cascading", "independent"):
            for _label, state in randomized_states(model, mode=mode, batchnorm="reset_all", seed=1):
                assert state is not model
        fully_randomized(model, seed=1)
        assert torch.equal(torch.get_rng_state(), rng_before)
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, before[name]), name

    def test_seed_reproducible_and_seed_dependent(self):
        model = _tiny_model()
        first = fully_randomized(model, seed=3).state_dict()
        again = fully_randomized(model, seed=3).state_dict()
        other = fully_randomized(model, seed=4).state_dict()
        for name in first:
            assert torch.equal(first[name], again[name]), name
        assert not torch.equal(first["fc.weight"], other["fc.weight"])
        assert not torch.equal(first["block2.conv.weight"], other["block2.conv.weight"])
        assert block_seed(3, 0) == block_seed(3, 0) != block_seed(3, 1) != block_seed(4, 1)

    def test_mode_and_device_preserved(self):
        model = _tiny_model().eval()
        for _label, state in randomized_states(model, blocks=["block4"]):
            assert not state.training
            assert next(state.parameters()).device == torch.device("cpu")
            assert state.architecture == "smallcnn"

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_states_identical_on_gpu(self):
        model = _tiny_model()
        cpu = fully_randomized(model, seed=6)
        gpu = fully_randomized(model.cuda(), seed=6)
        assert next(gpu.parameters()).is_cuda
        for name, tensor in gpu.state_dict().items():
            assert torch.equal(tensor.cpu(), cpu.state_dict()[name]), name


class TestRules:
    def test_batchnorm_keep(self):
        model = _tiny_model()
        state = fully_randomized(model, batchnorm="keep")
        for name, tensor in state.state_dict().items():
            if ".bn." in name:
                assert torch.equal(tensor, model.state_dict()[name]), name
        assert not torch.isclose(state.block1.conv.weight, model.block1.conv.weight).any()

    def test_batchnorm_reset_affine(self):
        model = _tiny_model()
        bn = fully_randomized(model, batchnorm="reset_affine").block2.bn
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, model.block2.bn.running_mean)
        assert torch.equal(bn.running_var, model.block2.bn.running_var)
        assert int(bn.num_batches_tracked) == 7

    def test_batchnorm_reset_all(self):
        model = _tiny_model()
        bn = fully_randomized(model, batchnorm="reset_all").block2.bn
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
        assert int(bn.num_batches_tracked) == 0

    def test_reinit_distributions(self):
        model = _tiny_model()
        fan_in, fan_out = 8, 2
        normal = fully_randomized(model, reinit="normal").block4.conv
        assert normal.weight.std().item() == pytest.approx(NORMAL_STD, rel=0.3)
        assert torch.equal(normal.bias, torch.zeros_like(normal.bias))
        glorot = fully_randomized(model, reinit="glorot_uniform").fc
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert glorot.weight.abs().max().item() <= bound and torch.equal(glorot.bias, torch.zeros_like(glorot.bias))
        kaiming = fully_randomized(model, reinit="kaiming_normal").block4.conv
        expected_std = (2 / (8 * 3 * 3)) ** 0.5  # fan_out = out_channels * k * k, ReLU gain
        assert kaiming.weight.std().item() == pytest.approx(expected_std, rel=0.3)
        reset = fully_randomized(model, reinit="reset_parameters").fc
        bias_bound = 1 / fan_in**0.5  # nn.Linear.reset_parameters
        assert reset.bias.abs().max().item() <= bias_bound and reset.bias.abs().sum() > 0
        with pytest.raises(RandomizationError, match="unknown reinit rule 'default'"):
            fully_randomized(model, reinit="default")  # renamed: it was PyTorch's reset_parameters, not the models' own

    @staticmethod
    def _wide_smallcnn():
        """A smallcnn with a large last block (256 -> 512 channels): 1.2 M weights pin a std to ~0.1 %."""
        from helpers.models.zoo import SmallCNN

        model = SmallCNN(widths=(8, 16, 256, 512))
        model.architecture = "smallcnn"
        return _as_trained(model)

    def test_default_is_the_architecture_s_own_initializer(self):
        model = self._wide_smallcnn()
        conv = fully_randomized(model, seed=3).block4.conv.weight  # default reinit="architecture"
        fan_out = 512 * 3 * 3
        assert conv.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.01)  # Kaiming-normal, fan_out, ReLU gain
        assert conv.mean().item() == pytest.approx(0.0, abs=1e-4)
        fresh = build("smallcnn", seed=0)  # what the zoo draws at construction
        assert fresh.block4.conv.weight.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.05)
        reset = fully_randomized(model, seed=3, reinit="reset_parameters").block4.conv.weight
        fan_in = 256 * 3 * 3  # Kaiming-uniform, a = sqrt(5): std = 1 / sqrt(3 fan_in)
        assert reset.std().item() == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.01)
        glorot = fully_randomized(model, seed=3, reinit="glorot_uniform").block4.conv.weight
        assert glorot.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.01)
        stds = {conv.std().item(), reset.std().item(), glorot.std().item()}
        assert len(stds) == 3 and min(stds) < 0.8 * max(stds)  # the options really differ

    def test_architecture_rule_is_the_zoo_s_per_architecture(self):
        """InceptionV3: truncated normal σ = 0.1 on ±2; DenseNet: Kaiming-normal fan-in; the zoo's functions both ways."""
        from helpers.models import zoo

        torch.manual_seed(0)
        conv = nn.Conv2d(192, 320, 3)
        zoo.init_inception(conv)
        # torchvision truncates at ±2 in absolute value (±20 σ), so the std stays 0.1
        assert conv.weight.std().item() == pytest.approx(0.1, rel=0.01) and conv.weight.abs().max().item() <= 2
        zoo.init_densenet(conv)
        assert conv.weight.std().item() == pytest.approx((2 / (192 * 9)) ** 0.5, rel=0.01)
        assert zoo.INITIALIZERS["resnet18"] is zoo.init_kaiming_fan_out is zoo.INITIALIZERS["smallcnn"]
        assert zoo.INITIALIZERS["densenet121"] is zoo.init_densenet and zoo.INITIALIZERS["inception_v3"] is zoo.init_inception

    def test_architecture_rule_follows_the_model(self, monkeypatch):
        """The randomization calls the zoo's initializer of the model's architecture, not a copy of it."""
        from helpers.models import zoo

        calls = []
        monkeypatch.setitem(zoo.INITIALIZERS, "smallcnn", lambda module: calls.append(type(module).__name__))
        fully_randomized(_tiny_model(), seed=0)
        assert sorted(set(calls)) == ["Conv2d", "Linear"] and len(calls) == 5

    def test_unknown_options(self):
        model = _tiny_model()
        with pytest.raises(RandomizationError, match="mode"):
            randomized_states(model, mode="bottom_up")
        with pytest.raises(RandomizationError, match="reinit"):
            randomized_states(model, reinit="zeros")
        with pytest.raises(RandomizationError, match="batchnorm"):
            randomized_states(model, batchnorm="freeze")
        with pytest.raises(RandomizationError, match="seed"):
            randomized_states(model, seed=-1)
        with pytest.raises(RandomizationError, match="unknown block"):
            randomized_states(model, blocks=["layer4.1"])
        with pytest.raises(RandomizationError, match="twice"):
            randomized_states(model, blocks=["block1", "block1"])
        assert set(BATCHNORM_RULES) == {"keep", "reset_affine", "reset_all"}
        assert REINIT_RULES[0] == "architecture" and {"reset_parameters", "glorot_uniform"} <= set(REINIT_RULES)
        assert issubclass(RandomizationError, ValueError)

    def test_unknown_architecture_or_missing_modules(self):
        bare = _as_trained(_tiny())  # no .architecture
        with pytest.raises(RandomizationError, match="architecture="):
            blocks_for(bare)
        assert len(blocks_for(bare, architecture="smallcnn")) == 5
        with pytest.raises(RandomizationError, match="no randomization blocks"):
            blocks_for(bare, architecture="vgg16")
        with pytest.raises(RandomizationError, match="has no module 'layer4.1'"):
            blocks_for(bare, architecture="resnet18")

    def test_module_without_reset_parameters_is_an_error(self):
        class Scale(nn.Module):
            def __init__(self):
                super().__init__()
                self.gain = nn.Parameter(torch.ones(1))

        model = _tiny_model()
        model.block4.add_module("scale", Scale())
        with pytest.raises(RandomizationError, match="no reset_parameters"):
            fully_randomized(model)


class TestArchitectures:
    def test_torchvision_resnet18_by_name(self):
        model = torchvision.models.resnet18(num_classes=2)
        blocks = blocks_for(model, architecture="resnet18")
        assert [b.label for b in blocks] == [
            "Logits", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0", "layer1.1", "layer1.0", "stem",
        ]
        assert unrandomized_parameters(model, architecture="resnet18") == ()
        _as_trained(model)
        label, state = list(randomized_states(model, blocks=["layer4.1"], architecture="resnet18"))[1]
        assert label == "layer4.1"
        # re-drawn weights: (almost) no entry keeps its trained value; a few may coincide by chance
        assert torch.isclose(state.layer4[1].conv2.weight, model.layer4[1].conv2.weight).float().mean() < 0.01
        assert torch.isclose(state.fc.weight, model.fc.weight).float().mean() < 0.01  # Logits is above layer4.1
        assert torch.equal(state.layer4[0].conv1.weight, model.layer4[0].conv1.weight)

    @pytest.mark.parametrize("arch", ARCHITECTURES)
    def test_blocks_exist_and_cover_the_model(self, arch):
        model = build(arch, seed=0)
        blocks = blocks_for(model)
        assert blocks == RANDOMIZATION_BLOCKS[arch]
        # No parameter belongs to two blocks.
        owners: dict[str, str] = {}
        for block in blocks:
            for root in block.modules:
                for name, _ in model.get_submodule(root).named_parameters(prefix=root):
                    assert name not in owners, (name, owners.get(name), block.label)
                    owners[name] = block.label
        # Every block re-initializes something.
        assert all(label in owners.values() for label in (b.label for b in blocks))
        # The parameters no block touches are exactly those of the stated never-randomized modules.
        never = NEVER_RANDOMIZED[arch]
        left = unrandomized_parameters(model)
        expected = tuple(
            name for name, _ in model.named_parameters() if any(name.startswith(prefix + ".") for prefix in never)
        )
        assert left == expected
        assert set(owners) | set(left) == {name for name, _ in model.named_parameters()}
        if arch == "inception_v3":
            assert {name.split(".")[0] for name in left} == set(never)
            assert "Mixed_5b" in never and "Mixed_5c" in owners.values()
        else:
            assert left == ()

    def test_state_counts(self):
        assert len(state_labels("inception_v3")) == 12  # Original, Logits, mixed10..mixed1 as Arun et al.
        assert [INCEPTION_PAPER_NAMES[label] for label in state_labels("inception_v3")[2:]] == [
            f"mixed{k}" for k in range(10, 0, -1)
        ]
        assert len(state_labels("resnet18")) == 11
        assert len(state_labels("resnet50")) == 19
        assert len(state_labels("densenet121")) == 10
        assert state_labels("smallcnn") == ("Original", "Logits", "block4", "block3", "block2", "block1")
        assert state_labels("resnet18", blocks=["stem", "Logits"]) == ("Original", "Logits", "stem")

    def test_smallcnn_from_the_zoo_end_to_end(self):
        torch.manual_seed(0)
        model = _as_trained(build("smallcnn", seed=0)).eval()
        images = torch.rand(2, 1, 32, 32)
        outputs = [state(images) for _label, state in randomized_states(model, seed=0)]
        assert all(out.shape == (2, 2) for out in outputs)
        assert torch.equal(outputs[0], model(images))
        assert not torch.allclose(outputs[-1], outputs[0])

    def test_fully_randomized_resnet18_from_the_zoo(self):
        model = _as_trained(build("resnet18", seed=0)).eval()
        untrained = fully_randomized(model, seed=0)
        images = torch.rand(1, 1, 32, 32)
        assert untrained(images).shape == (1, 2)
        assert not torch.isclose(untrained.conv1.weight, model.conv1.weight).any()


@pytest.mark.parametrize("base", ["smallcnn", "resnet18"])
def test_self_explaining_models_randomize_their_head_first_then_the_backbone(base):
    from helpers.trainable import build_self_explaining

    model = build_self_explaining(base, seed=0).eval()
    blocks = blocks_for(model)
    assert blocks[0].label == "Head" and "Logits" not in [b.label for b in blocks]
    assert unrandomized_parameters(model) == ()
    states = dict(randomized_states(model, blocks=["Head"]))
    head_after = dict(states["Head"].head.named_parameters())
    for name, p in model.head.named_parameters():
        if p.numel() > 4:
            assert not torch.equal(head_after[name], p), name
    for (name, p), (_, q) in zip(model.backbone.named_parameters(), states["Head"].backbone.named_parameters()):
        assert torch.equal(p, q), name  # below the head: untouched


class TestReplicateSeeds:
    def test_replicates_get_different_new_weights(self):
        model = _tiny_model()
        seeds = {replicate_seed(0, r) for r in range(5)} | {replicate_seed(1, r) for r in range(5)}
        assert len(seeds) == 10 and all(0 <= s < 2**63 for s in seeds)
        a = fully_randomized(model, seed=replicate_seed(0, 0)).block4.conv.weight
        b = fully_randomized(model, seed=replicate_seed(0, 1)).block4.conv.weight
        assert not torch.equal(a, b)
        assert torch.equal(a, fully_randomized(model, seed=replicate_seed(0, 0)).block4.conv.weight)  # deterministic

    def test_bad_replicate(self):
        with pytest.raises(RandomizationError, match="replicate"):
            replicate_seed(0, -1)


def test_self_explaining_backbone_gets_the_base_initializer_and_the_head_its_own(monkeypatch):
    """reinit='architecture' on a self-explaining model: backbone modules -> the base's rule, the head -> reset_parameters."""
    from helpers.models import zoo
    from helpers.trainable import build_self_explaining

    model = build_self_explaining("smallcnn", seed=0).eval()
    calls = []
    monkeypatch.setitem(zoo.INITIALIZERS, "smallcnn", lambda module: calls.append(module))
    reset = []
    real_reset = nn.Conv2d.reset_parameters
    monkeypatch.setattr(nn.Conv2d, "reset_parameters", lambda self: (reset.append(self), real_reset(self))[-1])
    state = fully_randomized(model, seed=0)
    backbone_convs = [m for m in state.backbone.modules() if isinstance(m, nn.Conv2d)]
    head_convs = [m for m in state.head.modules() if isinstance(m, nn.Conv2d)]
    assert len(calls) == len(backbone_convs) > 0 and all(isinstance(m, nn.Conv2d) for m in calls)
    assert len(reset) == len(head_convs) > 0
