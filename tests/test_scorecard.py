"""The scorecard reads verdicts tables of one run: both rule sets, Holm over the family, mixed runs refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import criteria, metrics, scorecard
from helpers.results import MixedRunsError, ResultsError, ResultTable, read_results


def _verdicts():
    rng = np.random.default_rng(0)
    prior = rng.uniform(0.1, 0.2, size=20)
    entries = []
    for method, shift in (("GRAD", 0.2), ("IG", 0.05), ("GCAM", -0.1)):
        vals = prior + shift + rng.normal(0, 0.02, size=20)
        entries.append((method, "smallcnn", metrics.verdict_localization(vals, prior, n_bootstrap=200)))
        entries.append((method, "smallcnn", metrics.paper_localization(vals, np.full(20, 0.25), prior)))
    return criteria.apply_holm(criteria.verdict_frame(entries))


def test_write_and_read_back_one_run(tmp_path):
    v = _verdicts()
    criteria.write_verdicts(v, notebook="01_localization_utility", results_dir=tmp_path, run="abc")
    back = criteria.read_verdicts(tmp_path, ["01_localization_utility"], run="abc")
    assert list(back.columns) == list(criteria.VERDICT_COLUMNS)
    assert back.set_index(["method", "rules"]).loc[("GRAD", "book"), "passed"] is True
    assert back.set_index(["method", "rules"]).loc[("GCAM", "book"), "passed"] is False
    assert set(back.rules) == {"book", "paper"}


def test_mixed_runs_are_refused_with_the_chapters_named(tmp_path):
    v = _verdicts()
    criteria.write_verdicts(v, notebook="01_localization_utility", results_dir=tmp_path, run="run-a")
    criteria.write_verdicts(v, notebook="03_repeatability", results_dir=tmp_path, run="run-b")
    with pytest.raises(MixedRunsError, match=r"run-a: 01_localization_utility; run run-b: 03_repeatability"):
        criteria.read_verdicts(tmp_path, ["01_localization_utility", "03_repeatability"])
    with pytest.raises(MixedRunsError, match="python -m helpers.book execute --only"):
        criteria.read_verdicts(tmp_path, ["01_localization_utility"], run="run-b")
    with pytest.raises(ResultsError, match="verdicts of 04_reproducibility are missing"):
        criteria.read_verdicts(tmp_path, ["04_reproducibility"])


def test_results_tables_carry_the_run_and_refuse_another(tmp_path):
    t = ResultTable("00_data_and_models", tmp_path, run={"run": "r1", "preset": "smoke"})
    t.add(metric="test_auc", value=0.9)
    t.save()
    assert len(read_results(tmp_path, ["00_data_and_models"], run="r1")) == 1
    with pytest.raises(MixedRunsError, match="written by run r1, not by this run r2"):
        read_results(tmp_path, ["00_data_and_models"], run="r2")


def test_holm_adjusts_only_the_books_rows_within_a_criterion():
    v = _verdicts()
    book = v[v.rules == "book"]
    assert np.allclose(book.p_holm, metrics.holm(book.p_value.to_numpy()))
    assert v[v.rules == "paper"].p_holm.isna().all()
    # a p-value just under alpha alone passes unadjusted; among three such tests Holm rejects none
    entries = [(m, "", metrics.Verdict("randomization", True, "r", {"p_value": 0.02, "alpha": 0.025, "n": 10},
                                       statistic="p_value")) for m in ("A", "B", "C")]
    adjusted = criteria.apply_holm(criteria.verdict_frame(entries))
    assert list(adjusted.passed_unadjusted) == [True] * 3 and list(adjusted.passed) == [False] * 3


def test_table_panels_disagreements_and_counts():
    v = _verdicts()
    html = scorecard.table(v, method_order=["GCAM", "GRAD", "IG"]).to_html()
    assert "#0072B2" in html and "#D55E00" in html  # Okabe-Ito, not red/green
    assert html.index("GCAM") < html.index("GRAD")
    lines = scorecard.disagreements(v)
    # IG beats the prior (book: pass) but not the 0.25 network (paper: fail)
    assert any(line.startswith("**IG, localization utility**") and "book's rule says pass" in line
               for line in lines)
    counts = scorecard.counts_beside_paper(v, criteria.paper_reference_verdicts())
    assert counts.loc["Localization utility", "paper's numbers, RSNA"] == "8 / 8"
    assert counts.loc["Weight randomization", "paper's numbers, RSNA"] == "2 / 8"
    from helpers import plots

    fig = plots.scorecard_panels(v, panels=[("book", "book"), ("paper", "paper")])
    assert len(fig.axes) == 2


def test_reveals_a_shortcut_column_is_shown_and_never_a_rule_set_disagreement():
    from helpers.criteria import shortcut

    rng = np.random.default_rng(1)
    honest = rng.uniform(0.0, 0.05, 12)
    rows = []
    for method, lift in (("GRAD", 0.3), ("GCAM", 0.0)):
        for model, shares in (("c = 1", honest + lift + rng.normal(0, 0.01, 12)), ("c = 0", honest)):
            rows += [dict(model=model, method=method, image_id=f"im{i}", metric="marker_mass_share", value=v)
                     for i, v in enumerate(shares)]
    reveal = shortcut.judge(pd.DataFrame(rows), methods=["GRAD", "GCAM"], shortcut_model="c = 1", honest_model="c = 0",
                            architecture="smallcnn", n_bootstrap=300)
    v = scorecard.adjust(pd.concat([_verdicts(), reveal], ignore_index=True))
    book = scorecard.table(v, rules="book").data
    assert "Reveals a shortcut" in book.columns
    assert book.loc["GRAD", "Reveals a shortcut"].startswith("PASS")
    assert book.loc["GCAM", "Reveals a shortcut"].startswith("FAIL")
    assert book.loc["IG", "Reveals a shortcut"] == "–"  # not judged by the shortcut chapter
    assert not any("shortcut" in line for line in scorecard.disagreements(v))  # the paper has no such rule
    counts = scorecard.counts_beside_paper(v, criteria.paper_reference_verdicts())
    assert counts.loc["Reveals a shortcut", "paper's numbers, RSNA"] == "not reported"
