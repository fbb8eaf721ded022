"""The book's figures, drawn from the tidy results tables.

Every chapter writes ``results/<notebook>.csv`` with the columns
``notebook, method, architecture, replicate, state, image_id, metric, value``
(:data:`helpers.results.COLUMNS`); the functions here take such a table (or a
subset of it) plus, optionally, the reference numbers of Arun et al. (2021)
from :mod:`helpers.reference`, and return a :class:`matplotlib.figure.Figure`
sized for the book's text width (about 7-9 inches at 150 dpi), with labelled
axes, units and a legend. A method keeps its colour in every chapter
(:data:`METHOD_COLORS`).

Functions
---------
utility_boxplot
    Localization utility per method, trained vs untrained model, with the
    average-mask prior and the supervised localizer as lines.
randomization_curves
    Cascading randomization: SSIM to the original map along the cascade, one
    panel per method, with the random-pair baseline (the paper's figure 3).
similarity_strip
    Repeatability / reproducibility: per-image SSIM distribution per method
    with the network baseline.
map_grid
    Images x methods grid of saliency overlays with the ground-truth outline.
scorecard_heatmap, scorecard_table
    The pass/fail verdicts as a figure and as a styled HTML table.
save_figure
    Write a figure under ``<results_dir>/figures/`` atomically.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from helpers._cache import atomic_write
from helpers.config import PAPER_METHODS
from helpers.reference import RANDOMIZATION_STATES

__all__ = [
    "OKABE_ITO",
    "METHOD_COLORS",
    "METHOD_ORDER",
    "PlotError",
    "method_color",
    "method_order",
    "save_figure",
    "utility_boxplot",
    "randomization_curves",
    "similarity_strip",
    "map_grid",
    "example_grid",
    "scorecard_heatmap",
    "scorecard_panels",
    "scorecard_table",
    "VERDICT_COLORS",
]


class PlotError(ValueError):
    """A table given to a figure function lacks columns or rows it needs."""


# Paul Tol's "muted" qualitative scheme (colour-blind safe) for the eight paper
# methods, grouped by family: pixel-gradient methods in blues/greens, CAM
# methods in reds, XRAI purple, guided backpropagation sand; then Okabe-Ito
# colours for the book's extra methods.
#: Colour of every method, stable across chapters: the eight of Arun et al. then the extras.
METHOD_COLORS: dict[str, str] = {
    "GRAD": "#332288",
    "SG": "#88CCEE",
    "IG": "#117733",
    "SIG": "#44AA99",
    "GCAM": "#CC6677",
    "XRAI": "#AA4499",
    "GBP": "#DDCC77",
    "GGCAM": "#882255",
    "TRAINABLE": "#E69F00",
    "CF": "#0072B2",
    "OCCLUSION": "#999933",
}

#: The Okabe-Ito palette (colour-blind safe), black first: for series that are not methods (models, data sets).
OKABE_ITO: tuple[str, ...] = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

#: Order of the methods on every axis: the paper's eight, then the extras.
METHOD_ORDER: tuple[str, ...] = PAPER_METHODS + tuple(m for m in METHOD_COLORS if m not in PAPER_METHODS)

# Colours reserved for methods registered later under other names: a method's
# colour is picked from this list by a hash of its name, so it is the same in
# every chapter and every run (not by order of appearance).
_EXTRA_COLORS = ("#D55E00", "#56B4E9", "#009E73", "#CC79A7", "#F0E442", "#661100", "#6699CC", "#888888")

#: Line styles of the baseline lines, in the order the baselines are given.
_BASELINE_STYLES = (("--", "#4D4D4D"), ("-", "#000000"), (":", "#4D4D4D"), ("-.", "#000000"))

_PAPER_MARKERS = {"RSNA": "D", "SIIM": "s"}

_METRIC_LABELS = {
    "average_precision": "Average precision (AP)",
    "auprc": "AUPRC (trapezoidal)",
    "auprc_trapezoid": "AUPRC (trapezoidal)",
    "ssim": "SSIM (book: data range 1)",
    "ssim_paper": "SSIM (paper's specification: data range 2)",
    "spearman_abs": "Spearman rank correlation (|map|)",
    "spearman_signed": "Spearman rank correlation (signed map)",
    "hog": "HOG similarity (Spearman)",
    "iou": "IoU",
    "hit": "Pointing-game hit rate",
}

_STATE_ORDER = ("trained", "untrained")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def method_color(method: str) -> str:
    """Colour of ``method``: :data:`METHOD_COLORS`, else a colour fixed by a hash of the name."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    digest = hashlib.sha256(method.encode("utf-8")).digest()
    return _EXTRA_COLORS[digest[0] % len(_EXTRA_COLORS)]


def _luminance(color: str) -> float:
    r, g, b = matplotlib.colors.to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def method_order(methods) -> list[str]:
    """``methods`` (unique) in the book's order: :data:`METHOD_ORDER` first, then the others sorted."""
    present = list(dict.fromkeys(str(m) for m in methods))
    known = [m for m in METHOD_ORDER if m in present]
    return known + sorted(m for m in present if m not in METHOD_ORDER)


