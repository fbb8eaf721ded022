"""GradCAM (GCAM) with Captum and Arun et al.'s Guided GradCAM (GGCAM).

GradCAM
-------
:class:`captum.attr.LayerGradCam` on ``helpers.models.gradcam_layer(model)``
(the last convolutional block; InceptionV3's ``Mixed_7c`` is the paper's
``mixed10``): channel weights are the spatial means of the gradients, the map
is the ReLU of the weighted channel sum (``relu_attributions=True``, Captum's
default is False), then upsampled to the input size.

Upsampling (``upsample``)
~~~~~~~~~~~~~~~~~~~~~~~~~
``"bilinear"`` (default)
    Captum's ``LayerAttribution.interpolate(..., "bilinear")``, i.e.
    :func:`torch.nn.functional.interpolate` with ``align_corners=False``:
    half-pixel centres, so the upsampled map stays aligned with the image.
``"tf1"``
    The paper's resize: PAIR's TF1 GradCAM calls
    ``tf.image.resize_bilinear(align_corners=False)`` without half-pixel
    centres (TensorFlow 1's legacy scaler), which samples source coordinate
    ``dst * in / out``. The result is the aligned map shifted by
    ``(out / in - 1) / 2`` output pixels towards the top-left, with the last
    row/column repeated (e.g. 19.5 px at 320 px from an 8x8 ``mixed10``;
    15.5 px at 128 px from ResNet18's 4x4 ``layer4``). No library offers that
    legacy resize, so it is written here with
    :func:`torch.nn.functional.grid_sample` (``align_corners=True``, border
    padding), checked against TensorFlow's formula in the tests.

The paper divides the map by its maximum and tiles it over 3 channels before
``VisualizeImageGrayscale``; both are no-ops after that post-processing
(``postprocess="paper"``).

Guided GradCAM
--------------
Arun et al. multiply the *post-processed* 2-D GBP map by the *post-processed*
2-D GradCAM map (``ggcam = gbp_mask * grad_mask_2d``,
``scripts/create_maps_rsna.py``) and min-max normalize the product. This is not
Captum's :class:`~captum.attr.GuidedGradCam` (raw guided gradients times the
raw upsampled CAM, nearest upsampling by default).

References
----------
.. [1] Selvaraju, R. R. et al. (2017). Grad-CAM: visual explanations from deep
   networks via gradient-based localization. ICCV. arXiv:1610.02391
.. [2] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [3] PAIR saliency 0.0.5, ``saliency/grad_cam.py`` (TF1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from helpers.models import gradcam_layer
from helpers.saliency import _engine as E
from helpers.saliency._errors import SaliencyError
from helpers.saliency.guided_backprop import check_guided, _guided_backprop
from helpers.saliency.postprocess import visualize_grayscale

__all__ = ["UPSAMPLE_MODES", "gradcam", "guided_gradcam", "upsample", "resize_bilinear_tf1", "resolve_layer"]

UPSAMPLE_MODES = ("bilinear", "tf1")


def resolve_layer(model: nn.Module, layer: str | None, *, label: str) -> nn.Module:
    """The module GradCAM explains: ``helpers.models.gradcam_layer(model)`` or the submodule named ``layer``."""
    if layer is None:
        try:
            return gradcam_layer(model)
        except ValueError as exc:
            raise SaliencyError(f"{label}: {exc}; or pass layer='<module name>'") from None
    if not isinstance(layer, str):
        raise SaliencyError(f"{label}: layer must be a module name (str) or None, got {layer!r}")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n][:20]
        raise SaliencyError(f"{label}: model has no submodule {layer!r}; some valid names: {', '.join(names)}") from None


def resize_bilinear_tf1(x: Tensor, size: tuple[int, int]) -> Tensor:
    """TensorFlow 1's ``resize_bilinear(align_corners=False)`` (legacy, no half-pixel centres).

    Output pixel ``d`` samples source coordinate ``d * in / out``, linearly
    interpolated between ``floor`` and ``min(floor + 1, in - 1)``.

    Parameters
    ----------
    x : Tensor ``(N, C, h, w)``
    size : (H, W)

    Returns
    -------
    Tensor ``(N, C, H, W)``
    """
    n, _, h, w = x.shape
    out_h, out_w = int(size[0]), int(size[1])
    src_y = torch.arange(out_h, dtype=x.dtype, device=x.device) * (h / out_h)
    src_x = torch.arange(out_w, dtype=x.dtype, device=x.device) * (w / out_w)
    # grid_sample with align_corners=True maps -1 / +1 to the centres of the first / last pixel
    gy = src_y * (2.0 / (h - 1)) - 1.0 if h > 1 else torch.full_like(src_y, -1.0)
    gx = src_x * (2.0 / (w - 1)) - 1.0 if w > 1 else torch.full_like(src_x, -1.0)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).expand(n, out_h, out_w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def upsample(cam: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Upsample a layer map ``(N, 1, h, w)`` to ``size`` with ``mode`` (see the module docstring)."""
    if mode == "bilinear":
        return LayerAttribution.interpolate(cam, tuple(int(s) for s in size), interpolate_mode="bilinear")
    if mode == "tf1":
        return resize_bilinear_tf1(cam, size)
    raise SaliencyError(f"GCAM: setting upsample must be one of {', '.join(UPSAMPLE_MODES)}; got {mode!r}")


