"""Cascading and independent weight randomization by named blocks.

The model-randomization test of Adebayo et al. (2018), as used by Arun et al.
(2021): re-initialize the trained weights block by block from the top
(logits first) and recompute the saliency maps at every state. A map that
barely changes while the model's learned weights are destroyed does not
explain what the model learned.

Blocks are named groups of modules (torchvision names), ordered **top-down**
(:data:`RANDOMIZATION_BLOCKS`), about ten per architecture instead of one per
layer (Quantus' MPRT steps through all 242 parameterized layers of a
DenseNet121). The states of :func:`randomized_states` are

* ``"cascading"``: ``Original``, then the first block randomized, then the
  first two, ... (cumulative from the top), as Arun et al.'s figure 3;
* ``"independent"``: ``Original``, then each block alone randomized on the
  trained weights.

Every block draws its new weights from its own seed, derived from
``(seed, block index)``, so a block gets the same new weights in a cascade, in
the independent mode and whichever states are requested; independently
trained replicates pass their own ``seed`` (:func:`replicate_seed`), so they
get independent new weights too. The caller's model is never modified: every
state is a deep copy.

By default a randomized block is re-drawn by the architecture's **own**
initializer (``reinit="architecture"``: the functions of
:data:`helpers.models.zoo.INITIALIZERS` that built the model) and its
batch-norm layers get γ = 1, β = 0 with their **trained running statistics
kept** (``batchnorm="reset_affine"``), as Adebayo et al.'s code re-runs each
trainable variable's initializer and leaves the moving averages alone.
PyTorch's ``reset_parameters()``, Keras' Glorot-uniform (Arun et al.'s
framework) and running statistics reset to mean 0 / variance 1 are options
(:data:`REINIT_RULES`, :data:`BATCHNORM_RULES`; the book's settings
``randomization_init`` and ``randomization_batchnorm``).

================  ===========================================================
architecture      blocks, top-down (never randomized)
================  ===========================================================
``smallcnn``      Logits (``fc``), block4, block3, block2, block1
``resnet18``      Logits (``fc``), layer4.1, layer4.0, ..., layer1.0, stem
                  (``conv1`` + ``bn1``): 10 blocks
``resnet50``      Logits, the 16 bottlenecks layer4.2 ... layer1.0, stem:
                  18 blocks
``densenet121``   Logits (``classifier``), denseblock4 (with the final
                  ``norm5``), transition3, denseblock3, transition2,
                  denseblock2, transition1, denseblock1, stem (``conv0`` +
                  ``norm0``): 9 blocks
``inception_v3``  Logits (``fc``), Mixed_7c ... Mixed_5c (the paper's mixed10
                  ... mixed1): 11 blocks; never randomized: the stem
                  convolutions ``Conv2d_1a_3x3`` ... ``Conv2d_4a_3x3`` and
                  ``Mixed_5b`` (the paper's mixed0)
================  ===========================================================

The input-scaling module that every model of :func:`helpers.models.build`
starts with has no parameters.

References
----------
.. [1] Adebayo, J., Gilmer, J., Muelly, M., Goodfellow, I., Hardt, M., Kim, B.
   (2018). Sanity checks for saliency maps. NeurIPS. arXiv:1810.03292
   (code: adebayoj/sanity_checks_saliency, ``reinitlayerlist``).
.. [2] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
.. [3] Glorot, X., Bengio, Y. (2010). Understanding the difficulty of training
   deep feedforward neural networks. AISTATS (``reinit="glorot_uniform"``).
.. [4] He, K., Zhang, X., Ren, S., Sun, J. (2015). Delving deep into
   rectifiers. ICCV. arXiv:1502.01852 (Kaiming-normal initialization).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from helpers.names import BATCHNORM_RULES as _BATCHNORM_RULES
from helpers.names import REINIT_RULES as _REINIT_RULES

__all__ = [
    "RandomizationError",
    "Block",
    "RANDOMIZATION_BLOCKS",
    "NEVER_RANDOMIZED",
    "INCEPTION_PAPER_NAMES",
    "MODES",
    "REINIT_RULES",
    "BATCHNORM_RULES",
    "NORMAL_STD",
    "block_seed",
    "replicate_seed",
    "blocks_for",
    "state_labels",
    "unrandomized_parameters",
    "randomized_states",
    "fully_randomized",
    "register_blocks",
    "derive_blocks",
]


class RandomizationError(ValueError):
    """An unknown architecture, block, mode or rule, or a model that does not have the named blocks."""


@dataclass(frozen=True)
class Block:
    """A randomization step: a label and the modules it re-initializes.

    Attributes
    ----------
    label : str
        State label on the randomization curve (``"Logits"``, ``"layer4.1"``,
        ``"stem"`` ...).
    modules : tuple of str
        Qualified module names (``model.get_submodule(name)``).
    """

    label: str
    modules: tuple[str, ...]


def _resnet_blocks(layers: Sequence[int]) -> tuple[Block, ...]:
    bottlenecks = [
        Block(f"layer{stage}.{i}", (f"layer{stage}.{i}",))
        for stage in (4, 3, 2, 1)
        for i in reversed(range(layers[stage - 1]))
    ]
    return (Block("Logits", ("fc",)), *bottlenecks, Block("stem", ("conv1", "bn1")))


#: Blocks of each architecture, top-down (the order of the cascade).
RANDOMIZATION_BLOCKS: dict[str, tuple[Block, ...]] = {
    "smallcnn": (
        Block("Logits", ("fc",)),
        Block("block4", ("block4",)),
        Block("block3", ("block3",)),
        Block("block2", ("block2",)),
        Block("block1", ("block1",)),
    ),
    "resnet18": _resnet_blocks((2, 2, 2, 2)),
    "resnet50": _resnet_blocks((3, 4, 6, 3)),
    "densenet121": (
        Block("Logits", ("classifier",)),
        Block("denseblock4", ("features.norm5", "features.denseblock4")),
        Block("transition3", ("features.transition3",)),
        Block("denseblock3", ("features.denseblock3",)),
        Block("transition2", ("features.transition2",)),
        Block("denseblock2", ("features.denseblock2",)),
        Block("transition1", ("features.transition1",)),
        Block("denseblock1", ("features.denseblock1",)),
        Block("stem", ("features.conv0", "features.norm0")),
    ),
    "inception_v3": (
        Block("Logits", ("fc",)),
        *(
            Block(name, (name,))
            for name in (
                "Mixed_7c", "Mixed_7b", "Mixed_7a", "Mixed_6e", "Mixed_6d",
                "Mixed_6c", "Mixed_6b", "Mixed_6a", "Mixed_5d", "Mixed_5c",
            )
        ),
    ),
}

#: Parameterized modules that no block re-initializes (Arun et al. stop at mixed1).
NEVER_RANDOMIZED: dict[str, tuple[str, ...]] = {
    "smallcnn": (),
    "resnet18": (),
    "resnet50": (),
    "densenet121": (),
    "inception_v3": ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Mixed_5b"),
}

#: torchvision InceptionV3 block → the Keras name on Arun et al.'s x-axis.
INCEPTION_PAPER_NAMES = {
    "Mixed_7c": "mixed10", "Mixed_7b": "mixed9", "Mixed_7a": "mixed8", "Mixed_6e": "mixed7",
    "Mixed_6d": "mixed6", "Mixed_6c": "mixed5", "Mixed_6b": "mixed4", "Mixed_6a": "mixed3",
    "Mixed_5d": "mixed2", "Mixed_5c": "mixed1", "Mixed_5b": "mixed0",
}

MODES = ("cascading", "independent")

#: How the weights of convolutions and linear layers are re-drawn.
#:
#: * ``"architecture"`` (default): the architecture's **own** initializer, the
#:   very function :func:`helpers.models.build` initialized the model with
#:   (:data:`helpers.models.zoo.INITIALIZERS`): Kaiming-normal fan-out
#:   convolutions and PyTorch-default linear layers for ``smallcnn``/ResNet,
#:   Kaiming-normal fan-in convolutions and zero linear bias for DenseNet121,
#:   truncated normal (σ = 0.1, ±2) for InceptionV3. This is what Adebayo et
#:   al.'s code does (it re-runs each trainable variable's own initializer,
#:   ``reinitlayerlist``): the randomized block holds weights drawn as the
#:   untrained model's were. For a self-explaining model the backbone's
#:   modules use the base architecture's initializer and the evidence head
#:   its own (PyTorch's ``reset_parameters``, as it was built);
#: * ``"reset_parameters"``: each module's PyTorch ``reset_parameters()``
#:   (Kaiming-uniform with ``a=√5`` weights, uniform biases), *not* the
#:   architectures' initializers;
#: * ``"glorot_uniform"``: Glorot/Xavier-uniform weights, zero biases (Keras'
#:   defaults, i.e. what a fresh layer of Arun et al.'s Keras models held);
#: * ``"normal"``: weights ~ N(0, :data:`NORMAL_STD`²), zero biases;
#: * ``"kaiming_normal"``: He-normal weights (``fan_out``, ReLU gain) for every
#:   architecture, zero biases.
#: (The tuple lives in :mod:`helpers.names`, which config checks without torch.)
REINIT_RULES = _REINIT_RULES

#: What happens to the batch-norm layers of a randomized block.
#:
#: * ``"reset_affine"`` (default): γ = 1, β = 0 (BatchNorm's own initializer),
#:   **running mean and variance kept** at their trained values. This is what
#:   Adebayo et al.'s code does: it re-initializes every *trainable* variable
#:   of a block (γ/β included) and leaves the moving mean/variance, which are
#:   not trainable variables;
#: * ``"reset_all"``: γ/β reset and running statistics reset to mean 0,
#:   variance 1 (``reset_parameters``, as Quantus' MPRT does): the block then
#:   normalizes with statistics that no data produced;
#: * ``"keep"``: running statistics and affine γ/β untouched (learned
#:   parameters stay inside a "randomized" block).
BATCHNORM_RULES = _BATCHNORM_RULES

#: Standard deviation of ``reinit="normal"``.
NORMAL_STD = 0.01


def block_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th block (top-down position in :data:`RANDOMIZATION_BLOCKS`) for ``seed``.

    ``numpy.random.SeedSequence((seed, index))`` mixes the two into
    independent, well-spread 63-bit seeds, so that block ``k``'s new weights do
    not depend on which other blocks were randomized or in which order.
    """
    return int(np.random.SeedSequence((int(seed), int(index))).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def replicate_seed(seed: int, replicate: int) -> int:
    """Master seed of the randomization of replicate ``replicate`` (pass it as ``seed=`` to :func:`randomized_states`).

    Independently trained replicates must also get independent new weights:
    with the study's seed alone every replicate's block ``k`` would be
    re-drawn identically, and their randomization curves would share one
    draw. ``numpy.random.SeedSequence((seed, replicate, 2))`` (the trailing
    stream number keeps it apart from :func:`block_seed`'s ``(seed, index)``)
    gives a non-negative 63-bit seed.
    """
    for name, value in (("seed", seed), ("replicate", replicate)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise RandomizationError(f"{name} must be a non-negative integer, got {value!r}")
    state = np.random.SeedSequence((int(seed), int(replicate), 2)).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


#: Suffix of a self-explaining model's architecture (see :mod:`helpers.trainable`).
SELF_EXPLAINING_SUFFIX = "+saliency-head"


def _self_explaining_blocks(base: str) -> tuple[Block, ...]:
    """Blocks of a self-explaining model: its evidence head first, then the backbone's blocks top-down.

    The backbone is the base architecture cut at its GradCAM layer (module
    names kept under ``backbone.``), so the base's ``Logits`` block does not
    exist there; the evidence head plays its part.
    """
    prefixed = [Block(b.label, tuple(f"backbone.{m}" for m in b.modules)) for b in RANDOMIZATION_BLOCKS[base]
                if b.label != "Logits"]
    return (Block("Head", ("head",)), *prefixed)


def _register_self_explaining() -> None:
    for base in list(RANDOMIZATION_BLOCKS):
        if base.endswith(SELF_EXPLAINING_SUFFIX):
            continue
        RANDOMIZATION_BLOCKS[base + SELF_EXPLAINING_SUFFIX] = _self_explaining_blocks(base)
        NEVER_RANDOMIZED[base + SELF_EXPLAINING_SUFFIX] = tuple(f"backbone.{m}" for m in NEVER_RANDOMIZED[base])


_register_self_explaining()


def _architecture(model: nn.Module, architecture: str | None) -> str:
    arch = architecture if architecture is not None else getattr(model, "architecture", None)
    if arch is None:
        raise RandomizationError(
            f"cannot tell the architecture of a {type(model).__name__}: it has no 'architecture' attribute; "
            f"pass architecture= one of {', '.join(RANDOMIZATION_BLOCKS)} (or build it with helpers.models.build)"
        )
    if arch not in RANDOMIZATION_BLOCKS:
        raise RandomizationError(f"no randomization blocks for architecture {arch!r}; known: {', '.join(RANDOMIZATION_BLOCKS)}")
    return arch


def _check_modules(model: nn.Module, arch: str, names: Sequence[str]) -> None:
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise RandomizationError(
                f"model ({arch}) has no module {name!r}, named by the randomization blocks of {arch!r}; "
                "expected torchvision module names (build the model with helpers.models.build)"
            ) from None
        if module is None:
            raise RandomizationError(f"module {name!r} of the {arch} model is None; expected a module with parameters")


def blocks_for(model: nn.Module, *, architecture: str | None = None) -> tuple[Block, ...]:
    """The randomization blocks of ``model``, checked against its modules.

    Parameters
    ----------
    model : torch.nn.Module
        A model whose module names follow torchvision.
    architecture : str, optional
        Overrides ``model.architecture``.

    Returns
    -------
    tuple of Block
        Top-down.

    Raises
    ------
    RandomizationError
        Unknown architecture or a block module the model lacks.
    """
    arch = _architecture(model, architecture)
    blocks = RANDOMIZATION_BLOCKS[arch]
    _check_modules(model, arch, [name for block in blocks for name in block.modules])
    _check_modules(model, arch, NEVER_RANDOMIZED[arch])
    return blocks


def state_labels(architecture: str, *, blocks: Sequence[str] | None = None) -> tuple[str, ...]:
    """Labels of the states :func:`randomized_states` yields: ``("Original", "Logits", ...)``."""
    if architecture not in RANDOMIZATION_BLOCKS:
        raise RandomizationError(
            f"no randomization blocks for architecture {architecture!r}; known: {', '.join(RANDOMIZATION_BLOCKS)}"
        )
    indices = _select(RANDOMIZATION_BLOCKS[architecture], blocks, architecture)
    return ("Original", *(RANDOMIZATION_BLOCKS[architecture][i].label for i in indices))


def unrandomized_parameters(model: nn.Module, *, architecture: str | None = None) -> tuple[str, ...]:
    """Names of the parameters that no block of the architecture re-initializes."""
    blocks = blocks_for(model, architecture=architecture)
    prefixes = tuple(name for block in blocks for name in block.modules)
    return tuple(
        name for name, _ in model.named_parameters() if not any(name == p or name.startswith(p + ".") for p in prefixes)
    )


def _select(all_blocks: tuple[Block, ...], blocks: Sequence[str] | None, arch: str) -> list[int]:
    labels = [b.label for b in all_blocks]
    if blocks is None:
        return list(range(len(all_blocks)))
    if isinstance(blocks, str):
        blocks = [blocks]
    chosen = list(blocks)
    unknown = [b for b in chosen if b not in labels]
    if unknown:
        raise RandomizationError(f"unknown block(s) {unknown} for {arch}; its blocks (top-down): {', '.join(labels)}")
    if len(set(chosen)) != len(chosen):
        raise RandomizationError(f"blocks lists a block twice: {chosen}")
    if not chosen:
        raise RandomizationError(f"blocks is empty; expected some of: {', '.join(labels)}")
    return sorted(labels.index(b) for b in chosen)


def _check_options(mode: str, reinit: str, batchnorm: str, seed: int) -> None:
    if mode not in MODES:
        raise RandomizationError(f"unknown randomization mode {mode!r}; expected one of {', '.join(MODES)}")
    if reinit not in REINIT_RULES:
        raise RandomizationError(f"unknown reinit rule {reinit!r}; expected one of {', '.join(REINIT_RULES)}")
    if batchnorm not in BATCHNORM_RULES:
        raise RandomizationError(f"unknown batchnorm rule {batchnorm!r}; expected one of {', '.join(BATCHNORM_RULES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RandomizationError(f"seed must be a non-negative integer, got {seed!r}")


def _reinit_weight_module(module: nn.Module, reinit: str) -> None:
    """Re-draw the weight (and zero the bias) of a convolution or linear layer by an architecture-independent rule."""
    weight = module.weight
    if reinit == "normal":
        nn.init.normal_(weight, mean=0.0, std=NORMAL_STD)
    elif reinit == "glorot_uniform":
        nn.init.xavier_uniform_(weight)
    else:  # kaiming_normal
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _own_initializer(arch: str, name: str):
    """The initializer function of module ``name`` of an ``arch`` model (``reinit="architecture"``)."""
    from helpers.models.zoo import INITIALIZERS

    if arch.endswith(SELF_EXPLAINING_SUFFIX):
        base = arch[: -len(SELF_EXPLAINING_SUFFIX)]
        if name == "backbone" or name.startswith("backbone."):
            return INITIALIZERS[base]
        return None  # the evidence head was built with PyTorch's defaults
    return INITIALIZERS.get(arch)


def _randomize_block(model: nn.Module, block: Block, *, index: int, seed: int, reinit: str, batchnorm: str,
                     arch: str) -> None:
    """Re-initialize every parameterized module of ``block`` in ``model`` (a CPU model, in place)."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(block_seed(seed, index))
        for root in block.modules:
            for name, module in model.get_submodule(root).named_modules(prefix=root):
                if not list(module.parameters(recurse=False)) and not isinstance(module, _BatchNorm):
                    continue
                if isinstance(module, _BatchNorm):
                    if batchnorm == "reset_all":
                        module.reset_parameters()
                    elif batchnorm == "reset_affine" and module.affine:
                        nn.init.ones_(module.weight)
                        nn.init.zeros_(module.bias)
                elif reinit in ("normal", "glorot_uniform", "kaiming_normal") and isinstance(module, (_ConvNd, nn.Linear)):
                    _reinit_weight_module(module, reinit)
                elif (reinit == "architecture" and isinstance(module, (nn.Conv2d, nn.Linear))
                      and (rule := _own_initializer(arch, name)) is not None):
                    rule(module)
                elif isinstance(module, torch.jit.ScriptModule):
                    _reset_scripted(module, name)
                elif callable(getattr(module, "reset_parameters", None)):
                    module.reset_parameters()
                else:
                    raise RandomizationError(
                        f"module {name!r} ({type(module).__name__}) has parameters but no reset_parameters(); "
                        "cannot re-initialize it"
                    )


def _device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def randomized_states(
    model: nn.Module,
    *,
    mode: str = "cascading",
    blocks: Sequence[str] | None = None,
    reinit: str = "architecture",
    batchnorm: str = "reset_affine",
    seed: int = 0,
    architecture: str | None = None,
) -> Iterator[tuple[str, nn.Module]]:
    """Model states with more and more (or one at a time) blocks re-initialized.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model; never modified.
    mode : {"cascading", "independent"}, optional
        ``"cascading"``: state ``k`` has the first ``k`` blocks (top-down)
        randomized, as Arun et al.; ``"independent"``: state ``k`` has only
        block ``k`` randomized, on the trained weights.
    blocks : sequence of str, optional
        Labels of the states to yield (default: every block). Yielded
        top-down whatever the order given. In cascading mode a state always
        has *every* block above it randomized, whether or not those states are
        yielded, so a subset gives the same states as the full run.
    reinit : {"architecture", "reset_parameters", "glorot_uniform", "normal", "kaiming_normal"}, optional
        How convolution/linear weights are re-drawn (:data:`REINIT_RULES`);
        default ``"architecture"``, the model's own initializer.
    batchnorm : {"reset_affine", "reset_all", "keep"}, optional
        Batch-norm handling (:data:`BATCHNORM_RULES`); default
        ``"reset_affine"`` (γ = 1, β = 0, trained running statistics kept),
        Adebayo et al.'s behaviour.
    seed : int, optional
        Non-negative master seed; block ``k`` uses :func:`block_seed(seed, k)
        <block_seed>`. Give each replicate its own (:func:`replicate_seed`).
        The global torch RNG is left untouched.
    architecture : str, optional
        Overrides ``model.architecture``.

    Yields
    ------
    (str, torch.nn.Module)
        ``("Original", copy of model)`` first, then ``(block label, copy)``
        per requested block. Each model is an independent deep copy on the
        model's device, in the model's train/eval mode.

    Raises
    ------
    RandomizationError
        Unknown architecture, block, mode, rule or a bad seed (raised at the
        call, before the first state).

    Notes
    -----
    Weights are drawn on the CPU (so states are identical on every device)
    and the copies are then moved to the model's device.

    References
    ----------
    .. [1] Adebayo et al. (2018); Arun et al. (2021). See the module docstring.
    """
    _check_options(mode, reinit, batchnorm, seed)
    all_blocks = blocks_for(model, architecture=architecture)
    arch = _architecture(model, architecture)
    indices = _select(all_blocks, blocks, arch)
    return _states(model, all_blocks, indices, mode=mode, reinit=reinit, batchnorm=batchnorm, seed=int(seed),
                   arch=arch)


def _states(model, all_blocks, indices, *, mode, reinit, batchnorm, seed, arch) -> Iterator[tuple[str, nn.Module]]:
    device = _device(model)
    original = copy.deepcopy(model)
    base = copy.deepcopy(model).cpu()
    yield "Original", original
    options = dict(seed=seed, reinit=reinit, batchnorm=batchnorm, arch=arch)
    if mode == "cascading":
        wanted = set(indices)
        for index in range(max(indices) + 1):
            _randomize_block(base, all_blocks[index], index=index, **options)
            if index in wanted:
                yield all_blocks[index].label, copy.deepcopy(base).to(device)
    else:
        for index in indices:
            state = copy.deepcopy(base)
            _randomize_block(state, all_blocks[index], index=index, **options)
            yield all_blocks[index].label, state.to(device)


def fully_randomized(
    model: nn.Module,
    *,
    reinit: str = "architecture",
    batchnorm: str = "reset_affine",
    seed: int = 0,
    architecture: str | None = None,
) -> nn.Module:
    """The end state of the cascade: every block re-initialized (a copy; ``model`` is untouched).

    This is the "untrained" model of the localization criterion (Arun et al.
    compare trained with untrained maps). Same options and same weights as
    the last state of ``randomized_states(model, mode="cascading", ...)``;
    the parts in :data:`NEVER_RANDOMIZED` (InceptionV3's stem and
    ``Mixed_5b``) keep their trained weights.
    """
    _check_options("cascading", reinit, batchnorm, seed)
    all_blocks = blocks_for(model, architecture=architecture)
    arch = _architecture(model, architecture)
    state = copy.deepcopy(model).cpu()
    for index, block in enumerate(all_blocks):
        _randomize_block(state, block, index=index, seed=int(seed), reinit=reinit, batchnorm=batchnorm, arch=arch)
    return state.to(_device(model))


# ---------------------------------------------------------------------------------------------------------------
# Models outside the table: blocks registered by the user or derived from the module tree (issue 12).

def register_blocks(architecture: str, blocks, *, never: Sequence[str] = ()) -> tuple[Block, ...]:
    """Name the randomization blocks of ``architecture`` (top-down), replacing any registered before.

    Parameters
    ----------
    architecture : str
        The ``architecture`` attribute of the models they apply to (a
        model given to the book, e.g. ``"torchvision.models:densenet121"``).
    blocks : sequence of Block, of ``(label, modules)`` pairs, or a mapping ``label -> modules``
        Top-down (the logits first); ``modules`` are qualified module names
        of the model the book explains (an :class:`~helpers.models.external.ExternalModel`
        holds the user's model as ``net``: ``"net.features.denseblock4"``);
        one name or a sequence of names.
    never : sequence of str
        Modules deliberately never randomized (reported by
        :func:`unrandomized_parameters`).

    Returns
    -------
    tuple of Block

    Raises
    ------
    RandomizationError
        No blocks, a label twice, or a block without modules.

    Examples
    --------
    >>> register_blocks("my-net", {"Logits": "net.fc", "body": ["net.conv1", "net.conv2"]})[0].label
    'Logits'
    """
    items = blocks.items() if isinstance(blocks, dict) else blocks
    out = []
    for item in items:
        label, modules = (item.label, item.modules) if isinstance(item, Block) else item
        modules = (modules,) if isinstance(modules, str) else tuple(modules)
        if not modules or not all(isinstance(m, str) and m for m in modules):
            raise RandomizationError(f"block {label!r} of {architecture!r} must name at least one module")
        out.append(Block(str(label), modules))
    if not out:
        raise RandomizationError(f"register_blocks({architecture!r}) got no blocks")
    labels = [b.label for b in out]
    if len(set(labels)) != len(labels):
        raise RandomizationError(f"register_blocks({architecture!r}): a label appears twice in {labels}")
    RANDOMIZATION_BLOCKS[architecture] = tuple(out)
    NEVER_RANDOMIZED[architecture] = tuple(never)
    return tuple(out)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def derive_blocks(model: nn.Module, *, max_blocks: int = 12) -> tuple[Block, ...]:
    """Randomization blocks of any model, derived from its module tree, top-down.

    Start from the model's children that hold parameters; while fewer than
    ``max_blocks`` blocks exist, split the largest block that is a pure
    container (no parameters of its own, at least two children with
    parameters, and at least ``2 / max_blocks`` of the model's parameters
    unless it is the only block) into those children. The blocks, in registration order (a
    module's forward order in nearly every network), are then reversed: the
    last parameterized children (the head) first, as Quantus' MPRT
    ``"top_down"`` order but grouped into named blocks. Every parameter of
    the model belongs to exactly one block (a model whose root holds
    parameters of its own is refused: no block could hold them alone).

    Parameters
    ----------
    model : torch.nn.Module
    max_blocks : int
        Upper bound of the number of blocks (splitting stops before exceeding it).

    Returns
    -------
    tuple of Block
        Labels are the module names (without an :class:`ExternalModel`'s ``net.`` prefix).

    Raises
    ------
    RandomizationError
        The model has no parameters or parameters on its root module.

    References
    ----------
    .. [1] Hedström, A. et al. (2023). Quantus: an explainable AI toolkit. JMLR 24(34)
       (``ModelParameterRandomisation``, ``layer_order="top_down"``).
    .. [2] Adebayo et al. (2018), see the module docstring.
    """
    if list(model.parameters(recurse=False)):
        raise RandomizationError(f"{type(model).__name__} holds parameters of its own; register its blocks with "
                                 "helpers.randomization.register_blocks")

    def parameterized_children(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
        return [(f"{prefix}{name}", child) for name, child in module.named_children()
                if child is not None and _n_params(child) > 0]

    blocks = parameterized_children(model, "")
    if not blocks:
        raise RandomizationError(f"{type(model).__name__} has no parameters to randomize")
    total = _n_params(model)
    while True:
        candidates = [(i, name, module) for i, (name, module) in enumerate(blocks)
                      if not list(module.parameters(recurse=False))
                      and len(parameterized_children(module, "")) >= 2
                      and (len(blocks) == 1 or _n_params(module) * max_blocks >= 2 * total)]
        candidates = [c for c in candidates if len(blocks) - 1 + len(parameterized_children(c[2], "")) <= max_blocks]
        if not candidates:
            break
        i, name, module = max(candidates, key=lambda c: _n_params(c[2]))
        blocks[i:i + 1] = parameterized_children(module, f"{name}.")
    label = (lambda n: n[len("net."):] if n.startswith("net.") else n)
    return tuple(Block(label(name), (name,)) for name, _ in reversed(blocks))


#: PyTorch's ``reset_parameters`` of the layers a TorchScript model is made of, by ``original_name``: a
#: scripted module keeps its parameters but not its Python methods.
def _reset_scripted(module: nn.Module, name: str) -> None:
    kind = getattr(module, "original_name", type(module).__name__)
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if kind.startswith("Conv") or kind == "Linear":
        nn.init.kaiming_uniform_(weight, a=5 ** 0.5)  # nn.Conv*/nn.Linear.reset_parameters
        if bias is not None:
            fan_in = weight[0].numel()
            bound = 1 / fan_in ** 0.5 if fan_in > 0 else 0
            nn.init.uniform_(bias, -bound, bound)
    elif kind.startswith("BatchNorm") or kind in ("LayerNorm", "GroupNorm"):
        if weight is not None:
            nn.init.ones_(weight)
        if bias is not None:
            nn.init.zeros_(bias)
    else:
        raise RandomizationError(f"module {name!r} of a TorchScript model is a {kind} with parameters; only "
                                 "convolutions, linear and normalization layers can be re-initialized there")
