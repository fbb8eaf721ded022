"""Everything the chapters train and map, as one task graph run by Dask distributed.

The chapters ask a :class:`~helpers.study.Study` for trained models and saliency
maps, and every answer is cached on disk under a content key, written
atomically (:mod:`helpers._cache`). That makes the work safe to spread: this
module lists what the chapters will ask for (:func:`plan`), turns it into a
Dask graph and runs it on a cluster (:func:`execute`), so that the chapters
then find everything in the shared ``cache_dir``.

The graph has two layers:

* **trainings**, one task per model, each trained once whatever the number of
  chapters that use it (classifiers, the permuted-label model, the U-Net
  localizers, the self-explaining models, the learned inpainter); a
  label-efficiency model that fine-tunes the image-label-only model depends on
  it;
* **maps**, one task per (model, randomization state, method, chunk of
  explained images), each depending on its model's training. A worker loads
  the trained model from the shared cache, derives the randomized state from
  its seed (:meth:`Study.randomized_states` with ``blocks=[label]``: a
  cascading state has every block above it randomized whatever is asked, so
  one state is derived without the others), and fills the shared map cache
  through :meth:`Study.maps`, the very call the chapters make.

Maps do not depend on which images share a batch (per-image noise seeded by
the pixels, :func:`helpers.saliency._engine.image_noise`), so a chunk's maps
are the maps the serial chapters compute; ``tests/test_precompute.py`` checks
it bit for bit.

The list of work is the chapters' own calls written once more
(:data:`CHAPTER_REQUESTS`, one function per chapter): a test runs the chapters
after a precompute and requires that they compute no map and train no model.

References
----------
.. [1] Dask Development Team (2016). Dask: library for dynamic task
   scheduling. https://dask.org (``dask.distributed``: ``Client``,
   ``LocalCluster``, ``progress``; retries of a task lost with its worker).
.. [2] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267 (the work the
   chapters repeat).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from helpers.config import Settings

__all__ = [
    "PrecomputeError",
    "Training",
    "MapWork",
    "Plan",
    "BOX_FRACTIONS",
    "CF_VARIANTS",
    "CHAPTER_REQUESTS",
    "plan",
    "execute",
    "precompute",
    "local_cluster",
]

#: Box fractions of chapter 06's label-efficiency curve (the notebook's ``BOX_FRACTIONS``; a test compares them).
BOX_FRACTIONS = (0.0, 0.01, 0.05, 0.25, 1.0)
#: Fills of chapter 07's counterfactual maps (the notebook's ``VARIANTS``; a test compares them).
CF_VARIANTS = ("inpaint_learned", "inpaint", "inpaint_biharmonic", "blur", "noise", "constant")


class PrecomputeError(RuntimeError):
    """A bad option of the precompute, or a task that failed after its retries (the message names it)."""


# --------------------------------------------------------------------------- the work
@dataclass(frozen=True)
class Training:
    """One model to train (or find in the cache).

    Attributes
    ----------
    kind : {"classifier", "self_explaining", "localizer", "inpainter"}
    architecture : str or None
        Classifier / backbone architecture (``None`` for the localizer and the inpainter).
    replicate : int
    label_mode : {"true", "permuted"}
        Classifiers only.
    box_fraction : float
        Self-explaining models only.
    """

    kind: str
    architecture: str | None = None
    replicate: int = 0
    label_mode: str = "true"
    box_fraction: float = 0.0

    @property
    def name(self) -> str:
        """A readable unique name, e.g. ``"classifier/smallcnn/r0/true"``."""
        if self.kind == "classifier":
            return f"classifier/{self.architecture}/r{self.replicate}/{self.label_mode}"
        if self.kind == "self_explaining":
            return f"self_explaining/{self.architecture}/r{self.replicate}/box{self.box_fraction:g}"
        if self.kind == "localizer":
            return f"localizer/r{self.replicate}"
        return self.kind

    @property
    def depends_on(self) -> tuple["Training", ...]:
        """Trainings that must finish first (a fine-tuned label-efficiency model needs its base model)."""
        if self.kind == "self_explaining" and self.box_fraction > 0:
            return (Training("self_explaining", self.architecture, self.replicate, box_fraction=0.0),)
        return ()


@dataclass(frozen=True)
class MapWork:
    """The maps of one (model, state, method, options) for some explained images.

    Attributes
    ----------
    model : Training
        The trained model whose (randomized) weights are explained.
    state : str
        ``"trained"``, ``"full"`` (every block re-initialized) or
        ``"<mode>:<block label>"`` with mode ``cascading`` or ``independent``.
    method : str
    options : tuple of (name, value)
        Per-call method options of the chapter (``(("perturbation", "blur"),)``);
        the preset's method settings are added by :meth:`Study.maps`.
    images : tuple of int
        Positions in :attr:`Study.explained`.
    """

    model: Training
    state: str
    method: str
    options: tuple[tuple[str, Any], ...] = ()
    images: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.model.name}|{self.state}|{self.method}{'[' + opts + ']' if opts else ''}"


@dataclass
class Plan:
    """What the chapters need for one settings: trainings first, then maps by chunk.

    Attributes
    ----------
    settings : Settings
    trainings : list of Training
        Each model once, dependencies first.
    maps : list of MapWork
        One entry per chunk.
    requested_by : dict
        ``{training or map name (without chunk): [chapters]}``.
    n_images : int
        Number of explained images.
    n_train : dict
        ``{training kind: images seen per epoch}`` (for the pass estimates).
    estimated : bool
        Sizes counted from the settings, the dataset not loaded (``plan(load_data=False)``).
    """

    settings: Settings
    trainings: list[Training] = field(default_factory=list)
    maps: list[MapWork] = field(default_factory=list)
    requested_by: dict[str, list[str]] = field(default_factory=dict)
    n_images: int = 0
    n_train: dict[str, int] = field(default_factory=dict)
    estimated: bool = False

    # ------------------------------------------------------------ estimates
    def training_passes(self, training: Training) -> int:
        """Upper bound of the forward+backward passes of ``training`` (every epoch run, no early stop).

        One pass per training image and epoch (plus a forward pass of the
        validation images, not counted); the inpainter: steps × batch size.
        """
        s = self.settings
        if training.kind == "classifier":
            if training.label_mode == "permuted":
                return int(s.label_randomization_max_epochs) * math.ceil(
                    self.n_train["classifier"] * float(s.label_randomization_train_fraction))
            return int(s.epochs) * self.n_train["classifier"]
        if training.kind == "self_explaining":
            epochs = int(s.epochs)
            if training.box_fraction > 0 and int(s.trainable_finetune_epochs) > 0:
                epochs = int(s.trainable_finetune_epochs)
            return epochs * self.n_train["classifier"]
        if training.kind == "localizer":
            return int(s.epochs) * self.n_train["localizer"]
        return int(s.inpainter_steps) * int(s.inpainter_batch_size)

    def map_passes(self, work: MapWork) -> int | None:
        """Forward+backward passes of ``work`` (per-image passes of the method × images); ``None`` if unknown."""
        from helpers.saliency.registry import get

        spec = get(work.method)
        per_image = spec.n_passes(spec.resolve({**self.settings.method_settings.get(work.method, {}),
                                                **dict(work.options)}))
        return None if per_image is None else per_image * len(work.images)

    def summary(self) -> list[dict[str, Any]]:
        """One row per task type: ``type``, ``tasks``, ``passes`` (``None`` when a method does not tell)."""
        rows: dict[str, dict[str, Any]] = {}
        for t in self.trainings:
            row = rows.setdefault(f"train {t.kind}" + (" (permuted labels)" if t.label_mode == "permuted" else ""),
                                  {"tasks": 0, "passes": 0})
            row["tasks"] += 1
            row["passes"] += self.training_passes(t)
        for w in self.maps:
            row = rows.setdefault(f"maps {w.method}", {"tasks": 0, "passes": 0})
            row["tasks"] += 1
            p = self.map_passes(w)
            row["passes"] = None if (p is None or row["passes"] is None) else row["passes"] + p
        return [{"type": k, **v} for k, v in rows.items()]

    def describe(self) -> str:
        """The dry-run report: task counts and estimated forward+backward passes per task type."""
        rows = self.summary()
        n_states = len({(w.model, w.state) for w in self.maps})
        lines = [
            ("sizes estimated from the settings (dataset not loaded)\n" if self.estimated else "") +
            f"preset {self.settings.preset}: {self.settings.image_size} px, {self.n_images} explained images, "
            f"architectures {', '.join(self.settings.architectures)}, {len(self.settings.methods)} methods",
            f"{len(self.trainings)} trainings, {len(self.maps)} map tasks over {n_states} model states "
            f"({self.n_images * len({(w.model, w.state, w.method, w.options) for w in self.maps})} maps)",
            "",
            f"{'task type':<38} {'tasks':>6} {'fwd+bwd passes':>15}",
        ]
        total = 0
        for r in rows:
            passes = "unknown" if r["passes"] is None else f"{r['passes']:,}"
            total += r["passes"] or 0
            lines.append(f"{r['type']:<38} {r['tasks']:>6} {passes:>15}")
        lines.append(f"{'total':<38} {len(self.trainings) + len(self.maps):>6} {total:>15,}")
        lines.append("(trainings: every epoch counted, early stopping ends most sooner; maps: the methods' "
                     "passes per image x images)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the chapters' requests
class _Requests:
    """Collects the chapters' requests in order, without duplicates."""

    def __init__(self, settings: Settings) -> None:
        from helpers.randomization import SELF_EXPLAINING_SUFFIX, state_labels

        self.settings = settings
        self.trainings: dict[Training, list[str]] = {}
        self.requested: dict[tuple, list[str]] = {}
        self.chapter = ""
        self._labels = state_labels
        self._suffix = SELF_EXPLAINING_SUFFIX

    def train(self, training: Training) -> Training:
        for dep in training.depends_on:
            self.train(dep)
        self.trainings.setdefault(training, [])
        if self.chapter not in self.trainings[training]:
            self.trainings[training].append(self.chapter)
        return training

    def classifier(self, architecture: str | None = None, *, replicate: int = 0, label_mode: str = "true") -> Training:
        return self.train(Training("classifier", architecture or self.settings.architectures[0], replicate, label_mode))

    def self_explaining(self, architecture: str | None = None, *, replicate: int = 0,
                        box_fraction: float = 0.0) -> Training:
        return self.train(Training("self_explaining", architecture or self.settings.architectures[0], replicate,
                                   box_fraction=float(box_fraction)))

    def maps(self, model: Training, method: str, *, state: str = "trained", **options: Any) -> None:
        if state == "full":
            # Study.fully_randomized is the cascade's end state under the same map key: one task for chapters 01
            # and 02, not two (the second would find the first's maps; the dry run would count them twice).
            state = f"cascading:{self.state_labels(model)[-1]}"
        key = (model, state, method, tuple(sorted(options.items())))
        self.requested.setdefault(key, [])
        if self.chapter not in self.requested[key]:
            self.requested[key].append(self.chapter)

    def all_maps(self, model: Training, *, state: str = "trained") -> None:
        for method in self.settings.methods:
            self.maps(model, method, state=state)

    def state_labels(self, model: Training) -> tuple[str, ...]:
        """Block labels of ``model``'s randomized states (:func:`helpers.randomization.state_labels`), "Original" left out."""
        arch = model.architecture + (self._suffix if model.kind == "self_explaining" else "")
        return self._labels(arch)[1:]

    def cascade(self, model: Training, method: str) -> None:
        """What :meth:`Study.cascade_similarity` computes: the trained maps and every cascading state's."""
        self.maps(model, method)
        for label in self.state_labels(model):
            self.maps(model, method, state=f"cascading:{label}")


