"""Model zoo, training and the trained-weights cache of the book.

Public API
----------
:data:`ARCHITECTURES`, :func:`build`
    Single-channel classifiers (a small CNN and torchvision's ResNet18/50,
    DenseNet121, InceptionV3) that take ``[0, 1]`` images and whose every ReLU
    is an ``nn.ReLU`` module (:mod:`helpers.models.zoo`, :mod:`helpers.models.relu`).
:func:`gradcam_layer`
    The last convolutional block, which GradCAM explains.
:func:`fit`, :func:`predict_proba`, :func:`roc_auc_ci`
    Seeded training with early stopping on validation ROC AUC, prediction and
    bootstrap confidence intervals (:mod:`helpers.models.training`).
:func:`get_trained`
    Train once, then load from ``<cache_dir>/models`` (:mod:`helpers.models.cache`),
    weights checked against their SHA-256; ``label_mode="permuted"`` fits
    permuted labels (Adebayo et al.'s data randomization test).
:func:`label_randomization_ready`
    Whether a permuted-label model learned its labels well enough to judge
    the label-randomization test, and the sentence that says so.
:func:`load_model`, :class:`InputContract`, :class:`ExternalModel`
    A user's own classifier (zoo architecture + weights, TorchScript, or
    ``package.module:function``) in the book's ``[0, 1]`` one-channel
    convention (:mod:`helpers.models.external`).
:class:`ModelError`
    Bad input (a ``ValueError``).
"""

from __future__ import annotations

from helpers.models._errors import CacheCorruptError, CacheWarning, ModelError
from helpers.models.cache import (
    LABEL_MODES,
    MODEL_CODE_VERSION,
    cache_key,
    get_trained,
    label_randomization_ready,
    permuted_subset,
    training_seed,
)
from helpers.models.external import ExternalModel, InputContract, contract_from_settings, load_model
from helpers.models.relu import assert_relu_modules, count_relu_calls, gradcam_layer
from helpers.models.training import (
    AUCInterval,
    Augmentation,
    TrainingResult,
    balanced_class_weights,
    classification_loss,
    fit,
    predict_proba,
    roc_auc_ci,
)
from helpers.models.zoo import ARCHITECTURES, MIN_IMAGE_SIZE, build, load_pretrained

__all__ = [
    "ARCHITECTURES",
    "MIN_IMAGE_SIZE",
    "build",
    "load_pretrained",
    "gradcam_layer",
    "assert_relu_modules",
    "count_relu_calls",
    "fit",
    "predict_proba",
    "roc_auc_ci",
    "classification_loss",
    "balanced_class_weights",
    "Augmentation",
    "TrainingResult",
    "AUCInterval",
    "get_trained",
    "cache_key",
    "training_seed",
    "label_randomization_ready",
    "permuted_subset",
    "LABEL_MODES",
    "MODEL_CODE_VERSION",
    "ModelError",
    "ExternalModel",
    "InputContract",
    "contract_from_settings",
    "load_model",
    "CacheCorruptError",
    "CacheWarning",
]
