"""helpers.study: the randomization options and seeds that name randomized states in the map cache."""

from __future__ import annotations

import pytest

from helpers.config import resolve
from helpers.models import build
from helpers.study import Study, TrainedModel


def _study(tmp_path, **overrides) -> Study:
    return Study(resolve("smoke", cache_dir=str(tmp_path / "cache"), results_dir=str(tmp_path / "results"), device="cpu",
                         **overrides))


def _trained(replicate: int) -> TrainedModel:
    model = build("smallcnn", seed=replicate).eval()
    return TrainedModel(model=model, record={"architecture": "smallcnn", "replicate": replicate}, key=f"k{replicate}")


def test_state_keys_name_the_initializer_the_batchnorm_rule_and_the_replicate_seed(tmp_path):
    default = _study(tmp_path)
    assert default.randomization_options == {"reinit": "architecture", "batchnorm": "reset_affine"}
    keys = {
        default._randomization_key("cascading", "Logits", _trained(0)),
        default._randomization_key("cascading", "Logits", _trained(1)),
        _study(tmp_path, randomization_init="glorot_uniform")._randomization_key("cascading", "Logits", _trained(0)),
        _study(tmp_path, randomization_batchnorm="reset_all")._randomization_key("cascading", "Logits", _trained(0)),
    }
    assert len(keys) == 4
    assert "reinit=architecture" in default._randomization_key("cascading", "Logits", _trained(0))


def test_replicates_are_randomized_with_different_weights(tmp_path):
    study = _study(tmp_path)
    assert study.randomization_seed(_trained(0)) != study.randomization_seed(_trained(1))
    same = build("smallcnn", seed=0).eval()
    a = study.fully_randomized(TrainedModel(model=same, record={"architecture": "smallcnn", "replicate": 0}, key="a"))
    b = study.fully_randomized(TrainedModel(model=same, record={"architecture": "smallcnn", "replicate": 1}, key="a"))
    assert not (a.model.fc.weight == b.model.fc.weight).all() and a.key != b.key


def test_batchnorm_setting_reaches_the_states(tmp_path):
    trained = _trained(0)
    trained.model.block4.bn.running_var.fill_(3.0)  # a stand-in for trained statistics
    with_stats = next(s for s in _study(tmp_path).randomized_states(trained) if s.label == "block4")
    reset = next(s for s in _study(tmp_path, randomization_batchnorm="reset_all").randomized_states(trained)
                 if s.label == "block4")
    assert float(with_stats.model.block4.bn.running_var.mean()) == pytest.approx(3.0)
    assert float(reset.model.block4.bn.running_var.mean()) == pytest.approx(1.0)


def test_fully_randomized_state_is_the_cascade_end_under_the_same_map_key(tmp_path):
    import torch

    study, trained = _study(tmp_path), _trained(0)
    full = study.fully_randomized(trained)
    *_, last = study.randomized_states(trained, mode="cascading")
    assert full.key == last.key  # one map cache entry for chapters 01 (untrained) and 02 (cascade end)
    a, b = full.model.state_dict(), last.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
