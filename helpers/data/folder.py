"""Loader of a plain folder of PNG, JPEG, TIFF or DICOM radiographs with a box table.

Layout (under ``data_dir``, images at any depth)::

    boxes.csv          image_id,x,y,width,height,Target[,patient_id]
    <image_id>.png     or .jpg/.jpeg, .tif/.tiff, .dcm

``boxes.csv`` follows the RSNA convention: one row per box in the image's own
pixel coordinates (``x`` = column of the left edge, ``y`` = row of the top
edge); a ``Target`` 0 row has an empty box; a ``Target`` 1 row with an empty
box gives an image-level label without a region. ``image_id`` is the file
name without its extension. The optional ``patient_id`` column groups images
of one patient for patient-level splits (default: one patient per image).
Files not listed in ``boxes.csv`` are not part of the dataset.

PNG, JPEG and TIFF files may be 8- or 16-bit grayscale (divided by 255 or
65535), floating-point TIFF already in ``[0, 1]``, grayscale with alpha, or
RGB(A) (converted with ``skimage.color.rgb2gray`` unless the three channels
are equal); bright must mean dense (CheXpert, MIMIC-CXR-JPG and the Kermany
pneumonia set are 8-bit JPEG). DICOM files are read with
:func:`helpers.data.dicom.read_dicom`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers.data._resize import boxes_mask, resize_image, scale_boxes
from helpers.data._tables import (
    Allocator,
    zeros_allocator,
    MIN_SOURCE_SIZE,
    check_boxes_inside,
    check_image_size,
    check_limit,
    check_min_source_size,
    check_source_size,
    find_files,
    one_file,
    parse_boxes,
    progress_bar,
    read_table,
    stratified_sample,
)
from helpers.data.dicom import read_dicom
from helpers.data.errors import DataError
from helpers.data.imageset import ImageSet

__all__ = ["load_folder", "read_image", "read_png", "FOLDER_COLUMNS", "IMAGE_SUFFIXES"]

FOLDER_COLUMNS = ["image_id", "x", "y", "width", "height", "Target"]

#: File suffixes the folder loader reads (case-insensitive); ``.dcm`` goes to :func:`helpers.data.dicom.read_dicom`.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a grayscale (or RGB) PNG, JPEG or TIFF as ``float32`` in ``[0, 1]``.

    Raises
    ------
    DataError
        When the file cannot be decoded or has an unsupported layout.
    """
    from skimage.color import rgb2gray
    from skimage.io import imread

    path = Path(path)
    try:
        raw = imread(path)
    except Exception as exc:  # imageio raises various types on a bad file
        raise DataError(f"cannot read image {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    raw = np.asarray(raw)
    if raw.dtype == np.uint8:
        img = raw / 255.0
    elif raw.dtype == np.uint16:
        img = raw / 65535.0
    elif raw.dtype == np.bool_:
        img = raw.astype(np.float64)
    elif raw.dtype in (np.float32, np.float64):
        img = raw.astype(np.float64)
        if not (np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0):
            raise DataError(f"image {str(path)!r} holds floating-point pixels outside [0, 1] (range "
                            f"{np.nanmin(img):g}..{np.nanmax(img):g}); save it as 8/16-bit or scaled to [0, 1]")
    else:
        raise DataError(f"image {str(path)!r} has pixel type {raw.dtype}; expected 8- or 16-bit pixels "
                        "(or a floating-point TIFF in [0, 1])")
    if img.ndim == 3 and img.shape[2] in (2, 4):  # drop alpha
        img = img[..., :-1]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 3:
        same = np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])
        img = img[..., 0] if same else rgb2gray(img)
    if img.ndim != 2:
        raise DataError(f"image {str(path)!r} has shape {raw.shape}; expected a grayscale or RGB image")
    return img.astype(np.float32)


#: The former name of :func:`read_image` (it reads JPEG and TIFF as well).
read_png = read_image


