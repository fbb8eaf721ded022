#!/usr/bin/env python
"""Whole-book benchmark: where the time of ``helpers.book execute`` goes, chapter by chapter.

Runs the chapters of a preset once (cold by default: an empty cache and
results folder under ``--work``), with ``SALIENCY_BOOK_PROFILE`` set so that
every model training and every map computation records its seconds
(:mod:`helpers._profile`). Then prints, per chapter: its wall time and share
of the book, the seconds spent training models, computing saliency maps, and
the rest (data, metrics, statistics, figures, the kernel itself), and the
same split for the whole book; then the trainings and the map work by method.

Training and maps are measured inside the kernels; "other" is the chapter's
wall time minus both. With ``--jobs 2`` two chapters share the cores, so the
per-chapter seconds add up to more than the wall time; the split still says
where the work is. A model or map another chapter computed first costs the
later chapter nothing (the cache), so a chapter's numbers depend on the order.

Run on demand, never in CI::

    .venv/bin/python bench/bench_book.py                     # default preset, cold, --jobs 2 (~15-40 min)
    .venv/bin/python bench/bench_book.py --preset smoke --jobs 1
    .venv/bin/python bench/bench_book.py --work /tmp/bb --warm   # reuse that cache: what a re-run costs
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT))

from helpers._profile import PROFILE_ENV  # noqa: E402  (after the path set-up above)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="default", help="preset of every chapter")
    p.add_argument("--jobs", type=int, default=2, help="chapters side by side (helpers.book execute --jobs)")
    p.add_argument("--work", default="_build/bench-book", help="folder of the cache, results, executed copies")
    p.add_argument("--warm", action="store_true", help="keep the cache in --work (default: start cold)")
    p.add_argument("--only", nargs="+", default=None, help="these chapters only")
    p.add_argument("--summarize", nargs=2, metavar=("PROFILE", "TIMINGS"), default=None,
                   help="run nothing: print the split of an earlier run from its profile.jsonl (SALIENCY_BOOK_PROFILE) "
                        "and its timings.csv, e.g. of `SALIENCY_BOOK_PROFILE=$PWD/p.jsonl make book`")
    return p


def _load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.summarize:
        profile, timings = (Path(p) for p in args.summarize)
        _report(profile, timings.read_text().splitlines()[1:], wall=None, jobs=None)
        return 0
    work = (_ROOT / args.work).resolve()
    if not args.warm and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "profile.jsonl"
    profile.unlink(missing_ok=True)
    results = work / "results"
    timings = results / "timings.csv"
    before = timings.read_text().count("\n") if timings.exists() else 0
    command = [sys.executable, "-m", "helpers.book", "execute", "--preset", args.preset, "--jobs", str(args.jobs),
               "--no-progress", "--param", f"cache_dir={work / 'cache'}", "--param", f"results_dir={results}",
               "--out", str(work / "executed")] + (["--only", *args.only] if args.only else [])
    print(f"# bench_book {_dt.datetime.now().isoformat(timespec='seconds')}  {platform.node()}  "
          f"{os.cpu_count()} cores  load {_load_average()}  preset={args.preset}  jobs={args.jobs}  "
          f"{'warm' if args.warm else 'cold'}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=_ROOT, env={**os.environ, PROFILE_ENV: str(profile)}, check=True)
    wall = time.perf_counter() - start
    _report(profile, timings.read_text().splitlines()[max(before, 1):], wall=wall, jobs=args.jobs)
    return 0


def _report(profile: Path, rows: list[str], *, wall: float | None, jobs: int | None) -> None:
    """Print the per-chapter split of the timings ``rows`` (``notebook,preset,seconds,date``) and ``profile``."""
    chapters = collections.OrderedDict()
    for line in rows:
        name, preset, seconds, _ = line.split(",")
        chapters[name] = float(seconds)
    records = [json.loads(line) for line in profile.read_text().splitlines()] if profile.exists() else []
    per = collections.defaultdict(lambda: collections.Counter())
    for r in records:
        per[r["chapter"]][r["kind"]] += r["seconds"]

    total = sum(chapters.values())
    print(f"\n{'chapter':<30} {'seconds':>8} {'share':>6} {'training':>9} {'maps':>8} {'other':>8}")
    sums = collections.Counter()
    for name, seconds in chapters.items():
        train, maps = per[name]["training"], per[name]["maps"]
        other = max(seconds - train - maps, 0.0)
        sums.update(training=train, maps=maps, other=other)
        print(f"{name:<30} {seconds:8.1f} {seconds / total:6.1%} {train:9.1f} {maps:8.1f} {other:8.1f}")
    print(f"{'all chapters':<30} {total:8.1f} {1:6.0%} {sums['training']:9.1f} {sums['maps']:8.1f} {sums['other']:8.1f}")
    print(f"{'split':<30} {'':8} {'':6} {sums['training'] / total:9.1%} {sums['maps'] / total:8.1%} "
          f"{sums['other'] / total:8.1%}")
    if wall is not None:
        print(f"wall time of the run: {wall:.1f} s ({wall / 60:.1f} min) with --jobs {jobs}; load at the end "
              f"{_load_average()}")

    trainings = [r for r in records if r["kind"] == "training"]
    if trainings:
        print("\ntrainings (seconds, chapter that ran them)")
        for r in sorted(trainings, key=lambda r: -r["seconds"]):
            print(f"  {r['what']:<45} {r['seconds']:8.1f}  {r['chapter']}")
    by_method = collections.Counter()
    for r in records:
        if r["kind"] == "maps":
            by_method[r["what"]] += r["seconds"]
    if by_method:
        print("\nmap computations by method (seconds, all chapters)")
        for method, seconds in by_method.most_common():
            print(f"  {method:<10} {seconds:8.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
