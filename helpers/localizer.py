"""The fully supervised localization baseline: a small U-Net trained on the masks.

Arun et al. (2021) compare every saliency map with a network trained *for*
localization on the ground-truth regions (a U-Net on SIIM, a RetinaNet on
RSNA): its per-image map is the "Net" line of the localization-utility figure,
and the SSIM between two independently trained ones is the network line of the
repeatability figure. The book uses one design for both datasets, a U-Net
(Ronneberger et al. 2015) sized for 64-256 px inputs, whose sigmoid output is
the map.

Training: binary cross-entropy + soft Dice (Milletari et al. 2016) over the
pixels of each batch, Adam, seeded initialization and shuffling, early stopping
on the mean per-image average precision of the positive validation images (the
book's localization metric). The weights are cached under a key that hashes
everything that determines them, with a record holding their SHA-256, checked
on load; a corrupt entry follows the book's one policy (:mod:`helpers._cache`:
set aside and retrained with a warning naming it, or ``on_corrupt="raise"``).

References
----------
.. [1] Ronneberger, O., Fischer, P., & Brox, T. (2015). U-Net: convolutional
   networks for biomedical image segmentation. MICCAI. arXiv:1505.04597.
.. [2] Milletari, F., Navab, N., & Ahmadi, S.-A. (2016). V-Net: fully
   convolutional neural networks for volumetric medical image segmentation.
   3DV. arXiv:1606.04797.
.. [3] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score
from torch import nn

from helpers._cache import entry_lock, stable_hash
from helpers._profile import record as record_profile
from helpers._weights import load_checked_entry, write_entry
from helpers.device import resolve_device
from helpers.models.training import Augmentation
from helpers.trainable.supervision import box_subset, supervision_seed

__all__ = [
    "LocalizerError",
    "UNet",
    "build_localizer",
    "localizer_loss",
    "fit_localizer",
    "predict_maps",
    "validation_ap",
    "localizer_subset",
    "get_trained_localizer",
]

#: Bump when the architecture, the training loop or the record changes: old caches are then ignored.
#: 2: records hold the weights' SHA-256.
LOCALIZER_VERSION = 2


class LocalizerError(ValueError):
    """A bad input, setting or cache file of the localization baseline."""


class _ToSigned(nn.Module):
    """Maps images from ``[0, 1]`` to ``[-1, 1]`` (the zoo's input scaling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


class _DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice; the U-Net's basic block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class UNet(nn.Module):
    """A small U-Net: ``depth`` 2x down-samplings, channels doubling from ``base_channels``.

    Parameters
    ----------
    base_channels : int, optional
        Channels of the first level (16).
    depth : int, optional
        Number of down-samplings (3: a 64 px input reaches 8 px, a 128 px one
        16 px, enough context for lung-sized regions at these sizes).

    Notes
    -----
    Input ``(N, 1, S, S)`` in ``[0, 1]`` with ``S`` divisible by ``2**depth``;
    output logits ``(N, 1, S, S)``. Every ReLU is a non-inplace ``nn.ReLU``
    module; convolutions are padded ("same"), unlike the original's valid
    convolutions, so the output has the input's size; up-sampling by
    transposed convolution, skip connections by concatenation.
    """

    def __init__(self, *, base_channels: int = 16, depth: int = 3) -> None:
        super().__init__()
        if int(base_channels) < 1 or int(depth) < 1:
            raise LocalizerError(f"U-Net needs base_channels >= 1 and depth >= 1, got {base_channels!r}, {depth!r}")
        self.depth = int(depth)
        self.base_channels = int(base_channels)
        self.architecture = "unet"
        widths = [self.base_channels * 2**level for level in range(self.depth + 1)]
        self.scale = _ToSigned()
        self.down = nn.ModuleList([_DoubleConv(1, widths[0])] + [_DoubleConv(widths[i], widths[i + 1]) for i in range(self.depth)])
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(self.depth))])
        self.up = nn.ModuleList([_DoubleConv(2 * widths[i], widths[i]) for i in reversed(range(self.depth))])
        self.out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise LocalizerError(f"U-Net input must have shape (N, 1, S, S), got {tuple(x.shape)}")
        step = 2**self.depth
        if x.shape[-1] % step or x.shape[-2] % step:
            raise LocalizerError(f"U-Net of depth {self.depth} needs image sides divisible by {step}, got {tuple(x.shape[-2:])}")
        h = self.scale(x)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        skips.pop()  # the bottleneck is not a skip
        for upsample, block in zip(self.upsample, self.up):
            h = block(torch.cat([skips.pop(), upsample(h)], dim=1))
        return self.out(h)


