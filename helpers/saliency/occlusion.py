"""Occlusion (OCC, an extra method): the logit drop when a square patch is blacked out (Captum).

Each pixel's attribution is the mean, over the patches covering it, of
``logit(x) - logit(x with the patch set to baseline)``: positive where hiding
the region lowers the explained logit. The signed map is min-max normalized
(``postprocess="minmax"``), so "important" means "hiding it lowers the score",
unlike the gradient maps whose absolute value is taken.

Patch and stride are fractions of the image side, so one setting fits every
image size. Occlusion needs forward passes only: ``n_windows + 1`` per image.

References
----------
.. [1] Zeiler, M. D., Fergus, R. (2014). Visualizing and understanding
   convolutional networks. ECCV. arXiv:1311.2901
"""

from __future__ import annotations

from captum.attr import Occlusion
from torch import Tensor, nn

from helpers.saliency import _engine as E
from helpers.saliency._errors import SaliencyError

__all__ = ["occlusion", "occlusion_windows"]


def _geometry(size: int, window: float, stride: float) -> tuple[int, int]:
    w = max(1, int(round(window * size)))
    s = max(1, int(round(stride * size)))
    return min(w, size), s


def occlusion_windows(size: int, *, window: float = 0.125, stride: float = 0.0625) -> int:
    """Number of occluded copies of a ``size`` x ``size`` image."""
    w, s = _geometry(size, window, stride)
    per_side = (size - w) // s + 1
    return per_side * per_side


def occlusion(
    model: nn.Module,
    images: Tensor,
    *,
    target: Tensor,
    window: float = 0.125,
    stride: float = 0.0625,
    baseline: float = 0.0,
    internal_batch_size: int | None = None,
) -> Tensor:
    """OCC: Captum :class:`~captum.attr.Occlusion` with a square patch.

    Parameters
    ----------
    model : nn.Module
    images : Tensor ``(N, C, H, W)``, square
    target : LongTensor ``(N,)``
    window : float, optional
        Patch side as a fraction of the image side (1/8).
    stride : float, optional
        Patch step as a fraction of the image side (1/16).
    baseline : float, optional
        Value written into the patch (0: black).
    internal_batch_size : int, optional
        Occluded copies per forward pass (all images of the batch together).

    Returns
    -------
    Tensor ``(N, C, H, W)``
    """
    label = "OCC"
    window = E.check_float(label, "window", window, minimum=1e-6)
    stride = E.check_float(label, "stride", stride, minimum=1e-6)
    if window > 1 or stride > 1:
        raise SaliencyError(f"{label}: window and stride are fractions of the image side in (0, 1], got {window}, {stride}")
    baseline = E.check_float(label, "baseline", baseline, minimum=0.0)
    n, c, h, w_img = images.shape
    if h != w_img:
        raise SaliencyError(f"{label}: needs square images, got {h}x{w_img}")
    w, s = _geometry(h, window, stride)
    per_eval = max(1, int(internal_batch_size or occlusion_windows(h, window=window, stride=stride) * n) // n)
    out = Occlusion(model).attribute(
        images,
        sliding_window_shapes=(c, w, w),
        strides=(c, s, s),
        baselines=baseline,
        target=target,
        perturbations_per_eval=per_eval,
    )
    return out.detach()
