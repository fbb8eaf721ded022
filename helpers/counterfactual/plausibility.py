"""Does the counterfactual look plausible? Counterfactual images and simple statistics of them.

Major et al. (2020) argue that blur and noise produce "anatomically
implausible" inputs, so a classifier's reaction to them says little about the
evidence it used. Two measurable proxies of plausibility, computed for every
perturbation operator on the same images and regions:

``abnormal_score``
    The classifier's softmax probability of class 1 (abnormal) on the
    counterfactual (also on the original, ``perturbation="none"``). On a
    *negative* image a plausible replacement of healthy tissue should leave
    it low; an artefact that raises it means the operator itself creates
    evidence.
``mean_gap``, ``std_ratio``
    Intensity statistics of the replaced region against a ring of its
    unmasked neighbourhood (``ring`` pixels wide): the absolute difference of
    their means (0 = the region's brightness continues its surroundings) and
    the ratio of their standard deviations (1 = the same texture; below 1 =
    smoother than the surroundings, as blur and diffusion fills are; above
    1 = rougher, as noise is).

References
----------
.. [1] Major, D., Lenis, D., Wimmer, M., Sluiter, G., Berg, A., Bühler, K.
   "Interpreting medical image classifiers by optimization based
   counterfactual impact analysis." ISBI 2020, arXiv:2004.01610.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from helpers.counterfactual.perturbations import (
    PERTURBATIONS,
    CounterfactualError,
    Perturbation,
    as_image_batch,
    as_mask_batch,
    make_perturbation,
)

__all__ = ["TRAINING_FREE", "counterfactual_images", "plausibility_stats"]

#: The operators that need no trained weights (the default of :func:`plausibility_stats`);
#: ``"inpaint_learned"`` needs ``perturbation_options={"inpaint_learned": {"weights": ...}}``.
TRAINING_FREE = ("inpaint", "inpaint_biharmonic", "blur", "noise", "constant")


def counterfactual_images(
    images: Any,
    masks: Any,
    *,
    perturbation: str | Perturbation = "inpaint",
    perturbation_options: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The counterfactuals ``(1 - M) x + M F(x, M)`` of ``images`` under ``masks``, ``(N, H, W)`` float32.

    Parameters
    ----------
    images : array-like or torch.Tensor
        ``(N, H, W)`` or ``(N, 1, H, W)`` in ``[0, 1]``.
    masks : array-like or torch.Tensor
        Same shape, values in ``[0, 1]`` (1 = replace); boolean masks allowed.
    perturbation : str or Perturbation, optional
        A name of :data:`~helpers.counterfactual.perturbations.PERTURBATIONS` (default ``"inpaint"``).
    perturbation_options : dict, optional
        Options of the operator.

    Raises
    ------
    CounterfactualError
        Bad images, masks or operator.
    """
    x = as_image_batch(images)
    m = as_mask_batch(masks, x)
    op = make_perturbation(perturbation, perturbation_options)
    with torch.no_grad():
        return op.perturb(x, m)[:, 0].cpu().numpy().astype(np.float32)


