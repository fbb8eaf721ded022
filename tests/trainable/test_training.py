"""Training the self-explaining model with helpers.models.fit: the synthetic case, boxes, cache, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers.trainable.training as training
from helpers.config import Settings
from helpers.trainable import trainable_loss


def _settings(tmp_path, **overrides):
    values = dict(preset="smoke", image_size=32, epochs=6, batch_size=16, learning_rate=2e-3, patience=6, seed=0, device="cpu",
                  cache_dir=str(tmp_path), trainable_init="scratch")
    values.update(overrides)
    return Settings(**values)


class _MaskSpy:
    """Wraps trainable_loss: records the boxed rows and whether the loss read ``batch["masks"]``."""

    def __init__(self):
        self.mask_reads = 0
        self.boxed_rows = []

    def __call__(self, model, batch, **kwargs):
        spy = self

        class Batch(dict):
            def __getitem__(self, key):
                if key == "masks":
                    spy.mask_reads += 1
                return super().__getitem__(key)

        self.boxed_rows.extend(batch["index"][batch["has_mask"]].tolist())
        return trainable_loss(model, Batch(batch), **kwargs)


@pytest.fixture(scope="module")
def trained_without_boxes(blob_data, tmp_path_factory):
    data, splits = blob_data
    spy = _MaskSpy()
    patch = pytest.MonkeyPatch()
    patch.setattr(training, "trainable_loss", spy)
    try:
        cache = tmp_path_factory.mktemp("trainable")
        model, record = training.get_trained_self_explaining(_settings(cache), data, splits, architecture="smallcnn", box_fraction=0.0)
    finally:
        patch.undo()
    return model, record, spy, cache


def test_zero_boxes_never_touch_a_mask(trained_without_boxes):
    _, record, spy, _ = trained_without_boxes
    assert spy.mask_reads == 0 and spy.boxed_rows == []
    assert record["box_indices"] == [] and record["n_boxes"] == 0 and record["box_fraction"] == 0.0
    assert record["cached"] is False and record["architecture"] == "smallcnn+saliency-head"


def test_opacity_in_the_left_half_lights_the_left_half(trained_without_boxes, blob_data):
    model, record, _, _ = trained_without_boxes
    data, splits = blob_data
    test = data.subset(splits["test"])
    positives = torch.from_numpy(test.images[test.labels == 1][:, None].copy())
    assert record["training"]["best_val_auc"] > 0.9
    with torch.no_grad():
        evidence = model.eval().evidence_map(positives, target=1)
    half = evidence.shape[-1] // 2
    left, right = evidence[..., :half].mean(dim=(1, 2)), evidence[..., half:].mean(dim=(1, 2))
    assert (left > right).float().mean() >= 0.9, (left, right)
    masks = torch.from_numpy(test.masks[test.labels == 1])
    assert evidence[masks].mean() > evidence[~masks].mean()


def test_second_call_reads_the_cache(trained_without_boxes, blob_data, monkeypatch):
    model, record, _, cache = trained_without_boxes
    data, splits = blob_data

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model was retrained")

    monkeypatch.setattr("helpers.models.training.fit", no_training)
    again, record2 = training.get_trained_self_explaining(_settings(cache), data, splits, architecture="smallcnn", box_fraction=0.0)
    assert record2["cached"] is True and record2["key"] == record["key"]
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    assert len(list(cache.glob("trainable/*.pt"))) == 1


def test_boxes_go_to_the_recorded_positive_subset_and_training_is_deterministic(blob_data, tmp_path):
    data, splits = blob_data
    runs = []
    for folder in ("a", "b"):
        spy = _MaskSpy()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(training, "trainable_loss", spy)
            settings = _settings(tmp_path / folder, epochs=1)
            model, record = training.get_trained_self_explaining(settings, data, splits, architecture="smallcnn", box_fraction=0.5)
        runs.append((model, record, spy))
    (model_a, record, spy), (model_b, _, _) = runs
    n_positive = int(data.labels[splits["train"]].sum())
    assert record["n_positive_train"] == n_positive and record["n_boxes"] == round(0.5 * n_positive)
    assert all(data.labels[i] == 1 for i in record["box_indices"])
    boxed = {int(splits["train"][row]) for row in spy.boxed_rows}
    assert boxed and boxed <= set(record["box_indices"]) and spy.mask_reads > 0
    a, b = model_a.state_dict(), model_b.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, other = training.get_trained_self_explaining(_settings(tmp_path / "a", epochs=1), data, splits, architecture="smallcnn", box_fraction=0.5, replicate=1)
    assert other["key"] != record["key"] and other["box_indices"] != record["box_indices"]


def test_one_flipped_byte_in_the_cached_weights_is_detected(blob_data, tmp_path):
    from helpers._cache import CorruptCacheWarning
    from helpers.trainable import TrainableConfigError

    data, splits = blob_data
    settings = _settings(tmp_path, epochs=1)
    model, record = training.get_trained_self_explaining(settings, data, splits, architecture="smallcnn")
    (weights,) = (tmp_path / "trainable").glob("*.pt")
    assert len(record["weights_sha256"]) == 64
    payload = bytearray(weights.read_bytes())
    payload[len(payload) // 2] ^= 0x01  # inside a tensor's data: torch.load alone loads it silently
    weights.write_bytes(bytes(payload))
    with pytest.raises(TrainableConfigError, match=rf"{weights.name}.* have SHA-256 .*delete"):
        training.get_trained_self_explaining(settings, data, splits, architecture="smallcnn", on_corrupt="raise")
    with pytest.warns(CorruptCacheWarning, match=rf"{weights.name}.*set aside"):
        again, record2 = training.get_trained_self_explaining(settings, data, splits, architecture="smallcnn")
    assert record2["cached"] is False and weights.with_name(weights.name + ".corrupt").exists()
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic retraining restores the same model


def test_box_supervised_models_fine_tune_the_label_only_model(trained_without_boxes, blob_data):
    data, splits = blob_data
    base_model, base, _, cache = trained_without_boxes
    settings = _settings(cache, trainable_finetune_epochs=2)
    _, tuned = training.get_trained_self_explaining(settings, data, splits, architecture="smallcnn", box_fraction=1.0)
    assert tuned["init_from"] == {"kind": "self_explaining", "key": base["key"]} and tuned["finetune_epochs"] == 2
    assert tuned["training"]["epochs_run"] <= 2
    # from scratch: another key, no parent
    _, scratch = training.get_trained_self_explaining(_settings(cache, trainable_finetune_epochs=0), data, splits,
                                                      architecture="smallcnn", box_fraction=1.0)
    assert scratch["init_from"] is None and scratch["key"] != tuned["key"]


def test_label_only_model_can_start_from_the_trained_classifier(blob_data, tmp_path):
    from helpers.models import get_trained
    from helpers.trainable import build_self_explaining

    data, splits = blob_data
    settings = _settings(tmp_path, trainable_init="classifier", trainable_finetune_epochs=1, epochs=2)
    classifier, clf_record = get_trained(settings, data, splits, architecture="smallcnn", progress=False)
    # the backbone's weights are the classifier's before any training
    start = build_self_explaining("smallcnn", seed=5, probe_size=32, image_size=32, backbone_state=classifier.state_dict())
    clf_state = classifier.state_dict()
    shared = [k for k in start.backbone.state_dict() if k in clf_state]
    assert shared and all(torch.equal(start.backbone.state_dict()[k], clf_state[k].cpu()) for k in shared)
    _, record = training.get_trained_self_explaining(settings, data, splits, architecture="smallcnn")
    assert record["init_from"] == {"kind": "classifier", "key": clf_record["key"], "weights_sha256": clf_record["weights_sha256"]}
    assert record["finetune_epochs"] == 1 and record["training"]["epochs_run"] == 1
    _, scratch = training.get_trained_self_explaining(_settings(tmp_path, epochs=2), data, splits, architecture="smallcnn")
    assert scratch["init_from"] is None and scratch["key"] != record["key"]
