"""Seeded training with early stopping on validation ROC AUC, prediction, and AUC confidence intervals.

:func:`fit` is the one training loop of the book: the classifiers of every
chapter and the trainable-saliency model (through its ``loss`` and
``mask_available`` arguments) are trained by it. ``select="train_accuracy"``
trains a model to fit its training labels instead (Adebayo et al.'s data
randomization test: a model trained on permuted labels must have memorized
them, and must not be selected on the true labels).

References
----------
.. [1] Kingma, D. P., Ba, J. (2015). Adam: a method for stochastic
   optimization. ICLR. arXiv:1412.6980
.. [2] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267 (Adam, two-class
   softmax head)
.. [3] Efron, B., Tibshirani, R. J. (1993). An Introduction to the Bootstrap.
   Chapman & Hall (percentile intervals).
.. [4] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS.
   arXiv:1810.03292 (data randomization test: train on permuted labels until
   the training accuracy is high)
.. [5] Zhang, C., Bengio, S., Hardt, M., Recht, B., Vinyals, O. (2017).
   Understanding deep learning requires rethinking generalization. ICLR.
   arXiv:1611.03530 (networks fit random labels)
.. [6] PyTorch documentation, "Saving and loading a general checkpoint for
   inference and/or resuming training" (model, optimizer and RNG states).

Checkpoints
-----------
With ``checkpoint=PATH`` :func:`fit` writes, after every epoch that does not
end the fit, the model, the Adam state, the batch-order/augmentation
generator, torch's global generator and the best epoch so far to ``PATH``
(atomically, :func:`helpers._cache.atomic_write`), and a later call with the
same arguments resumes from it: the resumed fit ends with the same weights,
bit for bit, as an uninterrupted one (same device, thread count and library
versions). The caches keep the checkpoint next to their entry under the same
key (``<entry>.ckpt``) and delete it once the entry is written.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from helpers._cache import CorruptCacheWarning, atomic_write, set_aside
from helpers.device import resolve_device
from helpers.metrics import MetricInputError
from helpers.metrics.statistics import AUCInterval, _bootstrap_aucs  # noqa: F401 (re-exported: helpers.models, its tests)
from helpers.metrics.statistics import roc_auc_ci as _metrics_roc_auc_ci
from helpers.models._errors import ModelError

__all__ = [
    "Augmentation",
    "SELECTIONS",
    "TrainingResult",
    "AUCInterval",
    "fit",
    "predict_proba",
    "roc_auc_ci",
    "classification_loss",
    "balanced_class_weights",
    "CHECKPOINT_FORMAT",
]

#: Version of :func:`fit`'s checkpoint layout (a checkpoint of another version is rejected, naming its file).
CHECKPOINT_FORMAT = 1

LossFn = Callable[[nn.Module, dict], Tensor]

#: What :func:`fit` selects the kept epoch on (see its ``select`` parameter).
SELECTIONS = ("val_auc", "train_accuracy")


@dataclass(frozen=True)
class Augmentation:
    """Light, anatomy-preserving training augmentation, applied per image.

    * a random integer translation of up to ``max_shift * S`` pixels along each
      axis, zero-filled (black, like collimated film borders), applied
      **identically to the image and its mask**;
    * a random contrast factor in ``[1 - contrast, 1 + contrast]`` and offset
      in ``[-brightness, brightness]`` (images only), then clipping to ``[0, 1]``.

    There is deliberately no horizontal flip (the heart, aortic knob and
    gastric bubble are on one side: a flipped chest radiograph is not a
    plausible one), no rotation and no scaling.

    Parameters
    ----------
    max_shift : float
        Largest translation as a fraction of the image size (default 0.06).
    contrast, brightness : float
        Intensity jitter ranges (defaults 0.1 and 0.05).
    """

    max_shift: float = 0.06
    contrast: float = 0.1
    brightness: float = 0.05

    def __post_init__(self) -> None:
        for name in ("max_shift", "contrast", "brightness"):
            value = getattr(self, name)
            if not (0.0 <= float(value) < 0.5):
                raise ModelError(f"Augmentation.{name} must lie in [0, 0.5), got {value!r}")

    def __call__(self, images: Tensor, masks: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Augment a batch ``images`` ``(B, C, S, S)`` and ``masks`` ``(B, 1, S, S)`` with draws from ``generator``.

        Returns new tensors (the inputs are not modified). All draws come from
        ``generator`` (on the CPU), in a fixed order, so a seeded generator
        gives the same batch on every run.
        """
        # Written by hand rather than with torchvision.transforms.v2.RandomAffine:
        # that draws from torch's global generator and one parameter set per
        # call, while we need per-image parameters from an explicit generator,
        # exact integer shifts (no interpolation of binary masks) and the same
        # shift for an image and its mask.
        b, _, h, w = images.shape
        k = int(round(self.max_shift * min(h, w)))
        shifts = torch.randint(-k, k + 1, (b, 2), generator=generator) if k > 0 else torch.zeros(b, 2, dtype=torch.long)
        gain = 1.0 + (torch.rand(b, generator=generator) * 2 - 1) * self.contrast
        offset = (torch.rand(b, generator=generator) * 2 - 1) * self.brightness
        if k > 0:
            images = _translate(images, shifts, k)
            masks = _translate(masks, shifts, k)
        gain = gain.to(images.device, images.dtype).view(b, 1, 1, 1)
        offset = offset.to(images.device, images.dtype).view(b, 1, 1, 1)
        return (images * gain + offset).clamp_(0.0, 1.0), masks


