"""Train a self-explaining model once, then read it from the cache.

The model is trained by :func:`helpers.models.fit` (the book's one training
loop: Adam, augmentation, early stopping on validation ROC AUC) with
:func:`~helpers.trainable.supervision.trainable_loss`; the images that get a
box are :func:`~helpers.trainable.supervision.box_subset` of the positive
training images. Weights and a JSON record are stored under
``<cache_dir>/trainable/`` with a key that hashes everything that determines
the weights; the record holds the weights' SHA-256, checked on load, and a
corrupt entry follows the book's one policy (:mod:`helpers._cache`: set aside
and retrained with a warning naming it, or ``on_corrupt="raise"``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from helpers import models
from helpers._cache import entry_lock, stable_hash
from helpers._profile import record as record_profile
from helpers._weights import load_checked_entry, write_entry
from helpers.device import resolve_device
from helpers.models.training import balanced_class_weights, fit
from helpers.trainable.head import DEFAULT_POOLING, DEFAULT_SHARPNESS, TrainableConfigError
from helpers.trainable.model import SelfExplainingClassifier, build_self_explaining
from helpers.trainable.supervision import DEFAULT_BOX_WEIGHT, box_subset, supervision_seed, trainable_loss

__all__ = ["TRAINABLE_VERSION", "get_trained_self_explaining", "training_seed"]

#: Bump when the head, the loss, the training or the record changes: old caches are then ignored.
#: 2: records hold the weights' SHA-256 (and the zoo's backbones are initialized by INITIALIZERS).
#: 3: the box-free model may start from the trained classifier (trainable_init); init_from is a dict.
TRAINABLE_VERSION = 3


def training_seed(seed: int, replicate: int) -> int:
    """Seed of the initialization and of the training of one replicate."""
    return int(stable_hash({"seed": int(seed), "replicate": int(replicate), "role": "self-explaining"}, length=8), 16)


def _indices(values) -> list[int]:
    return [int(i) for i in np.asarray(values).ravel()]


def _init_from(base: Mapping[str, Any] | None, classifier: Mapping[str, Any] | None) -> dict[str, str] | None:
    """What a fine-tuned model starts from: the box-free model, the classifier, or nothing (scratch)."""
    if base is not None:
        return {"kind": "self_explaining", "key": str(base["key"])}
    if classifier is not None:
        return {"kind": "classifier", "key": str(classifier["key"]), "weights_sha256": str(classifier.get("weights_sha256", ""))}
    return None


def get_trained_self_explaining(
    settings,
    data,
    splits: Mapping[str, Any],
    *,
    architecture: str,
    box_fraction: float = 0.0,
    replicate: int = 0,
    pooling: str = DEFAULT_POOLING,
    r: float = DEFAULT_SHARPNESS,
    box_weight: float = DEFAULT_BOX_WEIGHT,
    progress: bool = False,
    on_corrupt: str = "recompute",
) -> tuple[SelfExplainingClassifier, dict[str, Any]]:
    """A trained self-explaining classifier for ``settings``, from the cache when possible.

    Parameters
    ----------
    settings : helpers.config.Settings
        Uses ``seed``, ``epochs``, ``batch_size``, ``learning_rate``,
        ``patience``, ``pretrained``, ``device``, ``cache_dir``.
    data : helpers.data.ImageSet
        The whole dataset.
    splits : dict
        ``{"train", "val", ...}`` index arrays into ``data``.
    architecture : str
        Backbone (any of :data:`helpers.models.ARCHITECTURES`).
    box_fraction : float, optional
        Share of the *positive* training images whose region supervises the
        abnormal evidence map: ``round(box_fraction * n_positive_train)``
        images (halves up), a seeded subset nested across fractions
        (:func:`box_subset`). 0 means image labels only: no mask is read.
        Above 0, with ``settings.trainable_finetune_epochs > 0``, the model
        is the ``box_fraction=0`` model of the same backbone and replicate,
        fine-tuned with the boxes for that many epochs (its key is part of
        this model's key, and the record names it in ``init_from``).
        At 0, with ``settings.trainable_init == "classifier"``, the backbone
        starts from the trained true-label classifier of the same
        architecture and replicate (:func:`helpers.models.get_trained`) and
        the model trains for ``trainable_finetune_epochs`` epochs; with
        ``"scratch"`` from its own initialization for ``epochs``.
    replicate : int, optional
        Independent runs: the replicate changes the initialization, the
        training order and the boxed subset.
    pooling, r, box_weight
        See :class:`~helpers.trainable.SelfExplainingClassifier` and
        :func:`~helpers.trainable.trainable_loss`.
    progress : bool, optional
        Print one line per epoch.
    on_corrupt : {"recompute", "raise"}, optional
        A cached entry whose record cannot be read or whose weights fail their
        SHA-256 check: set aside (``*.corrupt``) and retrained with a
        :class:`~helpers._cache.CorruptCacheWarning` naming it (default), or
        :class:`TrainableConfigError` naming the file and the fix.

    Returns
    -------
    (model, record) : tuple
        The model (eval mode, on the settings' device) and a JSON-able record:
        ``key``, ``architecture``, ``backbone``, ``pooling``, ``r``,
        ``box_fraction``, ``box_weight``, ``replicate``, ``seed``,
        ``box_indices`` (dataset indices of the boxed images), ``n_boxes``,
        ``n_positive_train``, ``training`` (:class:`helpers.models.training.TrainingResult`
        as a dict), ``weights_sha256`` and ``cached`` (whether it was read
        from the cache).

    Raises
    ------
    TrainableConfigError
        Bad fraction or pooling, or (``on_corrupt="raise"``) a corrupt cache
        entry (named, with the fix).
    """
    box_fraction = float(box_fraction)
    train_idx = np.asarray(splits["train"], dtype=np.int64)
    val_idx = np.asarray(splits["val"], dtype=np.int64)
    boxed = box_subset(data.labels, train_idx, box_fraction, seed=supervision_seed(settings.seed, replicate))
    seed = training_seed(settings.seed, replicate)
    finetune = int(getattr(settings, "trainable_finetune_epochs", 0))
    base = None
    if box_fraction > 0 and finetune > 0:
        # The label-efficiency models start from the image-label-only model of the same backbone and
        # replicate and are fine-tuned with their boxes: the curve then shows what the boxes add to the
        # same model, and the book trains one model from scratch instead of one per box fraction.
        base_model, base = get_trained_self_explaining(
            settings, data, splits, architecture=architecture, box_fraction=0.0, replicate=replicate,
            pooling=pooling, r=r, box_weight=box_weight, progress=progress, on_corrupt=on_corrupt)
    init = settings.trainable_init
    classifier_record = None
    if base is None and init == "classifier":
        # The image-label-only model starts its backbone from the trained classifier of the same
        # architecture and replicate (its key and weights' SHA-256 enter this model's key), then
        # trains backbone + new head for `finetune` epochs instead of `epochs` from scratch.
        classifier, classifier_record = models.get_trained(settings, data, splits, architecture=architecture,
                                                           replicate=replicate, progress=progress)
    pretrained = None
    if settings.pretrained:
        pretrained = {"path": str(settings.pretrained), "sha256": models.zoo.file_sha256(settings.pretrained)}
    spec = {
        "version": TRAINABLE_VERSION,
        "backbone": architecture,
        "pooling": pooling,
        "r": float(r),
        "box_fraction": box_fraction,
        "box_weight": float(box_weight),
        "box_indices": _indices(boxed),
        "data": data.fingerprint(),
        "train": _indices(train_idx),
        "val": _indices(val_idx),
        "seed": seed,
        "epochs": int(settings.epochs),
        "batch_size": int(settings.batch_size),
        "learning_rate": float(settings.learning_rate),
        "patience": int(settings.patience),
        "pretrained": pretrained,
        "init_from": _init_from(base, classifier_record),
        "finetune_epochs": None if base is None and classifier_record is None else finetune,
    }
    key = stable_hash(spec)
    folder = Path(settings.cache_dir) / "trainable"
    stem = f"{architecture}-{pooling}-box{box_fraction:g}-rep{int(replicate)}-{key}"
    weights_path, record_path = folder / f"{stem}.pt", folder / f"{stem}.json"
    device = resolve_device(settings.device)
    model = build_self_explaining(
        architecture,
        pooling=pooling,
        r=r,
        seed=seed,
        probe_size=max(int(data.size), models.MIN_IMAGE_SIZE[architecture]) if architecture in models.MIN_IMAGE_SIZE else int(data.size),
        image_size=int(data.size),
        pretrained=settings.pretrained or None,
        backbone_state=None if classifier_record is None else classifier.state_dict(),
    )
    with entry_lock(weights_path):  # one process trains or computes it, the others wait and read it
        record = load_checked_entry(model, weights_path, record_path, key=key, on_corrupt=on_corrupt,
                                    error=TrainableConfigError, what="self-explaining model")
        if record is not None:
            model.to(device).eval()
            record["cached"] = True
            return model, record

        if base is not None:
            model.load_state_dict(base_model.state_dict())
        train = data.subset(train_idx)
        mask_available = np.isin(train_idx, boxed)
        loss = functools.partial(trainable_loss, box_weight=float(box_weight), class_weights=balanced_class_weights(train.labels))
        result = fit(
            model,
            train,
            data.subset(val_idx),
            epochs=int(settings.epochs) if base is None and classifier_record is None else finetune,
            batch_size=int(settings.batch_size),
            learning_rate=float(settings.learning_rate),
            patience=int(settings.patience),
            seed=seed,
            device=device,
            loss=loss,
            mask_available=mask_available,
            progress=progress,
            checkpoint=models.cache.checkpoint_path(weights_path),
        )
        record = {
            "key": key,
            "architecture": model.architecture,
            "backbone": architecture,
            "pooling": pooling,
            "r": float(r),
            "box_fraction": box_fraction,
            "box_weight": float(box_weight),
            "replicate": int(replicate),
            "seed": seed,
            "box_indices": _indices(boxed),
            "n_boxes": int(len(boxed)),
            "n_positive_train": int((data.labels[train_idx] == 1).sum()),
            "training": result.as_dict(),
            "init_from": _init_from(base, classifier_record),
            "finetune_epochs": None if base is None and classifier_record is None else finetune,
        }
        record_profile("training", f"self-explaining {architecture} box{box_fraction:g} r{replicate}",
                       sum(e["seconds"] for e in result.history))
        write_entry(model, weights_path, record_path, record)
        models.cache.checkpoint_path(weights_path).unlink(missing_ok=True)  # the entry is complete
        record["cached"] = False
        return model, record
