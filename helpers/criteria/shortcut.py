"""Shortcut learning: does a classifier read the confounding marker, and does a saliency map show it?

A *shortcut* is a feature that predicts the label in the training data but
is not the disease (a hospital's text marker, a portable-film label).
Zech et al. (2018) and DeGrave et al. (2021) found chest X-ray classifiers
that score well by reading such features. The synthetic generator knows
exactly where its marker is (:attr:`helpers.data.SyntheticSample.marker_masks`),
so this module measures, with ground truth:

* the **shortcut itself**: :func:`auc_gap`, the ROC AUC on a confounded
  test set (the marker as correlated with the label as in training) minus
  the AUC on a de-confounded one (every test image twice, with and without
  its marker: marker independent of the label), with a paired bootstrap CI
  over images (:func:`auc_gap_table`: each model's gap judged against 0);
* what a **map shows**: :func:`marker_mass_share` (the share of the map's
  mass on the marker) and :func:`marker_pointing` (pointing game: the map's
  maximum on the marker), per image;
* the **verdict** "reveals a shortcut" (:func:`verdict_reveals`,
  :func:`judge`): the shortcut model's maps put more of their mass on the
  marker than the honest model's maps of the same images, by a one-sided
  bootstrap test, Holm-adjusted over the methods (criterion
  ``"shortcut"``, the book's rules; Arun et al. have no such criterion).

References
----------
.. [1] Zech, J. R. et al. (2018). Variable generalization performance of a
   deep learning model to detect pneumonia in chest radiographs. PLoS
   Medicine 15(11), e1002683.
.. [2] DeGrave, A. J., Janizek, J. D., Lee, S.-I. (2021). AI for radiographic
   COVID-19 detection selects shortcuts over signal. Nature Machine
   Intelligence 3, 610-619.
.. [3] Geirhos, R. et al. (2020). Shortcut learning in deep neural networks.
   Nature Machine Intelligence 2, 665-673.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import binary_dilation
from scipy.stats import rankdata

from helpers import metrics
from helpers.criteria._similarity import SSIM_SPECS, random_pair_baselines
from helpers.criteria._verdicts import apply_holm, verdict_frame
from helpers.criteria.comparison import COMPARISON_COLUMNS, verdict_word
from helpers.metrics import Verdict

__all__ = [
    "CRITERION",
    "RULE_REASON",
    "AUCGap",
    "auc_gap",
    "auc_gap_table",
    "marker_mass_share",
    "marker_pointing",
    "marker_area_share",
    "marker_scores",
    "verdict_reveals",
    "judge",
    "first_revealing",
    "trust_verdicts",
]

#: The criterion id of the verdicts this module writes (the scorecard's "Reveals a shortcut" column).
CRITERION = "shortcut"

#: Why the rule is what it is (printed beside the verdicts).
RULE_REASON = (
    "a saliency map is only useful against a shortcut if it looks different when the model uses one. Bright, "
    "sharp-edged markers attract gradient-based maps even in a model that ignores them, so the share of mass on "
    "the marker is compared with the honest model's maps of the same images (paired), not with a fixed level; "
    "a CI because a dozen images move the mean share by several hundredths."
)


def _maps_and_masks(maps, marker_masks) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(maps, dtype=np.float64)
    k = np.asarray(marker_masks)
    if m.ndim != 3 or k.shape != m.shape:
        raise metrics.MetricInputError(f"maps and marker_masks must both be (N, H, W) of one shape; got {m.shape} "
                                       f"and {k.shape}")
    if k.dtype != bool:
        raise metrics.MetricInputError(f"marker_masks must be boolean, got {k.dtype}")
    return m, k


def marker_mass_share(maps, marker_masks) -> np.ndarray:
    """Per image, the share of the map's (non-negative) mass that lies on the marker.

    Parameters
    ----------
    maps : array_like, shape (N, H, W)
        Post-processed maps (non-negative; the book's maps lie in [0, 1]).
        Negative values are clipped to 0.
    marker_masks : array_like of bool, shape (N, H, W)
        The exact marker masks.

    Returns
    -------
    numpy.ndarray, shape (N,)
        ``sum(map * mask) / sum(map)``; NaN for an all-zero map (it points
        nowhere) or an image without a marker.
    """
    m, k = _maps_and_masks(maps, marker_masks)
    m = np.clip(m, 0.0, None)
    total = m.sum(axis=(1, 2))
    on = (m * k).sum(axis=(1, 2))
    out = np.full(len(m), np.nan)
    ok = (total > 0) & k.any(axis=(1, 2))
    out[ok] = on[ok] / total[ok]
    return out


def marker_area_share(marker_masks) -> np.ndarray:
    """Per image, the marker's share of the image area: the mass share of a uniform map."""
    k = np.asarray(marker_masks, dtype=bool)
    return k.reshape(len(k), -1).mean(axis=1)


def marker_pointing(maps, marker_masks, *, tolerance: int = 1, ties: str = "fraction") -> np.ndarray:
    """Pointing game on the marker: does the map's maximum lie on it (within ``tolerance`` pixels)?

    Parameters
    ----------
    maps, marker_masks : array_like, shape (N, H, W)
    tolerance : int, optional
        The mask is dilated by this many pixels (8-connected) first, since the
        marker's stroke is two or three pixels wide and the detector blur
        spreads it (default 1).
    ties : str, optional
        As :func:`helpers.metrics.hit` (default: the share of maximal pixels on
        the marker).

    Returns
    -------
    numpy.ndarray, shape (N,)
        In [0, 1]; NaN for a constant map or an image without a marker.
    """
    m, k = _maps_and_masks(maps, marker_masks)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise metrics.MetricInputError(f"tolerance must be a non-negative number of pixels, got {tolerance!r}")
    out = np.full(len(m), np.nan)
    for i in range(len(m)):
        if not k[i].any() or np.ptp(m[i]) == 0:
            continue
        mask = binary_dilation(k[i], structure=np.ones((3, 3), bool), iterations=int(tolerance)) if tolerance else k[i]
        s = m[i]
        top = s == s.max()
        inside = top & mask
        if ties == "fraction":
            out[i] = inside.sum() / top.sum()
        elif ties == "any":
            out[i] = float(inside.any())
        elif ties == "all":
            out[i] = float(inside.sum() == top.sum())
        elif ties == "first":
            out[i] = float(mask.ravel()[int(np.argmax(s))])
        else:
            raise metrics.MetricInputError(f"unknown ties rule {ties!r}; valid: fraction, any, all, first")
    return out


def marker_scores(maps, marker_masks, image_ids: Sequence[str], *, tolerance: int = 1) -> pd.DataFrame:
    """Tidy per-image rows ``image_id, metric, value`` of the marker metrics of one set of maps.

    Metrics: ``marker_mass_share``, ``marker_pointing`` and
    ``marker_area_share`` (the uniform map's share, for reference).
    """
    ids = list(image_ids)
    if len(ids) != len(np.asarray(marker_masks)):
        raise metrics.MetricInputError(f"{len(ids)} image ids for {len(np.asarray(marker_masks))} marker masks")
    values = {
        "marker_mass_share": marker_mass_share(maps, marker_masks),
        "marker_pointing": marker_pointing(maps, marker_masks, tolerance=tolerance),
        "marker_area_share": marker_area_share(marker_masks),
    }
    return pd.concat([pd.DataFrame({"image_id": ids, "metric": name, "value": v}) for name, v in values.items()],
                     ignore_index=True)


@dataclass(frozen=True)
class AUCGap:
    """ROC AUC on the confounded test set minus on the de-confounded one, with its bootstrap CI.

    Attributes
    ----------
    confounded, deconfounded : float
        The two AUCs.
    gap : float
        ``confounded - deconfounded``: what the marker is worth to the
        model; about 0 for a model that does not use it.
    low, high : float
        Percentile bootstrap CI of ``gap`` (images resampled, each with both
        of its de-confounded copies); NaN when undefined.
    confounded_low, confounded_high, deconfounded_low, deconfounded_high : float
        Percentile bootstrap CIs of each AUC (same resamples).
    level : float
    n_images : int
    n_bootstrap : int
    """

    confounded: float
    deconfounded: float
    gap: float
    low: float
    high: float
    confounded_low: float
    confounded_high: float
    deconfounded_low: float
    deconfounded_high: float
    level: float
    n_images: int
    n_bootstrap: int

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view for tables."""
        return dict(self.__dict__)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank formula (ties count one half; equals ``sklearn``'s, far faster)."""
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def auc_gap(labels, confounded_scores, with_marker_scores, without_marker_scores, *, n_bootstrap: int = 1000,
            seed: int = 0, level: float = 0.95) -> AUCGap:
    """The shortcut's worth: AUC on the confounded test images minus AUC with the marker made independent.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        True labels of the N test images.
    confounded_scores : array_like, shape (N,)
        The model's scores of the images as the confounded test set shows
        them (marker present as in training).
    with_marker_scores, without_marker_scores : array_like, shape (N,)
        Scores of the same images drawn with and without their marker. The
        de-confounded set is the 2N images: every image once with and once
        without the marker, so the marker is independent of the label
        exactly (correlation 0), and nothing else differs.
    n_bootstrap, seed, level
        Images are resampled with replacement (an image keeps all three of
        its scores), so the CI of the gap is paired.

    Returns
    -------
    AUCGap

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.2, 0.8, 0.9])
    >>> auc_gap(y, s, s, s, n_bootstrap=50).gap
    0.0
    """
    y = np.asarray(labels).astype(np.int64).ravel()
    c, w, o = (np.asarray(a, dtype=np.float64).ravel() for a in (confounded_scores, with_marker_scores,
                                                                     without_marker_scores))
    if not (y.size == c.size == w.size == o.size) or y.size < 2:
        raise metrics.MetricInputError(f"labels and the three score arrays need one value per image (N >= 2); got "
                                       f"{y.size}, {c.size}, {w.size}, {o.size}")
    if not (0 < y.sum() < y.size):
        raise metrics.MetricInputError("auc_gap needs test images of both classes")
    if not (np.isfinite(c).all() and np.isfinite(w).all() and np.isfinite(o).all()):
        raise metrics.MetricInputError("auc_gap: scores must be finite")
    n_bootstrap = int(n_bootstrap)
    conf = _auc(y, c)
    deconf = _auc(np.concatenate([y, y]), np.concatenate([w, o]))
    rng = np.random.default_rng(seed)
    boots = np.full((n_bootstrap, 3), np.nan)
    for b in range(n_bootstrap):
        i = rng.integers(0, y.size, y.size)
        yi = y[i]
        if not (0 < yi.sum() < yi.size):
            continue
        a1 = _auc(yi, c[i])
        a2 = _auc(np.concatenate([yi, yi]), np.concatenate([w[i], o[i]]))
        boots[b] = a1, a2, a1 - a2
    alpha = (1.0 - float(level)) / 2.0
    ok = np.isfinite(boots).all(axis=1)
    q = (np.quantile(boots[ok], [alpha, 1.0 - alpha], axis=0) if ok.sum() >= 2 else np.full((2, 3), np.nan))
    return AUCGap(confounded=conf, deconfounded=deconf, gap=conf - deconf, low=float(q[0, 2]), high=float(q[1, 2]),
                  confounded_low=float(q[0, 0]), confounded_high=float(q[1, 0]), deconfounded_low=float(q[0, 1]),
                  deconfounded_high=float(q[1, 1]), level=float(level), n_images=int(y.size),
                  n_bootstrap=n_bootstrap)


def auc_gap_table(gaps: Mapping[str, AUCGap]) -> pd.DataFrame:
    """Each model's AUC gap judged against 0: does its AUC fall once the marker stops predicting the label?

    Parameters
    ----------
    gaps : mapping of str to AUCGap
        :func:`auc_gap` of each model, by model name.

    Returns
    -------
    pandas.DataFrame
        :data:`helpers.criteria.COMPARISON_COLUMNS`, one row per model in
        order: ``compared`` the model's AUC on the confounded test set,
        ``against`` its AUC on the de-confounded one, ``statistic``
        ``"auc_gap"``, ``value``/``ci_low``/``ci_high`` the gap and its paired
        CI, ``n`` the test images, ``verdict``
        (:func:`helpers.criteria.comparison.verdict_word` against 0):
        ``"better"`` (the CI lies above 0: the model scores better when the
        marker predicts the label, it uses the marker), ``"worse"`` (below 0),
        ``"not distinguishable"`` (the CI covers 0: no use of the marker is
        visible), ``"undecided"`` (no CI).

    References
    ----------
    .. [1] Zech et al. (2018); DeGrave et al. (2021) (a classifier's AUC falls
       when the confounder stops predicting the label).

    Examples
    --------
    >>> y = np.array([0, 1] * 10); s = y + np.linspace(0, 0.5, 20)
    >>> auc_gap_table({"honest": auc_gap(y, s, s, s, n_bootstrap=50)})["verdict"].tolist()
    ['not distinguishable']
    """
    rule = ("paired bootstrap CI over images of AUC(confounded) - AUC(de-confounded): better (the model uses the "
            "marker) if it lies above 0, worse if below 0, otherwise not distinguishable")
    rows = [dict(compared=f"{name}: confounded", against=f"{name}: de-confounded", statistic="auc_gap", value=g.gap,
                 ci_low=g.low, ci_high=g.high, p_value=np.nan, n=g.n_images, verdict=verdict_word(g.low, g.high),
                 rule_text=f"{g.level:.0%} " + rule) for name, g in gaps.items()]
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).set_index(pd.Index(list(gaps), name="model"))


