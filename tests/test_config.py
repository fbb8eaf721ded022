"""Presets and parameters: a preset fills, an explicit value overrides, bad names fail loudly."""

import pytest

from helpers.config import NOTEBOOK_PARAMETERS, PRESETS, ConfigError, Settings, resolve, resolve_device


def test_every_preset_resolves():
    for name in PRESETS:
        s = resolve(name)
        assert isinstance(s, Settings) and s.preset == name


def test_explicit_parameter_overrides_preset():
    s = resolve("smoke", image_size=96, methods="GRAD, IG")
    assert s.image_size == 96
    assert s.methods == ("GRAD", "IG")
    # None keeps the preset's value (a notebook's parameters cell may leave it unset)
    assert resolve("smoke", image_size=None).image_size == PRESETS["smoke"]["image_size"]


def test_paper_preset_is_the_papers_setting():
    s = resolve("paper")
    assert s.image_size == 320 and s.n_replicates == 3 and s.n_images == 100
    assert s.architectures == ("inception_v3", "densenet121")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(preset="smok"), "valid presets: smoke, default, paper"),
        (dict(imagesize=64), "unknown parameter 'imagesize'"),
        (dict(dataset="nih"), "valid datasets: synthetic, rsna, siim, folder"),
        (dict(architectures=["resnet181"]), "unknown architecture 'resnet181'"),
        (dict(methods=["GRADCAM"]), "unknown saliency method 'GRADCAM'"),
        (dict(image_size=8), "image_size must be between"),
        (dict(n_images=0), "n_images must be a positive integer"),
        (dict(device="tpu"), "unknown device 'tpu'"),
    ],
)
def test_bad_values_name_the_value_and_list_valid_ones(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve(**kwargs)


def test_unknown_parameter_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="Did you mean 'image_size'"):
        resolve("default", image_sise=64)


def test_real_dataset_needs_an_existing_folder(tmp_path):
    with pytest.raises(ConfigError, match="needs data_dir"):
        resolve("default", dataset="rsna")
    with pytest.raises(ConfigError, match="is not a folder"):
        resolve("default", dataset="siim", data_dir=str(tmp_path / "missing"))
    assert resolve("default", dataset="siim", data_dir=str(tmp_path)).data_dir == str(tmp_path)


def test_notebook_parameters_are_settings_fields():
    fields = set(Settings.__dataclass_fields__)
    assert set(NOTEBOOK_PARAMETERS) <= fields


def test_auto_device_is_cpu_without_gpu():
    import torch

    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_randomization_settings_have_the_papers_defaults_and_are_checked():
    s = resolve("smoke")
    assert s.randomization_init == "architecture" and s.randomization_batchnorm == "reset_affine"
    assert s.label_randomization_target_accuracy == 0.9 and s.label_randomization_max_epochs >= 1
    assert 0 < s.label_randomization_train_fraction <= 1
    assert resolve("smoke", randomization_init="glorot_uniform", randomization_batchnorm="reset_all").randomization_init == "glorot_uniform"
    for kwargs, fragment in (
        (dict(randomization_init="default"), "unknown randomization_init 'default'"),
        (dict(randomization_batchnorm="freeze"), "unknown randomization_batchnorm 'freeze'"),
        (dict(label_randomization_target_accuracy=90), "label_randomization_target_accuracy must be a number in (0, 1]"),
        (dict(label_randomization_train_fraction=0.0), "label_randomization_train_fraction must be a number in (0, 1]"),
        (dict(label_randomization_max_epochs=0), "label_randomization_max_epochs must be a positive integer"),
    ):
        with pytest.raises(ConfigError) as error:
            resolve("smoke", **kwargs)
        assert fragment in str(error.value)
