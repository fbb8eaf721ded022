# The saliency trust book: two commands.
#   make book   builds the whole book on the embedded synthetic data (PRESET=default)
#   make test   runs the tests, precomputes the smoke preset on 2 Dask workers and executes every notebook from it,
#               builds the book with warnings as errors, runs chapters 00-01 on the real
#               datasets' layouts and chapter 00 on a loose-range install (loose-install)
SHELL := /bin/bash
# Let Python write the bytecode of what it imports (__pycache__) even where the environment says not to
# (PYTHONDONTWRITEBYTECODE=1, set on our CI machines): with `pip install --no-compile` below, every process would
# otherwise compile torch's and torchvision's sources again, about 4.7 s of CPU per chapter kernel, Dask worker
# and test process (measured: `Study.from_parameters` 8.0 s -> 3.4 s, the imports 4.7 s -> 1.2 s, per process).
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= default
BOOK_ARGS ?=
# Chapters executed side by side after chapter 00 (`helpers.book execute --jobs`); 2 measured fastest on 2 cores.
JOBS ?= 2
# Test processes (pytest-xdist); each test runs on one torch thread (tests/conftest.py), so one per core.
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

REAL_LAYOUTS := _build/real-layouts
REAL_LAYOUT_RUNS := real-layouts-rsna real-layouts-siim
LOOSE := _build/loose-install
# The real-layout and loose-install runs check formats and the install path, not models: one epoch per training
# (the permuted-label model at most three), so that they cost seconds of training instead of minutes.
FORMAT_CHECK := --param epochs=1 --param label_randomization_max_epochs=3

.PHONY: install book notebooks html test test-suite unit setup-check check-book real-layouts real-layouts-data $(REAL_LAYOUT_RUNS) loose-venv loose-venv-if-stale loose-install clean

# --no-compile: Python compiles what is imported on first use; byte-compiling all of torch's and CUDA's files
# up front is a good part of a fresh install's minutes.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## Execute the notebooks with papermill (PRESET=smoke|default|paper), then render HTML.
book: install
	$(PY) -m helpers.book execute --preset $(PRESET) --jobs $(JOBS) $(BOOK_ARGS)
	$(PY) -m helpers.book html

notebooks: install
	$(PY) -m helpers.book execute --preset $(PRESET) --jobs $(JOBS) $(BOOK_ARGS)

html: install
	$(PY) -m helpers.book html

unit: install
	$(PY) -m pytest -q

## The loose-range venv (mostly download and unpacking) is installed while the tests and the smoke book run
## (CI builds it beside the pinned venv instead: `.ci/run`); then the three small cold runs (the RSNA layout, the
## SIIM layout, the loose-range install) run side by side at one torch thread each: each is mostly a kernel's
## start, imports and one-epoch trainings, which leave a core idle when they run one after the other.
test: install
	$(MAKE) --no-print-directory -j2 test-suite loose-venv-if-stale
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(MAKE) --no-print-directory -j3 $(REAL_LAYOUT_RUNS) loose-install

## The smoke book through the scale-out path: `precompute` on a 2-worker Dask LocalCluster trains every model and
## computes every map the chapters plan, then the chapters run from that cache and must add or change no cache
## file (`--after-precompute`), then the shortcuts chapter (its own small models) and the scorecard.
test-suite: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile
	$(PY) -m helpers.book precompute --preset smoke --workers 2 --no-progress
	$(PY) -m helpers.book execute --preset smoke --strict --jobs $(JOBS) --after-precompute
	$(PY) -m helpers.book html --strict

## The chapters unchanged on the real datasets' on-disk layouts: a folder written by
## `python -m helpers.data synth` (DICOM, RSNA box CSV, SIIM RLE CSV) read as dataset=rsna
## (real-layouts-rsna) and dataset=siim (real-layouts-siim); chapters 00 and 01 on the smoke preset, everything
## under $(REAL_LAYOUTS). The two runs share the folder and nothing else: they may run side by side.
real-layouts: $(REAL_LAYOUT_RUNS)

real-layouts-data: install
	rm -rf $(REAL_LAYOUTS)
	$(PY) -m helpers.data synth --out $(REAL_LAYOUTS)/data --n 160 --size 128 --seed 7 --quiet

$(REAL_LAYOUT_RUNS): real-layouts-%: real-layouts-data
	$(PY) -m helpers.book execute --preset smoke --no-progress --only 00_data_and_models 01_localization_utility \
	  $(FORMAT_CHECK) --param dataset=$* --param data_dir=$(REAL_LAYOUTS)/data --param cache_dir=$(REAL_LAYOUTS)/$*/cache \
	  --param results_dir=$(REAL_LAYOUTS)/$*/results --out $(REAL_LAYOUTS)/$*/executed

## The install path of the notebooks' Colab cell: a fresh venv under $(LOOSE) that installs the package with
## only pyproject.toml's ranges (`pip install .[book,test]`, not requirements.txt's pins, not editable), then
## chapter 00 on the smoke preset with it, run from a folder without the source tree (notebooks, _config.yml,
## _toc.yml copied) so that the kernel imports the installed package, as in Colab.
## The venv is built once per pyproject.toml (`loose-venv-if-stale`; `loose-venv` forces a fresh one; on a
## clean checkout, as in CI, it is always fresh); `loose-install` reinstalls the package itself (no
## dependencies) into it every time, so that it runs the current code.
LOOSE_STAMP := $(LOOSE)/venv/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

$(LOOSE_STAMP):
	rm -rf $(LOOSE)
	$(PYTHON) -m venv $(LOOSE)/venv
	$(LOOSE)/venv/bin/python -m pip install --quiet --no-compile ".[book,test]"
	$(LOOSE)/venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

loose-venv-if-stale: $(LOOSE_STAMP)

loose-venv:
	rm -rf $(LOOSE)
	$(MAKE) --no-print-directory $(LOOSE_STAMP)

loose-install: $(LOOSE_STAMP)
	$(LOOSE)/venv/bin/python -m pip install --quiet --no-deps --force-reinstall .
	rm -rf $(LOOSE)/root $(LOOSE)/cache $(LOOSE)/results $(LOOSE)/executed
	mkdir -p $(LOOSE)/root
	cp -r _config.yml _toc.yml notebooks $(LOOSE)/root/
	cd $(LOOSE)/root && env -u PYTHONPATH ../venv/bin/python -m helpers.book execute --preset smoke --no-progress \
	  --only 00_data_and_models $(FORMAT_CHECK) --param cache_dir=../cache --param results_dir=../results --out ../executed

## Open every built page in headless Chromium and fail on what a reader would complain about (progress bars,
## overflowing code, broken images, missing Overview/Summary, uncaptioned figures); full-page screenshots go to
## _build/screenshots/. `setup-check` (below) installs Debian's chromium first when it is missing (needs root).
check-book: setup-check
	$(PY) -m helpers.book check

## Install headless Chromium for the page check (Debian's package, apt-get as root) when it is missing.
setup-check: install
	$(PY) -m helpers.book setup-check

clean:
	rm -rf _build book/executed results
