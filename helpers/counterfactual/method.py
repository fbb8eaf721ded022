"""The saliency method "CF": counterfactual impact analysis, registered beside the post-hoc methods.

:func:`register_method` (called by :func:`helpers.saliency.load_plugins` on the
first lookup of the registry) adds ``"CF"`` to :mod:`helpers.saliency.registry`, so every criterion of the book
(localization utility, cascading randomization, repeatability,
reproducibility) evaluates it exactly like the eight methods of Arun et al.::

    from helpers.saliency import explain          # "CF" is loaded with the registry (PLUGINS)
    maps = study.maps(trained, "CF")                           # learned inpainter (default; the study's weights)
    maps = explain(model, images, "CF", perturbation_options={"weights": path})  # the same outside a study
    maps = explain(model, images, "CF", perturbation="blur")   # the heuristic the paper argues against

Every keyword of :func:`~helpers.counterfactual.optimize.optimize_mask` is a
setting (:data:`~helpers.counterfactual.optimize.DEFAULTS`); the
perturbation is the setting ``perturbation`` (``"inpaint_learned"``, the
default, ``"inpaint"``, ``"inpaint_biharmonic"``, ``"blur"``, ``"noise"``,
``"constant"``) with its options in ``perturbation_options``. The learned
inpainter is trained per dataset, so its weights file is an option:
:meth:`helpers.study.Study.maps` adds the study's own
(:meth:`~helpers.study.Study.perturbation_options`); a direct call without
it raises and says so.

Post-processing is ``"none"``: the map is the optimized mask, already in
``[0, 1]``, whose value means "how much of this pixel the counterfactual
replaces"; a rescaling would hide a mask that never grew (a model the
perturbation cannot fool).

References
----------
.. [1] Major, D., Lenis, D., Wimmer, M., Sluiter, G., Berg, A., Bühler, K.
   "Interpreting medical image classifiers by optimization based
   counterfactual impact analysis." ISBI 2020, arXiv:2004.01610.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from helpers.counterfactual.optimize import DEFAULTS, optimize_mask
from helpers.counterfactual.perturbations import CounterfactualError
from helpers.saliency.registry import REGISTRY, register

__all__ = ["METHOD_NAME", "SETTINGS", "counterfactual_saliency"]

#: Name of the method in the saliency registry.
METHOD_NAME = "CF"

#: The registered settings: :data:`DEFAULTS` without ``batch_size``, which is
#: :func:`helpers.saliency.explain`'s own keyword (the images of one call of
#: the method are optimized together; the result does not depend on it).
SETTINGS: dict[str, Any] = {k: v for k, v in DEFAULTS.items() if k != "batch_size"}


def counterfactual_saliency(model: torch.nn.Module, images: Any, *, target: Any = None, **settings: Any) -> np.ndarray:
    """Counterfactual impact maps ``(N, H, W)`` in ``[0, 1]``: the masks of :func:`optimize_mask`.

    The function registered as saliency method ``"CF"``.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier in eval mode (images ``(N, 1, H, W)`` in ``[0, 1]`` to logits ``(N, K)``).
    images : array-like or torch.Tensor
        ``(N, H, W)`` or ``(N, 1, H, W)`` in ``[0, 1]``.
    target : None, LongTensor or see :func:`~helpers.counterfactual.optimize.resolve_target`
        Explained class per image; ``None``: the predicted class.
    **settings
        Keyword options of :func:`optimize_mask` (see :data:`SETTINGS`); all
        images of the call are optimized as one batch.

    Raises
    ------
    CounterfactualError
        An unknown setting (the message lists the valid ones) or any error of :func:`optimize_mask`.

    References
    ----------
    .. [1] Major et al., ISBI 2020, arXiv:2004.01610.
    """
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise CounterfactualError(f"unknown CF settings {unknown}; valid settings: {', '.join(SETTINGS)}")
    n = len(images)
    return optimize_mask(model, images, target=target, batch_size=max(1, n), **settings).masks


def register_method() -> None:
    """Register ``"CF"`` in the saliency registry (called by :func:`helpers.saliency.load_plugins`; idempotent)."""
    if METHOD_NAME in REGISTRY:
        return
    register(
        METHOD_NAME,
        counterfactual_saliency,
        defaults=dict(SETTINGS),
        description=(
            "Counterfactual impact: low-res mask optimized (Adam) so that replacing the region by its "
            "counterfactual (default: a gated-convolution inpainter trained on healthy images) drops the class margin, "
            "with area constraint and total variation"
        ),
        postprocess="none",
        reference=(
            "Major et al. 2020, ISBI, arXiv:2004.01610 (inpainting counterfactuals); objective after Fong & Vedaldi "
            "2017, arXiv:1704.03296 and Fong, Patrick & Vedaldi 2019, arXiv:1910.08485 (area constraint)"
        ),
        handles_predicted=True,
        passes=lambda s: int(s["steps"]),
        version="2",
    )
