"""Guided backpropagation (GBP) with Captum, refusing models on which it would silently not be guided.

Captum's :class:`~captum.attr.GuidedBackprop` overrides the backward pass of
:class:`torch.nn.ReLU` *modules*. A ReLU applied functionally (``F.relu``,
``torch.relu``, ``Tensor.relu``; torchvision's InceptionV3 and DenseNet do
this) is invisible to it, and the "guided" map quietly becomes the plain
gradient there. Before the first guided pass on a model, :func:`guided_backprop`
runs one forward pass through :func:`helpers.models.count_relu_calls` and
raises if any ReLU bypasses a module (or if there is no ReLU module at all).

References
----------
.. [1] Springenberg, J. T., Dosovitskiy, A., Brox, T., Riedmiller, M. (2015).
   Striving for simplicity: the all convolutional net. ICLR workshop.
   arXiv:1412.6806
.. [2] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS.
   arXiv:1810.03292
"""

from __future__ import annotations

import warnings
import weakref

from captum.attr import GuidedBackprop
from torch import Tensor, nn

from helpers.models import count_relu_calls
from helpers.saliency import _engine as E
from helpers.saliency._errors import SaliencyError

__all__ = ["guided_backprop", "check_guided"]

# Models already checked (structure does not change after build); weak keys so
# that checked models can still be garbage collected.
_CHECKED: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


def check_guided(model: nn.Module, images: Tensor) -> None:
    """Raise :class:`SaliencyError` unless every ReLU of ``model``'s forward pass is an ``nn.ReLU`` module.

    The result is remembered per model object (one forward pass of one image
    the first time).
    """
    if _CHECKED.get(model):
        return
    calls = count_relu_calls(model, images[:1])
    name = getattr(model, "architecture", type(model).__name__)
    note = getattr(model, "relu_note", "")  # why a model given by the user cannot be guided (helpers.models.external)
    if note:
        raise SaliencyError(f"GBP: model {name!r} cannot be guided: {note}")
    if calls.functional_calls:
        raise SaliencyError(
            f"GBP: model {name!r} applies {calls.functional_calls} ReLU(s) functionally (F.relu/torch.relu) in its "
            "forward pass; Captum's guided backpropagation only modifies nn.ReLU modules, so the map would silently "
            "be (partly) the plain gradient. Use nn.ReLU modules (helpers.models.build does)"
        )
    if calls.module_calls == 0:
        raise SaliencyError(
            f"GBP: model {name!r} applies no nn.ReLU module; guided backpropagation would equal the plain gradient"
        )
    _CHECKED[model] = True


def _guided_backprop(model: nn.Module, images: Tensor, target: Tensor | None) -> Tensor:
    forward, target = E.forward_for(model, target)
    with warnings.catch_warnings():
        # Captum announces that it hooks ReLUs and removes the hooks afterwards.
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        out = GuidedBackprop(forward).attribute(images.clone().requires_grad_(), target=0 if target is None else target)
    return out.detach()


def guided_backprop(model: nn.Module, images: Tensor, *, target: Tensor | None) -> Tensor:
    """GBP: gradient where every ReLU passes back only positive gradients at positive inputs.

    Parameters
    ----------
    model : nn.Module
        Every ReLU must be an ``nn.ReLU`` module (checked, see the module docstring).
    images : Tensor ``(N, C, H, W)``
    target : LongTensor ``(N,)`` or None
        ``None``: the predicted class, taken from the same forward pass.

    Returns
    -------
    Tensor ``(N, C, H, W)``

    Raises
    ------
    SaliencyError
        The model applies a functional ReLU or no ReLU module at all.
    """
    check_guided(model, images)
    out = _guided_backprop(model, images, target)
    E.progress_update(len(images))
    return out
