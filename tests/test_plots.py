"""Figure functions: each returns a labelled Figure from a small tidy table, refuses tables it
cannot draw, and save_figure writes atomically."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.config import PAPER_METHODS  # noqa: E402
from helpers.reference import paper_randomization, paper_repeatability, paper_utility  # noqa: E402

METHODS = ["GRAD", "GCAM", "XRAI", "CF"]
STATES = ["Original", "Logits", "block4", "block1"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _tidy(metric, states, *, replicates=("0",), n_images=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for m in METHODS:
        for r in replicates:
            for s in states:
                for i in range(n_images):
                    rows.append(dict(notebook="nb", method=m, architecture="smallcnn", replicate=r, state=s,
                                     image_id=f"img{i}", metric=metric, value=float(rng.uniform(0.05, 0.95))))
    return pd.DataFrame(rows, columns=["notebook", "method", "architecture", "replicate", "state",
                                       "image_id", "metric", "value"])


def _labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def _legend_texts(fig):
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for ax in fig.axes:
        if ax.get_legend() is not None:
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    return texts


def test_palette_covers_the_paper_methods_with_distinct_stable_colours():
    assert list(plots.METHOD_ORDER[:8]) == list(PAPER_METHODS)
    assert all(m in plots.METHOD_COLORS for m in PAPER_METHODS)
    colours = [plots.METHOD_COLORS[m] for m in plots.METHOD_ORDER]
    assert len(set(colours)) == len(colours)
    # an unregistered method gets the same colour every time, from the reserved list
    assert plots.method_color("NEWMETHOD") == plots.method_color("NEWMETHOD")
    assert plots.method_color("NEWMETHOD") not in colours
    assert plots.method_order(["ZZZ", "XRAI", "GRAD", "AAA"]) == ["GRAD", "XRAI", "AAA", "ZZZ"]


def test_utility_boxplot_with_paper_and_baselines():
    df = pd.concat([_tidy("average_precision", ["trained", "untrained"]), _tidy("ssim", ["trained"])])
    fig = plots.utility_boxplot(df, paper=paper_utility(dataset="RSNA"),
                                baselines={"average-mask prior": 0.2, "supervised localizer": 0.6})
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert _labelled(ax) and "Average precision" in ax.get_ylabel()
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == METHODS
    legend = " | ".join(_legend_texts(fig))
    for text in ("trained model", "untrained model", "average-mask prior (0.20)", "supervised localizer (0.60)",
                 "Arun et al. 2021, RSNA mean"):
        assert text in legend
    # 4 methods x 2 states boxes
    assert sum(1 for p in ax.patches if p.__class__.__name__ == "PathPatch") == 8


def test_utility_boxplot_refuses_missing_metric_and_columns():
    df = _tidy("ssim", ["trained"])
    with pytest.raises(plots.PlotError, match=r"no rows with metric='average_precision'.*\['ssim'\]"):
        plots.utility_boxplot(df)
    with pytest.raises(plots.PlotError, match="lacks columns"):
        plots.utility_boxplot(df.drop(columns=["state"]).assign(metric="average_precision"))


def test_randomization_curves_one_panel_per_method_in_cascade_order():
    df = _tidy("ssim", STATES, replicates=("0", "1", "2"))
    baselines = {m: 0.3 for m in METHODS}
    fig = plots.randomization_curves(df, baselines=baselines, paper=paper_randomization(dataset="SIIM"), ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == METHODS
    assert all(ax.get_ylabel() for ax in visible[::2])
    bottom = visible[-1]
    assert bottom.get_xlabel() and [t.get_text() for t in bottom.get_xticklabels()] == STATES
    # the paper's last state ("1": everything randomized) is drawn on our last state
    xs = [x for line in visible[0].get_lines() if line.get_linestyle() == ":" for x in line.get_xdata()]
    assert max(xs) == pytest.approx(len(STATES) - 1)
    assert any("±1 SD over 3 replicates" in t for t in _legend_texts(fig))


def test_randomization_curves_needs_every_baseline_and_known_states():
    df = _tidy("ssim", STATES)
    with pytest.raises(plots.PlotError, match=r"no random-pair baseline for \['CF'\]"):
        plots.randomization_curves(df, baselines={m: 0.3 for m in METHODS[:-1]})
    with pytest.raises(plots.PlotError, match="not in states"):
        plots.randomization_curves(df, baselines={m: 0.3 for m in METHODS}, states=STATES[:2])


def test_similarity_strip_with_network_baseline_and_paper():
    df = _tidy("ssim", ["block1"], n_images=6)
    fig = plots.similarity_strip(df, baseline={"two U-Nets": 0.9}, threshold=0.5,
                                 paper=paper_repeatability(criterion="repeatability"))
    ax = fig.axes[0]
    assert _labelled(ax) and "SSIM" in ax.get_ylabel()
    legend = " | ".join(_legend_texts(fig))
    assert "two U-Nets (0.90)" in legend and "pass threshold (0.50)" in legend
    assert "Arun et al. RSNA network pair (0.80)" in legend
    with pytest.raises(plots.PlotError, match="pass one criterion"):
        plots.similarity_strip(df, paper=paper_repeatability())


def test_map_grid_rows_images_columns_methods():
    rng = np.random.default_rng(1)
    images = rng.random((2, 32, 32))
    maps = {"XRAI": rng.random((2, 32, 32)), "GRAD": rng.random((2, 32, 32))}
    masks = np.zeros((2, 32, 32), bool)
    masks[:, 8:16, 8:20] = True
    fig = plots.map_grid(images, maps, masks=masks, boxes=[np.array([[8, 8, 12, 8]]), np.zeros((0, 4))],
                         titles=["patient A", "patient B"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 2 * 3
    assert [ax.get_title() for ax in image_axes[:3]] == ["image + ground truth", "GRAD", "XRAI"]
    assert [image_axes[0].get_ylabel(), image_axes[3].get_ylabel()] == ["patient A", "patient B"]
    colorbar = [ax for ax in fig.axes if not ax.images]
    assert colorbar and "saliency" in colorbar[0].get_ylabel()
    with pytest.raises(plots.PlotError, match=r"maps\['GRAD'\] has shape \(1, 32, 32\)"):
        plots.map_grid(images, {"GRAD": rng.random((1, 32, 32))})


def _verdicts():
    return pd.DataFrame([
        dict(method="GRAD", criterion="localization", passed=True, detail="0.31 vs 0.25"),
        dict(method="GRAD", criterion="randomization", passed=False),
        dict(method="XRAI", criterion="localization", passed=True),
        dict(method="XRAI", criterion="randomization", passed=None),
    ])


def test_scorecard_heatmap_and_table():
    fig = plots.scorecard_heatmap(_verdicts())
    ax = fig.axes[0]
    assert _labelled(ax)
    texts = [t.get_text() for t in ax.texts]
    assert "pass\n0.31 vs 0.25" in texts and "fail" in texts and "n/a" in texts and "1/2" in texts
    html = plots.scorecard_table(_verdicts(), caption="Verdicts").to_html()
    assert "pass (0.31 vs 0.25)" in html and "Verdicts" in html
    assert plots.VERDICT_COLORS[True].lower() in html.lower() and plots.VERDICT_COLORS[False].lower() in html.lower()
    bad = _verdicts().assign(passed=["yes", True, True, True])
    with pytest.raises(plots.PlotError, match="must be True, False or None"):
        plots.scorecard_heatmap(bad)


def test_save_figure_writes_a_png_atomically(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = plots.save_figure(fig, "01_demo", results_dir=tmp_path)
    assert path == tmp_path / "figures" / "01_demo.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100
    assert [p.name for p in path.parent.iterdir()] == ["01_demo.png"]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    fig.savefig = broken
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(fig, "02_broken.png", results_dir=tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["01_demo.png"]  # no half file, no temp file
    with pytest.raises(plots.PlotError, match="plain file name"):
        plots.save_figure(plt.figure(), "../escape", results_dir=tmp_path)


def test_example_grid_draws_one_panel_per_image_and_checks_shapes():
    from helpers.plots import PlotError, example_grid

    images = np.random.default_rng(0).random((5, 24, 24))
    masks = np.zeros((5, 24, 24), bool)
    masks[0, 4:10, 4:10] = True
    boxes = [np.array([[4, 4, 6, 6]])] + [np.zeros((0, 4))] * 4
    fig = example_grid(images, np.array([1, 0, 0, 0, 0]), masks=masks, boxes=boxes, ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5
    assert len(drawn[0].patches) == 1 and len(drawn[1].patches) == 0
    with pytest.raises(PlotError, match="labels must have shape"):
        example_grid(images, np.array([1, 0]))
