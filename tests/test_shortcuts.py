"""helpers.shortcuts: confounded datasets composed from one rendering equal what the generator draws directly;
the self-explaining models and the U-Net of the chapter."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import ConfigError, resolve
from helpers.data.synthetic import generate
from helpers.shortcuts import LOCALIZER, TRAINABLE, ShortcutDesign, ShortcutExperiment
from helpers.study import Study


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    root = tmp_path_factory.mktemp("shortcuts")
    study = Study(resolve("smoke", cache_dir=str(root / "cache"), results_dir=str(root / "results"), device="cpu",
                          shortcut_n_train=24, shortcut_n_test=12, shortcut_n_images=3,
                          shortcut_correlations=[0, 0.5, 1], shortcut_label_noise=0.25))
    return ShortcutExperiment(study)


@pytest.mark.parametrize("correlation, noise", [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (0.0, 0.25)])
def test_composed_dataset_equals_the_generators_own(exp, correlation, noise):
    data, splits = exp.dataset(correlation, noise)
    presence = "independent" if correlation == 0 else "confounded"
    ref = generate(exp.n_total, size=exp.design.image_size, seed=exp.seed, confounder_strength=correlation,
                   label_noise=noise, marker_presence=presence, **exp.design.marker_options)
    assert np.array_equal(data.images, ref.images)
    assert np.array_equal(data.masks, ref.masks)
    n = exp.design.n_train
    assert np.array_equal(data.labels[:n], ref.labels[:n])  # recorded (noisy) labels for training
    assert np.array_equal(data.labels[n:], ref.true_labels[n:])  # true labels for the test AUC
    assert list(splits["test"]) == list(range(n, exp.n_total))
    assert len(splits["train"]) == exp.n_fit and len(splits["val"]) == n - exp.n_fit


def test_test_sets_and_explained_images(exp):
    with_m, without = exp.test_set("with_marker"), exp.test_set("without_marker")
    masks = exp.renders["marker_masks"][exp.test_index]
    diff = np.abs(with_m.images - without.images)
    assert (diff[masks] > 0.1).mean() > 0.9  # the marker is there ...
    assert diff[~masks].mean() < 0.01  # ... and nowhere else (up to its blurred rim)
    assert with_m.ids[0].endswith("+marker") and without.ids[0].endswith("-marker")
    assert np.array_equal(exp.explained.labels, np.ones(len(exp.explained), np.int64))
    assert exp.explained_marker_masks.any(axis=(1, 2)).all() and exp.explained.masks.any(axis=(1, 2)).all()
    assert exp.n_explained("XRAI") == 0 and not exp.computes("XRAI", None)  # smoke leaves the costly method out
    with pytest.raises(ValueError, match="unknown test set"):
        exp.test_set("mixed")


def test_renders_are_cached_on_disk(exp):
    first = exp.renders
    again = ShortcutExperiment(exp.study).renders
    assert exp._render_path().is_file()
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_design_names_and_checks():
    d = ShortcutDesign.from_settings(resolve("default"))
    assert d.honest == "c = 0" and d.shortcut == f"c = {d.correlations[-1]:g}"
    assert len(d.models) + d.replicates - 1 <= 5  # the chapter's budget: at most five classifiers on default
    with pytest.raises(ConfigError, match="start with 0"):
        resolve("smoke", shortcut_correlations=[0.5, 1.0])
    from helpers.saliency.registry import check_method_settings

    with pytest.raises(ConfigError, match="shortcut_costly_methods"):  # checked where the registry is loaded
        check_method_settings(resolve("smoke", shortcut_costly_methods=["NOPE"]))


# ---------------------------------------------------------------- TRAINABLE and the U-Net
def test_trainable_and_unet_designs():
    d = ShortcutDesign.from_settings(resolve("default"))
    assert [name for name, _ in d.trainable_models] == [f"c = {c:g}" for c in d.correlations]  # the classifiers' names
    assert d.localizer_models == [(d.shortcut, d.correlations[-1])]  # once, on the shortcut dataset
    off = ShortcutDesign.from_settings(resolve("smoke", shortcut_trainable_epochs=0, shortcut_localizer_epochs=0))
    assert off.trainable_models == [] and off.localizer_models == []
    with pytest.raises(ConfigError, match="shortcut_localizer_batch_size"):
        resolve("smoke", shortcut_localizer_batch_size=1)
    with pytest.raises(ConfigError, match="shortcut_trainable_epochs"):
        resolve("smoke", shortcut_trainable_epochs=-1)


def test_explainers_list_the_post_hoc_methods_then_trainable_and_the_unet(exp):
    assert exp.explainers == [*exp.methods, TRAINABLE, LOCALIZER]
    assert TRAINABLE not in exp.methods and LOCALIZER not in exp.methods  # never asked of a plain classifier
    assert exp.n_explained(TRAINABLE) == exp.n_explained(LOCALIZER) == len(exp.explained)


def test_scores_of_analytic_maps(exp):
    """A map equal to the marker mask puts all its mass on it; one equal to the opacity mask localizes it perfectly."""
    marker = exp.explained_marker_masks.astype(np.float32)
    opacity = exp.explained.masks.astype(np.float32)
    for maps, share, ap in ((marker, 1.0, None), (opacity, 0.0, 1.0)):
        s = exp.scores(maps, LOCALIZER).pivot(index="image_id", columns="metric", values="value")
        assert list(s.index) == sorted(exp.explained.ids)  # one row per explained image
        assert s["marker_mass_share"].to_numpy() == pytest.approx(share)
        if ap is not None:
            assert s["average_precision"].to_numpy() == pytest.approx(ap)
    assert exp.scores(marker, LOCALIZER).query("metric == 'marker_pointing'")["value"].eq(1.0).all()


def test_trainable_starts_from_the_same_datasets_classifier_and_is_cached(exp):
    first = exp.self_explaining("c = 1", 1.0)
    classifier = exp.model("c = 1", 1.0)
    assert first.trained.record["init_from"] == {"kind": "classifier", "key": classifier.trained.key,
                                                 "weights_sha256": classifier.trained.record["weights_sha256"]}
    assert first.trained.record["box_fraction"] == 0.0 and first.trained.record["n_boxes"] == 0  # labels only
    assert first.trained.record["finetune_epochs"] == exp.design.trainable_epochs
    maps = exp.maps(first, TRAINABLE)
    assert maps.shape == exp.explained.images.shape
    values = exp.scores(maps, TRAINABLE).set_index("metric")["value"]
    assert np.isfinite(values.loc[["marker_mass_share", "average_precision"]]).all()
    again = exp.self_explaining("c = 1", 1.0)
    assert again.cache_hit and again.trained.key == first.trained.key
    assert np.array_equal(exp.maps(again, TRAINABLE), maps)
    assert list(exp.self_explaining_models()) == [name for name, _ in exp.design.trainable_models]


def test_unet_is_trained_on_the_shortcut_datasets_masks_cached_and_read_again(exp, monkeypatch):
    import helpers.localizer

    (name, c), = exp.design.localizer_models
    first = exp.localizer(name, c)
    data, splits = exp.dataset(c)
    train = np.asarray(splits["train"])
    assert first.record["positive_indices"] == [int(i) for i in train[data.labels[train] == 1]]  # every positive mask
    assert first.record["epochs_run"] == exp.design.localizer_epochs
    maps = exp.localizer_maps(first)
    assert maps.shape == exp.explained.images.shape and 0.0 <= maps.min() and maps.max() <= 1.0
    assert np.isfinite(exp.scores(maps, LOCALIZER)["value"]).all()

    def no_training(*args, **kwargs):
        raise AssertionError("the U-Net was trained again instead of read from its cache entry")

    monkeypatch.setattr(helpers.localizer, "fit_localizer", no_training)
    again = ShortcutExperiment(exp.study).localizers()[name]
    assert again.cache_hit and again.record["key"] == first.record["key"]
    assert np.array_equal(exp.localizer_maps(again), maps)