def _gradcam(model: nn.Module, images: Tensor, target: Tensor | None, layer, mode: str, relu: bool, label: str) -> Tensor:
    E.check_choice(label, "upsample", mode, UPSAMPLE_MODES)
    E.check_choice(label, "relu", relu, (True, False))
    module = resolve_layer(model, layer, label=label)
    forward, target = E.forward_for(model, target)
    cam = LayerGradCam(forward, module).attribute(
        images.clone().requires_grad_(),
        target=0 if target is None else target,
        relu_attributions=bool(relu),
        attr_dim_summation=True,
    )
    if not isinstance(cam, Tensor) or cam.ndim != 4:
        raise SaliencyError(f"{label}: layer {layer or type(module).__name__!r} does not output a (N, C, h, w) feature map")
    return upsample(cam.detach(), images.shape[-2:], mode)


def gradcam(
    model: nn.Module,
    images: Tensor,
    *,
    target: Tensor | None,
    layer: str | None = None,
    upsample: str = "bilinear",
    relu: bool = True,
) -> Tensor:
    """GCAM: Grad-CAM of ``layer`` upsampled to the input size.

    Parameters
    ----------
    model : nn.Module
    images : Tensor ``(N, C, H, W)``
    target : LongTensor ``(N,)`` or None
        ``None``: the predicted class, taken from the same forward pass.
    layer : str, optional
        Name of the explained module; ``None``: ``helpers.models.gradcam_layer(model)``.
    upsample : {"bilinear", "tf1"}, optional
        See the module docstring.
    relu : bool, optional
        Rectify the map (Grad-CAM's definition, the paper's; Captum's default is no ReLU).

    Returns
    -------
    Tensor ``(N, 1, H, W)``
    """
    out = _gradcam(model, images, target, layer, upsample, relu, "GCAM")
    E.progress_update(len(images))
    return out


def guided_gradcam(
    model: nn.Module,
    images: Tensor,
    *,
    target: Tensor | None,
    layer: str | None = None,
    upsample: str = "bilinear",
) -> np.ndarray:
    """GGCAM: product of the post-processed GBP and GradCAM maps (Arun et al.).

    Both factors go through :func:`helpers.saliency.postprocess.visualize_grayscale`
    first, as in the paper; the product is then min-max normalized
    (``postprocess="minmax"``).

    Parameters
    ----------
    model, images, target
        As :func:`gradcam`; the model must pass the GBP ReLU check.
    layer, upsample
        GradCAM settings.

    Returns
    -------
    ndarray ``(N, H, W)``, in ``[0, 1]``
    """
    check_guided(model, images)
    gbp = _guided_backprop(model, images, target)
    cam = _gradcam(model, images, target, layer, upsample, True, "GGCAM")
    gbp_map, _ = visualize_grayscale(gbp, label="GGCAM (GBP factor)")
    cam_map, _ = visualize_grayscale(cam, label="GGCAM (GradCAM factor)")
    E.progress_update(2 * len(images))
    return gbp_map * cam_map
