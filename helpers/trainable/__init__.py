"""Trainable saliency: a classifier head whose evidence map is the explanation.

Public API
----------
:func:`build_self_explaining`, :class:`SelfExplainingClassifier`
    Any backbone of the zoo cut at its GradCAM layer + a 1x1-conv evidence
    head whose per-class maps are aggregated (LSE by default) into the logits
    (:mod:`helpers.trainable.model`, :mod:`helpers.trainable.head`).
:func:`trainable_loss`, :func:`box_subset`
    Cross-entropy + optional box supervision of the abnormal evidence map on a
    seeded share of the positive training images
    (:mod:`helpers.trainable.supervision`).
:func:`get_trained_self_explaining`
    Train once with :func:`helpers.models.fit`, then load from the cache
    (:mod:`helpers.trainable.training`).
Saliency method ``"TRAINABLE"``
    Registered in :mod:`helpers.saliency.registry` by
    :func:`helpers.trainable.method.register_method` (a :data:`helpers.saliency.PLUGINS` entry).

The design is our reading of Aggarwal et al. (ML4H 2020, arXiv:2011.07482),
whose element could not be retrieved; see the module docstrings for what it
rests on.
"""

from __future__ import annotations

from helpers.trainable.head import DEFAULT_POOLING, DEFAULT_SHARPNESS, POOLINGS, EvidenceHead, TrainableConfigError, aggregate
from helpers.trainable.model import HEAD_SUFFIX, SelfExplainingClassifier, build_self_explaining, truncate_at
from helpers.trainable.supervision import DEFAULT_BOX_WEIGHT, POSITIVE_CLASS, box_subset, box_term, trainable_loss
from helpers.trainable.method import NotSelfExplainingError, trainable_saliency
from helpers.trainable.training import get_trained_self_explaining

__all__ = [
    "POOLINGS",
    "DEFAULT_POOLING",
    "DEFAULT_SHARPNESS",
    "DEFAULT_BOX_WEIGHT",
    "POSITIVE_CLASS",
    "HEAD_SUFFIX",
    "TrainableConfigError",
    "NotSelfExplainingError",
    "EvidenceHead",
    "aggregate",
    "SelfExplainingClassifier",
    "build_self_explaining",
    "truncate_at",
    "trainable_loss",
    "box_term",
    "box_subset",
    "trainable_saliency",
    "get_trained_self_explaining",
]