def metric_label(metric: str) -> str:
    """Axis label of a metric name used in the results tables."""
    return _METRIC_LABELS.get(metric, metric.replace("_", " "))


def save_figure(fig: Figure, name: str, *, results_dir: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``<results_dir>/figures/<name>.png`` atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        File name without folder; ``.png`` is added when missing. Letters,
        digits, ``_``, ``-`` and ``.`` only.
    results_dir : str or Path
        The run's results folder (``settings.results_dir``).
    dpi : int, optional
        Resolution (default 150: sharp at the book's width, small files).

    Returns
    -------
    Path
        The written file.
    """
    if not isinstance(fig, Figure):
        raise PlotError(f"save_figure needs a matplotlib Figure, got {type(fig).__name__}")
    stem = name[:-4] if name.lower().endswith(".png") else name
    if not _NAME_RE.match(stem) or stem.endswith("."):
        raise PlotError(f"figure name {name!r} must be a plain file name (letters, digits, _ - .), "
                        f"e.g. '01_utility_boxplot'")
    path = Path(results_dir) / "figures" / f"{stem}.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight",
                                               facecolor="white"))
    # atomic_write's temporary file is private (0600); a figure is meant to be served.
    path.chmod(0o644)
    return path


# --------------------------------------------------------------------------
# helpers

def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise PlotError(f"{what} needs a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PlotError(f"{what}: the table lacks columns {missing}; it has {list(df.columns)} "
                        f"(expected the results columns notebook, method, architecture, replicate, "
                        f"state, image_id, metric, value)")


def _select_metric(df: pd.DataFrame, metric: str, what: str) -> pd.DataFrame:
    _require(df, ["method", "metric", "value"], what)
    out = df[df["metric"] == metric]
    if out.empty:
        present = sorted(df["metric"].astype(str).unique())
        raise PlotError(f"{what}: no rows with metric={metric!r}; metrics in the table: {present}")
    out = out.copy()
    out["value"] = pd.to_numeric(out["value"], errors="raise").astype(float)
    out["method"] = out["method"].astype(str)
    return out


def _baseline_items(baselines, what: str) -> list[tuple[str, float]]:
    if baselines is None:
        return []
    if isinstance(baselines, (int, float, np.floating)):
        return [("network baseline", float(baselines))]
    if not isinstance(baselines, Mapping):
        raise PlotError(f"{what}: baselines must be a mapping label -> value, got {type(baselines).__name__}")
    items = []
    for label, value in baselines.items():
        value = float(np.nanmean(np.asarray(value, dtype=float)))
        if not math.isfinite(value):
            raise PlotError(f"{what}: baseline {label!r} is not a finite number")
        items.append((str(label), value))
    return items


def _prefer_text(paper: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Keep one row per ``keys``: the paper text's value ([P]) over a figure reading ([F])."""
    if "source" not in paper.columns:
        return paper
    ranked = paper.assign(_rank=paper["source"].map({"[P]": 0, "[F]": 1}).fillna(2))
    ranked = ranked.sort_values("_rank", kind="stable").drop_duplicates(list(keys), keep="first")
    return ranked.drop(columns="_rank")


def _source_tag(rows: pd.DataFrame) -> str:
    if "source" not in rows.columns:
        return ""
    return " ".join(sorted(rows["source"].astype(str).unique()))


def _finish_legend(fig: Figure, handles, labels, *, ncol: int | None = None) -> None:
    if not handles:
        return
    ncol = ncol or min(len(handles), 3)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 0.0))


# --------------------------------------------------------------------------
# localization utility

