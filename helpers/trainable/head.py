"""The evidence head: per-location class evidence and its global aggregation.

A 1x1 convolution turns the backbone's feature map ``(N, K, h, w)`` into one
evidence map per class ``(N, C, h, w)``; the class logits are a global
aggregation of these maps. Because the logit of class ``c`` is computed *only*
from the map of class ``c``, that map is a complete account of the logit: it is
the explanation, not an approximation of one (the design of Class Activation
Mapping, Zhou et al. 2016, made exact for any pooling).

Four aggregations are offered:

``"lse"`` (default)
    Log-sum-exp pooling with sharpness ``r``,
    ``s_c = (1/r) log( (1/hw) sum_u exp(r z_c(u)) )``
    (Pinheiro & Collobert 2015; Wang et al. 2017, ChestX-ray8). It is a smooth
    maximum: ``r -> 0`` gives the mean (CAM), ``r -> inf`` the maximum. It
    encodes the multiple-instance reading "an image is abnormal when *some*
    region is", yet every location receives gradient (weight
    ``softmax_u(r z_c(u))``), unlike max pooling.
``"attention"``
    Attention-based multiple-instance pooling (Ilse et al. 2018):
    ``a_u = softmax_u(w^T tanh(V h_u))`` and ``s_c = sum_u a_u z_c(u)``.
    With a linear classifier this is exactly Ilse et al.'s
    ``W (sum_u a_u h_u) + b``, rewritten per location.
``"max"``
    Global max pooling (Oquab et al. 2015).
``"mean"``
    Global average pooling, i.e. CAM (Zhou et al. 2016).

Why LSE by default: mean pooling rewards evidence spread over the whole image
(a small opacity must raise the average of every location), max pooling trains
one location per image (slow, noisy), and attention pooling adds a second
learned map (the attention) whose share in the explanation is entangled with
the evidence map. LSE keeps one map per class, an exact read-out, and a single
interpretable knob between the two extremes.

References
----------
.. [1] Pinheiro, P. O., & Collobert, R. (2015). From image-level to pixel-level
   labeling with convolutional networks. CVPR. arXiv:1411.6228.
.. [2] Wang, X., Peng, Y., Lu, L., Lu, Z., Bagheri, M., & Summers, R. M.
   (2017). ChestX-ray8: Hospital-scale chest X-ray database and benchmarks on
   weakly-supervised classification and localization of common thorax
   diseases. CVPR. arXiv:1705.02315.
.. [3] Ilse, M., Tomczak, J. M., & Welling, M. (2018). Attention-based deep
   multiple instance learning. ICML. arXiv:1802.04712.
.. [4] Zhou, B., Khosla, A., Lapedriza, A., Oliva, A., & Torralba, A. (2016).
   Learning deep features for discriminative localization. CVPR.
   arXiv:1512.04150.
.. [5] Oquab, M., Bottou, L., Laptev, I., & Sivic, J. (2015). Is object
   localization for free? Weakly-supervised learning with convolutional
   neural networks. CVPR.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["POOLINGS", "DEFAULT_POOLING", "DEFAULT_SHARPNESS", "TrainableConfigError", "EvidenceHead", "aggregate"]

#: The aggregations of the evidence maps into class logits.
POOLINGS = ("lse", "attention", "max", "mean")
#: Default aggregation (see the module docstring for the reasons).
DEFAULT_POOLING = "lse"
#: Default LSE sharpness ``r``: between the mean (r -> 0) and the max (r -> inf)
#: for evidence values of a few units; chosen on the synthetic data (see the
#: trainable-saliency chapter), not taken from a paper.
DEFAULT_SHARPNESS = 5.0


class TrainableConfigError(ValueError):
    """An invalid option of the self-explaining model or of its training."""


def _check_pooling(pooling: str, r: float) -> None:
    if pooling not in POOLINGS:
        raise TrainableConfigError(f"unknown pooling {pooling!r}; valid poolings: {', '.join(POOLINGS)}")
    if pooling == "lse" and not (math.isfinite(float(r)) and float(r) > 0):
        raise TrainableConfigError(f"LSE sharpness r must be a finite positive number, got {r!r}")


def aggregate(class_maps: torch.Tensor, *, pooling: str, r: float = DEFAULT_SHARPNESS, attention: torch.Tensor | None = None) -> torch.Tensor:
    """Class logits ``(N, C)`` from evidence maps ``(N, C, h, w)``.

    Parameters
    ----------
    class_maps : torch.Tensor
        Per-location class evidence, shape ``(N, C, h, w)``.
    pooling : {"lse", "attention", "max", "mean"}
        The aggregation (see the module docstring).
    r : float, optional
        LSE sharpness (only for ``"lse"``).
    attention : torch.Tensor, optional
        Attention weights ``(N, 1, h, w)`` summing to one over locations
        (only, and required, for ``"attention"``).

    Returns
    -------
    torch.Tensor
        Logits ``(N, C)``.
    """
    _check_pooling(pooling, r)
    if class_maps.ndim != 4:
        raise TrainableConfigError(f"class_maps must have shape (N, C, h, w), got {tuple(class_maps.shape)}")
    flat = class_maps.flatten(2)  # (N, C, hw)
    if pooling == "lse":
        r = float(r)
        # (1/r) * log(mean(exp(r z))) computed stably with logsumexp.
        return (torch.logsumexp(r * flat, dim=2) - math.log(flat.shape[2])) / r
    if pooling == "max":
        return flat.amax(dim=2)
    if pooling == "mean":
        return flat.mean(dim=2)
    if attention is None:
        raise TrainableConfigError("attention pooling needs the attention weights (N, 1, h, w)")
    return (flat * attention.flatten(2)).sum(dim=2)


class EvidenceHead(nn.Module):
    """1x1 convolution to per-class evidence maps, aggregated into logits.

    Parameters
    ----------
    in_channels : int
        Channels of the backbone's feature map.
    num_classes : int, optional
        Number of classes (2: normal, abnormal).
    pooling : {"lse", "attention", "max", "mean"}, optional
        Aggregation of each class map into its logit.
    r : float, optional
        LSE sharpness.
    attention_dim : int, optional
        Hidden size ``L`` of the attention network ``w^T tanh(V h)`` (Ilse et
        al. 2018 use 128 on larger features; only for ``"attention"``).

    Notes
    -----
    ``forward(features)`` returns ``(logits, class_maps, attention)`` where
    ``attention`` is ``None`` except for attention pooling.
    """

    def __init__(self, in_channels: int, *, num_classes: int = 2, pooling: str = DEFAULT_POOLING, r: float = DEFAULT_SHARPNESS, attention_dim: int = 64) -> None:
        super().__init__()
        _check_pooling(pooling, r)
        if int(in_channels) < 1 or int(num_classes) < 2:
            raise TrainableConfigError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels!r}, {num_classes!r}")
        self.pooling = pooling
        self.r = float(r)
        self.num_classes = int(num_classes)
        self.evidence = nn.Conv2d(int(in_channels), self.num_classes, kernel_size=1)
        if pooling == "attention":
            self.attention = nn.Sequential(
                nn.Conv2d(int(in_channels), int(attention_dim), kernel_size=1),
                nn.Tanh(),
                nn.Conv2d(int(attention_dim), 1, kernel_size=1),
            )
        else:
            self.attention = None

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        class_maps = self.evidence(features)
        weights = None
        if self.attention is not None:
            scores = self.attention(features)  # (N, 1, h, w)
            weights = torch.softmax(scores.flatten(2), dim=2).view_as(scores)
        logits = aggregate(class_maps, pooling=self.pooling, r=self.r, attention=weights)
        return logits, class_maps, weights

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}" + (f", r={self.r}" if self.pooling == "lse" else "")
