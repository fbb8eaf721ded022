"""The synthetic dataset on disk: writer, command line, read-back, ``load(settings)``.

Settings are built directly (not with ``helpers.config.resolve``, which imports
the model and saliency registries to validate names) to keep this file fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import helpers.data.loaders as loaders_module
import helpers.data.writer as writer_module
from helpers.config import Settings
from helpers.data import DataError, generate, load, load_synthetic, synth, synthetic_dir

SIZE = 64
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    return synth(out, n=6, size=SIZE, seed=1)


def test_layout_and_tables(written):
    names = sorted(p.name for p in written.iterdir())
    assert names == sorted(["README.txt", "stage_2_detailed_class_info.csv", "stage_2_train_images", "stage_2_train_labels.csv",
                            "synth.json", "synth_truth.csv", "train-rle.csv"])
    assert len(list((written / "stage_2_train_images").glob("*.dcm"))) == 6
    assert (written / "train-rle.csv").read_text().splitlines()[0] == "ImageId, EncodedPixels"  # leading space, as SIIM's
    assert (written / "stage_2_train_labels.csv").read_text().splitlines()[0] == "patientId,x,y,width,height,Target"
    sample = generate(6, size=SIZE, seed=1)
    labels = pd.read_csv(written / "stage_2_train_labels.csv")
    assert len(labels) == sum(max(len(b), 1) for b in sample.boxes)  # one row per box, one per negative
    classes = pd.read_csv(written / "stage_2_detailed_class_info.csv")
    assert classes["class"].tolist() == ["Lung Opacity" if y else "Normal" for y in sample.labels]
    rle = pd.read_csv(written / "train-rle.csv")
    assert (rle[" EncodedPixels"].str.strip() == "-1").sum() == int((sample.labels == 0).sum())
    params = json.loads((written / "synth.json").read_text())
    assert (params["n"], params["size"], params["seed"], params["n_positive"]) == (6, SIZE, 1, int(sample.labels.sum()))


def test_read_back_equals_the_generator(written):
    sample = generate(6, size=SIZE, seed=1)
    s = load_synthetic(written, image_size=SIZE)
    assert s.ids == sample.ids and s.patient_ids == sample.ids and s.source == "synthetic"
    np.testing.assert_array_equal(s.labels, sample.labels)
    np.testing.assert_array_equal(s.masks, sample.masks)  # exact masks through the SIIM RLE
    for got, want in zip(s.boxes, sample.boxes):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(s.images, sample.images, atol=0.5 / 4095 + 1e-6)  # 12-bit quantization only


def test_read_back_at_another_size(written):
    sample = generate(6, size=SIZE, seed=1)
    s = load_synthetic(written, image_size=32)
    assert s.images.shape == s.masks.shape == (6, 32, 32)
    np.testing.assert_array_equal(s.masks.any(axis=(1, 2)), sample.labels.astype(bool))
    for got, want in zip(s.boxes, sample.boxes):
        np.testing.assert_array_equal(got, want / 2)  # boxes scaled from 64 to 32 pixels


def test_disagreeing_tables_are_detected(written, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(written, copy)
    rle = (copy / "train-rle.csv").read_text().splitlines()
    positive = next(i for i, line in enumerate(rle[1:], 1) if not line.endswith(" -1"))
    image_id = rle[positive].split(",")[0]
    rle[positive] = f"{image_id}, -1"
    others = [line for line in rle if line.startswith(image_id + ",")]
    (copy / "train-rle.csv").write_text("\n".join(line for line in rle if line not in others or line == rle[positive]) + "\n")
    with pytest.raises(DataError, match=f"disagree for image '{image_id}'"):
        load_synthetic(copy, image_size=SIZE)


def test_a_folder_not_written_by_synth_is_refused(tmp_path):
    with pytest.raises(DataError, match="synth.json"):
        load_synthetic(tmp_path, image_size=SIZE)


def test_label_noise_and_confounder_are_recorded(tmp_path):
    out = synth(tmp_path / "noisy", n=12, size=SIZE, seed=2, label_noise=0.5, confounder_strength=1.0)
    sample = generate(12, size=SIZE, seed=2, label_noise=0.5, confounder_strength=1.0)
    truth = pd.read_csv(out / "synth_truth.csv")
    assert truth["label"].tolist() == sample.labels.tolist()
    assert truth["true_label"].tolist() == sample.true_labels.tolist()
    assert truth["marker"].astype(bool).tolist() == sample.markers.tolist()
    s = load_synthetic(out, image_size=SIZE)
    np.testing.assert_array_equal(s.labels, sample.labels)  # recorded labels
    np.testing.assert_array_equal(s.masks, sample.masks)  # the opacities really drawn


def test_refuses_to_overwrite_and_leaves_no_half_dataset(tmp_path, monkeypatch):
    out = synth(tmp_path / "ds", n=2, size=SIZE, seed=0)
    with pytest.raises(DataError, match="not empty"):
        synth(out, n=2, size=SIZE, seed=0)
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    real_write = writer_module.write_dicom
    monkeypatch.setattr(writer_module, "write_dicom", failing_write)
    with pytest.raises(OSError, match="disk full"):
        synth(tmp_path / "broken", n=3, size=SIZE, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # neither 'broken' nor a temporary folder


def test_command_line_end_to_end(tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "helpers.data", "synth", "--out", str(out), "--n", "5", "--size", str(SIZE), "--seed", "3",
           "--positive-fraction", "0.6", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote 5 images" in done.stdout and str(out) in done.stdout
    s = load_synthetic(out, image_size=SIZE)
    sample = generate(5, size=SIZE, seed=3, positive_fraction=0.6)
    np.testing.assert_array_equal(s.masks, sample.masks)
    assert json.loads((out / "synth.json").read_text())["positive_fraction"] == 0.6


def test_command_line_errors_exit_2_with_a_message(tmp_path, capsys):
    from helpers.data.__main__ import main

    out = synth(tmp_path / "ds", n=1, size=SIZE, seed=0)
    assert main(["synth", "--out", str(out), "--n", "1", "--size", str(SIZE), "--seed", "0", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "bad"), "--n", "5", "--size", "20", "--seed", "3"]) == 2
    assert "size must be an integer between 64 and 512" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path / "x"), "--n", "two", "--size", "64", "--seed", "0"])


def test_load_settings_synthesizes_once_and_reuses(tmp_path, monkeypatch):
    settings = Settings(preset="smoke", n_synthetic=8, image_size=SIZE, seed=4, cache_dir=str(tmp_path))
    first = load(settings)
    folders = [p for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")]  # not the lock files
    assert len(folders) == 1 and folders[0].name.startswith("synthetic-")
    assert first.source == "synthetic" and len(first) == 8 and first.size == SIZE

    def no_synth(*args, **kwargs):
        raise AssertionError("the cached synthetic dataset should have been reused")

    monkeypatch.setattr(loaders_module, "synth", no_synth)
    monkeypatch.setattr(loaders_module, "load_synthetic", no_synth)
    again = load(settings)  # from the imageset-64.npz kept beside the files
    assert again.fingerprint() == first.fingerprint() and again.ids == first.ids
    assert all(np.array_equal(a, b) for a, b in zip(again.boxes, first.boxes))
    assert (folders[0] / f"imageset-{SIZE}.npz").is_file()
    other = Settings(preset="smoke", n_synthetic=8, image_size=SIZE, seed=5, cache_dir=str(tmp_path))
    with pytest.raises(AssertionError, match="reused"):
        load(other)  # another seed is another dataset


def test_a_damaged_imageset_cache_is_rebuilt_with_a_warning(tmp_path):
    settings = Settings(preset="smoke", n_synthetic=4, image_size=SIZE, seed=0, cache_dir=str(tmp_path))
    first = load(settings)
    (cache_file,) = (tmp_path / "data").glob(f"*/imageset-{SIZE}.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        assert load(settings).fingerprint() == first.fingerprint()
    assert load(settings).fingerprint() == first.fingerprint()  # rebuilt


def test_load_settings_outside_the_generator_range_resizes(tmp_path):
    settings = Settings(preset="smoke", n_synthetic=4, image_size=32, seed=0, cache_dir=str(tmp_path))
    s = load(settings)
    assert s.images.shape == (4, 32, 32)
    folder = synthetic_dir(tmp_path, n=4, image_size=32, seed=0, positive_fraction=0.5)
    assert json.loads((folder / "synth.json").read_text())["size"] == 64


def test_load_settings_real_layouts(written):
    rsna = load(Settings(preset="smoke", dataset="rsna", data_dir=str(written), image_size=SIZE))
    siim = load(Settings(preset="smoke", dataset="siim", data_dir=str(written), image_size=SIZE))
    assert rsna.source == "rsna" and siim.source == "siim" and rsna.ids == siim.ids
    assert np.array_equal(rsna.labels, siim.labels)
    assert not (siim.masks & ~rsna.masks).any()  # exact masks inside the union of their boxes


def test_load_rejects_an_unknown_dataset():
    class Fake:
        dataset, image_size, data_dir = "chexpert", 64, None

    with pytest.raises(DataError, match="unknown dataset 'chexpert'"):
        load(Fake())
