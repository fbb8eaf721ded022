"""XRAI against the algorithm's definition (Kapishnikov et al. 2019) on hand-made segments and attributions."""

from __future__ import annotations

import numpy as np
import torch
from conftest import blob_images, tiny_cnn

import helpers.saliency as S
from helpers.saliency import xrai as X

SIZE = 32
H = SIZE // 2


def _quadrants():
    """Boolean masks of the four quadrants: top-left, top-right, bottom-left, bottom-right."""
    q = {}
    for name, (r, c) in {"tl": (0, 0), "tr": (0, 1), "bl": (1, 0), "br": (1, 1)}.items():
        m = np.zeros((SIZE, SIZE), bool)
        m[r * H : (r + 1) * H, c * H : (c + 1) * H] = True
        q[name] = m
    return q


def _attribution(means: dict[str, float], *, seed: int = 0) -> np.ndarray:
    """Quadrant means plus zero-mean noise inside each quadrant (so only means can explain a constant output)."""
    rng = np.random.default_rng(seed)
    attr = np.zeros((SIZE, SIZE))
    for name, m in _quadrants().items():
        noise = rng.normal(size=m.sum())
        attr[m] = means[name] + noise - noise.mean()
    return attr


def test_greedy_ranking_follows_the_gain_of_new_pixels():
    q = _quadrants()
    segments = [
        q["tl"] | q["bl"],  # left half: gain (2 + 0) / 2 = 1 at first
        q["tr"],  # the bright segment: gain 5
        q["tl"] | q["tr"],  # top half: gain 3.5 at first, 2 once tr is in (new pixels only)
        q["br"],  # gain -1
    ]
    attr = _attribution({"tl": 2.0, "tr": 5.0, "bl": 0.0, "br": -1.0})
    image = np.zeros((1, SIZE, SIZE), np.float32)
    out, ranks = X.xrai_from_attribution(image, attr, segments_=segments, min_pixel_diff=1, return_ranks=True)
    # order: tr (5), then the top half for its new pixels tl (2), then the left half for bl (0), then br (-1)
    for name, gain, rank in (("tr", 5.0, 1), ("tl", 2.0, 2), ("bl", 0.0, 3), ("br", -1.0, 4)):
        np.testing.assert_allclose(out[q[name]], gain, atol=1e-9, err_msg=name)  # piecewise constant: the gain
        assert (ranks[q[name]] == rank).all(), name
    # the top half's gain counted only its new pixels: 2, not its full mean 3.5
    assert not np.isclose(out[q["tl"]], attr[q["tl"] | q["tr"]].mean()).any()


def test_segments_adding_too_few_pixels_are_skipped_and_uncovered_pixels_get_their_mean():
    q = _quadrants()
    extra = np.zeros((SIZE, SIZE), bool)
    extra[:H, H - 2 : H] = True  # two columns of tl next to tr: 32 pixels
    segments = [q["tr"], q["tr"] | extra, q["bl"]]
    attr = _attribution({"tl": -2.0, "tr": 5.0, "bl": 1.0, "br": -3.0}, seed=1)
    image = np.zeros((1, SIZE, SIZE), np.float32)
    # tr first (5 > mean of tr + extra); then tr + extra adds only 32 < 50 new pixels: skipped
    out = X.xrai_from_attribution(image, attr, segments_=segments, min_pixel_diff=50)
    np.testing.assert_allclose(out[q["tr"]], 5.0, atol=1e-9)
    np.testing.assert_allclose(out[q["bl"]], 1.0, atol=1e-9)
    uncovered = q["tl"] | q["br"]  # no segment added them: they share the mean of their attribution
    np.testing.assert_allclose(out[uncovered], attr[uncovered].mean(), atol=1e-9)
    # with a lower threshold the 32 new pixels form a region of their own, valued at their own mean
    out = X.xrai_from_attribution(image, attr, segments_=segments, min_pixel_diff=20)
    np.testing.assert_allclose(out[extra], attr[extra].mean(), atol=1e-9)
    rest = uncovered & ~extra
    np.testing.assert_allclose(out[rest], attr[rest].mean(), atol=1e-9)


def test_explain_xrai_ranks_a_bright_attribution_region_first(monkeypatch):
    """End to end: with a base attribution that is bright in one segment, that segment gets the top value."""
    images = blob_images(2, 32, seed=3)
    segs = X.segments(images[0][None])
    assert len(segs) > 3 and all(s.shape == (32, 32) for s in segs)
    q = _quadrants()
    target_segment = max(segs, key=lambda s: (s & q["tr"]).sum() - (s & ~q["tr"]).sum())

    def fake_attribution(model, x, *, target, n_steps, baselines, rule, internal_batch_size):
        attr = np.where(target_segment, 10.0, 0.0) + np.random.default_rng(0).normal(0, 0.01, (32, 32))
        return torch.as_tensor(np.stack([attr] * len(x)), dtype=torch.float32)

    monkeypatch.setattr(X, "xrai_attribution", fake_attribution)
    raw = S.attribute(tiny_cnn(), images[:1], "XRAI", target=1, n_steps=2)[0]
    assert np.isclose(raw[target_segment].mean(), raw.max(), rtol=1e-3)
    assert raw[target_segment].min() > raw[~target_segment].max()
    # piecewise constant: few distinct values (one per added region), not one per pixel
    assert len(np.unique(raw)) < 0.2 * raw.size


def _pair_full(attr, segs, *, area_threshold=1.0, min_pixel_diff=50):
    from saliency.core import xrai as pair

    params = pair.XRAIParameters(area_threshold=area_threshold, algorithm="full", return_xrai_segments=True)
    params.experimental_params["min_pixel_diff"] = min_pixel_diff
    out = pair.XRAI().GetMaskWithDetails(attr, call_model_function=None, base_attribution=attr, segments=segs,
                                         extra_parameters=params)
    return np.asarray(out.attribution_mask, dtype=np.float32), np.asarray(out.segments)


def _synthetic_radiograph(seed: int, size: int = 64) -> np.ndarray:
    from helpers.data.synthetic import generate

    return generate(2, size=size, seed=seed).images[1][None].astype(np.float32)


def test_full_greedy_gives_pairs_maps_and_ranks_exactly():
    """Our incremental greedy against PAIR's own loop: real segments, smooth and noisy maps, exact ties."""
    rng = np.random.default_rng(0)
    for seed in (1, 2):
        image = _synthetic_radiograph(seed)
        segs = X.segments(image)
        yy, xx = np.mgrid[:64, :64]
        attributions = [
            rng.random((64, 64)),                                              # noise
            np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / 80.0) + 0.01 * rng.random((64, 64)),  # a blob
            np.round(rng.random((64, 64)) * 3),                                # few values: many exact ties
            np.zeros((64, 64)),                                                # all gains tie
        ]
        for attr in attributions:
            for threshold, min_diff in ((1.0, 50), (0.3, 50), (1.0, 1)):
                ours = X.xrai_from_attribution(image, attr, segments_=segs, area_threshold=threshold,
                                               min_pixel_diff=min_diff, return_ranks=True)
                theirs = _pair_full(attr, segs, area_threshold=threshold, min_pixel_diff=min_diff)
                np.testing.assert_array_equal(ours[0], theirs[0])
                np.testing.assert_array_equal(ours[1], theirs[1])