def _ch00(r: _Requests) -> None:
    s = r.settings
    primary, *others = s.architectures
    for rep in range(s.n_replicates):
        r.classifier(primary, replicate=rep)
    for arch in others:
        r.classifier(arch)
    r.classifier(primary, label_mode="permuted")


def _ch01(r: _Requests) -> None:
    trained = r.classifier()
    r.all_maps(trained)
    r.all_maps(trained, state="full")
    r.train(Training("localizer", replicate=0))


def _ch02(r: _Requests) -> None:
    s = r.settings
    primary = s.architectures[0]
    for rep in range(s.n_replicates):
        trained = r.classifier(primary, replicate=rep)
        r.all_maps(trained)
        for label in r.state_labels(trained):
            r.all_maps(trained, state=f"cascading:{label}")
    trained0 = r.classifier(primary)
    for label in r.state_labels(trained0):
        r.all_maps(trained0, state=f"independent:{label}")
    r.all_maps(r.classifier(primary, label_mode="permuted"))


def _ch03(r: _Requests) -> None:
    s = r.settings
    for rep in range(s.n_replicates):
        r.all_maps(r.classifier(s.architectures[0], replicate=rep))
    for rep in range(2):
        r.train(Training("localizer", replicate=rep))


def _ch04(r: _Requests) -> None:
    s = r.settings
    for rep in range(s.n_replicates):
        r.all_maps(r.classifier(s.architectures[0], replicate=rep))
    if len(s.architectures) >= 2:
        r.all_maps(r.classifier(s.architectures[1]))
    for rep in range(2):
        r.train(Training("localizer", replicate=rep))


