"""Presets and run parameters shared by every notebook of the book.

A *preset* fills every setting; an explicit parameter overrides it. Every
notebook exposes the same public parameters (:data:`NOTEBOOK_PARAMETERS`);
the remaining settings (training length, dataset size, per-method settings)
are preset internals that a user may still override by name through
:func:`resolve`.

Unknown names or values raise :class:`ConfigError` listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from helpers.model_spec import ModelSpecError, normalization_name, parse_model_spec
from helpers.names import ARCHITECTURES, BATCHNORM_RULES, REINIT_RULES

__all__ = [
    "ConfigError",
    "Settings",
    "PRESETS",
    "DATASETS",
    "NOTEBOOK_PARAMETERS",
    "OVERRIDES_PARAMETER",
    "SETTINGS_FIELDS",
    "merge_overrides",
    "COLAB_HOME",
    "HOME_ENV",
    "default_dirs",
    "resolve",
    "require_two_architectures",
]


class ConfigError(ValueError):
    """An unknown parameter, preset or value."""


DATASETS = ("synthetic", "rsna", "siim", "folder")

#: The parameters every notebook declares in its ``parameters`` cell.
NOTEBOOK_PARAMETERS = (
    "preset",
    "dataset",
    "data_dir",
    "image_size",
    "n_images",
    "architectures",
    "n_replicates",
    "methods",
    "seed",
    "device",
    "cache_dir",
    "results_dir",
    "overrides",
)

#: The notebook parameter that carries any other :class:`Settings` field (a mapping ``{name: value}``).
OVERRIDES_PARAMETER = "overrides"

def merge_overrides(parameters: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The notebook's parameters plus its ``overrides`` mapping (any other :class:`Settings` field).

    Every field of :class:`Settings` can be set from a notebook or from
    ``helpers.book execute --param NAME=VALUE``: the names of
    :data:`NOTEBOOK_PARAMETERS` directly, every other field through the
    ``overrides`` mapping (``--param epochs=4`` is packed into it). A name
    given both ways, or an ``overrides`` that is not a mapping of names,
    raises :class:`ConfigError`; the values are validated by :func:`resolve`.
    """
    merged = dict(parameters)
    if overrides is None:
        return merged
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
        raise ConfigError(f"overrides must be a mapping of setting names to values, e.g. {{'epochs': 4}}, got {overrides!r}")
    for name, value in overrides.items():
        if name == "preset" or name == OVERRIDES_PARAMETER:
            raise ConfigError(f"overrides cannot set {name!r}; pass it as the notebook parameter instead")
        if name in merged and merged[name] is not None:
            raise ConfigError(f"{name!r} is given both as a notebook parameter ({merged[name]!r}) and in overrides "
                              f"({value!r}); give it once")
        merged[name] = value
    return merged


#: Where caches and results go in Google Colab (``cache/`` and ``results/`` below it) unless :data:`HOME_ENV` is set.
COLAB_HOME = "/content/saliency-trust-book"
#: Environment variable naming a folder for ``cache/`` and ``results/`` (e.g. a Google Drive folder in Colab, so
#: that a runtime reset loses nothing); it applies wherever it is set.
HOME_ENV = "SALIENCY_BOOK_HOME"

#: How the image-label-only self-explaining model starts (Settings.trainable_init).
TRAINABLE_INITS = ("classifier", "scratch")

PAPER_METHODS = ("GRAD", "SG", "IG", "SIG", "GCAM", "XRAI", "GBP", "GGCAM")


