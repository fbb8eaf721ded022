"""One object per notebook run: settings, data, splits, trained models, cached maps.

A chapter starts with::

    study = Study.from_parameters(preset=preset, dataset=dataset, ...)

and then asks the study for what it needs. Everything expensive (the
synthetic dataset, trained weights, saliency maps) is cached on disk under
keys that hash everything that determines it, so chapters share work: the
trained-model maps computed by the localization chapter are reused, not
recomputed, by the randomization, repeatability and reproducibility chapters.

The torch-side modules (models, saliency, localizer, trainable, counterfactual,
randomization, device) are imported inside the methods that use them, so that
``import helpers.study`` needs no torch (``tests/test_imports.py``); every
other import is at the top.
"""

from __future__ import annotations

import functools
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import pandas as pd

from helpers import criteria, metrics
from helpers._cache import stable_hash
from helpers.config import ConfigError, Settings, merge_overrides, resolve
from helpers.data import DataError, load, load_eval, split
from helpers.results import ResultTable, run_fingerprint

__all__ = ["Study", "TrainedModel", "ModelState"]


@dataclass
class TrainedModel:
    """A trained classifier with its training record.

    Attributes
    ----------
    model : torch.nn.Module
        In evaluation mode, on the study's device.
    record : dict
        What :func:`helpers.models.get_trained` recorded (history, AUCs, key ...).
    key : str
        The cache key of the weights; identifies the model in the map cache.
    """

    model: Any
    record: dict
    key: str

    @property
    def architecture(self) -> str:
        return self.record["architecture"]


@dataclass
class ModelState:
    """One state of a model's weights: trained, randomized, or trained on permuted labels.

    Attributes
    ----------
    label : str
        Human label (``"Original"``, a block label such as ``"layer4.1"``,
        ``"fully randomized"``).
    key : str
        Cache identity of the state (``"trained"``, ``"cascading:layer4.1:..."``);
        maps are cached under the trained model's key and this state key.
    model : torch.nn.Module
        The weights in this state, in evaluation mode.
    """

    label: str
    key: str
    model: Any