def build_localizer(*, seed: int = 0, base_channels: int = 16, depth: int = 3) -> UNet:
    """A freshly initialized :class:`UNet`, reproducible from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return UNet(base_channels=base_channels, depth=depth)


def localizer_loss(logits: torch.Tensor, masks: torch.Tensor, *, dice_weight: float = 1.0, eps: float = 1.0) -> torch.Tensor:
    """Pixel BCE + ``dice_weight`` x soft Dice loss over the whole batch.

    The soft Dice ``1 - (2 sum(p g) + eps) / (sum(p) + sum(g) + eps)`` is
    computed over all pixels of the batch together (Milletari et al. 2016), so
    negative images (empty masks) are allowed; ``eps`` smooths it.
    """
    masks = masks.float()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    probs = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (probs * masks).sum() + eps) / (probs.sum() + masks.sum() + eps)
    return bce + float(dice_weight) * dice


def _as_tensor_images(images) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images, dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise LocalizerError(f"images must have shape (N, S, S) or (N, 1, S, S), got {tuple(x.shape)}")
    return x


@torch.no_grad()
def predict_maps(model: nn.Module, images, *, batch_size: int = 64, device: str | torch.device | None = None) -> np.ndarray:
    """Sigmoid probability maps of the localizer, ``(N, H, W)`` float32 in ``[0, 1]``.

    Parameters
    ----------
    model : UNet
        A (trained) localizer; it is evaluated in eval mode and left in the
        mode it was in.
    images : array-like or torch.Tensor
        ``(N, S, S)`` or ``(N, 1, S, S)`` in ``[0, 1]`` (an ``ImageSet``'s
        ``images`` or ``tensor()``).
    batch_size : int, optional
    device : str or torch.device, optional
        Where to run (default: where the model's parameters are).
    """
    x = _as_tensor_images(images)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [torch.sigmoid(model(x[i : i + batch_size].to(device))).squeeze(1).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0,) + tuple(x.shape[-2:]), np.float32)


def validation_ap(maps: np.ndarray, masks: np.ndarray) -> float:
    """Mean per-image average precision of ``maps`` against ``masks`` over images with a non-empty mask.

    Raises :class:`LocalizerError` when no mask is non-empty (AP undefined).
    """
    masks = np.asarray(masks).astype(bool)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    if not keep.any():
        raise LocalizerError("validation set has no image with a non-empty mask: average precision is undefined")
    return float(np.mean([average_precision_score(m.ravel(), p.ravel()) for m, p in zip(masks[keep], maps[keep])]))


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive batches of ``order``; a last batch of one image joins the previous one (BatchNorm needs two)."""
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] == 1:
        starts.pop()
    ends = starts[1:] + [len(order)]
    return [order[a:b] for a, b in zip(starts, ends)]


