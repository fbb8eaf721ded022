"""Randomization blocks of models outside the table: derived top-down from the module tree, registered by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import randomization
from helpers.models import ExternalModel, InputContract, load_model
from helpers.randomization import Block, RandomizationError, derive_blocks, register_blocks


def _tree() -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3)))
    return nn.Sequential(nn.ModuleDict({"body": body}), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def _covered_once(model: nn.Module, blocks) -> None:
    names = [n for n, _ in model.named_parameters()]
    owners = {n: [b.label for b in blocks for m in b.modules if n.startswith(m + ".")] for n in names}
    assert all(len(v) == 1 for v in owners.values()), owners


def test_derived_blocks_are_top_down_and_cover_every_parameter_once():
    model = _tree()
    blocks = derive_blocks(model, max_blocks=6)
    assert blocks[0].label == "3"  # the head first
    order = [b.label for b in blocks]
    assert order == sorted(order, key=lambda name: [n for n, _ in model.named_modules()].index(name), reverse=True)
    _covered_once(model, blocks)
    assert len(derive_blocks(model, max_blocks=2)) <= 2
    _covered_once(model, derive_blocks(model, max_blocks=2))


def test_root_parameters_are_refused():
    model = _tree()
    model.scale = nn.Parameter(torch.ones(1))
    with pytest.raises(RandomizationError, match="register_blocks"):
        derive_blocks(model)


def test_register_blocks_overrides_and_drives_the_cascade():
    net = _tree()
    wrapped = ExternalModel(net, contract=InputContract(), architecture="test-tree", identity="t")
    try:
        register_blocks("test-tree", {"Logits": "net.3", "body": ["net.0"]})
        labels = [label for label, _ in randomization.randomized_states(wrapped, seed=0)]
        assert labels == ["Original", "Logits", "body"]
        states = dict(randomization.randomized_states(wrapped, seed=0))
        assert not torch.equal(states["Logits"].net[3].weight, net[3].weight)
        assert torch.equal(states["Logits"].net[0]["body"][0].weight, net[0]["body"][0].weight)
        assert randomization.unrandomized_parameters(wrapped) == ()
        with pytest.raises(RandomizationError, match="twice"):
            register_blocks("test-tree", [Block("a", ("net.3",)), ("a", "net.0")])
    finally:
        randomization.RANDOMIZATION_BLOCKS.pop("test-tree", None)
        randomization.NEVER_RANDOMIZED.pop("test-tree", None)


def test_torchscript_layers_are_reinitialized(tmp_path):
    from helpers.models import build

    net = build("smallcnn", seed=0).eval()
    torch.jit.trace(net, torch.rand(1, 1, 32, 32), check_trace=False).save(str(tmp_path / "m.ts"))
    model = load_model(str(tmp_path / "m.ts"), image_size=32)
    blocks = randomization.blocks_for(model)
    _covered_once(model, blocks)
    final = randomization.fully_randomized(model, seed=0)
    before = dict(model.named_parameters())
    changed = [n for n, p in final.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(".weight" in n or ".bias" in n for n in changed)
