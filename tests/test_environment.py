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


# Import names whose distribution is spelled differently on PyPI.
_DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "skimage": "scikit-image", "sklearn": "scikit-learn",
                  "IPython": "ipython"}


def _imported_top_level_names():
    import ast
    import json
    import sys

    sources = [p.read_text() for p in (ROOT / "helpers").rglob("*.py")]
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                # IPython magics (%pip ...) are not Python: leave those lines out
                sources.append("\n".join(line for line in "".join(cell["source"]).splitlines()
                                         if not line.lstrip().startswith(("%", "!"))))
    names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("helpers", "__future__")}


def test_every_imported_package_is_declared_in_pyproject():
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]
    declared = {re.match(r"[A-Za-z0-9_.-]+", s).group(0).lower().replace("_", "-") for s in specs}
    needed = {_DISTRIBUTIONS.get(n, n).lower().replace("_", "-") for n in _imported_top_level_names()}
    assert needed - declared == set()


def test_make_test_runs_the_loose_range_install():
    makefile = (ROOT / "Makefile").read_text()
    venv = makefile.split("\n$(LOOSE_STAMP):\n")[1].split("\n\n")[0]
    assert "rm -rf $(LOOSE)" in venv  # a fresh venv
    assert 'pip install --quiet --no-compile ".[book,test]"' in venv and "requirements.txt" not in venv
    assert "$(LOOSE_STAMP): $(LOOSE_STAMP)" not in makefile
    assert "LOOSE_STAMP := $(LOOSE)/venv/.installed-$(shell cksum < pyproject.toml" in makefile  # per pyproject
    recipe = makefile.split("\nloose-install: $(LOOSE_STAMP)\n")[1].split("\n\n")[0]
    assert "--no-deps --force-reinstall ." in recipe  # the current code, whatever the venv's age
    assert "requirements.txt" not in recipe
    assert "--only 00_data_and_models" in recipe and "--preset smoke" in recipe
    test = makefile.split("\ntest: install\n")[1].split("\n\n")[0]
    assert "loose-venv-if-stale" in test and "loose-install" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make -j2 install loose-venv-if-stale" in ci and "\nmake test\n" in ci