def _ch06(r: _Requests) -> None:
    s = r.settings
    primary = s.architectures[0]
    r.all_maps(r.classifier(primary))
    selfx = r.self_explaining(primary)
    r.maps(selfx, "TRAINABLE")
    r.train(Training("localizer", replicate=0))
    for fraction in BOX_FRACTIONS:
        r.maps(r.self_explaining(primary, box_fraction=fraction), "TRAINABLE")
    r.cascade(selfx, "TRAINABLE")
    r.train(Training("localizer", replicate=1))
    if s.n_replicates >= 2:
        r.maps(r.self_explaining(primary, replicate=1), "TRAINABLE")
    if len(s.architectures) >= 2:
        r.maps(r.self_explaining(s.architectures[1]), "TRAINABLE")


def _ch07(r: _Requests) -> None:
    s = r.settings
    primary = s.architectures[0]
    trained = r.classifier(primary)
    r.train(Training("inpainter"))
    for variant in CF_VARIANTS:
        r.maps(trained, "CF", perturbation=variant)
    r.all_maps(trained)
    r.cascade(trained, "CF")
    r.train(Training("localizer", replicate=0))
    r.train(Training("localizer", replicate=1))
    if s.n_replicates >= 2:
        r.maps(r.classifier(primary, replicate=1), "CF")
    if len(s.architectures) >= 2:
        r.maps(r.classifier(s.architectures[1]), "CF")