@dataclass(frozen=True)
class Settings:
    """Every setting of a run, after a preset was applied and overridden.

    Attributes
    ----------
    preset : str
        ``"smoke"``, ``"default"`` or ``"paper"``.
    dataset : str
        ``"synthetic"`` (embedded default), ``"rsna"``, ``"siim"`` or ``"folder"``.
    data_dir : str or None
        Folder of a real dataset; ``None`` for the synthetic one, which is
        generated under ``cache_dir``.
    image_size : int
        Working size (square, pixels) of every image, mask and map.
    n_images : int
        Number of positive test images whose maps are evaluated.
    architectures : tuple of str
        Classifier architectures; the first one is the primary model.
    n_replicates : int
        Independently trained replicates (different seeds) of the primary
        (first) architecture; every other architecture is trained once, as in
        Arun et al. (three InceptionV3 replicates, one DenseNet121).
    methods : tuple of str
        Saliency methods evaluated (names of :data:`helpers.saliency.METHODS`).
    seed : int
        Master seed: data generation, split, training and sampling derive from it.
    device : str
        ``"auto"`` (a GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    cache_dir, results_dir : str
        Where cached artifacts and result tables/figures go.
    n_synthetic : int
        Size of the generated synthetic dataset (all splits together).
    positive_fraction : float
        Share of positives in the synthetic dataset.
    limit : int or None
        Keep a subsample of ``limit`` images of the dataset (``None``, the
        default: every image), drawn before the train/validation/test split,
        seeded by ``seed`` and stratified by label (each label keeps its
        share, rounded by largest remainder). It applies to every dataset
        (``"rsna"``, ``"siim"``, ``"folder"``: only the chosen images are
        decoded; ``"synthetic"``: drawn from the ``n_synthetic`` images
        generated) and is part of the data cache key
        (:func:`helpers.data.loaders.load`). A ``limit`` at least the size of
        the dataset keeps every image.
    epochs, batch_size, learning_rate, patience : int, int, float, int
        Training schedule (early stopping on validation AUC after ``patience``
        epochs without improvement).
    pretrained : str or None
        Path of a local weights file for the backbone; never downloaded.
    method_settings : dict
        Per-method keyword overrides, e.g. ``{"XRAI": {"n_steps": 20}}``.
    n_bootstrap : int
        Bootstrap replicates of every confidence interval.
    localizer_channels : int
        Channels of the first level of the supervised U-Net localizer
        (:class:`helpers.localizer.UNet` doubles them at each of its 3
        levels). 16 is the paper-scale network; 8 costs about a third of
        its training time at the same validation AP on the synthetic data.

    model : tuple of str
        Given classifiers (:mod:`helpers.model_spec`); empty: the book trains its own.
    model_channels, model_normalization, model_input_size, model_class_index, model_gradcam_layer
        The given models' input contract (:class:`helpers.models.external.InputContract`):
        1 or 3 channels; ``"[0,1]"``, ``"[-1,1]"`` or ``"imagenet"``; input
        size (``None``: ``image_size``); the output explained; GradCAM's
        module (``None``: found).
    eval_dataset, eval_data_dir : str or None
        A dataset (``"rsna"``, ``"siim"``, ``"folder"``) and its folder whose
        positives every criterion is evaluated on, instead of the test split
        of ``dataset``; it may hold positives only.

    The randomization tests (the last block of fields):

    randomization_init : str
        How a randomized block's convolution/linear weights are re-drawn
        (:data:`helpers.randomization.REINIT_RULES`): ``"architecture"``
        (default: the architecture's own initializer, as Adebayo et al.),
        ``"reset_parameters"`` (PyTorch's defaults), ``"glorot_uniform"``
        (Keras' default, Arun et al.'s framework), ``"normal"``,
        ``"kaiming_normal"``.
    randomization_batchnorm : str
        Batch-norm layers of a randomized block
        (:data:`helpers.randomization.BATCHNORM_RULES`): ``"reset_affine"``
        (default: γ = 1, β = 0, trained running statistics kept, as Adebayo
        et al.'s code), ``"reset_all"`` (running mean 0 / variance 1 too),
        ``"keep"``.
    label_randomization_target_accuracy : float
        Training accuracy on the permuted labels that the permuted-label
        model trains towards (it stops on reaching it) and that
        :func:`helpers.models.label_randomization_ready` requires before the
        label-randomization test is judged (default 0.9).
    label_randomization_max_epochs : int
        Epoch cap of the permuted-label training (default 60).
    label_randomization_train_fraction : float
        Share of the training images (a seeded, class-stratified subset) the
        permuted-label model is trained on, in (0, 1] (default 0.25). The
        test only needs a model that fits permuted labels, and memorizing
        them takes many more epochs on more images: on the default preset
        (smallcnn, 80 px) 280 images reached 0.9 in 15 epochs (67 s on one
        core), while all 1120 were still at chance (loss 0.69) after 7
        epochs of 16 s. Use 1.0 for the paper's setting on a GPU.
    """

    preset: str = "default"
    dataset: str = "synthetic"
    data_dir: str | None = None
    image_size: int = 128
    n_images: int = 24
    architectures: tuple[str, ...] = ("resnet18", "smallcnn")
    n_replicates: int = 2
    methods: tuple[str, ...] = PAPER_METHODS
    seed: int = 0
    device: str = "auto"
    cache_dir: str = ".cache"
    results_dir: str = "results"
    n_synthetic: int = 2000
    positive_fraction: float = 0.5
    limit: int | None = None
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 3
    pretrained: str | None = None
    method_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    n_bootstrap: int = 1000
    localizer_channels: int = 16
    # ---- Randomization tests (helpers.randomization, helpers.models.cache); checked by _validate_randomization.
    randomization_init: str = "architecture"
    randomization_batchnorm: str = "reset_affine"
    label_randomization_target_accuracy: float = 0.9
    label_randomization_max_epochs: int = 60
    label_randomization_train_fraction: float = 0.25

    # ---- Learned inpainter of chapter 07 (helpers.counterfactual.inpainter; issue 16) ----------------
    # The gated-convolution U-Net behind perturbation "inpaint_learned", trained on the negative
    # training images only. inpainter_channels: channels of its three levels; inpainter_steps: Adam
    # updates of inpainter_batch_size random crops of inpainter_crop px (capped at image_size) at
    # inpainter_learning_rate; inpainter_texture_weight: weight of the texture (band-pass energy)
    # term beside the L1 terms. All of them are part of the inpainter's cache key.
    # Defaults measured on `default` (80 px, 549 negatives, 2 shared cores): 58 s CPU, median texture
    # ratio 0.88 on the chapter's regions.
    inpainter_channels: tuple[int, ...] = (8, 16, 32)
    inpainter_steps: int = 300
    inpainter_batch_size: int = 16
    inpainter_crop: int = 48
    inpainter_learning_rate: float = 3e-3
    inpainter_texture_weight: float = 5.0

    # ---- Trainable saliency's label-efficiency curve (chapter 06) ----------------------------------
    # With box supervision (box fraction > 0), fine-tune the image-label-only self-explaining model
    # for trainable_finetune_epochs epochs instead of training from scratch for `epochs`
    # (0 = train every box fraction from scratch). Part of those models' cache keys.
    trainable_finetune_epochs: int = 4
    # The image-label-only self-explaining model: "classifier" starts its backbone from the trained
    # true-label classifier of the same architecture and replicate and trains backbone + new head for
    # trainable_finetune_epochs epochs (measured on `default`: the resnet18 model 248 s -> ~125 s);
    # "scratch" trains it from its own initialization for `epochs` epochs (Aggarwal et al.'s setting
    # is silent on this; they start from an ImageNet backbone). Part of the cache key.
    trainable_init: str = "classifier"

    # ---- Shortcut learning (chapter 08; helpers.shortcuts) ------------------------------------------
    # One smallcnn per marker-label correlation in shortcut_correlations (the first must be 0: the honest
    # model; the last is the shortcut model) and one on a marker-independent dataset with
    # shortcut_label_noise (0: none), each on shortcut_n_train images (80 % train) for shortcut_epochs at
    # shortcut_image_size px at shortcut_learning_rate (3e-3: on default the honest model's test AUC is 0.72 after
    # 3 epochs, against 0.63 at the book's 1e-3); shortcut_n_test test images, shortcut_n_images of them explained.
    # shortcut_costly_methods get maps for the honest and the shortcut model only, of the first
    # shortcut_costly_images explained images (0: left out); shortcut_replicates replicates of the shortcut model (2: its
    # repeatability is judged). At most five classifiers on `default`. The marker:
    # helpers.data.synthetic.generate's marker_size / marker_placement / marker_contrast.
    # shortcut_trainable_epochs: epochs of one self-explaining model (TRAINABLE, image labels only, no boxes) per
    # marker correlation (not for the label-noise dataset nor the replicates), fine-tuned from that correlation's
    # classifier under trainable_init="classifier" (from scratch under "scratch"); 0 leaves TRAINABLE out.
    # shortcut_localizer_epochs: epochs of the U-Net localizer (localizer_channels), trained once, on the opacity
    # masks of the shortcut dataset (it never sees a label, so no correlation sweep), at
    # shortcut_localizer_batch_size (8: 32 gives 320 images 10 updates an epoch; on default its validation AP is
    # 0.73 after 4 epochs at 8, 0.17 at 32); 0 leaves it out. All three are part of those models' cache keys.
    # Default-preset numbers measured on 2 shared CPU cores: see chapter 08's Prerequisites.
    shortcut_correlations: tuple[float, ...] = (0.0, 0.5, 1.0)
    shortcut_label_noise: float = 0.2
    shortcut_n_train: int = 400
    shortcut_n_test: int = 160
    shortcut_epochs: int = 3
    shortcut_learning_rate: float = 3e-3
    shortcut_image_size: int = 64
    shortcut_n_images: int = 8
    shortcut_marker_size: float = 0.3
    shortcut_marker_placement: str = "upper_corner"
    shortcut_marker_contrast: float = 1.0
    shortcut_costly_methods: tuple[str, ...] = ("XRAI",)
    shortcut_costly_images: int = 6
    shortcut_replicates: int = 2
    shortcut_trainable_epochs: int = 3
    shortcut_localizer_epochs: int = 4
    shortcut_localizer_batch_size: int = 8

    # ---- Bring your own model and data from elsewhere (issue 12; helpers.models.external, helpers.audit) ----
    # model: specifications of given classifiers (helpers.model_spec: ARCH=WEIGHTS, FILE.ts,
    # package.module:function[=WEIGHTS]); empty: the book trains its own. model_channels ... model_gradcam_layer:
    # their input contract (helpers.models.external.InputContract). eval_dataset / eval_data_dir: evaluate every
    # criterion on another dataset than the one trained on (None: the test split of `dataset`).
    model: tuple[str, ...] = ()
    model_channels: int = 1
    model_normalization: str = "[0,1]"
    model_input_size: int | None = None
    model_class_index: int = 1
    model_gradcam_layer: str | None = None
    eval_dataset: str | None = None
    eval_data_dir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (tuples become lists) for hashing and logging."""
        out = dataclasses.asdict(self)
        out["method_settings"] = {k: dict(v) for k, v in self.method_settings.items()}
        return out


#: Preset values; each dict overrides the dataclass defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # The whole book in a few minutes on 2 CPU cores (CI). Numbers are honest
    # but noisy: small images, few epochs, cheap method settings.
    "smoke": dict(
        image_size=64,
        n_images=6,
        architectures=("smallcnn", "resnet18"),
        n_replicates=2,
        n_synthetic=240,
        epochs=3,
        batch_size=32,
        patience=2,
        n_bootstrap=1000,  # a one-sided bootstrap p is at least 1/(n+1): Holm over 10 methods needs n >= 400
        localizer_channels=8,
        method_settings={
            "SG": {"n_samples": 5},
            "SIG": {"n_samples": 2},
            "XRAI": {"n_steps": 6},
            "CF": {"steps": 10},
        },
        # Two fine-tuning epochs per self-explaining model (default: 4): with SIG and XRAI above, a fifth less
        # forward+backward work in CI's smoke precompute.
        trainable_finetune_epochs=2,
    ),
    # What `make book` runs: meaningful results in <= 15 min on 2 CPU cores (README, "How long it takes").
    # The paper's method settings except SmoothGrad-IG (10 instead of 25 noise
    # samples) and XRAI (40 instead of 100 integration steps per baseline),
    # which together would cost 4/5 of the book's time; see the chapters.
    # 80 px and an 8-channel U-Net keep the whole book under 30 min (at 96 px
    # with a 16-channel U-Net it took 39 min, most of the excess training).
    "default": dict(
        image_size=80,
        n_images=16,
        architectures=("smallcnn", "resnet18"),
        n_replicates=2,
        n_synthetic=1600,
        epochs=8,
        patience=3,
        localizer_channels=8,
        method_settings={
            "SIG": {"n_samples": 10},
            "XRAI": {"n_steps": 40},
        },
    ),
    # Arun et al. 2021: InceptionV3 at 320 px, 3 replicates, DenseNet121 for
    # reproducibility, 100 positive test images. Meant for a GPU and real data.
    "paper": dict(
        image_size=320,
        n_images=100,
        architectures=("inception_v3", "densenet121"),
        n_replicates=3,
        n_synthetic=6000,
        epochs=30,
        batch_size=32,
        learning_rate=7e-5,
        patience=5,
        # The paper's Grad-CAM was upsampled with TF1's resize_bilinear
        # (align_corners=False, no half-pixel centres); smoke and default keep
        # the aligned half-pixel bilinear resize (see chapter 01).
        method_settings={
            "GCAM": {"upsample": "tf1"},
            "GGCAM": {"upsample": "tf1"},
        },
    ),
}

# ---- Learned inpainter of chapter 07 (issue 16): the smoke preset trains it for a third of the steps.
PRESETS["smoke"]["inpainter_steps"] = 100
# ---- Shortcut chapter 08: the smoke preset trains three small classifiers (honest, shortcut and its replicate),
# two self-explaining models for one epoch each and the U-Net for two.
PRESETS["smoke"].update(shortcut_correlations=(0.0, 1.0), shortcut_label_noise=0.0, shortcut_n_train=120,
                        shortcut_n_test=60, shortcut_epochs=2, shortcut_n_images=5, shortcut_costly_images=0,
                        shortcut_trainable_epochs=1, shortcut_localizer_epochs=2)

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
#: Every field of :class:`Settings` (each can be set from a notebook: see :func:`merge_overrides`).
SETTINGS_FIELDS: tuple[str, ...] = tuple(_FIELDS)


def _closest(name: str, valid) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def _coerce_sequence(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return tuple(str(v) for v in value)
    except TypeError:
        raise ConfigError(f"parameter {name!r} must be a list of names, got {value!r}") from None


def default_dirs() -> dict[str, str]:
    """Default ``cache_dir`` and ``results_dir`` where no parameter sets them.

    ``$SALIENCY_BOOK_HOME/cache`` and ``.../results`` when :data:`HOME_ENV` is
    set; in Google Colab (``google.colab`` imported) ``/content/saliency-trust-book/...``
    (:data:`COLAB_HOME`, which the notebooks' Colab cell names); elsewhere
    ``.cache`` and ``results`` relative to the current folder.

    Returns
    -------
    dict
        ``{"cache_dir": ..., "results_dir": ...}``.
    """
    home = os.environ.get(HOME_ENV) or (COLAB_HOME if "google.colab" in sys.modules else None)
    if home:
        return {"cache_dir": str(Path(home) / "cache"), "results_dir": str(Path(home) / "results")}
    return {"cache_dir": Settings.cache_dir, "results_dir": Settings.results_dir}


def resolve(preset: str = "default", **overrides: Any) -> Settings:
    """Settings of ``preset`` with ``overrides`` applied and validated.

    Parameters
    ----------
    preset : {"smoke", "default", "paper"}
        Which preset fills the settings not given explicitly.
    **overrides
        Any field of :class:`Settings`. ``None`` means "keep the preset's
        value" for every field except ``data_dir``, ``pretrained``, so that a
        notebook's parameters cell can leave a setting to the preset.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        Unknown preset, parameter or value; the message names the parameter
        and lists the valid values (a wrong type, such as ``seed="abc"`` or
        ``n_images=2.5``, included).

    Examples
    --------
    >>> resolve("smoke", image_size=96).image_size
    96
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}.{_closest(preset, PRESETS)}")
    values: dict[str, Any] = {**default_dirs(), **PRESETS[preset]}
    values["preset"] = preset
    for name, value in overrides.items():
        if name not in _FIELDS or name == "preset":
            valid = ", ".join(n for n in _FIELDS if n != "preset")
            raise ConfigError(f"unknown parameter {name!r}; valid parameters: {valid}.{_closest(name, _FIELDS)}")
        if value is None and name not in ("data_dir", "pretrained", "model_input_size", "model_gradcam_layer",
                                          "eval_dataset", "eval_data_dir", "limit"):
            continue
        values[name] = value
    for name in ("architectures", "methods", "shortcut_costly_methods", "model"):
        if name in values:
            values[name] = _coerce_sequence(name, values[name])
    if "shortcut_correlations" in values:
        try:
            values["shortcut_correlations"] = tuple(float(c) for c in values["shortcut_correlations"])
        except (TypeError, ValueError):
            raise ConfigError(f"shortcut_correlations must be a list of numbers in [0, 1], got "
                              f"{values['shortcut_correlations']!r}") from None
    if "model_normalization" in values:
        values["model_normalization"] = _normalization(values["model_normalization"])
    settings = Settings(**values)
    _validate(settings)
    _validate_randomization(settings)
    _validate_shortcut(settings)
    _validate_external(settings)
    return settings


