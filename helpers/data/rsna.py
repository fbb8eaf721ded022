"""Loader of the RSNA Pneumonia Detection Challenge (Kaggle, stage 2) layout.

Files (under ``data_dir``)::

    stage_2_train_labels.csv          patientId,x,y,width,height,Target
    stage_2_detailed_class_info.csv   patientId,class
    stage_2_train_images/<patientId>.dcm

``stage_2_train_labels.csv`` has one row per box; a ``Target`` 0 row has an
empty box. Box coordinates are pixels of the DICOM image (1024 x 1024 in the
challenge). Following Arun et al., patients of class "No Lung Opacity / Not
Normal" are left out by default, so that label 1 means "Lung Opacity" and
label 0 means "Normal".

References
----------
.. [1] Shih et al., "Augmenting the National Institutes of Health chest
   radiograph dataset with expert annotations of possible pneumonia",
   Radiology: AI, 2019.
.. [2] Arun et al., "Assessing the trustworthiness of saliency maps for
   localizing abnormalities in medical imaging", Radiology: AI, 2021
   (``pneumonia_splits.csv``: Normal + Lung Opacity only).
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
    image_path,
    parse_boxes,
    progress_bar,
    read_table,
    stratified_sample,
)
from helpers.data.dicom import read_dicom
from helpers.data.errors import DataError
from helpers.data.imageset import ImageSet

__all__ = ["load_rsna", "RSNA_CLASSES"]

LABEL_COLUMNS = ["patientId", "x", "y", "width", "height", "Target"]
#: The values of ``stage_2_detailed_class_info.csv`` and the Target each implies.
RSNA_CLASSES = {"Normal": 0, "Lung Opacity": 1, "No Lung Opacity / Not Normal": 0}
NOT_NORMAL = "No Lung Opacity / Not Normal"


def load_rsna(
    data_dir: str | os.PathLike,
    *,
    image_size: int,
    labels_csv: str = "stage_2_train_labels.csv",
    images_dir: str = "stage_2_train_images",
    classes_csv: str = "stage_2_detailed_class_info.csv",
    exclude_not_normal: bool = True,
    limit: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    progress: bool | None = None,
    min_source_size: int = MIN_SOURCE_SIZE,
    allocate: Allocator | None = None,
) -> ImageSet:
    """Load RSNA Pneumonia images with their box annotations.

    Parameters
    ----------
    data_dir : str or path-like
        The challenge folder.
    image_size : int
        Working size; images are resized to ``image_size x image_size``.
    labels_csv, images_dir, classes_csv : str, optional
        Names (relative to ``data_dir``) of the label table, the DICOM folder
        and the class table.
    exclude_not_normal : bool, optional
        Leave out class "No Lung Opacity / Not Normal" (as Arun et al.); needs
        ``classes_csv``, which is then also checked against ``Target``.
    limit : int, optional
        Keep only the first ``limit`` images (in order of first appearance in
        ``labels_csv``, after the exclusion).
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
        ``source="rsna"``; ``ids`` and ``patient_ids`` are the ``patientId``.
        The mask of an image is the union of its boxes (pixels whose centre
        lies in a box), boxes being scaled from the DICOM's own ``Rows x
        Columns`` to the working size; duplicated rows count once.

    Raises
    ------
    DataError
        Missing files or columns, malformed rows, a ``Target`` contradicting
        the class table, a box outside its image (naming the file, line and
        patient), a ``patientId`` that is not a plain file name or whose file
        resolves outside ``images_dir`` (``../x``, an absolute path, a
        symlink out), a source image smaller than ``min_source_size``, or no
        image left.
    """
    data_dir = Path(data_dir)
    size = check_image_size(image_size)
    limit = check_limit(limit)
    min_size = check_min_source_size(min_source_size)
    labels_path = data_dir / labels_csv
    df = read_table(labels_path, LABEL_COLUMNS, id_column="patientId")
    if exclude_not_normal:
        classes_path = data_dir / classes_csv
        if not classes_path.is_file():
            raise DataError(
                f"{str(classes_path)!r} does not exist; it is needed to leave out class {NOT_NORMAL!r} "
                f"(pass exclude_not_normal=False to keep every patient of {str(labels_path)!r})"
            )
        classes = read_table(classes_path, ["patientId", "class"], id_column="patientId")
        unknown = sorted(set(classes["class"].astype(str)) - set(RSNA_CLASSES))
        if unknown:
            raise DataError(f"{str(classes_path)!r}: unknown class(es) {unknown}; expected {sorted(RSNA_CLASSES)}")
        per_patient = classes.drop_duplicates(subset=["patientId", "class"]).groupby("patientId")["class"].agg(list)
        conflicting = per_patient[per_patient.map(len) > 1]
        if len(conflicting):
            raise DataError(f"{str(classes_path)!r}: patient {conflicting.index[0]!r} has several classes {conflicting.iloc[0]}")
        cls = per_patient.map(lambda v: v[0])
        missing = sorted(set(df["patientId"]) - set(cls.index))
        if missing:
            raise DataError(f"{str(classes_path)!r} has no class for patient {missing[0]!r} of {str(labels_path)!r} ({len(missing)} patients missing)")
        row_class = df["patientId"].map(cls)
        implied = row_class.map(RSNA_CLASSES)
        target = df["Target"]
        bad = (implied != target) & target.isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{str(labels_path)!r} line {int(df['_line'].iloc[row])}: patient {df['patientId'].iloc[row]!r} has Target "
                f"{df['Target'].iloc[row]} but class {row_class.iloc[row]!r} in {str(classes_path)!r}"
            )
        df = df[row_class != NOT_NORMAL]
    annotations = parse_boxes(df, labels_path, id_column="patientId", limit=limit)
    if not annotations:
        raise DataError(f"{str(labels_path)!r} lists no image to load")
    if sample is not None:
        ids = list(annotations)
        kept = stratified_sample(ids, [annotations[i].label for i in ids], sample, seed=sample_seed)
        annotations = {i: annotations[i] for i in kept}

    n = len(annotations)
    allocate = allocate or zeros_allocator
    images = allocate("images", (n, size, size), np.float32)
    masks = allocate("masks", (n, size, size), np.bool_)
    labels = np.zeros(n, np.int64)
    boxes: list[np.ndarray] = []
    ids = list(annotations)
    for i, pid in enumerate(progress_bar(ids, desc="RSNA", progress=progress)):
        ann = annotations[pid]
        image_file = image_path(data_dir / images_dir, pid, ".dcm", root=data_dir / images_dir, table=labels_path,
                                line=ann.first_line, id_column="patientId")
        if not image_file.is_file():
            raise DataError(f"image {str(image_file)!r} of patient {pid!r} (line {ann.first_line} of {str(labels_path)!r}) does not exist")
        image = read_dicom(image_file)
        check_source_size(image, minimum=min_size, image_file=image_file, image_id=pid, id_column="patientId")
        h, w = image.shape
        check_boxes_inside(ann, height=h, width=w, path=labels_path, image_id=pid, image_file=image_file, id_column="patientId")
        images[i] = resize_image(image, size)
        b = scale_boxes(ann.boxes, from_height=h, from_width=w, size=size)
        boxes.append(b)
        masks[i] = boxes_mask(b, size)
        labels[i] = ann.label
    return ImageSet(images=images, labels=labels, masks=masks, boxes=boxes, ids=ids, patient_ids=list(ids), source="rsna")
