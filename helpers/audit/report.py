"""What an audit writes: tidy scores tables, the verdicts table (both rule sets) and a one-page Markdown report."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers import criteria, plots
from helpers._cache import atomic_write

__all__ = ["write_audit", "report_markdown", "REPORT_NAME"]

REPORT_NAME = "report.md"


def _verdict_word(passed) -> str:
    return "undecided" if passed is None or (isinstance(passed, float) and np.isnan(passed)) else (
        "PASS" if bool(passed) else "FAIL")


def _number(row) -> str:
    if not np.isfinite(row["value"]):
        return "–"
    ci = f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]" if np.isfinite(row["ci_low"]) else ""
    return f"{row['value']:+.3f}{ci}"


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return header + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in frame.itertuples(index=False))


def report_markdown(result, *, files: list[str]) -> str:
    """The audit's one-page report (Markdown).

    Parameters
    ----------
    result : helpers.audit.AuditResult
    files : list of str
        The files written beside it (named at the end).
    """
    s = result.settings
    lines = ["# Saliency audit", "",
             f"Run `{result.run['run']}` (preset `{s.preset}`, {s.image_size} px, seed {s.seed}, "
             f"{s.n_bootstrap} bootstrap resamples). The book's rules judge per-image differences with 95 % CIs, "
             "Holm-adjusted over the methods of each criterion; the paper's rules are Arun et al.'s (2021) as "
             "published.", "", "## Models", ""]
    for i, m in enumerate(result.models):
        lines.append(f"{i + 1}. `{m.spec}`: architecture `{m.architecture}`; GradCAM layer "
                     f"`{m.gradcam_layer or 'none found'}`; {len(m.blocks)} randomization blocks top-down "
                     f"({', '.join(m.blocks)})")
        if m.relu_note:
            lines.append(f"   - guided backpropagation: {m.relu_note}")
        for method, reason in m.refused.items():
            lines.append(f"   - {method} not computed: {reason}")
    lines += ["", f"Contract: {s.model_channels} channel(s), normalization {s.model_normalization}, input "
              f"{s.model_input_size or s.image_size} px, class {s.model_class_index} explained.", "", "## Data", ""]
    lines += [f"- {note}" for note in result.data.notes]
    lines += ["", "## Verdicts", "", "![The book's rules](figures/scorecard_book.png)",
              "![The paper's rules](figures/scorecard_paper.png)", ""]
    v = result.verdicts
    view = pd.DataFrame({
        "criterion": v["criterion"].str.replace("_", " "), "method": v["method"], "rules": v["rules"],
        "verdict": v["passed"].map(_verdict_word), "statistic": v["statistic"],
        "value [95% CI]": v.apply(_number, axis=1),
        "p Holm": v["p_holm"].map(lambda p: f"{p:.3f}" if np.isfinite(p) else "–"),
    })
    lines.append(_table(view))
    for criterion, reason in result.skipped.items():
        lines.append(f"- {criterion}: not judged, {reason}.")
    counts = criteria.verdict_counts(v)
    lines += ["", "## Counts", "", _table(counts), "", "## Files", ""] + [f"- `{f}`" for f in files]
    return "\n".join(lines) + "\n"


def _figures(result, out: Path) -> dict[str, Path]:
    """One scorecard heatmap per rule set (:func:`helpers.plots.scorecard_heatmap`) under ``out/figures``."""
    paths = {}
    for rules in ("book", "paper"):
        part = result.verdicts[result.verdicts.rules == rules]
        if part.empty:
            continue
        fig = plots.scorecard_heatmap(part[["method", "criterion", "passed"]].assign(
            criterion=part["criterion"].str.replace("_", " ")), title=f"Audit: {rules}'s rules")
        path = plots.save_figure(fig, f"scorecard_{rules}", results_dir=out)
        plt.close(fig)
        paths[f"figures/{path.name}"] = path
    return paths


def write_audit(result, out: str | Path) -> dict[str, Path]:
    """Write an audit's tables and report under ``out`` (created).

    Files: ``scores_<criterion>.csv`` (tidy per-image measurements),
    ``summary.csv`` (means with bootstrap CIs), ``audit.verdicts.csv``
    (:func:`helpers.criteria.write_verdicts`: both rule sets, the run
    fingerprint in every row), ``audit.json`` (settings, models, run),
    ``figures/scorecard_{book,paper}.png`` and :data:`REPORT_NAME`.

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    opts = dict(n_bootstrap=result.settings.n_bootstrap, seed=result.settings.seed)
    summaries = []
    for criterion, frame in result.scores.items():
        path = out / f"scores_{criterion}.csv"
        atomic_write(path, lambda tmp, f=frame: f.to_csv(tmp, index=False))
        paths[path.name] = path
        by = [c for c in ("method", "state", "metric") if c in frame.columns]
        summaries.append(criteria.summarize(frame, by, **opts).assign(criterion=criterion))
    path = out / "summary.csv"
    summary = pd.concat(summaries, ignore_index=True)
    atomic_write(path, lambda tmp: summary.to_csv(tmp, index=False))
    paths[path.name] = path
    path = criteria.write_verdicts(result.verdicts, notebook="audit", results_dir=out, run=result.run["run"])
    paths[path.name] = path
    meta = dict(run=result.run, settings=result.settings.as_dict(), methods=list(result.methods),
                models=[dict(spec=m.spec, architecture=m.architecture, blocks=list(m.blocks),
                             gradcam_layer=m.gradcam_layer, relu_note=m.relu_note, refused=m.refused)
                        for m in result.models],
                data=result.data.notes, skipped=result.skipped)
    path = out / "audit.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, default=str)))
    paths[path.name] = path
    paths.update(_figures(result, out))
    path = out / REPORT_NAME
    text = report_markdown(result, files=sorted(paths))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    paths[path.name] = path
    return paths
