"""DICOM writing and reading: round trips, LUTs, photometric interpretation, bad files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, UID

from helpers.data import DataError, read_dicom, write_dicom


def ramp(dtype, top, shape=(6, 5)):
    return np.linspace(0, top, num=shape[0] * shape[1]).round().astype(dtype).reshape(shape)


def test_16_bit_round_trip_and_header(tmp_path):
    stored = ramp(np.uint16, 4095)
    path = write_dicom(tmp_path / "a.dcm", stored, patient_id="p1", pixel_spacing=(0.5, 0.25), bits_stored=12)
    out = read_dicom(path)
    assert out.dtype == np.float32 and out.shape == (6, 5)
    np.testing.assert_allclose(out, stored / 4095.0, atol=1e-6)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(ds.pixel_array, stored)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.25]
    assert ds.Modality == "CR" and ds.ViewPosition == "PA"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPClassUID):
        assert UID(uid).is_valid
    assert len({ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID}) == 3
    assert ds.PatientID == "p1"


def test_writing_is_reproducible_and_uids_differ_between_patients(tmp_path):
    stored = ramp(np.uint16, 1000)
    a = write_dicom(tmp_path / "a.dcm", stored, patient_id="p1", pixel_spacing=(1, 1))
    b = write_dicom(tmp_path / "b.dcm", stored, patient_id="p1", pixel_spacing=(1, 1))
    c = write_dicom(tmp_path / "c.dcm", stored, patient_id="p2", pixel_spacing=(1, 1))
    assert a.read_bytes() == b.read_bytes()
    assert pydicom.dcmread(a).SOPInstanceUID != pydicom.dcmread(c).SOPInstanceUID


def test_8_bit_round_trip(tmp_path):
    stored = ramp(np.uint8, 255)
    path = write_dicom(tmp_path / "a.dcm", stored, patient_id="p", pixel_spacing=(1, 1), modality="DX")
    assert pydicom.dcmread(path).BitsAllocated == 8
    np.testing.assert_allclose(read_dicom(path), stored / 255.0, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    stored = ramp(np.uint8, 255)
    path = write_dicom(tmp_path / "m1.dcm", stored, patient_id="p", pixel_spacing=(1, 1), photometric="MONOCHROME1")
    np.testing.assert_allclose(read_dicom(path), 1.0 - stored / 255.0, atol=1e-6)


def test_rescale_then_window_as_in_the_standard(tmp_path):
    stored = ramp(np.uint16, 1200)
    slope, intercept, center, width = 2.0, -100.0, 1000.0, 400.0
    path = write_dicom(
        tmp_path / "w.dcm", stored, patient_id="p", pixel_spacing=(1, 1), bits_stored=12,
        rescale_slope=slope, rescale_intercept=intercept, window_center=center, window_width=width,
    )
    value = stored * slope + intercept  # modality LUT first
    # DICOM PS3.3 C.11.2.1.2.1 linear window, as a fraction of the output range
    expected = np.clip((value - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(read_dicom(path), expected, atol=1e-5)
    assert (read_dicom(path) == 0).any() and (read_dicom(path) == 1).any()


def test_voi_lut_sequence_is_applied(tmp_path):
    stored = ramp(np.uint16, 255)
    path = write_dicom(tmp_path / "lut.dcm", stored, patient_id="p", pixel_spacing=(1, 1), bits_stored=8)
    ds = pydicom.dcmread(path)
    lut = np.round(np.sqrt(np.arange(256) / 255.0) * 4000.0).astype(np.uint16)  # a gamma-like display curve
    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]
    item.LUTData = lut.astype("<u2").tobytes()  # OW in Explicit VR Little Endian
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(path)
    np.testing.assert_allclose(read_dicom(path), lut[stored] / 4000.0, atol=1e-6)


def test_without_window_minmax_spans_the_image(tmp_path):
    stored = (ramp(np.uint16, 100) + 1000).astype(np.uint16)
    path = write_dicom(tmp_path / "a.dcm", stored, patient_id="p", pixel_spacing=(1, 1), bits_stored=12)
    bits = read_dicom(path)
    auto = read_dicom(path, without_window="minmax")
    np.testing.assert_allclose(bits, stored / 4095.0, atol=1e-6)
    assert auto.min() == 0.0 and auto.max() == 1.0


@pytest.mark.parametrize("name, shape", [("CT_small.dcm", (128, 128)), ("MR_small.dcm", (64, 64))])
def test_pydicom_test_files(name, shape):
    path = get_testdata_file(name)
    image = read_dicom(path)
    assert image.shape == shape and image.dtype == np.float32
    assert 0.0 <= image.min() < image.max() <= 1.0


def test_a_dicom_without_pixel_data_is_refused():
    path = get_testdata_file("rtplan.dcm")
    with pytest.raises(DataError, match=r"rtplan\.dcm.*no image"):
        read_dicom(path)


def test_a_non_dicom_file_is_refused(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patientId,x,y\n")
    with pytest.raises(DataError, match=r"notes\.dcm.*not a DICOM file"):
        read_dicom(path)


def test_a_truncated_file_is_refused(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", ramp(np.uint16, 4000, (64, 64)), patient_id="p", pixel_spacing=(1, 1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    with pytest.raises(DataError, match=r"t\.dcm"):
        read_dicom(path)


def test_a_garbled_header_is_refused(tmp_path):
    path = tmp_path / "g.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"g\.dcm"):
        read_dicom(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"missing\.dcm.*does not exist"):
        read_dicom(tmp_path / "missing.dcm")


@pytest.mark.parametrize(
    "image, kwargs, word",
    [
        (np.zeros((4, 4), np.float32), {}, "uint8 or uint16"),
        (np.zeros((2, 4, 4), np.uint8), {}, "2-D"),
        (np.full((4, 4), 5000, np.uint16), {"bits_stored": 12}, "does not fit"),
        (np.zeros((4, 4), np.uint8), {"window_center": 10.0}, "both window_center"),
        (np.zeros((4, 4), np.uint8), {"rescale_slope": 2.0}, "both rescale_slope"),
        (np.zeros((4, 4), np.uint8), {"modality": "CT"}, "modality"),
    ],
)
def test_write_errors(tmp_path, image, kwargs, word):
    with pytest.raises(DataError, match=word):
        write_dicom(tmp_path / "x.dcm", image, patient_id="p", pixel_spacing=(1, 1), **kwargs)
    assert not (tmp_path / "x.dcm").exists()