def fit_localizer(
    model: nn.Module,
    train,
    val,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    seed: int,
    device: str | torch.device = "cpu",
    dice_weight: float = 1.0,
    augment: bool = True,
) -> dict[str, Any]:
    """Train ``model`` on ``train.masks``, early stopping on validation mean AP; restores the best epoch.

    Parameters
    ----------
    model : UNet
    train, val : ImageSet
        Anything with ``images (N,S,S)`` and ``masks (N,S,S)`` arrays. Every
        image of ``train`` is used with its mask (negatives: empty mask);
        ``val`` needs at least one non-empty mask.
    epochs, batch_size, learning_rate, patience : int, int, float, int
        Adam schedule; training stops after ``patience`` epochs without a
        better validation AP.
    seed : int
        Seeds the shuffling and the augmentation (one ``torch.Generator``).
    device : str or torch.device
    dice_weight : float
        Weight of the soft Dice term.
    augment : bool
        Apply the classifiers' :class:`helpers.models.training.Augmentation`
        (same shift for an image and its mask, intensity jitter) to every
        training batch.

    Returns
    -------
    dict
        ``history`` (per epoch: ``epoch``, ``train_loss``, ``val_ap``,
        ``seconds``), ``best_epoch``, ``best_val_ap``, ``epochs_run``,
        ``seconds``.

    Notes
    -----
    Written by hand rather than with :func:`helpers.models.fit`, which trains
    and validates image-level classifiers (logits ``(N, 2)``, AUC); it reuses
    that loop's augmentation. A last batch of a single image joins the
    previous batch (BatchNorm needs two images).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if int(value) < 1:
            raise LocalizerError(f"{name} must be a positive integer, got {value!r}")
    if not (math.isfinite(float(learning_rate)) and float(learning_rate) > 0):
        raise LocalizerError(f"learning_rate must be a positive number, got {learning_rate!r}")
    x_train = _as_tensor_images(train.images)
    y_train = torch.as_tensor(np.asarray(train.masks), dtype=torch.float32).unsqueeze(1)
    if y_train.shape != x_train.shape:
        raise LocalizerError(f"training masks {tuple(y_train.shape)} do not match the images {tuple(x_train.shape)}")
    if len(x_train) == 0:
        raise LocalizerError("the localizer's training set is empty")
    val_masks = np.asarray(val.masks).astype(bool)
    device = torch.device(device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(learning_rate))
    generator = torch.Generator().manual_seed(int(seed))
    augmentation = Augmentation() if augment else None
    best_ap, best_epoch, best_state, stale = -math.inf, 0, None, 0
    history = []
    start = time.perf_counter()
    for epoch in range(1, int(epochs) + 1):
        tic = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total, count = 0.0, 0
        for idx in _batches(order, int(batch_size)):
            images, masks = x_train[idx], y_train[idx]
            if augmentation is not None:
                images, masks = augmentation(images, masks, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss = localizer_loss(model(images.to(device)), masks.to(device), dice_weight=dice_weight)
            if not torch.isfinite(loss):
                raise LocalizerError(f"localizer loss is not finite at epoch {epoch} (learning_rate={learning_rate!r})")
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        ap = validation_ap(predict_maps(model, val.images, batch_size=int(batch_size), device=device), val_masks)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_ap": ap, "seconds": time.perf_counter() - tic})
        if ap > best_ap:
            best_ap, best_epoch, stale = ap, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= int(patience):
                break
    model.load_state_dict(best_state)
    model.eval()
    return {
        "history": history,
        "best_epoch": best_epoch,
        "best_val_ap": best_ap,
        "epochs_run": len(history),
        "seconds": time.perf_counter() - start,
    }


def localizer_subset(labels, train_indices, mask_fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training images of a localizer that sees ``mask_fraction`` of the positive masks.

    The positives are the same seeded, nested subset that
    :func:`helpers.trainable.box_subset` gives boxes to (same seed, same
    fraction, same images), so the supervised localizer and the self-explaining
    model see the same regions; every negative training image is kept (its
    empty mask is implied by its label).

    Returns
    -------
    (indices, positives) : tuple of numpy.ndarray
        All training indices used (sorted) and the positives among them.
    """
    positives = box_subset(labels, train_indices, mask_fraction, seed=seed)
    if len(positives) == 0:
        raise LocalizerError(f"mask_fraction={mask_fraction!r} leaves no positive training image: the localizer cannot learn a region")
    labels = np.asarray(labels)
    train_indices = np.asarray(train_indices, dtype=np.int64)
    negatives = train_indices[labels[train_indices] == 0]
    return np.sort(np.concatenate([negatives, positives])), positives


def _weights_dir(settings) -> Path:
    return Path(settings.cache_dir) / "localizers"


def _seed_for(settings, replicate: int) -> int:
    # The replicate changes every random draw of the training (init, order, subset).
    return int(stable_hash({"seed": int(settings.seed), "replicate": int(replicate), "role": "localizer"}, length=8), 16)


def _index_list(indices) -> list[int]:
    return [int(i) for i in np.asarray(indices).ravel()]


