"""The registry of saliency methods: one name, one function, its default settings.

Every method of the book, built in or added by an extension package
(``helpers.trainable``, ``helpers.counterfactual`` ...), sits behind the same
interface::

    fn(model, images, *, target, **settings) -> raw attribution

* ``model`` is a :class:`torch.nn.Module` in eval mode whose parameters do not
  require gradients (:func:`helpers.saliency.explain` arranges both and
  restores them afterwards);
* ``images`` is a ``float32`` tensor ``(N, C, H, W)`` in ``[0, 1]`` on the
  model's device;
* ``target`` is a ``long`` tensor ``(N,)`` of classes to explain, on the same
  device -- or ``None`` for a method registered with
  ``handles_predicted=True``, meaning "the class the model predicts for the
  unperturbed image, taken from your own forward pass" (it saves a forward);
* the raw attribution is a torch tensor or numpy array ``(N, H, W)`` or
  ``(N, C, H, W)``, signed, finite; :mod:`helpers.saliency.postprocess` turns
  it into a ``[0, 1]`` map according to the method's ``postprocess`` kind.

A function may also accept an ``internal_batch_size`` keyword (how many
perturbed inputs go through the model at once); :func:`helpers.saliency.explain`
passes it when the signature has it.

This module imports nothing from the method implementations, so an extension
can ``from helpers.saliency.registry import register`` at import time without
a circular import.
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from helpers._cache import stable_hash
from helpers.config import ConfigError
from helpers.saliency._errors import RegistryError, UnknownMethodError, UnknownSettingError

__all__ = [
    "POSTPROCESS_KINDS",
    "RESERVED_KEYWORDS",
    "MethodSpec",
    "REGISTRY",
    "METHODS",
    "register",
    "unregister",
    "get",
    "methods",
    "PLUGINS",
    "load_plugins",
    "check_method_settings",
]

#: How a raw attribution becomes a ``[0, 1]`` map (see :mod:`helpers.saliency.postprocess`).
POSTPROCESS_KINDS = ("paper", "minmax", "none")

#: Keywords of :func:`helpers.saliency.explain` and of the map cache; a method
#: setting may not use them.
RESERVED_KEYWORDS = frozenset(
    {
        "model",
        "images",
        "method",
        "target",
        "batch_size",
        "internal_batch_size",
        "progress",
        "model_key",
        "state",
        "image_ids",
        "weights_sha256",
    }
)


@dataclass(frozen=True)
class MethodSpec:
    """A registered saliency method (see :func:`register`).

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(model, images, *, target, **settings) -> raw attribution``.
    defaults : mapping
        Every setting the method takes, with its default value (read-only).
    description : str
        One line for tables and docs.
    postprocess : {"paper", "minmax", "none"}
        Post-processing of the raw attribution.
    reference : str
        The paper (and code) the implementation follows.
    handles_predicted : bool
        ``fn`` accepts ``target=None`` for "the predicted class" and resolves it
        in its own forward pass.
    passes : callable or int or None
        Forward+backward passes per image for given settings (for progress
        bars and benchmarks); ``None`` when unknown.
    version : str
        Bumped when the implementation changes its output; part of cache keys.
    takes_internal_batch_size : bool
        ``fn`` has an ``internal_batch_size`` keyword.
    """

    name: str
    fn: Callable[..., Any]
    defaults: Mapping[str, Any]
    description: str
    postprocess: str
    reference: str
    handles_predicted: bool
    passes: Callable[[Mapping[str, Any]], int] | int | None
    version: str
    takes_internal_batch_size: bool

    def resolve(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The method's defaults updated with ``settings``.

        Raises
        ------
        UnknownSettingError
            A keyword the method does not take; the message lists the valid ones.
        """
        unknown = [k for k in settings if k not in self.defaults]
        if unknown:
            valid = ", ".join(self.defaults) if self.defaults else "(none: the method takes no settings)"
            raise UnknownSettingError(
                f"saliency method {self.name!r} has no setting {unknown[0]!r}; valid settings: {valid}"
                f"{_closest(unknown[0], self.defaults)}"
            )
        resolved = dict(self.defaults)
        resolved.update(settings)
        return resolved

    def n_passes(self, settings: Mapping[str, Any]) -> int | None:
        """Forward+backward passes per image for the resolved ``settings`` (``None`` if unknown)."""
        if self.passes is None:
            return None
        if callable(self.passes):
            return int(self.passes(settings))
        return int(self.passes)


