"""Train a classifier once, then load it: the trained-weights cache of the book.

Weights live in ``<cache_dir>/models/<architecture>-r<replicate>-<label_mode>-<key>.pt``
with their training record beside them (same name, ``.json``). The key hashes
everything that determines the weights (:func:`cache_key`), so a changed
setting, dataset, split or code version trains a new model instead of reusing
a stale one, and chapters that ask for the same model share one file.

The record holds the SHA-256 of the weights file's bytes, checked before the
weights are deserialized. Corrupt entries (a record or weights file that
cannot be read back, a weights file whose digest differs from its record's,
or weights that do not fit the architecture) follow the book's one policy
(:mod:`helpers._cache`): by default they are renamed ``*.corrupt`` (kept for
inspection), a :class:`CacheWarning` names them, and the model is retrained
(training is deterministic, so this restores the same model);
``on_corrupt="raise"`` raises a :class:`CacheCorruptError` naming the file and
the fix instead.

``label_mode="permuted"`` is Adebayo et al.'s data randomization test: the
model is trained on a seeded permutation of the training labels (optionally
of a seeded subset of the training images,
``settings.label_randomization_train_fraction``), from its own
initialization seed, without augmentation, until its accuracy on those
permuted labels reaches ``settings.label_randomization_target_accuracy``
(at most ``settings.label_randomization_max_epochs`` epochs); the true
validation labels select and stop nothing. :func:`label_randomization_ready`
tells a chapter whether the model fits its permuted labels well enough for
the test to be judged.

References
----------
.. [1] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS.
   arXiv:1810.03292 (data randomization test: ``label_mode="permuted"``)
.. [2] Zhang, C. et al. (2017). Understanding deep learning requires
   rethinking generalization. ICLR. arXiv:1611.03530
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torchvision

from helpers._cache import atomic_write, atomic_write_bytes, entry_lock, set_aside, stable_hash
from helpers._profile import record as record_profile
from helpers._weights import WeightsIntegrityError, read_checked_state_dict, state_dict_payload
from helpers.device import resolve_device
from helpers.models._errors import CacheCorruptError, CacheWarning, ModelError
from helpers.models.training import Augmentation, fit, predict_proba, roc_auc_ci
from helpers.models.zoo import ARCHITECTURES, build, file_sha256

__all__ = [
    "MODEL_CODE_VERSION",
    "LABEL_MODES",
    "training_seed",
    "permuted_labels",
    "permuted_subset",
    "label_randomization_ready",
    "cache_key",
    "weights_path",
    "checkpoint_path",
    "get_trained",
]

#: Bump when a change of this package changes trained weights (architecture
#: definitions, initialization, training loop, augmentation) or the record:
#: every cached model is then retrained. 2: the zoo initializes through
#: ``helpers.models.zoo.INITIALIZERS``, permuted-label training fits the
#: permuted labels, records hold the weights' SHA-256 and training accuracy.
MODEL_CODE_VERSION = 2

#: ``"true"``: the training labels; ``"permuted"``: a seeded permutation of
#: them (Adebayo et al.'s data randomization test).
LABEL_MODES = ("true", "permuted")

_STREAM_TRAINING, _STREAM_PERMUTATION, _STREAM_PERMUTED_TRAINING, _STREAM_SUBSET = 0, 1, 2, 3
_SPLITS = ("train", "val", "test")


def training_seed(seed: int, replicate: int, *, label_mode: str = "true") -> int:
    """Seed of one trained model under master seed ``seed`` (initial weights, batch order, augmentation).

    Derived with :class:`numpy.random.SeedSequence` so that replicates get
    independent, well-mixed seeds (not ``seed + replicate``). The
    permuted-label model draws from its own stream, and is guaranteed a seed
    different from the true-label model of the same replicate: a shared
    initialization would make the two models' maps alike for a reason that
    has nothing to do with what they learned, biasing the label-randomization
    test toward "fail".

    Parameters
    ----------
    seed, replicate : int
    label_mode : {"true", "permuted"}, optional
    """
    if label_mode not in LABEL_MODES:
        raise ModelError(f"unknown label_mode {label_mode!r}; valid: {', '.join(LABEL_MODES)}")
    reference = int(np.random.SeedSequence([int(seed), int(replicate), _STREAM_TRAINING]).generate_state(1)[0])
    if label_mode == "true":
        return reference
    words = [int(seed), int(replicate), _STREAM_PERMUTED_TRAINING]
    while True:
        candidate = int(np.random.SeedSequence(words).generate_state(1)[0])
        if candidate != reference:
            return candidate
        words.append(0)  # a 32-bit collision (p = 2**-32): draw again, deterministically


def permuted_labels(labels: np.ndarray, *, seed: int, replicate: int) -> np.ndarray:
    """A seeded permutation of ``labels`` (same class counts, no relation to the images)."""
    rng = np.random.default_rng([int(seed), int(replicate), _STREAM_PERMUTATION])
    return rng.permutation(np.asarray(labels))


def permuted_subset(train_indices: np.ndarray, labels: np.ndarray, *, fraction: float, seed: int, replicate: int) -> np.ndarray:
    """The training indices the permuted-label model fits: a seeded subset of ``fraction`` of them, sorted.

    ``fraction == 1`` keeps every training image. The subset is drawn per
    class (``round(fraction * n_c)`` of each, at least one), so that it keeps
    both classes and the class balance the permuted labels inherit.
    """
    train_indices = np.asarray(train_indices, dtype=np.int64)
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):
        raise ModelError(f"label_randomization_train_fraction must lie in (0, 1], got {fraction!r}")
    if fraction == 1.0:
        return train_indices
    rng = np.random.default_rng([int(seed), int(replicate), _STREAM_SUBSET])
    labels = np.asarray(labels)[train_indices]
    chosen = []
    for c in (0, 1):
        members = train_indices[labels == c]
        if members.size:
            chosen.append(rng.permutation(members)[: max(1, int(round(fraction * members.size)))])
    return np.sort(np.concatenate(chosen))


def _check_inputs(settings: Any, data: Any, splits: Mapping[str, Any], architecture: str, replicate: int, label_mode: str) -> dict[str, np.ndarray]:
    if architecture not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {architecture!r}; valid architectures: {', '.join(ARCHITECTURES)}")
    if label_mode not in LABEL_MODES:
        raise ModelError(f"unknown label_mode {label_mode!r}; valid: {', '.join(LABEL_MODES)}")
    if isinstance(replicate, bool) or not isinstance(replicate, (int, np.integer)) or replicate < 0:
        raise ModelError(f"replicate must be a non-negative integer, got {replicate!r}")
    missing = [name for name in _SPLITS if name not in splits]
    if missing:
        raise ModelError(f"splits must have keys {_SPLITS}; missing {missing}")
    out = {}
    for name in _SPLITS:
        idx = np.asarray(splits[name])
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ModelError(f"splits[{name!r}] must be a non-empty 1-D array of integer indices, got shape {idx.shape}, dtype {idx.dtype}")
        if idx.min() < 0 or idx.max() >= len(data):
            raise ModelError(f"splits[{name!r}] has indices outside [0, {len(data)})")
        out[name] = idx.astype(np.int64)
        if name != "train" and len(np.unique(np.asarray(data.labels)[idx])) < 2:
            raise ModelError(f"splits[{name!r}] must contain both classes (its ROC AUC is reported)")
    size = int(data.images.shape[-1])
    if size != int(settings.image_size):
        raise ModelError(f"data are {size} px but settings.image_size is {settings.image_size}; load the data with these settings")
    return out


def cache_key(settings: Any, data: Any, splits: Mapping[str, Any], *, architecture: str, replicate: int = 0, label_mode: str = "true") -> tuple[str, dict[str, Any]]:
    """The cache key of a trained classifier and the values it hashes.

    Parameters
    ----------
    settings : helpers.config.Settings
    data : helpers.data.ImageSet
    splits : dict
        ``{"train", "val", "test"}`` index arrays into ``data``.
    architecture : str
    replicate : int, optional
    label_mode : {"true", "permuted"}, optional

    Returns
    -------
    key : str
        16 hex characters (:func:`helpers._cache.stable_hash`).
    inputs : dict
        Data fingerprint, hashes of the split indices, architecture, image
        size, seeds, replicate, training schedule, label mode, SHA-256 of the
        pretrained file (or ``None``), augmentation, torch/torchvision
        versions and :data:`MODEL_CODE_VERSION`; in ``"permuted"`` mode the
        schedule is the permuted-label one (target accuracy, epoch cap,
        train fraction) instead of ``epochs``/``patience``.
    """
    idx = _check_inputs(settings, data, splits, architecture, replicate, label_mode)
    pretrained = settings.pretrained
    if pretrained is not None and not Path(pretrained).is_file():
        raise ModelError(f"settings.pretrained {str(pretrained)!r} is not a file; pass a local state-dict file (never downloaded)")
    inputs = {
        "kind": "classifier",
        "model_code_version": MODEL_CODE_VERSION,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "data": data.fingerprint(),
        "splits": {name: stable_hash(idx[name].tolist()) for name in _SPLITS},
        "architecture": architecture,
        "image_size": int(settings.image_size),
        "master_seed": int(settings.seed),
        "seed": training_seed(settings.seed, replicate, label_mode=label_mode),
        "replicate": int(replicate),
        "batch_size": int(settings.batch_size),
        "learning_rate": float(settings.learning_rate),
        "label_mode": label_mode,
        "pretrained_sha256": None if pretrained is None else file_sha256(pretrained),
    }
    if label_mode == "true":
        inputs.update(
            epochs=int(settings.epochs),
            patience=int(settings.patience),
            select="val_auc",
            augmentation={k: float(v) for k, v in vars(Augmentation()).items()},
        )
    else:
        subset = permuted_subset(idx["train"], data.labels, fraction=settings.label_randomization_train_fraction,
                                 seed=settings.seed, replicate=replicate)
        inputs.update(
            epochs=int(settings.label_randomization_max_epochs),
            select="train_accuracy",
            target_accuracy=float(settings.label_randomization_target_accuracy),
            train_fraction=float(settings.label_randomization_train_fraction),
            train_subset=stable_hash(subset.tolist()),
            augmentation=None,
        )
    return stable_hash(inputs), inputs


def checkpoint_path(weights: str | os.PathLike) -> Path:
    """The per-epoch training checkpoint of the entry ``weights``: the same name with ``.ckpt``.

    Written by :func:`helpers.models.training.fit` while the model trains, so
    that an interrupted training (a preempted job, a lost Colab runtime)
    resumes where it stopped; deleted once the entry is written.
    """
    return Path(weights).with_suffix(".ckpt")


def weights_path(cache_dir: str | os.PathLike, *, architecture: str, replicate: int, label_mode: str, key: str) -> Path:
    """``<cache_dir>/models/<architecture>-r<replicate>-<label_mode>-<key>.pt``."""
    return Path(cache_dir) / "models" / f"{architecture}-r{int(replicate)}-{label_mode}-{key}.pt"


class _Labelled:
    """The three arrays :func:`fit` reads (lets the permuted mode swap labels without copying images)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> None:
        self.images, self.labels, self.masks = images, labels, masks


