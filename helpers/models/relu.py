"""ReLU *modules* everywhere, and the layer that GradCAM explains.

Captum's :class:`~captum.attr.GuidedBackprop` (and therefore Guided GradCAM)
overrides the backward pass of :class:`torch.nn.ReLU` **modules** only. A ReLU
applied functionally (``F.relu``, ``torch.relu``, ``Tensor.relu``) is invisible
to it, so the "guided" map silently degrades to the plain gradient there.
torchvision does exactly that in two places:

* InceptionV3's ``BasicConv2d`` ends with ``F.relu(x, inplace=True)`` (every
  ReLU of the network);
* DenseNet's ``forward`` applies ``F.relu`` to the output of ``features``.

ResNet uses modules, but in-place ones, and each residual block calls one
``relu`` module two (BasicBlock) or three (Bottleneck) times.

This module provides drop-in replacements of those building blocks whose
forward passes use one non-inplace :class:`torch.nn.ReLU` module per
application, a checker that *proves* a forward pass calls no functional ReLU
(:func:`count_relu_calls`, :func:`assert_relu_modules`), and
:func:`gradcam_layer`.

References
----------
.. [1] Springenberg, J. T., Dosovitskiy, A., Brox, T., Riedmiller, M. (2015).
   Striving for simplicity: the all convolutional net. ICLR workshop,
   arXiv:1412.6806 (guided backpropagation).
.. [2] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torchvision.models import inception as _tv_inception
from torchvision.models import resnet as _tv_resnet

from helpers.models._errors import ModelError

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "BasicConv2d",
    "make_relus_non_inplace",
    "ReluCalls",
    "count_relu_calls",
    "assert_relu_modules",
    "gradcam_layer",
]


class BasicBlock(_tv_resnet.BasicBlock):
    """torchvision's ResNet ``BasicBlock`` with one non-inplace ReLU module per application.

    The shared in-place ``relu`` of torchvision is replaced by ``relu1`` (after
    ``bn1``) and ``relu2`` (after the residual sum). ReLUs have no parameters,
    so state dicts are unchanged.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.relu
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - same as torchvision
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu2(out + identity)


class Bottleneck(_tv_resnet.Bottleneck):
    """torchvision's ResNet ``Bottleneck`` with ReLU modules ``relu1``, ``relu2``, ``relu3`` (non-inplace)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.relu
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - same as torchvision
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu3(out + identity)


class BasicConv2d(_tv_inception.BasicConv2d):
    """InceptionV3's ``BasicConv2d`` (conv, BN) followed by a non-inplace ``relu`` module instead of ``F.relu``."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__(in_channels, out_channels, **kwargs)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - same as torchvision
        return self.relu(self.bn(self.conv(x)))


def make_relus_non_inplace(model: nn.Module) -> nn.Module:
    """Set ``inplace=False`` on every :class:`torch.nn.ReLU` of ``model`` (in place); returns ``model``.

    An in-place ReLU overwrites its input, which autograd hooks (Captum's
    guided backpropagation, layer attributions) may still need.
    """
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model


# Every public entry point of a rectified linear unit that a forward pass could
# call without going through an ``nn.ReLU`` module.
_FUNCTIONAL_RELUS = frozenset((F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_))


@dataclass(frozen=True)
class ReluCalls:
    """What one forward pass did with ReLUs (see :func:`count_relu_calls`).

    Attributes
    ----------
    module_calls : int
        Calls of :class:`torch.nn.ReLU` modules.
    functional_calls : int
        ReLUs applied outside any ``nn.ReLU`` module (``F.relu``, ``torch.relu``,
        ``Tensor.relu`` and their in-place forms).
    inplace_modules : tuple of str
        Names of ``nn.ReLU`` modules with ``inplace=True``.
    """

    module_calls: int
    functional_calls: int
    inplace_modules: tuple[str, ...]


