"""Model specifications and the model/eval settings, checked without torch."""

from __future__ import annotations

import pytest

from helpers.config import ConfigError, resolve
from helpers.model_spec import ModelSpecError, normalization_name, parse_model_spec


def test_the_three_forms(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"x")
    (tmp_path / "m.ts").write_bytes(b"x")
    zoo = parse_model_spec(f"resnet18={tmp_path / 'w.pt'}")
    assert (zoo.kind, zoo.architecture, zoo.label) == ("zoo", "resnet18", "resnet18")
    assert parse_model_spec(str(tmp_path / "m.ts")).label == "torchscript:m"
    fn = parse_model_spec(f"torchvision.models:densenet121={tmp_path / 'w.pt'}")
    assert (fn.kind, fn.function) == ("callable", "torchvision.models:densenet121")
    assert parse_model_spec("pkg.mod:make").path is None


@pytest.mark.parametrize("text, fragment", [
    ("resnet18", "without weights"), ("resnet18=/no/such.pt", "does not exist"), ("nonet=/x", "neither a zoo"),
    ("/no/such.ts", "does not exist"), ("", "non-empty"),
])
def test_bad_specifications_name_the_fix(text, fragment):
    with pytest.raises(ModelSpecError, match=fragment):
        parse_model_spec(text)


def test_normalization_names_and_yaml_lists():
    assert normalization_name([0, 1]) == "[0,1]" and normalization_name([-1, 1]) == "[-1,1]"
    assert normalization_name("ImageNet") == "imagenet" and normalization_name("[0, 1]") == "[0,1]"
    with pytest.raises(ModelSpecError, match="model_normalization"):
        normalization_name("zscore")


def test_the_zoo_names_match_the_zoo():
    from helpers.model_spec import _ZOO
    from helpers.models import ARCHITECTURES

    assert _ZOO == ARCHITECTURES


def test_model_and_eval_settings_are_validated(tmp_path):
    (tmp_path / "m.ts").write_bytes(b"x")
    s = resolve("smoke", model=str(tmp_path / "m.ts"), model_normalization=[-1, 1], model_channels=3,
                eval_dataset="folder", eval_data_dir=str(tmp_path))
    assert s.model == (str(tmp_path / "m.ts"),) and s.model_normalization == "[-1,1]"
    for kwargs, fragment in [(dict(model_channels=2), "model_channels"), (dict(model="x.ts"), "parameter 'model'"),
                             (dict(eval_dataset="folder"), "eval_data_dir"), (dict(eval_dataset="imagenet"),
                                                                              "unknown eval_dataset"),
                             (dict(eval_data_dir=str(tmp_path)), "eval_dataset is not"),
                             (dict(model_class_index=-1), "model_class_index")]:
        with pytest.raises(ConfigError, match=fragment):
            resolve("smoke", **kwargs)
