"""MapCache: computes only what is missing, keys on everything that determines a map, refuses corrupt entries."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import blob_images, tiny_cnn

import helpers.saliency as S
from helpers.saliency import cache as C
from helpers._cache import CorruptCacheWarning
from helpers.saliency.cache import MapCache, weights_digest
from helpers.saliency.registry import register, unregister


@pytest.fixture
def counted():
    """A registered method that counts the images it is asked to explain (gradient x settings.scale)."""
    calls: list[int] = []

    def fn(model, images, *, target, scale=1.0):
        calls.append(len(images))
        x = images.clone().requires_grad_()
        logits = model(x)
        target = logits.argmax(1) if target is None else target
        (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x)
        return g.detach() * scale

    register("TEST_COUNT", fn, defaults={"scale": 1.0}, description="counted gradient", reference="test")
    yield calls
    unregister("TEST_COUNT")


@pytest.fixture
def setup(tmp_path):
    model = tiny_cnn(seed=0)
    images = blob_images(4, 16, seed=11)
    ids = [f"img-{i}" for i in range(4)]
    return MapCache(tmp_path / "maps", on_corrupt="raise"), model, images, ids


def _npz(cache: MapCache) -> list:
    return sorted(p for p in cache.root.rglob("*.npz") if "quarantine" not in p.parts)


def test_second_call_computes_nothing_and_returns_the_same_maps(setup, counted):
    cache, model, images, ids = setup
    first = cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4] and cache.stats.misses == 4 and cache.stats.computations == 1
    second = cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4] and cache.stats.hits == 4  # nothing recomputed
    np.testing.assert_array_equal(first, second)
    raw = cache.get_or_compute_raw(model, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4]  # the signed maps come from the same entries
    np.testing.assert_allclose(first, S.explain(model, images, "TEST_COUNT"), atol=1e-6)
    np.testing.assert_allclose(raw, S.attribute(model, images, "TEST_COUNT"), rtol=1e-6, atol=1e-9)
    assert len(_npz(cache)) == 4 and not list(cache.root.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_only_missing_images_are_computed(setup, counted):
    cache, model, images, ids = setup
    cache.get_or_compute(model, images[:2], ids[:2], "TEST_COUNT", model_key="m0")
    maps = cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [2, 2]  # one batched call for the two missing images
    counted.clear()
    np.testing.assert_allclose(maps, S.explain(model, images, "TEST_COUNT"), atol=1e-6)


def test_real_method_round_trip_matches_explain(setup):
    cache, model, images, ids = setup
    got = cache.get_or_compute(model, images, ids, "SG", model_key="m0", n_samples=2, seed=3)
    np.testing.assert_allclose(got, S.explain(model, images, "SG", n_samples=2, seed=3), atol=1e-6)
    again = cache.get_or_compute(model, images, ids, "SG", model_key="m0", n_samples=2, seed=3)
    assert cache.stats.computations == 1
    np.testing.assert_array_equal(got, again)


def test_every_part_of_the_key_separates_entries(setup, counted):
    cache, model, images, ids = setup
    base = dict(model_key="m0", state="trained")
    cache.get_or_compute(model, images, ids, "TEST_COUNT", **base)
    n = len(counted)
    # explicit default settings and an equivalent target spelling are the same entries
    cache.get_or_compute(model, images, ids, "TEST_COUNT", scale=1.0, **base)
    cache.get_or_compute(model, images, ids, "TEST_COUNT", target="predicted", **base)
    assert len(counted) == n
    variants = [
        dict(model_key="m1", state="trained"),
        dict(model_key="m0", state="cascade:fc"),
        dict(model_key="m0", state="trained", scale=2.0),
        dict(model_key="m0", state="trained", target="positive"),
        dict(model_key="m0", state="trained", target=[0, 1, 0, 1]),
    ]
    for kw in variants:
        before = len(counted)
        cache.get_or_compute(model, images, ids, "TEST_COUNT", **kw)
        assert len(counted) == before + 1, kw
    # positive and the int 1 name the same class: same entries
    before = len(counted)
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0", target=1)
    assert len(counted) == before


def test_other_weights_under_the_same_label_are_recomputed(setup, counted):
    cache, model, images, ids = setup
    a = cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    other = tiny_cnn(seed=1)
    b = cache.get_or_compute(other, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4, 4]
    counted.clear()
    np.testing.assert_allclose(b, S.explain(other, images, "TEST_COUNT"), atol=1e-6)
    assert not np.allclose(a, b)
    assert weights_digest(model) == weights_digest(tiny_cnn(seed=0))
    with torch.no_grad():
        model.conv1.bias[0] += 1e-3
    assert weights_digest(model) != weights_digest(tiny_cnn(seed=0))


def test_new_pixels_under_an_old_id_and_code_versions_are_recomputed(setup, counted, monkeypatch):
    cache, model, images, ids = setup
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    changed = images.copy()
    changed[0] = changed[0] * 0.5
    cache.get_or_compute(model, changed, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4, 1]  # only the image whose pixels changed
    monkeypatch.setattr(C, "CODE_VERSION", "test-bump")
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4, 1, 4]
    key = cache.key("TEST_COUNT", model_key="m0")
    assert key["libraries"]["captum"] and key["code_version"] == "test-bump" and key["version"] == "1"
    assert key["settings"] == {"scale": 1.0}


def test_ids_sharing_a_file_name_slug_do_not_collide(setup, counted):
    cache, model, images, _ = setup
    same = np.stack([images[0], images[0]])
    maps = cache.get_or_compute(model, same, ["a/b", "a_b"], "TEST_COUNT", model_key="m0")
    assert len(_npz(cache)) == 2
    again = cache.get_or_compute(model, same, ["a/b", "a_b"], "TEST_COUNT", model_key="m0")
    np.testing.assert_array_equal(maps, again)
    assert counted == [2]


def test_key_json_describes_the_folder(setup, counted):
    cache, model, images, ids = setup
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0", state="cascade:fc", scale=0.5)
    (key_file,) = cache.root.rglob("key.json")
    key = json.loads(key_file.read_text())
    assert key["model_key"] == "m0" and key["state"] == "cascade:fc" and key["settings"] == {"scale": 0.5}
    assert key["weights_sha256"] == weights_digest(model) and key["method"] == "TEST_COUNT"


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        b = bytearray(data)
        for i in range(len(b) // 3, len(b) // 3 + 64):
            b[i] ^= 0xFF
        path.write_bytes(bytes(b))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "one byte":
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        path.write_bytes(bytes(b))


def _rewrite(path, raw, key, *, digest=None):
    """A well-formed entry holding ``raw`` (with its own SHA-256 unless ``digest`` is given)."""
    raw = np.ascontiguousarray(raw)
    digest = C.sha256_bytes(np.ascontiguousarray(raw).tobytes()) if digest is None else digest
    with open(path, "wb") as fh:
        np.savez_compressed(fh, raw=raw, key=np.array(key), sha256=np.array(digest))


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "one byte"])
def test_damaged_file_raises_an_error_naming_it(setup, counted, how):
    cache, model, images, ids = setup
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    victim = _npz(cache)[1]
    _damage(victim, how)
    with pytest.raises(S.CorruptCacheEntryError, match="corrupt saliency-map cache entry") as err:
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    assert err.value.path == str(victim) and str(victim) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_entry_with_another_key_or_bad_values_is_refused(setup, counted):
    cache, model, images, ids = setup
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    first, second = _npz(cache)[:2]
    second.write_bytes(first.read_bytes())  # a well-formed file under the wrong name
    with pytest.raises(S.CorruptCacheEntryError, match="does not match"):
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    with np.load(first) as data:
        key = str(data["key"])
    _rewrite(first, np.full((1, 16, 16), np.nan, dtype=np.float32), key)
    with pytest.raises(S.CorruptCacheEntryError, match="NaN"):
        cache.get_or_compute(model, images[:1], ids[:1], "TEST_COUNT", model_key="m0")
    _rewrite(first, np.zeros((1, 8, 8), dtype=np.float32), key)
    with pytest.raises(S.CorruptCacheEntryError, match="float32"):
        cache.get_or_compute(model, images[:1], ids[:1], "TEST_COUNT", model_key="m0")


def test_a_changed_value_that_still_reads_fails_the_content_hash(setup, counted):
    """One value changed in a well-formed file (zip CRCs intact): the stored SHA-256 catches it."""
    cache, model, images, ids = setup
    cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    victim = _npz(cache)[0]
    with np.load(victim) as data:
        raw, key, digest = data["raw"].copy(), str(data["key"]), str(data["sha256"])
    assert digest == C.sha256_bytes(raw.tobytes())
    raw.reshape(-1)[7] += 1.0
    _rewrite(victim, raw, key, digest=digest)
    with pytest.raises(S.CorruptCacheEntryError, match="does not match the SHA-256"):
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    _rewrite(victim, raw, key, digest="")
    with pytest.raises(S.CorruptCacheEntryError, match="does not match the SHA-256"):
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")


def test_recompute_mode_quarantines_and_recomputes(setup, counted):
    cache, model, images, ids = setup
    expected = cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    victim = _npz(cache)[0]
    _damage(victim, "truncated")
    healing = MapCache(cache.root)  # the default, as every cache of the book: quarantine, warn, recompute
    with pytest.warns(CorruptCacheWarning, match=rf"{victim.name}.*moved to"):
        got = healing.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    assert counted == [4, 1] and len(list((cache.root / "quarantine").iterdir())) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed: a plain hit now
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0")
    np.testing.assert_allclose(got, expected, atol=1e-6)  # batch of 1 vs 4: float rounding only


def test_a_failing_computation_leaves_no_entry(setup):
    cache, model, images, ids = setup

    def boom(model, images, *, target):
        raise RuntimeError("out of memory")

    register("TEST_BOOM", boom, defaults={}, description="fails", reference="test")
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            cache.get_or_compute(model, images, ids, "TEST_BOOM", model_key="m0")
    finally:
        unregister("TEST_BOOM")
    assert _npz(cache) == []


def test_bad_arguments_raise(setup, counted, tmp_path):
    cache, model, images, ids = setup
    with pytest.raises(S.MapCacheError, match="image_ids"):
        cache.get_or_compute(model, images, ids[:3], "TEST_COUNT", model_key="m0")
    with pytest.raises(S.MapCacheError, match="image_ids"):
        cache.get_or_compute(model, images, "img-0", "TEST_COUNT", model_key="m0")
    with pytest.raises(S.MapCacheError, match="model_key"):
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="")
    with pytest.raises(S.MapCacheError, match="state"):
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0", state=None)
    with pytest.raises(S.UnknownSettingError, match="scale"):
        cache.get_or_compute(model, images, ids, "TEST_COUNT", model_key="m0", scael=2.0)
    with pytest.raises(S.MapCacheError, match="on_corrupt"):
        MapCache(tmp_path, on_corrupt="ignore")
    assert counted == []
