"""Train a classifier once, then load it: the trained-weights cache of the book.

Weights live in ``<cache_dir>/models/<architecture>-r<replicate>-<label_mode>-<key>.pt``
with their training record beside them (same name, ``.json``). The key hashes
everything that determines the weights (:func:`cache_key`), so a changed
setting, dataset, split or code version trains a new model instead of reusing
a stale one, and chapters that ask for the same model share one file.

Corrupt entries (a file that exists but cannot be read back, or does not fit
the architecture) are never overwritten: by default they are renamed
``*.corrupt`` (kept for inspection), a :class:`CacheWarning` is emitted, and
the model is retrained; ``on_corrupt="raise"`` raises a
:class:`CacheCorruptError` naming the file instead.

References
----------
.. [1] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS.
   arXiv:1810.03292 (data randomization test: ``label_mode="permuted"``)
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torchvision

from helpers._cache import atomic_write, stable_hash
from helpers.models._errors import CacheCorruptError, CacheWarning, ModelError
from helpers.models.training import Augmentation, fit, predict_proba, roc_auc_ci
from helpers.models.zoo import ARCHITECTURES, build, file_sha256

__all__ = [
    "MODEL_CODE_VERSION",
    "LABEL_MODES",
    "training_seed",
    "permuted_labels",
    "cache_key",
    "weights_path",
    "get_trained",
]

#: Bump when a change of this package changes trained weights (architecture
#: definitions, initialization, training loop, augmentation): every cached
#: model is then retrained.
MODEL_CODE_VERSION = 1

#: ``"true"``: the training labels; ``"permuted"``: a seeded permutation of
#: them (Adebayo et al.'s data randomization test).
LABEL_MODES = ("true", "permuted")

_STREAM_TRAINING, _STREAM_PERMUTATION = 0, 1
_SPLITS = ("train", "val", "test")


def training_seed(seed: int, replicate: int) -> int:
    """Seed of replicate ``replicate`` under master seed ``seed`` (initial weights, batch order, augmentation).

    Derived with :class:`numpy.random.SeedSequence` so that replicates get
    independent, well-mixed seeds (not ``seed + replicate``).
    """
    return int(np.random.SeedSequence([int(seed), int(replicate), _STREAM_TRAINING]).generate_state(1)[0])


def permuted_labels(labels: np.ndarray, *, seed: int, replicate: int) -> np.ndarray:
    """A seeded permutation of ``labels`` (same class counts, no relation to the images)."""
    rng = np.random.default_rng([int(seed), int(replicate), _STREAM_PERMUTATION])
    return rng.permutation(np.asarray(labels))


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
        versions and :data:`MODEL_CODE_VERSION`.
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
        "seed": training_seed(settings.seed, replicate),
        "replicate": int(replicate),
        "epochs": int(settings.epochs),
        "batch_size": int(settings.batch_size),
        "learning_rate": float(settings.learning_rate),
        "patience": int(settings.patience),
        "label_mode": label_mode,
        "pretrained_sha256": None if pretrained is None else file_sha256(pretrained),
        "augmentation": {k: float(v) for k, v in vars(Augmentation()).items()},
    }
    return stable_hash(inputs), inputs


def weights_path(cache_dir: str | os.PathLike, *, architecture: str, replicate: int, label_mode: str, key: str) -> Path:
    """``<cache_dir>/models/<architecture>-r<replicate>-<label_mode>-<key>.pt``."""
    return Path(cache_dir) / "models" / f"{architecture}-r{int(replicate)}-{label_mode}-{key}.pt"


class _Labelled:
    """The three arrays :func:`fit` reads (lets the permuted mode swap labels without copying images)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> None:
        self.images, self.labels, self.masks = images, labels, masks


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``path.corrupt`` (or ``.corrupt.1``, ...) without overwriting anything."""
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt.{n}")
    os.replace(path, target)
    return target


def _load(weights: Path, record_file: Path, *, architecture: str, key: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Model and record of a cache entry; :class:`CacheCorruptError` naming the file on any problem."""
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError) as error:
        raise CacheCorruptError(f"cannot read training record {str(record_file)!r} ({error})") from error
    if not isinstance(record, dict) or record.get("key") != key or record.get("architecture") != architecture:
        raise CacheCorruptError(f"training record {str(record_file)!r} does not belong to model key {key} ({architecture})")
    lacking = [k for k in ("history", "val_auc", "test_scores", "n_bootstrap", "test_auc") if k not in record]
    if lacking:
        raise CacheCorruptError(f"training record {str(record_file)!r} lacks {lacking}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike
        raise CacheCorruptError(f"cannot read cached weights {str(weights)!r} ({type(error).__name__}: {error})") from error
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
    on_corrupt: str = "retrain",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A classifier trained on ``splits["train"]`` (early stopping on ``splits["val"]``), from the cache when possible.

    Parameters
    ----------
    settings : helpers.config.Settings
        Uses ``image_size``, ``seed``, ``epochs``, ``batch_size``,
        ``learning_rate``, ``patience``, ``pretrained``, ``device``,
        ``cache_dir`` and ``n_bootstrap``.
    data : helpers.data.ImageSet
        The whole dataset at ``settings.image_size``.
    splits : dict
        ``{"train", "val", "test"}`` index arrays into ``data``.
    architecture : str
        One of :data:`helpers.models.ARCHITECTURES`.
    replicate : int, optional
        Independent training run (its seed is :func:`training_seed`).
    label_mode : {"true", "permuted"}, optional
        ``"permuted"`` trains on a seeded permutation of the training labels
        (Adebayo et al.'s data randomization test); validation and test keep
        their true labels, so the reported AUCs (about 0.5) are honest. Early
        stopping then selects an essentially random epoch.
    progress : bool, optional
        Print training progress / the cache hit.
    on_corrupt : {"retrain", "raise"}, optional
        What to do with a cache entry that cannot be read back: rename it
        ``*.corrupt`` and retrain with a :class:`CacheWarning` (default), or
        raise :class:`CacheCorruptError`.

    Returns
    -------
    model : torch.nn.Module
        Best-epoch weights, eval mode, on ``settings.device``.
    record : dict
        ``architecture``, ``replicate``, ``label_mode``, ``seed`` (used),
        ``master_seed``, ``key``, ``key_inputs``, ``history``, ``best_epoch``,
        ``epochs_run``, ``stopped_early``, ``val_auc``, ``test_auc``,
        ``test_auc_low``, ``test_auc_high`` (bootstrap CI, ``test_auc_level``,
        ``n_bootstrap``), ``test_scores``, ``n_train``/``n_val``/``n_test``,
        ``training_seconds``, ``device``, ``threads``, ``weights_file``,
        ``label_agreement`` (share of permuted training labels equal to the
        true ones; 1.0 in ``"true"`` mode), plus ``cache_hit`` (not saved).

    Raises
    ------
    ModelError
        Bad architecture, label mode, replicate, splits or data size.
    CacheCorruptError
        With ``on_corrupt="raise"``, a cache entry that cannot be read back.
    """
    if on_corrupt not in ("retrain", "raise"):
        raise ModelError(f"on_corrupt must be 'retrain' or 'raise', got {on_corrupt!r}")
    from helpers.config import resolve_device

    key, inputs = cache_key(settings, data, splits, architecture=architecture, replicate=replicate, label_mode=label_mode)
    idx = {name: np.asarray(splits[name]).astype(np.int64) for name in _SPLITS}
    device = resolve_device(settings.device)
    weights = weights_path(settings.cache_dir, architecture=architecture, replicate=replicate, label_mode=label_mode, key=key)
    record_file = weights.with_suffix(".json")

    if weights.exists():
        try:
            model, record = _load(weights, record_file, architecture=architecture, key=key, device=device)
        except CacheCorruptError as error:
            if on_corrupt == "raise":
                raise CacheCorruptError(f"{error}; delete {str(weights)!r} and {str(record_file)!r} to retrain") from error
            moved = [str(_set_aside(p)) for p in (weights, record_file) if p.exists()]
            warnings.warn(f"{error}; set aside as {moved} and retraining", CacheWarning, stacklevel=2)
        else:
            if int(record.get("n_bootstrap", -1)) != int(settings.n_bootstrap):
                _add_test_ci(record, data.labels[idx["test"]], np.asarray(record["test_scores"]), settings=settings)
            record["cache_hit"] = True
            if progress:
                print(f"[{architecture}] replicate {replicate} ({label_mode} labels) loaded from {weights}: "
                      f"val AUC {record['val_auc']:.3f}, test AUC {record['test_auc']:.3f}", flush=True)
            return model, record

    seed = inputs["seed"]
    train_labels = data.labels[idx["train"]]
    if label_mode == "permuted":
        train_labels = permuted_labels(train_labels, seed=settings.seed, replicate=replicate)
    train = _Labelled(data.images[idx["train"]], train_labels, data.masks[idx["train"]])
    val = _Labelled(data.images[idx["val"]], data.labels[idx["val"]], data.masks[idx["val"]])
    model = build(architecture, pretrained=settings.pretrained, image_size=int(settings.image_size), seed=seed)
    if progress:
        print(f"[{architecture}] training replicate {replicate} ({label_mode} labels, seed {seed}) on "
              f"{len(idx['train'])} images, validating on {len(idx['val'])}", flush=True)
    start = time.perf_counter()
    result = fit(
        model,
        train,
        val,
        epochs=int(settings.epochs),
        batch_size=int(settings.batch_size),
        learning_rate=float(settings.learning_rate),
        patience=int(settings.patience),
        seed=seed,
        device=device,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    test_scores = predict_proba(model, data.images[idx["test"]], batch_size=int(settings.batch_size), device=device)
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
        "val_auc": result.best_val_auc,
        "test_scores": [float(s) for s in test_scores],
        "n_train": int(len(idx["train"])),
        "n_val": int(len(idx["val"])),
        "n_test": int(len(idx["test"])),
        "label_agreement": float(np.mean(train_labels == data.labels[idx["train"]])),
        "training_seconds": seconds,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "weights_file": weights.name,
        "pretrained": None if settings.pretrained is None else str(settings.pretrained),
    }
    _add_test_ci(record, data.labels[idx["test"]], test_scores, settings=settings)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # The record first: a weights file under its final name implies its record exists.
    atomic_write(record_file, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    atomic_write(weights, lambda tmp: torch.save(state, tmp))
    record["cache_hit"] = False
    return model.eval(), record


def _add_test_ci(record: dict, labels: np.ndarray, scores: np.ndarray, *, settings: Any) -> None:
    interval = roc_auc_ci(labels, scores, n_bootstrap=int(settings.n_bootstrap), seed=int(settings.seed))
    record.update(
        test_auc=interval.auc,
        test_auc_low=interval.low,
        test_auc_high=interval.high,
        test_auc_level=interval.level,
        n_bootstrap=interval.n_bootstrap,
    )
