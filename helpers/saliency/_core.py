"""The core of :mod:`helpers.saliency` (private): the built-in methods' registration, targets, ``explain``.

:mod:`helpers.saliency` re-exports the public names; see its docstring.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from helpers.saliency import _engine as _E
from helpers.saliency._errors import (
    ConstantMapWarning,
    CorruptCacheEntryError,
    MapCacheError,
    RegistryError,
    SaliencyError,
    UnknownMethodError,
    UnknownSettingError,
)
from helpers.saliency.gradcam import gradcam as _gradcam
from helpers.saliency.gradcam import guided_gradcam as _guided_gradcam
from helpers.saliency.gradient import gradient as _gradient
from helpers.saliency.gradient import smoothgrad as _smoothgrad
from helpers.saliency.guided_backprop import guided_backprop as _guided_backprop
from helpers.saliency.integrated_gradients import integrated_gradients as _ig
from helpers.saliency.integrated_gradients import smooth_integrated_gradients as _sig
from helpers.saliency.occlusion import occlusion as _occlusion
from helpers.saliency.postprocess import as_channels, normalize, warn_constant
from helpers.saliency.registry import METHODS, REGISTRY, MethodSpec, get, methods, register, unregister
from helpers.saliency.xrai import xrai as _xrai

# The public face (helpers.saliency) re-exports these with the errors and the registry; this private
# module lists only what it defines.
__all__ = ["explain", "explain_with_details", "attribute", "resolve_target", "method_defaults", "describe"]

_ARUN = "Arun et al. 2021, Radiology: AI 3(6) e200267; code QTIM-Lab/Assessing-Saliency-Maps (PAIR saliency)"

# --------------------------------------------------------------------------- registrations (paper order)
if "GRAD" not in REGISTRY:  # re-importing the package (importlib.reload) must not raise
    register(
        "GRAD", _gradient, defaults={}, passes=1, handles_predicted=True,
        description="Vanilla gradient of the explained logit (Captum Saliency)",
        reference=f"Simonyan et al. 2014, arXiv:1312.6034; {_ARUN}",
    )
    register(
        "SG", _smoothgrad,
        defaults={"n_samples": 25, "noise_level": 0.15, "squared": True, "seed": 0},
        passes=lambda s: int(s["n_samples"]),
        description="SmoothGrad squared: mean squared gradient over noisy copies (sigma = 15 % of each image's range)",
        reference=f"Smilkov et al. 2017, arXiv:1706.03825; PAIR GetSmoothedMask(magnitude=True); {_ARUN}",
    )
    register(
        "IG", _ig,
        defaults={"n_steps": 10, "baseline": 0.0, "rule": "paper"},
        passes=lambda s: int(s["n_steps"]),
        description="Integrated gradients from the black image, 10 steps, PAIR's rule",
        reference=f"Sundararajan et al. 2017, arXiv:1703.01365; {_ARUN}",
    )
    register(
        "SIG", _sig,
        defaults={"n_samples": 25, "noise_level": 0.15, "squared": True, "n_steps": 10, "baseline": 0.0,
                  "rule": "paper", "seed": 0},
        passes=lambda s: int(s["n_samples"]) * int(s["n_steps"]),
        description="SmoothGrad squared around integrated gradients (25 noisy copies x 10 steps)",
        reference=f"Smilkov et al. 2017; Sundararajan et al. 2017; {_ARUN}",
    )
    register(
        "GCAM", _gradcam,
        defaults={"layer": None, "upsample": "bilinear", "relu": True},
        passes=1, handles_predicted=True,
        description="GradCAM of the last convolutional block (Captum LayerGradCam, ReLU, bilinear upsampling)",
        reference=f"Selvaraju et al. 2017, arXiv:1610.02391; {_ARUN}",
    )
    register(
        "XRAI", _xrai,
        defaults={"n_steps": 100, "baselines": ("min", "max"), "rule": "paper", "algorithm": "full",
                  "area_threshold": 1.0, "min_pixel_diff": 50},
        passes=lambda s: int(s["n_steps"]) * len(s["baselines"]),
        postprocess="minmax",
        description="XRAI regions (PAIR) ranked by integrated gradients from black and white baselines",
        reference=f"Kapishnikov et al. 2019, arXiv:1906.02825; PAIR saliency 0.2.1; {_ARUN}",
    )
    register(
        "GBP", _guided_backprop, defaults={}, passes=1, handles_predicted=True,
        description="Guided backpropagation (Captum GuidedBackprop; refuses functional ReLUs)",
        reference=f"Springenberg et al. 2015, arXiv:1412.6806; {_ARUN}",
    )
    register(
        "GGCAM", _guided_gradcam,
        defaults={"layer": None, "upsample": "bilinear"},
        passes=2, handles_predicted=True, postprocess="minmax",
        description="Guided GradCAM as Arun et al.: product of the post-processed GBP and GradCAM maps",
        reference=f"Selvaraju et al. 2017; {_ARUN} (create_maps_rsna.py: ggcam = gbp_mask * grad_mask_2d)",
    )
    register(
        "OCC", _occlusion,
        defaults={"window": 0.125, "stride": 0.0625, "baseline": 0.0},
        passes=None, postprocess="minmax",
        description="Occlusion (extra): mean logit drop when a black patch (1/8 of the side, stride 1/16) hides a pixel",
        reference="Zeiler & Fergus 2014, arXiv:1311.2901 (Captum Occlusion)",
    )


# --------------------------------------------------------------------------- targets
def _target_spec(target: Any) -> str | int | list[int]:
    """``"predicted"``, an int, or a list of ints (validated types, not ranges)."""
    if target is None or (isinstance(target, str) and target == "predicted"):
        return "predicted"
    if isinstance(target, str):
        if target == "positive":
            return 1
        raise SaliencyError(f"unknown target {target!r}; expected None/'predicted', 'positive', an int or a sequence of ints")
    if isinstance(target, (bool, np.bool_)):
        raise SaliencyError(f"target must be a class index, got the boolean {target!r}")
    if isinstance(target, (int, np.integer)):
        return int(target)
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    arr = np.asarray(target)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer)):
        raise SaliencyError(f"target sequence must be a 1-D sequence of ints, got {target!r}")
    return [int(v) for v in arr]


def _resolve_targets(model: nn.Module, x: torch.Tensor, target: Any, *, batch_size: int) -> torch.Tensor:
    """CPU LongTensor ``(N,)`` of explained classes (model already in attribution mode)."""
    spec = _target_spec(target)
    device = _E.model_device(model)
    n = len(x)
    with torch.no_grad():
        if spec == "predicted":
            preds = []
            for start in range(0, n, batch_size):
                logits = model(x[start : start + batch_size].to(device))
                if logits.ndim != 2:
                    raise SaliencyError(f"model must return logits of shape (N, classes), got {tuple(logits.shape)}")
                preds.append(logits.argmax(dim=1).cpu())
            return torch.cat(preds).long()
        logits = model(x[:1].to(device))
    n_classes = int(logits.shape[-1])
    values = [spec] * n if isinstance(spec, int) else spec
    if len(values) != n:
        raise SaliencyError(f"target has {len(values)} entries for {n} images")
    bad = [v for v in values if not 0 <= v < n_classes]
    if bad:
        what = "target 'positive' (class 1)" if target == "positive" else f"target class {bad[0]}"
        raise SaliencyError(f"{what} is out of range: the model has {n_classes} output(s)")
    return torch.tensor(values, dtype=torch.long)


def resolve_target(model: nn.Module, images: Any, target: Any = None, *, batch_size: int = 64) -> np.ndarray:
    """The class explained for each image.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, classes)``.
    images : array or tensor ``(N, H, W)`` or ``(N, C, H, W)`` in ``[0, 1]``
    target : None, "predicted", "positive", int or sequence of int
        ``None``/``"predicted"``: arg-max of the logits (the paper's);
        ``"positive"``: class 1 (abnormal); an int: that class for every image;
        a sequence: one class per image.
    batch_size : int, optional
        Images per forward pass (for ``"predicted"``).

    Returns
    -------
    ndarray ``(N,)`` int64

    Raises
    ------
    SaliencyError
        Unknown specification, wrong length, or a class the model does not have.
    """
    x = _E.as_image_tensor(images)
    batch_size = _E.check_int("resolve_target", "batch_size", batch_size, minimum=1)
    with _E.attribution_mode(model):
        return _resolve_targets(model, x, target, batch_size=batch_size).numpy()


# --------------------------------------------------------------------------- running a method
def method_defaults(name: str) -> dict[str, Any]:
    """Default settings of method ``name`` (a copy).

    Raises
    ------
    UnknownMethodError
    """
    return dict(get(name).defaults)


def describe() -> list[dict[str, Any]]:
    """One row per registered method: name, description, post-processing, defaults, reference."""
    return [
        {
            "method": s.name,
            "description": s.description,
            "postprocess": s.postprocess,
            "defaults": dict(s.defaults),
            "reference": s.reference,
        }
        for s in (get(name) for name in methods())
    ]


def _progress_bar(progress: Any, *, label: str, n_images: int, passes: int | None, batch_size: int, chunk: int):
    units = n_images * passes if passes else n_images
    per_step = chunk if passes and passes > 1 else batch_size * (passes or 1)
    if progress is None:
        enabled = math.ceil(units / max(1, per_step)) > 4
    else:
        enabled = bool(progress)
    if not enabled:
        return None
    from tqdm.std import tqdm  # plain text bar: ipywidgets is not a dependency

    return tqdm(total=units, desc=label, unit="pass" if passes else "image", leave=False, dynamic_ncols=True)


def _compute_raw(
    model: nn.Module,
    images: Any,
    method: str,
    *,
    target: Any,
    batch_size: int,
    internal_batch_size: int | None,
    progress: Any,
    settings: dict[str, Any],
) -> tuple[np.ndarray, MethodSpec]:
    """Run ``method``; raw attributions ``(N, C, H, W)`` float32 (``C`` as the method returns it)."""
    spec = get(method)
    resolved = spec.resolve(settings)
    batch_size = _E.check_int(method, "batch_size", batch_size, minimum=1)
    if internal_batch_size is not None:
        internal_batch_size = _E.check_int(method, "internal_batch_size", internal_batch_size, minimum=1)
    x = _E.as_image_tensor(images)
    n, _, height, width = x.shape
    device = _E.model_device(model)
    passes = spec.n_passes(resolved)
    chunk = internal_batch_size or batch_size
    outs: list[np.ndarray] = []
    with _E.attribution_mode(model):
        fused = spec.handles_predicted and _target_spec(target) == "predicted"
        targets = None if fused else _resolve_targets(model, x, target, batch_size=batch_size)
        bar = _progress_bar(progress, label=method, n_images=n, passes=passes, batch_size=batch_size, chunk=chunk)
        try:
            with _E.progress_scope(bar):
                for start in range(0, n, batch_size):
                    xb = x[start : start + batch_size].to(device)
                    tb = None if targets is None else targets[start : start + batch_size].to(device)
                    kwargs = dict(resolved)
                    if spec.takes_internal_batch_size:
                        kwargs["internal_batch_size"] = chunk
                    raw = as_channels(spec.fn(model, xb, target=tb, **kwargs), label=method)
                    if raw.shape[0] != len(xb) or raw.shape[-2:] != (height, width):
                        raise SaliencyError(
                            f"method {method!r} returned an attribution of shape {raw.shape}; expected "
                            f"({len(xb)}, {height}, {width}) or ({len(xb)}, C, {height}, {width})"
                        )
                    outs.append(raw.astype(np.float32))
                    if bar is not None:
                        bar.n = (start + len(xb)) * (passes or 1)
                        bar.refresh()
        finally:
            if bar is not None:
                bar.close()
    return np.concatenate(outs), spec


def explain_with_details(
    model: nn.Module,
    images: Any,
    method: str,
    *,
    target: Any = None,
    batch_size: int = 16,
    internal_batch_size: int | None = None,
    progress: bool | None = None,
    **settings: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`explain` that also returns the raw attributions and the constant-map flags, without warning.

    Returns
    -------
    maps : ndarray ``(N, H, W)`` float32 in ``[0, 1]``
    raw : ndarray ``(N, C, H, W)`` float32, the method's raw output
    constant : ndarray ``(N,)`` bool, maps that were constant (returned as zeros)
    """
    raw, spec = _compute_raw(
        model, images, method, target=target, batch_size=batch_size,
        internal_batch_size=internal_batch_size, progress=progress, settings=settings,
    )
    maps, constant = normalize(raw, kind=spec.postprocess, label=method)
    return maps, raw, constant


def explain(
    model: nn.Module,
    images: Any,
    method: str,
    *,
    target: Any = None,
    batch_size: int = 16,
    internal_batch_size: int | None = None,
    progress: bool | None = None,
    **settings: Any,
) -> np.ndarray:
    """Saliency maps of ``images`` for ``model`` with ``method``, post-processed to ``[0, 1]``.

    Parameters
    ----------
    model : nn.Module
        Takes ``(N, C, H, W)`` images in ``[0, 1]``, returns logits ``(N, classes)``.
        Put in eval mode with parameter gradients off during the call, then restored.
    images : array or tensor ``(N, H, W)`` or ``(N, C, H, W)`` in ``[0, 1]``
        Moved to the model's device batch by batch.
    method : str
        One of :data:`METHODS`.
    target : None, "predicted", "positive", int or sequence of int, optional
        Class explained (see :func:`resolve_target`); default: the predicted class.
    batch_size : int, optional
        Images per call of the method.
    internal_batch_size : int, optional
        Perturbed inputs (noise samples x integration steps) per
        forward+backward pass for SG, IG, SIG, XRAI and OCC; default
        ``batch_size``.
    progress : bool, optional
        Text progress bar; ``None``: only when the work spans more than four batches.
    **settings
        Method settings (see :func:`method_defaults`), e.g. ``n_samples=5``.

    Returns
    -------
    ndarray ``(N, H, W)`` float32 in ``[0, 1]``

    Raises
    ------
    UnknownMethodError, UnknownSettingError, SaliencyError

    Warns
    -----
    ConstantMapWarning
        Some maps were constant (returned as all zeros).

    Examples
    --------
    >>> maps = explain(model, images, "SG", n_samples=5)  # doctest: +SKIP
    """
    maps, _, constant = explain_with_details(
        model, images, method, target=target, batch_size=batch_size,
        internal_batch_size=internal_batch_size, progress=progress, **settings,
    )
    warn_constant(constant, label=method, stacklevel=2)
    return maps


def attribute(
    model: nn.Module,
    images: Any,
    method: str,
    *,
    target: Any = None,
    batch_size: int = 16,
    internal_batch_size: int | None = None,
    progress: bool | None = None,
    **settings: Any,
) -> np.ndarray:
    """Raw signed 2-D maps (the method's attribution summed over channels), before post-processing.

    Same parameters as :func:`explain`. For GGCAM the raw map is the product of
    the two post-processed factors; for XRAI the region gains.

    Returns
    -------
    ndarray ``(N, H, W)`` float32
    """
    raw, _ = _compute_raw(
        model, images, method, target=target, batch_size=batch_size,
        internal_batch_size=internal_batch_size, progress=progress, settings=settings,
    )
    return raw.sum(axis=1).astype(np.float32)
