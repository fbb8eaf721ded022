"""Map similarity under both SSIM specifications, as tidy rows and per-method baselines.

Every similarity criterion is measured twice: with the book's SSIM
(:data:`helpers.metrics.DEFAULT_SSIM`, ``data_range=1``, the range of the
maps) under metric name ``"ssim"``, and with the paper's
(:data:`helpers.metrics.PAPER_SSIM`, ``data_range=2`` as scikit-image 0.16
assumed for float maps) under ``"ssim_paper"``. The book's rules read
``"ssim"``; the paper's rules and every figure that draws the paper's
numbers read ``"ssim_paper"``.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from helpers import metrics

__all__ = ["SSIM_SPECS", "similarity_rows", "random_pair_baselines"]

#: metric name -> SSIM settings.
SSIM_SPECS: dict[str, dict[str, Any]] = {"ssim": dict(metrics.DEFAULT_SSIM), "ssim_paper": dict(metrics.PAPER_SSIM)}


def similarity_rows(maps_a, maps_b, image_ids: Sequence[str], *, specs: Sequence[str] = tuple(SSIM_SPECS),
                    **columns: Any) -> pd.DataFrame:
    """Per-image SSIM of two stacks of maps under each specification, as tidy rows.

    Parameters
    ----------
    maps_a, maps_b : array_like, shape (N, H, W)
        The maps of the same images, in the same order.
    image_ids : sequence of str
    specs : sequence of str, optional
        Keys of :data:`SSIM_SPECS` (default both).
    **columns
        Constant columns (``method``, ``replicate``, ``state`` ...).

    Returns
    -------
    pandas.DataFrame
        ``image_id, metric, value`` and ``columns``.
    """
    frames = []
    for name in specs:
        values = metrics.paired_similarity(maps_a, maps_b, metric="ssim", **SSIM_SPECS[name])
        frames.append(pd.DataFrame({"image_id": list(image_ids), "metric": name, "value": values, **columns}))
    return pd.concat(frames, ignore_index=True)


def random_pair_baselines(maps, *, seed: int, n_pairs: int = 50, n_bootstrap: int = 1000,
                          specs: Sequence[str] = tuple(SSIM_SPECS)) -> dict[str, metrics.RandomPairBaseline]:
    """The random-pair baseline of one model's maps under each SSIM specification (same partners).

    Returns
    -------
    dict
        metric name (``"ssim"``, ``"ssim_paper"``) -> :class:`~helpers.metrics.RandomPairBaseline`.
    """
    return {name: metrics.random_pair_baseline(maps, seed=seed, n_pairs=n_pairs, metric="ssim",
                                               n_bootstrap=n_bootstrap, **SSIM_SPECS[name])
            for name in specs}
