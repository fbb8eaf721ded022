"""The ImageSet data contract: validation, subset, tensor, fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.data import DataError, ImageSet


def make(n=3, size=8, **changes):
    fields = dict(
        images=np.linspace(0, 1, n * size * size, dtype=np.float32).reshape(n, size, size),
        labels=np.array([1, 0, 1][:n], np.int64),
        masks=np.zeros((n, size, size), bool),
        boxes=[np.array([[1.0, 2.0, 3.0, 2.0]]), np.zeros((0, 4)), np.array([[0.0, 0.0, 2.0, 2.0]])][:n],
        ids=[f"i{k}" for k in range(n)],
        patient_ids=["a", "b", "a"][:n],
        source="test",
    )
    fields["masks"][0, 2:4, 1:4] = True
    fields["masks"][2, :2, :2] = True
    fields.update(changes)
    return ImageSet(**fields)


def test_len_size_subset_and_tensor():
    s = make()
    assert len(s) == 3 and s.size == 8
    sub = s.subset([2, 0])
    assert sub.ids == ["i2", "i0"] and sub.patient_ids == ["a", "a"] and sub.labels.tolist() == [1, 1]
    np.testing.assert_array_equal(sub.images[1], s.images[0])
    assert len(s.subset(np.array([], dtype=np.int64))) == 0
    t = s.tensor()
    assert t.dtype == torch.float32 and tuple(t.shape) == (3, 1, 8, 8)
    t[0, 0, 0, 0] = 5.0
    assert s.images[0, 0, 0] != 5.0  # a copy


def test_fingerprint_is_stable_and_sensitive():
    s = make()
    assert s.fingerprint() == make().fingerprint()
    images = s.images.copy()
    images[1, 3, 3] = np.nextafter(images[1, 3, 3], 1, dtype=np.float32)
    assert make(images=images).fingerprint() != s.fingerprint()
    masks = s.masks.copy()
    masks[1, 0, 0] = True
    assert make(masks=masks).fingerprint() != s.fingerprint()
    assert make(labels=np.array([1, 1, 1], np.int64)).fingerprint() != s.fingerprint()
    assert make(ids=["x", "i1", "i2"]).fingerprint() != s.fingerprint()
    assert s.subset([0, 1, 2]).fingerprint() == s.fingerprint()
    assert s.subset([1, 0, 2]).fingerprint() != s.fingerprint()


@pytest.mark.parametrize(
    "changes, word",
    [
        (dict(images=np.zeros((3, 8, 8), np.float64)), "float32"),
        (dict(images=np.full((3, 8, 8), 1.5, np.float32)), r"\[0, 1\]"),
        (dict(images=np.zeros((3, 8, 6), np.float32)), "square"),
        (dict(labels=np.array([1, 0, 2], np.int64)), "0 or 1"),
        (dict(labels=np.array([1, 0, 1], np.int32)), "int64"),
        (dict(masks=np.zeros((3, 8, 8), np.uint8)), "bool"),
        (dict(ids=["a", "a", "b"]), "unique"),
        (dict(patient_ids=["a"]), "patient_ids"),
        (dict(boxes=[np.zeros((0, 3))] * 3), "boxes"),
    ],
)
def test_contract_violations_raise(changes, word):
    with pytest.raises(DataError, match=word):
        make(**changes)


def test_bad_subset_indices():
    with pytest.raises(DataError, match="indices"):
        make().subset([0, 3])
    with pytest.raises(DataError, match="integer"):
        make().subset([0.5])
