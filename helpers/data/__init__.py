"""Chest radiographs for the book: a synthetic generator, DICOM/RLE codecs,
loaders of the RSNA, SIIM and folder layouts, and patient-level splits.

Every loader returns an :class:`ImageSet` (the data contract of
``CONTRIBUTING.md``): ``float32`` images in ``[0, 1]`` at the working size,
``int64`` labels, ``bool`` ground-truth masks and boxes. :func:`load` picks
the loader from a run's :class:`helpers.config.Settings`; the synthetic
dataset is written once as DICOM files plus RSNA and SIIM tables (:func:`synth`,
also ``python -m helpers.data synth``) and read back through the real loaders.
Bad input raises :class:`DataError` (a ``ValueError``).
"""

from __future__ import annotations

from helpers.data.dicom import read_dicom, write_dicom
from helpers.data.errors import DataError
from helpers.data.folder import load_folder
from helpers.data.imageset import ImageSet
from helpers.data.loaders import load, load_eval, load_synthetic, synthetic_dir
from helpers.data.rle import rle_decode, rle_encode
from helpers.data.rsna import load_rsna
from helpers.data.siim import load_siim
from helpers.data.splits import split
from helpers.data.synthetic import GENERATOR_VERSION, SyntheticSample, generate
from helpers.data.writer import synth

__all__ = [
    "DataError",
    "GENERATOR_VERSION",
    "ImageSet",
    "SyntheticSample",
    "generate",
    "load",
    "load_eval",
    "load_folder",
    "load_rsna",
    "load_siim",
    "load_synthetic",
    "read_dicom",
    "rle_decode",
    "rle_encode",
    "split",
    "synth",
    "synthetic_dir",
    "write_dicom",
]
