"""The synthetic chest radiograph generator: determinism, ground truth, options."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from helpers.data import DataError, generate
from helpers.data.synthetic import MARKER_PLACEMENTS, labels_and_markers
from helpers.data._resize import resize_mask

SIZE = 64


@pytest.fixture(scope="module")
def sample():
    return generate(10, size=SIZE, seed=3, return_healthy=True)


def test_shapes_types_and_range(sample):
    assert sample.images.shape == (10, SIZE, SIZE) and sample.images.dtype == np.float32
    assert sample.images.min() >= 0.0 and sample.images.max() <= 1.0
    assert sample.labels.dtype == np.int64 and sample.masks.dtype == np.bool_
    assert len(sample.boxes) == len(sample.ids) == 10 and len(set(sample.ids)) == 10
    assert set(sample.labels.tolist()) == {0, 1}  # seed 3 draws both classes among 10
    assert np.array_equal(sample.labels, sample.true_labels)  # no label noise by default
    assert not sample.markers.any()  # no confounder by default


def test_same_seed_same_pixels_other_seed_other_pixels(sample):
    again = generate(10, size=SIZE, seed=3)
    assert np.array_equal(again.images, sample.images)
    assert np.array_equal(again.masks, sample.masks)
    assert all(np.array_equal(a, b) for a, b in zip(again.boxes, sample.boxes))
    other = generate(10, size=SIZE, seed=4)
    assert not np.array_equal(other.images, sample.images)
    assert all(not np.array_equal(a, b) for a, b in zip(other.images, sample.images))


def test_prefix_and_chunks_reproduce_the_same_images(sample):
    first = generate(4, size=SIZE, seed=3)
    assert np.array_equal(first.images, sample.images[:4])
    assert first.ids == sample.ids[:4]
    chunk = generate(3, size=SIZE, seed=3, start=5)
    assert np.array_equal(chunk.images, sample.images[5:8])
    assert np.array_equal(chunk.masks, sample.masks[5:8])
    assert chunk.ids == sample.ids[5:8]


def test_negatives_have_no_region_positives_one_to_three(sample):
    for label, mask, boxes, regions in zip(sample.true_labels, sample.masks, sample.boxes, range(len(sample))):
        if label == 0:
            assert not mask.any() and boxes.shape == (0, 4)
        else:
            assert mask.any() and 1 <= len(boxes) <= 3
    for i in range(len(sample)):
        assert len(sample.region_masks(i)) == len(sample.boxes[i])


def test_masks_lie_inside_the_lungs(sample):
    assert sample.lungs.any(axis=(1, 2)).all()
    assert not (sample.masks & ~sample.lungs).any()
    for i in np.flatnonzero(sample.true_labels):
        for region in sample.region_masks(i):
            assert region.any() and not (region & ~sample.lungs[i]).any()


def test_boxes_are_tight_around_each_region(sample):
    for i in np.flatnonzero(sample.true_labels):
        for region, (x, y, w, h) in zip(sample.region_masks(i), sample.boxes[i]):
            rows, cols = np.nonzero(region)
            assert (x, y, w, h) == (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)


def test_opacities_add_density_inside_their_mask_only(sample):
    for i in range(len(sample)):
        diff = sample.images[i] - sample.healthy[i]
        if sample.true_labels[i] == 0:
            assert np.array_equal(sample.images[i], sample.healthy[i])
            continue
        assert diff[sample.masks[i]].mean() > 0.05  # visible: brighter (denser) than the healthy lung
        far = ~binary_dilation(sample.lungs[i], iterations=3)
        assert np.abs(diff[far]).max() < 1e-3  # nothing changes outside the lungs


def test_the_same_image_at_another_size_shows_the_same_opacities():
    small = generate(6, size=64, seed=11)
    large = generate(6, size=128, seed=11)
    assert np.array_equal(small.labels, large.labels)
    for i in np.flatnonzero(small.true_labels):
        down = resize_mask(large.masks[i], 64)
        iou = (down & small.masks[i]).sum() / (down | small.masks[i]).sum()
        assert iou > 0.8
        assert len(small.boxes[i]) == len(large.boxes[i])


def test_confounding_marker_follows_the_label_and_changes_nothing_else():
    plain = generate(8, size=SIZE, seed=5)
    marked = generate(8, size=SIZE, seed=5, confounder_strength=1.0)
    assert np.array_equal(marked.markers, marked.true_labels.astype(bool))
    assert np.array_equal(marked.masks, plain.masks)
    for i in range(8):
        if marked.markers[i]:
            changed = marked.images[i] != plain.images[i]
            rows, cols = np.nonzero(changed)
            assert rows.max() < SIZE // 3  # the lead marker sits in an upper corner
            assert marked.images[i][changed].mean() > plain.images[i][changed].mean()  # lead is bright
        else:
            assert np.array_equal(marked.images[i], plain.images[i])


def _l_shape(x0, y0, h, size):
    """Analytic fixture: the pixels whose centre lies in the "L" of height h whose top-left corner is (x0, y0)."""
    xs = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    X, Y = np.meshgrid(xs, xs)
    bar, foot = 0.045 * h / 0.17, 0.11 * h / 0.17
    stem = (X >= x0) & (X <= x0 + bar) & (Y >= y0) & (Y <= y0 + h)
    base = (X >= x0) & (X <= x0 + foot) & (Y >= y0 + h - bar) & (Y <= y0 + h)
    return stem | base


@pytest.mark.parametrize("placement", MARKER_PLACEMENTS)
@pytest.mark.parametrize("marker_size", [0.17, 0.3])
def test_marker_mask_is_exact(placement, marker_size):
    """The mask is the analytic "L", and the marker changes the image only there (up to the detector blur)."""
    kw = dict(size=SIZE, seed=7, marker_placement=placement, marker_size=marker_size)
    marked = generate(6, marker_presence="all", **kw)
    clean = generate(6, marker_presence="none", **kw)
    assert marked.markers.all() and not clean.markers.any() and not clean.marker_masks.any()
    for i in range(6):
        mask = marked.marker_masks[i]
        assert mask.any()
        # the same L up to where it sits: its tight box's shape equals the analytic fixture's at that corner
        rows, cols = np.nonzero(mask)
        x0 = (cols.min() + 0.5) / SIZE * 2 - 1 - 1e-6
        y0 = (rows.min() + 0.5) / SIZE * 2 - 1 - 1e-6
        ref = _l_shape(x0, y0, marker_size, SIZE)
        # the fixture is anchored on a pixel centre, the marker anywhere inside that pixel: one pixel of slack
        assert (mask & ~binary_dilation(ref, structure=np.ones((3, 3), bool))).sum() == 0
        assert (ref & ~binary_dilation(mask, structure=np.ones((3, 3), bool))).sum() == 0
        # inside the mask the marker is bright lead; outside a blur-wide rim nothing changed
        diff = marked.images[i] - clean.images[i]
        assert diff[mask].mean() > 0.2
        assert np.abs(diff[~binary_dilation(mask, iterations=3)]).max() < 1e-3  # sigmoid and blur tails
        top = rows.max() < SIZE // 2
        assert top == (placement != "lower_corner")
        if placement in ("upper_left", "lower_corner", "upper_right"):
            left = cols.max() < SIZE // 2
            if placement == "upper_left":
                assert left
            if placement == "upper_right":
                assert not left


def test_marker_mask_matches_the_analytic_default_marker():
    """At the default size and placement the mask equals the fixture rectangles exactly (recomputed from the draws)."""
    s = generate(4, size=SIZE, seed=5, marker_presence="all")
    for i in range(4):
        rng = np.random.default_rng([5, i, 2])  # the marker's stream
        rng.random()  # presence
        right = rng.random() < 0.5
        t = rng.random()
        x0 = 0.60 + 0.16 * t if right else -0.90 + 0.16 * t
        y0 = rng.uniform(-0.92, -0.78)
        assert np.array_equal(s.marker_masks[i], _l_shape(x0, y0, 0.17, SIZE))


def test_marker_presence_rules_and_the_same_marker_everywhere():
    kw = dict(size=SIZE, seed=9)
    every = generate(40, marker_presence="all", **kw)
    for presence, c in (("independent", 0.0), ("confounded", 0.5), ("confounded", 1.0)):
        s = generate(40, marker_presence=presence, confounder_strength=c, **kw)
        d = labels_and_markers(40, seed=9, marker_presence=presence, confounder_strength=c)
        assert np.array_equal(s.markers, d["markers"]) and np.array_equal(s.true_labels, d["true_labels"])
        for i in range(40):  # a marked image is the "all" image, an unmarked one the plain image
            ref = every if s.markers[i] else generate(1, start=i, marker_presence="none", **kw)
            j = i if s.markers[i] else 0
            assert np.array_equal(s.images[i], ref.images[j])
            assert np.array_equal(s.marker_masks[i], ref.marker_masks[j])
    indep = labels_and_markers(2000, seed=1, marker_presence="independent")
    phi = np.corrcoef(indep["markers"], indep["true_labels"])[0, 1]
    assert abs(phi) < 0.06 and 0.45 < indep["markers"].mean() < 0.55
    strong = labels_and_markers(2000, seed=1, confounder_strength=0.8)
    assert abs(np.corrcoef(strong["markers"], strong["true_labels"])[0, 1] - 0.8) < 0.05


def test_without_marker_is_the_none_rendering():
    both = generate(5, size=SIZE, seed=6, marker_presence="all", return_without_marker=True)
    none = generate(5, size=SIZE, seed=6, marker_presence="none")
    assert np.array_equal(both.without_marker, none.images)
    some = generate(5, size=SIZE, seed=6, confounder_strength=0.5, return_without_marker=True)
    assert np.array_equal(some.without_marker[~some.markers], some.images[~some.markers])


def test_marker_contrast_dims_the_marker():
    bright = generate(3, size=SIZE, seed=4, marker_presence="all")
    faint = generate(3, size=SIZE, seed=4, marker_presence="all", marker_contrast=0.3)
    m = bright.marker_masks
    assert np.array_equal(m, faint.marker_masks)
    assert bright.images[m].mean() > faint.images[m].mean() + 0.1


def test_label_noise_flips_recorded_labels_not_the_images():
    clean = generate(24, size=SIZE, seed=2)
    noisy = generate(24, size=SIZE, seed=2, label_noise=0.5)
    assert np.array_equal(noisy.true_labels, clean.labels)
    assert np.array_equal(noisy.images, clean.images)
    flipped = noisy.labels != noisy.true_labels
    assert 0 < flipped.sum() < 24
    assert np.array_equal(noisy.masks.any(axis=(1, 2)), noisy.true_labels.astype(bool))


def test_to_imageset_follows_the_contract(sample):
    s = sample.to_imageset()
    assert len(s) == 10 and s.source == "synthetic" and s.patient_ids == s.ids
    assert s.tensor().shape == (10, 1, SIZE, SIZE)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(n=2, size=63, seed=0), "size"),
        (dict(n=2, size=513, seed=0), "size"),
        (dict(n=-1, size=64, seed=0), "n must"),
        (dict(n=2, size=64, seed=-1), "seed"),
        (dict(n=2, size=64, seed=0, positive_fraction=1.5), "positive_fraction"),
        (dict(n=2, size=64, seed=0, confounder_strength=-0.1), "confounder_strength"),
        (dict(n=2, size=64, seed=0, label_noise=0.6), "label_noise"),
        (dict(n=2, size=64, seed=0, start=-3), "start"),
        (dict(n=2, size=64, seed=0, marker_presence="some"), "marker_presence"),
        (dict(n=2, size=64, seed=0, marker_placement="middle"), "marker_placement"),
        (dict(n=2, size=64, seed=0, marker_size=0.9), "marker_size"),
        (dict(n=2, size=64, seed=0, marker_contrast=0.0), "marker_contrast"),
    ],
)
def test_bad_options_raise_a_data_error_naming_them(kwargs, word):
    n = kwargs.pop("n")
    with pytest.raises(DataError, match=word):
        generate(n, **kwargs)