def utility_boxplot(
    df: pd.DataFrame,
    *,
    metric: str = "average_precision",
    paper: pd.DataFrame | None = None,
    baselines: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Localization utility of every method, trained vs untrained model.

    One box per method and model state (filled: trained model; hatched: the
    untrained / fully randomized model); the box spans the quartiles, the
    solid line is the median and the dashed line the mean over images, as in
    Arun et al.'s figure 2.

    Parameters
    ----------
    df : DataFrame
        Results table with ``method, state, metric, value`` (one row per
        image); rows of other metrics are ignored.
    metric : str, optional
        Which metric to show (default ``"average_precision"``).
    paper : DataFrame, optional
        :func:`helpers.reference.paper_utility` (one or both datasets): the
        paper's per-method means are drawn as black markers (open for
        untrained) and its ``Avg``/``Net`` means as thin dotted lines.
    baselines : mapping label -> float, optional
        Horizontal reference lines, e.g. ``{"average-mask prior": 0.21,
        "supervised localizer (U-Net)": 0.58}``; a sequence value is averaged.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [1] Arun et al. (2021), figure 2.
    """
    d = _select_metric(df, metric, "utility_boxplot")
    _require(d, ["state"], "utility_boxplot")
    d["state"] = d["state"].astype(str)
    n_nan = int(d["value"].isna().sum())
    d = d[d["value"].notna()]
    if d.empty:
        raise PlotError(f"utility_boxplot: every {metric!r} value is NaN")
    methods = method_order(d["method"].unique())
    states = [s for s in _STATE_ORDER if s in set(d["state"])] + sorted(set(d["state"]) - set(_STATE_ORDER))
    width = 0.8 / len(states)

    fig, ax = plt.subplots(figsize=(max(6.5, 0.85 * len(methods) + 2.5), 4.8), layout="constrained")
    for i, method in enumerate(methods):
        color = method_color(method)
        for j, state in enumerate(states):
            values = d.loc[(d["method"] == method) & (d["state"] == state), "value"].to_numpy()
            if values.size == 0:
                continue
            pos = i + (j - (len(states) - 1) / 2) * width
            bp = ax.boxplot(values, positions=[pos], widths=width * 0.85, patch_artist=True,
                            showmeans=True, meanline=True, manage_ticks=False,
                            medianprops=dict(color="black", linewidth=1.2),
                            meanprops=dict(color="black", linestyle="--", linewidth=1.0),
                            flierprops=dict(marker=".", markersize=3, markerfacecolor=color,
                                            markeredgecolor=color, alpha=0.6),
                            whiskerprops=dict(color=color), capprops=dict(color=color))
            box = bp["boxes"][0]
            if state == "trained" or len(states) == 1:
                box.set(facecolor=color, edgecolor="black", alpha=0.9)
                if _luminance(color) < 0.4:  # keep median and mean lines visible on dark fills
                    for line in bp["medians"] + bp["means"]:
                        line.set_color("white")
            else:
                box.set(facecolor="white", edgecolor=color, hatch="////", linewidth=1.2)
    handles = []
    labels = []
    if "trained" in states:
        handles.append(Patch(facecolor="#777777", edgecolor="black"))
        labels.append("trained model")
    if any(s != "trained" for s in states):
        other = [s for s in states if s != "trained"]
        handles.append(Patch(facecolor="white", edgecolor="#777777", hatch="////"))
        labels.append(" / ".join(f"{s} model" for s in other))
    handles += [Line2D([], [], color="black", linewidth=1.2), Line2D([], [], color="black", linestyle="--")]
    labels += ["median over images", "mean over images"]

    for k, (label, value) in enumerate(_baseline_items(baselines, "utility_boxplot")):
        style, color = _BASELINE_STYLES[k % len(_BASELINE_STYLES)]
        ax.axhline(value, linestyle=style, color=color, linewidth=1.3, zorder=0.5)
        handles.append(Line2D([], [], linestyle=style, color=color, linewidth=1.3))
        labels.append(f"{label} ({value:.2f})")

    if paper is not None:
        _require(paper, ["dataset", "method", "state", "statistic", "value"], "utility_boxplot(paper=)")
        p = _prefer_text(paper[paper["statistic"] == "mean"], ["dataset", "method", "state", "statistic"])
        for ds, rows in p.groupby("dataset", sort=True):
            marker = _PAPER_MARKERS.get(ds, "o")
            drawn = False
            for i, method in enumerate(methods):
                for j, state in enumerate(states):
                    hit = rows[(rows["method"] == method) & (rows["state"] == state)]
                    if hit.empty:
                        continue
                    pos = i + (j - (len(states) - 1) / 2) * width
                    filled = state == "trained"
                    ax.plot(pos, float(hit["value"].iloc[0]), marker=marker, markersize=6, linestyle="none",
                            markerfacecolor="black" if filled else "white", markeredgecolor="black", zorder=5)
                    drawn = True
            if drawn:
                handles.append(Line2D([], [], marker=marker, linestyle="none", color="black"))
                labels.append(f"Arun et al. 2021, {ds} mean (open: untrained) "
                              f"{_source_tag(rows[rows['method'].isin(methods)])}".strip())
            for base, style in (("Avg", (0, (1, 2))), ("Net", (0, (3, 1, 1, 1)))):
                hit = rows[rows["method"] == base]
                if hit.empty:
                    continue
                value = float(hit["value"].iloc[0])
                ax.axhline(value, linestyle=style, color="#999999", linewidth=1.0, zorder=0.4)
                name = "average-mask prior" if base == "Avg" else "localization network"
                handles.append(Line2D([], [], linestyle=style, color="#999999"))
                labels.append(f"Arun et al. {ds} {name} ({value:.2f}) {_source_tag(hit)}".strip())

    counts = d.groupby("method")["image_id"].nunique() if "image_id" in d.columns else None
    ticklabels = [f"{m}\n(n={counts[m]})" if counts is not None else m for m in methods]
    ax.set_xticks(range(len(methods)), ticklabels)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("Saliency method (n = images)")
    ax.set_ylabel(f"{metric_label(metric)} per image (0-1)")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    if n_nan:
        ax.text(1.0, 1.01, f"{n_nan} NaN values left out (images without a ground-truth region)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="#555555")
    ax.legend(handles, labels, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


# --------------------------------------------------------------------------
# cascading randomization

def randomization_curves(
    df: pd.DataFrame,
    *,
    baselines: Mapping[str, float],
    paper: pd.DataFrame | None = None,
    metric: str = "ssim",
    states: Sequence[str] | None = None,
    ncols: int = 4,
    title: str | None = None,
) -> Figure:
    """Similarity of each method's map to the trained model's map along the randomization cascade.

    One panel per method: the line is the mean over images of each replicate,
    averaged over replicates, with a band of ±1 standard deviation over
    replicates (Arun et al. used three); the dashed line is the method's
    random-pair baseline. A method passes the test when its curve falls
    below its baseline.

    Parameters
    ----------
    df : DataFrame
        Results table with ``method, replicate, state, image_id, metric, value``.
    baselines : mapping method -> float
        Random-pair baseline of every method in ``df`` (mean similarity of the
        trained model's maps of two different images).
    paper : DataFrame, optional
        :func:`helpers.reference.paper_randomization`: the paper's curve is
        drawn in black, its states placed by the fraction of blocks
        randomized (``Logits`` on the first randomized state, ``1`` on the
        last), and its baseline as a dotted line.
    metric : str, optional
        Default ``"ssim"``.
    states : sequence of str, optional
        Cascade order of the states on the x axis (default: their order of
        first appearance in ``df``, which is the order the notebooks write).
    ncols : int, optional
        Panels per row.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [1] Arun et al. (2021), figure 3; Adebayo et al. (2018), "Sanity checks
       for saliency maps".
    """
    d = _select_metric(df, metric, "randomization_curves")
    _require(d, ["state", "replicate"], "randomization_curves")
    d["state"] = d["state"].astype(str)
    d["replicate"] = d["replicate"].astype(str)
    present = list(dict.fromkeys(d["state"]))
    if states is None:
        order = present
    else:
        order = [str(s) for s in states]
        unknown = sorted(set(present) - set(order))
        if unknown:
            raise PlotError(f"randomization_curves: states {unknown} of the table are not in states={order}")
    if len(order) < 2:
        raise PlotError(f"randomization_curves needs at least two model states, got {order}")
    methods = method_order(d["method"].unique())
    if not isinstance(baselines, Mapping):
        raise PlotError("randomization_curves: baselines must map every method to its random-pair baseline")
    missing = [m for m in methods if m not in baselines]
    if missing:
        raise PlotError(f"randomization_curves: no random-pair baseline for {missing}; "
                        f"baselines has {sorted(baselines)}")
    x_of = {s: i for i, s in enumerate(order)}
    d["x"] = d["state"].map(x_of)
    per_rep = d.groupby(["method", "replicate", "x"], as_index=False)["value"].mean()
    n_rep = d["replicate"].nunique()

    ncols = max(1, min(ncols, len(methods)))
    nrows = math.ceil(len(methods) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.25 * ncols + 0.6, 2.3 * nrows + 1.3),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    lo = min(0.0, float(np.nanmin(d["value"])) - 0.05)
    paper_rows = None
    if paper is not None:
        _require(paper, ["dataset", "method", "state", "value"], "randomization_curves(paper=)")
        paper_rows = paper
    i_logits = x_of.get("Logits", 1)
    x_last = len(order) - 1
    for k, method in enumerate(methods):
        ax = axes[k // ncols][k % ncols]
        color = method_color(method)
        rows = per_rep[per_rep["method"] == method]
        stats = rows.groupby("x")["value"].agg(["mean", "std", "count"]).reindex(range(len(order)))
        ax.plot(stats.index, stats["mean"], color=color, marker="o", markersize=3, linewidth=1.8)
        if n_rep > 1:
            sd = stats["std"].fillna(0.0)
            ax.fill_between(stats.index, stats["mean"] - sd, stats["mean"] + sd, color=color, alpha=0.25,
                            linewidth=0)
        ax.axhline(float(baselines[method]), color=color, linestyle="--", linewidth=1.3)
        if paper_rows is not None:
            for ds, prow in paper_rows[paper_rows["method"] == method].groupby("dataset", sort=True):
                curve = prow[prow["state"] != "baseline"]
                if "fraction_randomized" in curve.columns:
                    frac = curve["fraction_randomized"].astype(float).to_numpy()
                else:
                    frac = curve["state"].map(RANDOMIZATION_STATES).astype(float).to_numpy()
                xs = i_logits + frac * (x_last - i_logits)
                ax.plot(xs, curve["value"].astype(float), color="black", linestyle=":", linewidth=0.9,
                        marker=_PAPER_MARKERS.get(ds, "o"), markersize=3.5, markerfacecolor="white")
                base = prow[prow["state"] == "baseline"]
                if not base.empty:
                    ax.axhline(float(base["value"].iloc[0]), color="#888888", linestyle=":", linewidth=1.0)
        ax.set_title(method, color="black", fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3)
        ax.set_ylim(lo, 1.05)
    for k in range(len(methods), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for r in range(nrows):
        axes[r][0].set_ylabel(f"{metric_label(metric)} to the\noriginal map")
    for k in range(len(methods)):
        ax = axes[k // ncols][k % ncols]
        last_in_column = k + ncols >= len(methods)
        ax.tick_params(labelbottom=last_in_column)
        if last_in_column:
            ax.set_xticks(range(len(order)), order, rotation=60, ha="right", fontsize=7.5)
            ax.set_xlabel("model state (randomized\nfrom the logits down)", fontsize=8)
    handles = [Line2D([], [], color="#555555", marker="o", markersize=3, linewidth=1.8),
               Line2D([], [], color="#555555", linestyle="--")]
    labels = [f"mean over images ({'band: ±1 SD over ' + str(n_rep) + ' replicates' if n_rep > 1 else '1 replicate'})",
              "random-pair baseline (pass = curve below it)"]
    if paper_rows is not None:
        for ds in sorted(paper_rows["dataset"].unique()):
            handles.append(Line2D([], [], color="black", linestyle=":", marker=_PAPER_MARKERS.get(ds, "o"),
                                  markerfacecolor="white", markersize=4))
            labels.append(f"Arun et al. 2021, {ds} {_source_tag(paper_rows[paper_rows['dataset'] == ds])}")
        handles.append(Line2D([], [], color="#888888", linestyle=":"))
        labels.append("Arun et al. random-pair baseline")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------
# repeatability / reproducibility

def similarity_strip(
    df: pd.DataFrame,
    *,
    metric: str = "ssim",
    baseline: float | Mapping[str, float] | None = None,
    paper: pd.DataFrame | None = None,
    threshold: float | None = None,
    title: str | None = None,
) -> Figure:
    """Per-image similarity of two maps of the same image, per method.

    Used for repeatability (two replicates of one architecture) and
    reproducibility (two architectures): a box over images plus every image as
    a dot, the mean as a white diamond.

    Parameters
    ----------
    df : DataFrame
        Results table with ``method, metric, value`` (one row per image and pair).
    metric : str, optional
        Default ``"ssim"``.
    baseline : float or mapping label -> float, optional
        Network baseline(s), e.g. the SSIM between two independently trained
        localizers; a float is labelled "network baseline".
    paper : DataFrame, optional
        :func:`helpers.reference.paper_repeatability` for ONE criterion: the
        paper's means as black markers, its network baselines as dotted lines.
    threshold : float, optional
        A pass threshold drawn as a thin grey line (e.g. 0.5).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. [1] Arun et al. (2021), figure 4.
    """
    import seaborn as sns

    d = _select_metric(df, metric, "similarity_strip")
    d = d[d["value"].notna()]
    if d.empty:
        raise PlotError(f"similarity_strip: every {metric!r} value is NaN")
    methods = method_order(d["method"].unique())
    palette = {m: method_color(m) for m in methods}
    fig, ax = plt.subplots(figsize=(max(6.5, 0.8 * len(methods) + 2.5), 4.6), layout="constrained")
    with warnings.catch_warnings():
        # seaborn 0.13 still passes matplotlib's deprecated ``vert`` argument (matplotlib >= 3.11)
        warnings.filterwarnings("ignore", message="vert: bool was deprecated", category=DeprecationWarning)
        sns.boxplot(data=d, x="method", y="value", hue="method", order=methods, hue_order=methods,
                    palette=palette, legend=False, showfliers=False, width=0.55, ax=ax,
                    boxprops=dict(alpha=0.55), medianprops=dict(color="black"))
    sns.stripplot(data=d, x="method", y="value", order=methods, color="black", size=2.5, alpha=0.45,
                  jitter=0.18, ax=ax)
    means = d.groupby("method")["value"].mean()
    ax.plot(range(len(methods)), [means[m] for m in methods], linestyle="none", marker="D", markersize=6,
            markerfacecolor="white", markeredgecolor="black", zorder=6)
    handles = [Line2D([], [], linestyle="none", marker="D", markerfacecolor="white", markeredgecolor="black"),
               Patch(facecolor="#BBBBBB", edgecolor="black"),
               Line2D([], [], linestyle="none", marker="o", color="black", alpha=0.45, markersize=3)]
    labels = ["mean over images", "quartiles and median", "one image"]
    for k, (label, value) in enumerate(_baseline_items(baseline, "similarity_strip")):
        style, color = _BASELINE_STYLES[k % len(_BASELINE_STYLES)]
        ax.axhline(value, linestyle=style, color=color, linewidth=1.3, zorder=0.5)
        handles.append(Line2D([], [], linestyle=style, color=color))
        labels.append(f"{label} ({value:.2f})")
    if threshold is not None:
        ax.axhline(float(threshold), color="#AAAAAA", linewidth=1.0, zorder=0.4)
        handles.append(Line2D([], [], color="#AAAAAA"))
        labels.append(f"pass threshold ({float(threshold):.2f})")
    if paper is not None:
        _require(paper, ["dataset", "method", "value"], "similarity_strip(paper=)")
        if "criterion" in paper.columns and paper["criterion"].nunique() > 1:
            raise PlotError("similarity_strip(paper=): pass one criterion, e.g. "
                            "paper_repeatability(criterion='repeatability')")
        for ds, rows in paper.groupby("dataset", sort=True):
            marker = _PAPER_MARKERS.get(ds, "o")
            xs = [i for i, m in enumerate(methods) if (rows["method"] == m).any()]
            if xs:
                ys = [float(rows.loc[rows["method"] == methods[i], "value"].iloc[0]) for i in xs]
                ax.plot(xs, ys, linestyle="none", marker=marker, color="black", markersize=5.5, zorder=7)
                handles.append(Line2D([], [], linestyle="none", marker=marker, color="black"))
                labels.append(f"Arun et al. 2021, {ds} mean {_source_tag(rows)}".strip())
            net = rows[rows["method"] == "Net"]
            if not net.empty:
                value = float(net["value"].iloc[0])
                ax.axhline(value, color="#888888", linestyle=":", linewidth=1.1, zorder=0.4)
                handles.append(Line2D([], [], color="#888888", linestyle=":"))
                labels.append(f"Arun et al. {ds} network pair ({value:.2f})")
    lo = min(0.0, float(d["value"].min()) - 0.05)
    ax.set_ylim(lo, 1.03)
    ax.set_xlabel("Saliency method")
    ax.set_ylabel(f"{metric_label(metric)} between the two maps of an image")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(handles, labels, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


# --------------------------------------------------------------------------
# map grid

def map_grid(
    images,
    maps: Mapping[str, object],
    *,
    masks=None,
    boxes: Sequence | None = None,
    titles: Sequence[str] | None = None,
    alpha: float = 0.55,
    cmap: str = "inferno",
) -> Figure:
    """Grid of saliency overlays: one row per image, one column per method.

    The first column shows the image with its ground truth (mask outline in
    cyan, boxes as cyan rectangles); every other column overlays a method's
    map (in [0, 1]) on the image with the same outline.

    Parameters
    ----------
    images : array (N, H, W)
        Images in [0, 1].
    maps : mapping method -> array (N, H, W)
        Saliency maps in [0, 1] of the same images (the book's post-processing).
    masks : array (N, H, W) of bool, optional
        Ground-truth regions.
    boxes : sequence of (k, 4) arrays, optional
        Ground-truth boxes ``x, y, width, height`` in pixels, per image.
    titles : sequence of str, optional
        Row labels (e.g. image ids); default ``image 0``, ``image 1``, ...
    alpha : float, optional
        Opacity of the map overlay.
    cmap : str, optional
        Colour map of the saliency.

    Returns
    -------
    matplotlib.figure.Figure
    """
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3:
        raise PlotError(f"map_grid: images must have shape (N, H, W), got {imgs.shape}")
    n, h, w = imgs.shape
    if not isinstance(maps, Mapping) or not maps:
        raise PlotError("map_grid: maps must be a non-empty mapping method -> (N, H, W) array")
    arrays = {}
    for name, m in maps.items():
        a = np.asarray(m, dtype=float)
        if a.ndim == 2:
            a = a[None]
        if a.shape != (n, h, w):
            raise PlotError(f"map_grid: maps[{name!r}] has shape {a.shape}, expected {(n, h, w)} like the images")
        arrays[str(name)] = a
    if masks is not None:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim == 2:
            masks = masks[None]
        if masks.shape != (n, h, w):
            raise PlotError(f"map_grid: masks has shape {masks.shape}, expected {(n, h, w)}")
    if boxes is not None and len(boxes) != n:
        raise PlotError(f"map_grid: boxes has {len(boxes)} entries, expected one per image ({n})")
    if titles is None:
        titles = [f"image {i}" for i in range(n)]
    elif len(titles) != n:
        raise PlotError(f"map_grid: titles has {len(titles)} entries, expected one per image ({n})")
    names = method_order(arrays)
    ncols = len(names) + 1
    cell = 1.55 if ncols <= 6 else 1.2
    fig, axes = plt.subplots(n, ncols, figsize=(cell * ncols + 0.9, cell * n + 0.6), squeeze=False,
                             layout="constrained")
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=1.0)
    mappable = None
    for i in range(n):
        for j in range(ncols):
            ax = axes[i][j]
            ax.imshow(imgs[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if j > 0:
                mappable = ax.imshow(arrays[names[j - 1]][i], cmap=cmap, norm=norm, alpha=alpha,
                                     interpolation="nearest")
            if masks is not None and masks[i].any():
                ax.contour(masks[i].astype(float), levels=[0.5], colors="cyan", linewidths=0.9)
            if boxes is not None:
                for x, y, bw, bh in np.asarray(boxes[i], dtype=float).reshape(-1, 4):
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), bw, bh, fill=False, edgecolor="cyan",
                                           linewidth=0.9))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("image + ground truth" if j == 0 else names[j - 1], fontsize=8.5,
                             fontweight="normal" if j == 0 else "bold")
            if j > 0:  # the method's colour frames its column
                for spine in ax.spines.values():
                    spine.set(edgecolor=method_color(names[j - 1]), linewidth=2.0)
            if j == 0:
                ax.set_ylabel(str(titles[i]), fontsize=8)
    cbar = fig.colorbar(mappable, ax=axes, shrink=min(1.0, 3.0 / n + 0.3), fraction=0.03, pad=0.01)
    cbar.set_label("saliency (normalized, 0-1)", fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    return fig


# --------------------------------------------------------------------------
# scorecard

_VERDICT_TEXT = {True: "pass", False: "fail", None: "n/a"}
#: Okabe-Ito blue (pass) / vermillion (fail), grey (not evaluated): distinguishable with red-green colour blindness.
VERDICT_COLORS = {True: "#0072B2", False: "#D55E00", None: "#BDBDBD"}


def example_grid(
    images,
    labels,
    *,
    masks=None,
    boxes: Sequence | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
) -> Figure:
    """A grid of radiographs with their label and ground truth (boxes and mask outline).

    Parameters
    ----------
    images : array (N, H, W)
        Images in [0, 1].
    labels : array (N,)
        1 = abnormal (positive), 0 = normal.
    masks : array (N, H, W) of bool, optional
        Exact ground-truth regions, outlined in cyan.
    boxes : sequence of (k, 4) arrays, optional
        Boxes ``x, y, width, height`` in pixels, drawn as red rectangles.
    titles : sequence of str, optional
        Per-image titles (default: the label).
    ncols : int, optional
        Images per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    images = np.asarray(images)
    if images.ndim != 3 or len(images) == 0:
        raise PlotError(f"example_grid: images must be a non-empty (N, H, W) array, got shape {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise PlotError(f"example_grid: labels must have shape ({len(images)},), got {labels.shape}")
    n = len(images)
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.45 * nrows), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="lanczos")
        if masks is not None and np.any(masks[i]):
            ax.contour(np.asarray(masks[i], dtype=float), levels=[0.5], colors="cyan", linewidths=0.8)
        if boxes is not None:
            for x, y, w, h in np.asarray(boxes[i], dtype=float).reshape(-1, 4):
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.0))
        default = "positive (opacity)" if int(labels[i]) == 1 else "negative"
        ax.set_title(titles[i] if titles is not None else default, fontsize=8)
    # The legend names only what was drawn (a box legend without boxes sent readers looking for them).
    drawn = []
    if boxes is not None and any(np.asarray(b).size for b in boxes):
        drawn.append((Line2D([], [], color="red", lw=1.2), "ground-truth box"))
    if masks is not None and np.any(masks):
        drawn.append((Line2D([], [], color="cyan", lw=1.2), "ground-truth mask outline"))
    if drawn:
        fig.legend([h for h, _ in drawn], [t for _, t in drawn], loc="outside lower center", ncol=len(drawn),
                   frameon=False, fontsize=8)
    return fig


