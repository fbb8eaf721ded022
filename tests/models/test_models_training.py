"""helpers.models.training: determinism, early stopping, the batch contract, augmentation, AUC intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import Augmentation, ModelError, build, fit, predict_proba, roc_auc_ci
from helpers.models.training import balanced_class_weights

FAST = dict(batch_size=16, learning_rate=1e-3, patience=2, progress=False)


def _states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_weights_other_seed_other_weights(toy):
    train, val = toy(48, 32, 0), toy(16, 32, 1)
    runs = []
    for seed in (5, 5, 6):
        model = build("smallcnn", seed=0)
        result = fit(model, train, val, epochs=1, seed=seed, **FAST)
        runs.append((model, result))
    assert _states_equal(runs[0][0], runs[1][0])
    assert runs[0][1].history[0]["train_loss"] == runs[1][1].history[0]["train_loss"]
    assert not _states_equal(runs[0][0], runs[2][0])


def _learn_then_unlearn(batches_per_epoch: int):
    """Cross-entropy during the first epoch, then its negative: later epochs only get worse."""
    calls = [0]

    def loss(model, batch):
        calls[0] += 1
        value = F.cross_entropy(model(batch["images"]), batch["labels"])
        return value if calls[0] <= batches_per_epoch else -value

    return loss


def test_restores_the_best_epoch_exactly(toy):
    """The returned weights are the best epoch's: equal to a run stopped there (same seed)."""
    train, val = toy(48, 32, 0), toy(16, 32, 1)
    long = build("smallcnn", seed=0)
    result = fit(long, train, val, epochs=3, seed=1, batch_size=16, learning_rate=1e-2, patience=3,
                 loss=_learn_then_unlearn(3), progress=False)
    assert result.epochs_run == 3 and result.best_epoch == 1
    assert result.history[2]["val_loss"] > result.history[0]["val_loss"]
    short = build("smallcnn", seed=0)
    fit(short, train, val, epochs=1, seed=1, batch_size=16, learning_rate=1e-2, patience=3,
        loss=_learn_then_unlearn(3), progress=False)
    assert _states_equal(long, short)
    assert not long.training


