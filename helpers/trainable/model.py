"""A classifier whose spatial evidence map is its explanation.

:class:`SelfExplainingClassifier` = a backbone's feature extractor (any model
of the zoo, cut at its GradCAM layer) + an :class:`~helpers.trainable.head.EvidenceHead`.
It is a drop-in classifier: ``forward(x)`` returns logits ``(N, 2)``, so it is
trained by :func:`helpers.models.fit` and scored like the plain classifiers;
``evidence_map(x, target=...)`` returns the map from which the target's logit
is computed, upsampled to the input size.

This is *our reading* of the "model design element" of Aggarwal et al. (ML4H
2020), whose details we could not retrieve: a weakly supervised
multiple-instance head in the line of CAM / LSE pooling / attention MIL.

References
----------
.. [1] Aggarwal, M., Arun, N., Gupta, S., Vaswani, A., et al. (2020). Towards
   trainable saliency maps in medical imaging. ML4H extended abstract.
   arXiv:2011.07482.
.. [2] Zhou, B., et al. (2016). Learning deep features for discriminative
   localization. CVPR. arXiv:1512.04150.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers import models
from helpers.trainable.head import DEFAULT_POOLING, DEFAULT_SHARPNESS, EvidenceHead, TrainableConfigError

__all__ = ["SelfExplainingClassifier", "build_self_explaining", "truncate_at", "HEAD_SUFFIX"]

#: Appended to the backbone's architecture name.
HEAD_SUFFIX = "+saliency-head"


class SelfExplainingClassifier(nn.Module):
    """Backbone features + evidence head; logits are the aggregated evidence maps.

    Parameters
    ----------
    backbone_features : nn.Module
        Maps images ``(N, 1, S, S)`` in ``[0, 1]`` to features ``(N, K, h, w)``.
    in_channels : int
        ``K``, the number of feature channels.
    pooling : {"lse", "attention", "max", "mean"}, optional
        Aggregation of each class evidence map into its logit (default LSE).
    r : float, optional
        LSE sharpness.
    num_classes : int, optional
        Number of classes (2).
    attention_dim : int, optional
        Hidden size of the attention network (attention pooling only).
    architecture : str, optional
        Name recorded in ``self.architecture``.
    feature_layer_name : str or None, optional
        Qualified name (inside this model) of the module whose output feeds the
        head; the analogue of the GradCAM layer.

    Notes
    -----
    For every pooling, ``logits[:, c] == aggregate(class_maps[:, c])`` exactly
    (see :func:`helpers.trainable.head.aggregate`). The explanation of class
    ``c`` is ``class_maps[:, c]`` (CAM-style: the map of the class explained),
    upsampled bilinearly (``align_corners=False``, as GradCAM's upsampling) to
    the input size.
    """

    def __init__(
        self,
        backbone_features: nn.Module,
        in_channels: int,
        *,
        pooling: str = DEFAULT_POOLING,
        r: float = DEFAULT_SHARPNESS,
        num_classes: int = 2,
        attention_dim: int = 64,
        architecture: str = "custom" + HEAD_SUFFIX,
        feature_layer_name: str | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone_features
        self.head = EvidenceHead(in_channels, num_classes=num_classes, pooling=pooling, r=r, attention_dim=attention_dim)
        self.architecture = str(architecture)
        self.feature_layer_name = feature_layer_name or "backbone"

    @property
    def pooling(self) -> str:
        return self.head.pooling

    @property
    def r(self) -> float:
        return self.head.r

    @property
    def feature_layer(self) -> nn.Module:
        """The module whose output feeds the head (GradCAM's layer for this model)."""
        return self.get_submodule(self.feature_layer_name)

    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logits (N, C), class_maps (N, C, h, w), attention (N, 1, h, w) or None)`` in one pass."""
        _check_images(x)
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_maps(x)[0]

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-location class evidence at the feature resolution, ``(N, C, h, w)``."""
        return self.forward_with_maps(x)[1]

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(N, 1, h, w)`` (attention pooling only)."""
        if self.pooling != "attention":
            raise TrainableConfigError(f"attention_weights needs pooling='attention', this model uses {self.pooling!r}")
        return self.forward_with_maps(x)[2]

    def evidence_map(self, x: torch.Tensor, *, target: int | Sequence[int] | torch.Tensor = 1) -> torch.Tensor:
        """Evidence map of the target class, upsampled to the input size, ``(N, H, W)``.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(N, 1, H, W)`` in ``[0, 1]``.
        target : int, sequence of int or LongTensor (N,), optional
            Class whose map is returned, one for all images or one per image
            (default 1, "abnormal").

        Returns
        -------
        torch.Tensor
            Signed evidence (logit units), ``(N, H, W)``. High = evidence for
            the target class.
        """
        maps = self.class_maps(x)
        index = _target_index(target, n=maps.shape[0], num_classes=maps.shape[1], device=maps.device)
        chosen = maps[torch.arange(maps.shape[0], device=maps.device), index]  # (N, h, w)
        return F.interpolate(chosen.unsqueeze(1), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).squeeze(1)

    def decision_map(self, x: torch.Tensor, *, target: int | Sequence[int] | torch.Tensor = 1) -> torch.Tensor:
        """Evidence of the *decision* for the target class at every location, upsampled, ``(N, H, W)``.

        With two classes: ``z_target − z_other`` (the local log-odds that the
        head pools into its decision), so a location that is evidence for
        both classes alike explains nothing. With one output logit ``z``: ``z``
        for target 1 and ``−z`` for target 0. With more classes: the target's
        evidence minus the mean evidence of the others.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(N, 1, H, W)`` in ``[0, 1]``.
        target : int, sequence of int or LongTensor (N,), optional
            Class explained, one for all images or one per image (default 1).

        Returns
        -------
        torch.Tensor
            Signed decision evidence (logit units), ``(N, H, W)``.
        """
        maps = self.class_maps(x)
        n, c = maps.shape[:2]
        rows = torch.arange(n, device=maps.device)
        if c == 1:
            index = _target_index(target, n=n, num_classes=2, device=maps.device)
            sign = torch.where(index == 1, 1.0, -1.0).to(maps.dtype)
            chosen = maps[:, 0] * sign[:, None, None]
        else:
            index = _target_index(target, n=n, num_classes=c, device=maps.device)
            own = maps[rows, index]
            others = (maps.sum(dim=1) - own) / (c - 1)
            chosen = own - others
        return F.interpolate(chosen.unsqueeze(1), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).squeeze(1)


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise TrainableConfigError(f"images must be a float tensor of shape (N, 1, H, W) in [0, 1], got {shape}")


def _target_index(target: Any, *, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    index = torch.as_tensor(target, dtype=torch.long, device=device)
    if index.ndim == 0:
        index = index.expand(n)
    if index.shape != (n,):
        raise TrainableConfigError(f"target must be one class index or one per image ({n}), got shape {tuple(index.shape)}")
    if bool(((index < 0) | (index >= num_classes)).any()):
        raise TrainableConfigError(f"target classes must lie in [0, {num_classes - 1}], got {index.tolist()}")
    return index


def _call_orders(model: nn.Module, probe: torch.Tensor) -> dict[str, list[str]]:
    """For every module, the names of its direct children in the order a forward pass calls them."""
    orders: dict[str, list[str]] = {}
    names = {id(m): name for name, m in model.named_modules()}
    handles = []

    def pre_hook(module, _inputs):
        name = names[id(module)]
        if not name:
            return
        parent, _, child = name.rpartition(".")
        calls = orders.setdefault(parent, [])
        calls.append(child)

    for module in model.modules():
        handles.append(module.register_forward_pre_hook(pre_hook))
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()
    return orders


def truncate_at(model: nn.Module, layer_name: str, *, probe_size: int = 80) -> nn.Module:
    """The part of ``model`` that computes the output of ``layer_name``, as nested ``nn.Sequential``.

    The model's forward pass is recorded (module call order, eval mode) and the
    modules called before ``layer_name`` (and the layer itself) are re-assembled
    in that order, keeping torchvision's names (``layer4``,
    ``features.denseblock4``, ``Mixed_7c`` ...) and the module objects (so every
    ReLU stays an ``nn.ReLU`` module). The result is then *checked*: on a
    random probe image its output must equal the layer's output in the full
    model; a forward pass with functional operations between the modules (which
    a chain of modules cannot reproduce) raises instead of silently differing.

    Parameters
    ----------
    model : nn.Module
        A classifier of the zoo (consumed: its modules are reused).
    layer_name : str
        Qualified name of the last module kept.
    probe_size : int, optional
        Side of the random probe image (>= 75 for InceptionV3).

    Returns
    -------
    nn.Module
        Maps ``(N, 1, S, S)`` to the layer's output; ``.out_channels`` is the
        number of channels of that output.

    Raises
    ------
    TrainableConfigError
        Unknown layer, a module called twice before the layer, or a chain of
        modules that does not reproduce the layer's output.
    """
    try:
        layer = model.get_submodule(layer_name)
    except AttributeError:
        raise TrainableConfigError(f"model {type(model).__name__} has no module named {layer_name!r}") from None
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(1, 1, probe_size, probe_size, generator=generator)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        orders = _call_orders(model, probe)
    finally:
        handle.remove()
    reference = captured[0]

    def prefix(module: nn.Module, parts: list[str], qualified: str) -> nn.Module:
        if not parts:
            return module
        calls = orders.get(qualified, [])
        head, rest = parts[0], parts[1:]
        if head not in calls:
            raise TrainableConfigError(f"module {qualified + '.' + head if qualified else head!r} is not called in the forward pass")
        kept: OrderedDict[str, nn.Module] = OrderedDict()
        for child in calls:
            if child in kept:
                raise TrainableConfigError(f"module {child!r} of {qualified or type(model).__name__!r} is called twice before {layer_name!r}; cannot cut the model into a chain")
            if child == head:
                kept[child] = prefix(getattr(module, child), rest, f"{qualified}.{child}" if qualified else child)
                break
            kept[child] = getattr(module, child)
        return nn.Sequential(kept)

    truncated = prefix(model, layer_name.split("."), "")
    with torch.no_grad():
        output = truncated(probe)
    if output.shape != reference.shape or not torch.allclose(output, reference, rtol=1e-5, atol=1e-5):
        raise TrainableConfigError(
            f"the modules of {type(model).__name__} called up to {layer_name!r} do not reproduce its output "
            "(the forward pass applies functions between modules); give this architecture module-only forward steps"
        )
    truncated.train(was_training)
    truncated.out_channels = int(reference.shape[1])
    return truncated


def build_self_explaining(
    architecture: str,
    *,
    pooling: str = DEFAULT_POOLING,
    r: float = DEFAULT_SHARPNESS,
    num_classes: int = 2,
    attention_dim: int = 64,
    seed: int = 0,
    probe_size: int = 80,
    backbone_state: Mapping[str, torch.Tensor] | None = None,
    **build_options: Any,
) -> SelfExplainingClassifier:
    """A self-explaining classifier on the backbone of ``helpers.models.build(architecture)``.

    The backbone is the zoo model cut at :func:`helpers.models.gradcam_layer`
    (its last convolutional block, see :func:`truncate_at`); the head is a
    1x1 convolution to per-class evidence maps aggregated by ``pooling``.

    Parameters
    ----------
    architecture : str
        Any architecture of :data:`helpers.models.ARCHITECTURES`.
    pooling, r, num_classes, attention_dim
        See :class:`SelfExplainingClassifier`.
    seed : int, optional
        Seeds the backbone's and the head's initialization.
    probe_size : int, optional
        Side of the probe image used to cut and check the backbone.
    backbone_state : mapping, optional
        A state dict of the whole zoo model ``architecture`` (e.g. a trained
        classifier's), loaded before the model is cut: the backbone starts
        from those weights and only the head from ``seed``.
    **build_options
        Passed to :func:`helpers.models.build` (e.g. ``pretrained``).

    Returns
    -------
    SelfExplainingClassifier
        With ``architecture == architecture + "+saliency-head"``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        base = models.build(architecture, seed=int(seed), **build_options)
        if backbone_state is not None:
            base.load_state_dict(backbone_state)
        layer = models.gradcam_layer(base)
        layer_name = next((name for name, m in base.named_modules() if m is layer), None)
        if layer_name is None:
            raise TrainableConfigError(f"gradcam_layer of {architecture!r} is not a submodule of the model")
        backbone = truncate_at(base, layer_name, probe_size=probe_size)
        model = SelfExplainingClassifier(
            backbone,
            backbone.out_channels,
            pooling=pooling,
            r=r,
            num_classes=num_classes,
            attention_dim=attention_dim,
            architecture=architecture + HEAD_SUFFIX,
            feature_layer_name="backbone." + layer_name,
        )
    model.backbone_architecture = architecture
    return model

