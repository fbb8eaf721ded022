"""Baselines that give the criteria their meaning.

* :func:`random_pair_baseline` — Arun et al.'s dashed line of the
  randomization figure: how similar are the trained model's maps of two
  *different* images? A randomized model's map should resemble the original
  map no more than that.
* :func:`average_mask_prior` — Arun et al.'s "average" localization baseline:
  the pixel-wise mean of the training ground-truth masks, used as the same
  "saliency map" for every test image. It knows only where lesions usually
  are.

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps
   for localizing abnormalities in medical imaging. Radiology: Artificial
   Intelligence 3(6), e200267. doi:10.1148/ryai.2021200267
   (``scripts/randomization_plot_*.py``, ``scripts/utility_fig_*.py`` of
   QTIM-Lab/Assessing-Saliency-Maps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.metrics._checks import MetricInputError, as_masks, as_maps, warn_summary
from helpers.metrics.similarity import _resolve, hog_cells, ssim_spec
from helpers.metrics.statistics import BootstrapCI, bootstrap_ci

__all__ = ["RandomPairBaseline", "random_pair_baseline", "average_mask_prior"]


@dataclass(frozen=True)
class RandomPairBaseline:
    """The random-pair similarity baseline of one model and method.

    Attributes
    ----------
    values : numpy.ndarray, shape (N,)
        Per image: mean similarity of its map to the maps of its partners
        (NaN pairs dropped; NaN if all of its pairs are undefined).
    mean, std : float
        NaN-free mean and standard deviation (``ddof=1``) of ``values``.
    ci : BootstrapCI
        Bootstrap CI of the mean over images.
    partners : numpy.ndarray of int, shape (N, k)
        ``partners[i]`` = indices of the images paired with image ``i`` (never
        ``i``; distinct).
    n_pairs : int
        Partners per image actually used (``k = min(requested, N - 1)``).
    n_undefined : int
        Pairs whose similarity was NaN (a constant map).
    metric : str
    settings : dict
        The metric's complete settings (e.g. the full SSIM spec).
    seed : int
    """

    values: np.ndarray
    mean: float
    std: float
    ci: BootstrapCI
    partners: np.ndarray
    n_pairs: int
    n_undefined: int
    metric: str
    settings: dict[str, Any]
    seed: int


def random_pair_baseline(
    maps,
    *,
    seed: int,
    n_pairs: int = 50,
    metric: str = "ssim",
    n_bootstrap: int = 1000,
    level: float = 0.95,
    **options: Any,
) -> RandomPairBaseline:
    """Mean similarity between maps of *different* images of the same model.

    For every image ``i``, ``k = min(n_pairs, N - 1)`` partners are drawn
    without replacement from the other images (never ``i`` itself) with
    ``numpy.random.default_rng(seed)``; the image's value is the mean
    similarity of its map to theirs. With ``N - 1 <= n_pairs`` every other
    image is a partner (the exact mean over all pairs). Arun et al. drew 50
    random pairs per image with replacement of pairs (their code samples both
    indices at random and rejects equal ones); drawing partners per image gives
    every image the same weight and makes the per-image values resamplable.

    Parameters
    ----------
    maps : array_like, shape (N, H, W)
        One map per image, all from the same model and method (N >= 2).
    seed : int
        Seed of the partner draw (required: the baseline is random).
    n_pairs : int, optional
        Partners per image (Arun et al.: 50).
    metric : str, optional
        Similarity metric (see :func:`helpers.metrics.similarity`).
    n_bootstrap, level : optional
        Of the CI of the mean (:func:`helpers.metrics.bootstrap_ci`, seeded with
        ``seed``).
    **options
        Metric settings, e.g. ``**PAPER_SSIM``.

    Returns
    -------
    RandomPairBaseline

    References
    ----------
    .. [1] Arun et al. (2021), fig. 3 ("50 randomly chosen pairs").
    """
    compare = _resolve(metric, options)
    stack = as_maps(maps, "maps")
    n = stack.shape[0]
    if n < 2:
        raise MetricInputError(f"random_pair_baseline needs maps of at least 2 images, got {n}")
    if not (isinstance(n_pairs, (int, np.integer)) and not isinstance(n_pairs, bool) and n_pairs >= 1):
        raise MetricInputError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    k = min(int(n_pairs), n - 1)
    rng = np.random.default_rng(seed)
    partners = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        partners[i] = rng.choice(others, size=k, replace=False)
    cache: dict[tuple[int, int], tuple[float, str]] = {}
    values = np.empty(n, dtype=np.float64)
    reasons = []
    for i in range(n):
        sims = []
        for j in partners[i]:
            key = (min(i, int(j)), max(i, int(j)))  # every metric here is symmetric
            if key not in cache:
                cache[key] = compare(stack[key[0]], stack[key[1]])
            value, reason = cache[key]
            reasons.append(reason)
            sims.append(value)
        sims = np.asarray(sims)
        values[i] = np.mean(sims[np.isfinite(sims)]) if np.isfinite(sims).any() else np.nan
    warn_summary(f"random_pair_baseline[{metric}] pairs", reasons, len(reasons))
    finite = values[np.isfinite(values)]
    if metric == "ssim":
        settings = ssim_spec(**options)
    elif metric == "hog":
        settings = {"pixels_per_cell": hog_cells(stack.shape[1:], **options)}
    else:
        settings = {}
    return RandomPairBaseline(
        values=values,
        mean=float(finite.mean()) if finite.size else np.nan,
        std=float(finite.std(ddof=1)) if finite.size > 1 else np.nan,
        ci=bootstrap_ci(values, n_bootstrap=n_bootstrap, level=level, seed=seed),
        partners=partners,
        n_pairs=k,
        n_undefined=sum(1 for r in reasons if r),
        metric=metric,
        settings=settings,
        seed=int(seed),
    )


def average_mask_prior(masks, *, labels=None, positives_only: bool = True) -> np.ndarray:
    """Pixel-wise mean of ground-truth masks: the "average" localization baseline.

    Compute it on the training (+ validation) images only, never on the test
    images it is scored on.

    Parameters
    ----------
    masks : array_like of bool, shape (N, H, W)
        Ground-truth masks (all False for negatives).
    labels : array_like of int, shape (N,), optional
        Image labels (1 = positive). Without labels, the positives are the
        images whose mask is non-empty.
    positives_only : bool, optional
        ``True`` (default): average the positives' masks only — "where lesions
        are, given there is one", the natural prior for scoring positive test
        images (Arun et al.'s RSNA script). ``False``: average all masks,
        empty ones included (their SIIM script). The two priors differ only by
        the constant factor (fraction of positives), so every localization
        metric of :mod:`helpers.metrics.localization` (rank-based, Otsu,
        argmax) gives the same value for both; only the displayed scale
        differs.

    Returns
    -------
    numpy.ndarray of float64, shape (H, W)
        In ``[0, 1]``: the fraction of the averaged masks covering each pixel.

    Raises
    ------
    MetricInputError
        No mask to average (e.g. ``positives_only`` and no positive image), or
        labels of the wrong length or values.

    References
    ----------
    .. [1] Arun et al. (2021), "average" baseline of fig. 2.
    """
    stack = as_masks(masks, "masks")
    if stack.shape[0] == 0:
        raise MetricInputError("masks is empty; expected at least one training mask")
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != (stack.shape[0],):
            raise MetricInputError(f"labels has shape {lab.shape} but masks has {stack.shape[0]} masks; expected one label per mask")
        if not np.all(np.isin(lab, (0, 1))):
            raise MetricInputError(f"labels must be 0 or 1, found {np.unique(lab)[:5].tolist()}")
        positive = lab == 1
    else:
        positive = stack.reshape(stack.shape[0], -1).any(axis=1)
    selected = stack[positive] if positives_only else stack
    if selected.shape[0] == 0:
        raise MetricInputError(
            "average_mask_prior(positives_only=True) found no positive image among "
            f"{stack.shape[0]} masks; expected at least one positive (or pass positives_only=False)"
        )
    return selected.mean(axis=0, dtype=np.float64)


def leave_one_out_prior(masks) -> np.ndarray:
    """Per-image average-mask prior of an evaluation set without a training split: the mean of the *other* masks.

    When the images scored are all there is (e.g. the 100 RSNA positives with
    boxes of Arun et al.'s sample), the prior of image ``i`` is the mean of
    the masks of every image but ``i``: it knows where abnormalities usually
    are, never where this one is.

    Parameters
    ----------
    masks : array_like of bool, shape (N, H, W)
        The evaluation images' masks (positives), ``N >= 2``.

    Returns
    -------
    numpy.ndarray of float64, shape (N, H, W)

    Raises
    ------
    MetricInputError
        Fewer than two masks.

    References
    ----------
    .. [1] Arun et al. (2021), "average" baseline of fig. 2 (there over the training masks).
    """
    stack = as_masks(masks, "masks").astype(np.float64)
    n = stack.shape[0]
    if n < 2:
        raise MetricInputError(f"leave_one_out_prior needs at least 2 masks, got {n}")
    total = stack.sum(axis=0)
    return (total[None] - stack) / (n - 1)
