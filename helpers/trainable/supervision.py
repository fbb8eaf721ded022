"""Training objective of the self-explaining model, with optional box supervision.

Image-level labels train the logits (cross-entropy). On the images that have a
ground-truth region ("box"; the mask of the data contract: union of boxes for
RSNA, segmentation for SIIM), a pixel term also asks the *abnormal* class
evidence map, read as a per-location logit, to predict the region at the map's
own resolution: binary cross-entropy between ``sigmoid(z_1(u))`` and the share
of cell ``u`` covered by the mask (area downsampling). This is the mixed
weak/strong supervision of Li et al. (2018), applied to our evidence map.

Decisions (stated in the chapter):

* Per-image objective. The loss of image ``i`` is
  ``w_i CE_i + box_weight * has_mask_i * BCE_i`` (``w_i`` the class weight of
  its label, 1 without class weights) and the batch loss is their sum over
  ``sum_i w_i``, so a boxed image weighs the same whatever batch it falls
  in, and without boxes the loss is exactly
  :func:`helpers.models.training.classification_loss` (the plain
  classifiers' loss, balanced class weights in
  :func:`~helpers.trainable.get_trained_self_explaining`).
* The pixel term is applied to every image whose ``has_mask`` is set,
  whatever its label: a negative with ``has_mask`` set (an all-empty mask)
  is pushed to "no evidence" everywhere. :func:`box_subset` gives boxes to
  positive images only, so in our experiments negatives are constrained only
  by their label.
* Images without ``has_mask`` never touch their mask: the mask tensor is
  indexed only at the boxed images, so a batch whose unused masks are NaN
  trains normally (tested).

References
----------
.. [1] Li, Z., Wang, C., Han, M., Xue, Y., Wei, W., Li, L.-J., & Fei-Fei, L.
   (2018). Thoracic disease identification and localization with limited
   supervision. CVPR. arXiv:1711.06373.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from helpers._cache import stable_hash
from helpers.trainable.head import TrainableConfigError

__all__ = ["POSITIVE_CLASS", "DEFAULT_BOX_WEIGHT", "trainable_loss", "box_term", "box_subset", "supervision_seed"]

#: Index of the "abnormal" class, whose evidence map the boxes supervise.
POSITIVE_CLASS = 1
#: Weight of the pixel term per boxed image (relative to its cross-entropy).
DEFAULT_BOX_WEIGHT = 1.0


def box_term(class_maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image pixel loss of the abnormal evidence map against masks, ``(k,)``.

    Parameters
    ----------
    class_maps : torch.Tensor
        Evidence maps ``(k, C, h, w)`` of the boxed images.
    masks : torch.Tensor
        Their masks ``(k, 1, S, S)`` (or ``(k, S, S)``), values in ``[0, 1]``.

    Returns
    -------
    torch.Tensor
        Mean over the ``h x w`` cells of ``BCE(sigmoid(z_1), area-downsampled mask)``.
    """
    masks = masks.float()
    if masks.ndim == 3:
        masks = masks.unsqueeze(1)
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[0] != class_maps.shape[0]:
        raise TrainableConfigError(f"masks must have shape (k, 1, S, S) matching {class_maps.shape[0]} maps, got {tuple(masks.shape)}")
    if not bool(torch.isfinite(masks).all()) or bool(((masks < 0) | (masks > 1)).any()):
        raise TrainableConfigError("masks of the images with has_mask must be finite and in [0, 1]")
    # Share of each evidence cell covered by the region (area averaging).
    target = F.adaptive_avg_pool2d(masks, class_maps.shape[-2:])
    positive = class_maps[:, POSITIVE_CLASS : POSITIVE_CLASS + 1]
    return F.binary_cross_entropy_with_logits(positive, target, reduction="none").flatten(1).mean(dim=1)


def trainable_loss(model, batch: dict, *, box_weight: float = DEFAULT_BOX_WEIGHT, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy on the logits + box supervision on the images that have one.

    Parameters
    ----------
    model : SelfExplainingClassifier
        Needs ``forward_with_maps``.
    batch : dict
        ``{"images" (B,1,S,S), "labels" (B,), "masks" (B,1,S,S), "has_mask" (B,) bool, ...}``
        as yielded by :func:`helpers.models.fit`. ``masks`` is read only at the
        rows where ``has_mask`` is true (and not at all when none is).
    box_weight : float, optional
        Weight of the pixel term of a boxed image (0 disables it).
    class_weights : torch.Tensor, optional
        ``(C,)`` weights of the cross-entropy per class.

    Returns
    -------
    torch.Tensor
        Scalar ``(sum_i w_i CE_i + box_weight * sum_i has_mask_i BCE_i) / sum_i w_i``.
    """
    if not (math.isfinite(float(box_weight)) and float(box_weight) >= 0):
        raise TrainableConfigError(f"box_weight must be a finite number >= 0, got {box_weight!r}")
    if not hasattr(model, "forward_with_maps"):
        raise TrainableConfigError("trainable_loss needs a model built with helpers.trainable.build_self_explaining")
    logits, class_maps, _ = model.forward_with_maps(batch["images"])
    labels = batch["labels"].long()
    if class_weights is None:
        weights = torch.ones_like(labels, dtype=logits.dtype)
    else:
        weights = class_weights.to(device=logits.device, dtype=logits.dtype)[labels]
    total = (weights * F.cross_entropy(logits, labels, reduction="none")).sum()
    has_mask = batch.get("has_mask")
    if has_mask is not None and float(box_weight) > 0:
        has_mask = torch.as_tensor(has_mask, dtype=torch.bool, device=logits.device)
        rows = torch.nonzero(has_mask, as_tuple=False).squeeze(1)
        if rows.numel() > 0:
            masks = batch["masks"][rows.to(batch["masks"].device)].to(logits.device)
            total = total + float(box_weight) * box_term(class_maps[rows], masks).sum()
    return total / weights.sum()


def supervision_seed(seed: int, replicate: int) -> int:
    """Seed of the boxed subset of one replicate, shared by the self-explaining
    model and the supervised localizer so that, at one fraction, both see the
    same regions."""
    return int(stable_hash({"seed": int(seed), "replicate": int(replicate), "role": "box-subset"}, length=8), 16)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def box_subset(labels, train_indices, fraction: float, *, seed: int) -> np.ndarray:
    """Indices of the training images given a box: a seeded share of the positives.

    The positive training images are put in a seeded random order and the first
    ``round(fraction * n_positive)`` (halves rounded up) are kept, so for one
    seed the subsets are nested: the 1 % images are among the 5 % ones, and
    so on. ``fraction == 0`` gives no image.

    Parameters
    ----------
    labels : array-like (N,)
        Labels of the whole dataset (1 = abnormal).
    train_indices : array-like
        Dataset indices of the training split.
    fraction : float
        In ``[0, 1]``.
    seed : int
        Seed of the order.

    Returns
    -------
    numpy.ndarray
        Sorted dataset indices (int64), a subset of the positive training images.
    """
    fraction = float(fraction)
    if not (0.0 <= fraction <= 1.0):
        raise TrainableConfigError(f"box fraction must lie in [0, 1], got {fraction!r}")
    labels = np.asarray(labels)
    train_indices = np.asarray(train_indices, dtype=np.int64)
    positives = np.sort(train_indices[labels[train_indices] == 1])
    k = _round_half_up(fraction * len(positives))
    order = np.random.default_rng(int(seed)).permutation(len(positives))
    return np.sort(positives[order[:k]])
