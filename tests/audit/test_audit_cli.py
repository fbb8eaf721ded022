"""``python -m helpers.audit`` end to end on the smoke preset: a model trained by the book, saved as a state dict and
as TorchScript, audited on another synthetic folder (another seed, positives only); bad input exits 2 naming the fix."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.audit import main, parse_audit_params
from helpers.config import ConfigError
from helpers.data import load_rsna, synth
from helpers.models import build, fit

SIZE = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smallcnn trained one epoch on one synthetic folder; the eval folder holds only positives of another seed."""
    root = tmp_path_factory.mktemp("audit")
    synth(root / "train", n=40, size=64, seed=1, progress=False)
    synth(root / "eval", n=8, size=64, seed=5, positive_fraction=1.0, progress=False)
    data = load_rsna(root / "train", image_size=SIZE)
    model = build("smallcnn", seed=0)
    fit(model, data.subset(range(30)), data.subset(range(30, 40)), epochs=1, batch_size=16, learning_rate=1e-3,
        patience=1, seed=0, progress=False)
    model.eval()
    torch.save(model.state_dict(), root / "weights.pt")
    torch.jit.trace(model, torch.rand(1, 1, SIZE, SIZE), check_trace=False).save(str(root / "model.ts"))
    return root


def _args(root: Path, *models: str, out: str = "out", extra=()) -> list[str]:
    args = []
    for m in models:
        args += ["--model", m]
    params = [f"image_size={SIZE}", "eval_dataset=rsna", f"eval_data_dir={root / 'eval'}", "methods=[GRAD,GBP,GCAM]",
              "n_bootstrap=200", *extra]
    for p in params:
        args += ["--param", p]
    return [*args, "--preset", "smoke", "--out", str(root / out), "--quiet"]


def test_audit_writes_scores_verdicts_and_report(trained, capsys):
    status = main(_args(trained, f"smallcnn={trained / 'weights.pt'}", str(trained / "model.ts")))
    assert status == 0, capsys.readouterr().err
    out = trained / "out"
    verdicts = pd.read_csv(out / "audit.verdicts.csv")
    assert set(verdicts.rules) == {"book", "paper"}
    assert set(verdicts.criterion) == {"localization", "randomization", "reproducibility"}
    assert verdicts.run.nunique() == 1 and verdicts.notebook.eq("audit").all()
    # the TorchScript copy cannot be guided nor hooked: those methods are named as not computed, not faked
    assert set(verdicts[verdicts.criterion == "reproducibility"].method) == {"GRAD"}
    scores = pd.read_csv(out / "scores_localization.csv")
    assert {"trained", "untrained", "baseline"} <= set(scores.state)
    report = (out / "report.md").read_text()
    assert "leave-one-out" in report or "not explained" in report
    assert "GBP not computed" in report and "repeatability: not judged" in report
    assert "no localization network" in report


def test_bad_input_exits_2_naming_the_parameter_and_the_fix(trained, capsys):
    cases = [
        (_args(trained, str(trained / "missing.ts")), "does not exist"),
        (_args(trained, f"smallcnn={trained / 'weights.pt'}", extra=["model_channels=3"]), "model_channels=1"),
        (_args(trained, str(trained / "model.ts"), extra=["model_class_index=5"]), "model_class_index"),
        (_args(trained, str(trained / "weights.pt")), "ARCH=WEIGHTS"),
        (_args(trained, str(trained / "model.ts"), extra=["n_imagez=3"]), "unknown parameter 'n_imagez'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_eval_data_options_are_the_settings(trained, capsys):
    argv = ["--model", f"smallcnn={trained / 'weights.pt'}", "--eval-data", str(trained / "eval"), "--eval-dataset",
            "rsna", "--param", f"eval_data_dir={trained / 'eval'}", "--out", str(trained / "o2"), "--quiet"]
    assert main(argv) == 2
    assert "--eval-data and --param eval_data_dir are both given" in capsys.readouterr().err
    assert main(["--model", f"smallcnn={trained / 'weights.pt'}", "--eval-data", str(trained / "eval"), "--out",
                 str(trained / "o2"), "--quiet"]) == 2
    assert "boxes.csv" in capsys.readouterr().err  # the default layout is folder: an RSNA folder has no boxes.csv


def test_parse_audit_params_reads_yaml_and_refuses_model_and_preset():
    assert parse_audit_params(["methods=[GRAD,GCAM]", "model_input_size=224"]) == {
        "methods": ["GRAD", "GCAM"], "model_input_size": 224}
    for item in ("model=x.ts", "preset=smoke", "image_size"):
        with pytest.raises(ConfigError):
            parse_audit_params([item])


def test_the_module_runs_as_a_command(monkeypatch, capsys):
    # What `python -m helpers.audit --help` runs, in this process: a fresh interpreter would spend 10-25 s on
    # importing torch and torchvision again to print the same text.
    monkeypatch.setattr(sys, "argv", ["python -m helpers.audit", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("helpers.audit", run_name="__main__", alter_sys=True)
    assert done.value.code == 0 and "--model" in capsys.readouterr().out


def test_the_report_shows_the_scorecard_of_each_rule_set(trained):
    out = trained / "out"
    if not (out / "report.md").exists():
        assert main(_args(trained, f"smallcnn={trained / 'weights.pt'}")) == 0
    report = (out / "report.md").read_text()
    for rules in ("book", "paper"):
        assert (out / "figures" / f"scorecard_{rules}.png").stat().st_size > 0
        assert f"figures/scorecard_{rules}.png" in report