def _verdict_value(v) -> bool | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("pass", "true", "fail", "false"):
        return v.lower() in ("pass", "true")
    raise PlotError(f"scorecard: a verdict must be True, False or None (not evaluated), got {v!r}")


def _verdict_grid(verdicts: pd.DataFrame, criteria, methods, what: str):
    _require(verdicts, ["method", "criterion", "passed"], what)
    v = verdicts.copy()
    v["method"] = v["method"].astype(str)
    v["criterion"] = v["criterion"].astype(str)
    dup = v.duplicated(["method", "criterion"])
    if dup.any():
        raise PlotError(f"{what}: several verdicts for {v.loc[dup, ['method', 'criterion']].values.tolist()}")
    criteria = list(dict.fromkeys(v["criterion"])) if criteria is None else list(criteria)
    methods = method_order(v["method"].unique()) if methods is None else list(methods)
    grid = {}
    detail = {}
    for rec in v.to_dict("records"):
        key = (rec["method"], rec["criterion"])
        grid[key] = _verdict_value(rec["passed"])
        extra = rec.get("detail", "")
        detail[key] = "" if extra is None or (isinstance(extra, float) and math.isnan(extra)) else str(extra)
    return criteria, methods, grid, detail


def _draw_verdict_grid(ax, criteria, methods, grid, detail, *, show_methods: bool = True) -> None:
    for r, method in enumerate(methods):
        for c, crit in enumerate(criteria):
            verdict = grid.get((method, crit))
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=VERDICT_COLORS[verdict], edgecolor="white",
                                   linewidth=2))
            text = _VERDICT_TEXT[verdict]
            extra = detail.get((method, crit), "")
            ax.text(c + 0.5, r + 0.5, f"{text}\n{extra}" if extra else text, ha="center", va="center",
                    fontsize=7.5 if extra else 9, color="white" if verdict is not None else "black",
                    fontweight="bold")
    ax.set_xlim(0, len(criteria))
    ax.set_ylim(len(methods), 0)
    ax.set_xticks([c + 0.5 for c in range(len(criteria))], criteria, rotation=20, ha="right")
    ax.set_yticks([r + 0.5 for r in range(len(methods))], methods if show_methods else [""] * len(methods))
    for tick in ax.get_yticklabels():
        tick.set_fontweight("bold")
    ax.set_xlabel("Trust criterion")
    if show_methods:
        ax.set_ylabel("Saliency method")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    passed = [sum(grid.get((m, c)) is True for c in criteria) for m in methods]
    for r, k in enumerate(passed):
        ax.text(len(criteria) + 0.08, r + 0.5, f"{k}/{len(criteria)}", va="center", fontsize=8.5)
    ax.text(len(criteria) + 0.08, -0.15, "passed", va="bottom", fontsize=8)