def load_folder(
    data_dir: str | os.PathLike,
    *,
    image_size: int,
    boxes_csv: str = "boxes.csv",
    limit: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    progress: bool | None = None,
    min_source_size: int = MIN_SOURCE_SIZE,
    allocate: Allocator | None = None,
) -> ImageSet:
    """Load a folder of PNG/JPEG/TIFF/DICOM radiographs described by ``boxes.csv``.

    Parameters
    ----------
    data_dir : str or path-like
        The folder (images may sit in subfolders).
    image_size : int
        Working size.
    boxes_csv : str, optional
        The table, relative to ``data_dir`` (columns :data:`FOLDER_COLUMNS`
        and optionally ``patient_id``).
    limit : int, optional
        Keep only the first ``limit`` images (order of first appearance).
    sample : int, optional
        Keep a seeded, label-stratified subsample of ``sample`` images
        (:func:`helpers.data._tables.stratified_sample`, after ``limit``);
        only those images are decoded. ``None``: every image.
    sample_seed : int, optional
        Seed of that subsample.
    progress : bool or None, optional
        tqdm progress bar (``None``: only on a terminal).
    min_source_size : int, optional
        Smallest short side, in pixels, of a source image
        (:data:`helpers.data._tables.MIN_SOURCE_SIZE`, 32); a smaller image is refused.
    allocate : callable, optional
        ``allocate(name, shape, dtype)`` returns the zero-filled ``"images"``
        and ``"masks"`` arrays the images are decoded into (default
        ``numpy.zeros``); :func:`helpers.data.load` passes memory maps on
        files, so a large dataset is decoded straight to disk.

    Returns
    -------
    ImageSet
        ``source="folder"``; masks are the union of the boxes (pixel centres
        inside), boxes scaled from each image's own size.

    Raises
    ------
    DataError
        Missing table, column or image, an image id matching several files,
        malformed rows, a box outside its image, inconsistent patient ids, an
        image_id that is not a plain file name or whose file resolves outside
        ``data_dir`` (a symlink out), or a source image smaller than
        ``min_source_size``.
    """
    data_dir = Path(data_dir)
    size = check_image_size(image_size)
    limit = check_limit(limit)
    min_size = check_min_source_size(min_source_size)
    table = data_dir / boxes_csv
    df = read_table(table, FOLDER_COLUMNS, id_column="image_id", text_columns=("patient_id",))
    patients: dict[str, str] = {}
    if "patient_id" in df.columns:
        for image_id, patient, line in zip(df["image_id"], df["patient_id"], df["_line"]):
            patient = "" if not isinstance(patient, str) and (patient is None or np.isnan(patient)) else str(patient).strip()
            if not patient:
                raise DataError(f"{str(table)!r} line {line}: empty patient_id for image {image_id!r}")
            if patients.setdefault(image_id, patient) != patient:
                raise DataError(f"{str(table)!r} line {line}: image {image_id!r} has patient_id {patient!r} but {patients[image_id]!r} on an earlier line")
    annotations = parse_boxes(df, table, id_column="image_id", limit=limit)
    if not annotations:
        raise DataError(f"{str(table)!r} lists no image to load")
    if sample is not None:
        ids = list(annotations)
        kept = stratified_sample(ids, [annotations[i].label for i in ids], sample, seed=sample_seed)
        annotations = {i: annotations[i] for i in kept}
    index = find_files(data_dir, IMAGE_SUFFIXES)

    n = len(annotations)
    allocate = allocate or zeros_allocator
    images = allocate("images", (n, size, size), np.float32)
    masks = allocate("masks", (n, size, size), np.bool_)
    labels = np.zeros(n, np.int64)
    boxes: list[np.ndarray] = []
    ids = list(annotations)
    for i, image_id in enumerate(progress_bar(ids, desc="folder", progress=progress)):
        ann = annotations[image_id]
        path = one_file(index, image_id, root=data_dir, table=table, what="PNG, JPEG, TIFF or DICOM image", line=ann.first_line,
                        id_column="image_id")
        image = read_dicom(path) if path.suffix.lower() == ".dcm" else read_image(path)
        check_source_size(image, minimum=min_size, image_file=path, image_id=image_id, id_column="image_id")
        h, w = image.shape
        check_boxes_inside(ann, height=h, width=w, path=table, image_id=image_id, image_file=path, id_column="image_id")
        images[i] = resize_image(image, size)
        b = scale_boxes(ann.boxes, from_height=h, from_width=w, size=size)
        boxes.append(b)
        masks[i] = boxes_mask(b, size)
        labels[i] = ann.label
    patient_ids = [patients.get(i, i) for i in ids]
    return ImageSet(images=images, labels=labels, masks=masks, boxes=boxes, ids=ids, patient_ids=patient_ids, source="folder")
