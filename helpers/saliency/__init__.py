"""Saliency maps of the book: the eight methods of Arun et al. (2021) and more, behind one function.

Public API
----------
:data:`METHODS`
    Registered method names, a live tuple-like view: ``"GRAD", "SG", "IG",
    "SIG", "GCAM", "XRAI", "GBP", "GGCAM"`` (the paper's, in its order), then
    extras (``"OCC"``) and whatever extension packages register.
    :func:`methods` returns a snapshot tuple.
:func:`explain`
    Maps ``(N, H, W)`` ``float32`` in ``[0, 1]``.
:func:`attribute`
    The raw signed 2-D maps (channel-summed attribution) before post-processing.
:func:`resolve_target`
    Classes a ``target`` specification explains.
:func:`method_defaults`, :func:`describe`
    Default settings; a table of the methods.
:func:`register`
    Add a method (see :mod:`helpers.saliency.registry`).
:data:`PLUGINS`, :func:`load_plugins`
    Extension packages' registration functions (``"CF"``, ``"TRAINABLE"``),
    called explicitly on the first lookup of the registry, not by importing
    them here (so the extensions, which import the registry, form no import
    cycle with this package).
:class:`~helpers.saliency.cache.MapCache`
    On-disk cache of maps keyed by model, state, method, settings and image.

=======  ===========================================================  =================
name     what (settings as in Arun et al.)                            post-processing
=======  ===========================================================  =================
GRAD     gradient of the explained logit                              paper
SG       SmoothGrad²: 25 noisy copies, sigma 15 % of each image range  paper
IG       integrated gradients, 10 steps from black, PAIR's rule       paper
SIG      SmoothGrad² around IG (25 x 10 points)                       paper
GCAM     GradCAM of the last conv block, ReLU, bilinear upsampling    paper
XRAI     PAIR XRAI on IG from black and white (100 steps each)        minmax
GBP      guided backpropagation                                       paper
GGCAM    product of post-processed GBP and GCAM maps                  minmax
OCC      occlusion (extra): logit drop under a black patch            minmax
=======  ===========================================================  =================

Execution
---------
The model is put in eval mode with parameter gradients off, and restored
afterwards. Images go to the model's device in batches of ``batch_size``; the
perturbed copies of SG, IG, SIG and XRAI (noise samples x integration steps)
go through the model ``internal_batch_size`` at a time (default
``batch_size``). Noise is drawn per image from a generator seeded by
``(seed, pixels)``, so a map does not depend on the batch it was computed in.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [2] Kokhlikyan, N. et al. (2020). Captum: a unified and generic model
   interpretability library for PyTorch. arXiv:2009.07896
"""

from __future__ import annotations

from helpers.saliency._core import attribute, describe, explain, explain_with_details, method_defaults, resolve_target
from helpers.saliency._errors import (
    ConstantMapWarning,
    CorruptCacheEntryError,
    MapCacheError,
    RegistryError,
    SaliencyError,
    UnknownMethodError,
    UnknownSettingError,
)
from helpers.saliency.registry import METHODS, PLUGINS, MethodSpec, get, load_plugins, methods, register, unregister

__all__ = [
    "METHODS",
    "methods",
    "explain",
    "explain_with_details",
    "attribute",
    "resolve_target",
    "method_defaults",
    "describe",
    "register",
    "unregister",
    "MethodSpec",
    "SaliencyError",
    "UnknownMethodError",
    "UnknownSettingError",
    "RegistryError",
    "MapCacheError",
    "CorruptCacheEntryError",
    "ConstantMapWarning",
    "get",
    "PLUGINS",
    "load_plugins",
]
