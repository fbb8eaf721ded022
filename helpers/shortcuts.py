"""Confounded synthetic datasets and the classifiers trained on them (the shortcut chapter, 08).

One :class:`ShortcutExperiment` per chapter run. It renders a small synthetic
dataset **twice**, every image once with its lead marker and once without
(:func:`helpers.data.synthetic.generate` with ``marker_presence="all"`` and
``"none"``; the anatomy, opacities and noise do not depend on the marker),
and composes from those two renderings, image by image, the dataset of any
marker correlation (:func:`helpers.data.synthetic.labels_and_markers` says
which images carry the marker): exactly the images ``generate`` would draw
for that correlation, for the cost of two renderings instead of one per
model. The renderings are cached on disk; the classifiers go through the
book's model cache (:func:`helpers.models.get_trained`), so a second run
loads everything.

Test sets (the same test images for every model):

* **confounded**: the test images as the model's own correlation draws them;
* **de-confounded**: every test image twice, with and without its marker
  (marker independent of the label, exactly);
* the **explained** images: positive test images drawn with their marker, so
  that every model's maps of the same pixels can be compared and every map
  has a marker to be judged on.

Beside the classifiers' post-hoc maps, two maps that do not explain a
classifier after the fact:

* **TRAINABLE**: one self-explaining model (:mod:`helpers.trainable`, image
  labels only, box fraction 0) per marker correlation of the design, trained
  on the same images as that correlation's classifier (with
  ``trainable_init = "classifier"`` its backbone starts from that
  classifier); its own evidence map is the explanation. The label-noise
  dataset and the shortcut model's replicates get none;
* the **U-Net** (:mod:`helpers.localizer`): the supervised localizer,
  trained once, on the opacity masks of the shortcut dataset (where the
  marker predicts the label best). Its loss never sees a label or the
  marker, so it is the reference of a map that has no reason to look at the
  marker; it is not trained per correlation.

Labels: training and validation use the recorded labels (after the label
noise of the model's dataset); every test AUC uses the true labels.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers._cache import atomic_write, stable_hash
from helpers.criteria.shortcut import AUCGap, auc_gap
from helpers.data._resize import tight_box
from helpers.data.imageset import ImageSet
from helpers.data.synthetic import GENERATOR_VERSION, generate, labels_and_markers
from helpers.metrics import average_mask_prior
from helpers.study import TrainedModel

__all__ = ["ShortcutDesign", "ShortcutModel", "ShortcutLocalizer", "ShortcutExperiment", "SEED_OFFSET", "RENDER_VERSION",
           "METHOD_SETTINGS", "EXTRA_METHODS", "TRAINABLE", "LOCALIZER"]

#: The chapter's images are drawn from seed ``settings.seed + SEED_OFFSET``: other images than the book's dataset.
SEED_OFFSET = 808
#: Bumped when the cached renderings' layout changes.
RENDER_VERSION = "1"
#: Share of the non-test images used for training (the rest validates, for early stopping).
TRAIN_SHARE = 0.8
#: The chapter's cheaper method settings (over the preset's): its budget is minutes for five models. CF uses the
#: training-free blur fill (the learned inpainter is trained on the book's 80 px dataset, not on these images).
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "SG": {"n_samples": 10},
    "SIG": {"n_samples": 3},
    "XRAI": {"n_steps": 10, "algorithm": "fast"},
    "CF": {"perturbation": "blur", "steps": 10},
}
#: Methods explained beside the study's ``methods``.
EXTRA_METHODS = ("CF",)
#: The self-explaining model's map (one model per marker correlation, :meth:`ShortcutExperiment.self_explaining`).
TRAINABLE = "TRAINABLE"
#: The supervised localizer's map (one U-Net, on the shortcut dataset, :meth:`ShortcutExperiment.localizer`).
LOCALIZER = "U-Net"


@dataclass(frozen=True)
class ShortcutDesign:
    """What the shortcut chapter trains and explains (from the ``shortcut_*`` settings).

    Attributes
    ----------
    correlations : tuple of float
        Marker-label correlations (phi) of the datasets; one classifier each.
        The first must be 0 (the *honest* model), the last is the *shortcut* model.
    label_noise : float
        Label noise of the extra, marker-independent dataset (0: no such model).
    n_train : int
        Training plus validation images of every dataset (80 % train).
    n_test : int
        Test images (the same for every model).
    epochs : int
        Training epochs (early stopping after as many epochs: none).
    learning_rate : float
        Adam's learning rate of the chapter's classifiers.
    image_size : int
        Pixels (square) of the chapter's images and maps.
    n_images : int
        Positive test images explained (with their marker).
    marker_size, marker_placement, marker_contrast : float, str, float
        The marker (:func:`helpers.data.synthetic.generate`).
    costly_methods : tuple of str
        Methods whose maps are computed for the honest and the shortcut
        model only (their cost per image is many times the others').
    costly_images : int
        How many of the explained images those methods explain (0: they are
        left out of the chapter).
    replicates : int
        Independently trained replicates of the shortcut model (2: its
        repeatability is judged).
    trainable_epochs : int
        Epochs of the self-explaining model of each correlation (TRAINABLE;
        fine-tuning epochs from the correlation's classifier when the
        settings' ``trainable_init`` is ``"classifier"``); 0: TRAINABLE is
        left out.
    localizer_epochs : int
        Epochs of the U-Net localizer, trained once, on the shortcut
        dataset; 0: the U-Net is left out.
    localizer_batch_size : int
        Its batch size (smaller than the classifiers': a few hundred images
        give a U-Net too few updates per epoch at 32).
    """

    correlations: tuple[float, ...]
    label_noise: float
    n_train: int
    n_test: int
    epochs: int
    image_size: int
    n_images: int
    marker_size: float
    marker_placement: str
    marker_contrast: float
    costly_methods: tuple[str, ...]
    costly_images: int = 8
    replicates: int = 2
    learning_rate: float = 1e-3
    trainable_epochs: int = 0
    localizer_epochs: int = 0
    localizer_batch_size: int = 8

    @classmethod
    def from_settings(cls, settings: Any) -> "ShortcutDesign":
        """The design of a :class:`helpers.config.Settings` (its ``shortcut_*`` fields)."""
        return cls(
            correlations=tuple(float(c) for c in settings.shortcut_correlations),
            label_noise=float(settings.shortcut_label_noise),
            n_train=int(settings.shortcut_n_train),
            n_test=int(settings.shortcut_n_test),
            epochs=int(settings.shortcut_epochs),
            image_size=int(settings.shortcut_image_size),
            n_images=int(settings.shortcut_n_images),
            marker_size=float(settings.shortcut_marker_size),
            marker_placement=str(settings.shortcut_marker_placement),
            marker_contrast=float(settings.shortcut_marker_contrast),
            costly_methods=tuple(settings.shortcut_costly_methods),
            costly_images=int(settings.shortcut_costly_images),
            replicates=int(settings.shortcut_replicates),
            learning_rate=float(settings.shortcut_learning_rate),
            trainable_epochs=int(settings.shortcut_trainable_epochs),
            localizer_epochs=int(settings.shortcut_localizer_epochs),
            localizer_batch_size=int(settings.shortcut_localizer_batch_size),
        )

    def __post_init__(self) -> None:
        if not self.correlations or self.correlations[0] != 0.0:
            raise ValueError(f"shortcut_correlations must start with 0 (the honest model), got {self.correlations}")
        if list(self.correlations) != sorted(set(self.correlations)) or not all(0 <= c <= 1 for c in self.correlations):
            raise ValueError(f"shortcut_correlations must be distinct, increasing and in [0, 1], got {self.correlations}")
        if not 0.0 <= self.label_noise <= 0.5:
            raise ValueError(f"shortcut_label_noise must lie in [0, 0.5], got {self.label_noise}")
        if self.trainable_epochs < 0 or self.localizer_epochs < 0:
            raise ValueError(f"shortcut_trainable_epochs and shortcut_localizer_epochs must be >= 0 (0: left out), got "
                             f"{self.trainable_epochs} and {self.localizer_epochs}")
        if self.localizer_batch_size < 2:
            raise ValueError(f"shortcut_localizer_batch_size must be >= 2 (BatchNorm), got {self.localizer_batch_size}")

    @property
    def marker_options(self) -> dict[str, Any]:
        """The marker keywords of :func:`helpers.data.synthetic.generate`."""
        return dict(marker_size=self.marker_size, marker_placement=self.marker_placement,
                    marker_contrast=self.marker_contrast)

    @property
    def models(self) -> list[tuple[str, float, float]]:
        """``(name, correlation, label_noise)`` of every classifier, the honest one first."""
        out = [(f"c = {c:g}", c, 0.0) for c in self.correlations]
        if self.label_noise > 0:
            out.append((f"c = 0, {self.label_noise:.0%} label noise", 0.0, self.label_noise))
        return out

    @property
    def honest(self) -> str:
        """Name of the honest model (correlation 0)."""
        return self.models[0][0]

    @property
    def shortcut(self) -> str:
        """Name of the shortcut model (the largest correlation)."""
        return f"c = {self.correlations[-1]:g}"

    @property
    def trainable_models(self) -> list[tuple[str, float]]:
        """``(name, correlation)`` of the datasets a self-explaining model is trained on: every correlation (or none)."""
        if not self.trainable_epochs:
            return []
        return [(f"c = {c:g}", c) for c in self.correlations]

    @property
    def localizer_models(self) -> list[tuple[str, float]]:
        """``(name, correlation)`` of the datasets a U-Net is trained on: the shortcut one only (or none)."""
        if not self.localizer_epochs:
            return []
        return [(self.shortcut, self.correlations[-1])]


@dataclass
class ShortcutModel:
    """A classifier of the shortcut chapter.

    Attributes
    ----------
    name : str
        ``"c = 0.8"``, ``"c = 0, 20% label noise"`` ...
    correlation, label_noise : float
        Of its training data.
    trained : helpers.study.TrainedModel
        The model (``key`` names it in the map cache) and its training record.
    seconds : float
        Wall time to train it (or to load it from the cache).
    replicate : int
        Training replicate (its own seed).
    cpu_seconds : float
        CPU time of this process for the same (on a shared machine, a
        steadier measure of the cost than the wall time).
    """

    name: str
    correlation: float
    label_noise: float
    trained: Any
    seconds: float
    replicate: int = 0
    cpu_seconds: float = float("nan")

    @property
    def cache_hit(self) -> bool:
        record = self.trained.record  # classifiers record "cache_hit", self-explaining models "cached"
        return bool(record.get("cache_hit", record.get("cached", False)))


@dataclass
class ShortcutLocalizer:
    """A U-Net localizer of the shortcut chapter, trained on one dataset's opacity masks.

    Attributes
    ----------
    name : str
        The name of the classifier of the same dataset (``"c = 1"``).
    correlation : float
        Marker-label correlation of its training images (the masks do not
        depend on it; which images carry the marker does).
    model : helpers.localizer.UNet
        In evaluation mode, on the study's device.
    record : dict
        :func:`helpers.localizer.get_trained_localizer`'s record (``key``,
        ``best_val_ap``, ``cached`` ...).
    seconds, cpu_seconds : float
        Wall and CPU time to train it (or to load it from the cache).
    """

    name: str
    correlation: float
    model: Any
    record: dict
    seconds: float
    cpu_seconds: float = float("nan")

    @property
    def cache_hit(self) -> bool:
        return bool(self.record.get("cached", False))


class ShortcutExperiment:
    """Datasets, classifiers and test sets of the shortcut chapter.

    Parameters
    ----------
    study : helpers.study.Study
        Supplies the settings (seed, cache folder, device, bootstrap size).
    design : ShortcutDesign, optional
        Default: :meth:`ShortcutDesign.from_settings` of the study's settings.
    """

    def __init__(self, study: Any, *, design: ShortcutDesign | None = None) -> None:
        self.study = study
        self.design = design or ShortcutDesign.from_settings(study.settings)
        self.seed = int(study.settings.seed) + SEED_OFFSET
        d = self.design
        #: Settings of the chapter's classifiers: its image size, epochs and learning rate, no early stop.
        self.settings = dataclasses.replace(study.settings, image_size=d.image_size, epochs=d.epochs,
                                            patience=d.epochs, learning_rate=d.learning_rate)
        #: Settings of the self-explaining models: trainable_epochs of fine-tuning from the dataset's
        #: classifier (trainable_init "classifier"), or of training from scratch (no early stop either way).
        if study.settings.trainable_init == "classifier":
            self.trainable_settings = dataclasses.replace(self.settings,
                                                          trainable_finetune_epochs=max(d.trainable_epochs, 1))
        else:
            self.trainable_settings = dataclasses.replace(self.settings, epochs=max(d.trainable_epochs, 1),
                                                          patience=max(d.trainable_epochs, 1))
        #: Settings of the U-Net: localizer_epochs at localizer_batch_size, no early stop.
        self.localizer_settings = dataclasses.replace(self.settings, epochs=max(d.localizer_epochs, 1),
                                                      patience=max(d.localizer_epochs, 1),
                                                      batch_size=d.localizer_batch_size)
        self.n_total = d.n_train + d.n_test
        self.n_fit = int(round(TRAIN_SHARE * d.n_train))

    # ------------------------------------------------------------ renderings
    def _render_path(self) -> Path:
        d = self.design
        key = stable_hash(dict(kind="shortcut-renders", version=RENDER_VERSION, generator=GENERATOR_VERSION,
                               n=self.n_total, size=d.image_size, seed=self.seed, **d.marker_options))
        return Path(self.study.cache_dir) / "shortcuts" / f"renders-{key}.npz"

    @functools.cached_property
    def renders(self) -> dict[str, np.ndarray]:
        """Every image with (``marked``) and without (``clean``) its marker, opacity and marker masks, true labels.

        Read from ``<cache_dir>/shortcuts/renders-<key>.npz`` when present
        (the key hashes the count, size, seed, marker options and generator
        version), rendered and written otherwise.
        """
        path = self._render_path()
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}
            except Exception:  # a damaged cache file: rendered again below and replaced
                pass
        kw = dict(size=self.design.image_size, seed=self.seed, **self.design.marker_options)
        marked = generate(self.n_total, marker_presence="all", return_without_marker=True, **kw)
        out = dict(marked=marked.images, clean=marked.without_marker, masks=marked.masks,
                   marker_masks=marked.marker_masks,
                   true_labels=marked.true_labels, ids=np.array(marked.ids, dtype=str))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **out)

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
        return out

    def draws(self, correlation: float, label_noise: float = 0.0) -> dict[str, np.ndarray]:
        """Recorded labels, true labels and marker presence of every image under one dataset's rule."""
        presence = "independent" if correlation == 0 else "confounded"
        return labels_and_markers(self.n_total, seed=self.seed, confounder_strength=float(correlation),
                                  label_noise=float(label_noise), marker_presence=presence)

    def _imageset(self, index: np.ndarray, present: np.ndarray, labels: np.ndarray, *, suffix: str = ""):
        r = self.renders
        images = np.where(present[:, None, None], r["marked"][index], r["clean"][index]).astype(np.float32)
        masks = r["masks"][index]
        ids = [f"{r['ids'][i]}{suffix}" for i in index]
        boxes = [tight_box(m)[None, :] if m.any() else np.zeros((0, 4)) for m in masks]
        return ImageSet(images=images, labels=np.asarray(labels, np.int64), masks=masks, boxes=boxes, ids=ids,
                        patient_ids=ids, source="synthetic")

    def dataset(self, correlation: float, label_noise: float = 0.0):
        """The training data of one classifier: ``(ImageSet, splits)``.

        The first ``n_train`` images (80 % train, 20 % validation) under the
        dataset's rule with its recorded labels, then the test images under
        the same rule with their true labels (the confounded test set).
        """
        d = self.draws(correlation, label_noise)
        labels = d["labels"].copy()
        labels[self.design.n_train:] = d["true_labels"][self.design.n_train:]
        data = self._imageset(np.arange(self.n_total), d["markers"], labels)
        splits = dict(train=np.arange(self.n_fit), val=np.arange(self.n_fit, self.design.n_train),
                      test=np.arange(self.design.n_train, self.n_total))
        return data, splits

    # ---------------------------------------------------------------- models
    def model(self, name: str, correlation: float, label_noise: float = 0.0, *, replicate: int = 0,
              progress: bool = False) -> ShortcutModel:
        """One classifier (``smallcnn``), trained on :meth:`dataset` or loaded from the model cache."""
        from helpers.models import get_trained  # torch side: `import helpers.shortcuts` needs no torch

        data, splits = self.dataset(correlation, label_noise)
        start, cpu = time.perf_counter(), time.process_time()
        model, record = get_trained(self.settings, data, splits, architecture="smallcnn", replicate=replicate,
                                    progress=progress)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        trained = TrainedModel(model=model.to(self.study.device).eval(), record=record, key=record["key"])
        return ShortcutModel(name, float(correlation), float(label_noise), trained, seconds, int(replicate), cpu)

    def models(self, *, progress: bool = False) -> dict[str, ShortcutModel]:
        """Every classifier of the design, ``{name: ShortcutModel}``, the honest one first."""
        return {name: self.model(name, c, noise, progress=progress) for name, c, noise in self.design.models}

    def self_explaining(self, name: str, correlation: float, label_noise: float = 0.0, *,
                        progress: bool = False) -> ShortcutModel:
        """The self-explaining model (TRAINABLE) of one dataset, trained or loaded from its cache.

        Image labels only (box fraction 0, as the chapter's classifiers), on
        :meth:`dataset`'s training and validation images, by
        :func:`helpers.trainable.get_trained_self_explaining` with
        :attr:`trainable_settings` (content-keyed cache under
        ``<cache_dir>/trainable/``, one process trains it under the entry's
        lock). With ``trainable_init = "classifier"`` its backbone starts from
        the classifier of the same dataset (:meth:`model`, from the cache) and
        is fine-tuned for ``trainable_epochs`` epochs.
        """
        from helpers.study import TrainedModel
        from helpers.trainable import get_trained_self_explaining

        data, splits = self.dataset(correlation, label_noise)
        start, cpu = time.perf_counter(), time.process_time()
        model, record = get_trained_self_explaining(self.trainable_settings, data, splits, architecture="smallcnn",
                                                    box_fraction=0.0, progress=progress)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        record = dict(record)
        record.setdefault("architecture", model.architecture)
        trained = TrainedModel(model=model.to(self.study.device).eval(), record=record, key=record["key"])
        return ShortcutModel(name, float(correlation), float(label_noise), trained, seconds, 0, cpu)

    def self_explaining_models(self, *, progress: bool = False) -> dict[str, ShortcutModel]:
        """The self-explaining model of every correlation, ``{name: ShortcutModel}`` (empty: TRAINABLE left out).

        The names are the classifiers' (:attr:`ShortcutDesign.trainable_models`):
        the model named ``"c = 1"`` is trained on the images of classifier
        ``"c = 1"``. The label-noise dataset gets none (it has no shortcut).
        """
        return {name: self.self_explaining(name, c, progress=progress) for name, c in self.design.trainable_models}

    def localizer(self, name: str, correlation: float) -> ShortcutLocalizer:
        """The U-Net localizer of one dataset: trained on its training images' opacity masks, or loaded from its cache.

        Every positive training image's mask is used (mask fraction 1), the
        negatives with empty masks (:func:`helpers.localizer.get_trained_localizer`,
        content-keyed cache under ``<cache_dir>/localizers/``, trained under the
        entry's lock); ``localizer_channels`` of the study's settings,
        :attr:`localizer_settings`' schedule. The labels only decide which
        images are negatives: the marker never enters the loss.
        """
        from helpers.localizer import get_trained_localizer

        data, splits = self.dataset(correlation)
        start, cpu = time.perf_counter(), time.process_time()
        model, record = get_trained_localizer(self.localizer_settings, data, splits, mask_fraction=1.0,
                                              base_channels=int(self.study.settings.localizer_channels))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return ShortcutLocalizer(name, float(correlation), model.to(self.study.device).eval(), dict(record), seconds,
                                 cpu)

    def localizers(self) -> dict[str, ShortcutLocalizer]:
        """The U-Net of :attr:`ShortcutDesign.localizer_models`, ``{name: ShortcutLocalizer}`` (empty: left out)."""
        return {name: self.localizer(name, c) for name, c in self.design.localizer_models}

    def localizer_maps(self, localizer: ShortcutLocalizer) -> np.ndarray:
        """The U-Net's per-pixel opacity probabilities ``(n_images, S, S)`` of the explained images (in [0, 1])."""
        from helpers.localizer import predict_maps

        return predict_maps(localizer.model, self.explained.tensor(), device=self.study.device)

    def shortcut_replicates(self, *, progress: bool = False) -> list[ShortcutModel]:
        """Replicates 1, 2, ... of the shortcut model (``design.replicates - 1`` of them; replicate 0 is in :meth:`models`)."""
        c = self.design.correlations[-1]
        return [self.model(f"{self.design.shortcut}, replicate {r}", c, 0.0, replicate=r, progress=progress)
                for r in range(1, self.design.replicates)]

    # ------------------------------------------------------------- test sets
    @functools.cached_property
    def test_index(self) -> np.ndarray:
        return np.arange(self.design.n_train, self.n_total)

    @property
    def test_labels(self) -> np.ndarray:
        """True labels of the test images."""
        return self.renders["true_labels"][self.test_index].astype(np.int64)

    def test_set(self, which: str, correlation: float = 0.0):
        """The test images ``"confounded"`` (under ``correlation``'s rule), ``"with_marker"`` or ``"without_marker"``."""
        idx = self.test_index
        if which == "confounded":
            present = self.draws(correlation)["markers"][idx]
        elif which in ("with_marker", "without_marker"):
            present = np.full(idx.size, which == "with_marker")
        else:
            raise ValueError(f"unknown test set {which!r}; valid: confounded, with_marker, without_marker")
        return self._imageset(idx, present, self.test_labels, suffix={"with_marker": "+marker",
                                                                       "without_marker": "-marker"}.get(which, ""))

    def auc_gap(self, model: ShortcutModel, *, correlation: float | None = None) -> AUCGap:
        """AUC on the confounded test set (the model's own correlation) minus on the de-confounded one.

        Parameters
        ----------
        model : ShortcutModel
        correlation : float, optional
            The confounded set's correlation (default: the model's own).
        """
        from helpers.models import predict_proba  # torch side, as in model()

        c = model.correlation if correlation is None else correlation
        scores = {which: predict_proba(model.trained.model, self.test_set(which, c).images,
                                       device=self.study.device)
                  for which in ("confounded", "with_marker", "without_marker")}
        s = self.study.settings
        return auc_gap(self.test_labels, scores["confounded"], scores["with_marker"], scores["without_marker"],
                       n_bootstrap=s.n_bootstrap, seed=s.seed)

    @functools.cached_property
    def explained(self):
        """The first ``n_images`` positive test images, drawn with their marker (ids end in ``+marker``)."""
        idx = self.test_index[self.test_labels == 1][: self.design.n_images]
        return self._imageset(idx, np.ones(idx.size, bool), np.ones(idx.size, np.int64), suffix="+marker")

    @property
    def explained_marker_masks(self) -> np.ndarray:
        """``bool (n_images, S, S)``: the exact marker masks of :attr:`explained`."""
        idx = self.test_index[self.test_labels == 1][: self.design.n_images]
        return self.renders["marker_masks"][idx]

    # ------------------------------------------------------------------ maps
    @property
    def methods(self) -> list[str]:
        """The methods the chapter explains with: the study's, then :data:`EXTRA_METHODS`."""
        methods = list(self.study.settings.methods)
        return methods + [m for m in EXTRA_METHODS if m not in methods]

    @property
    def explainers(self) -> list[str]:
        """Every map the chapter compares: :attr:`methods`, then :data:`TRAINABLE` and :data:`LOCALIZER` when trained."""
        out = list(self.methods)
        if self.design.trainable_epochs:
            out.append(TRAINABLE)
        if self.design.localizer_epochs:
            out.append(LOCALIZER)
        return out

    def n_explained(self, method: str) -> int:
        """How many of the explained images ``method`` explains (fewer for the costly methods)."""
        n = len(self.explained)
        return min(n, self.design.costly_images) if method in self.design.costly_methods else n

    def computes(self, method: str, model: ShortcutModel) -> bool:
        """Whether ``method``'s maps of ``model`` are computed: the costly methods only for the honest and shortcut models."""
        if method not in self.design.costly_methods:
            return True
        return (self.design.costly_images > 0 and model.name in (self.design.honest, self.design.shortcut)
                and model.replicate == 0)

    def maps(self, model: ShortcutModel, method: str, *, state: Any = "trained") -> np.ndarray:
        """``method``'s maps of the explained images (the first :meth:`n_explained`) for ``model``.

        Settings: the preset's, overridden by :data:`METHOD_SETTINGS`; cached in
        the study's map cache under the model's key. ``state``: a
        :class:`helpers.study.ModelState` (e.g. :meth:`helpers.study.Study.fully_randomized`)
        or ``"trained"``.
        """
        images = self.explained.subset(np.arange(self.n_explained(method)))
        return self.study.maps(model.trained, method, state=state, images=images, **METHOD_SETTINGS.get(method, {}))

    def scores(self, maps: np.ndarray, method: str) -> "pd.DataFrame":
        """Tidy rows ``image_id, metric, value`` of one model's ``method`` maps: the marker metrics and the opacity AP.

        :func:`helpers.criteria.shortcut.marker_scores` (mass share, pointing
        game, the marker's area share) and the average precision of the
        opacity mask (:func:`helpers.metrics.localization_table`), on the
        first :meth:`n_explained` images.
        """
        import pandas as pd

        from helpers.criteria.shortcut import marker_scores
        from helpers.metrics import localization_table

        n = self.n_explained(method)
        ids = list(self.explained.ids[:n])
        maps = np.asarray(maps)[:n]
        marker = marker_scores(maps, self.marker_masks(method), ids)
        ap = localization_table(maps, self.opacity_masks(method), ids, metrics=["average_precision"])
        return pd.concat([marker, ap[["image_id", "metric", "value"]]], ignore_index=True)

    def marker_masks(self, method: str) -> np.ndarray:
        """The exact marker masks of the images ``method`` explains."""
        return self.explained_marker_masks[: self.n_explained(method)]

    def opacity_masks(self, method: str) -> np.ndarray:
        """The opacity masks of the images ``method`` explains."""
        return self.explained.masks[: self.n_explained(method)]

    @functools.cached_property
    def average_mask_prior(self) -> np.ndarray:
        """The localization baseline: mean opacity mask of the positive training and validation images."""
        r = self.renders
        n = self.design.n_train
        return average_mask_prior(r["masks"][:n], labels=r["true_labels"][:n])
