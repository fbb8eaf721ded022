"""Reference numbers of Arun et al. (2021): typed as read, tagged with their source, and coherent
with the claims the paper makes in words (a typo in a table breaks one of these checks)."""

import math

import pytest

from helpers.config import PAPER_METHODS
from helpers.reference import (
    PAPER_RANDOMIZATION_FAILURES,
    SOURCES,
    PaperReferenceError,
    paper_randomization,
    paper_repeatability,
    paper_utility,
)


def _value(df, **where):
    rows = df
    for k, v in where.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, f"{where} matches {len(rows)} rows"
    return float(rows["value"].iloc[0])


@pytest.mark.parametrize("table", [paper_utility, paper_randomization, paper_repeatability])
def test_every_row_has_a_known_source_and_a_value_in_range(table):
    df = table()
    assert set(df["source"]) <= set(SOURCES)
    assert df["value"].between(0.0, 1.0).all()
    assert set(df["dataset"]) == {"SIIM", "RSNA"}


def test_utility_table_layout_and_spot_values():
    df = paper_utility()
    fig = df[df["source"] == "[F]"]
    # 2 datasets x 8 methods x 2 states x (mean, median) + Avg and Net (mean, median) per dataset
    assert len(fig) == 2 * (8 * 2 * 2 + 2 * 2)
    assert set(fig["method"]) == set(PAPER_METHODS) | {"Avg", "Net"}
    assert _value(fig, dataset="RSNA", method="XRAI", state="trained", statistic="mean") == 0.519
    assert _value(fig, dataset="SIIM", method="SIG", state="untrained", statistic="median") == 0.018
    text = df[df["source"] == "[P]"]
    assert _value(text, dataset="SIIM", method="Net") == 0.404
    assert _value(text, dataset="RSNA", method="Net") == 0.596


def test_utility_readings_agree_with_the_abstract():
    df = paper_utility()
    for ds in ("SIIM", "RSNA"):
        trained = df[(df["dataset"] == ds) & (df["state"] == "trained") & (df["statistic"] == "mean")
                     & (df["source"] == "[F]")].set_index("method")["value"]
        text = df[(df["dataset"] == ds) & (df["source"] == "[P]")].set_index("method")["value"]
        # the abstract's range of the eight methods = lowest and highest figure means (±0.01)
        assert math.isclose(trained.min(), text["SIG"], abs_tol=0.011)
        assert math.isclose(trained.max(), text["XRAI"], abs_tol=0.011)
        assert trained.idxmax() == "XRAI"  # claim: XRAI localizes best on both datasets
        net = _value(df, dataset=ds, method="Net", statistic="mean", source="[F]")
        assert net > trained.max()  # claim: the localization network beats every map
    # claim: on RSNA the average-mask prior beats every map but XRAI
    rsna = df[(df["dataset"] == "RSNA") & (df["state"] == "trained") & (df["statistic"] == "mean")
              & (df["source"] == "[F]")].set_index("method")["value"]
    avg = _value(df, dataset="RSNA", method="Avg", statistic="mean")
    assert [m for m in PAPER_METHODS if rsna[m] > avg] == ["XRAI"]


def test_randomization_layout_and_failure_counts():
    df = paper_randomization()
    assert len(df) == 2 * 8 * 5
    assert _value(df, dataset="RSNA", method="GBP", state="Logits") == 0.99
    assert _value(df, dataset="SIIM", method="SIG", state="baseline") == 0.50
    assert df.loc[df["state"] == "1", "fraction_randomized"].eq(1.0).all()
    for ds, n_fail in PAPER_RANDOMIZATION_FAILURES.items():
        final = df[(df["dataset"] == ds) & (df["state"] == "1")].set_index("method")["value"]
        base = df[(df["dataset"] == ds) & (df["state"] == "baseline")].set_index("method")["value"]
        margin = final - base
        clear = int((margin > 0.011).sum())  # stays above its baseline beyond the reading precision
        marginal = int((margin.abs() <= 0.011).sum())
        assert clear <= n_fail <= clear + marginal, (ds, margin.round(3).to_dict())
    rsna = df[df["dataset"] == "RSNA"]
    final = rsna[rsna["state"] == "1"].set_index("method")["value"]
    base = rsna[rsna["state"] == "baseline"].set_index("method")["value"]
    assert sorted(final.index[final > base]) == ["IG", "XRAI"]  # the paper's two RSNA failures


def test_repeatability_exceeds_reproducibility_except_sg_sig_on_siim():
    rep = paper_repeatability(criterion="repeatability").set_index(["dataset", "method"])["value"]
    rop = paper_repeatability(criterion="reproducibility").set_index(["dataset", "method"])["value"]
    for ds in ("SIIM", "RSNA"):
        for m in PAPER_METHODS:
            if ds == "SIIM" and m in ("SG", "SIG"):
                assert rep[(ds, m)] < rop[(ds, m)]
            else:
                assert rep[(ds, m)] > rop[(ds, m)], (ds, m)
    assert rep[("SIIM", "Net")] == 0.975 and rop[("RSNA", "Net")] == 0.80
    assert rep[("RSNA", "XRAI")] == 0.84  # the one map above its network baseline (0.80)


def test_filters_and_bad_names():
    assert set(paper_utility(dataset="SIIM")["dataset"]) == {"SIIM"}
    assert set(paper_repeatability(dataset="RSNA", criterion="reproducibility")["criterion"]) == {"reproducibility"}
    with pytest.raises(PaperReferenceError, match="valid: SIIM, RSNA"):
        paper_randomization(dataset="NIH")
    with pytest.raises(PaperReferenceError, match="unknown criterion"):
        paper_repeatability(criterion="stability")