def _translate(x: Tensor, shifts: Tensor, k: int) -> Tensor:
    """Shift each ``x[i]`` by ``shifts[i] = (dy, dx)`` pixels, filling with zeros."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (k, k, k, k))
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = padded[i, :, k - dy : k - dy + h, k - dx : k - dx + w]
    return out


@dataclass
class TrainingResult:
    """What :func:`fit` did.

    Attributes
    ----------
    history : list of dict
        One dict per epoch: ``epoch`` (1-based), ``train_loss`` (mean of the
        training loss over the epoch, augmented batches), ``val_loss`` (plain
        cross-entropy on the validation set), ``val_auc`` (ROC AUC of
        ``softmax(model(images))[:, 1]``), ``seconds``; with
        ``select="train_accuracy"`` also ``train_accuracy``.
    best_epoch : int
        Epoch whose weights were restored.
    best_val_auc : float
        Validation AUC of that epoch.
    epochs_run : int
    stopped_early : bool
        Stopped before ``epochs``: after ``patience`` epochs without
        improvement (``select="val_auc"``) or on reaching
        ``target_accuracy`` (``select="train_accuracy"``).
    seconds : float
        Wall time of the whole fit.
    seed : int
    selected_on : str
        ``select`` of the fit.
    train_accuracy : float
        Accuracy of the restored weights on the training images with the
        labels they were trained on (eval mode, no augmentation).
    target_accuracy : float or None
        The training accuracy aimed at (``select="train_accuracy"``).
    reached_target : bool or None
        ``train_accuracy >= target_accuracy`` (``None`` without a target).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_auc: float = float("nan")
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    seed: int = 0
    selected_on: str = "val_auc"
    train_accuracy: float = float("nan")
    target_accuracy: float | None = None
    reached_target: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON-serializable)."""
        return asdict(self)


def balanced_class_weights(labels: np.ndarray | Tensor, *, num_classes: int = 2) -> Tensor:
    """``n / (num_classes * count_c)`` per class (scikit-learn's "balanced" weights), as a float32 tensor.

    Raises
    ------
    ModelError
        A class is absent from ``labels``.
    """
    labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64).ravel()
    counts = np.bincount(labels, minlength=num_classes)[:num_classes]
    if np.any(counts == 0):
        raise ModelError(f"training labels must contain every class 0..{num_classes - 1}; class counts are {counts.tolist()}")
    return torch.as_tensor(labels.size / (num_classes * counts), dtype=torch.float32)


def classification_loss(model: nn.Module, batch: dict[str, Tensor], *, class_weights: Tensor | None = None) -> Tensor:
    """Cross-entropy of ``model(batch["images"])`` against ``batch["labels"]`` (optionally class-weighted).

    This is :func:`fit`'s default ``loss`` (with balanced class weights); a
    custom loss can call it for its classification term.
    """
    weight = None if class_weights is None else class_weights.to(batch["images"].device)
    return F.cross_entropy(model(batch["images"]), batch["labels"], weight=weight)


def _as_tensor_images(images: Any, *, what: str) -> Tensor:
    """``(N, S, S)`` or ``(N, C, S, S)`` array/tensor (or an ImageSet) -> float32 ``(N, C, S, S)`` tensor."""
    if hasattr(images, "images") and hasattr(images, "labels"):
        images = images.images
    tensor = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.ndim != 4 or tensor.shape[0] == 0:
        raise ModelError(f"{what}: expected images of shape (N, S, S) or (N, C, S, S) with N > 0, got {tuple(tensor.shape)}")
    return tensor.to(torch.float32)


def _unpack(data: Any, *, what: str) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``(N,1,S,S)`` float32, labels ``(N,)`` int64, masks ``(N,1,S,S)`` bool from an ImageSet."""
    for attribute in ("images", "labels", "masks"):
        if not hasattr(data, attribute):
            raise ModelError(f"{what} must be an ImageSet (with images, labels and masks), got a {type(data).__name__}")
    images = _as_tensor_images(data.images, what=what)
    labels = torch.as_tensor(np.asarray(data.labels)).to(torch.int64).ravel()
    masks = torch.as_tensor(np.asarray(data.masks)).to(torch.bool)
    if masks.ndim == 3:
        masks = masks.unsqueeze(1)
    if labels.shape[0] != images.shape[0]:
        raise ModelError(f"{what}: {images.shape[0]} images but {labels.shape[0]} labels")
    if masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:] or masks.shape[1] != 1:
        raise ModelError(f"{what}: masks of shape {tuple(masks.shape)} do not match images of shape {tuple(images.shape)}")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ModelError(f"{what}: labels must be 0 or 1, got values {sorted(set(labels.tolist()))[:5]}")
    if not bool((labels == 0).any() and (labels == 1).any()):
        raise ModelError(f"{what} must contain both classes (ROC AUC and class weights need them); got only class {int(labels[0])}")
    return images, labels, masks


