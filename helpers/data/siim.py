"""Loader of the SIIM-ACR Pneumothorax Segmentation challenge (stage 1) layout.

Files (under ``data_dir``)::

    train-rle.csv     ImageId, EncodedPixels   (note the leading space)
    dicom-images-train/<study>/<series>/<ImageId>.dcm   (any depth)

Each row of ``train-rle.csv`` is one region of an image in the stage-1
run-length encoding (:mod:`helpers.data.rle`); ``-1`` marks an image without
pneumothorax. An image with several regions has several rows, and **all of
them** make up its mask. (torchxrayvision's ``SIIM_Pneumothorax_Dataset``
overwrites the mask with each row, so that only the last region survives;
Arun et al. kept the first row for the label.)

References
----------
.. [1] SIIM-ACR Pneumothorax Segmentation, Kaggle, 2019.
.. [2] Arun et al., "Assessing the trustworthiness of saliency maps for
   localizing abnormalities in medical imaging", Radiology: AI, 2021.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers.data._resize import resize_image, resize_mask, tight_box
from helpers.data._tables import (
    Allocator,
    zeros_allocator,
    MIN_SOURCE_SIZE,
    check_image_size,
    check_limit,
    check_min_source_size,
    check_source_size,
    find_files,
    one_file,
    progress_bar,
    read_table,
    stratified_sample,
)
from helpers.data.dicom import read_dicom_with_header
from helpers.data.errors import DataError
from helpers.data.imageset import ImageSet
from helpers.data.rle import EMPTY_RLE, rle_decode

__all__ = ["load_siim"]


def load_siim(
    data_dir: str | os.PathLike,
    *,
    image_size: int,
    rle_csv: str = "train-rle.csv",
    limit: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    progress: bool | None = None,
    min_source_size: int = MIN_SOURCE_SIZE,
    allocate: Allocator | None = None,
) -> ImageSet:
    """Load SIIM-ACR Pneumothorax images with their segmentation masks.

    Parameters
    ----------
    data_dir : str or path-like
        The challenge folder; DICOM files ``<ImageId>.dcm`` are found
        anywhere below it (``dicom-images-train/<study>/<series>/``,
        ``stage_2_train_images/``, ...).
    image_size : int
        Working size.
    rle_csv : str, optional
        The run-length table, relative to ``data_dir``. Its second column may
        be named ``" EncodedPixels"`` (as in the challenge file) or
        ``"EncodedPixels"``.
    limit : int, optional
        Keep only the first ``limit`` images (order of first appearance).
    sample : int, optional
        Keep a seeded, label-stratified (label: a region in the table) subsample of ``sample`` images
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
        ``source="siim"``; ``ids`` are the ImageIds and ``patient_ids`` the
        DICOM ``PatientID`` (the ImageId when the file has none). Every row of
        an image is decoded at the DICOM's ``Rows x Columns`` and resized to
        the working size with the area rule (an output pixel is inside when
        more than half of it is covered; a region smaller than that keeps its
        most covered pixel); the mask is the union of the rows' regions and
        each region contributes its tight box. Duplicated rows count once.

    Raises
    ------
    DataError
        Missing table, column or DICOM file, an ImageId found twice on disk,
        a malformed or out-of-image RLE string (naming the file, line and
        ImageId), an image mixing ``-1`` with regions, an ImageId that is
        not a plain file name or whose file resolves outside ``data_dir``
        (a symlink out), or a source image smaller than ``min_source_size``.
    """
    data_dir = Path(data_dir)
    size = check_image_size(image_size)
    limit = check_limit(limit)
    min_size = check_min_source_size(min_source_size)
    table = data_dir / rle_csv
    df = read_table(table, ["ImageId", "EncodedPixels"], id_column="ImageId", text_columns=("EncodedPixels",))
    rle_text = df["EncodedPixels"].map(lambda v: v.strip() if isinstance(v, str) else v)
    df = df.assign(EncodedPixels=rle_text).drop_duplicates(subset=["ImageId", "EncodedPixels"], keep="first")
    rows: dict[str, list[tuple[int, object]]] = {}
    for image_id, line, rle in zip(df["ImageId"], df["_line"], df["EncodedPixels"]):
        if image_id not in rows and limit is not None and len(rows) >= limit:
            continue
        rows.setdefault(image_id, []).append((int(line), rle))
    if not rows:
        raise DataError(f"{str(table)!r} lists no image to load")
    if sample is not None:
        ids = list(rows)
        positive = [int(any(rle != EMPTY_RLE for _line, rle in rows[i])) for i in ids]
        kept = stratified_sample(ids, positive, sample, seed=sample_seed)
        rows = {i: rows[i] for i in kept}
    index = find_files(data_dir, (".dcm",))

    n = len(rows)
    allocate = allocate or zeros_allocator
    images = allocate("images", (n, size, size), np.float32)
    masks = allocate("masks", (n, size, size), np.bool_)
    labels = np.zeros(n, np.int64)
    boxes: list[np.ndarray] = []
    patient_ids: list[str] = []
    ids = list(rows)
    for i, image_id in enumerate(progress_bar(ids, desc="SIIM", progress=progress)):
        entries = rows[image_id]
        empty = [line for line, rle in entries if rle == EMPTY_RLE]
        if empty and len(empty) != len(entries):
            regions_line = next(line for line, rle in entries if rle != EMPTY_RLE)
            raise DataError(f"{str(table)!r}: ImageId {image_id!r} is marked empty ('-1') on line {empty[0]} but has a region on line {regions_line}")
        path = one_file(index, image_id, root=data_dir, table=table, what="DICOM file", line=entries[0][0],
                        id_column="ImageId")
        image, ds = read_dicom_with_header(path)
        check_source_size(image, minimum=min_size, image_file=path, image_id=image_id, id_column="ImageId")
        h, w = image.shape
        images[i] = resize_image(image, size)
        region_boxes = []
        for line, rle in entries:
            if rle == EMPTY_RLE:
                continue
            region = rle_decode(rle, height=h, width=w, name=f"{str(table)!r} line {line} (ImageId {image_id!r}, image {h}x{w})")
            if not region.any():  # pragma: no cover - rle_decode never returns an empty region for a run
                raise DataError(f"{str(table)!r} line {line}: empty region for ImageId {image_id!r}")
            small = resize_mask(region, size)
            masks[i] |= small
            region_boxes.append(tight_box(small))
        boxes.append(np.stack(region_boxes) if region_boxes else np.zeros((0, 4), np.float64))
        labels[i] = int(bool(region_boxes))
        patient = str(getattr(ds, "PatientID", "") or "").strip()
        patient_ids.append(patient or image_id)
    return ImageSet(images=images, labels=labels, masks=masks, boxes=boxes, ids=ids, patient_ids=patient_ids, source="siim")
