"""The saliency method "TRAINABLE": the self-explaining model's own evidence map.

Registered in :mod:`helpers.saliency.registry` so that every criterion of the
book (localization utility, cascading randomization, repeatability,
reproducibility) evaluates it exactly like the post-hoc methods.

The map explains the **decision**: the local log-odds ``z₁ − z₀`` of the
explained class against the other (:meth:`SelfExplainingClassifier.decision_map`),
kept where it is positive (evidence *for* the explained class, as Grad-CAM's
ReLU keeps), then post-processed exactly like every post-hoc map (the paper's
absolute value, 99th-percentile clip and scaling, ``postprocess="paper"``).
"""

from __future__ import annotations

import torch

from helpers.saliency.registry import REGISTRY, register
from helpers.trainable.head import TrainableConfigError
from helpers.trainable.model import SelfExplainingClassifier

__all__ = ["NotSelfExplainingError", "trainable_saliency"]


class NotSelfExplainingError(TrainableConfigError):
    """TRAINABLE was asked to explain a model without an evidence head."""


def trainable_saliency(model: torch.nn.Module, images: torch.Tensor, *, target: torch.Tensor, **settings) -> torch.Tensor:
    """Evidence map of ``target`` for each image, ``(N, H, W)`` (one forward pass, no gradient).

    Parameters
    ----------
    model : SelfExplainingClassifier
        A model from :func:`helpers.trainable.build_self_explaining`.
    images : torch.Tensor
        ``(N, 1, H, W)`` in ``[0, 1]``.
    target : torch.LongTensor
        ``(N,)`` class explained per image.
    **settings
        None accepted (the map has no setting).

    Raises
    ------
    NotSelfExplainingError
        ``model`` has no evidence head.
    TrainableConfigError
        A setting was passed.
    """
    if settings:
        raise TrainableConfigError(f"TRAINABLE takes no settings, got {sorted(settings)}")
    if not isinstance(model, SelfExplainingClassifier):
        name = getattr(model, "architecture", type(model).__name__)
        raise NotSelfExplainingError(
            f"TRAINABLE needs a model built with helpers.trainable.build_self_explaining; got {name!r}, which has no evidence head"
        )
    with torch.no_grad():
        return torch.relu(model.decision_map(images.detach(), target=target))


def register_method() -> None:
    """Register ``"TRAINABLE"`` in the saliency registry (called by :func:`helpers.saliency.load_plugins`; idempotent)."""
    if "TRAINABLE" in REGISTRY:
        return
    register(
        "TRAINABLE",
        trainable_saliency,
        defaults={},
        description="Trainable saliency: the decision evidence (z1 - z0, positive part) of a self-explaining classifier "
                    "(LSE-pooled 1x1-conv head), upsampled bilinearly, post-processed as the paper's maps",
        postprocess="paper",
        version="2",  # 1 explained z1 alone with min-max post-processing
        reference="Our reading of Aggarwal et al. (ML4H 2020, arXiv:2011.07482); head after Pinheiro & Collobert (2015), Wang et al. (2017), Zhou et al. (2016)",
    )
