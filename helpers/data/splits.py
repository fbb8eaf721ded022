"""Patient-level, stratified, deterministic train/validation/test splits.

All images of a patient go to the same split, so that a model is never tested
on a patient it was trained on (the RSNA and SIIM challenges have several
images of some patients). Patients are stratified by label (a patient is
positive when any of its images is) so that every split has about the same
share of positives.

Written by hand rather than with scikit-learn: ``GroupShuffleSplit`` does not
stratify, and ``StratifiedGroupKFold`` gives folds of equal size, not the
``(0.7, 0.15, 0.15)`` fractions of a three-way split.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from helpers.data.errors import DataError

__all__ = ["split", "SPLITS"]

#: Names of the splits, in the order of ``fractions``.
SPLITS = ("train", "val", "test")


def _check_fractions(fractions) -> np.ndarray:
    try:
        f = np.asarray([float(v) for v in fractions], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"fractions must be three numbers (train, val, test), got {fractions!r}") from None
    if f.shape != (3,) or not np.isfinite(f).all() or (f < 0).any() or not np.isclose(f.sum(), 1.0, atol=1e-9):
        raise DataError(f"fractions must be three non-negative numbers (train, val, test) summing to 1, got {fractions!r}")
    return f


def _allocate(n: int, fractions: np.ndarray) -> np.ndarray:
    """Split ``n`` items into counts proportional to ``fractions`` (largest remainder).

    Ties between equal remainders go to the earlier split (train, then val).
    """
    exact = n * fractions
    counts = np.floor(exact).astype(np.int64)
    left = n - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:left]] += 1
    return counts


def split(
    image_set,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int,
    stratify: bool = True,
) -> dict[str, np.ndarray]:
    """Split an image set into train, validation and test indices by patient.

    Parameters
    ----------
    image_set : helpers.data.ImageSet
        Anything with ``labels`` (``(N,)`` ints) and ``patient_ids`` (``N`` str).
    fractions : (float, float, float), optional
        Shares of the **patients** (per stratum) in train, val and test;
        non-negative, summing to 1. Counts are rounded by the largest
        remainder method, so a stratum of ``m`` patients contributes exactly
        ``m`` patients.
    seed : int
        Seed of the shuffle. The result depends only on ``seed``, the
        fractions and the set of ``(patient, label)`` pairs, not on the order
        of the images.
    stratify : bool, optional
        Shuffle positive and negative patients separately (a patient is
        positive when any of its images is) so that each split keeps the
        overall share of positives up to rounding.

    Returns
    -------
    dict
        ``{"train": idx, "val": idx, "test": idx}``: sorted ``int64`` arrays of
        positions in ``image_set``, disjoint, together covering every image.

    Raises
    ------
    DataError
        For bad fractions or seed, or labels and patient ids of different
        lengths.

    Examples
    --------
    >>> from helpers.data import generate
    >>> s = split(generate(40, size=64, seed=0).to_imageset(), seed=0)
    >>> sorted(s), sum(len(v) for v in s.values())
    (['test', 'train', 'val'], 40)
    """
    f = _check_fractions(fractions)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    labels = np.asarray(image_set.labels).astype(np.int64)
    patients = [str(p) for p in image_set.patient_ids]
    if labels.ndim != 1 or len(patients) != labels.size:
        raise DataError(f"split() needs one patient id per label; got {len(patients)} patient ids and labels of shape {labels.shape}")

    # patient -> its images and its label (positive when any image is)
    unique, inverse = np.unique(np.asarray(patients, dtype=object).astype(str), return_inverse=True)
    patient_label = np.zeros(unique.size, np.int64)
    np.maximum.at(patient_label, inverse, labels)
    strata = np.unique(patient_label) if stratify else np.array([0])

    assignment = np.empty(unique.size, np.int64)  # split number of each patient
    for stratum in strata:
        members = np.flatnonzero(patient_label == stratum) if stratify else np.arange(unique.size)
        # one independent stream per stratum: adding negatives does not move positives
        rng = np.random.default_rng([int(seed), int(stratum) if stratify else 2])
        members = members[rng.permutation(members.size)]
        counts = _allocate(members.size, f)
        assignment[members] = np.repeat(np.arange(3), counts)
    image_split = assignment[inverse]
    return {name: np.flatnonzero(image_split == j).astype(np.int64) for j, name in enumerate(SPLITS)}
