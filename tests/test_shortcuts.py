"""helpers.shortcuts: confounded datasets composed from one rendering equal what the generator draws directly."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import ConfigError, resolve
from helpers.data.synthetic import generate
from helpers.shortcuts import ShortcutDesign, ShortcutExperiment
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
    with pytest.raises(ConfigError, match="shortcut_costly_methods"):
        resolve("smoke", shortcut_costly_methods=["NOPE"])