#: One function per chapter, mirroring the Study calls of ``notebooks/<chapter>.ipynb`` (chapter 05 asks for nothing).
#: Chapter 08 (shortcuts) is not planned: its five small classifiers on its own marker datasets and their maps
#: (about 2 CPU-minutes on `default`) are made by the chapter itself (helpers.shortcuts.ShortcutExperiment).
CHAPTER_REQUESTS: dict[str, Callable[[_Requests], None]] = {
    "00_data_and_models": _ch00,
    "01_localization_utility": _ch01,
    "02_randomization_sensitivity": _ch02,
    "03_repeatability": _ch03,
    "04_reproducibility": _ch04,
    "06_trainable_saliency": _ch06,
    "07_counterfactual_inpainting": _ch07,
}


def _cf_needs_inpainter(method: str, options: Mapping[str, Any]) -> bool:
    if method != "CF":
        return False
    from helpers.saliency import method_defaults

    return options.get("perturbation", method_defaults("CF")["perturbation"]) == "inpaint_learned"


def plan(settings: Settings, *, chapters: Sequence[str] | None = None, chunk_size: int | None = None,
         study: Any = None, load_data: bool = True) -> Plan:
    """The trainings and maps that ``chapters`` request for ``settings``.

    Parameters
    ----------
    settings : Settings
        Resolved settings (:func:`helpers.config.resolve`), as the chapters resolve them.
    chapters : sequence of str, optional
        Names of :data:`CHAPTER_REQUESTS` (default: all of them).
    chunk_size : int, optional
        Explained images per map task (default: all of them, one task per
        model state and method).
    study : helpers.study.Study, optional
        The study of ``settings`` (built when omitted); its dataset is loaded
        (generated on first use) to know the explained images.
    load_data : bool, optional
        ``False`` (synthetic data only): count images from the settings
        instead of loading the dataset (``n_images`` explained images, the
        split's 70 % for training), for a dry run of a preset whose data is
        not generated yet (the ``paper`` preset's 6,000 images at 320 px).
        The map tasks then name image positions that :func:`execute` must
        not be given.

    Returns
    -------
    Plan

    Raises
    ------
    PrecomputeError
        An unknown chapter or a chunk size below 1.
    """
    from helpers.saliency.registry import check_method_settings  # the registry (torch side), as Study checks it

    check_method_settings(settings)
    chapters = list(CHAPTER_REQUESTS) if chapters is None else list(chapters)
    unknown = [c for c in chapters if c not in CHAPTER_REQUESTS]
    if unknown:
        raise PrecomputeError(f"unknown chapter(s) {unknown}; chapters: {', '.join(CHAPTER_REQUESTS)}")
    if not load_data:
        if settings.dataset != "synthetic":
            raise PrecomputeError(f"load_data=False only estimates the synthetic dataset's sizes; dataset="
                                  f"{settings.dataset!r} must be loaded (load_data=True, or drop --estimate)")
        n_total = int(settings.n_synthetic)
        n_train = int(round(0.7 * n_total))
        n_images = min(int(settings.n_images), int(0.15 * n_total * float(settings.positive_fraction)))
        n_train_by_kind = {"classifier": n_train, "localizer": int(round(n_train * float(settings.positive_fraction)))}
    else:
        if study is None:
            from helpers.study import Study

            study = Study(settings)
        n_images = len(study.explained)
        n_train_by_kind = {"classifier": len(study.splits["train"]),
                           "localizer": int((study.data.labels[study.splits["train"]] == 1).sum())}
    if chunk_size is None:
        chunk_size = n_images
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise PrecomputeError(f"chunk_size must be a positive integer (images per map task), got {chunk_size!r}")
    requests = _Requests(settings)
    for chapter in chapters:
        requests.chapter = chapter
        CHAPTER_REQUESTS[chapter](requests)
    out = Plan(settings=settings, n_images=n_images)
    # Trainings in dependency order: bases before the models fine-tuned from them, the inpainter before CF maps.
    out.trainings = sorted(requests.trainings, key=lambda t: (t.kind != "inpainter", len(t.depends_on)))
    out.requested_by = {t.name: v for t, v in requests.trainings.items()}
    chunks = [tuple(range(i, min(i + chunk_size, n_images))) for i in range(0, n_images, chunk_size)]
    for (model, state, method, options), by in requests.requested.items():
        for chunk in chunks:
            out.maps.append(MapWork(model, state, method, options, chunk))
        out.requested_by[MapWork(model, state, method, options).name] = by
    out.n_train = n_train_by_kind
    out.estimated = not load_data
    return out


