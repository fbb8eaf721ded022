"""The conda environment carries exactly the pins that `make` installs."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_environment_yml_pins_match_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = [p for p in pip_section if not p.startswith("-e")]
    assert pins == _requirements()


def test_torch_pins_are_the_ones_on_disk():
    reqs = _requirements()
    assert "torch==2.14.1" in reqs and "torchvision==0.29.1" in reqs


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme and "make book" in readme