def verdict_reveals(shortcut_share, honest_share, *, shortcut_pointing=None, honest_pointing=None,
                    margin: float = 0.0, level: float = 0.95, n_bootstrap: int = 1000, seed: int = 0) -> Verdict:
    """"Reveals a shortcut" (book rule): do the shortcut model's maps sit on the marker more than the honest model's?

    Rule: per image, ``d = share_shortcut - share_honest`` (share of the
    map's mass on the marker, the same image explained for two models
    trained on the same images, one where the marker predicted the label and
    one where it did not); **pass** ("reveals") when the mean of ``d`` is
    above ``margin`` by a one-sided bootstrap test at ``(1 - level) / 2``;
    **fail** ("hides") otherwise; **undecided** with fewer than 2 pairs.

    Parameters
    ----------
    shortcut_share, honest_share : array_like, shape (N,)
        :func:`marker_mass_share` of the two models' maps, same images, same order.
    shortcut_pointing, honest_pointing : array_like, shape (N,), optional
        :func:`marker_pointing` of the same maps: reported (means) only.
    margin, level, n_bootstrap, seed
        As in :func:`helpers.metrics.verdict_localization`.

    Returns
    -------
    Verdict
        Criterion :data:`CRITERION`, ``statistic = "mean_difference"``,
        ``numbers["p_value"]`` the raw one-sided p-value (Holm-adjusted later).
    """
    a = np.asarray(shortcut_share, dtype=np.float64)
    b = np.asarray(honest_share, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise metrics.MetricInputError(f"shortcut_share and honest_share must be (N,) of one shape; got {a.shape} "
                                       f"and {b.shape}")
    test = metrics.bootstrap_test(a - b, threshold=float(margin), alternative="greater", n_bootstrap=n_bootstrap,
                                  level=level, seed=seed)
    alpha = (1.0 - float(level)) / 2.0
    passed = None if not np.isfinite(test.pvalue) or test.reason else bool(test.pvalue < alpha)
    numbers: dict[str, Any] = dict(
        n=test.n, n_images=test.n_images, n_dropped=test.n_dropped, mean_difference=test.estimate,
        ci_low=test.low, ci_high=test.high, p_value=test.pvalue, alpha=alpha, reason=test.reason,
        mean_share_shortcut=float(np.nanmean(a)) if np.isfinite(a).any() else np.nan,
        mean_share_honest=float(np.nanmean(b)) if np.isfinite(b).any() else np.nan, margin=float(margin),
    )
    for name, values in (("pointing_shortcut", shortcut_pointing), ("pointing_honest", honest_pointing)):
        if values is not None:
            v = np.asarray(values, dtype=np.float64)
            numbers[name] = float(np.nanmean(v)) if np.isfinite(v).any() else np.nan
    rule = (f"reveals the shortcut when the mean per-image share of map mass on the marker, shortcut model minus "
            f"honest model on the same images, is above {margin:g} by a one-sided bootstrap test at {alpha:.3g} "
            f"({n_bootstrap} resamples over images; equivalently its {level:.0%} CI lies above {margin:g})")
    return Verdict(CRITERION, passed, rule, numbers, statistic="mean_difference", rules="book")


def _wide(scores: pd.DataFrame, metric: str, model: str) -> pd.DataFrame:
    part = scores[(scores["metric"] == metric) & (scores["model"] == model)]
    if part.empty:
        raise ValueError(f"the marker scores hold no {metric!r} rows of model {model!r}; models present: "
                         f"{sorted(scores['model'].unique())}")
    return part.pivot_table(index="image_id", columns="method", values="value", dropna=False, sort=False)


def judge(scores: pd.DataFrame, *, methods: Sequence[str], shortcut_model: str, honest_model: str,
          architecture: str, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """"Reveals a shortcut" verdicts of every method, Holm-adjusted over the methods.

    Parameters
    ----------
    scores : pandas.DataFrame
        Tidy rows ``model, method, image_id, metric, value`` with the metrics
        of :func:`marker_scores` (at least ``marker_mass_share``; with
        ``marker_pointing`` the pointing rates are reported).
    methods : sequence of str
        The methods judged (one Holm family).
    shortcut_model, honest_model : str
        Values of the ``model`` column.
    architecture : str
        Written into the rows.
    n_bootstrap, seed, level
        Of every CI and test.

    Returns
    -------
    pandas.DataFrame
        :data:`helpers.criteria.VERDICT_COLUMNS` rows, one per method
        (``rules == "book"``: Arun et al. have no shortcut criterion).
    """
    share_s = _wide(scores, "marker_mass_share", shortcut_model)
    share_h = _wide(scores, "marker_mass_share", honest_model)
    has_pointing = (scores["metric"] == "marker_pointing").any()
    point_s = _wide(scores, "marker_pointing", shortcut_model) if has_pointing else None
    point_h = _wide(scores, "marker_pointing", honest_model) if has_pointing else None
    ids = [i for i in share_s.index if i in share_h.index]
    if not ids:
        raise ValueError(f"models {shortcut_model!r} and {honest_model!r} share no explained image")
    entries = []
    for method in methods:
        for frame, who in ((share_s, shortcut_model), (share_h, honest_model)):
            if method not in frame.columns:
                raise ValueError(f"no marker scores of method {method!r} for model {who!r}")
        extra = {}
        if point_s is not None and method in point_s.columns and method in point_h.columns:
            extra = dict(shortcut_pointing=point_s.loc[ids, method].to_numpy(float),
                         honest_pointing=point_h.loc[ids, method].to_numpy(float))
        entries.append((method, architecture, verdict_reveals(
            share_s.loc[ids, method].to_numpy(float), share_h.loc[ids, method].to_numpy(float), **extra,
            n_bootstrap=n_bootstrap, seed=seed, level=level)))
    return apply_holm(verdict_frame(entries))


def first_revealing(verdicts_by_strength: Mapping[float, pd.DataFrame]) -> pd.DataFrame:
    """Per method, the smallest marker correlation at which its maps reveal the shortcut.

    Parameters
    ----------
    verdicts_by_strength : mapping float -> pandas.DataFrame
        For each correlation of a shortcut model, the :func:`judge` verdicts
        of that model against the honest one.

    Returns
    -------
    pandas.DataFrame
        Index ``method``; column ``first reveals at`` (the correlation, NaN
        when no model's maps reveal it) and one column per correlation with
        the verdict's outcome (``"reveals"``, ``"hides"``, ``"undecided"``, or
        ``"not computed"`` where the method was not judged at that strength).
    """
    rows: dict[str, dict[str, Any]] = {}
    for strength in sorted(verdicts_by_strength):
        frame = verdicts_by_strength[strength]
        for _, row in frame.iterrows():
            entry = rows.setdefault(row["method"], {"first reveals at": np.nan})
            word = "undecided" if row["passed"] is None else ("reveals" if row["passed"] else "hides")
            entry[f"c = {strength:g}"] = word
            if word == "reveals" and not np.isfinite(entry["first reveals at"]):
                entry["first reveals at"] = float(strength)
    out = pd.DataFrame.from_dict(rows, orient="index")
    strengths = [c for c in out.columns if c != "first reveals at"]
    out[strengths] = out[strengths].fillna("not computed")  # a method judged at some strengths only
    out.index.name = "method"
    return out


def trust_verdicts(maps: Mapping[str, np.ndarray], *, masks, prior, architecture: str,
                   randomized: Mapping[str, np.ndarray] | None = None,
                   replicate: Mapping[str, np.ndarray] | None = None,
                   n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The book's trust criteria applied to one model's maps: would they flag it?

    Parameters
    ----------
    maps : mapping method -> (N, H, W)
        The model's post-processed maps of N positive images.
    masks : (N, H, W) bool
        The images' opacity masks (the true finding); a method whose maps
        cover only the first ``k < N`` images is judged on those.
    prior : (H, W)
        The average-mask prior (:func:`helpers.metrics.average_mask_prior`).
    architecture : str
        Written into the rows.
    randomized : mapping method -> (N, H, W), optional
        Maps of the fully randomized model: weight randomization is judged
        for the methods present (:func:`helpers.metrics.verdict_randomization`,
        final SSIM minus the image's own random-pair SSIM, book specification).
    replicate : mapping method -> (N, H, W), optional
        Maps of an independently trained replicate: repeatability is judged
        (:func:`helpers.metrics.verdict_repeatability`).
    n_bootstrap, seed, level
        Of every CI and test.

    Returns
    -------
    pandas.DataFrame
        Verdict rows (the book's rules), Holm-adjusted within each criterion
        over the methods of this model. Localization always; randomization
        and repeatability for the methods given.
    """
    masks = np.asarray(masks, dtype=bool)
    ids = [f"image{i}" for i in range(len(masks))]
    prior_maps = np.repeat(np.asarray(prior, dtype=np.float64)[None], len(masks), axis=0)
    prior_ap = metrics.localization_table(prior_maps, masks, ids, metrics=["average_precision"])["value"].to_numpy()
    opts = dict(n_bootstrap=n_bootstrap, seed=seed, level=level)
    entries = []
    for method, m in maps.items():
        k = len(m)  # a costly method may explain only the first images
        ap = metrics.localization_table(m, masks[:k], ids[:k], metrics=["average_precision"])["value"].to_numpy()
        entries.append((method, architecture, metrics.verdict_localization(ap, prior_ap[:k], metric="AP", **opts)))
        needs_baseline = (randomized is not None and method in randomized) or (replicate is not None
                                                                                and method in replicate)
        if not needs_baseline:
            continue
        base = random_pair_baselines(m, seed=seed, n_bootstrap=n_bootstrap, specs=("ssim",))["ssim"]
        if randomized is not None and method in randomized:
            final = metrics.paired_similarity(m, randomized[method], metric="ssim", **SSIM_SPECS["ssim"])
            entries.append((method, architecture, metrics.verdict_randomization(final, base, **opts)))
        if replicate is not None and method in replicate:
            agree = metrics.paired_similarity(m, replicate[method], metric="ssim", **SSIM_SPECS["ssim"])
            entries.append((method, architecture, metrics.verdict_repeatability(agree, base, **opts)))
    return apply_holm(verdict_frame(entries))
