"""Presets and parameters: a preset fills, an explicit value overrides, bad names fail loudly."""

import pytest

from helpers.config import NOTEBOOK_PARAMETERS, PRESETS, ConfigError, Settings, resolve
from helpers.device import resolve_device


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
    assert set(NOTEBOOK_PARAMETERS) - {"overrides"} <= fields and "overrides" not in fields  # it carries the others


def test_auto_device_is_cpu_without_gpu():
    import torch

    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu") and resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("value, fragment", [
    (5, "device must be a string, got 5 (int); valid: auto, cpu, cuda, cuda:N, mps"),
    (None, "device must be a string, got None"),
    ("tpu", "unknown device 'tpu' (parameter 'device'); valid: auto, cpu, cuda, cuda:N, mps"),
    ("cuda:x", "unknown device 'cuda:x' (parameter 'device')"),
])
def test_resolve_device_names_the_device_parameter_for_bad_values(value, fragment):
    with pytest.raises(ConfigError) as error:
        resolve_device(value)
    assert fragment in str(error.value)


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


# --------------------------------------------------------------------------- bad input names the parameter


@pytest.mark.parametrize("kwargs, parameter, fragment", [
    (dict(device=5), "device", "device must be a string, got 5"),
    (dict(seed="abc"), "seed", "seed must be an integer >= 0, got 'abc'"),
    (dict(seed=1.5), "seed", "seed must be an integer >= 0, got 1.5"),
    (dict(seed=-1), "seed", "seed must be an integer >= 0, got -1"),
    (dict(n_images=2.5), "n_images", "n_images must be an integer >= 1, got 2.5"),
    (dict(n_images=True), "n_images", "n_images must be an integer >= 1, got True (bool)"),
    (dict(image_size=False), "image_size", "got False (bool)"),
    (dict(n_replicates=True), "n_replicates", "got True (bool)"),
    (dict(epochs=2.0), "epochs", "got 2.0 (float)"),
    (dict(learning_rate=-1e-3), "learning_rate", "learning_rate must be positive, got -0.001"),
    (dict(learning_rate=0), "learning_rate", "learning_rate must be positive, got 0"),
    (dict(learning_rate=float("nan")), "learning_rate", "learning_rate must be a finite number, got nan"),
    (dict(learning_rate="fast"), "learning_rate", "learning_rate must be a finite number, got 'fast'"),
    (dict(learning_rate=True), "learning_rate", "got True"),
    (dict(patience=-1), "patience", "patience must be an integer >= 0, got -1"),
    (dict(architectures=["smallcnn", "smallcnn"]), "architectures", "architectures must be distinct"),
    (dict(methods=["GRAD", "IG", "GRAD"]), "methods", "methods must be distinct"),
    (dict(method_settings={"SG": 5}), "method_settings", "method_settings must map method names to dicts"),
])
def test_bad_values_name_the_parameter(kwargs, parameter, fragment):
    with pytest.raises(ConfigError) as info:
        resolve("smoke", **kwargs)
    assert parameter in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize("name", ["cache_dir", "results_dir"])
def test_a_folder_parameter_that_is_an_existing_file_is_refused(tmp_path, name):
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(ConfigError, match=rf"{name} '.*a-file' is an existing file, not a folder"):
        resolve("smoke", **{name: str(path)})
    assert getattr(resolve("smoke", **{name: str(tmp_path / "new")}), name) == str(tmp_path / "new")


def test_numpy_integers_are_integers():
    import numpy as np

    assert resolve("smoke", seed=np.int64(3), n_images=np.int32(4)).seed == 3


def test_reproducibility_needs_two_distinct_architectures():
    from helpers.config import require_two_architectures

    assert require_two_architectures(resolve("smoke")) == ("smallcnn", "resnet18")
    with pytest.raises(ConfigError, match=r"04_reproducibility compares two different architectures, but "
                                          r"architectures=\['smallcnn'\] names 1; pass two"):
        require_two_architectures(resolve("smoke", architectures=["smallcnn"]))


def test_default_folders_in_colab_and_under_the_home_variable(monkeypatch, tmp_path):
    import sys

    from helpers.config import COLAB_HOME, HOME_ENV, default_dirs

    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert default_dirs() == {"cache_dir": ".cache", "results_dir": "results"}
    monkeypatch.setitem(sys.modules, "google.colab", object())
    s = resolve("smoke")
    assert (s.cache_dir, s.results_dir) == (f"{COLAB_HOME}/cache", f"{COLAB_HOME}/results")
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "drive"))  # e.g. a mounted Google Drive folder
    s = resolve("smoke", results_dir=str(tmp_path / "mine"))
    assert (s.cache_dir, s.results_dir) == (str(tmp_path / "drive" / "cache"), str(tmp_path / "mine"))


def test_overrides_reach_every_settings_field_and_a_name_given_twice_is_refused():
    from helpers.config import SETTINGS_FIELDS, merge_overrides
    from helpers.study import Study

    assert {"epochs", "batch_size", "pretrained", "method_settings", "n_bootstrap"} <= set(SETTINGS_FIELDS)
    study = Study.from_parameters("smoke", image_size=32, overrides={"epochs": 2, "n_bootstrap": 500,
                                                                     "method_settings": {"SG": {"n_samples": 3}}})
    assert (study.settings.epochs, study.settings.n_bootstrap, study.settings.image_size) == (2, 500, 32)
    assert study.settings.method_settings["SG"]["n_samples"] == 3
    assert merge_overrides({"seed": None}, {"seed": 3}) == {"seed": 3}  # None leaves it to the preset
    with pytest.raises(ConfigError, match="given both as a notebook parameter"):
        merge_overrides({"seed": 1}, {"seed": 3})
    with pytest.raises(ConfigError, match="mapping of setting names"):
        merge_overrides({}, ["epochs", 3])
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'"):
        Study.from_parameters("smoke", overrides={"epoch": 2})


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(methods=["GRADCAM"]), "parameter 'methods': unknown saliency method 'GRADCAM'.*Did you mean 'GRAD'"),
        (dict(method_settings={"SMOOTHGRAD": {"n_samples": 2}}), "parameter 'method_settings' names unknown method"),
        (dict(shortcut_costly_methods=["XRA"]), "parameter 'shortcut_costly_methods' names unknown method"),
    ],
)
def test_unknown_method_names_are_refused_where_the_registry_is_loaded(tmp_path, kwargs, fragment):
    settings = resolve("smoke", cache_dir=str(tmp_path / "c"), results_dir=str(tmp_path / "r"), **kwargs)  # no torch
    from helpers.study import Study

    with pytest.raises(ConfigError, match=fragment):
        Study(settings)
    with pytest.raises(ConfigError, match="non-empty strings"):
        resolve("smoke", methods=["GRAD", ""])