# --------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {"study": None, "models": collections.OrderedDict(), "states": collections.OrderedDict()}
_KEEP_STATES = 3


def _worker_settings(settings: Settings) -> Settings:
    """``settings`` with ``device="auto"`` pinned to one GPU per worker on a multi-GPU machine.

    A ``LocalCluster`` names its workers 0..N-1: worker ``k`` takes
    ``cuda:(k mod n_gpus)``. Elsewhere (one GPU, ``CUDA_VISIBLE_DEVICES`` set
    per worker, or an explicit device) the settings are kept.
    """
    import torch

    if settings.device != "auto" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return settings
    from distributed import get_worker

    try:
        index = int(get_worker().name)
    except (ValueError, TypeError):  # a named worker (dask-jobqueue, dask worker --name): its own GPU
        return settings
    return dataclasses.replace(settings, device=f"cuda:{index % torch.cuda.device_count()}")


def _study(settings: Settings, threads: int | None):
    import torch

    from helpers.study import Study

    if threads is not None:
        torch.set_num_threads(int(threads))
    settings = _worker_settings(settings)
    current = _WORKER["study"]
    if current is None or current.settings != settings:
        _WORKER["study"] = Study(settings)
        _WORKER["models"].clear()
        _WORKER["states"].clear()
    return _WORKER["study"]


def _load(study, training: Training):
    """Train ``training`` or read it from the cache; ``(object, record)``."""
    if training.kind == "classifier":
        trained = study.classifier(training.architecture, replicate=training.replicate,
                                   label_mode=training.label_mode, progress=False)
        return trained, trained.record
    if training.kind == "self_explaining":
        trained = study.self_explaining(training.architecture, replicate=training.replicate,
                                        box_fraction=training.box_fraction)
        return trained, trained.record
    if training.kind == "localizer":
        return study.localizer(training.replicate)
    if training.kind == "inpainter":
        return study.inpainter()
    raise PrecomputeError(f"unknown training kind {training.kind!r}")


