"""Bring your own model: load a user's classifier and wrap it in the book's input convention.

Every saliency method and criterion of the book feeds models ``(N, 1, S, S)``
images in ``[0, 1]`` and explains class 1 of ``(N, 2)`` logits. A user's
model rarely takes that: it may want three channels, ImageNet mean/std or
``[-1, 1]`` inputs, a fixed input size, and it may have one output or many
(torchxrayvision's 18 findings). :func:`load_model` reads the model
(:mod:`helpers.model_spec`: a zoo architecture with a local state dict, a
TorchScript file, or ``package.module:function``) and, unless it already is
a book model, wraps it in :class:`ExternalModel`, whose forward pass

1. checks the book's input ``(N, 1, H, W)``;
2. resizes to ``input_size`` (bilinear, half-pixel centres) when given;
3. repeats the grey channel to 3 channels when ``channels=3``;
4. normalizes (``[0,1]``: identity; ``[-1,1]``: ``2x - 1``; ``imagenet``:
   ``(x - mean) / std`` per channel; or a callable);
5. runs the model and turns output ``class_index`` into the book's two
   logits: a 2-output model keeps its logits (swapped when
   ``class_index=0``); any other model's logit ``z`` of that class becomes
   ``(-z/2, z/2)``, whose softmax is ``sigmoid(z)``: the multi-label
   probability, and whose class-1 gradient is ``z``'s gradient halved
   (every map is normalized afterwards, so the factor does not matter).

Every step is differentiable, so gradients reach the book's ``[0, 1]``
image: the maps are maps of the user's model over the images it saw.

Functional ReLUs (``F.relu`` in torchvision's DenseNet ``forward``,
InceptionV3's ``BasicConv2d``, torchxrayvision) are invisible to guided
backpropagation. :class:`ExternalModel` routes each ReLU applied outside an
``nn.ReLU`` module through an ``nn.ReLU`` module of its own (``relus.<k>``,
the ``k``-th such call of a forward pass), inside a
:class:`torch.overrides.TorchFunctionMode`; the same function computes the
same values (an in-place ReLU becomes an out-of-place one), and the
conversion is kept only when a probe batch gives bit-identical outputs with
and without it. Otherwise (and for TorchScript, whose compiled ReLUs Python
cannot see) guided backpropagation refuses with a message naming the modules
(:attr:`ExternalModel.relu_note`); it never silently returns a plain
gradient.

GradCAM's layer: ``gradcam_layer`` when given, else found on a probe batch:
the last module (in execution order) whose output is a 4-D feature map with
more than one pixel, i.e. the last convolutional block after its activation.

Randomization blocks: the zoo's table for zoo architectures; for any other
model blocks derived from the module tree
(:func:`helpers.randomization.derive_blocks`), unless
:func:`helpers.randomization.register_blocks` named them first.

References
----------
.. [1] Springenberg, J. T. et al. (2015). Striving for simplicity: the all
   convolutional net. arXiv:1412.6806 (guided backpropagation).
.. [2] Cohen, J. P. et al. (2022). TorchXRayVision: a library of chest X-ray
   datasets and models. MIDL. arXiv:2111.00595 (multi-output models,
   ``[-1024, 1024]`` inputs: give them a callable normalization).
.. [3] Selvaraju, R. R. et al. (2017). Grad-CAM. ICCV. arXiv:1610.02391
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from helpers import randomization
from helpers.model_spec import ModelSpec, ModelSpecError, normalization_name, parse_model_spec
from helpers.models._errors import ModelError
from helpers.models.relu import _FUNCTIONAL_RELUS, make_relus_non_inplace
from helpers.models.zoo import _HEAD, ARCHITECTURES, build, file_sha256

__all__ = [
    "InputContract",
    "ExternalModel",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "load_model",
    "model_identity",
    "find_gradcam_layer",
    "contract_from_settings",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputContract:
    """What a user's model expects and which output the book explains.

    Attributes
    ----------
    channels : {1, 3}
        Input channels; a 3-channel model gets the grey image repeated.
    normalization : str or callable
        ``"[0,1]"`` (the book's images as they are), ``"[-1,1]"``,
        ``"imagenet"`` (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`), or a
        differentiable callable mapping the ``[0, 1]`` tensor (after the
        channel repeat) to the model's input.
    input_size : int or None
        Square side the model takes; ``None``: the book's working size.
    class_index : int
        The output explained (``1``: the abnormal class of a 2-output model).
    gradcam_layer : str or None
        Module name of GradCAM's layer in the user's model; ``None``: found.
    """

    channels: int = 1
    normalization: str | Callable[[Tensor], Tensor] = "[0,1]"
    input_size: int | None = None
    class_index: int = 1
    gradcam_layer: str | None = None

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ModelError(f"model_channels must be 1 or 3, got {self.channels!r}")
        if not callable(self.normalization):
            object.__setattr__(self, "normalization", normalization_name(self.normalization))
        if self.input_size is not None and (isinstance(self.input_size, bool) or not isinstance(self.input_size, int)
                                            or self.input_size < 8):
            raise ModelError(f"model_input_size must be an integer >= 8 or None, got {self.input_size!r}")
        if isinstance(self.class_index, bool) or not isinstance(self.class_index, int) or self.class_index < 0:
            raise ModelError(f"model_class_index must be a non-negative integer, got {self.class_index!r}")

    @property
    def is_book(self) -> bool:
        """Whether a model with this contract takes the book's input and output as they are."""
        return (self.channels == 1 and self.normalization == "[0,1]" and self.input_size is None
                and self.class_index == 1)

    def describe(self) -> str:
        norm = getattr(self.normalization, "__name__", "callable") if callable(self.normalization) else self.normalization
        size = f"{self.input_size} px" if self.input_size else "the working size"
        return f"{self.channels} channel(s), normalization {norm}, input {size}, class {self.class_index}"


def contract_from_settings(settings: Any) -> InputContract:
    """The :class:`InputContract` of a run's ``model_*`` settings."""
    return InputContract(channels=settings.model_channels, normalization=settings.model_normalization,
                         input_size=settings.model_input_size, class_index=settings.model_class_index,
                         gradcam_layer=settings.model_gradcam_layer)


class _ReluRouter(TorchFunctionMode):
    """Sends every ReLU called outside an ``nn.ReLU`` module through the owner's ``relus[k]``."""

    def __init__(self, owner: "ExternalModel") -> None:
        super().__init__()
        self.owner = owner
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.owner._relu_depth == 0 and func in _FUNCTIONAL_RELUS:
            k = self.calls
            self.calls += 1
            if k >= len(self.owner.relus):
                raise ModelError(f"model {self.owner.architecture!r} applied more functional ReLUs in this forward "
                                 f"pass than the {len(self.owner.relus)} counted when it was loaded")
            return self.owner.relus[k](args[0])  # runs with this mode off: the module's F.relu is plain
        return func(*args, **kwargs)


class ExternalModel(nn.Module):
    """A user's model in the book's convention (see the module docstring).

    Parameters
    ----------
    net : torch.nn.Module
        The user's model (its ``nn.ReLU`` modules are made non-inplace).
    contract : InputContract
    architecture : str
        Name in tables and the randomization-block registry.
    identity : str
        What identifies the weights (file hashes and the contract).

    Attributes
    ----------
    relus : torch.nn.ModuleList
        One ``nn.ReLU`` per functional ReLU of a forward pass (after :meth:`convert_relus`).
    relu_note : str
        Why guided backpropagation cannot be guided on this model ("" when it can).
    gradcam_layer_name : str or None
        Module whose output GradCAM explains (``helpers.models.gradcam_layer`` reads it).
    """

    def __init__(self, net: nn.Module, *, contract: InputContract, architecture: str, identity: str) -> None:
        super().__init__()
        self.net = make_relus_non_inplace(net)
        self.relus = nn.ModuleList()
        self.contract = contract
        self.architecture = architecture
        self.identity = identity
        self.relu_note = ""
        self.gradcam_layer_name: str | None = None
        self._relu_depth = 0
        self._route = False
        for module in self.net.modules():
            if isinstance(module, nn.ReLU):
                module.register_forward_pre_hook(self._enter_relu)
                module.register_forward_hook(self._leave_relu)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _enter_relu(self, _module, _inputs) -> None:
        self._relu_depth += 1

    def _leave_relu(self, _module, _inputs, _output) -> None:
        self._relu_depth -= 1

    # ------------------------------------------------------------------ forward
    def model_input(self, x: Tensor) -> Tensor:
        """The tensor the user's model receives for book images ``x`` ``(N, 1, H, W)`` in ``[0, 1]``."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ModelError(f"model {self.architecture!r} takes the book's images (N, 1, H, W) in [0, 1], got a "
                             f"tensor of shape {tuple(x.shape)}; its own contract ({self.contract.describe()}) "
                             "is applied inside")
        size = self.contract.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        if self.contract.channels == 3:
            x = x.repeat(1, 3, 1, 1)
        norm = self.contract.normalization
        if callable(norm):
            return norm(x)
        if norm == "[-1,1]":
            return x * 2.0 - 1.0
        if norm == "imagenet":
            if x.shape[1] != 3:
                raise ModelError("model_normalization='imagenet' needs model_channels=3 (RGB mean/std)")
            return (x - self._mean) / self._std
        return x

    def raw_outputs(self, x: Tensor) -> Tensor:
        """The user's model's own outputs ``(N, K)`` for book images ``x``."""
        inputs = self.model_input(x)
        with self._routing():
            out = self.net(inputs)
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif hasattr(out, "logits") and isinstance(out.logits, Tensor):  # torchvision's InceptionOutputs
            out = out.logits
        if not isinstance(out, Tensor) or out.ndim != 2:
            raise ModelError(f"model {self.architecture!r} must return outputs of shape (N, classes), got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        return out

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - see the class docstring
        out = self.raw_outputs(x)
        k, n = self.contract.class_index, out.shape[1]
        if k >= n:
            raise ModelError(f"model_class_index={k} but model {self.architecture!r} has {n} output(s); pass "
                             f"--param model_class_index=<0..{n - 1}> (the output of the finding to explain)")
        if n == 2:
            return out if k == 1 else out.flip(1)
        z = out[:, k]
        return torch.stack([-0.5 * z, 0.5 * z], dim=1)

    @contextlib.contextmanager
    def _routing(self) -> Iterator[None]:
        if not (self._route and len(self.relus)):
            yield
            return
        self._relu_depth = 0
        with _ReluRouter(self):
            yield

    # ------------------------------------------------------------------ set-up
    def convert_relus(self, probe: Tensor) -> int:
        """Route the functional ReLUs of a forward pass through ``nn.ReLU`` modules, if provably equivalent.

        Counts the ReLUs applied outside ``nn.ReLU`` modules on ``probe``,
        adds that many modules, and keeps the routing only when the outputs
        with and without it are identical; sets :attr:`relu_note` otherwise.

        Returns
        -------
        int
            Functional ReLUs converted (0 when none or when the conversion was refused).
        """
        if isinstance(self.net, torch.jit.ScriptModule):
            self.relu_note = ("it is a TorchScript model: its ReLUs run inside compiled code that guided "
                              "backpropagation cannot hook; give it as ARCH=WEIGHTS or package.module:function")
            return 0
        sites = functional_relu_sites(self, probe)
        if not sites:
            return 0
        self.eval()
        with torch.no_grad():
            plain = self.raw_outputs(probe)
            self.relus = nn.ModuleList(nn.ReLU() for _ in sites).to(probe.device)
            self._route = True
            routed = self.raw_outputs(probe)
        if not torch.equal(plain, routed):
            self.relus, self._route = nn.ModuleList(), False
            self.relu_note = (f"its functional ReLUs in {sorted(set(sites))} could not be converted to nn.ReLU "
                              "modules without changing its outputs (an in-place ReLU whose side effect is used?)")
            return 0
        return len(sites)


@contextlib.contextmanager
def _module_stack(model: nn.Module) -> Iterator[list[str]]:
    stack: list[str] = []
    handles = []
    def enter(name):
        def hook(_module, _inputs) -> None:
            stack.append(name)
        return hook

    def leave(_module, _inputs, _output) -> None:
        stack.pop()

    for name, module in model.named_modules():
        if isinstance(module, torch.jit.ScriptModule):  # compiled: no Python hooks
            continue
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def functional_relu_sites(model: nn.Module, probe: Tensor) -> list[str]:
    """The module (qualified name) running at each ReLU applied outside an ``nn.ReLU`` module, in call order."""
    relu_names = {n for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
    sites: list[str] = []
    with _module_stack(model) as stack:
        class Recorder(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func in _FUNCTIONAL_RELUS and not any(n in relu_names for n in stack):
                    sites.append(stack[-1] if stack and stack[-1] else "<root>")
                return func(*args, **(kwargs or {}))

        was = model.training
        model.eval()
        try:
            with torch.no_grad(), Recorder():
                model(probe)
        finally:
            model.train(was)
    return sites


def find_gradcam_layer(model: nn.Module, probe: Tensor) -> str:
    """Name of the last module (execution order) whose output is a 4-D map with more than one pixel.

    Raises
    ------
    ModelError
        No module produced such an output (e.g. a TorchScript model, whose
        submodules run as compiled code without hooks).
    """
    seen: list[str] = []
    handles = []

    def hook(name):
        def record(_module, _inputs, output):
            if isinstance(output, Tensor) and output.ndim == 4 and output.shape[-1] * output.shape[-2] > 1:
                seen.append(name)
        return record

    for name, module in model.named_modules():
        if name and not isinstance(module, torch.jit.ScriptModule):  # compiled: no Python hooks
            handles.append(module.register_forward_hook(hook(name)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(probe)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    # The model's input adaptation is no feature map.
    seen = [n for n in seen if n != "net" and not n.startswith("net.input_scaling")]
    if not seen:
        raise ModelError(f"cannot find GradCAM's layer in model {getattr(model, 'architecture', type(model).__name__)!r}: "
                         "no submodule output a spatial feature map (a TorchScript model hides its layers); name "
                         "it with --param model_gradcam_layer=<module name> or give the model as ARCH=WEIGHTS")
    return seen[-1]


def model_identity(spec: ModelSpec, contract: InputContract) -> str:
    """What identifies a loaded model for caches: the specification, its files' SHA-256 and the contract."""
    digest = file_sha256(spec.path) if spec.path else ""
    return f"{spec.kind}:{spec.label}:{digest}:{contract.describe()}"


def _read_state_dict(path: str, *, what: str) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise ModelError(f"{what}: cannot read {path!r} as a state dict with torch.load(weights_only=True) ({error}); "
                         "save the weights with torch.save(model.state_dict(), path), or give a TorchScript file "
                         "as the model itself") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError(f"{what}: {path!r} holds no state dict (a mapping of parameter names to tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _load_strict(module: nn.Module, state: dict[str, Tensor], *, what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelError(f"{what}: the weights do not fit the model ({str(error).splitlines()[0]} ...); the "
                         "state dict must come from the same architecture and head size") from None


def _zoo_model(spec: ModelSpec, contract: InputContract) -> nn.Module:
    arch = str(spec.architecture)
    state = _read_state_dict(str(spec.path), what=f"model {spec.text!r}")
    head = _HEAD[arch]
    head_weight = state.get(f"{head}weight")
    num_classes = int(head_weight.shape[0]) if head_weight is not None else 2
    first = next((v for k, v in state.items() if k.endswith("weight") and v.ndim == 4), None)
    channels = int(first.shape[1]) if first is not None else 1
    if channels != contract.channels:
        raise ModelError(f"model {spec.text!r}: its first convolution takes {channels} channel(s) but "
                         f"model_channels={contract.channels}; pass --param model_channels={channels}")
    if contract.normalization != "[0,1]":
        raise ModelError(f"model {spec.text!r}: zoo architectures take [0, 1] images and scale them themselves "
                         f"(helpers.models.zoo.InputScaling), so model_normalization must be [0,1], got "
                         f"{contract.normalization!r}; a model trained on other inputs is given as "
                         "package.module:function=WEIGHTS")
    model = build(arch, num_classes=num_classes, in_channels=channels)
    _load_strict(model, state, what=f"model {spec.text!r}")
    return model


def _callable_model(spec: ModelSpec) -> nn.Module:
    module_name, _, attr = str(spec.function).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ModelError(f"model {spec.text!r}: cannot import {module_name!r} ({error}); is the package installed "
                         "and on PYTHONPATH?") from None
    fn: Any = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ModelError(f"model {spec.text!r}: {module_name!r} has no {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ModelError(f"model {spec.text!r}: {attr!r} is not callable")
    model = fn()
    if not isinstance(model, nn.Module):
        raise ModelError(f"model {spec.text!r}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    if spec.path:
        _load_strict(model, _read_state_dict(spec.path, what=f"model {spec.text!r}"), what=f"model {spec.text!r}")
    return model


def _torchscript_model(spec: ModelSpec) -> nn.Module:
    try:
        return torch.jit.load(str(spec.path), map_location="cpu")
    except Exception as error:  # torch.jit raises RuntimeError and others
        raise ModelError(f"model {spec.text!r}: {spec.path!r} is not a TorchScript file ({type(error).__name__}); "
                         "a state dict needs its architecture: give ARCH=WEIGHTS (e.g. resnet18=/path/w.pt) or "
                         "package.module:function=WEIGHTS") from None


def _probe_channels(net: nn.Module, contract: InputContract, spec: ModelSpec) -> None:
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != contract.channels:
        raise ModelError(f"model {spec.text!r}: its first convolution takes {first.in_channels} channel(s) but "
                         f"model_channels={contract.channels}; pass --param model_channels={first.in_channels}")


def load_model(spec: str | ModelSpec, *, contract: InputContract | None = None, image_size: int,
               device: str | torch.device = "cpu") -> nn.Module:
    """Load a user's classifier and make it a model of the book.

    Parameters
    ----------
    spec : str or ModelSpec
        See :mod:`helpers.model_spec`.
    contract : InputContract, optional
        Default: the book's own (1 channel, ``[0,1]``, working size, class 1).
    image_size : int
        The book's working size (probe batches, GradCAM layer search).
    device : str or torch.device
        Where the model is put.

    Returns
    -------
    torch.nn.Module
        A zoo model as :func:`helpers.models.build` makes it when the
        contract is the book's own (the zoo's tables then apply unchanged),
        else an :class:`ExternalModel`; in eval mode, with ``architecture``
        and ``identity`` attributes, its randomization blocks registered.

    Raises
    ------
    ModelError
        A file that cannot be read, weights that do not fit, a wrong channel
        count or class index (the message names the setting and its fix).
    """
    contract = contract or InputContract()
    try:
        spec = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec, architectures=ARCHITECTURES)
    except ModelSpecError as error:
        raise ModelError(str(error)) from None
    identity = model_identity(spec, contract)
    if spec.kind == "zoo":
        net = _zoo_model(spec, contract)
        if contract.is_book and contract.gradcam_layer is None:
            net.identity = identity
            head = net.get_submodule(_HEAD[spec.architecture].rstrip("."))
            if getattr(head, "out_features", 2) == 2:
                return net.to(device).eval()
    elif spec.kind == "callable":
        net = _callable_model(spec)
    else:
        net = _torchscript_model(spec)
    _probe_channels(net, contract, spec)
    architecture = f"{spec.label}+contract" if spec.kind == "zoo" else spec.label
    model = ExternalModel(net, contract=contract, architecture=architecture, identity=identity).to(device).eval()
    probe = torch.rand(2, 1, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
    try:
        model(probe)
    except ModelError:
        raise
    except RuntimeError as error:
        raise ModelError(f"model {spec.text!r} fails on a ({2}, {contract.channels}, {contract.input_size or image_size}, "
                         f"{contract.input_size or image_size}) input ({str(error).splitlines()[0]}); check "
                         "model_channels and model_input_size") from None
    model.convert_relus(probe)
    if contract.gradcam_layer is not None:
        name = f"net.{contract.gradcam_layer}"
        try:
            model.get_submodule(name)
        except AttributeError:
            raise ModelError(f"model_gradcam_layer={contract.gradcam_layer!r}: model {spec.text!r} has no such "
                             "module") from None
        model.gradcam_layer_name = name
    else:
        with contextlib.suppress(ModelError):  # GradCAM itself says why when asked for the map
            model.gradcam_layer_name = find_gradcam_layer(model, probe)
    if architecture not in randomization.RANDOMIZATION_BLOCKS:
        if spec.kind == "zoo":
            blocks = [randomization.Block(b.label, tuple(f"net.{m}" for m in b.modules))
                      for b in randomization.RANDOMIZATION_BLOCKS[spec.architecture]]
            never = tuple(f"net.{m}" for m in randomization.NEVER_RANDOMIZED[spec.architecture])
            randomization.register_blocks(architecture, blocks, never=never)
        else:
            randomization.register_blocks(architecture, randomization.derive_blocks(model))
    return model
