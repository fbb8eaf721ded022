"""The RSNA, SIIM and folder loaders on small hand-made datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.data import DataError, load_folder, load_rsna, load_siim, write_dicom


def dicom(path: Path, size: int | tuple[int, int], *, value: int = 100, patient_id: str | None = None) -> Path:
    shape = (size, size) if isinstance(size, int) else size
    image = (np.arange(shape[0] * shape[1]).reshape(shape) % 200 + value // 4).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dicom(path, image, patient_id=patient_id or path.stem, pixel_spacing=(1, 1))


def rect(size, x, y, w, h):
    m = np.zeros((size, size), bool)
    m[y : y + h, x : x + w] = True
    return m


# --------------------------------------------------------------------------- RSNA


def rsna_folder(root: Path, rows: str, classes: str, sizes: dict[str, int]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n" + rows)
    (root / "stage_2_detailed_class_info.csv").write_text("patientId,class\n" + classes)
    for pid, size in sizes.items():
        dicom(root / "stage_2_train_images" / f"{pid}.dcm", size)
    return root


@pytest.fixture
def rsna(tmp_path):
    rows = (
        "a,2,3,10,5,1\n"
        "b,,,,,0\n"
        "a,20,20,6,12,1\n"
        "a,2,3,10,5,1\n"  # an exact duplicate of the first box
        "c,,,,,0\n"
    )
    classes = "a,Lung Opacity\nb,Normal\na,Lung Opacity\nc,No Lung Opacity / Not Normal\n"
    return rsna_folder(tmp_path / "rsna", rows, classes, {"a": 40, "b": 40, "c": 40})


def test_rsna_union_of_boxes_duplicates_merged_not_normal_left_out(rsna):
    s = load_rsna(rsna, image_size=40)
    assert s.ids == ["a", "b"] and s.patient_ids == ["a", "b"] and s.source == "rsna"
    assert s.labels.tolist() == [1, 0]
    np.testing.assert_array_equal(s.boxes[0], [[2, 3, 10, 5], [20, 20, 6, 12]])
    np.testing.assert_array_equal(s.masks[0], rect(40, 2, 3, 10, 5) | rect(40, 20, 20, 6, 12))
    assert not s.masks[1].any() and s.boxes[1].shape == (0, 4)
    assert s.images.dtype == np.float32 and s.images.shape == (2, 40, 40)


def test_rsna_boxes_scale_from_the_dicom_size(rsna):
    s = load_rsna(rsna, image_size=20)
    np.testing.assert_array_equal(s.boxes[0], [[1, 1.5, 5, 2.5], [10, 10, 3, 6]])
    assert s.masks[0][10:16, 10:13].all() and s.masks.shape == (2, 20, 20)


def test_rsna_keeps_not_normal_on_request_and_limit(rsna):
    s = load_rsna(rsna, image_size=40, exclude_not_normal=False)
    assert s.ids == ["a", "b", "c"]
    assert load_rsna(rsna, image_size=40, limit=1).ids == ["a"]


def test_rsna_box_outside_the_image_names_file_line_and_patient(tmp_path):
    root = rsna_folder(tmp_path / "r", "a,30,3,20,5,1\n", "a,Lung Opacity\n", {"a": 40})
    with pytest.raises(DataError, match=r"stage_2_train_labels\.csv' line 2 \(patientId 'a'\).*outside the 40x40"):
        load_rsna(root, image_size=40)


def test_rsna_missing_column_names_file_columns_and_header(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,Target\na,1,1,1,1\n")
    with pytest.raises(DataError, match=r"stage_2_train_labels\.csv' lacks column\(s\) height.*expected header: patientId,x,y,width,height,Target"):
        load_rsna(root, image_size=40, exclude_not_normal=False)


@pytest.mark.parametrize(
    "rows, word",
    [
        ("a,1,1,5,5,2\n", "Target must be 0 or 1"),
        ("a,1,1,,5,1\n", "partly empty"),
        ("a,1,1,5,5,0\n", "Target 0 row must have an empty box"),
        ("a,1,1,0,5,1\n", "must be positive"),
        ("a,1,1,5,5,1\na,,,,,0\n", "contradicts"),
    ],
)
def test_rsna_malformed_rows(tmp_path, rows, word):
    root = rsna_folder(tmp_path / "r", rows, "", {"a": 40})
    with pytest.raises(DataError, match=word):
        load_rsna(root, image_size=40, exclude_not_normal=False)


def test_rsna_missing_image_and_class_disagreement(tmp_path):
    root = rsna_folder(tmp_path / "r", "a,,,,,0\nz,,,,,0\n", "a,Normal\nz,Normal\n", {"a": 40})
    with pytest.raises(DataError, match=r"z\.dcm.*does not exist"):
        load_rsna(root, image_size=40)
    root = rsna_folder(tmp_path / "r2", "a,,,,,0\n", "a,Lung Opacity\n", {"a": 40})
    with pytest.raises(DataError, match="has Target 0 but class 'Lung Opacity'"):
        load_rsna(root, image_size=40)


# --------------------------------------------------------------------------- SIIM
# 8 x 8 images, so that every run of the RLE strings is computed by hand; below MIN_SOURCE_SIZE (32), hence
# min_source_size=8 in these tests; column-major pixel p is (row p % 8, column p // 8).
# Region 1: column 1, rows 2..4 -> pixels 10, 11, 12 -> "10 3".
# Region 2: column 5, rows 0..1 and column 6, rows 0..1 -> pixels 40, 41, 48, 49
#           -> runs (40, 2), (48, 2) -> "40 2 6 2" (48 - 42 = 6).


def region_one():
    m = np.zeros((8, 8), bool)
    m[2:5, 1] = True
    return m


def region_two():
    m = np.zeros((8, 8), bool)
    m[0:2, 5:7] = True
    return m


def siim_folder(root: Path, table: str, *, header: str = "ImageId, EncodedPixels") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train-rle.csv").write_text(header + "\n" + table)
    dicom(root / "dicom-images-train" / "1.2.3" / "1.2.3.4" / "img.a.dcm", 8, patient_id="patient-1")
    dicom(root / "dicom-images-train" / "1.2.5" / "1.2.5.6" / "img.b.dcm", 8, patient_id="patient-2")
    dicom(root / "other" / "img.c.dcm", 8, patient_id="patient-1")
    return root


def test_siim_combines_every_row_of_an_image(tmp_path):
    root = siim_folder(tmp_path / "s", "img.a, 10 3\nimg.b, -1\nimg.a, 40 2 6 2\nimg.c, 10 3\n")
    s = load_siim(root, image_size=8, min_source_size=8)
    assert s.ids == ["img.a", "img.b", "img.c"] and s.source == "siim"
    assert s.patient_ids == ["patient-1", "patient-2", "patient-1"]
    assert s.labels.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(s.masks[0], region_one() | region_two())  # not last-row-wins
    np.testing.assert_array_equal(s.boxes[0], [[1, 2, 1, 3], [5, 0, 2, 2]])
    assert not s.masks[1].any() and s.boxes[1].shape == (0, 4)
    np.testing.assert_array_equal(s.masks[2], region_one())


def test_siim_accepts_the_column_without_its_leading_space(tmp_path):
    root = siim_folder(tmp_path / "s", "img.a,10 3\nimg.b,-1\n", header="ImageId,EncodedPixels")
    s = load_siim(root, image_size=8, min_source_size=8)
    np.testing.assert_array_equal(s.masks[0], region_one())


def test_siim_masks_resize_with_the_area_rule(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    dicom(root / "big.dcm", 16)
    m = np.zeros((16, 16), bool)
    m[4:8, 6:8] = True  # columns 6..7, rows 4..7 -> pixels 100..103 and 116..119
    m[0, 15] = True  # pixel 240, a single pixel: a quarter of an output pixel, dropped
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\nbig, 100 4 12 4 120 1\n")
    s = load_siim(root, image_size=8, min_source_size=8)
    expected = np.zeros((8, 8), bool)
    expected[2:4, 3] = True
    np.testing.assert_array_equal(s.masks[0], expected)


def test_siim_malformed_rle_names_file_line_and_image(tmp_path):
    root = siim_folder(tmp_path / "s", "img.a, 10 3\nimg.b, 60 10\n")
    with pytest.raises(DataError, match=r"train-rle\.csv' line 3 \(ImageId 'img\.b'.*goes past"):
        load_siim(root, image_size=8, min_source_size=8)


def test_siim_minus_one_mixed_with_a_region_is_refused(tmp_path):
    root = siim_folder(tmp_path / "s", "img.a, 10 3\nimg.a, -1\n")
    with pytest.raises(DataError, match="marked empty"):
        load_siim(root, image_size=8, min_source_size=8)


def test_siim_missing_dicom_and_missing_column(tmp_path):
    root = siim_folder(tmp_path / "s", "img.zz, -1\n")
    with pytest.raises(DataError, match="no DICOM file named 'img.zz'"):
        load_siim(root, image_size=8, min_source_size=8)
    root = siim_folder(tmp_path / "s2", "img.a\n", header="ImageId")
    with pytest.raises(DataError, match=r"lacks column\(s\) EncodedPixels"):
        load_siim(root, image_size=8, min_source_size=8)


# --------------------------------------------------------------------------- folder


def test_folder_of_png_and_dicom(tmp_path):
    from skimage.io import imsave

    root = tmp_path / "f"
    (root / "sub").mkdir(parents=True)
    png = (np.arange(20 * 30).reshape(20, 30) % 256).astype(np.uint8)
    imsave(root / "sub" / "x1.png", png, check_contrast=False)
    dicom(root / "x2.dcm", 20)
    (root / "boxes.csv").write_text("image_id,x,y,width,height,Target,patient_id\nx1,3,2,12,4,1,p\nx2,,,,,0,p\n")
    s = load_folder(root, image_size=10, min_source_size=8)
    assert s.ids == ["x1", "x2"] and s.patient_ids == ["p", "p"] and s.labels.tolist() == [1, 0]
    np.testing.assert_array_equal(s.boxes[0], [[1, 1, 4, 2]])  # x scaled by 10/30, y by 10/20
    assert s.masks[0].sum() == 8 and not s.masks[1].any()
    with pytest.raises(DataError, match=r"box x=3 y=2 width=40"):
        (root / "boxes.csv").write_text("image_id,x,y,width,height,Target\nx1,3,2,40,4,1\n")
        load_folder(root, image_size=10, min_source_size=8)


# --------------------------------------------------------------------------- ids and files the loaders refuse or keep


@pytest.mark.parametrize("spelling", ["NA", "null", "None", "nan", "NaN", "NULL"])
def test_ids_spelled_like_missing_values_are_ids(tmp_path, spelling):
    rsna = rsna_folder(tmp_path / "r", f"{spelling},2,3,10,5,1\nb,,,,,0\n", f"{spelling},Lung Opacity\nb,Normal\n",
                       {spelling: 40, "b": 40})
    assert load_rsna(rsna, image_size=40).ids == [spelling, "b"]
    siim = tmp_path / "s"
    dicom(siim / "d" / f"{spelling}.dcm", 32)
    (siim / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{spelling}, -1\n")
    assert load_siim(siim, image_size=32).ids == [spelling]
    folder = tmp_path / "f"
    dicom(folder / f"{spelling}.dcm", 32)
    (folder / "boxes.csv").write_text(f"image_id,x,y,width,height,Target,patient_id\n{spelling},,,,,0,{spelling}\n")
    s = load_folder(folder, image_size=32)
    assert s.ids == [spelling] and s.patient_ids == [spelling]


def test_an_empty_id_is_still_refused(tmp_path):
    root = rsna_folder(tmp_path / "r", "a,,,,,0\n  ,,,,,0\n", "a,Normal\n", {"a": 40})
    with pytest.raises(DataError, match=r"stage_2_train_labels\.csv' line 3: empty patientId"):
        load_rsna(root, image_size=40, exclude_not_normal=False)


@pytest.mark.parametrize("pid", ["../outside", "sub/../../outside", "/tmp/outside"])
def test_rsna_patient_ids_that_leave_the_folder_are_refused(tmp_path, pid):
    dicom(tmp_path / "outside.dcm", 40)
    root = rsna_folder(tmp_path / "r", f"a,,,,,0\n{pid},,,,,0\n", "", {"a": 40})
    with pytest.raises(DataError, match=rf"line 3: patientId '{pid}' is not a plain file name") as info:
        load_rsna(root, image_size=40, exclude_not_normal=False)
    assert "stage_2_train_labels.csv" in str(info.value)


def test_a_symlink_out_of_the_folder_is_refused_by_every_loader(tmp_path):
    outside = dicom(tmp_path / "elsewhere" / "x.dcm", 40)
    rsna = rsna_folder(tmp_path / "r", "x,,,,,0\n", "", {})
    (rsna / "stage_2_train_images").mkdir()
    (rsna / "stage_2_train_images" / "x.dcm").symlink_to(outside)
    with pytest.raises(DataError, match=r"line 2: the file of patientId 'x', .* resolves to .*elsewhere/x\.dcm', outside"):
        load_rsna(rsna, image_size=40, exclude_not_normal=False)
    siim = tmp_path / "s"
    siim.mkdir()
    (siim / "x.dcm").symlink_to(outside)
    (siim / "train-rle.csv").write_text("ImageId, EncodedPixels\nx, -1\n")
    with pytest.raises(DataError, match=r"train-rle\.csv' line 2: the file of ImageId 'x'.*outside the dataset folder"):
        load_siim(siim, image_size=40)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.dcm").symlink_to(outside)
    (folder / "boxes.csv").write_text("image_id,x,y,width,height,Target\nx,,,,,0\n")
    with pytest.raises(DataError, match=r"boxes\.csv' line 2: the file of image_id 'x'.*outside the dataset folder"):
        load_folder(folder, image_size=40)


def test_siim_and_folder_ids_with_a_path_are_refused(tmp_path):
    siim = tmp_path / "s"
    dicom(siim / "a.dcm", 32)
    (siim / "train-rle.csv").write_text("ImageId, EncodedPixels\na, -1\n../a, -1\n")
    with pytest.raises(DataError, match=r"train-rle\.csv' line 3: ImageId '\.\./a' is not a plain file name"):
        load_siim(siim, image_size=32)
    folder = tmp_path / "f"
    dicom(folder / "a.dcm", 32)
    (folder / "boxes.csv").write_text("image_id,x,y,width,height,Target\n/etc/a,,,,,0\n")
    with pytest.raises(DataError, match=r"boxes\.csv' line 2: image_id '/etc/a' is not a plain file name"):
        load_folder(folder, image_size=32)


def test_source_images_below_the_minimum_size_are_refused(tmp_path):
    from helpers.data._tables import MIN_SOURCE_SIZE

    assert MIN_SOURCE_SIZE == 32
    expected = r"is 1x1 \(columns x rows\) pixels; source images must be at least 32 px on the short side \(MIN_SOURCE_SIZE"
    rsna = rsna_folder(tmp_path / "r", "a,0,0,1,1,1\n", "a,Lung Opacity\n", {"a": 1})
    with pytest.raises(DataError, match=r"a\.dcm' \(patientId 'a'\) " + expected):
        load_rsna(rsna, image_size=32)
    siim = tmp_path / "s"
    dicom(siim / "a.dcm", (1, 1))
    (siim / "train-rle.csv").write_text("ImageId, EncodedPixels\na, 0 1\n")
    with pytest.raises(DataError, match=r"\(ImageId 'a'\) " + expected):
        load_siim(siim, image_size=32)
    folder = tmp_path / "f"
    dicom(folder / "a.dcm", (40, 31))
    (folder / "boxes.csv").write_text("image_id,x,y,width,height,Target\na,,,,,0\n")
    with pytest.raises(DataError, match=r"is 31x40 \(columns x rows\) pixels; .*at least 32 px"):
        load_folder(folder, image_size=32)
    assert load_folder(folder, image_size=32, min_source_size=31).ids == ["a"]
    with pytest.raises(DataError, match="min_source_size must be a positive integer"):
        load_folder(folder, image_size=32, min_source_size=0)
