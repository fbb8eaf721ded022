"""Tidy results tables round-trip and fail loudly when missing or malformed."""

import math

import pandas as pd
import pytest

from helpers.results import COLUMNS, ResultTable, ResultsError, read_results, summarize


def test_round_trip_keeps_every_column_and_nan(tmp_path):
    t = ResultTable("01_localization_utility", tmp_path)
    t.add(method="GRAD", architecture="resnet18", replicate=0, state="trained",
          image_id="0007", metric="average_precision", value=0.25)
    t.add(method="GCAM", metric="average_precision", value=float("nan"), image_id="0008")
    t.save()
    df = read_results(tmp_path)
    assert list(df.columns) == list(COLUMNS)
    assert df.loc[0, "image_id"] == "0007"  # ids stay strings (leading zeros kept)
    assert df.loc[0, "value"] == 0.25
    assert math.isnan(df.loc[1, "value"])


def test_extend_fills_constant_columns(tmp_path):
    t = ResultTable("03_repeatability", tmp_path)
    t.extend(pd.DataFrame({"image_id": ["a", "b"], "metric": "ssim", "value": [0.5, 0.7]}),
             method="IG", architecture="resnet18")
    df = t.frame()
    assert set(df["method"]) == {"IG"} and df["notebook"].eq("03_repeatability").all()
    with pytest.raises(ResultsError, match="needs columns"):
        t.extend(pd.DataFrame({"x": [1]}))
    with pytest.raises(ResultsError, match="unknown results columns"):
        t.extend(pd.DataFrame({"metric": ["m"], "value": [1.0]}), colour="red")


def test_missing_tables_are_named_in_one_line_with_the_command_to_run(tmp_path):
    with pytest.raises(ResultsError, match=r"results of 02_randomization_sensitivity are missing in .*: execute "
                                           r"that notebook first with the same results_dir"):
        read_results(tmp_path, ["02_randomization_sensitivity"])
    table = ResultTable("01_localization_utility", tmp_path)
    table.extend(pd.DataFrame({"metric": ["m"], "value": [1.0]}))
    table.save()
    with pytest.raises(ResultsError) as info:
        read_results(tmp_path, ["00_data_and_models", "01_localization_utility", "03_repeatability"])
    message = str(info.value)
    assert "\n" not in message
    assert "results of 00_data_and_models, 03_repeatability are missing" in message
    assert "python -m helpers.book execute --only 00_data_and_models 03_repeatability;" in message


def test_malformed_table_lists_expected_header(tmp_path):
    (tmp_path / "04_reproducibility.csv").write_text("method,value\nGRAD,0.1\n")
    with pytest.raises(ResultsError, match="lacks columns"):
        read_results(tmp_path)


def test_summarize_ignores_nan():
    df = pd.DataFrame({"method": ["A", "A", "A"], "value": [1.0, 3.0, float("nan")]})
    s = summarize(df, ["method"])
    assert s.loc[0, "mean"] == 2.0 and s.loc[0, "n"] == 2
