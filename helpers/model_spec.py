"""How a user names their own classifier, parsed without importing torch.

A *model specification* is one string (the ``model`` setting, ``--model`` of
``python -m helpers.audit``):

================================  ==============================================
specification                     what is loaded
================================  ==============================================
``resnet18=/path/weights.pt``     a zoo architecture (:data:`helpers.models.ARCHITECTURES`)
                                  with a local state dict (``weights_only=True``)
``/path/model.ts``                a TorchScript file (``torch.jit.save``)
``package.module:function``       the ``nn.Module`` that ``function()`` returns
``package.module:function=/w.pt`` the same, with a local state dict loaded into it
================================  ==============================================

Its *input contract* (the settings ``model_channels``, ``model_normalization``,
``model_input_size``, ``model_class_index``) says what the model expects;
:func:`helpers.models.external.load_model` wraps it so that every saliency
method sees the book's ``[0, 1]`` one-channel images.

This module only checks the syntax and that named files exist, so that
:mod:`helpers.config` can validate settings without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelSpecError", "ModelSpec", "NORMALIZATIONS", "parse_model_spec", "normalization_name"]

#: Input normalizations a contract may name (``model_normalization``): what the model's first layer expects
#: of an image whose pixels the book holds in ``[0, 1]``.
NORMALIZATIONS = ("[0,1]", "[-1,1]", "imagenet")

_CALLABLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
KINDS = ("zoo", "torchscript", "callable")


class ModelSpecError(ValueError):
    """A model specification or contract that cannot be understood; the message names the fix."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model specification.

    Attributes
    ----------
    text : str
        The specification as given.
    kind : {"zoo", "torchscript", "callable"}
    architecture : str or None
        The zoo architecture (``kind="zoo"``).
    function : str or None
        ``"package.module:function"`` (``kind="callable"``).
    path : str or None
        The weights file (zoo, optional for callable) or the TorchScript file.
    """

    text: str
    kind: str
    architecture: str | None = None
    function: str | None = None
    path: str | None = None

    @property
    def label(self) -> str:
        """Short name for tables: the architecture, the function, or the TorchScript file's name."""
        if self.kind == "zoo":
            return str(self.architecture)
        if self.kind == "callable":
            return str(self.function)
        return f"torchscript:{Path(str(self.path)).stem}"


def _existing_file(path: str, *, what: str, spec: str) -> str:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelSpecError(f"model {spec!r}: {what} {str(p)!r} does not exist; give the path of a local file")
    if not p.is_file():
        raise ModelSpecError(f"model {spec!r}: {what} {str(p)!r} is not a file")
    return str(p)


def parse_model_spec(text: str, *, architectures: tuple[str, ...] | None = None) -> ModelSpec:
    """Parse one model specification (see the module docstring).

    Parameters
    ----------
    text : str
    architectures : tuple of str, optional
        The zoo's architecture names (default: :data:`helpers.models.zoo.ARCHITECTURES`'s
        names, listed here so that no torch import is needed).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelSpecError
        Not a string, a missing file, or a form that is none of the three.

    Examples
    --------
    >>> parse_model_spec("os.path:join").kind
    'callable'
    """
    zoo = architectures or _ZOO
    if not isinstance(text, str) or not text.strip():
        raise ModelSpecError(f"model must be a non-empty string, got {text!r}; e.g. model='resnet18=/path/weights.pt'")
    text = text.strip()
    head, eq, tail = text.partition("=")
    if eq and head in zoo:
        return ModelSpec(text, "zoo", architecture=head, path=_existing_file(tail, what="weights file", spec=text))
    if eq and _CALLABLE.match(head):
        return ModelSpec(text, "callable", function=head, path=_existing_file(tail, what="weights file", spec=text))
    if not eq and _CALLABLE.match(text) and not Path(text).exists():
        return ModelSpec(text, "callable", function=text)
    if not eq and text in zoo:
        raise ModelSpecError(f"model {text!r} names a zoo architecture without weights; give its trained weights "
                             f"as model='{text}=/path/weights.pt' (a state dict saved with torch.save)")
    if eq:
        raise ModelSpecError(f"model {text!r}: {head!r} is neither a zoo architecture ({', '.join(zoo)}) nor "
                             "'package.module:function'; the forms are ARCH=WEIGHTS, FILE.ts (TorchScript), "
                             "package.module:function[=WEIGHTS]")
    return ModelSpec(text, "torchscript", path=_existing_file(text, what="TorchScript file", spec=text))


def normalization_name(value) -> str:
    """The canonical name (:data:`NORMALIZATIONS`) of a ``model_normalization`` setting.

    Accepts the names with or without spaces and the YAML lists ``[0, 1]`` and
    ``[-1, 1]`` that ``--param model_normalization=[0,1]`` produces.

    Raises
    ------
    ModelSpecError
        Anything else (a callable is accepted by
        :class:`helpers.models.external.InputContract` only, not as a setting).
    """
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = f"[{value[0]:g},{value[1]:g}]" if all(isinstance(v, (int, float)) for v in value) else str(value)
    if isinstance(value, str):
        name = value.replace(" ", "").lower()
        if name in NORMALIZATIONS:
            return name
    raise ModelSpecError(f"model_normalization {value!r} is not one of {', '.join(NORMALIZATIONS)} "
                         "(imagenet: RGB mean/std of torchvision's ImageNet models); pass e.g. "
                         "--param model_normalization=imagenet")


#: The zoo's names (kept equal to helpers.models.zoo.ARCHITECTURES by a test), for parsing without torch.
_ZOO = ("smallcnn", "resnet18", "resnet50", "densenet121", "inception_v3")