_RECORD_KEYS = ("history", "val_auc", "test_scores", "n_bootstrap", "test_auc", "train_accuracy", "weights_sha256")


def _load(weights: Path, record_file: Path, *, architecture: str, key: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Model and record of a cache entry; :class:`CacheCorruptError` naming the file on any problem."""
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError) as error:
        raise CacheCorruptError(f"cannot read training record {str(record_file)!r} ({error})") from error
    if not isinstance(record, dict) or record.get("key") != key or record.get("architecture") != architecture:
        raise CacheCorruptError(f"training record {str(record_file)!r} does not belong to model key {key} ({architecture})")
    lacking = [k for k in _RECORD_KEYS if k not in record]
    if lacking:
        raise CacheCorruptError(f"training record {str(record_file)!r} lacks {lacking}")
    try:
        state = read_checked_state_dict(weights, sha256=record.get("weights_sha256"), record_file=record_file)
    except WeightsIntegrityError as error:
        raise CacheCorruptError(str(error)) from error
    model = build(architecture, seed=0)  # seeded: leaves torch's global generator alone; weights replaced below
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:
        raise CacheCorruptError(f"cached weights {str(weights)!r} do not fit architecture {architecture!r} ({error})") from error
    return model.to(device).eval(), record


def get_trained(
    settings: Any,
    data: Any,
    splits: Mapping[str, Any],
    *,
    architecture: str,
    replicate: int = 0,
    label_mode: str = "true",
    progress: bool = True,
    on_corrupt: str = "recompute",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A classifier trained on ``splits["train"]`` (early stopping on ``splits["val"]``), from the cache when possible.

    Parameters
    ----------
    settings : helpers.config.Settings
        Uses ``image_size``, ``seed``, ``epochs``, ``batch_size``,
        ``learning_rate``, ``patience``, ``pretrained``, ``device``,
        ``cache_dir`` and ``n_bootstrap``; in ``"permuted"`` mode
        ``label_randomization_target_accuracy``,
        ``label_randomization_max_epochs`` and
        ``label_randomization_train_fraction`` instead of ``epochs`` and
        ``patience``.
    data : helpers.data.ImageSet
        The whole dataset at ``settings.image_size``.
    splits : dict
        ``{"train", "val", "test"}`` index arrays into ``data``.
    architecture : str
        One of :data:`helpers.models.ARCHITECTURES`.
    replicate : int, optional
        Independent training run (its seed is :func:`training_seed`).
    label_mode : {"true", "permuted"}, optional
        ``"true"``: early stopping on the validation AUC, augmentation on.
        ``"permuted"`` (Adebayo et al.'s data randomization test): trained on
        a seeded permutation of the training labels of
        :func:`permuted_subset` of the training images, from its own seed
        (:func:`training_seed` with ``label_mode="permuted"``, never the
        true-label model's), without augmentation (it only slows the
        memorization the test needs), keeping the epoch of the best accuracy
        on the permuted labels and stopping when it reaches the target;
        validation and test keep their true labels, so the reported AUCs
        (about 0.5) are honest and select nothing.
    progress : bool, optional
        Print training progress / the cache hit.
    on_corrupt : {"recompute", "raise"}, optional
        What to do with a cache entry that cannot be read back or fails its
        SHA-256 check (see :mod:`helpers._cache`): rename it ``*.corrupt``
        and retrain with a :class:`CacheWarning` naming it (default), or
        raise :class:`CacheCorruptError`. ``"retrain"`` is accepted as
        ``"recompute"``.

    Returns
    -------
    model : torch.nn.Module
        Selected-epoch weights, eval mode, on ``settings.device``.
    record : dict
        ``architecture``, ``replicate``, ``label_mode``, ``seed`` (used),
        ``master_seed``, ``key``, ``key_inputs``, ``history``, ``best_epoch``,
        ``epochs_run``, ``stopped_early``, ``selected_on`` (``"val_auc"`` or
        ``"train_accuracy"``), ``val_auc``, ``train_accuracy`` (accuracy of
        the kept weights on the labels trained on, un-augmented training
        images: the permuted labels in ``"permuted"`` mode),
        ``train_accuracy_true_labels`` (the same images' true labels),
        ``target_accuracy`` and ``reached_target`` (``None`` in ``"true"``
        mode), ``test_auc`` (true test labels), ``test_auc_low``,
        ``test_auc_high`` (bootstrap CI, ``test_auc_level``,
        ``n_bootstrap``), ``test_scores``, ``n_train``/``n_val``/``n_test``,
        ``train_fraction``, ``augmented``, ``training_seconds``, ``device``,
        ``threads``, ``weights_file``, ``weights_sha256``,
        ``label_agreement`` (share of permuted training labels equal to the
        true ones; 1.0 in ``"true"`` mode), plus ``cache_hit`` (not saved).

    Raises
    ------
    ModelError
        Bad architecture, label mode, replicate, splits or data size.
    CacheCorruptError
        With ``on_corrupt="raise"``, a cache entry that cannot be read back.
    """
    if on_corrupt == "retrain":
        on_corrupt = "recompute"
    if on_corrupt not in ("recompute", "raise"):
        raise ModelError(f"on_corrupt must be 'recompute' or 'raise', got {on_corrupt!r}")
    key, inputs = cache_key(settings, data, splits, architecture=architecture, replicate=replicate, label_mode=label_mode)
    idx = {name: np.asarray(splits[name]).astype(np.int64) for name in _SPLITS}
    device = resolve_device(settings.device)
    weights = weights_path(settings.cache_dir, architecture=architecture, replicate=replicate, label_mode=label_mode, key=key)
    record_file = weights.with_suffix(".json")

    with entry_lock(weights):  # one process trains or computes it, the others wait and read it
        if weights.exists():
            try:
                model, record = _load(weights, record_file, architecture=architecture, key=key, device=device)
            except CacheCorruptError as error:
                if on_corrupt == "raise":
                    raise CacheCorruptError(f"{error}; delete {str(weights)!r} and {str(record_file)!r} to retrain") from error
                moved = [str(set_aside(p)) for p in (weights, record_file) if p.exists()]
                warnings.warn(f"{error}; set aside as {moved} and retraining", CacheWarning, stacklevel=2)
            else:
                if int(record.get("n_bootstrap", -1)) != int(settings.n_bootstrap):
                    _add_test_ci(record, data.labels[idx["test"]], np.asarray(record["test_scores"]), settings=settings)
                record["cache_hit"] = True
                if progress:
                    print(f"[{architecture}] replicate {replicate} ({label_mode} labels) loaded from {weights}: "
                          f"train accuracy {record['train_accuracy']:.3f}, test AUC {record['test_auc']:.3f}", flush=True)
                return model, record

        seed = inputs["seed"]
        permuted = label_mode == "permuted"
        train_idx = idx["train"]
        if permuted:
            train_idx = permuted_subset(train_idx, data.labels, fraction=settings.label_randomization_train_fraction,
                                        seed=settings.seed, replicate=replicate)
        true_train_labels = data.labels[train_idx]
        train_labels = permuted_labels(true_train_labels, seed=settings.seed, replicate=replicate) if permuted else true_train_labels
        train = _Labelled(data.images[train_idx], train_labels, data.masks[train_idx])
        val = _Labelled(data.images[idx["val"]], data.labels[idx["val"]], data.masks[idx["val"]])
        model = build(architecture, pretrained=settings.pretrained, image_size=int(settings.image_size), seed=seed)
        if progress:
            goal = (f"until {settings.label_randomization_target_accuracy:.0%} accuracy on the permuted labels "
                    f"(at most {settings.label_randomization_max_epochs} epochs)" if permuted else f"validating on {len(idx['val'])}")
            print(f"[{architecture}] training replicate {replicate} ({label_mode} labels, seed {seed}) on "
                  f"{len(train_idx)} images, {goal}", flush=True)
        start = time.perf_counter()
        schedule = (
            dict(epochs=int(settings.label_randomization_max_epochs), select="train_accuracy", augment=False,
                 target_accuracy=float(settings.label_randomization_target_accuracy))
            if permuted else dict(epochs=int(settings.epochs), select="val_auc", augment=True)
        )
        result = fit(
            model,
            train,
            val,
            batch_size=int(settings.batch_size),
            learning_rate=float(settings.learning_rate),
            patience=int(settings.patience),
            seed=seed,
            device=device,
            progress=progress,
            checkpoint=checkpoint_path(weights),
            **schedule,
        )
        seconds = time.perf_counter() - start
        record_profile("training", f"classifier {architecture} r{replicate} ({label_mode})", seconds)
        test_scores = predict_proba(model, data.images[idx["test"]], batch_size=int(settings.batch_size), device=device)
        train_scores = predict_proba(model, data.images[train_idx], batch_size=int(settings.batch_size), device=device)
        record: dict[str, Any] = {
            "architecture": architecture,
            "replicate": int(replicate),
            "label_mode": label_mode,
            "seed": seed,
            "master_seed": int(settings.seed),
            "key": key,
            "key_inputs": inputs,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "selected_on": result.selected_on,
            "val_auc": result.best_val_auc,
            "train_accuracy": result.train_accuracy,
            "train_accuracy_true_labels": float(np.mean((train_scores >= 0.5).astype(np.int64) == true_train_labels)),
            "target_accuracy": result.target_accuracy,
            "reached_target": result.reached_target,
            "test_scores": [float(s) for s in test_scores],
            "n_train": int(len(train_idx)),
            "n_val": int(len(idx["val"])),
            "n_test": int(len(idx["test"])),
            "train_fraction": float(settings.label_randomization_train_fraction) if permuted else 1.0,
            "augmented": not permuted,
            "label_agreement": float(np.mean(train_labels == true_train_labels)),
            "training_seconds": seconds,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "weights_file": weights.name,
            "pretrained": None if settings.pretrained is None else str(settings.pretrained),
        }
        _add_test_ci(record, data.labels[idx["test"]], test_scores, settings=settings)
        payload, record["weights_sha256"] = state_dict_payload(model)
        # The record first: a weights file under its final name implies its record (and digest) exists.
        atomic_write(record_file, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
        atomic_write_bytes(weights, payload)
        checkpoint_path(weights).unlink(missing_ok=True)  # the entry is complete: an interrupted fit no longer needs it
        record["cache_hit"] = False
        return model.eval(), record


def label_randomization_ready(record: Mapping[str, Any], *, min_accuracy: float) -> tuple[bool, str]:
    """Whether a permuted-label model fits its permuted labels well enough to judge the label-randomization test.

    Adebayo et al.'s data randomization test compares the maps of a model
    trained on the true labels with those of a model that *learned* permuted
    labels. A model that did not fit them is closer to its initialization
    than to a model of the permuted task, and comparing its maps would test
    something else; the chapter then states the reached accuracy and does
    not judge.

    Parameters
    ----------
    record : dict
        The record of ``get_trained(..., label_mode="permuted")``.
    min_accuracy : float in (0, 1]
        The training accuracy on the permuted labels required (the book
        uses ``settings.label_randomization_target_accuracy``).

    Returns
    -------
    ok : bool
        ``record["train_accuracy"] >= min_accuracy``.
    sentence : str
        One sentence for the chapter: the reached accuracy, the epochs, the
        true-label test AUC (about 0.5 expected) and the decision.

    Raises
    ------
    ModelError
        ``record`` is not a permuted-label record, lacks the keys, or
        ``min_accuracy`` is not in (0, 1].

    References
    ----------
    .. [1] Adebayo, J. et al. (2018). Sanity checks for saliency maps.
       NeurIPS. arXiv:1810.03292
    """
    if isinstance(min_accuracy, bool) or not isinstance(min_accuracy, (int, float)) or not (0.0 < float(min_accuracy) <= 1.0):
        raise ModelError(f"min_accuracy must be a number in (0, 1], got {min_accuracy!r}")
    if not isinstance(record, Mapping) or record.get("label_mode") != "permuted":
        mode = record.get("label_mode") if isinstance(record, Mapping) else type(record).__name__
        raise ModelError(f"label_randomization_ready needs the record of a permuted-label model (label_mode='permuted'), got {mode!r}")
    lacking = [k for k in ("train_accuracy", "epochs_run", "test_auc", "architecture", "n_train") if k not in record]
    if lacking:
        raise ModelError(f"the permuted-label record lacks {lacking}; it was written by an older version: retrain it")
    accuracy = float(record["train_accuracy"])
    ok = math.isfinite(accuracy) and accuracy >= float(min_accuracy)
    auc = float(record["test_auc"])
    ci = ""
    if "test_auc_low" in record and "test_auc_high" in record:
        ci = f" [{float(record['test_auc_low']):.2f}, {float(record['test_auc_high']):.2f}]"
    facts = (
        f"The permuted-label {record['architecture']} fits its permuted training labels with accuracy {accuracy:.3f} "
        f"on {int(record['n_train'])} images after {int(record['epochs_run'])} epochs (required: {float(min_accuracy):.2f}), "
        f"and scores a test AUC of {auc:.2f}{ci} on the true labels (about 0.5 expected)"
    )
    if ok:
        return True, facts + ": it learned the permuted labels, so the label-randomization test is judged."
    return False, (facts + ": it did not learn the permuted labels, so the label-randomization test is not judged "
                   "(raise label_randomization_max_epochs or lower label_randomization_train_fraction).")


def _add_test_ci(record: dict, labels: np.ndarray, scores: np.ndarray, *, settings: Any) -> None:
    interval = roc_auc_ci(labels, scores, n_bootstrap=int(settings.n_bootstrap), seed=int(settings.seed))
    record.update(
        test_auc=interval.auc,
        test_auc_low=interval.low,
        test_auc_high=interval.high,
        test_auc_level=interval.level,
        n_bootstrap=interval.n_bootstrap,
    )