@contextlib.contextmanager
def _deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators (dropout ...) and ask for deterministic kernels; restore on exit.

    ``warn_only=True``: an operation without a deterministic implementation
    (some CUDA kernels) warns instead of failing. Exact reproducibility holds
    for a given device, thread count and library versions.
    """
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def _evaluate(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int, device: torch.device) -> tuple[float, float]:
    """Plain cross-entropy and ROC AUC of ``softmax(logits)[:, 1]`` on a labelled set (eval mode)."""
    logits = _logits(model, images, batch_size=batch_size, device=device)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ModelError(f"fit needs a model that returns (N, 2) logits, got output of shape {tuple(logits.shape)}")
    loss = float(F.cross_entropy(logits, labels).item())
    scores = torch.softmax(logits, dim=1)[:, 1].numpy()
    return loss, float(roc_auc_score(labels.numpy(), scores))


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int, device: torch.device) -> float:
    """Share of ``images`` whose argmax logit is ``labels`` (eval mode, no augmentation)."""
    logits = _logits(model, images, batch_size=batch_size, device=device)
    return float((logits.argmax(dim=1) == labels).to(torch.float64).mean().item())


def _logits(model: nn.Module, images: Tensor, *, batch_size: int, device: torch.device) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [model(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def fit(
    model: nn.Module,
    train: Any,
    val: Any,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    seed: int,
    device: str | torch.device = "cpu",
    augment: bool | Augmentation = True,
    loss: LossFn | None = None,
    mask_available: np.ndarray | None = None,
    select: str = "val_auc",
    target_accuracy: float | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> TrainingResult:
    """Train ``model`` with Adam; keep the weights of the best validation ROC AUC; stop early.

    With ``select="train_accuracy"``: keep the weights of the best accuracy on
    the training labels and stop when it reaches ``target_accuracy``
    (fitting permuted labels, Adebayo et al.'s data randomization test).

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, 1, S, S)`` images in ``[0, 1]`` to ``(B, 2)`` logits. It is
        trained in place, moved to ``device``, and left in **eval mode** with
        the best epoch's weights.
    train, val : ImageSet
        :class:`helpers.data.ImageSet` (anything with ``images (N,S,S)``,
        ``labels (N,)`` in {0, 1} and ``masks (N,S,S)``); both need both classes.
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Training (and validation) batch size. A last training batch of a
        single image is dropped (batch normalization needs two).
    learning_rate : float
        Adam's step size (no weight decay, no schedule).
    patience : int
        Stop after this many epochs without improvement. An epoch improves if
        its validation AUC is higher than the best so far, or equal with a
        lower validation loss (on easy data the AUC saturates at 1.0 and the
        loss still selects the better model). Not used with
        ``select="train_accuracy"``.
    seed : int
        Seeds the order of the batches, the augmentation and torch's global
        generators (dropout) for the duration of the fit; deterministic
        algorithms are requested. Same seed, data, initial weights, device and
        thread count give identical weights.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"auto"`` ...
    augment : bool or Augmentation, optional
        ``True`` applies :class:`Augmentation()` to every training batch
        (images **and** masks), ``False`` none.
    loss : callable, optional
        ``loss(model, batch) -> scalar tensor``, called on every training
        batch ``batch = {"images": (B,1,S,S) float, "labels": (B,) long,
        "masks": (B,1,S,S) float in {0, 1}, "has_mask": (B,) bool,
        "index": (B,) long}`` (augmented images and masks, on ``device``;
        ``index`` indexes ``train``). Default: :func:`classification_loss` with
        :func:`balanced_class_weights` of the training labels. Validation
        always uses the plain cross-entropy and the AUC of
        ``softmax(model(images))[:, 1]``, whatever the loss.
    mask_available : array of bool (len(train),), optional
        Which training images may use their mask as pixel supervision
        (``batch["has_mask"] = mask_available[batch["index"]]``). Default: none.
    select : {"val_auc", "train_accuracy"}, optional
        ``"val_auc"`` (default): the epoch of the best validation AUC is
        kept, early stopping after ``patience`` epochs without improvement.
        ``"train_accuracy"``: after every epoch the accuracy on the training
        images with the labels of ``train`` (eval mode, no augmentation) is
        measured; the epoch of the highest accuracy is kept (ties: the lower
        training loss), training stops as soon as it reaches
        ``target_accuracy`` and otherwise runs all ``epochs``. The validation
        set is still scored every epoch (``val_auc`` in the history) but
        never selects or stops anything: with permuted training labels it
        would stop on the labels the model is not being taught.
    target_accuracy : float in (0, 1], optional
        Required with ``select="train_accuracy"``, rejected otherwise.
    progress : bool, optional
        Print one line per epoch.
    checkpoint : path, optional
        Write a checkpoint there after every epoch that does not end the fit,
        and resume from it when it exists (see the module's *Checkpoints*).
        It must come from a fit with the same arguments: one whose seed,
        schedule, data sizes or parameter shapes differ raises
        :class:`ModelError` naming the file. An unreadable one is set aside
        (``<name>.corrupt``) with a :class:`~helpers._cache.CorruptCacheWarning`
        and the fit starts over. The caller deletes it when done.
    on_epoch_end : callable, optional
        ``on_epoch_end(row)`` after every epoch (``row``: that epoch's
        history entry), once its checkpoint is written; an exception raised
        there stops the fit (an interruption that ``checkpoint`` survives).

    Returns
    -------
    TrainingResult

    Raises
    ------
    ModelError
        Bad settings or data (one class only, mismatched shapes), a model that
        does not return ``(B, 2)`` logits, or a non-finite training loss.
    """
    if select not in SELECTIONS:
        raise ModelError(f"select must be one of {', '.join(SELECTIONS)}, got {select!r}")
    if select == "train_accuracy":
        if (isinstance(target_accuracy, bool) or not isinstance(target_accuracy, (int, float))
                or not math.isfinite(target_accuracy) or not (0.0 < float(target_accuracy) <= 1.0)):
            raise ModelError(f"select='train_accuracy' needs target_accuracy in (0, 1], got {target_accuracy!r}")
    elif target_accuracy is not None:
        raise ModelError(f"target_accuracy={target_accuracy!r} is only used with select='train_accuracy' (select is {select!r})")
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2), ("patience", patience, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ModelError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ModelError(f"learning_rate must be a positive number, got {learning_rate!r}")
    train_images, train_labels, train_masks = _unpack(train, what="train")
    val_images, val_labels, _ = _unpack(val, what="val")
    n = train_images.shape[0]
    if mask_available is None:
        has_mask_all = torch.zeros(n, dtype=torch.bool)
    else:
        has_mask_all = torch.as_tensor(np.asarray(mask_available)).to(torch.bool).ravel()
        if has_mask_all.shape[0] != n:
            raise ModelError(f"mask_available has {has_mask_all.shape[0]} entries; expected one per training image ({n})")
    if augment is True:
        augment = Augmentation()
    elif augment is False or augment is None:
        augment = None
    elif not isinstance(augment, Augmentation):
        raise ModelError(f"augment must be True, False or an Augmentation, got {augment!r}")
    if loss is None:
        loss = functools.partial(classification_loss, class_weights=balanced_class_weights(train_labels))
    device = resolve_device(device)
    seed = int(seed)
    name = getattr(model, "architecture", type(model).__name__)

    result = TrainingResult(seed=seed, selected_on=select,
                            target_accuracy=None if target_accuracy is None else float(target_accuracy))
    start = time.perf_counter()
    model.to(device)
    signature = {
        "format": CHECKPOINT_FORMAT, "seed": seed, "epochs": int(epochs), "batch_size": int(batch_size),
        "learning_rate": float(learning_rate), "patience": int(patience), "select": select,
        "target_accuracy": None if target_accuracy is None else float(target_accuracy),
        "augment": None if augment is None else asdict(augment), "n_train": int(n), "n_val": int(val_images.shape[0]),
        "n_masks": int(has_mask_all.sum()), "architecture": str(name),
        "parameters": [[k, list(v.shape)] for k, v in model.state_dict().items()],
    }
    with _deterministic(seed, device):
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(learning_rate))
        best_state: dict[str, Tensor] | None = None
        best_key = (-math.inf, -math.inf)
        first_epoch = 1
        saved = _read_checkpoint(checkpoint, signature) if checkpoint is not None else None
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            if device.type == "cuda" and saved.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(saved["cuda_rng"], device)
            best_state, best_key = saved["best_state"], tuple(saved["best_key"])
            result.history = list(saved["history"])
            result.best_epoch, result.best_val_auc = int(saved["best_epoch"]), float(saved["best_val_auc"])
            result.epochs_run = first_epoch = int(saved["epoch"])
            first_epoch += 1
            start -= float(saved["seconds"])
            if progress:
                print(f"[{name}] resumed from {checkpoint} after epoch {saved['epoch']}", flush=True)
        for epoch in range(first_epoch, int(epochs) + 1):
            t0 = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=generator)
            total, seen = 0.0, 0
            for begin in range(0, n, int(batch_size)):
                index = order[begin : begin + int(batch_size)]
                if index.numel() < 2:
                    continue
                images, masks = train_images[index], train_masks[index].to(torch.float32)
                if augment is not None:
                    images, masks = augment(images, masks, generator=generator)
                batch = {
                    "images": images.to(device),
                    "labels": train_labels[index].to(device),
                    "masks": masks.to(device),
                    "has_mask": has_mask_all[index].to(device),
                    "index": index.to(device),
                }
                value = loss(model, batch)
                if not torch.isfinite(value):
                    raise ModelError(
                        f"training loss of {name!r} became {value.item()} at epoch {epoch}; lower learning_rate "
                        f"(now {learning_rate})"
                    )
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                total += float(value.detach()) * index.numel()
                seen += index.numel()
            val_loss, val_auc = _evaluate(model, val_images, val_labels, batch_size=int(batch_size), device=device)
            row = {
                "epoch": epoch,
                "train_loss": total / max(seen, 1),
                "val_loss": val_loss,
                "val_auc": val_auc,
            }
            if select == "train_accuracy":
                row["train_accuracy"] = _accuracy(model, train_images, train_labels, batch_size=int(batch_size), device=device)
                key = (row["train_accuracy"], -row["train_loss"])
            else:
                key = (val_auc, -val_loss)
            row["seconds"] = time.perf_counter() - t0
            result.history.append(row)
            result.epochs_run = epoch
            improved = key > best_key
            if improved:
                best_key = key
                result.best_epoch, result.best_val_auc = epoch, val_auc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                extra = f", train accuracy {row['train_accuracy']:.3f}" if "train_accuracy" in row else ""
                print(
                    f"[{name}] epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}, val loss {val_loss:.4f}, "
                    f"val AUC {val_auc:.4f}{extra} ({row['seconds']:.1f} s){' *' if improved else ''}",
                    flush=True,
                )
            if select == "train_accuracy":
                stop = row["train_accuracy"] >= float(target_accuracy) and epoch < epochs
            else:
                stop = epoch - result.best_epoch >= patience and epoch < epochs
            if checkpoint is not None and not stop and epoch < epochs:
                _write_checkpoint(checkpoint, {
                    "signature": signature, "epoch": epoch, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "best_state": best_state, "best_key": list(best_key), "history": result.history,
                    "best_epoch": result.best_epoch, "best_val_auc": result.best_val_auc,
                    "seconds": time.perf_counter() - start,
                })
            if on_epoch_end is not None:
                on_epoch_end(dict(row))
            if stop:
                result.stopped_early = True
                break
    assert best_state is not None  # epochs >= 1 and the first epoch always improves on -inf
    model.load_state_dict(best_state)
    model.eval()
    if select == "train_accuracy":
        result.train_accuracy = float(result.history[result.best_epoch - 1]["train_accuracy"])
        result.reached_target = bool(result.train_accuracy >= float(target_accuracy))
    else:
        result.train_accuracy = _accuracy(model, train_images, train_labels, batch_size=int(batch_size), device=device)
    result.seconds = time.perf_counter() - start
    if progress:
        chosen = "train accuracy" if select == "train_accuracy" else "val AUC"
        value = result.train_accuracy if select == "train_accuracy" else result.best_val_auc
        print(
            f"[{name}] best epoch {result.best_epoch} ({chosen} {value:.4f}); "
            f"{result.epochs_run} epochs in {result.seconds:.1f} s{' (early stop)' if result.stopped_early else ''}",
            flush=True,
        )
    return result


def _write_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _read_checkpoint(path: str | os.PathLike, signature: dict) -> dict | None:
    """The checkpoint at ``path`` if there is one (``None`` otherwise or when unreadable: set aside with a warning).

    Raises
    ------
    ModelError
        The checkpoint belongs to another fit (its signature differs).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        stored = saved["signature"]
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways (zip, pickle, missing keys)
        moved = set_aside(path)
        warnings.warn(f"training checkpoint {path!r} is unreadable ({type(exc).__name__}: {exc}); set aside as "
                      f"{str(moved)!r}, training from the first epoch", CorruptCacheWarning, stacklevel=3)
        return None
    if stored != signature:
        differ = sorted(k for k in set(stored) | set(signature) if stored.get(k) != signature.get(k))
        raise ModelError(f"training checkpoint {path!r} belongs to another fit (it differs in {', '.join(differ)}); "
                         f"delete it to train from the first epoch")
    return saved


def predict_proba(model: nn.Module, images: Any, *, batch_size: int = 64, device: str | torch.device | None = None) -> np.ndarray:
    """P(class 1) = ``softmax(model(images))[:, 1]`` for a batch of images, in eval mode and without gradients.

    Parameters
    ----------
    model : torch.nn.Module
        A two-class model; its train/eval mode is restored afterwards.
    images : ImageSet, array or tensor
        ``(N, S, S)`` or ``(N, 1, S, S)`` in ``[0, 1]``, or an ImageSet.
    batch_size : int, optional
    device : str or torch.device, optional
        Where to run; default: where the model's parameters are (which must
        then be where the model stays).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64.
    """
    tensor = _as_tensor_images(images, what="predict_proba")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = resolve_device(device)
    model.to(device)
    logits = _logits(model, tensor, batch_size=int(batch_size), device=device)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ModelError(f"predict_proba needs a model that returns (N, 2) logits, got {tuple(logits.shape)}")
    return torch.softmax(logits.double(), dim=1)[:, 1].numpy()


def roc_auc_ci(labels: Any, scores: Any, *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> AUCInterval:
    """ROC AUC with a percentile bootstrap CI over images: :func:`helpers.metrics.roc_auc_ci` raising :class:`ModelError`.

    The computation lives in :mod:`helpers.metrics` (no torch), where
    :mod:`helpers.criteria` uses it too; this face keeps the models' error type.

    Raises
    ------
    ModelError
        Lengths differ, a class is missing, or ``level``/``n_bootstrap`` invalid.
    """
    try:
        return _metrics_roc_auc_ci(labels, scores, n_bootstrap=n_bootstrap, seed=seed, level=level)
    except MetricInputError as error:
        raise ModelError(str(error)) from None