class _ReluCounter(TorchFunctionMode):
    """Counts relu-like torch functions called while no ``nn.ReLU`` module is running.

    Written by hand: no library reports *which* activations of a model bypass
    its modules. A :class:`~torch.overrides.TorchFunctionMode` sees every
    torch-level call (including ``F.relu`` and ``Tensor.relu``), unlike
    patching ``torch.nn.functional`` attributes, which misses code that
    imported the function under another name.
    """

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 while inside an nn.ReLU module's forward
        self.functional = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.depth == 0 and func in _FUNCTIONAL_RELUS:
            self.functional += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _relu_module_hooks(model: nn.Module, counter: _ReluCounter) -> Iterator[list[int]]:
    calls = [0]

    def pre(_module, _inputs):
        counter.depth += 1
        calls[0] += 1

    def post(_module, _inputs, _output):
        counter.depth -= 1

    handles = []
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def count_relu_calls(model: nn.Module, inputs: Tensor) -> ReluCalls:
    """Run ``model(inputs)`` once without gradients and count module vs functional ReLUs.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; it is run in its current train/eval mode.
    inputs : torch.Tensor
        A valid input batch, e.g. ``torch.rand(2, 1, 64, 64)``.

    Returns
    -------
    ReluCalls
    """
    counter = _ReluCounter()
    with torch.no_grad(), _relu_module_hooks(model, counter) as module_calls:
        with counter:
            model(inputs)
    inplace = tuple(name for name, m in model.named_modules() if isinstance(m, nn.ReLU) and m.inplace)
    return ReluCalls(module_calls=module_calls[0], functional_calls=counter.functional, inplace_modules=inplace)


def assert_relu_modules(model: nn.Module, inputs: Tensor) -> ReluCalls:
    """Raise :class:`ModelError` unless every ReLU of a forward pass is a non-inplace ``nn.ReLU`` module.

    This is the guarantee Captum's guided backpropagation needs (it hooks
    ``nn.ReLU`` modules only).

    Parameters
    ----------
    model : torch.nn.Module
    inputs : torch.Tensor
        A valid input batch.

    Returns
    -------
    ReluCalls
        The counts, when the check passes.

    Raises
    ------
    ModelError
        A functional ReLU was called, an ``nn.ReLU`` module is in-place, or the
        forward pass applied no ReLU module at all.
    """
    calls = count_relu_calls(model, inputs)
    name = getattr(model, "architecture", type(model).__name__)
    if calls.functional_calls:
        raise ModelError(
            f"model {name!r} applies {calls.functional_calls} functional ReLU(s) (F.relu/torch.relu) in forward; "
            "guided backpropagation only sees nn.ReLU modules: build models with helpers.models.build"
        )
    if calls.inplace_modules:
        raise ModelError(
            f"model {name!r} has in-place nn.ReLU modules {list(calls.inplace_modules)[:5]}; "
            "expected inplace=False (see helpers.models.relu.make_relus_non_inplace)"
        )
    if calls.module_calls == 0:
        raise ModelError(f"model {name!r} applied no nn.ReLU module in forward; expected a ReLU network")
    return calls


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The module whose output GradCAM explains: the last convolutional block, after its ReLU.

    ========================  =====================================================
    ``model.architecture``    layer
    ========================  =====================================================
    ``smallcnn``              ``block4``
    ``resnet18``/``resnet50`` ``layer4``
    ``densenet121``           ``features`` (ends with the final ReLU ``relu5``)
    ``inception_v3``          ``Mixed_7c`` (the paper's ``mixed10``)
    ========================  =====================================================

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`helpers.models.build` (it has ``model.architecture``).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ModelError
        The model has no ``architecture`` attribute or an unknown one.

    References
    ----------
    .. [1] Selvaraju, R. R. et al. (2017). Grad-CAM: visual explanations from
       deep networks via gradient-based localization. ICCV. arXiv:1610.02391
    """
    if hasattr(model, "gradcam_layer_name"):  # a model given by the user (helpers.models.external)
        if model.gradcam_layer_name is None:
            raise ModelError(f"no GradCAM layer was found in model {getattr(model, 'architecture', '?')!r} (a "
                             "TorchScript model hides its layers from hooks); name its last convolutional block "
                             "with --param model_gradcam_layer=<module name>, or give the model as ARCH=WEIGHTS")
        return model.get_submodule(model.gradcam_layer_name)
    architecture = getattr(model, "architecture", None)
    paths = {
        "smallcnn": "block4",
        "resnet18": "layer4",
        "resnet50": "layer4",
        "densenet121": "features",
        "inception_v3": "Mixed_7c",
    }
    if architecture not in paths:
        raise ModelError(
            f"gradcam_layer needs a model built by helpers.models.build (model.architecture in {sorted(paths)}), "
            f"got architecture={architecture!r} on a {type(model).__name__}"
        )
    return model.get_submodule(paths[architecture])