#: Settings that must be integers, with their smallest valid value.
_INTEGERS = {"image_size": 1, "n_images": 1, "n_replicates": 1, "n_synthetic": 1, "epochs": 1, "batch_size": 1,
             "n_bootstrap": 1, "localizer_channels": 1, "patience": 0, "seed": 0}


def _check_integer(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise ConfigError(f"{name} must be {'a positive integer' if minimum == 1 else f'an integer >= {minimum}'}, "
                          f"got {value!r}")


def _check_folder(name: str, value: Any) -> None:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ConfigError(f"{name} must be a folder path (a string), got {value!r}")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} {str(value)!r} is an existing file, not a folder; give {name} a folder path "
                          f"(it is created when missing)")


def _validate(s: Settings) -> None:
    for name in ("dataset", "device"):
        if not isinstance(getattr(s, name), str):
            raise ConfigError(f"{name} must be a string, got {getattr(s, name)!r} ({type(getattr(s, name)).__name__})"
                              + ("; valid: auto, cpu, cuda, cuda:N, mps" if name == "device" else
                                 f"; valid datasets: {', '.join(DATASETS)}"))
    if s.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {s.dataset!r}; valid datasets: {', '.join(DATASETS)}.{_closest(s.dataset, DATASETS)}")
    if s.dataset != "synthetic":
        if not s.data_dir:
            raise ConfigError(f"dataset={s.dataset!r} needs data_dir pointing at the dataset's folder")
        if not Path(s.data_dir).is_dir():
            raise ConfigError(f"data_dir {s.data_dir!r} is not a folder (dataset={s.dataset!r})")
    for name, minimum in _INTEGERS.items():
        _check_integer(name, getattr(s, name), minimum)
    if s.limit is not None and (isinstance(s.limit, bool) or not isinstance(s.limit, numbers.Integral) or int(s.limit) < 1):
        raise ConfigError(f"limit must be None (every image) or an integer >= 1 (the number of images kept), got "
                          f"{s.limit!r} ({type(s.limit).__name__}); e.g. --param limit=500")
    if not (32 <= int(s.image_size) <= 1024):
        raise ConfigError(f"image_size must be between 32 and 1024 pixels, got {s.image_size!r}")
    for name in ("cache_dir", "results_dir"):
        _check_folder(name, getattr(s, name))
    for name in ("learning_rate", "positive_fraction"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if not float(s.learning_rate) > 0:
        raise ConfigError(f"learning_rate must be positive, got {s.learning_rate!r} (the presets use 1e-3 and 7e-5)")
    if not s.architectures:
        raise ConfigError("architectures must name at least one architecture")
    if not s.methods:
        raise ConfigError("methods must name at least one saliency method")
    for name in ("architectures", "methods"):
        names = getattr(s, name)
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ConfigError(f"{name} must be distinct; {doubled} appear(s) more than once in {list(names)}")
    # Architecture names are plain constants (helpers.names); saliency method names can come from plugins and
    # are checked where the registry is loaded (helpers.saliency.registry.check_method_settings, called by Study).
    for arch in s.architectures:
        if arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {arch!r}; valid architectures: {', '.join(ARCHITECTURES)}.{_closest(arch, ARCHITECTURES)}")
    for m in (*s.methods, *s.method_settings, *s.shortcut_costly_methods):
        if not isinstance(m, str) or not m:
            raise ConfigError(f"saliency method names must be non-empty strings, got {m!r} (parameters 'methods', "
                              "'method_settings', 'shortcut_costly_methods')")
    if not (0.0 < float(s.positive_fraction) < 1.0):
        raise ConfigError(f"positive_fraction must lie in (0, 1), got {s.positive_fraction!r}")
    if not isinstance(s.method_settings, Mapping) or not all(isinstance(v, Mapping) for v in s.method_settings.values()):
        raise ConfigError(f"method_settings must map method names to dicts of settings, got {s.method_settings!r}")
    if s.device != "auto" and not (s.device == "cpu" or s.device.startswith("cuda") or s.device == "mps"):
        raise ConfigError(f"unknown device {s.device!r}; valid: auto, cpu, cuda, cuda:N, mps")


def _validate_randomization(s: Settings) -> None:
    """Checks of the randomization-test block of :class:`Settings`."""
    if s.randomization_init not in REINIT_RULES:
        raise ConfigError(f"unknown randomization_init {s.randomization_init!r}; valid: {', '.join(REINIT_RULES)}."
                          f"{_closest(str(s.randomization_init), REINIT_RULES)}")
    if s.randomization_batchnorm not in BATCHNORM_RULES:
        raise ConfigError(f"unknown randomization_batchnorm {s.randomization_batchnorm!r}; valid: "
                          f"{', '.join(BATCHNORM_RULES)}.{_closest(str(s.randomization_batchnorm), BATCHNORM_RULES)}")
    for name in ("label_randomization_target_accuracy", "label_randomization_train_fraction"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < float(value) <= 1.0):
            raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
    epochs = s.label_randomization_max_epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"label_randomization_max_epochs must be a positive integer, got {epochs!r}")
    finetune = s.trainable_finetune_epochs
    if isinstance(finetune, bool) or not isinstance(finetune, int) or finetune < 0:
        raise ConfigError(f"trainable_finetune_epochs must be an integer >= 0 (0: train from scratch), got {finetune!r}")
    if s.trainable_init not in TRAINABLE_INITS:
        raise ConfigError(f"trainable_init must be one of {', '.join(map(repr, TRAINABLE_INITS))}, got {s.trainable_init!r}"
                          f"{_closest(str(s.trainable_init), TRAINABLE_INITS)}")
    if s.trainable_init == "classifier" and finetune == 0:
        raise ConfigError("trainable_init='classifier' needs trainable_finetune_epochs >= 1 (the epochs of the fine-tuning);"
                          " set trainable_init='scratch' to train from scratch")


