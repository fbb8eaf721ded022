"""The real-data array cache of :func:`helpers.data.loaders.load` and the ``limit`` subsample (issue 12, section 3)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import helpers.data.folder as folder_mod
import helpers.data.rsna as rsna_mod
import helpers.data.siim as siim_mod
from helpers._cache import CorruptCacheWarning
from helpers.config import ConfigError, resolve
from helpers.data import load_folder
from helpers.data._tables import stratified_sample
from helpers.data.loaders import load
from helpers.data.writer import synth

# The module attribute each loader decodes its images with.
DECODERS = {"rsna": (rsna_mod, "read_dicom"), "siim": (siim_mod, "read_dicom_with_header"), "folder": (folder_mod, "read_image")}
SIZE = 32


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """A 16-image synthetic dataset in both the RSNA and the SIIM layout (64 px, the generator's smallest)."""
    return synth(tmp_path_factory.mktemp("synth") / "d", n=16, size=64, seed=3, progress=False)


def _png_folder(root: Path, n: int = 12) -> Path:
    from skimage.io import imsave

    root.mkdir(parents=True)
    rows = ["image_id,x,y,width,height,Target"]
    rng = np.random.default_rng(0)
    for i in range(n):
        imsave(root / f"im{i:02d}.png", rng.integers(0, 256, (40, 40), dtype=np.uint8), check_contrast=False)
        rows.append(f"im{i:02d},4,4,10,10,1" if i % 3 == 0 else f"im{i:02d},,,,,0")  # 4 positives, 8 negatives
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def dataset(request, tmp_path, synth_dir):
    """(kind, data_dir, one image file of it) in a fresh copy, so that tests may change files."""
    import shutil

    kind = request.param
    if kind == "folder":
        root = _png_folder(tmp_path / "png")
        return kind, root, root / "im00.png"
    root = tmp_path / "copy"
    shutil.copytree(synth_dir, root)
    return kind, root, sorted((root / "stage_2_train_images").glob("*.dcm"))[0]


def _settings(kind, data_dir, tmp_path, **extra):
    return resolve("default", dataset=kind, data_dir=str(data_dir), image_size=SIZE, cache_dir=str(tmp_path / "cache"), **extra)


def _count_decodes(monkeypatch, kind) -> list:
    module, name = DECODERS[kind]
    original = getattr(module, name)
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def _forbid_decodes(monkeypatch, kind) -> None:
    module, name = DECODERS[kind]

    def refuse(*args, **kwargs):
        raise AssertionError(f"{kind}: {name} called although the arrays are cached")

    monkeypatch.setattr(module, name, refuse)


def _assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.ids == b.ids and a.patient_ids == b.patient_ids and a.source == b.source
    assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert a.fingerprint() == b.fingerprint()


def _entries(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache" / "data" / "arrays").glob("*.npz"))


@pytest.mark.parametrize("dataset", ["rsna", "siim", "folder"], indirect=True)
def test_real_data_are_decoded_once_and_memory_mapped(dataset, tmp_path, monkeypatch):
    kind, root, _ = dataset
    s = _settings(kind, root, tmp_path)
    first = load(s, progress=False)
    assert first.source == kind and first.size == SIZE and len(_entries(tmp_path)) == 1
    _forbid_decodes(monkeypatch, kind)
    second = load(s, progress=False)
    _assert_same(first, second)
    assert isinstance(second.images, np.memmap) and isinstance(second.masks, np.memmap)
    assert not second.images.flags.writeable  # read-only: the cache cannot be changed through it
    loaders = {"rsna": rsna_mod.load_rsna, "siim": siim_mod.load_siim, "folder": load_folder}
    monkeypatch.undo()
    _assert_same(second, loaders[kind](root, image_size=SIZE, progress=False))  # what the loader itself gives


@pytest.mark.parametrize("dataset", ["rsna", "siim", "folder"], indirect=True)
def test_a_changed_image_file_invalidates_the_real_data_cache(dataset, tmp_path, monkeypatch):
    kind, root, image_file = dataset
    s = _settings(kind, root, tmp_path)
    load(s, progress=False)
    # New bytes (appended to the DICOM's end, which pydicom ignores; new pixels for the PNG) and a new mtime.
    if kind == "folder":
        from skimage.io import imsave

        imsave(image_file, np.full((40, 40), 200, np.uint8), check_contrast=False)
    else:
        with open(image_file, "ab") as handle:
            handle.write(b"\0\0")
    st = image_file.stat()
    os.utime(image_file, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    calls = _count_decodes(monkeypatch, kind)
    rebuilt = load(s, progress=False)
    assert len(calls) == len(rebuilt) and len(_entries(tmp_path)) == 2  # decoded again, under a new key
    if kind == "folder":
        assert np.allclose(rebuilt.images[rebuilt.ids.index("im00")], 200 / 255, atol=1e-6)
    calls.clear()
    load(s, progress=False)
    assert calls == []  # and cached again
    # Touching alone (same bytes, new mtime) is a change too; and so is the table.
    os.utime(image_file, ns=(st.st_atime_ns, st.st_mtime_ns + 9_000_000_000))
    load(s, progress=False)
    assert len(calls) == len(rebuilt)


def test_a_changed_table_invalidates_the_cache(tmp_path, monkeypatch):
    root = _png_folder(tmp_path / "png")
    s = _settings("folder", root, tmp_path)
    assert load(s, progress=False).labels[1] == 0
    table = root / "boxes.csv"
    table.write_text(table.read_text().replace("im01,,,,,0", "im01,1,1,5,5,1"))
    calls = _count_decodes(monkeypatch, "folder")
    again = load(s, progress=False)
    assert calls and again.labels[1] == 1


@pytest.mark.parametrize("damage", ["record", "images"])
def test_a_corrupt_cache_entry_is_set_aside_with_a_warning_and_rebuilt(tmp_path, monkeypatch, damage):
    root = _png_folder(tmp_path / "png")
    s = _settings("folder", root, tmp_path)
    good = load(s, progress=False)
    del good  # release the memory map before damaging the file under it
    fresh = load_folder(root, image_size=SIZE, progress=False)
    (record,) = _entries(tmp_path)
    if damage == "record":
        record.write_bytes(b"not a zip file")
    else:
        images = record.with_name(record.name[: -len(".npz")] + ".images.npy")
        raw = bytearray(images.read_bytes())
        raw[-4:] = np.float32(0.5).tobytes()  # a changed pixel: the fingerprint check fails
        images.write_bytes(bytes(raw))
    calls = _count_decodes(monkeypatch, "folder")
    with pytest.warns(CorruptCacheWarning, match=rf"{record.name}.*set aside.*rebuilt"):
        rebuilt = load(s, progress=False)
    assert calls
    _assert_same(rebuilt, fresh)
    assert (record.parent / (record.name + ".corrupt")).is_file()
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(s, progress=False)
    assert calls == []


def test_stratified_sample_keeps_label_shares_order_and_is_seeded():
    ids = [f"i{k}" for k in range(30)]
    labels = [1 if k % 3 == 0 else 0 for k in range(30)]  # 10 positives, 20 negatives
    a = stratified_sample(ids, labels, 9, seed=1)
    assert len(a) == 9 and a == stratified_sample(ids, labels, 9, seed=1)
    assert sum(labels[ids.index(i)] for i in a) == 3  # a third of 9
    assert a == sorted(a, key=ids.index)  # original order
    assert a != stratified_sample(ids, labels, 9, seed=2)
    assert stratified_sample(ids, labels, None, seed=0) == ids == stratified_sample(ids, labels, 99, seed=0)
    b = stratified_sample(ids, labels, 10, seed=0)  # 10/3 and 20/3: the larger remainder (negatives) gets the extra one
    assert sum(labels[ids.index(i)] for i in b) == 3


@pytest.mark.parametrize("dataset", ["rsna", "siim", "folder"], indirect=True)
def test_limit_is_a_stratified_deterministic_subsample_and_part_of_the_key(dataset, tmp_path, monkeypatch):
    kind, root, _ = dataset
    full = load(_settings(kind, root, tmp_path), progress=False)
    calls = _count_decodes(monkeypatch, kind)
    small = load(_settings(kind, root, tmp_path, limit=6, seed=4), progress=False)
    assert len(small) == 6 and len(calls) == 6  # only the chosen images are decoded
    expected = stratified_sample(full.ids, full.labels, 6, seed=4)
    assert small.ids == expected
    idx = [full.ids.index(i) for i in expected]
    np.testing.assert_array_equal(small.images, full.images[idx])
    np.testing.assert_array_equal(small.labels, full.labels[idx])
    calls.clear()
    again = load(_settings(kind, root, tmp_path, limit=6, seed=4), progress=False)
    assert calls == [] and again.ids == small.ids  # cached under its own key
    assert len(load(_settings(kind, root, tmp_path, limit=10_000), progress=False)) == len(full)


def test_limit_on_the_synthetic_dataset(tmp_path):
    s = resolve("default", image_size=SIZE, n_synthetic=20, cache_dir=str(tmp_path / "cache"))
    full = load(s, progress=False)
    small = load(resolve("default", image_size=SIZE, n_synthetic=20, cache_dir=str(tmp_path / "cache"), limit=8), progress=False)
    assert small.ids == stratified_sample(full.ids, full.labels, 8, seed=s.seed)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_limit_must_be_a_positive_integer_or_none(bad):
    with pytest.raises(ConfigError, match=r"limit must be None .* integer >= 1"):
        resolve("default", limit=bad)
    assert resolve("default", limit=None).limit is None and resolve("default", limit=5).limit == 5


def test_the_evaluation_set_is_cached_too_and_ignores_limit(tmp_path, monkeypatch):
    from helpers.data.loaders import load_eval

    root = _png_folder(tmp_path / "png")
    s = resolve("default", image_size=SIZE, cache_dir=str(tmp_path / "cache"), eval_dataset="folder",
                eval_data_dir=str(root), limit=4)
    first = load_eval(s, progress=False)
    assert len(first) == 12  # every image of the evaluation folder
    _forbid_decodes(monkeypatch, "folder")
    _assert_same(first, load_eval(s, progress=False))


@pytest.mark.parametrize("dataset", ["rsna", "siim", "folder"], indirect=True)
def test_the_first_decode_writes_into_memory_maps_not_into_memory(dataset, tmp_path, monkeypatch):
    """The images and masks are decoded straight into memory-mapped files (the full RSNA set at 320 px would be
    about 13.6 GB in memory): every array the loader allocates is a memory map, none is a full in-memory array."""
    kind, root, _ = dataset
    allocated = []
    module = {"rsna": rsna_mod, "siim": siim_mod, "folder": folder_mod}[kind]
    original = module.np.zeros

    def watching_zeros(shape, dtype=float, *args, **kwargs):
        if isinstance(shape, tuple) and len(shape) == 3 and shape[1:] == (SIZE, SIZE):
            allocated.append(shape)  # an (N, S, S) image or mask stack held in memory
        return original(shape, dtype, *args, **kwargs)

    monkeypatch.setattr(module.np, "zeros", watching_zeros)
    data = load(_settings(kind, root, tmp_path), progress=False)
    monkeypatch.undo()
    assert allocated == [], "the loader held an image stack in memory"
    assert isinstance(data.images, np.memmap) and isinstance(data.masks, np.memmap)
    arrays = tmp_path / "cache" / "data" / "arrays"
    assert not [p for p in arrays.iterdir() if p.name.endswith(".tmp")]  # the temporary files became the entry


def test_a_decode_that_fails_half_way_leaves_no_entry_and_no_temporary_file(tmp_path, synth_dir, monkeypatch):
    module, name = DECODERS["rsna"]
    original, calls = getattr(module, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk unplugged")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)
    with pytest.raises(OSError, match="disk unplugged"):
        load(_settings("rsna", synth_dir, tmp_path), progress=False)
    arrays = tmp_path / "cache" / "data" / "arrays"
    assert [p.name for p in arrays.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    assert load(_settings("rsna", synth_dir, tmp_path), progress=False).source == "rsna"  # then decoded normally
