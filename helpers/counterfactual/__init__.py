"""Counterfactual impact analysis: saliency as the region whose plausible replacement removes the evidence.

After Major et al. (ISBI 2020): a low-resolution mask is optimized (Adam, a
fixed number of steps, batched over images) so that replacing the masked
region by its *counterfactual* -- by default a neighbourhood-conditioned
inpainting -- drops the classifier's score for the explained class, under an
area constraint and a total-variation penalty; the upsampled mask is the
saliency map.

Public API
----------
:func:`optimize_mask`, :class:`MaskResult`, :data:`DEFAULTS`
    The optimization, with its loss history and counterfactuals
    (:mod:`helpers.counterfactual.optimize`; its docstring states and
    justifies every design decision).
:class:`Perturbation`, :data:`PERTURBATIONS`, :func:`make_perturbation`
    The operators behind one interface: ``"inpaint_learned"`` (a gated-
    convolution U-Net trained on healthy images, the default of method CF;
    :mod:`helpers.counterfactual.inpainter`), ``"inpaint"`` (harmonic
    diffusion fill, differentiable), ``"inpaint_biharmonic"``
    (scikit-image), ``"blur"``, ``"noise"``, ``"constant"``
    (:mod:`helpers.counterfactual.perturbations`).
:class:`LearnedInpainting`, :func:`get_trained_inpainter`, :func:`load_inpainter`
    The learned inpainter: trained once per study on the negative training
    images, cached, its weights' sha256 checked on every load.
:func:`counterfactual_images`, :func:`plausibility_stats`
    The counterfactual images of each operator and how plausible they look
    (:mod:`helpers.counterfactual.plausibility`).
Saliency method ``"CF"``
    Registered in :mod:`helpers.saliency.registry` by
    :func:`helpers.counterfactual.method.register_method` (a :data:`helpers.saliency.PLUGINS` entry):
    ``helpers.saliency.explain(model, images, "CF", perturbation="blur")``.

References
----------
.. [1] Major, D., Lenis, D., Wimmer, M., Sluiter, G., Berg, A., Bühler, K.
   "Interpreting medical image classifiers by optimization based
   counterfactual impact analysis." ISBI 2020, arXiv:2004.01610.
.. [2] Fong, R. C., Vedaldi, A. "Interpretable explanations of black boxes by
   meaningful perturbation." ICCV 2017, arXiv:1704.03296.
.. [3] Fong, R., Patrick, M., Vedaldi, A. "Understanding deep networks via
   extremal perturbations and smooth masks." ICCV 2019, arXiv:1910.08485.
.. [4] Liu, G. et al. "Image inpainting for irregular holes using partial
   convolutions." ECCV 2018, arXiv:1804.07723.
.. [5] Yu, J. et al. "Free-form image inpainting with gated convolution."
   ICCV 2019, arXiv:1806.03589.
"""

from __future__ import annotations

from helpers.counterfactual.perturbations import (
    PERTURBATIONS,
    BiharmonicInpainting,
    ConstantFill,
    CounterfactualError,
    DiffusionInpainting,
    GaussianBlur,
    GaussianNoise,
    Perturbation,
    diffusion_fill,
    make_perturbation,
)
from helpers.counterfactual.inpainter import (
    GatedUNet,
    InpainterError,
    LearnedInpainting,
    get_trained_inpainter,
    load_inpainter,
)
from helpers.counterfactual.optimize import DEFAULTS, MaskResult, optimize_mask, resolve_target
from helpers.counterfactual.plausibility import TRAINING_FREE, counterfactual_images, plausibility_stats
from helpers.counterfactual.method import METHOD_NAME, SETTINGS, counterfactual_saliency

__all__ = [
    "CounterfactualError",
    "Perturbation",
    "DiffusionInpainting",
    "BiharmonicInpainting",
    "GaussianBlur",
    "GaussianNoise",
    "ConstantFill",
    "PERTURBATIONS",
    "make_perturbation",
    "diffusion_fill",
    "GatedUNet",
    "InpainterError",
    "LearnedInpainting",
    "get_trained_inpainter",
    "load_inpainter",
    "TRAINING_FREE",
    "DEFAULTS",
    "MaskResult",
    "optimize_mask",
    "resolve_target",
    "counterfactual_images",
    "plausibility_stats",
    "METHOD_NAME",
    "SETTINGS",
    "counterfactual_saliency",
]