def _validate_shortcut(s: Settings) -> None:
    """Checks of the shortcut chapter's block of :class:`Settings`."""
    for name, minimum in (("shortcut_n_train", 20), ("shortcut_n_test", 10), ("shortcut_epochs", 1),
                          ("shortcut_n_images", 2), ("shortcut_costly_images", 0), ("shortcut_replicates", 1),
                          ("shortcut_trainable_epochs", 0), ("shortcut_localizer_epochs", 0),
                          ("shortcut_localizer_batch_size", 2)):
        _check_integer(name, getattr(s, name), minimum)
    _check_integer("shortcut_image_size", s.shortcut_image_size, 64)
    if s.shortcut_image_size > 512:
        raise ConfigError(f"shortcut_image_size must be between 64 and 512 pixels (the generator's range), got "
                          f"{s.shortcut_image_size!r}")
    corr = s.shortcut_correlations
    if not corr or corr[0] != 0.0 or list(corr) != sorted(set(corr)) or not all(0.0 <= c <= 1.0 for c in corr):
        raise ConfigError(f"shortcut_correlations must start with 0 (the honest model) and increase within [0, 1], "
                          f"got {list(corr)!r}")
    lr = s.shortcut_learning_rate
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(float(lr)) and float(lr) > 0):
        raise ConfigError(f"shortcut_learning_rate must be a positive number, got {lr!r}")
    noise = s.shortcut_label_noise
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0.0 <= float(noise) <= 0.5:
        raise ConfigError(f"shortcut_label_noise must be a number in [0, 0.5] (0: no label-noise model), got {noise!r}")


