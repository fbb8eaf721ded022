"""helpers.models.cache: train once then load, keys, corrupt entries, permuted labels."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings

import numpy as np
import pytest
import torch

import helpers.models.cache as cache
from helpers.models import (
    CacheCorruptError,
    CacheWarning,
    ModelError,
    cache_key,
    get_trained,
    label_randomization_ready,
    training_seed,
)


def _states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def counted_fit(monkeypatch):
    """Wraps the real fit and records the training labels of every call."""
    calls = []
    real = cache.fit

    def wrapper(model, train, val, **kwargs):
        calls.append({"train_labels": np.array(train.labels), "val_labels": np.array(val.labels), **kwargs})
        return real(model, train, val, **kwargs)

    monkeypatch.setattr(cache, "fit", wrapper)
    return calls


def test_second_call_loads_instead_of_training(toy, toy_splits, tiny_settings, counted_fit):
    data = toy(64, 32, 0)
    model, record = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    assert len(counted_fit) == 1 and record["cache_hit"] is False
    again, record2 = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    assert len(counted_fit) == 1 and record2["cache_hit"] is True
    assert _states_equal(model, again) and not again.training
    assert {k: v for k, v in record.items() if k != "cache_hit"} == {k: v for k, v in record2.items() if k != "cache_hit"}
    weights = cache.weights_path(tiny_settings.cache_dir, architecture="smallcnn", replicate=0, label_mode="true", key=record["key"])
    assert weights.is_file() and weights.name == f"smallcnn-r0-true-{record['key']}.pt"
    saved = json.loads(weights.with_suffix(".json").read_text())
    assert saved["key"] == record["key"] and "cache_hit" not in saved


def test_record_holds_what_the_book_reports(toy, toy_splits, tiny_settings):
    data = toy(64, 32, 0)
    _, record = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", replicate=1, progress=False)
    assert record["architecture"] == "smallcnn" and record["replicate"] == 1 and record["label_mode"] == "true"
    assert record["seed"] == training_seed(tiny_settings.seed, 1) != training_seed(tiny_settings.seed, 0)
    assert len(record["history"]) == record["epochs_run"] == 1 and record["best_epoch"] == 1
    assert record["val_auc"] == record["history"][0]["val_auc"]
    assert record["test_auc_low"] <= record["test_auc"] <= record["test_auc_high"] and record["n_bootstrap"] == 50
    assert len(record["test_scores"]) == record["n_test"] == 12
    assert record["training_seconds"] > 0 and record["label_agreement"] == 1.0
    assert record["key_inputs"]["data"] == data.fingerprint()


def test_replicates_are_different_models(toy, toy_splits, tiny_settings):
    data = toy(64, 32, 0)
    a, _ = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", replicate=0, progress=False)
    b, _ = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", replicate=1, progress=False)
    assert not _states_equal(a, b)


def test_key_changes_with_everything_that_determines_the_weights(toy, toy_splits, tiny_settings, tmp_path, monkeypatch):
    data = toy(64, 32, 0)
    base, _ = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn")
    weights_file = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(1)}, weights_file)
    variants = {
        "epochs": dataclasses.replace(tiny_settings, epochs=2),
        "batch_size": dataclasses.replace(tiny_settings, batch_size=8),
        "learning_rate": dataclasses.replace(tiny_settings, learning_rate=2e-3),
        "patience": dataclasses.replace(tiny_settings, patience=3),
        "seed": dataclasses.replace(tiny_settings, seed=1),
        "pretrained": dataclasses.replace(tiny_settings, pretrained=str(weights_file)),
    }
    keys = {name: cache_key(s, data, toy_splits, architecture="smallcnn")[0] for name, s in variants.items()}
    keys["replicate"] = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn", replicate=1)[0]
    keys["label_mode"] = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn", label_mode="permuted")[0]
    keys["architecture"] = cache_key(tiny_settings, data, toy_splits, architecture="resnet18")[0]
    pixels = data.images.copy()
    pixels[0, 0, 0] = 1.0 - pixels[0, 0, 0]
    keys["data"] = cache_key(tiny_settings, dataclasses.replace(data, images=pixels), toy_splits, architecture="smallcnn")[0]
    swapped = {**toy_splits, "train": np.r_[toy_splits["train"][:-1], 40], "val": np.r_[39, toy_splits["val"][1:]]}
    keys["splits"] = cache_key(tiny_settings, data, swapped, architecture="smallcnn")[0]
    keys["image_size"] = cache_key(dataclasses.replace(tiny_settings, image_size=40), toy(64, 40, 0), toy_splits, architecture="smallcnn")[0]
    monkeypatch.setattr(cache, "MODEL_CODE_VERSION", cache.MODEL_CODE_VERSION + 1)
    keys["code_version"] = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn")[0]
    monkeypatch.undo()
    assert base not in keys.values() and len(set(keys.values())) == len(keys)
    # Settings that do not change the weights keep the key.
    same = [
        dataclasses.replace(tiny_settings, n_bootstrap=999),
        dataclasses.replace(tiny_settings, device="auto"),
        dataclasses.replace(tiny_settings, n_images=3, methods=("GRAD",)),
    ]
    assert {cache_key(s, data, toy_splits, architecture="smallcnn")[0] for s in same} == {base}


def test_corrupt_weights_are_set_aside_and_retrained(toy, toy_splits, tiny_settings, counted_fit):
    data = toy(64, 32, 0)
    model, record = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    weights = cache.weights_path(tiny_settings.cache_dir, architecture="smallcnn", replicate=0, label_mode="true", key=record["key"])
    weights.write_bytes(b"truncated")
    with pytest.raises(CacheCorruptError, match=rf"cached weights .*{weights.name}.* have SHA-256 .*delete"):
        get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False, on_corrupt="raise")
    assert weights.read_bytes() == b"truncated"
    with pytest.warns(CacheWarning, match="set aside"):
        again, record2 = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    assert record2["cache_hit"] is False and len(counted_fit) == 2
    assert weights.with_name(weights.name + ".corrupt").read_bytes() == b"truncated"
    assert _states_equal(model, again)  # deterministic retraining gives the same model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)[1]["cache_hit"]


def test_foreign_weights_or_a_broken_record_count_as_corrupt(toy, toy_splits, tiny_settings):
    data = toy(64, 32, 0)
    _, record = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    weights = cache.weights_path(tiny_settings.cache_dir, architecture="smallcnn", replicate=0, label_mode="true", key=record["key"])
    good = weights.read_bytes()
    record_file = weights.with_suffix(".json")
    torch.save({"fc.weight": torch.zeros(2, 3)}, weights)
    stored = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**stored, "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}))
    with pytest.raises(CacheCorruptError, match="do not fit architecture 'smallcnn'"):
        get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False, on_corrupt="raise")
    weights.write_bytes(good)
    weights.with_suffix(".json").write_text("{not json")
    with pytest.raises(CacheCorruptError, match=r"cannot read training record .*\.json"):
        get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False, on_corrupt="raise")


def test_one_flipped_byte_in_the_weights_is_detected(toy, toy_splits, tiny_settings, counted_fit):
    data = toy(64, 32, 0)
    model, record = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    weights = cache.weights_path(tiny_settings.cache_dir, architecture="smallcnn", replicate=0, label_mode="true", key=record["key"])
    assert record["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    payload = bytearray(weights.read_bytes())
    payload[len(payload) // 2] ^= 0x01  # inside a tensor's data: torch.load alone loads it silently
    weights.write_bytes(bytes(payload))
    with pytest.raises(CacheCorruptError, match=rf"{weights.name}.* have SHA-256 .* says .*changed after it was written"):
        get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False, on_corrupt="raise")
    with pytest.warns(CacheWarning, match=rf"{weights.name}.*set aside"):
        again, _ = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    assert len(counted_fit) == 2 and _states_equal(model, again)
    assert weights.with_name(weights.name + ".corrupt").read_bytes() == bytes(payload)


def test_a_record_without_a_weights_digest_is_not_trusted(toy, toy_splits, tiny_settings):
    data = toy(64, 32, 0)
    _, record = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    weights = cache.weights_path(tiny_settings.cache_dir, architecture="smallcnn", replicate=0, label_mode="true", key=record["key"])
    record_file = weights.with_suffix(".json")
    stored = json.loads(record_file.read_text())
    stored["weights_sha256"] = None
    record_file.write_text(json.dumps(stored))
    with pytest.raises(CacheCorruptError, match="holds no SHA-256"):
        get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False, on_corrupt="raise")


def test_the_permuted_model_has_its_own_seed(toy, toy_splits, tiny_settings):
    for seed in range(20):
        for replicate in range(3):
            assert training_seed(seed, replicate, label_mode="permuted") != training_seed(seed, replicate)
    data = toy(64, 32, 0)
    true_key = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn")[1]
    permuted_key = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn", label_mode="permuted")[1]
    assert permuted_key["seed"] != true_key["seed"]
    assert permuted_key["select"] == "train_accuracy" and "patience" not in permuted_key


def test_permuted_model_fits_its_permuted_labels_and_reports_it(toy, toy_splits, tiny_settings, counted_fit):
    """No early stop on the true validation labels, no augmentation, its own seed; the record says what it reached."""
    data = toy(64, 32, 0)
    settings = dataclasses.replace(tiny_settings, label_randomization_max_epochs=3, label_randomization_target_accuracy=1.0,
                                   label_randomization_train_fraction=1.0, patience=1)
    _, record = get_trained(settings, data, toy_splits, architecture="smallcnn", label_mode="permuted", progress=False)
    (call,) = counted_fit
    assert call["select"] == "train_accuracy" and call["target_accuracy"] == 1.0 and call["augment"] is False
    assert call["epochs"] == 3 and call["seed"] == record["seed"] == training_seed(settings.seed, 0, label_mode="permuted")
    assert record["selected_on"] == "train_accuracy" and record["target_accuracy"] == 1.0
    best = max(row["train_accuracy"] for row in record["history"])
    assert record["train_accuracy"] == best and record["reached_target"] == (best >= 1.0)
    assert record["epochs_run"] == 3 or record["reached_target"]  # only the target stops it, never patience
    assert 0.0 <= record["train_accuracy_true_labels"] <= 1.0 and 0.0 <= record["test_auc"] <= 1.0
    ok, sentence = label_randomization_ready(record, min_accuracy=0.9)
    assert ok == (record["train_accuracy"] >= 0.9)
    assert f"{record['train_accuracy']:.3f}" in sentence and "test AUC" in sentence


def test_permuted_model_on_a_subset_of_the_training_images(toy, toy_splits, tiny_settings, counted_fit):
    data = toy(64, 32, 0)
    settings = dataclasses.replace(tiny_settings, label_randomization_max_epochs=1, label_randomization_train_fraction=0.5)
    _, record = get_trained(settings, data, toy_splits, architecture="smallcnn", label_mode="permuted", progress=False)
    subset = cache.permuted_subset(toy_splits["train"], data.labels, fraction=0.5, seed=settings.seed, replicate=0)
    assert record["n_train"] == len(subset) == 20 and record["train_fraction"] == 0.5
    assert sorted(counted_fit[0]["train_labels"]) == sorted(data.labels[subset])
    assert set(subset) <= set(toy_splits["train"]) and set(data.labels[subset]) == {0, 1}
    full = cache_key(tiny_settings, data, toy_splits, architecture="smallcnn", label_mode="permuted")[0]
    assert record["key"] != full
    elsewhere = dataclasses.replace(settings, cache_dir=settings.cache_dir + "-again")
    first = get_trained(settings, data, toy_splits, architecture="smallcnn", label_mode="permuted", progress=False)[0]
    again, record2 = get_trained(elsewhere, data, toy_splits, architecture="smallcnn", label_mode="permuted", progress=False)
    assert not record2["cache_hit"] and _states_equal(first, again)  # same settings and seed: the same model
    assert record2["weights_sha256"] == record["weights_sha256"]


def test_label_randomization_ready_refuses_below_the_level():
    record = {"label_mode": "permuted", "architecture": "smallcnn", "train_accuracy": 0.62, "epochs_run": 60,
              "n_train": 280, "test_auc": 0.51, "test_auc_low": 0.42, "test_auc_high": 0.6}
    ok, sentence = label_randomization_ready(record, min_accuracy=0.9)
    assert not ok and "0.620" in sentence and "not judged" in sentence and "[0.42, 0.60]" in sentence
    ok, sentence = label_randomization_ready({**record, "train_accuracy": 0.93}, min_accuracy=0.9)
    assert ok and "is judged" in sentence
    with pytest.raises(ModelError, match="permuted-label model"):
        label_randomization_ready({**record, "label_mode": "true"}, min_accuracy=0.9)
    with pytest.raises(ModelError, match="min_accuracy"):
        label_randomization_ready(record, min_accuracy=90)


def test_permuted_mode_trains_on_permuted_labels_and_keeps_true_validation_labels(toy, toy_splits, tiny_settings, counted_fit):
    data = toy(64, 32, 0)
    settings = dataclasses.replace(tiny_settings, label_randomization_train_fraction=1.0, label_randomization_max_epochs=2)
    _, record = get_trained(settings, data, toy_splits, architecture="smallcnn", label_mode="permuted", progress=False)
    (call,) = counted_fit
    true_train = data.labels[toy_splits["train"]]
    expected = cache.permuted_labels(true_train, seed=tiny_settings.seed, replicate=0)
    assert np.array_equal(call["train_labels"], expected)
    assert not np.array_equal(call["train_labels"], true_train)
    assert sorted(call["train_labels"]) == sorted(true_train)
    assert np.array_equal(call["val_labels"], data.labels[toy_splits["val"]])
    assert record["label_agreement"] == pytest.approx(np.mean(expected == true_train)) and record["label_agreement"] < 1
    assert record["weights_file"].startswith("smallcnn-r0-permuted-")


def test_changed_n_bootstrap_recomputes_the_interval_on_load(toy, toy_splits, tiny_settings, counted_fit):
    data = toy(64, 32, 0)
    _, first = get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", progress=False)
    _, second = get_trained(dataclasses.replace(tiny_settings, n_bootstrap=80), data, toy_splits, architecture="smallcnn", progress=False)
    assert len(counted_fit) == 1 and second["cache_hit"] and second["n_bootstrap"] == 80
    assert second["test_auc"] == first["test_auc"]


def test_bad_requests_are_named(toy, toy_splits, tiny_settings):
    data = toy(64, 32, 0)
    with pytest.raises(ModelError, match="unknown label_mode 'shuffled'"):
        get_trained(tiny_settings, data, toy_splits, architecture="smallcnn", label_mode="shuffled")
    with pytest.raises(ModelError, match="unknown architecture 'vgg'"):
        get_trained(tiny_settings, data, toy_splits, architecture="vgg")
    with pytest.raises(ModelError, match="missing \\['test'\\]"):
        get_trained(tiny_settings, data, {"train": toy_splits["train"], "val": toy_splits["val"]}, architecture="smallcnn")
    with pytest.raises(ModelError, match="data are 32 px but settings.image_size is 64"):
        get_trained(dataclasses.replace(tiny_settings, image_size=64), data, toy_splits, architecture="smallcnn")
    with pytest.raises(ModelError, match="splits\\['test'\\] must contain both classes"):
        get_trained(tiny_settings, data, {**toy_splits, "test": np.arange(52, 64, 2)}, architecture="smallcnn")
    with pytest.raises(ModelError, match="not a file"):
        get_trained(dataclasses.replace(tiny_settings, pretrained="/nonexistent/w.pt"), data, toy_splits, architecture="smallcnn")


def test_interrupted_training_resumes_from_its_checkpoint_and_removes_it(toy, toy_splits, tiny_settings, monkeypatch):
    """A training stopped after its first epoch (a preempted job) resumes to the uninterrupted weights."""
    import helpers.models.training as training

    settings = dataclasses.replace(tiny_settings, epochs=3, patience=3)
    data = toy(64, 32, 0)
    reference, _ = get_trained(dataclasses.replace(settings, cache_dir=settings.cache_dir + "-ref"), data, toy_splits,
                               architecture="smallcnn", progress=False)

    class Preempted(Exception):
        pass

    real_fit = training.fit

    def preempted_fit(*args, **kwargs):
        def stop(row):
            if row["epoch"] == 1:
                raise Preempted

        return real_fit(*args, on_epoch_end=stop, **kwargs)

    monkeypatch.setattr(cache, "fit", preempted_fit)
    with pytest.raises(Preempted):
        get_trained(settings, data, toy_splits, architecture="smallcnn", progress=False)
    key, _ = cache.cache_key(settings, data, toy_splits, architecture="smallcnn")
    weights = cache.weights_path(settings.cache_dir, architecture="smallcnn", replicate=0, label_mode="true", key=key)
    assert cache.checkpoint_path(weights).exists() and not weights.exists()
    monkeypatch.setattr(cache, "fit", real_fit)
    model, record = get_trained(settings, data, toy_splits, architecture="smallcnn", progress=False)
    assert not cache.checkpoint_path(weights).exists() and weights.exists()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert record["epochs_run"] == 3
