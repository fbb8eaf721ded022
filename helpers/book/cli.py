"""The command line of the book: ``python -m helpers.book {execute,precompute,html,check,setup-check,structure,pin-colab}``.

Usage::

    python -m helpers.book execute --preset smoke [--param NAME=VALUE ...] [--only NAME ...] [--strict]
    python -m helpers.book precompute --preset paper [--param ...] [--scheduler ADDRESS | --workers N] [--dry-run]
    python -m helpers.book html [--strict]
    python -m helpers.book setup-check          # installs headless Chromium (Debian, as root) if missing
    python -m helpers.book check [--html _build/html]
    python -m helpers.book structure notebooks/*.ipynb
    python -m helpers.book pin-colab [--check]  # writes the pinned Colab cell into every notebook

Every subcommand exits 1 with a one-line ``error: ...`` on bad input or a failed step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from helpers.book._base import CHAPTERS, EXECUTED_DIR, NOTEBOOKS_DIR, BookError, NotebookStructureError, _root
from helpers.book.browser import install_chromium
from helpers.book.build import html
from helpers.book.execution import execute, parse_params
from helpers.book.page_check import check
from helpers.book.structure import PACKAGE_SPEC, check_notebook_structure, pin_colab
from helpers.config import NOTEBOOK_PARAMETERS, PRESETS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m helpers.book",
        description="Execute the book's notebooks (papermill), build the HTML book (Jupyter Book) and check it "
                    "in headless Chromium.",
    )
    p.add_argument("--root", default=None, help="repository root (default: the current folder)")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("execute", help="run notebooks/*.ipynb with papermill into book/executed/",
                       description=f"Run the chapter notebooks in this order: {', '.join(CHAPTERS)}.")
    e.add_argument("--preset", default="default", choices=list(PRESETS), help="preset of every notebook")
    e.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help=f"notebook parameter (YAML literal value); names: {', '.join(NOTEBOOK_PARAMETERS[1:])}")
    e.add_argument("--only", nargs="+", metavar="NAME", help="run these chapters only")
    e.add_argument("--strict", action="store_true",
                   help="every chapter must exist and follow the chapter structure")
    e.add_argument("--out", default=EXECUTED_DIR, help=f"folder of the executed copies (default {EXECUTED_DIR})")
    e.add_argument("--timeout", type=int, default=None, help="seconds a cell may run (default: no limit)")
    e.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    e.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="chapters run side by side after chapter 00 (default 1); each kernel gets its share of "
                        "the cores (OMP_NUM_THREADS), shared models and maps are computed once")
    e.add_argument("--after-precompute", action="store_true",
                   help="the cache was filled by `precompute` with the same preset and parameters: run the planned "
                        "chapters first and fail if they add or change a cache file, then the others")

    pc = sub.add_parser(
        "precompute", help="train every model and compute every map the chapters need, on a Dask cluster",
        description="Plan what the chapters train and map for these parameters (helpers.precompute.plan) and run it "
                    "as a Dask distributed graph: one task per training, then one per (model, state, method, image "
                    "chunk). Results land in the shared cache_dir; `execute` then reads them. Without --scheduler a "
                    "LocalCluster of --workers processes (one thread each) is started.")
    pc.add_argument("--preset", default="default", choices=list(PRESETS), help="preset of the chapters")
    pc.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="notebook parameter, as for `execute` (the chapters must be run with the same ones)")
    where = pc.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="address of a running Dask scheduler (tcp://host:8786), e.g. of a dask-jobqueue cluster")
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes of a LocalCluster (default 2; one per GPU on a multi-GPU node)")
    pc.add_argument("--threads", type=int, default=None,
                    help="torch threads per task (default: cores / workers on a LocalCluster)")
    pc.add_argument("--chunk-size", type=int, default=None, metavar="N",
                    help="explained images per map task (default: all of them)")
    pc.add_argument("--only", nargs="+", metavar="NAME", help="only these chapters' work")
    pc.add_argument("--retries", type=int, default=2, help="reruns of a task that failed")
    pc.add_argument("--dry-run", action="store_true",
                    help="print the task counts and estimated forward+backward passes; run nothing")
    pc.add_argument("--estimate", action="store_true",
                    help="with --dry-run: count the synthetic images from the settings instead of generating the data")
    pc.add_argument("--no-progress", action="store_true", help="no progress bar")

    h = sub.add_parser("html", help="build the HTML book into _build/html (no execution)")
    h.add_argument("--strict", action="store_true",
                   help="all chapters must be executed; Sphinx warnings are errors")

    c = sub.add_parser("check", help="open every built page in headless Chromium")
    c.add_argument("--html", default=None, help="built book folder (default _build/html)")
    c.add_argument("--no-screenshots", action="store_true", help="do not save screenshots")
    c.add_argument("--timeout", type=float, default=60.0, help="seconds per page")

    sub.add_parser("setup-check", help="install headless Chromium for `check` (Debian's package, as root)",
                   description="Install Debian's chromium package with apt-get when it is missing (needs root); "
                               "the page check only looks for it.")

    s = sub.add_parser("structure", help="check source notebooks against the chapter structure")
    s.add_argument("paths", nargs="*", help=f"notebooks (default: {NOTEBOOKS_DIR}/*.ipynb)")

    pin = sub.add_parser("pin-colab", help=f"write the pinned Colab cell ({PACKAGE_SPEC}) into every notebook",
                         description="Replace the source of the Colab install cell of every notebooks/*.ipynb by "
                                     "helpers.book.colab_cell_source() (installs helpers.book.PACKAGE_SPEC); "
                                     "nothing else in the files changes.")
    pin.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not pinned")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m helpers.book``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "execute":
            execute(preset=args.preset, params=parse_params(args.param), only=args.only, strict=args.strict,
                    out=args.out, root=args.root, progress=not args.no_progress, timeout=args.timeout,
                    jobs=args.jobs, after_precompute=args.after_precompute)
        elif args.command == "precompute":
            from helpers.config import ConfigError, merge_overrides, resolve
            from helpers.precompute import PrecomputeError, precompute

            try:
                params = parse_params(args.param)
                settings = resolve(args.preset, **merge_overrides(params, params.pop("overrides", None)))
                precompute(settings, scheduler=args.scheduler, workers=args.workers, threads=args.threads,
                           chunk_size=args.chunk_size, chapters=args.only, retries=args.retries,
                           dry_run=args.dry_run, estimate=args.estimate, progress=not args.no_progress)
            except (ConfigError, PrecomputeError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        elif args.command == "html":
            html(strict=args.strict, root=args.root)
        elif args.command == "check":
            check(html_dir=args.html, root=args.root, screenshots=not args.no_screenshots, timeout=args.timeout)
        elif args.command == "setup-check":
            print(f"chromium: {install_chromium()}")
        elif args.command == "pin-colab":
            changed = pin_colab(root=args.root, check=args.check)
            for path in changed:
                print(f"{'not pinned' if args.check else 'pinned'}  {path}")
            print(f"{len(changed)} notebook(s) {'not pinned to' if args.check else 'now install'} {PACKAGE_SPEC}")
            if args.check and changed:
                return 1
        elif args.command == "structure":
            paths = [Path(p) for p in args.paths] or sorted((_root(args.root) / NOTEBOOKS_DIR).glob("*.ipynb"))
            failures = []
            for path in paths:
                try:
                    check_notebook_structure(path)
                    print(f"ok    {path}")
                except NotebookStructureError as exc:
                    failures.append(str(exc))
                    print(f"FAIL  {exc}")
            if failures:
                return 1
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