def _abnormal_probability(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    device = next((p.device for p in model.parameters()), x.device)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size].to(device))
            if logits.ndim != 2 or logits.shape[1] < 2:
                raise CounterfactualError(f"model must return logits (N, 2) (class 1 = abnormal), got {tuple(logits.shape)}")
            out.append(logits.softmax(dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out)


def plausibility_stats(
    model: torch.nn.Module | None,
    images: Any,
    masks: Any,
    *,
    perturbations: Sequence[str] = TRAINING_FREE,
    perturbation_options: Mapping[str, Mapping[str, Any]] | None = None,
    ring: int = 4,
    image_ids: Sequence[str] | None = None,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Plausibility statistics of the counterfactuals of every perturbation, as a tidy table.

    Parameters
    ----------
    model : torch.nn.Module or None
        Classifier in eval mode (logits ``(N, 2)``); ``None`` skips ``abnormal_score``.
    images : array-like or torch.Tensor
        ``(N, H, W)`` or ``(N, 1, H, W)`` in ``[0, 1]``.
    masks : array-like
        Binary regions to replace, same shape (boolean or 0/1); each must be
        non-empty and leave a non-empty ring of unmasked neighbours.
    perturbations : sequence of str, optional
        Operators compared, names of ``PERTURBATIONS`` (default: the
        training-free ones, :data:`TRAINING_FREE`).
    perturbation_options : dict of dict, optional
        Options per operator name, e.g. ``{"blur": {"relative_sigma": 0.1}}``.
    ring : int, optional
        Width in pixels of the neighbourhood ring (default 4).
    image_ids : sequence of str, optional
        Identifiers of the images (default ``"0"``, ``"1"``, ...).
    batch_size : int, optional
        Images per forward pass of the model.

    Returns
    -------
    pandas.DataFrame
        Columns ``image_id, perturbation, metric, value``; metrics
        ``abnormal_score`` (also for ``perturbation == "none"``, the original
        image), ``mean_gap`` and ``std_ratio``.

    Raises
    ------
    CounterfactualError
        Bad images, masks (not binary, empty, no ring), operator names or options.
    """
    x = as_image_batch(images)
    m = as_mask_batch(masks, x)
    if not bool(((m == 0) | (m == 1)).all()):
        raise CounterfactualError("masks must be binary (0/1 or boolean) for plausibility statistics")
    if int(ring) != ring or ring < 1:
        raise CounterfactualError(f"ring must be a positive number of pixels, got {ring!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise CounterfactualError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = x.shape[0]
    ids = [str(i) for i in range(n)] if image_ids is None else [str(i) for i in image_ids]
    if len(ids) != n:
        raise CounterfactualError(f"image_ids has {len(ids)} entries for {n} images")
    unknown_ops = sorted(set(perturbations) - set(PERTURBATIONS))
    if unknown_ops:
        raise CounterfactualError(f"unknown perturbations {unknown_ops}; valid perturbations: {', '.join(PERTURBATIONS)}")
    options = {k: dict(v) for k, v in (perturbation_options or {}).items()}
    unknown = sorted(set(options) - set(perturbations))
    if unknown:
        raise CounterfactualError(f"perturbation_options given for {unknown}, which are not among perturbations {list(perturbations)}")
    holes = m[:, 0].cpu().numpy().astype(bool)
    rings = []
    for i, hole in enumerate(holes):
        if not hole.any():
            raise CounterfactualError(f"mask of image {ids[i]!r} is empty; expected a region to replace")
        band = ndimage.binary_dilation(hole, iterations=int(ring)) & ~hole
        if not band.any():
            raise CounterfactualError(f"mask of image {ids[i]!r} leaves no unmasked neighbourhood (it covers the image)")
        rings.append(band)

    rows: list[dict[str, Any]] = []
    if model is not None:
        for i, v in enumerate(_abnormal_probability(model, x, batch_size)):
            rows.append(dict(image_id=ids[i], perturbation="none", metric="abnormal_score", value=float(v)))
    for name in perturbations:
        cf = counterfactual_images(x, m, perturbation=name, perturbation_options=options.get(name))
        if model is not None:
            scores = _abnormal_probability(model, torch.from_numpy(cf)[:, None], batch_size)
            rows += [dict(image_id=ids[i], perturbation=name, metric="abnormal_score", value=float(v)) for i, v in enumerate(scores)]
        for i in range(n):
            inside, around = cf[i][holes[i]], cf[i][rings[i]]
            sd_around = float(around.std())
            rows.append(dict(image_id=ids[i], perturbation=name, metric="mean_gap",
                             value=float(abs(inside.mean() - around.mean()))))
            rows.append(dict(image_id=ids[i], perturbation=name, metric="std_ratio",
                             value=float(inside.std() / sd_around) if sd_around > 0 else float("nan")))
    return pd.DataFrame(rows, columns=["image_id", "perturbation", "metric", "value"])