def scorecard_panels(
    verdicts: pd.DataFrame,
    *,
    panels: Sequence[tuple[str, str]],
    criteria: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Several verdict grids side by side, one per rule set (e.g. the book's and Arun et al.'s).

    Parameters
    ----------
    verdicts : DataFrame
        Columns ``method, criterion, passed, rules`` and optionally ``detail``.
    panels : sequence of (rules, panel title)
        Which ``rules`` value each panel shows, left to right.
    criteria, methods : sequence of str, optional
        Column and row order (the same in every panel).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require(verdicts, ["method", "criterion", "passed", "rules"], "scorecard_panels")
    if methods is None:
        methods = method_order(verdicts["method"].astype(str).unique())
    if criteria is None:
        criteria = list(dict.fromkeys(verdicts["criterion"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.45 * len(criteria) * len(panels) + 3.0,
                                                      0.45 * len(methods) + 2.0), layout="constrained",
                             squeeze=False)
    for k, (ax, (rules, panel_title)) in enumerate(zip(axes[0], panels)):
        part = verdicts[verdicts["rules"] == rules]
        if part.empty:
            raise PlotError(f"scorecard_panels: no verdicts with rules={rules!r}")
        crit, meth, grid, detail = _verdict_grid(part, criteria, methods, "scorecard_panels")
        _draw_verdict_grid(ax, crit, meth, grid, detail, show_methods=k == 0)
        ax.set_title(panel_title, fontsize=10)
    if title:
        fig.suptitle(title)
    handles = [Patch(facecolor=VERDICT_COLORS[v]) for v in (True, False, None)]
    fig.legend(handles, ["pass", "fail", "not evaluated / undecided"], loc="outside lower center", ncol=3,
               frameon=False, fontsize=8)
    return fig


def scorecard_heatmap(
    verdicts: pd.DataFrame,
    *,
    criteria: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """The verdicts as a method x criterion grid of blue (pass), vermillion (fail) and grey (not evaluated) cells.

    Parameters
    ----------
    verdicts : DataFrame
        Columns ``method, criterion, passed`` (True, False or None/NaN when
        the criterion was not evaluated); an optional ``detail`` column
        (short text, e.g. ``"0.31 vs 0.25"``) is written in the cell.
    criteria, methods : sequence of str, optional
        Column and row order (default: order of appearance, book's method order).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    criteria, methods, grid, detail = _verdict_grid(verdicts, criteria, methods, "scorecard_heatmap")
    fig, ax = plt.subplots(figsize=(1.7 * len(criteria) + 2.4, 0.45 * len(methods) + 1.6), layout="constrained")
    _draw_verdict_grid(ax, criteria, methods, grid, detail)
    if title:
        ax.set_title(title)
    handles = [Patch(facecolor=VERDICT_COLORS[v]) for v in (True, False, None)]
    fig.legend(handles, ["pass", "fail", "not evaluated"], loc="outside lower center", ncol=3, frameon=False,
               fontsize=8)
    return fig


def scorecard_table(
    verdicts: pd.DataFrame,
    *,
    criteria: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    caption: str | None = None,
):
    """The verdicts as a styled table (pandas Styler; renders as HTML in the book).

    Parameters
    ----------
    verdicts : DataFrame
        Columns ``method, criterion, passed`` and optionally ``detail``
        (see :func:`scorecard_heatmap`).
    criteria, methods : sequence of str, optional
        Column and row order.
    caption : str, optional

    Returns
    -------
    pandas.io.formats.style.Styler
        One row per method, one column per criterion (``pass``/``fail``/``n/a``
        with the detail), and a ``passed`` count column.
    """
    criteria, methods, grid, detail = _verdict_grid(verdicts, criteria, methods, "scorecard_table")
    text = pd.DataFrame(index=pd.Index(methods, name="method"), columns=list(criteria) + ["passed"], dtype=object)
    state = pd.DataFrame(index=text.index, columns=text.columns, dtype=object)
    for m in methods:
        for c in criteria:
            verdict = grid.get((m, c))
            extra = detail.get((m, c), "")
            text.loc[m, c] = _VERDICT_TEXT[verdict] + (f" ({extra})" if extra else "")
            state.loc[m, c] = verdict
        text.loc[m, "passed"] = f"{sum(grid.get((m, c)) is True for c in criteria)}/{len(criteria)}"
        state.loc[m, "passed"] = "count"

    def _css(_frame):
        out = pd.DataFrame("", index=state.index, columns=state.columns)
        for m in state.index:
            for c in state.columns:
                s = state.loc[m, c]
                if s == "count":
                    out.loc[m, c] = "font-weight: bold; text-align: center"
                else:
                    fg = "white" if s is not None else "black"
                    out.loc[m, c] = (f"background-color: {VERDICT_COLORS[s]}; color: {fg}; "
                                     "text-align: center; font-weight: bold")
        return out

    styler = text.style.apply(_css, axis=None)
    if caption:
        styler = styler.set_caption(caption)
    return styler