def get_trained_localizer(
    settings,
    data,
    splits: Mapping[str, Any],
    *,
    replicate: int = 0,
    mask_fraction: float = 1.0,
    base_channels: int = 16,
    depth: int = 3,
    dice_weight: float = 1.0,
    on_corrupt: str = "recompute",
) -> tuple[UNet, dict[str, Any]]:
    """The localization baseline for ``settings``: trained once, then read from the cache.

    Parameters
    ----------
    settings : helpers.config.Settings
        Uses ``seed``, ``epochs``, ``batch_size``, ``learning_rate``,
        ``patience``, ``device``, ``cache_dir``.
    data : helpers.data.ImageSet
        The whole dataset.
    splits : dict
        ``{"train", "val", ...}`` index arrays into ``data``.
    replicate : int, optional
        Independent training runs (different seeds): the repeatability
        baseline is the SSIM between replicates 0 and 1.
    mask_fraction : float, optional
        Share of the positive training images whose masks are used (see
        :func:`localizer_subset`); 1.0 is the fully supervised ceiling.
    base_channels, depth, dice_weight
        See :class:`UNet` and :func:`localizer_loss`.
    on_corrupt : {"recompute", "raise"}, optional
        A cached entry whose record cannot be read or whose weights fail their
        SHA-256 check: set aside (``*.corrupt``) and retrained with a
        :class:`~helpers._cache.CorruptCacheWarning` naming it (default), or
        :class:`LocalizerError` naming the file and the fix.

    Returns
    -------
    (model, record) : tuple
        The trained U-Net (eval mode, on the settings' device) and a record:
        ``key``, ``architecture``, ``replicate``, ``mask_fraction``, ``seed``,
        ``positive_indices`` (the positives with masks), ``n_train``, the
        training ``history``, ``best_epoch``, ``best_val_ap``, ``seconds``,
        ``weights_sha256`` and ``cached`` (whether it was read from the
        cache; not stored in the entry).

    Raises
    ------
    LocalizerError
        ``on_corrupt="raise"`` and a corrupt cache entry.
    """

    mask_fraction = float(mask_fraction)
    seed = _seed_for(settings, replicate)
    train_idx, positives = localizer_subset(data.labels, splits["train"], mask_fraction, seed=supervision_seed(settings.seed, replicate))
    val_idx = np.asarray(splits["val"], dtype=np.int64)
    spec = {
        "version": LOCALIZER_VERSION,
        "architecture": "unet",
        "base_channels": int(base_channels),
        "depth": int(depth),
        "dice_weight": float(dice_weight),
        "augment": dataclasses.asdict(Augmentation()),
        "data": data.fingerprint(),
        "train": _index_list(train_idx),
        "val": _index_list(val_idx),
        "seed": seed,
        "epochs": int(settings.epochs),
        "batch_size": int(settings.batch_size),
        "learning_rate": float(settings.learning_rate),
        "patience": int(settings.patience),
    }
    key = stable_hash(spec)
    folder = _weights_dir(settings)
    weights_path, record_path = folder / f"unet-{key}.pt", folder / f"unet-{key}.json"
    device = resolve_device(settings.device)
    model = build_localizer(seed=seed, base_channels=base_channels, depth=depth)
    with entry_lock(weights_path):  # one process trains or computes it, the others wait and read it
        record = load_checked_entry(model, weights_path, record_path, key=key, on_corrupt=on_corrupt, error=LocalizerError,
                                    what="localizer")
        if record is not None:
            model.to(device).eval()
            record["cached"] = True
            return model, record
        result = fit_localizer(
            model,
            data.subset(train_idx),
            data.subset(val_idx),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            patience=settings.patience,
            seed=seed,
            device=device,
            dice_weight=dice_weight,
            augment=True,
        )
        record = {
            "key": key,
            "architecture": "unet",
            "replicate": int(replicate),
            "mask_fraction": mask_fraction,
            "seed": seed,
            "positive_indices": _index_list(positives),
            "n_train": int(len(train_idx)),
            **result,
        }
        record_profile("training", f"U-Net r{replicate}", result["seconds"])
        write_entry(model, weights_path, record_path, record)
        record["cached"] = False
        return model, record