#: Registered methods, in registration order (read it, never write it: use :func:`register`).
REGISTRY: dict[str, MethodSpec] = {}

#: Extension packages' registration functions, ``"module:function"``: each calls :func:`register` for its
#: methods. :func:`load_plugins` calls them once, in this order, on the first lookup of the registry
#: (:func:`get`, :func:`methods`, :data:`METHODS`), after the built-in methods of :mod:`helpers.saliency`.
PLUGINS: list[str] = ["helpers.counterfactual.method:register_method", "helpers.trainable.method:register_method"]

_PLUGINS_STATE = {"loaded": False, "loading": False}


def load_plugins() -> None:
    """Call every registration function of :data:`PLUGINS` (once; later calls do nothing).

    Explicit registration instead of an import side effect: the extensions
    import this module, so :mod:`helpers.saliency` cannot import them at its
    top without an import cycle. The built-in methods are registered first:
    importing this module imports its package :mod:`helpers.saliency`, which
    registers them.

    Raises
    ------
    RegistryError
        An entry that is not ``"module:function"`` or names nothing callable.
    """
    if _PLUGINS_STATE["loaded"] or _PLUGINS_STATE["loading"]:
        return
    _PLUGINS_STATE["loading"] = True
    try:
        for entry in PLUGINS:
            module, _, name = entry.partition(":")
            fn = getattr(importlib.import_module(module), name, None) if name else None
            if not callable(fn):
                raise RegistryError(f"saliency plugin {entry!r} names no registration function (module:function)")
            fn()
        _PLUGINS_STATE["loaded"] = True
    finally:
        _PLUGINS_STATE["loading"] = False


class _MethodNames(Sequence):
    """Live, read-only tuple-like view of the registered method names.

    ``METHODS`` always reflects the registry, including methods registered
    after ``helpers.saliency`` was imported; ``tuple(METHODS)`` (or
    :func:`methods`) takes a snapshot.
    """

    def __getitem__(self, index):
        load_plugins()
        return tuple(REGISTRY)[index]

    def __len__(self) -> int:
        load_plugins()
        return len(REGISTRY)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in REGISTRY

    def __iter__(self):
        load_plugins()
        return iter(tuple(REGISTRY))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list, _MethodNames)):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # mutable view

    def __add__(self, other):
        return tuple(self) + tuple(other)

    def __repr__(self) -> str:
        return repr(tuple(self))


#: Live view of the registered names (``"GRAD", "SG", "IG", "SIG", "GCAM", "XRAI", "GBP", "GGCAM"``, then extras).
METHODS = _MethodNames()


def _closest(name: str, valid) -> str:
    import difflib

    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f". Did you mean {match[0]!r}?" if match else ""


def methods() -> tuple[str, ...]:
    """Snapshot of the registered method names, in registration order."""
    load_plugins()
    return tuple(REGISTRY)


def check_method_settings(settings: Any) -> None:
    """Check that every saliency method a :class:`helpers.config.Settings` names is registered.

    Methods can come from plugins (:func:`load_plugins`), so the names are
    checked here, where the registry is loaded, and not by
    :func:`helpers.config.resolve` (which imports no torch).
    :class:`helpers.study.Study` calls this when it is built.

    Parameters
    ----------
    settings : helpers.config.Settings
        Its ``methods``, the keys of ``method_settings`` and
        ``shortcut_costly_methods`` are checked.

    Raises
    ------
    helpers.config.ConfigError
        A name that is not registered; the message names the parameter, the
        registered methods and the closest one.
    """
    names = methods()
    for m in settings.methods:
        if m not in names:
            raise ConfigError(f"parameter 'methods': unknown saliency method {m!r}; valid methods: "
                              f"{', '.join(names)}{_closest(m, names)}")
    for m in settings.method_settings:
        if m not in names:
            raise ConfigError(f"parameter 'method_settings' names unknown method {m!r}; valid methods: "
                              f"{', '.join(names)}{_closest(m, names)}")
    unknown = [m for m in settings.shortcut_costly_methods if m not in names]
    if unknown:
        raise ConfigError(f"parameter 'shortcut_costly_methods' names unknown method(s) {unknown}; valid: "
                          f"{', '.join(names)}")


