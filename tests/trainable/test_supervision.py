"""The trainable loss (with and without boxes) and the boxed subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.models.training import balanced_class_weights, classification_loss
from helpers.trainable import TrainableConfigError, box_subset, box_term, build_self_explaining, trainable_loss


class _SpyBatch(dict):
    """A batch that records which keys the loss reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _batch(n=6, size=32, *, has_mask=None, nan_masks=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(n, 1, size, size, generator=g) > 0.7).float()
    if nan_masks:
        masks = torch.full_like(masks, float("nan"))
    return _SpyBatch(
        images=torch.rand(n, 1, size, size, generator=g),
        labels=torch.arange(n) % 2,
        masks=masks,
        has_mask=torch.zeros(n, dtype=torch.bool) if has_mask is None else torch.as_tensor(has_mask),
        index=torch.arange(n),
    )


@pytest.fixture(scope="module")
def model():
    return build_self_explaining("smallcnn", seed=0).eval()


def test_without_boxes_the_loss_reads_no_mask_and_equals_the_classifiers_loss(model):
    batch = _batch(nan_masks=True)
    weights = balanced_class_weights(np.array([0, 0, 0, 1]))
    loss = trainable_loss(model, batch, class_weights=weights)
    assert torch.isfinite(loss)
    assert "masks" not in batch.read
    torch.testing.assert_close(loss, classification_loss(model, batch, class_weights=weights))
    torch.testing.assert_close(trainable_loss(model, batch), F.cross_entropy(model(batch["images"]), batch["labels"]))
    loss.backward()  # NaN masks of images without a box never reach a gradient
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)


def test_boxed_rows_add_their_pixel_term_by_hand(model):
    has_mask = torch.tensor([False, True, False, True, False, False])
    batch = _batch(has_mask=has_mask)
    logits, maps, _ = model.forward_with_maps(batch["images"])
    ce = F.cross_entropy(logits, batch["labels"], reduction="none")
    rows = torch.tensor([1, 3])
    target = F.adaptive_avg_pool2d(batch["masks"][rows], maps.shape[-2:])
    bce = F.binary_cross_entropy_with_logits(maps[rows, 1:2], target, reduction="none").mean(dim=(1, 2, 3))
    expected = (ce.sum() + 0.5 * bce.sum()) / 6
    torch.testing.assert_close(trainable_loss(model, batch, box_weight=0.5), expected)
    assert "masks" in batch.read
    # box_weight 0 switches the pixel term off: no mask is read.
    batch = _batch(has_mask=has_mask, nan_masks=True)
    torch.testing.assert_close(trainable_loss(model, batch, box_weight=0.0), ce.mean())
    assert "masks" not in batch.read


def test_only_boxed_rows_of_the_masks_are_read(model):
    batch = _batch(has_mask=[True, False, False, False, False, False])
    batch["masks"][1:] = float("nan")  # unboxed rows
    assert torch.isfinite(trainable_loss(model, batch))
    batch["masks"][0] = float("nan")
    with pytest.raises(TrainableConfigError, match="finite"):
        trainable_loss(model, batch)


def test_box_term_prefers_evidence_inside_the_region():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1
    inside = torch.full((1, 2, 4, 4), -6.0)
    inside[:, 1, :2, :2] = 6.0
    outside = -inside
    assert box_term(inside, mask) < 0.01 < 5.0 < box_term(outside, mask)


def test_box_subset_is_a_nested_seeded_share_of_the_positive_training_images():
    labels = np.array([0, 1] * 50)
    train = np.arange(80)  # 40 positives
    subsets = {f: box_subset(labels, train, f, seed=7) for f in (0.0, 0.01, 0.05, 0.25, 1.0)}
    assert [len(s) for s in subsets.values()] == [0, 0, 2, 10, 40]  # round(0.4) = 0, round(2.0), round(10.0)
    assert len(box_subset(labels, train, 0.0125, seed=7)) == 1  # 0.5 rounds up
    assert set(subsets[0.05]) <= set(subsets[0.25]) <= set(subsets[1.0])
    assert set(subsets[1.0]) == set(np.flatnonzero(labels[:80] == 1))
    np.testing.assert_array_equal(box_subset(labels, train, 0.25, seed=7), subsets[0.25])
    assert not np.array_equal(box_subset(labels, train, 0.25, seed=8), subsets[0.25])
    with pytest.raises(TrainableConfigError, match=r"\[0, 1\]"):
        box_subset(labels, train, 1.5, seed=0)
    with pytest.raises(TrainableConfigError, match="box_weight"):
        trainable_loss(None, {}, box_weight=-1)