def _normalization(value: Any) -> str:
    try:
        return normalization_name(value)
    except ModelSpecError as error:
        raise ConfigError(str(error)) from None


def _validate_external(s: Settings) -> None:
    """Checks of the given models' specifications and contract, and of the evaluation dataset (no torch)."""
    for text in s.model:
        try:
            parse_model_spec(text)
        except ModelSpecError as error:
            raise ConfigError(f"parameter 'model': {error}") from None
    for name, minimum in (("model_channels", 1), ("model_class_index", 0)):
        _check_integer(name, getattr(s, name), minimum)
    if s.model_channels not in (1, 3):
        raise ConfigError(f"model_channels must be 1 or 3 (grey or RGB input), got {s.model_channels!r}")
    if s.model_input_size is not None:
        _check_integer("model_input_size", s.model_input_size, 8)
    if s.model_gradcam_layer is not None and (not isinstance(s.model_gradcam_layer, str) or not s.model_gradcam_layer):
        raise ConfigError(f"model_gradcam_layer must be a module name or None, got {s.model_gradcam_layer!r}")
    if s.eval_dataset is None:
        if s.eval_data_dir is not None:
            raise ConfigError("eval_data_dir is set but eval_dataset is not; pass e.g. --param eval_dataset=folder")
        return
    if s.eval_dataset not in DATASETS or s.eval_dataset == "synthetic":
        valid = [d for d in DATASETS if d != "synthetic"]
        raise ConfigError(f"unknown eval_dataset {s.eval_dataset!r}; valid: {', '.join(valid)} (a folder of "
                          f"another dataset; the synthetic one is `dataset`).{_closest(str(s.eval_dataset), valid)}")
    if not s.eval_data_dir or not Path(s.eval_data_dir).is_dir():
        raise ConfigError(f"eval_dataset={s.eval_dataset!r} needs eval_data_dir pointing at its folder, got "
                          f"{s.eval_data_dir!r}")


def require_two_architectures(settings: Settings, *, chapter: str = "04_reproducibility") -> tuple[str, str]:
    """The two architectures a reproducibility comparison needs, or a :class:`ConfigError`.

    Reproducibility compares the maps of two *different* architectures (Arun
    et al.: InceptionV3 against DenseNet121); one architecture compared with
    itself scores a perfect SSIM and says nothing.

    Parameters
    ----------
    settings : Settings
        The resolved settings; ``settings.architectures`` must name at least two.
    chapter : str
        The chapter asking, named in the message.

    Returns
    -------
    tuple of str
        The first two architectures.

    Raises
    ------
    ConfigError
        ``architectures`` names fewer than two distinct architectures.
    """
    distinct = list(dict.fromkeys(settings.architectures))
    if len(distinct) < 2:
        raise ConfigError(f"{chapter} compares two different architectures, but architectures={list(settings.architectures)} "
                          f"names {len(distinct)}; pass two, e.g. --param architectures=[smallcnn,resnet18]")
    return distinct[0], distinct[1]