class _NoBatchNorm(nn.Module):
    """Conv-ReLU-pool-linear without batch norm: with a zero loss nothing changes between epochs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def test_early_stopping_after_patience_epochs_without_improvement(toy):
    train, val = toy(32, 32, 0), toy(16, 32, 1)
    zero_loss = lambda model, batch: 0.0 * model(batch["images"]).sum()  # noqa: E731 - weights never move
    result = fit(_NoBatchNorm(), train, val, epochs=10, batch_size=16, learning_rate=1e-3, patience=2, seed=0, loss=zero_loss, progress=False)
    assert result.epochs_run == 3 and result.best_epoch == 1 and result.stopped_early
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert len({row["val_auc"] for row in result.history}) == 1
    no_stop = fit(_NoBatchNorm(), train, val, epochs=2, batch_size=16, learning_rate=1e-3, patience=2, seed=0, loss=zero_loss, progress=False)
    assert no_stop.epochs_run == 2 and not no_stop.stopped_early


def test_train_accuracy_selection_never_stops_on_the_validation_auc(toy):
    """The case that stops a val-AUC fit after ``patience`` epochs runs to the cap when it selects on training accuracy."""
    train, val = toy(32, 32, 0), toy(16, 32, 1)
    zero_loss = lambda model, batch: 0.0 * model(batch["images"]).sum()  # noqa: E731 - weights never move
    common = dict(epochs=6, batch_size=16, learning_rate=1e-3, patience=1, seed=0, loss=zero_loss, progress=False)
    by_auc = fit(_NoBatchNorm(), train, val, **common)
    assert by_auc.stopped_early and by_auc.epochs_run == 2  # the validation AUC never improves
    by_accuracy = fit(_NoBatchNorm(), train, val, select="train_accuracy", target_accuracy=1.0, **common)
    assert by_accuracy.epochs_run == 6 and not by_accuracy.stopped_early
    assert by_accuracy.selected_on == "train_accuracy" and by_accuracy.reached_target is False
    assert all("train_accuracy" in row for row in by_accuracy.history)
    labels = np.asarray(train.labels)
    assert by_accuracy.train_accuracy == pytest.approx(
        np.mean(predict_proba(_NoBatchNorm(), train).round().astype(int) == labels))


def test_train_accuracy_selection_keeps_the_best_epoch_and_stops_on_the_target(toy, monkeypatch):
    """Hand-made accuracy sequences: the kept epoch is the most accurate one; reaching the target stops."""
    import helpers.models.training as training

    train, val = toy(32, 32, 0), toy(16, 32, 1)
    aucs = iter([0.9, 0.5, 0.4, 0.3, 0.2, 0.1])  # best true-label validation AUC at epoch 1
    monkeypatch.setattr(training, "_evaluate", lambda *a, **k: (0.7, next(aucs)))
    accuracies = iter([0.5, 0.8, 0.7, 0.95, 0.99])
    monkeypatch.setattr(training, "_accuracy", lambda *a, **k: next(accuracies))
    result = fit(build("smallcnn", seed=0), train, val, epochs=6, seed=0, select="train_accuracy",
                 target_accuracy=0.9, **FAST)
    assert result.epochs_run == 4 and result.stopped_early and result.best_epoch == 4
    assert result.train_accuracy == 0.95 and result.reached_target is True and result.target_accuracy == 0.9
    accuracies = iter([0.5, 0.8, 0.7])
    aucs = iter([0.9, 0.5, 0.4])
    capped = fit(build("smallcnn", seed=0), train, val, epochs=3, seed=0, select="train_accuracy",
                 target_accuracy=0.9, **FAST)
    assert capped.epochs_run == 3 and not capped.stopped_early and capped.best_epoch == 2
    assert capped.train_accuracy == 0.8 and capped.reached_target is False


def test_selection_options_are_checked(toy):
    train, val = toy(32, 32, 0), toy(16, 32, 1)
    with pytest.raises(ModelError, match="select must be one of"):
        fit(build("smallcnn", seed=0), train, val, epochs=1, seed=0, select="val_loss", **FAST)
    with pytest.raises(ModelError, match="needs target_accuracy in"):
        fit(build("smallcnn", seed=0), train, val, epochs=1, seed=0, select="train_accuracy", **FAST)
    with pytest.raises(ModelError, match="only used with select='train_accuracy'"):
        fit(build("smallcnn", seed=0), train, val, epochs=1, seed=0, target_accuracy=0.9, **FAST)


def test_learns_the_toy_task(toy):
    model = build("smallcnn", seed=0)
    result = fit(model, toy(64, 32, 0), toy(32, 32, 1), epochs=3, seed=0, **FAST)
    assert result.best_val_auc > 0.9
    test = toy(32, 32, 2)
    scores = predict_proba(model, test)
    assert scores.shape == (32,) and scores.dtype == np.float64 and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_ci(test.labels, scores, n_bootstrap=20).auc > 0.9


def test_loss_receives_the_documented_batch(toy):
    train, val = toy(32, 32, 0), toy(16, 32, 1)
    available = np.zeros(32, bool)
    available[::3] = True
    seen = []

    def loss(model, batch):
        seen.append({k: v.clone() for k, v in batch.items()})
        return F.cross_entropy(model(batch["images"]), batch["labels"])

    fit(build("smallcnn", seed=0), train, val, epochs=1, seed=0, mask_available=available, augment=False, loss=loss, **FAST)
    assert [len(b["index"]) for b in seen] == [16, 16]
    indices = torch.cat([b["index"] for b in seen])
    assert sorted(indices.tolist()) == list(range(32))
    for b in seen:
        assert b["images"].shape == (16, 1, 32, 32) and b["images"].dtype == torch.float32
        assert b["labels"].dtype == torch.int64 and b["has_mask"].dtype == torch.bool
        assert b["masks"].shape == (16, 1, 32, 32) and b["masks"].dtype == torch.float32
        idx = b["index"].numpy()
        assert torch.equal(b["has_mask"], torch.as_tensor(available[idx]))
        assert torch.equal(b["labels"], torch.as_tensor(train.labels[idx]))
        assert torch.equal(b["images"][:, 0], torch.as_tensor(train.images[idx]))  # augment=False
        assert torch.equal(b["masks"][:, 0].bool(), torch.as_tensor(train.masks[idx]))


def test_augmentation_moves_images_and_masks_together(toy):
    data = toy(32, 32, 0)
    # An image equal to its own mask stays equal to it under a shift-only augmentation.
    same = type(data)(**{**data.__dict__, "images": data.masks.astype(np.float32)})
    seen = []

    def loss(model, batch):
        seen.append((batch["images"].clone(), batch["masks"].clone(), batch["index"].clone()))
        return F.cross_entropy(model(batch["images"]), batch["labels"])

    fit(build("smallcnn", seed=0), same, toy(16, 32, 1), epochs=1, seed=0, loss=loss,
        augment=Augmentation(max_shift=0.2, contrast=0.0, brightness=0.0), **FAST)
    images, masks, index = (torch.cat(parts) for parts in zip(*seen))
    assert torch.equal(images, masks)
    original = torch.as_tensor(data.masks[index.numpy()])
    assert not torch.equal(masks[:, 0].bool(), original)  # the masks did move
    positives = original.flatten(1).any(1)
    assert torch.equal(masks[positives].flatten(1).any(1), torch.ones(int(positives.sum()), dtype=torch.bool))


def test_augmentation_is_a_bounded_shift_without_flip():
    x = torch.zeros(64, 1, 32, 32)
    x[:, 0, 10, 20] = 1.0  # one bright pixel, off-centre
    augment = Augmentation(max_shift=0.1, contrast=0.0, brightness=0.0)  # at most round(3.2) = 3 px
    a, m = augment(x, x.clone(), generator=torch.Generator().manual_seed(0))
    b, _ = augment(x, x.clone(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a, m)
    rows, cols = torch.nonzero(a[:, 0], as_tuple=True)[1:]
    assert len(rows) == 64  # the pixel never leaves the image
    assert (rows - 10).abs().max() <= 3 and (cols - 20).abs().max() <= 3
    assert (cols < 16).sum() == 0  # never mirrored to the other half
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10


def test_augmentation_intensity_jitter_stays_in_unit_interval():
    x = torch.rand(16, 1, 8, 8)
    out, masks = Augmentation(max_shift=0.0, contrast=0.3, brightness=0.2)(x, torch.ones(16, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    assert torch.equal(masks, torch.ones(16, 1, 8, 8))
    with pytest.raises(ModelError, match="max_shift"):
        Augmentation(max_shift=0.7)


def test_bad_inputs_are_named(toy):
    train = toy(32, 32, 0)
    one_class = train.subset(np.arange(0, 32, 2))
    with pytest.raises(ModelError, match="val must contain both classes"):
        fit(build("smallcnn", seed=0), train, one_class, epochs=1, seed=0, **FAST)
    with pytest.raises(ModelError, match="epochs must be an integer >= 1"):
        fit(build("smallcnn", seed=0), train, train, epochs=0, seed=0, **FAST)
    with pytest.raises(ModelError, match="mask_available has 3 entries"):
        fit(build("smallcnn", seed=0), train, train, epochs=1, seed=0, mask_available=np.ones(3, bool), **FAST)
    with pytest.raises(ModelError, match=r"\(N, 2\) logits"):
        fit(build("smallcnn", num_classes=3, seed=0), train, train, epochs=1, seed=0, loss=lambda m, b: m(b["images"]).sum(), **FAST)
    with pytest.raises(ModelError, match="must be an ImageSet"):
        fit(build("smallcnn", seed=0), np.zeros((4, 32, 32)), train, epochs=1, seed=0, **FAST)


def test_non_finite_loss_stops_training(toy):
    train = toy(32, 32, 0)
    with pytest.raises(ModelError, match="became nan at epoch 1"):
        fit(build("smallcnn", seed=0), train, train, epochs=1, seed=0, loss=lambda m, b: m(b["images"]).sum() * float("nan"), **FAST)


def test_predict_proba_restores_the_mode_and_accepts_arrays():
    model = build("smallcnn", seed=0).train()
    images = np.random.default_rng(0).random((5, 32, 32), dtype=np.float32)
    p = predict_proba(model, images, batch_size=2)
    assert model.training and p.shape == (5,)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(torch.as_tensor(images)[:, None]), 1)[:, 1].double().numpy()
    assert np.allclose(p, expected)


def test_roc_auc_ci_analytic_cases():
    perfect = roc_auc_ci([0, 0, 1, 1, 0, 1], [0.1, 0.2, 0.8, 0.9, 0.3, 0.7], n_bootstrap=200, seed=0)
    assert perfect.auc == perfect.low == perfect.high == 1.0
    # 3 of the 4 (negative, positive) pairs are ordered correctly.
    partial = roc_auc_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_bootstrap=300, seed=0)
    assert partial.auc == 0.75 and partial.low <= 0.75 <= partial.high and partial.low < partial.high
    assert partial == roc_auc_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_bootstrap=300, seed=0)
    with pytest.raises(ModelError, match="both classes"):
        roc_auc_ci([1, 1], [0.2, 0.3])
    with pytest.raises(ModelError, match="3 labels but 2 scores"):
        roc_auc_ci([0, 1, 1], [0.2, 0.3])


def test_bootstrap_auc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    from helpers.models.training import _bootstrap_aucs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (20, 30))
    scores = rng.integers(0, 5, (20, 30)).astype(float)  # many ties
    expected = [roc_auc_score(y, s) for y, s in zip(labels, scores)]
    assert np.allclose(_bootstrap_aucs(labels, scores), expected)
    assert np.isnan(_bootstrap_aucs(np.ones((1, 4), int), np.arange(4.0)[None]))[0]


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]))
    assert torch.allclose(weights, torch.tensor([4 / 6, 2.0]))
    with pytest.raises(ModelError, match="every class"):
        balanced_class_weights(np.array([1, 1]))


# ---------------------------------------------------------------- checkpoint / resume
class _Interrupted(Exception):
    pass


def _stop_after(epoch: int):
    def callback(row):
        if row["epoch"] == epoch:
            raise _Interrupted(f"interrupted after epoch {epoch}")

    return callback


@pytest.mark.parametrize("select", ["val_auc", "train_accuracy"])
def test_interrupted_fit_resumes_to_the_same_weights_bit_for_bit(toy, tmp_path, select):
    train, val = toy(48, 32, 0), toy(16, 32, 1)
    options = {**FAST, "epochs": 4, "seed": 5, "patience": 4}
    if select == "train_accuracy":
        options.update(select="train_accuracy", target_accuracy=1.0, augment=False)
    reference = build("smallcnn", seed=0)
    expected = fit(reference, train, val, **options)
    path = tmp_path / "model.ckpt"
    with pytest.raises(_Interrupted):
        fit(build("smallcnn", seed=0), train, val, checkpoint=path, on_epoch_end=_stop_after(2), **options)
    assert path.exists()
    resumed_model = build("smallcnn", seed=0)  # fresh initial weights: everything comes from the checkpoint
    resumed = fit(resumed_model, train, val, checkpoint=path, **options)
    assert _states_equal(reference, resumed_model)
    assert [h["val_auc"] for h in resumed.history] == [h["val_auc"] for h in expected.history]
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in expected.history]
    assert (resumed.best_epoch, resumed.epochs_run) == (expected.best_epoch, expected.epochs_run)


def test_checkpoint_of_another_fit_is_refused_and_a_damaged_one_set_aside(toy, tmp_path):
    from helpers._cache import CorruptCacheWarning

    train, val = toy(48, 32, 0), toy(16, 32, 1)
    path = tmp_path / "model.ckpt"
    with pytest.raises(_Interrupted):
        fit(build("smallcnn", seed=0), train, val, epochs=3, seed=5, checkpoint=path, on_epoch_end=_stop_after(1),
            **FAST)
    with pytest.raises(ModelError, match=r"belongs to another fit .*seed.*delete it"):
        fit(build("smallcnn", seed=0), train, val, epochs=3, seed=6, checkpoint=path, **FAST)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(CorruptCacheWarning, match="unreadable"):
        fit(build("smallcnn", seed=0), train, val, epochs=2, seed=5, checkpoint=path, **FAST)
    assert (tmp_path / "model.ckpt.corrupt").exists()
