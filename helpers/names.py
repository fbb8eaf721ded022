"""The built-in names that settings are checked against, importable without torch.

:mod:`helpers.config` validates a parameter's value against these tuples
before anything heavy is imported; the modules that implement them
(:mod:`helpers.models.zoo`, :mod:`helpers.randomization`) import them from
here, so the two lists can never disagree. Saliency method names are not
here: methods can be registered by plugins (:mod:`helpers.saliency.registry`),
so they are checked where the registry is loaded, by
:func:`helpers.saliency.registry.check_method_settings` (called by
:class:`helpers.study.Study`).
"""

from __future__ import annotations

__all__ = ["ARCHITECTURES", "REINIT_RULES", "BATCHNORM_RULES"]

#: Architectures :func:`helpers.models.build` knows.
ARCHITECTURES = ("smallcnn", "resnet18", "resnet50", "densenet121", "inception_v3")

#: How a randomized block is re-initialized (see :data:`helpers.randomization.REINIT_RULES`' notes).
REINIT_RULES = ("architecture", "reset_parameters", "glorot_uniform", "normal", "kaiming_normal")

#: What happens to the batch-norm layers of a randomized block (see :mod:`helpers.randomization`).
BATCHNORM_RULES = ("reset_affine", "reset_all", "keep")
