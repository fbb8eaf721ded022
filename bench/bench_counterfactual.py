#!/usr/bin/env python
"""Benchmark of saliency method ``"CF"`` (:mod:`helpers.counterfactual`): time per map of each perturbation.

On the default preset's primary architecture at the preset's image size
(untrained weights: timing does not depend on them), side by side in one run,
the script prints for ``CF`` with each perturbation operator and for the
gradient methods GRAD, IG and GCAM:

* the time per map of :func:`helpers.saliency.explain` (what a notebook pays);
* the lower bound of the gradient-based cost: forward+backward passes per
  image (``MethodSpec.n_passes``: ``steps`` for CF, 1 for GRAD and GCAM, 10
  for IG) times the batched forward+backward time per image, measured in the
  same run just before the method at the batch size it uses; and the ratio
  of the two. For CF the excess over 1 is the fill (the harmonic diffusion
  and its backward pass for ``"inpaint"``, the U-Net's forward and backward
  passes for ``"inpaint_learned"``; scikit-image's biharmonic solves
  for ``"inpaint_biharmonic"``), the regularizers and the bookkeeping;
* the ratio of each method's time per map to GRAD's (the cheapest map).

Timings are the minimum over repeats, in wall-clock and process CPU seconds;
with one thread on the (shared) CPU the ratios are judged on CPU time. Run
``python bench/bench_counterfactual.py --help`` for the options. Run on demand,
never in CI.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from typing import Any

import torch

# the repository root (for helpers) and this folder (for bench_saliency's timing tools)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))
sys.path.insert(0, _HERE)

import helpers.counterfactual  # noqa: E402,F401  (registers "CF")
import helpers.saliency as S  # noqa: E402
from bench_saliency import (  # noqa: E402
    Row,
    Timing,
    _fmt_seconds,
    add_model_options,
    add_timing_options,
    best_of,
    forward_backward,
    literal,
    parse_checked,
    pass_batch,
    per_image,
    print_table,
)
from helpers.config import resolve  # noqa: E402
from helpers.counterfactual import PERTURBATIONS, TRAINING_FREE  # noqa: E402

GRADIENT_METHODS = ("GRAD", "IG", "GCAM")


def _parse_setting(text: str) -> tuple[str, Any]:
    """``name=value`` -> (name, python value)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects a CF setting name=value (e.g. steps=20), got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), literal(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time per map of counterfactual impact saliency (CF) with each perturbation operator, against its "
            "forward+backward bound and against the gradient methods GRAD, IG and GCAM, in one run. "
            "Untrained weights, synthetic radiographs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_options(parser, preset_help="preset whose primary architecture and image size are used")
    parser.add_argument("--perturbations", default=",".join(TRAINING_FREE),
                        help="comma-separated CF perturbation operators (inpaint_learned needs --inpainter-weights)")
    parser.add_argument("--inpainter-weights", default=None, metavar="PATH",
                        help="weights of a trained learned inpainter (<cache_dir>/inpainters/inpainter-<key>.pt, "
                             "written by chapter 07 or Study.inpainter()); its timing does not depend on the weights")
    parser.add_argument("--methods", default=",".join(GRADIENT_METHODS),
                        help="comma-separated gradient methods to compare with (empty: none)")
    parser.add_argument("--n-images", type=int, default=4, help="images explained per timed run")
    parser.add_argument("--batch-size", type=int, default=16, help="explain(batch_size=...): images optimized together")
    add_timing_options(parser, row="row", repeats=2)
    parser.add_argument("--set", dest="settings", action="append", type=_parse_setting, default=[],
                        metavar="name=value", help="override a CF setting (repeatable), e.g. --set steps=20")
    return parse_checked(parser, argv)


def times_reference(reference: Timing | None, clock: str):
    """The "x GRAD" column: a row's time per map over the reference's (GRAD's)."""
    def cell(r: Row) -> str:
        if reference is None:
            return "-"
        times = getattr(r.per_map, clock) / getattr(reference, clock)
        return f"{times:.2g}" if times < 10 else f"{times:.0f}"

    return f"x GRAD ({clock})", cell


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = resolve(args.preset)
    arch = args.architecture or preset.architectures[0]
    size = args.image_size or preset.image_size
    perturbations = [p.strip() for p in args.perturbations.split(",") if p.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    cf_settings = dict(args.settings)
    for p in perturbations:
        if p not in PERTURBATIONS:
            raise SystemExit(f"--perturbations: unknown operator {p!r}; valid: {', '.join(PERTURBATIONS)}")
    if "inpaint_learned" in perturbations and not args.inpainter_weights:
        raise SystemExit("--perturbations inpaint_learned needs --inpainter-weights PATH of a trained inpainter")
    fill_options = {"inpaint_learned": {"weights": args.inpainter_weights}}
    for m in methods:
        S.registry.get(m)
    cf_spec = S.registry.get("CF")
    cf_spec.resolve(cf_settings)  # unknown settings fail before any timing

    from helpers.data.synthetic import generate
    from helpers.models import build

    device = torch.device(args.device)
    model = build(arch, image_size=size, seed=args.seed).to(device).eval()
    images = generate(args.n_images, size=size, seed=args.seed, positive_fraction=1.0, progress=False).images
    x = torch.as_tensor(images)[:, None]
    n = len(x)

    print(f"# helpers.counterfactual benchmark, {_dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {arch} (untrained, seed {args.seed}) at {size} px, {n} synthetic radiographs, batch_size={args.batch_size}")
    print(f"# device {device}, torch {torch.__version__}, {args.threads} thread(s) of {os.cpu_count()} CPU(s), "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.2f} (other processes "
          "inflate wall times)")
    resolved = cf_spec.resolve(cf_settings)
    print(f"# CF settings: {resolved}")
    forward_backward(model, x.to(device))  # warm-up

    rows: list[Row] = []
    reference: Timing | None = None

    def time_row(label: str, method: str, settings: dict[str, Any], note: str = "") -> Row:
        spec = S.registry.get(method)
        passes = spec.n_passes(spec.resolve(settings))
        kw = dict(batch_size=args.batch_size, progress=False, **settings)
        if method != "CF":
            kw["internal_batch_size"] = args.batch_size
        batch = pass_batch(n, args.batch_size, args.batch_size, passes) if method != "CF" else min(n, args.batch_size)
        fb = per_image(model, x, batch, backward=True, device=device, repeats=args.baseline_repeats)
        t = best_of(lambda: S.explain(model, x, method, **kw), device=device, repeats=args.repeats,
                    max_seconds=args.max_seconds).per(n)
        return Row(label, t, passes=passes, pass_batch=batch, per_pass=fb, note=note)

    for m in methods:
        t0 = time.perf_counter()
        rows.append(time_row(m, m, dict(preset.method_settings.get(m, {}))))
        if m == "GRAD":
            reference = rows[-1].per_map
        print(f"#   {m}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    for p in perturbations:
        t0 = time.perf_counter()
        note = "mask-dependent fill, differentiable" if p in ("inpaint", "inpaint_learned") else (
            f"fill refreshed every {resolved['refresh_every']} steps, 5 inpaintings each" if p == "inpaint_biharmonic"
            else "fill computed once")
        rows.append(time_row(f"CF {p}", "CF", dict(cf_settings, perturbation=p,
                                                   perturbation_options=fill_options.get(p)), note=note))
        print(f"#   CF {p}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    clock = "cpu" if device.type == "cpu" and args.threads == 1 else "wall"
    print()
    print_table(rows, clock=clock, extra=times_reference(reference, clock))
    cf_rows = [r for r in rows if r.method.startswith("CF ")]
    if cf_rows:
        worst = max(cf_rows, key=lambda r: getattr(r.per_map, clock))
        print()
        print(f"CF time per map ({clock}): " + ", ".join(
            f"{r.method[3:]} {_fmt_seconds(getattr(r.per_map, clock))}" for r in cf_rows)
            + f"; slowest {worst.method[3:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