def get(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered under ``name``.

    Raises
    ------
    UnknownMethodError
        ``name`` is not registered; the message lists the registered names.
    """
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    load_plugins()
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    raise UnknownMethodError(
        f"unknown saliency method {name!r}; valid methods: {', '.join(REGISTRY)}{_closest(name, REGISTRY)}"
    )


def register(
    name: str,
    fn: Callable[..., Any],
    *,
    defaults: Mapping[str, Any],
    description: str,
    postprocess: str = "paper",
    reference: str,
    handles_predicted: bool = False,
    passes: Callable[[Mapping[str, Any]], int] | int | None = None,
    version: str = "1",
) -> MethodSpec:
    """Add a saliency method to the registry (and to ``METHODS``).

    Parameters
    ----------
    name : str
        Unique, non-empty, no whitespace (e.g. ``"GRAD"``, ``"CF_INPAINT"``).
    fn : callable
        ``fn(model, images, *, target, **settings)``; see the module docstring.
        It must accept ``target`` and every key of ``defaults`` as keywords.
    defaults : dict
        Every setting with its default; values must be plain JSON-like values
        (they enter cache keys through :func:`helpers._cache.stable_hash`).
    description : str
        One line.
    postprocess : {"paper", "minmax", "none"}, optional
        ``"paper"``: Arun et al.'s ``VisualizeImageGrayscale`` (|attribution|
        summed over channels, clipped at the 99th percentile, scaled to
        ``[0, 1]``); ``"minmax"``: signed channel sum min-max scaled;
        ``"none"``: the raw map already is a ``[0, 1]`` map.
    reference : str
        What the implementation follows (paper, code).
    handles_predicted : bool, optional
        ``fn`` accepts ``target=None`` meaning "the predicted class at the
        unperturbed input" and takes it from its own forward pass.
    passes : callable or int, optional
        Forward+backward passes per image, or ``passes(settings) -> int``.
    version : str, optional
        Implementation version (part of map-cache keys).

    Returns
    -------
    MethodSpec

    Raises
    ------
    RegistryError
        ``name`` already registered or invalid, ``fn`` not callable or missing
        keywords, ``defaults`` not hashable or using a reserved keyword, unknown
        ``postprocess``.
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise RegistryError(f"a saliency method name must be a non-empty string without spaces, got {name!r}")
    if name in REGISTRY:
        raise RegistryError(
            f"saliency method {name!r} is already registered (by {REGISTRY[name].fn.__module__}); pick another name"
        )
    if not callable(fn):
        raise RegistryError(f"saliency method {name!r}: fn must be callable, got {type(fn).__name__}")
    if not isinstance(defaults, Mapping):
        raise RegistryError(f"saliency method {name!r}: defaults must be a dict of settings, got {type(defaults).__name__}")
    reserved = sorted(RESERVED_KEYWORDS.intersection(defaults))
    if reserved:
        raise RegistryError(
            f"saliency method {name!r}: setting names {reserved} are reserved for explain()/the map cache; rename them"
        )
    try:
        stable_hash(dict(defaults))
    except TypeError as exc:
        raise RegistryError(f"saliency method {name!r}: defaults must be plain values ({exc})") from None
    if postprocess not in POSTPROCESS_KINDS:
        raise RegistryError(
            f"saliency method {name!r}: unknown postprocess {postprocess!r}; valid: {', '.join(POSTPROCESS_KINDS)}"
        )
    if not isinstance(description, str) or not isinstance(reference, str):
        raise RegistryError(f"saliency method {name!r}: description and reference must be strings")
    if not (passes is None or callable(passes) or (isinstance(passes, int) and passes >= 0)):
        raise RegistryError(f"saliency method {name!r}: passes must be None, an int >= 0 or a callable, got {passes!r}")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without signature: trust the caller
        params = None
    takes_ibs = False
    if params is not None:
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        keywords = {
            n for n, p in params.items() if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        }
        missing = [k for k in ("target", *defaults) if k not in keywords]
        if missing and not var_kw:
            raise RegistryError(f"saliency method {name!r}: fn {fn.__qualname__} does not accept keyword(s) {missing}")
        takes_ibs = "internal_batch_size" in keywords
    spec = MethodSpec(
        name=name,
        fn=fn,
        defaults=types.MappingProxyType(dict(defaults)),
        description=description,
        postprocess=postprocess,
        reference=reference,
        handles_predicted=bool(handles_predicted),
        passes=passes,
        version=str(version),
        takes_internal_batch_size=takes_ibs,
    )
    REGISTRY[name] = spec
    return spec


def unregister(name: str) -> MethodSpec:
    """Remove ``name`` from the registry and return its spec (for tests and interactive work).

    Raises
    ------
    UnknownMethodError
        ``name`` is not registered.
    """
    spec = get(name)
    del REGISTRY[name]
    return spec
