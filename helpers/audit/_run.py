"""The audit's computation: given models, evaluation images, the criteria of :mod:`helpers.criteria`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from helpers import criteria, metrics, randomization, saliency
from helpers.config import ConfigError, Settings
from helpers.data import DataError, ImageSet, load_eval
from helpers.device import resolve_device
from helpers.models import ModelError, contract_from_settings, gradcam_layer, load_model
from helpers.results import run_fingerprint
from helpers.saliency import SaliencyError
from helpers.study import Study

__all__ = ["AuditData", "AuditModel", "AuditResult", "audit_data", "run_audit"]

#: The network baseline of the paper's rules when the audit has none (no training split to train it on).
_NO_NETWORK = ("no localization network: the evaluation images have no training split to train the U-Net on, so "
               "the paper's rules that compare with it are undecided")


@dataclass
class AuditData:
    """The images every criterion is evaluated on and the baselines that go with them.

    Attributes
    ----------
    images : ImageSet
        The explained positives.
    prior : ndarray ``(N, H, W)``
        The average-mask prior of each image.
    network : ndarray ``(N, H, W)`` or None
        The localization network's maps (``None``: no network).
    network_agreement : ndarray ``(N,)`` or None
        Per-image SSIM between two independently trained networks (the
        paper's repeatability/reproducibility baseline; ``None``: none).
    notes : list of str
        What was used and why, for the report.
    """

    images: ImageSet
    prior: np.ndarray
    network: np.ndarray | None
    notes: list[str] = field(default_factory=list)
    network_agreement: np.ndarray | None = None


@dataclass
class AuditModel:
    """One given model and what the audit found out about it."""

    spec: str
    model: Any
    architecture: str
    blocks: tuple[str, ...]
    gradcam_layer: str | None
    relu_note: str
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class AuditResult:
    """Everything an audit computed (tables are tidy; verdicts follow :data:`helpers.criteria.VERDICT_COLUMNS`)."""

    settings: Settings
    run: dict[str, str]
    data: AuditData
    models: list[AuditModel]
    methods: tuple[str, ...]
    scores: dict[str, pd.DataFrame]
    verdicts: pd.DataFrame
    skipped: dict[str, str]


def _explained(full: ImageSet, settings: Settings) -> ImageSet:
    positives = np.flatnonzero((full.labels == 1) & full.masks.reshape(len(full), -1).any(axis=1))
    if len(positives) < 2:
        raise DataError(f"the evaluation set {settings.eval_data_dir!r} holds {len(positives)} positive image(s) with "
                        "a box or mask; the criteria need at least 2")
    rng = np.random.default_rng([settings.seed, 1])  # as Study.explained
    return full.subset(np.sort(rng.permutation(positives)[: settings.n_images]))


def audit_data(settings: Settings, *, progress: bool | None = None) -> AuditData:
    """The evaluation images and baselines of an audit.

    With ``eval_dataset``: its positives with a box or mask (a seeded subset
    of ``n_images``), the leave-one-out average-mask prior over them
    (:func:`helpers.metrics.leave_one_out_prior`) and no localization network.
    Without: the book's own (:class:`helpers.study.Study`): the positive test
    images of ``dataset``, the average mask of the positive train+val images
    and the supervised U-Net trained on them.
    """
    full = load_eval(settings, progress=progress)
    if full is not None:
        images = _explained(full, settings)
        pool = _explained_pool(full)
        notes = [f"evaluation set: {settings.eval_dataset} folder {settings.eval_data_dir} ({len(full)} images, "
                 f"{len(pool)} positives with boxes; {len(images)} explained)"]
        if len(pool) == len(images):
            prior = metrics.leave_one_out_prior(images.masks)
            notes.append("average-mask prior: leave-one-out over the explained images' masks (the evaluation set "
                         "has no training split)")
        else:
            others = np.setdiff1d(pool, _ids_to_index(full, images.ids))
            prior = np.repeat(metrics.average_mask_prior(full.masks[others])[None], len(images), axis=0)
            notes.append(f"average-mask prior: mean mask of the {len(others)} positives of the evaluation set that "
                         "are not explained")
        notes.append(_NO_NETWORK)
        return AuditData(images=images, prior=prior, network=None, notes=notes)
    study = Study(settings)
    images = study.explained
    prior = np.repeat(study.average_mask_prior[None], len(images), axis=0)
    notes = [f"evaluation set: the positive test images of dataset {settings.dataset!r} ({len(images)} explained)",
             "average-mask prior: mean mask of the positive train+val images",
             "localization network: the book's U-Net trained on the train+val masks (two replicates: their "
             "agreement is the paper's repeatability/reproducibility baseline, as chapter 03)"]
    nets = [study.localizer_maps(replicate=r, images=images) for r in range(2)]
    agreement = metrics.paired_similarity(nets[0], nets[1], metric="ssim", **metrics.PAPER_NETWORK_SSIM)
    return AuditData(images=images, prior=prior, network=nets[0], notes=notes, network_agreement=agreement)


def _explained_pool(full: ImageSet) -> np.ndarray:
    return np.flatnonzero((full.labels == 1) & full.masks.reshape(len(full), -1).any(axis=1))


def _ids_to_index(full: ImageSet, ids) -> np.ndarray:
    where = {i: k for k, i in enumerate(full.ids)}
    return np.array([where[i] for i in ids], dtype=int)


def _load_models(settings: Settings) -> list[AuditModel]:
    if not settings.model:
        raise ConfigError("the audit needs a model: pass --model ARCH=WEIGHTS, --model FILE.ts or --model "
                          "package.module:function (several for repeatability/reproducibility)")
    contract = contract_from_settings(settings)
    device = resolve_device(settings.device)
    out = []
    for spec in settings.model:
        model = load_model(spec, contract=contract, image_size=settings.image_size, device=device)
        blocks = tuple(b.label for b in randomization.blocks_for(model))
        try:
            found = gradcam_layer(model)
            layer = next(name for name, module in model.named_modules() if module is found)
        except ModelError:
            layer = None
        out.append(AuditModel(spec=spec, model=model, architecture=model.architecture, blocks=blocks,
                              gradcam_layer=layer, relu_note=getattr(model, "relu_note", "")))
    return out


def run_audit(settings: Settings, *, progress: Callable[[str], None] | None = None,
              data_progress: bool | None = False) -> AuditResult:
    """Run the criteria on the given models and data.

    Parameters
    ----------
    settings : Settings
        ``model`` names the models (the first is the primary one); its
        contract, ``eval_dataset``/``eval_data_dir``, ``methods``,
        ``method_settings``, ``n_images``, ``n_bootstrap``, ``seed`` and the
        randomization options apply.
    progress : callable, optional
        Called with a line of text before each step.
    data_progress : bool or None
        Progress bars of the data loaders.

    Returns
    -------
    AuditResult

    Criteria
    --------
    * localization utility of the primary model (trained vs fully randomized
      maps; the prior; the network when there is one);
    * cascading weight randomization of the primary model (blocks top-down);
    * repeatability between models of the primary's architecture, when two
      or more are given;
    * reproducibility between the first models of two different architectures.

    A method that refuses a model (guided backpropagation on a model whose
    ReLUs cannot be guided, GradCAM without a layer) is dropped from every
    criterion and its reason reported (:attr:`AuditModel.refused`).
    """
    say = progress or (lambda _line: None)
    say("loading the models")
    models = _load_models(settings)
    say("loading the evaluation images")
    data = audit_data(settings, progress=data_progress)
    images = data.images
    x = images.images[:, None]
    opts = dict(n_bootstrap=settings.n_bootstrap, seed=settings.seed)

    def maps_of(model, method):
        return saliency.explain(model, x, method, progress=False, **dict(settings.method_settings.get(method, {})))

    primary = models[0]
    trained: dict[str, np.ndarray] = {}
    for method in settings.methods:
        say(f"maps of {method} on {primary.architecture}")
        try:
            trained[method] = maps_of(primary.model, method)
        except (SaliencyError, ModelError) as error:
            primary.refused[method] = str(error)
    methods = tuple(trained)
    if not methods:
        raise SaliencyError(f"every method refused model {primary.spec!r}: {primary.refused}")
    rand_opts = dict(reinit=settings.randomization_init, batchnorm=settings.randomization_batchnorm,
                     seed=randomization.replicate_seed(settings.seed, 0))
    scores: dict[str, pd.DataFrame] = {}
    verdicts = []
    skipped: dict[str, str] = {}

    # ---- localization
    say("localization utility")
    untrained = randomization.fully_randomized(primary.model, **rand_opts).eval()
    frames = []
    for method in methods:
        frames.append(metrics.localization_table(trained[method], images.masks, images.ids)
                      .assign(method=method, state="trained"))
        frames.append(metrics.localization_table(maps_of(untrained, method), images.masks, images.ids)
                      .assign(method=method, state="untrained"))
    prior_rows = metrics.localization_table(data.prior, images.masks, images.ids)
    frames.append(prior_rows.assign(method="Average mask", state="baseline"))
    if data.network is not None:
        frames.append(metrics.localization_table(data.network, images.masks, images.ids)
                      .assign(method="U-Net", state="baseline"))
    else:
        frames.append(prior_rows.assign(method="U-Net", state="baseline", value=np.nan))
    scores["localization"] = pd.concat(frames, ignore_index=True).assign(architecture=primary.architecture)
    verdicts.append(criteria.localization.judge(scores["localization"], methods=methods,
                                                architecture=primary.architecture, **opts))

    # ---- cascading randomization
    say(f"cascading randomization over {len(primary.blocks)} blocks")
    rows = []
    for label, state in randomization.randomized_states(primary.model, mode="cascading", **rand_opts):
        for method in methods:
            m = trained[method] if label == "Original" else maps_of(state.eval(), method)
            rows.append(criteria.similarity_rows(trained[method], m, images.ids, method=method, replicate=0,
                                                 state=label))
    curves = pd.concat(rows, ignore_index=True).assign(architecture=primary.architecture)
    scores["randomization"] = curves
    baselines = {}
    for method in methods:
        for name, b in criteria.random_pair_baselines(trained[method], **opts).items():
            baselines[(name, method)] = b
    last = list(dict.fromkeys(curves["state"]))[-1]
    verdicts.append(criteria.randomization.judge(curves[curves.state == last], baselines, methods=methods,
                                                 architecture=primary.architecture, image_ids=images.ids, **opts))

    # ---- repeatability and reproducibility
    network = {"ssim": (data.network_agreement if data.network_agreement is not None
                        else np.full(len(images), np.nan))}
    same = [m for m in models if m.architecture == primary.architecture]
    other = next((m for m in models if m.architecture != primary.architecture), None)
    groups = {"repeatability": same if len(same) >= 2 else None,
              "reproducibility": [primary, other] if other is not None else None}
    skipped_reasons = {"repeatability": "needs two or more given models of one architecture",
                       "reproducibility": "needs given models of two different architectures"}
    for criterion, group in groups.items():
        if group is None:
            skipped[criterion] = skipped_reasons[criterion]
            continue
        say(criterion)
        usable = [m for m in methods if all(m not in g.refused for g in group)]
        group_maps = {}
        for i, g in enumerate(group):
            for method in list(usable):
                if g is primary:
                    group_maps[(i, method)] = trained[method]
                    continue
                try:
                    group_maps[(i, method)] = maps_of(g.model, method)
                except (SaliencyError, ModelError) as error:
                    g.refused[method] = str(error)
                    usable.remove(method)
        rows, chance = [], {}
        for method in usable:
            for a, b in itertools.combinations(range(len(group)), 2):
                rows.append(criteria.similarity_rows(group_maps[(a, method)], group_maps[(b, method)], images.ids,
                                                     method=method, replicate=f"{a}-{b}"))
            chance[("ssim", method)] = criteria.random_pair_baselines(
                group_maps[(0, method)], specs=("ssim",), **opts)["ssim"]
        if not usable:
            skipped[criterion] = "every method refused one of its models"
            continue
        scores[criterion] = pd.concat(rows, ignore_index=True).assign(architecture=primary.architecture)
        verdicts.append(criteria.agreement.judge(scores[criterion], chance, network, criterion=criterion,
                                                 methods=usable, architecture=primary.architecture,
                                                 image_ids=images.ids, **opts))
    run = run_fingerprint(settings, data_fingerprint=images.fingerprint())
    frame = pd.concat(verdicts, ignore_index=True).assign(notebook="audit", run=run["run"])
    return AuditResult(settings=settings, run=run, data=data, models=models, methods=methods, scores=scores,
                       verdicts=frame, skipped=skipped)
