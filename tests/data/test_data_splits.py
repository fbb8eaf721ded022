"""Patient-level, stratified, deterministic splits."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.data import DataError, ImageSet, split


def image_set(n_patients=60, seed=0) -> ImageSet:
    """Patients with 1 to 3 images each; a third of the patients positive."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, size=n_patients)
    patients = [f"p{k:03d}" for k, m in enumerate(per) for _ in range(m)]
    positive = rng.random(n_patients) < 1 / 3
    labels = np.array([int(positive[k]) for k, m in enumerate(per) for _ in range(m)], np.int64)
    # a positive patient may also have negative images: still one patient
    labels[rng.random(labels.size) < 0.2] = 0
    n = labels.size
    return ImageSet(
        images=np.zeros((n, 4, 4), np.float32),
        labels=labels,
        masks=np.zeros((n, 4, 4), bool),
        boxes=[np.zeros((0, 4))] * n,
        ids=[f"img{i}" for i in range(n)],
        patient_ids=patients,
        source="test",
    )


def test_disjoint_cover_sorted_int64():
    s = image_set()
    parts = split(s, seed=0)
    assert list(parts) == ["train", "val", "test"]
    allidx = np.concatenate(list(parts.values()))
    assert sorted(allidx.tolist()) == list(range(len(s)))
    for idx in parts.values():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)


def test_patient_level():
    s = image_set()
    parts = split(s, seed=1)
    owner = {}
    for name, idx in parts.items():
        for i in idx:
            assert owner.setdefault(s.patient_ids[i], name) == name


def test_deterministic_and_seed_dependent():
    s = image_set()
    a, b, c = split(s, seed=7), split(s, seed=7), split(s, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_does_not_depend_on_image_order():
    s = image_set()
    order = np.random.default_rng(3).permutation(len(s))
    shuffled = s.subset(order)
    a, b = split(s, seed=2), split(shuffled, seed=2)
    for k in a:
        assert sorted(s.ids[i] for i in a[k]) == sorted(shuffled.ids[i] for i in b[k])


def test_fractions_of_patients_per_stratum():
    s = image_set(n_patients=200)
    parts = split(s, seed=0, fractions=(0.6, 0.2, 0.2))
    pos = {p for p, y in zip(s.patient_ids, s.labels) if y}
    for name, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        patients = {s.patient_ids[i] for i in parts[name]}
        n_pos = len(patients & pos)
        n_neg = len(patients - pos)
        assert abs(n_pos - share * len(pos)) <= 1
        assert abs(n_neg - share * (200 - len(pos))) <= 1


def test_unstratified_and_degenerate_fractions():
    s = image_set()
    parts = split(s, seed=0, stratify=False, fractions=(1.0, 0.0, 0.0))
    assert len(parts["train"]) == len(s) and parts["val"].size == parts["test"].size == 0


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1), ("a", 0, 1)])
def test_bad_fractions(fractions):
    with pytest.raises(DataError, match="fractions"):
        split(image_set(), seed=0, fractions=fractions)


def test_bad_seed():
    with pytest.raises(DataError, match="seed"):
        split(image_set(), seed=-1)