def _train_task(settings: Settings, training: Training, threads: int | None, *dependencies: Any) -> dict:
    """Dask task: train ``training`` (or find it cached)."""
    start = time.perf_counter()
    study = _study(settings, threads)
    _, record = _load(study, training)
    cached = record.get("cache_hit", record.get("cached"))
    return {"task": training.name, "kind": "training", "cached": None if cached is None else bool(cached),
            "seconds": time.perf_counter() - start}


def _model_state(study, work: MapWork):
    """``(trained, state)`` for a map task: the trained model and the state's :class:`ModelState` (or ``"trained"``)."""
    models, states = _WORKER["models"], _WORKER["states"]
    if work.model not in models:
        models[work.model] = _load(study, work.model)[0]
    trained = models[work.model]
    if work.state == "trained":
        return trained, "trained"
    key = (work.model, work.state)
    if key not in states:
        if work.state == "full":
            states[key] = study.fully_randomized(trained)
        else:
            mode, label = work.state.split(":", 1)
            *_, states[key] = study.randomized_states(trained, mode=mode, blocks=[label])
            if states[key].label != label:
                raise PrecomputeError(f"state {work.state!r} of {work.model.name}: got {states[key].label!r}")
        while len(states) > _KEEP_STATES:
            states.popitem(last=False)
    states.move_to_end(key)
    return trained, states[key]


def _map_task(settings: Settings, work: MapWork, threads: int | None, *dependencies: Any) -> dict:
    """Dask task: the maps of ``work`` into the shared map cache (computed only where missing)."""
    start, cpu = time.perf_counter(), time.process_time()
    study = _study(settings, threads)
    trained, state = _model_state(study, work)
    before = study.map_cache.stats.misses
    study.maps(trained, work.method, state=state, images=study.explained.subset(list(work.images)),
               **dict(work.options))
    computed = study.map_cache.stats.misses - before
    return {"task": work.name, "kind": "maps", "images": len(work.images), "computed": computed,
            "cached": computed == 0, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu}


# --------------------------------------------------------------------------- client side
def local_cluster(n_workers: int, *, threads_per_worker: int = 1):
    """A ``distributed.LocalCluster`` of ``n_workers`` processes (one thread each by default).

    Parameters
    ----------
    n_workers : int
        Worker processes; on a multi-GPU node one per GPU (``device="auto"``
        then pins worker ``k`` to ``cuda:k``).
    threads_per_worker : int, optional
        Dask threads per worker (default 1: one task at a time; torch's own
        threads are set by :func:`execute`'s ``threads``).

    Dask's dashboard is served on a free port (:func:`precompute` prints its link). The workers run with
    ``TQDM_DISABLE=1``: their per-map progress bars would interleave on the client's terminal, where Dask's
    progress bar of the whole graph shows instead.
    """
    from distributed import LocalCluster

    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise PrecomputeError(f"n_workers must be a positive integer, got {n_workers!r}")
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                        dashboard_address=":0", env={"TQDM_DISABLE": "1"})


def submit(p: Plan, client, *, threads: int | None = None, retries: int = 2) -> dict[str, Any]:
    """Submit ``p`` to ``client``: ``{task name: future}``, trainings first, each map after its training.

    ``retries``: how often a task that raised is run again (a task lost with
    its worker is rescheduled by the scheduler, up to
    ``distributed.scheduler.allowed-failures`` times).
    """
    # The settings go as they are: a relative cache_dir stays relative (a LocalCluster's workers share the client's
    # folder), since the learned inpainter's weights path is part of the CF maps' keys and must be the chapters'.
    settings = p.settings
    futures: dict[str, Any] = {}
    trained: dict[Training, Any] = {}
    for t in p.trainings:
        deps = [trained[d] for d in t.depends_on]
        trained[t] = futures[t.name] = client.submit(_train_task, settings, t, threads, *deps, key=f"train-{t.name}",
                                                     retries=retries, pure=False, priority=10)
    inpainter = trained.get(Training("inpainter"))
    for i, w in enumerate(p.maps):
        deps = [trained[w.model]]
        if _cf_needs_inpainter(w.method, dict(w.options)):
            if inpainter is None:
                raise PrecomputeError(f"{w.name} needs the learned inpainter, which the plan does not train")
            deps.append(inpainter)
        futures[f"{w.name}#{i}"] = client.submit(_map_task, settings, w, threads, *deps, key=f"maps-{w.name}#{i}",
                                                 retries=retries, pure=False)
    return futures


