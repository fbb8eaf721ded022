"""The folder loader reads JPEG and TIFF as well as PNG/DICOM (CheXpert, MIMIC-CXR-JPG, Kermany are JPEG)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.io import imsave

from helpers.data import DataError, load_folder
from helpers.data.folder import read_image


def _write(folder, files):
    rows = ["image_id,x,y,width,height,Target"]
    for name, pixels in files.items():
        imsave(folder / name, pixels, check_contrast=False)
        rows.append(f"{name.rsplit('.', 1)[0]},8,8,16,16,1")
    (folder / "boxes.csv").write_text("\n".join(rows) + "\n")


def test_jpeg_and_tiff_folders_load(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 40), (40, 1))
    _write(tmp_path, {"a.jpg": (ramp * 255).astype(np.uint8), "b.TIF": (ramp * 65535).astype(np.uint16),
                      "c.tiff": ramp.astype(np.float32), "d.jpeg": (ramp * 255).astype(np.uint8)})
    data = load_folder(tmp_path, image_size=32)
    assert list(data.ids) == ["a", "b", "c", "d"] and data.labels.tolist() == [1, 1, 1, 1]
    for image in data.images:
        assert 0 <= image.min() and image.max() <= 1
        np.testing.assert_allclose(image.mean(), 0.5, atol=0.03)  # JPEG is lossy, the ramp survives
    assert data.masks.any(axis=(1, 2)).all()


def test_a_float_tiff_outside_unit_range_is_refused(tmp_path):
    imsave(tmp_path / "x.tif", np.full((40, 40), 3.0, np.float32), check_contrast=False)
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        read_image(tmp_path / "x.tif")
