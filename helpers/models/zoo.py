"""Model zoo: single-channel classifiers whose every ReLU is an ``nn.ReLU`` module.

Every model follows the model contract of ``CONTRIBUTING.md``:

* input: images in ``[0, 1]``, shape ``(N, in_channels, S, S)``; the first
  module (``input_scaling``, :class:`InputScaling`) maps them to ``[-1, 1]``
  as in Arun et al. (Keras ``(x/255 - 0.5) * 2``), so the all-zero image is the
  black baseline of integrated gradients;
* output: logits ``(N, num_classes)``; class 1 is "abnormal";
* every ReLU is a non-inplace :class:`torch.nn.ReLU` module (see
  :mod:`helpers.models.relu`);
* module names follow torchvision (``conv1``, ``layer4``, ``fc``,
  ``features.denseblock4``, ``classifier``, ``Mixed_7c`` ...); the small CNN has
  ``block1`` ... ``block4`` then ``fc``;
* ``model.architecture`` names the architecture.

Weights are initialized from scratch by each architecture's own initializer
(:data:`INITIALIZERS`, torchvision's rules, drawn from ``seed`` when given) or
loaded from a **local** state-dict file (``pretrained=``); nothing is ever
downloaded. The same initializer functions re-draw the weights of the
model-randomization test (:mod:`helpers.randomization`, ``reinit="architecture"``),
so "re-initialized" means "drawn as at construction".

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [2] He, K., Zhang, X., Ren, S., Sun, J. (2016). Deep residual learning for
   image recognition. CVPR. arXiv:1512.03385
.. [3] Huang, G., Liu, Z., van der Maaten, L., Weinberger, K. Q. (2017).
   Densely connected convolutional networks. CVPR. arXiv:1608.06993
.. [4] Szegedy, C. et al. (2016). Rethinking the Inception architecture for
   computer vision. CVPR. arXiv:1512.00567
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torchvision.models import densenet as _tv_densenet
from torchvision.models import inception as _tv_inception
from torchvision.models import resnet as _tv_resnet

from helpers.models._errors import ModelError
from helpers.names import ARCHITECTURES as _ARCHITECTURES
from helpers.models.relu import BasicBlock, BasicConv2d, Bottleneck, make_relus_non_inplace

__all__ = [
    "ARCHITECTURES",
    "MIN_IMAGE_SIZE",
    "InputScaling",
    "SmallCNN",
    "ResNet",
    "DenseNet",
    "Inception3",
    "build",
    "load_pretrained",
    "file_sha256",
    "INITIALIZERS",
    "init_kaiming_fan_out",
    "init_densenet",
    "init_inception",
    "initialize",
]

#: Architectures :func:`build` knows (defined in :mod:`helpers.names`, which config checks without torch).
ARCHITECTURES = _ARCHITECTURES

#: Smallest square input (pixels) on which each architecture's forward pass
#: runs (measured with torchvision 0.29): InceptionV3's unpadded stem and
#: reduction blocks need 75 px, DenseNet121's three 2x2 transition poolings
#: 29 px, the small CNN's three 2x2 max-poolings 8 px; ResNet pads every
#: stride and runs on any size (its last block is 1x1 below 33 px).
MIN_IMAGE_SIZE = {
    "smallcnn": 8,
    "resnet18": 1,
    "resnet50": 1,
    "densenet121": 29,
    "inception_v3": 75,
}


class InputScaling(nn.Module):
    """First module of every model: checks the input shape and maps ``[0, 1]`` to ``[-1, 1]``.

    Parameters
    ----------
    in_channels : int
        Expected number of channels.
    min_size : int
        Smallest height/width the architecture behind it accepts.
    architecture : str
        Named in error messages.
    """

    def __init__(self, *, in_channels: int, min_size: int, architecture: str) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.min_size = int(min_size)
        self.architecture = architecture

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ModelError(
                f"model {self.architecture!r} expects images of shape (N, {self.in_channels}, S, S) in [0, 1], "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise ModelError(
                f"model {self.architecture!r} needs images of at least {self.min_size}x{self.min_size} px, "
                f"got {x.shape[-2]}x{x.shape[-1]}; raise image_size"
            )
        return x * 2.0 - 1.0

    def extra_repr(self) -> str:  # noqa: D102
        return f"in_channels={self.in_channels}, min_size={self.min_size}, [0, 1] -> [-1, 1]"


def _put_first(model: nn.Module, name: str, module: nn.Module) -> None:
    """Register ``module`` as ``model.<name>`` and make it the first child (printing/iteration order)."""
    model.add_module(name, module)
    children = model._modules  # a plain dict in recent torch: rebuild it in place
    others = [(k, v) for k, v in children.items() if k != name]
    children.clear()
    children[name] = module
    children.update(others)


def _scaling(name: str, in_channels: int) -> InputScaling:
    return InputScaling(in_channels=in_channels, min_size=MIN_IMAGE_SIZE[name], architecture=name)


def init_kaiming_fan_out(module: nn.Module) -> None:
    """SmallCNN's and ResNet's initializer of one module (in place; children untouched).

    torchvision's ResNet rule: convolution weights ~ Kaiming-normal with
    ``mode="fan_out"`` and the ReLU gain (std ``sqrt(2 / (out_channels * k * k))``),
    batch-norm γ = 1, β = 0; a linear layer keeps PyTorch's default
    (``reset_parameters``: Kaiming-uniform with ``a = sqrt(5)`` weights, uniform
    biases in ``±1/sqrt(fan_in)``), which torchvision does not override.
    Modules of other types are left alone.

    References
    ----------
    .. [1] He, K., Zhang, X., Ren, S., Sun, J. (2015). Delving deep into
       rectifiers. ICCV. arXiv:1502.01852
    """
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, _BatchNorm) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        module.reset_parameters()


def init_densenet(module: nn.Module) -> None:
    """DenseNet121's initializer of one module (in place): torchvision's DenseNet rule.

    Convolution weights ~ Kaiming-normal with torchvision's call defaults
    (``mode="fan_in"``, leaky-ReLU gain with ``a = 0``, i.e. std
    ``sqrt(2 / fan_in)``); batch-norm γ = 1, β = 0; linear weights PyTorch's
    default (Kaiming-uniform, ``a = sqrt(5)``) with zero bias.

    References
    ----------
    .. [1] Huang, G. et al. (2017). Densely connected convolutional networks.
       CVPR. arXiv:1608.06993 (torchvision's implementation)
    """
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, _BatchNorm) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        module.reset_parameters()
        nn.init.zeros_(module.bias)


def init_inception(module: nn.Module) -> None:
    """InceptionV3's initializer of one module (in place): torchvision's ``init_weights=True`` rule.

    Convolution and linear weights ~ normal(0, 0.1²) truncated to ``[-2, 2]``
    (a module's ``stddev`` attribute overrides 0.1, as torchvision's
    auxiliary head sets); a linear bias keeps PyTorch's default uniform draw
    (torchvision does not override it); batch-norm γ = 1, β = 0.

    References
    ----------
    .. [1] Szegedy, C. et al. (2016). Rethinking the Inception architecture for
       computer vision. CVPR. arXiv:1512.00567 (torchvision's implementation)
    """
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        if isinstance(module, nn.Linear):
            module.reset_parameters()  # the bias draw; the weight is replaced below
        elif module.bias is not None:
            nn.init.zeros_(module.bias)
        std = float(getattr(module, "stddev", 0.1))
        nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2, b=2)
    elif isinstance(module, _BatchNorm) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


#: Each architecture's own initializer of one module (applied to every module
#: by :func:`initialize`; :func:`build` initializes every model with it).
INITIALIZERS = {
    "smallcnn": init_kaiming_fan_out,
    "resnet18": init_kaiming_fan_out,
    "resnet50": init_kaiming_fan_out,
    "densenet121": init_densenet,
    "inception_v3": init_inception,
}


def initialize(module: nn.Module, architecture: str) -> nn.Module:
    """Apply ``architecture``'s own initializer (:data:`INITIALIZERS`) to ``module`` and all its submodules, in place.

    Draws from torch's global generator (seed it, or use
    :func:`torch.random.fork_rng`); returns ``module``.

    Raises
    ------
    ModelError
        Unknown architecture.
    """
    if architecture not in INITIALIZERS:
        raise ModelError(f"no initializer for architecture {architecture!r}; valid architectures: {', '.join(INITIALIZERS)}")
    rule = INITIALIZERS[architecture]
    with torch.no_grad():
        for submodule in module.modules():
            rule(submodule)
    return module


class SmallCNN(nn.Module):
    """A fast four-block CNN for CPU runs: ``block1``..``block4`` (Conv3x3-BN-ReLU, max-pool after
    blocks 1-3), global average pooling and a linear ``fc``.

    At 128 px the last block (GradCAM's layer) is a 16x16 map, finer than
    ResNet's 4x4.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    widths : tuple of 4 int
        Channels of the four blocks.
    """

    def __init__(self, *, num_classes: int = 2, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ModelError(f"SmallCNN needs 4 block widths, got {widths!r}")
        self.input_scaling = _scaling("smallcnn", in_channels)
        c_in = in_channels
        for i, width in enumerate(widths, start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict(
                conv=nn.Conv2d(c_in, width, kernel_size=3, padding=1, bias=False),
                bn=nn.BatchNorm2d(width),
                relu=nn.ReLU(),
            )
            if i < len(widths):
                layers["pool"] = nn.MaxPool2d(2)
            self.add_module(f"block{i}", nn.Sequential(layers))
            c_in = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        initialize(self, "smallcnn")

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        x = self.input_scaling(x)
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNet(_tv_resnet.ResNet):
    """torchvision ResNet with ``in_channels`` input channels, ``input_scaling`` and ReLU modules."""

    def __init__(self, block: type, layers: list[int], *, name: str, num_classes: int, in_channels: int) -> None:
        super().__init__(block, layers, num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        initialize(self, name)
        _put_first(self, "input_scaling", _scaling(name, in_channels))
        make_relus_non_inplace(self)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self._forward_impl(self.input_scaling(x))


class DenseNet(_tv_densenet.DenseNet):
    """torchvision DenseNet-BC with ``in_channels`` inputs, ``input_scaling`` and ReLU modules.

    torchvision applies ``F.relu`` to the output of ``features`` in
    ``forward``; here that ReLU is the module ``features.relu5``, so
    ``features`` outputs the rectified final feature map (GradCAM's layer) and
    ``forward`` only pools and classifies.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        growth_rate: int = 32,
        block_config: tuple[int, int, int, int] = (6, 12, 24, 16),
        num_init_features: int = 64,
    ) -> None:
        super().__init__(growth_rate, block_config, num_init_features, num_classes=num_classes)
        self.features.conv0 = nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
        self.features.add_module("relu5", nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        initialize(self, "densenet121")
        _put_first(self, "input_scaling", _scaling("densenet121", in_channels))
        make_relus_non_inplace(self)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        out = self.features(self.input_scaling(x))
        return self.classifier(torch.flatten(self.avgpool(out), 1))


class Inception3(_tv_inception.Inception3):
    """torchvision InceptionV3 with ``in_channels`` inputs, ``input_scaling`` and ReLU modules.

    As in Arun et al.'s Keras model: no auxiliary classifier, no ImageNet
    input transform (inputs are scaled to ``[-1, 1]``), and global average
    pooling straight into the linear ``fc`` (``dropout`` is 0 by default).
    Every ``BasicConv2d`` ends with a ReLU module.
    """

    def __init__(self, *, num_classes: int, in_channels: int, dropout: float = 0.0) -> None:
        conv = BasicConv2d
        blocks = [
            conv,
            *(
                functools.partial(cls, conv_block=conv)
                for cls in (
                    _tv_inception.InceptionA,
                    _tv_inception.InceptionB,
                    _tv_inception.InceptionC,
                    _tv_inception.InceptionD,
                    _tv_inception.InceptionE,
                    _tv_inception.InceptionAux,
                )
            ),
        ]
        super().__init__(
            num_classes=num_classes,
            aux_logits=False,
            transform_input=False,
            inception_blocks=blocks,
            init_weights=False,  # initialize() below applies the same rule once, to the final modules
            dropout=dropout,
        )
        self.Conv2d_1a_3x3 = conv(in_channels, 32, kernel_size=3, stride=2)
        initialize(self, "inception_v3")
        _put_first(self, "input_scaling", _scaling("inception_v3", in_channels))
        make_relus_non_inplace(self)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        logits, _aux = self._forward(self.input_scaling(x))
        return logits


_CONSTRUCTORS = {
    "smallcnn": lambda nc, ic: SmallCNN(num_classes=nc, in_channels=ic),
    "resnet18": lambda nc, ic: ResNet(BasicBlock, [2, 2, 2, 2], name="resnet18", num_classes=nc, in_channels=ic),
    "resnet50": lambda nc, ic: ResNet(Bottleneck, [3, 4, 6, 3], name="resnet50", num_classes=nc, in_channels=ic),
    "densenet121": lambda nc, ic: DenseNet(num_classes=nc, in_channels=ic),
    "inception_v3": lambda nc, ic: Inception3(num_classes=nc, in_channels=ic),
}

# First convolution (adapted to ``in_channels`` when loading weights) and
# classification head (replaced for ``num_classes``) of each architecture.
_FIRST_CONV = {
    "smallcnn": "block1.conv.weight",
    "resnet18": "conv1.weight",
    "resnet50": "conv1.weight",
    "densenet121": "features.conv0.weight",
    "inception_v3": "Conv2d_1a_3x3.conv.weight",
}
_HEAD = {
    "smallcnn": "fc.",
    "resnet18": "fc.",
    "resnet50": "fc.",
    "densenet121": "classifier.",
    "inception_v3": "fc.",
}


def build(
    name: str,
    *,
    num_classes: int = 2,
    in_channels: int = 1,
    pretrained: str | os.PathLike | None = None,
    image_size: int | None = None,
    seed: int | None = None,
) -> nn.Module:
    """A classifier of architecture ``name`` following the model contract.

    Parameters
    ----------
    name : str
        One of :data:`ARCHITECTURES`.
    num_classes : int, optional
        Outputs of the head (2: class 1 is "abnormal").
    in_channels : int, optional
        Input channels (1 for radiographs).
    pretrained : path, optional
        Local state-dict file for the backbone (see :func:`load_pretrained`);
        never downloaded.
    image_size : int, optional
        Working size, when known: a size the architecture cannot take raises
        here instead of at the first forward pass.
    seed : int, optional
        Seed of the weight initialization. ``None`` draws from torch's global
        generator (torchvision's behaviour); an int leaves the global
        generator untouched.

    Returns
    -------
    torch.nn.Module
        In train mode, on the CPU, with ``model.architecture == name`` (and
        ``model.pretrained_report`` when ``pretrained`` was given).

    Raises
    ------
    ModelError
        Unknown name, bad ``num_classes``/``in_channels``, ``image_size`` too
        small, or a bad ``pretrained`` file.

    Examples
    --------
    >>> model = build("smallcnn", seed=0)
    >>> model(torch.rand(2, 1, 64, 64)).shape
    torch.Size([2, 2])
    """
    if name not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {name!r}; valid architectures: {', '.join(ARCHITECTURES)}")
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{label} must be a positive integer, got {value!r}")
    if image_size is not None and int(image_size) < MIN_IMAGE_SIZE[name]:
        raise ModelError(
            f"architecture {name!r} needs images of at least {MIN_IMAGE_SIZE[name]} px, got image_size={image_size}"
        )
    if seed is None:
        model = _CONSTRUCTORS[name](num_classes, in_channels)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = _CONSTRUCTORS[name](num_classes, in_channels)
    model.architecture = name
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# torchvision's published DenseNet checkpoints name layers 'norm.1', 'conv.2' ...
# (see torchvision.models.densenet._load_state_dict); current modules are 'norm1'.
_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise ModelError(f"cannot read weights file {str(path)!r} as a torch state dict ({error})") from error
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ModelError(
            f"weights file {str(path)!r} does not hold a state dict (a mapping of parameter names to tensors, "
            "optionally under a 'state_dict' key)"
        )
    state = {}
    for key, value in obj.items():
        key = key[len("module."):] if key.startswith("module.") else key
        match = _OLD_DENSENET_KEY.match(key)
        if match:
            key = match.group(1) + match.group(2)
        state[key] = value
    return state


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a local state-dict file into ``model``'s backbone (in place) and report what was loaded.

    Every parameter whose name and shape match is copied. The first
    convolution is adapted to the model's input channels (3-channel ImageNet
    kernels are summed over the colour channels, which gives a grey image the
    response the RGB network gave the same grey image in colour). The
    classification head is loaded only when its shape matches (e.g. the
    file is one of our own checkpoints); otherwise it keeps its fresh
    initialization. Keys of the file the model lacks (``AuxLogits`` ...) are
    ignored and reported.

    Note that torchvision's ImageNet weights were trained on mean/std
    normalized RGB inputs, while these models see ``[-1, 1]`` grey images (the
    convention of Arun et al.'s Keras models): fine-tuning adapts them.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`build`.
    path : path
        ``torch.save``-d state dict (plain, or under a ``"state_dict"`` key;
        a ``"module."`` prefix and torchvision's old DenseNet key names are
        accepted). Loaded with ``weights_only=True``.

    Returns
    -------
    dict
        ``path``, ``sha256``, ``loaded`` (number of tensors), ``missing``,
        ``unexpected``, ``skipped_head`` (lists of names) and
        ``adapted_first_conv`` (bool); also stored as ``model.pretrained_report``.

    Raises
    ------
    ModelError
        Missing or unreadable file, or a backbone parameter the file lacks or
        holds with another shape (the file is for another architecture).
    """
    name = getattr(model, "architecture", None)
    if name not in ARCHITECTURES:
        raise ModelError(f"load_pretrained needs a model from helpers.models.build, got {type(model).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"pretrained weights file {str(path)!r} does not exist; pass the path of a local state-dict file "
            "(weights are never downloaded)"
        )
    state = _read_state_dict(path)
    own = model.state_dict()
    first = _FIRST_CONV[name]
    adapted = False
    if first in state and first in own and state[first].ndim == 4 and state[first].shape[1] != own[first].shape[1]:
        if own[first].shape[1] != 1:
            raise ModelError(
                f"weights file {str(path)!r} has {state[first].shape[1]} input channels in {first!r}; "
                f"the model has {own[first].shape[1]}: only adapting to 1 channel (summing kernels) is supported"
            )
        state[first] = state[first].sum(dim=1, keepdim=True)
        adapted = True
    head = _HEAD[name]
    loadable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    mismatched = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    broken = [k for k in mismatched + missing if not k.startswith(head) and not k.endswith("num_batches_tracked")]
    if broken:
        raise ModelError(
            f"weights file {str(path)!r} does not fit architecture {name!r}: {len(broken)} backbone tensors are "
            f"missing or have another shape (e.g. {broken[:4]}); expected a {name} state dict"
        )
    model.load_state_dict(loadable, strict=False)
    report = {
        "path": str(path),
        "sha256": file_sha256(path),
        "loaded": len(loadable),
        "missing": missing,
        "unexpected": unexpected,
        "skipped_head": [k for k in mismatched if k.startswith(head)],
        "adapted_first_conv": adapted,
    }
    model.pretrained_report = report
    return report