class Study:
    """Data, splits, models and maps of one run of the book.

    Parameters
    ----------
    settings : helpers.config.Settings
        Resolved settings (see :func:`helpers.config.resolve`).
    """

    def __init__(self, settings: Settings) -> None:
        from helpers.device import resolve_device  # torch side, like every such import here
        from helpers.saliency.registry import check_method_settings

        check_method_settings(settings)  # method names (plugins included) are checked where the registry is loaded
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.cache_dir = Path(settings.cache_dir)
        self.results_dir = Path(settings.results_dir)
        self.figures_dir = self.results_dir / "figures"
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(settings.seed)

    @classmethod
    def from_parameters(cls, preset: str = "default", *, overrides: Mapping[str, Any] | None = None,
                        **parameters: Any) -> "Study":
        """Resolve ``preset`` with the notebook's ``parameters`` (and its ``overrides`` mapping of other fields).

        See :func:`helpers.config.merge_overrides`: any :class:`~helpers.config.Settings`
        field can be set, a name given twice is refused.
        """
        return cls(resolve(preset, **merge_overrides(parameters, overrides)))

    # ------------------------------------------------------------------ data
    @functools.cached_property
    def data(self):
        """The whole dataset (:class:`helpers.data.ImageSet`) at the working size."""
        return load(self.settings)

    @functools.cached_property
    def splits(self) -> dict[str, np.ndarray]:
        """Patient-level train/val/test indices (deterministic from the seed)."""
        return split(self.data, seed=self.settings.seed)

    def subset(self, name: str):
        """The ``"train"``, ``"val"`` or ``"test"`` :class:`~helpers.data.ImageSet`."""
        return self.data.subset(self.splits[name])

    @functools.cached_property
    def explained(self):
        """The positive test images whose maps every criterion evaluates.

        As Arun et al.: a seeded shuffle of the positive test images, the
        first ``n_images`` kept (in their original order, for readability).
        """
        if self.settings.eval_dataset is not None:
            return self._explained_elsewhere()
        test_idx = np.asarray(self.splits["test"])
        positives = test_idx[self.data.labels[test_idx] == 1]
        n = self.settings.n_images
        if len(positives) < n:
            warnings.warn(f"only {len(positives)} positive test images for n_images={n}; using all of them",
                          stacklevel=2)
            n = len(positives)
        rng = np.random.default_rng([self.settings.seed, 1])
        chosen = np.sort(rng.permutation(positives)[:n])
        return self.data.subset(chosen)

    def _explained_elsewhere(self):
        """``explained`` from the evaluation dataset (``eval_dataset``): its positives with a box or mask, seeded."""
        full = load_eval(self.settings)
        positives = np.flatnonzero((full.labels == 1) & full.masks.reshape(len(full), -1).any(axis=1))
        if len(positives) < 2:
            raise DataError(f"eval_data_dir {self.settings.eval_data_dir!r} holds {len(positives)} positive image(s) "
                            "with a box or mask; the criteria need at least 2")
        rng = np.random.default_rng([self.settings.seed, 1])
        return full.subset(np.sort(rng.permutation(positives)[: self.settings.n_images]))

    @functools.cached_property
    def given_models(self) -> list[TrainedModel]:
        """The classifiers that ``settings.model`` gives (empty: the book trains its own).

        Loaded with :func:`helpers.models.load_model` under the settings'
        contract; the ``k``-th given model of an architecture is its
        replicate ``k``. Their key hashes the specification, the files' SHA-256
        and the contract.
        """
        from helpers.models import contract_from_settings, load_model

        contract = contract_from_settings(self.settings)
        out, counts = [], {}
        for spec in self.settings.model:
            model = load_model(spec, contract=contract, image_size=self.settings.image_size, device=self.device)
            arch = model.architecture
            replicate = counts.get(arch, 0)
            counts[arch] = replicate + 1
            key = stable_hash({"given": model.identity})
            out.append(TrainedModel(model=model.eval(), key=key,
                                    record={"architecture": arch, "replicate": replicate, "key": key, "given": spec}))
        return out

    def _given_classifier(self, architecture: str | None, replicate: int, label_mode: str) -> TrainedModel:
        if label_mode != "true":
            raise ConfigError("label randomization trains a model on permuted labels, which a given model cannot be; "
                              "leave `model` empty for that chapter")
        given = self.given_models
        arch = architecture or given[0].architecture
        for trained in given:
            if trained.architecture == arch and trained.record["replicate"] == replicate:
                return trained
        have = [(t.architecture, t.record["replicate"]) for t in given]
        raise ConfigError(f"no given model of architecture {arch!r}, replicate {replicate}; the models given by "
                          f"`model` are {have}: give one more with --param model=[...]")

    @functools.cached_property
    def average_mask_prior(self) -> np.ndarray:
        """The localization baseline every chapter shares: the mean mask of the positive train+val images.

        It knows where abnormalities usually are and nothing about the image at
        hand (see :func:`helpers.metrics.average_mask_prior`).
        """
        idx = np.concatenate([self.splits["train"], self.splits["val"]])
        return metrics.average_mask_prior(self.data.masks[idx], labels=self.data.labels[idx])

    # ---------------------------------------------------------------- models
    def classifier(self, architecture: str | None = None, *, replicate: int = 0,
                   label_mode: str = "true", progress: bool = True) -> TrainedModel:
        """A trained classifier (loaded from the cache when it was trained before).

        With ``settings.model`` the given model of that architecture and
        replicate (:attr:`given_models`; default architecture: the first
        given), never trained.
        """
        if self.settings.model:  # given models: nothing is trained
            return self._given_classifier(architecture, replicate, label_mode)
        from helpers.models import get_trained

        arch = architecture or self.settings.architectures[0]
        model, record = get_trained(self.settings, self.data, self.splits, architecture=arch,
                                    replicate=replicate, label_mode=label_mode, progress=progress)
        model = model.to(self.device).eval()
        return TrainedModel(model=model, record=record, key=record["key"])

    def classifiers(self, *, progress: bool = True) -> dict[tuple[str, int], TrainedModel]:
        """Every true-label classifier of the preset, ``{(architecture, replicate): model}``.

        ``n_replicates`` replicates of the primary architecture, one model of each other one.
        """
        if self.settings.model:
            return {(t.architecture, t.record["replicate"]): t for t in self.given_models}
        primary, *others = self.settings.architectures
        out = {(primary, rep): self.classifier(primary, replicate=rep, progress=progress)
               for rep in range(self.settings.n_replicates)}
        out.update({(arch, 0): self.classifier(arch, progress=progress) for arch in others})
        return out

    @property
    def randomization_options(self) -> dict[str, str]:
        """How the randomization chapters re-initialize weights: ``{"reinit", "batchnorm"}`` from the settings.

        ``settings.randomization_init`` (default ``"architecture"``: each
        architecture's own initializer, as Adebayo et al.) and
        ``settings.randomization_batchnorm`` (default ``"reset_affine"``:
        γ = 1, β = 0, trained running statistics kept, as Adebayo et al.'s
        code); see :data:`helpers.randomization.REINIT_RULES` and
        :data:`~helpers.randomization.BATCHNORM_RULES`.
        """
        return dict(reinit=self.settings.randomization_init, batchnorm=self.settings.randomization_batchnorm)

    def randomization_seed(self, trained: TrainedModel) -> int:
        """Master seed of ``trained``'s randomized states: the study's seed and the model's replicate.

        Independent replicates get independent new weights
        (:func:`helpers.randomization.replicate_seed`).
        """
        from helpers.randomization import replicate_seed

        return replicate_seed(self.settings.seed, int(trained.record.get("replicate", 0)))

    def _randomization_key(self, mode: str, label: str, trained: TrainedModel) -> str:
        # Everything that determines the randomized weights besides the trained
        # ones (which the map cache hashes itself): mode, block, options, seed.
        opts = ":".join(f"{k}={v}" for k, v in sorted(self.randomization_options.items()))
        return f"{mode}:{label}:{opts}:seed={self.randomization_seed(trained)}"

    def label_randomization_check(self, permuted: TrainedModel, *, reference: TrainedModel) -> tuple[bool, str]:
        """Whether the permuted-label model fitted its labels well enough to judge label randomization.

        Returns
        -------
        ok : bool
            ``helpers.models.label_randomization_ready`` at
            ``settings.label_randomization_target_accuracy``.
        text : str
            A paragraph for the chapter: the permuted model's reached
            accuracy and true-label test AUC, the reference model's for
            comparison, and the decision.
        """
        from helpers.models import label_randomization_ready

        ok, sentence = label_randomization_ready(permuted.record,
                                                 min_accuracy=self.settings.label_randomization_target_accuracy)
        ref = reference.record
        text = (f"{sentence} For comparison, the true-label model reaches training accuracy "
                f"{ref.get('train_accuracy', float('nan')):.3f} and test AUC {ref.get('test_auc', float('nan')):.3f} "
                f"[{ref.get('test_auc_low', float('nan')):.3f}, {ref.get('test_auc_high', float('nan')):.3f}]; "
                f"the permuted model was trained from its own seed, not the true-label model's initialization.")
        return ok, text

    def fully_randomized(self, trained: TrainedModel) -> ModelState:
        """The "untrained" model of the localization criterion: every block re-initialized.

        The same weights as the last state of the cascade (see
        :func:`helpers.randomization.fully_randomized`), under the same map
        cache key: its maps are computed once for chapters 01 and 02.
        """
        from helpers.randomization import blocks_for, fully_randomized

        model = fully_randomized(trained.model, seed=self.randomization_seed(trained), architecture=trained.architecture,
                                 **self.randomization_options).eval()
        last = blocks_for(trained.model, architecture=trained.architecture)[-1].label
        return ModelState("fully randomized", self._randomization_key("cascading", last, trained), model)

    def randomized_states(self, trained: TrainedModel, *, mode: str = "cascading",
                          blocks: Sequence[str] | None = None):
        """Yield :class:`ModelState` objects of a cascading or independent randomization.

        The first state is the trained model itself (``label="Original"``,
        ``key="trained"``), then one state per block, top-down. States are
        generated one at a time (each is a full copy of the model). Options:
        :attr:`randomization_options`; seed: :meth:`randomization_seed`.
        """
        from helpers.randomization import randomized_states

        for label, model in randomized_states(trained.model, mode=mode, blocks=blocks,
                                              seed=self.randomization_seed(trained),
                                              architecture=trained.architecture, **self.randomization_options):
            key = "trained" if label == "Original" else self._randomization_key(mode, label, trained)
            yield ModelState(label, key, model.eval())

    def localizer(self, replicate: int = 0, *, mask_fraction: float = 1.0):
        """The fully supervised localization network (a small U-Net trained on the masks).

        Returns
        -------
        (torch.nn.Module, dict)
            The U-Net (``helpers.localizer.predict_maps`` gives its maps) and
            its training record.
        """
        from helpers.localizer import get_trained_localizer

        model, record = get_trained_localizer(self.settings, self.data, self.splits, replicate=replicate,
                                              mask_fraction=mask_fraction,
                                              base_channels=self.settings.localizer_channels)
        return model.to(self.device).eval(), record

    def localizer_maps(self, replicate: int = 0, *, images=None, mask_fraction: float = 1.0) -> np.ndarray:
        """The localizer's per-pixel probabilities ``(N, H, W)`` for the explained images."""
        from helpers.localizer import predict_maps

        images = self.explained if images is None else images
        model, _ = self.localizer(replicate, mask_fraction=mask_fraction)
        return predict_maps(model, images.tensor(), device=self.device)

    def self_explaining(self, architecture: str | None = None, *, replicate: int = 0,
                        box_fraction: float = 0.0) -> TrainedModel:
        """A self-explaining classifier (trainable saliency), trained or loaded from the cache."""
        from helpers.trainable import get_trained_self_explaining

        arch = architecture or self.settings.architectures[0]
        model, record = get_trained_self_explaining(self.settings, self.data, self.splits, architecture=arch,
                                                    box_fraction=box_fraction, replicate=replicate)
        record = dict(record)
        record.setdefault("architecture", arch)
        return TrainedModel(model=model.to(self.device).eval(), record=record, key=record["key"])

    def inpainter(self):
        """The learned inpainter of the counterfactual method (trained on the negative training images).

        Returns
        -------
        (pathlib.Path, dict)
            Its weights file (the ``weights`` option of perturbation
            ``"inpaint_learned"``) and its training record (``seconds``,
            ``cpu_seconds``, ``n_train``, ``spec`` ...); see
            :func:`helpers.counterfactual.get_trained_inpainter`.
        """
        from helpers.counterfactual import get_trained_inpainter

        return get_trained_inpainter(self.settings, self.data, self.splits)

    def perturbation_options(self, perturbation: str) -> dict:
        """Options a counterfactual operator needs from the study: the inpainter's weights for ``"inpaint_learned"``.

        Every other operator needs none (empty dict).
        """
        if perturbation == "inpaint_learned":
            path, _ = self.inpainter()
            return {"weights": str(path)}
        return {}

    # ------------------------------------------------------------------ maps
    @functools.cached_property
    def map_cache(self):
        from helpers.saliency.cache import MapCache

        # The book's one corrupt-entry policy (helpers._cache): set aside, warn, recompute.
        return MapCache(self.cache_dir / "maps", on_corrupt="recompute")

    def method_settings(self, method: str) -> dict:
        """The preset's keyword overrides of ``method`` (empty: the paper's settings)."""
        return dict(self.settings.method_settings.get(method, {}))

    def method_deviations(self) -> list[str]:
        """Where this run's method settings depart from the paper's (the registry's defaults), one line each.

        Returns
        -------
        list of str
            E.g. ``"SIG: n_samples = 10 (the paper: 25)"``; empty when every
            method runs with the paper's settings.
        """
        from helpers.saliency import method_defaults

        lines = []
        for method in self.settings.methods:
            defaults = method_defaults(method)
            for key, value in self.method_settings(method).items():
                if key in defaults and defaults[key] != value:
                    lines.append(f"{method}: {key} = {value!r} (the paper: {defaults[key]!r})")
        return lines

    def maps(self, trained: TrainedModel, method: str, *, state: "str | ModelState" = "trained", model=None,
             images=None, target=None, **settings: Any) -> np.ndarray:
        """Post-processed maps ``(N, H, W)`` of ``method`` for the explained images.

        Parameters
        ----------
        trained : TrainedModel
            Identifies the weights (its key names the cache entry).
        method : str
            A name of :data:`helpers.saliency.METHODS`.
        state : str
            Randomization state of the weights (``"trained"`` or a block label);
            ``model`` must then be the randomized copy.
        model : torch.nn.Module, optional
            The module to explain (default: ``trained.model``).
        images : helpers.data.ImageSet, optional
            Default: :attr:`explained`.
        **settings
            Method settings. For ``"CF"`` without ``perturbation_options``
            the study adds what the fill needs (:meth:`perturbation_options`:
            its inpainter's weights for the default ``"inpaint_learned"``).
        """
        images = self.explained if images is None else images
        if isinstance(state, ModelState):
            state, model = state.key, state.model
        options = {**self.method_settings(method), **settings}
        if method == "CF" and not options.get("perturbation_options"):
            # The learned inpainter (CF's default fill) is the study's own: its weights file is an option.
            from helpers.saliency import method_defaults

            fill = options.get("perturbation", method_defaults("CF")["perturbation"])
            options["perturbation_options"] = self.perturbation_options(fill) or None
        return self.map_cache.get_or_compute(
            (model if model is not None else trained.model), images.tensor().to(self.device),
            list(images.ids), method, model_key=trained.key, state=state, target=target, **options)

    def all_maps(self, trained: TrainedModel, methods: Sequence[str] | None = None, *,
                 state: "str | ModelState" = "trained", images=None) -> dict[str, np.ndarray]:
        """``{method: maps}`` for every method of the study (or ``methods``)."""
        methods = self.settings.methods if methods is None else methods
        return {m: self.maps(trained, m, state=state, images=images) for m in methods}

    def cascade_similarity(self, trained: TrainedModel, method: str, *, reference: np.ndarray | None = None):
        """Per-image SSIM of ``method``'s maps at each cascading-randomization state to the trained maps.

        Parameters
        ----------
        trained : TrainedModel
            The trained model (classifier or self-explaining) whose blocks are
            randomized top-down (:meth:`randomized_states`).
        method : str
            A name of :data:`helpers.saliency.METHODS`.
        reference : ndarray ``(N, H, W)``, optional
            The trained model's maps (default: :meth:`maps` of ``trained``).

        Returns
        -------
        pandas.DataFrame
            Columns ``image_id, metric, method, replicate, state, value``, one
            row per explained image, state and SSIM specification (``"ssim"``,
            the book's; ``"ssim_paper"``, the paper's:
            :data:`helpers.criteria.SSIM_SPECS`), states in cascade order
            (``"Original"`` first): the curve of Arun et al.'s figure 3 for one
            method (:func:`helpers.plots.randomization_curves` draws it).
        """
        reference = self.maps(trained, method) if reference is None else reference
        frames = [
            criteria.similarity_rows(reference, self.maps(trained, method, state=state), self.explained.ids,
                                     method=method, replicate=trained.record.get("replicate", 0), state=state.label)
            for state in self.randomized_states(trained, mode="cascading")
        ]
        return pd.concat(frames, ignore_index=True)

    # --------------------------------------------------------------- results
    @functools.cached_property
    def run(self) -> dict[str, str]:
        """The run's fingerprint: preset, settings hash, data fingerprint, code version and run id.

        Every results and verdicts table of this run carries it, and the
        scorecard refuses to combine tables of different runs
        (:func:`helpers.results.run_fingerprint`).
        """
        return run_fingerprint(self.settings, data_fingerprint=self.data.fingerprint())

    @property
    def run_id(self) -> str:
        """``run["run"]``: the short id of this run."""
        return self.run["run"]

    def results(self, notebook: str) -> ResultTable:
        """An empty results table for ``notebook`` in the study's results folder, stamped with :attr:`run`."""
        return ResultTable(notebook, self.results_dir, run=self.run)

    def save_verdicts(self, notebook: str, verdicts: pd.DataFrame):
        """Write a chapter's verdicts table (:func:`helpers.criteria.write_verdicts`) stamped with :attr:`run_id`."""
        return criteria.write_verdicts(verdicts, notebook=notebook, results_dir=self.results_dir, run=self.run_id)

    def judge_options(self) -> dict[str, Any]:
        """The keyword options every ``criteria.*.judge`` call of a chapter shares (bootstrap size, seed)."""
        return dict(n_bootstrap=self.settings.n_bootstrap, seed=self.settings.seed)

    def figure_path(self, name: str) -> Path:
        return self.figures_dir / f"{name}.png"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