def execute(p: Plan, client, *, threads: int | None = None, retries: int = 2, progress: bool = True) -> list[dict]:
    """Run ``p`` on ``client`` and wait; one result dict per task (``task``, ``kind``, ``cached``, ``seconds`` ...).

    Parameters
    ----------
    p : Plan
    client : distributed.Client
    threads : int, optional
        ``torch.set_num_threads`` in every task (default: the workers' own setting).
    retries : int, optional
        Reruns of a task that raised (default 2).
    progress : bool, optional
        Show Dask's progress bar of the whole graph.

    Raises
    ------
    PrecomputeError
        A task still failing after its retries, named with its error.
    """
    from distributed import progress as dask_progress
    from distributed import wait

    futures = submit(p, client, threads=threads, retries=retries)
    if progress:
        dask_progress(list(futures.values()))
        print(flush=True)
    wait(list(futures.values()))
    failed = [(name, f) for name, f in futures.items() if f.status != "finished"]
    if failed:
        name, f = failed[0]
        raise PrecomputeError(f"{len(failed)} task(s) failed after {retries} retries; first: {name}: "
                              f"{f.exception()!r}") from f.exception()
    return client.gather(list(futures.values()))


def precompute(settings: Settings, *, scheduler: str | None = None, workers: int | None = None,
               threads: int | None = None, chunk_size: int | None = None, chapters: Sequence[str] | None = None,
               retries: int = 2, dry_run: bool = False, estimate: bool = False, progress: bool = True,
               out=print) -> Plan | list[dict]:
    """Plan the chapters' work for ``settings`` and run it on a Dask cluster (``python -m helpers.book precompute``).

    Parameters
    ----------
    settings : Settings
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``; a
        dask-jobqueue ``SLURMCluster``'s ``scheduler_address``). Exclusive
        with ``workers``.
    workers : int, optional
        Size of a ``LocalCluster`` started for the run (default 2 when no
        ``scheduler`` is given).
    threads : int, optional
        torch threads per task (default: the machine's cores divided by
        ``workers`` for a local cluster; the workers' own setting on a scheduler).
    chunk_size : int, optional
        Explained images per map task (default: all).
    chapters : sequence of str, optional
        Only these chapters' work.
    retries : int, optional
    dry_run : bool, optional
        Only print the plan (task counts, estimated passes); no cluster.
    estimate : bool, optional
        With ``dry_run``: count images from the settings instead of loading
        (generating) the synthetic dataset (:func:`plan`'s ``load_data=False``).
    progress : bool, optional
    out : callable, optional
        Where the report lines go (default ``print``).

    Returns
    -------
    Plan (dry run) or list of dict (one per task)
    """
    if scheduler is not None and workers is not None:
        raise PrecomputeError("give either scheduler (an address) or workers (a local cluster), not both")
    if scheduler is not None and not dry_run:
        relative = [n for n in ("cache_dir", "results_dir") if not Path(getattr(settings, n)).is_absolute()]
        if relative:
            raise PrecomputeError(f"with a scheduler the workers run elsewhere: give {' and '.join(relative)} as an "
                                  f"absolute path on a file system every worker mounts (--param cache_dir=/shared/...)"
                                  f", and the same to the chapters")
    if estimate and not dry_run:
        raise PrecomputeError("estimate=True (--estimate) only goes with dry_run=True (--dry-run): a run needs the data")
    p = plan(settings, chapters=chapters, chunk_size=chunk_size, load_data=not estimate)
    out(p.describe())
    if dry_run:
        return p
    from distributed import Client

    start = time.perf_counter()
    cluster = None
    if scheduler is None:
        workers = 2 if workers is None else workers
        cluster = local_cluster(workers)
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        with Client(scheduler if cluster is None else cluster) as client:
            if client.dashboard_link:
                out(f"dashboard: {client.dashboard_link}")
            results = execute(p, client, threads=threads, retries=retries, progress=progress)
    finally:
        if cluster is not None:
            cluster.close()
    trained = sum(1 for r in results if r["kind"] == "training" and r["cached"] is False)
    computed = sum(r.get("computed", 0) for r in results if r["kind"] == "maps")
    out(f"precompute: {len(results)} tasks in {time.perf_counter() - start:.1f} s; {trained} model(s) trained, "
        f"{computed} map(s) computed" + (" (everything was cached)" if trained == 0 and computed == 0 else ""))
    return results
