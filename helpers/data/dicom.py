"""Reading and writing single-frame grayscale radiographs as DICOM files (pydicom).

:func:`read_dicom` renders the stored pixels the way a radiology viewer does:
modality LUT (``RescaleSlope``/``RescaleIntercept`` or a Modality LUT
Sequence), then the VOI LUT (a VOI LUT Sequence, or ``WindowCenter``/
``WindowWidth``), then MONOCHROME1 inversion, so that the result is ``float32``
in ``[0, 1]`` with bright = dense whatever the file's conventions.

:func:`write_dicom` writes a reproducible CR/DX file: Explicit VR Little
Endian with a proper file meta header, UIDs derived deterministically from the
patient id (``pydicom.uid.generate_uid`` with an entropy source) and no
timestamps, so the same call always writes the same bytes.

References
----------
.. [1] DICOM PS3.3, C.11.1 (Modality LUT), C.11.2 (VOI LUT), C.7.6.3
   (Image Pixel Module; Photometric Interpretation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    generate_uid,
)

from helpers._cache import atomic_write
from helpers.data.errors import DataError

__all__ = ["read_dicom", "read_dicom_with_header", "write_dicom", "SOP_CLASSES"]

#: Storage SOP classes written for each modality.
SOP_CLASSES = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
}


# ---------------------------------------------------------------------------
# reading


def _stored_range(ds: Dataset) -> tuple[float, float]:
    """Smallest and largest stored value the pixel module can represent."""
    bits = int(ds.BitsStored)
    if int(getattr(ds, "PixelRepresentation", 0)) == 0:
        return 0.0, float(2**bits - 1)
    return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)


def read_dicom(path: str | os.PathLike, *, without_window: Literal["bits", "minmax"] = "bits") -> np.ndarray:
    """Read a single-frame grayscale DICOM image as ``float32`` in ``[0, 1]``.

    Parameters
    ----------
    path : str or path-like
        A DICOM Part-10 file (128-byte preamble and ``DICM`` marker).
    without_window : {"bits", "minmax"}, optional
        What ``[0, 1]`` spans when the file has no VOI LUT and no window:
        ``"bits"`` (default) the whole range the stored bits can represent,
        passed through the modality LUT, which keeps exposure differences
        between files; ``"minmax"`` the image's own minimum and maximum (the
        auto-window of a viewer).

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(Rows, Columns)`` in ``[0, 1]``, bright
        = dense (MONOCHROME1 files are inverted).

    Raises
    ------
    DataError
        Naming the file when it is missing, not a DICOM file, has no image
        (no Pixel Data, e.g. an RT Plan), has a colour or multi-frame image,
        or its pixel data cannot be decoded (truncated, or compressed with a
        transfer syntax no installed decoder handles).

    Notes
    -----
    The VOI stage follows ``pydicom.pixels.apply_voi_lut`` (a VOI LUT Sequence
    takes precedence over a window, the first of several windows is used).
    Its output range, which the result spans, is what the stage maps the
    lowest and the highest possible input to: ``[y_min, y_max]`` of the
    window, or the first and last entries of the LUT.
    """
    return read_dicom_with_header(path, without_window=without_window)[0]


def read_dicom_with_header(path: str | os.PathLike, *, without_window: Literal["bits", "minmax"] = "bits") -> tuple[np.ndarray, Dataset]:
    """:func:`read_dicom` that also returns the parsed dataset (for ``PatientID`` and friends)."""
    path = Path(path)
    if without_window not in ("bits", "minmax"):
        raise DataError(f"without_window must be 'bits' or 'minmax', got {without_window!r}")
    if not path.is_file():
        raise DataError(f"DICOM file {str(path)!r} does not exist")
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise DataError(f"{str(path)!r} is not a DICOM file: expected a DICOM Part-10 file with the 'DICM' marker after a 128-byte preamble ({exc})") from exc
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise DataError(f"DICOM file {str(path)!r} is corrupt and cannot be parsed: {type(exc).__name__}: {exc}") from exc
    if "PixelData" not in ds:
        what = getattr(ds, "SOPClassUID", None)
        what = f"{what.name} ({what})" if what is not None else "unknown SOP class"
        raise DataError(f"DICOM file {str(path)!r} holds no image (no Pixel Data element; {what}); expected a radiograph")
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).strip()
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(f"DICOM file {str(path)!r} has a {photometric or 'colour'} image with {getattr(ds, 'SamplesPerPixel', '?')} samples per pixel; expected a grayscale MONOCHROME1/MONOCHROME2 radiograph")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
        raise DataError(f"DICOM file {str(path)!r} has {ds.NumberOfFrames} frames; expected a single-frame radiograph")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # truncated data, missing decoder plugin, bad group 0028 values
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = f"{ts.name} ({ts})" if ts is not None else "unknown transfer syntax"
        raise DataError(f"DICOM file {str(path)!r}: its pixel data cannot be decoded ({ts_name}): {type(exc).__name__}: {exc}") from exc
    if stored.ndim != 2:
        raise DataError(f"DICOM file {str(path)!r} decodes to shape {stored.shape}; expected a 2-D image")

    try:
        values = apply_modality_lut(stored, ds).astype(np.float64)
        has_lut = bool(ds.get("VOILUTSequence"))
        has_window = "WindowCenter" in ds and "WindowWidth" in ds
        has_voi = has_lut or has_window
        if has_lut:
            # A LUT maps integer inputs (pydicom warns on floats); its output range
            # runs from its first to its last entry (inputs below/above the table).
            lut_input = np.rint(values).astype(np.int64)
            shown = np.asarray(apply_voi_lut(lut_input, ds), dtype=np.float64)
            first_map = int(ds.VOILUTSequence[0].LUTDescriptor[1])
            n_entries = int(ds.VOILUTSequence[0].LUTDescriptor[0]) or 65536  # 0 means 2**16 (PS3.3 C.11.2.1.1)
            ends = np.asarray(apply_voi_lut(np.array([first_map - 1, first_map + n_entries], np.int64), ds), dtype=np.float64)
            lo, hi = float(ends.min()), float(ends.max())
        elif has_window:
            shown = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
            # a window maps everything below/above it to its output minimum/maximum
            ends = np.asarray(apply_voi_lut(np.array([-1e12, 1e12]), ds), dtype=np.float64)
            lo, hi = float(ends.min()), float(ends.max())
        else:
            shown = values
            if without_window == "bits":
                ends = apply_modality_lut(np.array(_stored_range(ds)), ds).astype(np.float64)
                lo, hi = float(ends.min()), float(ends.max())
            else:
                lo, hi = float(values.min()), float(values.max())
    except DataError:
        raise
    except Exception as exc:  # invalid LUT descriptors, window width < 1, ...
        raise DataError(f"DICOM file {str(path)!r}: invalid modality/VOI LUT attributes: {type(exc).__name__}: {exc}") from exc
    if not hi > lo:
        if without_window == "minmax" and not has_voi:
            return np.zeros(values.shape, np.float32), ds  # a constant image is all black under auto-window
        raise DataError(f"DICOM file {str(path)!r}: the display range [{lo}, {hi}] is empty; check BitsStored, the LUTs and the window")
    out = np.clip((shown - lo) / (hi - lo), 0.0, 1.0)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32), ds


# ---------------------------------------------------------------------------
# writing


def _uid(kind: str, patient_id: str, instance: str) -> str:
    # Deterministic: the same (kind, patient, instance) always gives the same UID.
    return str(generate_uid(entropy_srcs=["helpers.data.dicom", kind, patient_id, instance]))


def write_dicom(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    patient_id: str,
    pixel_spacing: tuple[float, float],
    modality: Literal["CR", "DX"] = "CR",
    view_position: str = "PA",
    photometric: Literal["MONOCHROME2", "MONOCHROME1"] = "MONOCHROME2",
    bits_stored: int | None = None,
    window_center: float | None = None,
    window_width: float | None = None,
    rescale_slope: float | None = None,
    rescale_intercept: float | None = None,
    instance: str = "1",
    sop_instance_uid: str | None = None,
    description: str = "",
) -> Path:
    """Write a 2-D ``uint8``/``uint16`` image as a reproducible DICOM Part-10 file.

    Parameters
    ----------
    path : str or path-like
        Destination; written atomically (temporary file, then rename).
    image : numpy.ndarray
        ``uint8`` or ``uint16`` array of shape ``(Rows, Columns)``: the stored
        values, written as they are (convert and scale floats first).
    patient_id : str
        PatientID (and PatientName); with ``instance`` it determines the UIDs.
    pixel_spacing : (float, float)
        Row and column spacing in millimetres (PixelSpacing and
        ImagerPixelSpacing).
    modality : {"CR", "DX"}, optional
        Modality and the matching storage SOP class (:data:`SOP_CLASSES`).
    view_position : str, optional
        ViewPosition (``"PA"`` or ``"AP"``).
    photometric : {"MONOCHROME2", "MONOCHROME1"}, optional
        How the stored values are to be displayed; with ``"MONOCHROME1"`` the
        smallest value is white.
    bits_stored : int, optional
        BitsStored; defaults to the dtype's 8 or 16. Every value must fit.
    window_center, window_width : float, optional
        A VOI window (both or neither).
    rescale_slope, rescale_intercept : float, optional
        A modality rescale (both or neither).
    instance : str, optional
        Distinguishes several images of the same patient (enters the UIDs).
    sop_instance_uid : str, optional
        An explicit SOPInstanceUID (e.g. the SIIM ImageId) instead of a derived one.
    description : str, optional
        SeriesDescription.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    DataError
        For an image that is not a 2-D ``uint8``/``uint16`` array, values that
        do not fit ``bits_stored``, a lone window or rescale value, or an
        unknown modality/photometric interpretation.
    """
    arr = np.asarray(image)
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise DataError(f"write_dicom({str(path)!r}): image must be a 2-D uint8 or uint16 array, got {arr.dtype} of shape {arr.shape}")
    if modality not in SOP_CLASSES:
        raise DataError(f"write_dicom({str(path)!r}): modality must be one of {sorted(SOP_CLASSES)}, got {modality!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(f"write_dicom({str(path)!r}): photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    bits_allocated = arr.dtype.itemsize * 8
    bits_stored = bits_allocated if bits_stored is None else int(bits_stored)
    if not (1 <= bits_stored <= bits_allocated):
        raise DataError(f"write_dicom({str(path)!r}): bits_stored must lie in [1, {bits_allocated}] for {arr.dtype}, got {bits_stored}")
    if arr.size and int(arr.max()) >= 2**bits_stored:
        raise DataError(f"write_dicom({str(path)!r}): value {int(arr.max())} does not fit in bits_stored={bits_stored}")
    if (window_center is None) != (window_width is None):
        raise DataError(f"write_dicom({str(path)!r}): give both window_center and window_width, or neither")
    if (rescale_slope is None) != (rescale_intercept is None):
        raise DataError(f"write_dicom({str(path)!r}): give both rescale_slope and rescale_intercept, or neither")
    if len(tuple(pixel_spacing)) != 2 or min(float(v) for v in pixel_spacing) <= 0:
        raise DataError(f"write_dicom({str(path)!r}): pixel_spacing must be two positive millimetre values, got {pixel_spacing!r}")

    patient_id = str(patient_id)
    sop_class = SOP_CLASSES[modality]
    sop_instance = sop_instance_uid or _uid("sop", patient_id, instance)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SALIENCYBOOK"

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = _uid("study", patient_id, instance)
    ds.SeriesInstanceUID = _uid("series", patient_id, instance)
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SeriesDescription = description
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view_position
    ds.PatientOrientation = ["L", "F"] if view_position == "PA" else ["R", "F"]
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds.ImagerPixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    if rescale_slope is not None:
        ds.RescaleSlope = float(rescale_slope)
        ds.RescaleIntercept = float(rescale_intercept)
        ds.RescaleType = "US"
    if window_center is not None:
        ds.WindowCenter = float(window_center)
        ds.WindowWidth = float(window_width)
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()

    path = Path(path)
    atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    return path
