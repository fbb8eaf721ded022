#!/usr/bin/env python
"""Benchmark of :mod:`helpers.saliency`: time per map against its forward+backward lower bound.

For each method, on the default preset's primary architecture at the preset's
image size (untrained weights: timing does not depend on them), the script
prints

* the time per map of :func:`helpers.saliency.explain` (post-processing
  included, the time a notebook pays);
* the method's *lower bound*: the number of forward+backward passes it needs
  per image (``MethodSpec.n_passes``: 1 for GRAD, GBP, GCAM; 25 for SG; 10 for
  IG; 250 for SIG; 2 x 100 for XRAI's integrated gradients; 2 for GGCAM) times
  the batched forward+backward time per image (gradient w.r.t. the input only,
  parameters frozen), measured in the same run, at the batch size the method's
  passes actually use, just before the method;
* the ratio of the two. The goal is <= 1.2 for every method; XRAI's
  segmentation (Felzenszwalb at six scales) and greedy region ranking are
  CPU work without forward passes and are reported on their own rows.

Occlusion (OCC, an extra) needs forward passes only: its bound is
``windows + 1`` batched forward passes (the clean logit and one per patch).

Every timing is the minimum over repeats (the least disturbed by other
processes), in wall-clock and in process CPU seconds. With one thread on the
CPU (the default), the goal is judged on CPU time: it is what the method
costs, whereas wall time also counts the time other processes held the core
(the development machine is shared). On a GPU, or with several threads, it is
judged on wall time. Run ``python bench/bench_saliency.py --help`` for the
options. Run on demand, never in CI.
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

# the repository root, so that the script runs without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import helpers.saliency as S  # noqa: E402
from helpers.config import resolve  # noqa: E402
from helpers.saliency import _engine as E  # noqa: E402
from helpers.saliency import xrai as X  # noqa: E402
from helpers.saliency.occlusion import occlusion_windows  # noqa: E402

GOAL = 1.2


# --------------------------------------------------------------------------- options
def literal(value: str) -> Any:
    """A ``--set`` value as Python (``5``, ``0.2``, ``True``), or the bare word itself (``gausslegendre``)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _parse_setting(text: str) -> tuple[str, str, Any]:
    """``METHOD.name=value`` -> (method, name, python value)."""
    try:
        lhs, value = text.split("=", 1)
        method, name = lhs.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set expects METHOD.setting=value (e.g. SG.n_samples=5), got {text!r}")
    return method.strip(), name.strip(), literal(value)


def add_model_options(parser: argparse.ArgumentParser, *, preset_help: str) -> None:
    """``--preset``, ``--architecture``, ``--image-size``: which model, at which size (the preset's by default)."""
    default = resolve("default")
    parser.add_argument("--preset", default="default", help=preset_help)
    parser.add_argument("--architecture", default=None,
                        help=f"architecture (default: the preset's first, {default.architectures[0]!r} for 'default')")
    parser.add_argument("--image-size", type=int, default=None,
                        help=f"square image size in pixels (default: the preset's, {default.image_size} for 'default')")


def add_timing_options(parser: argparse.ArgumentParser, *, row: str, repeats: int) -> None:
    """The timing options of every benchmark; ``row`` names what one table row times ("method", "row")."""
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed runs per {row} (the minimum is kept)")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help=f"stop repeating a {row} once its runs took this long (at least one run)")
    parser.add_argument("--baseline-repeats", type=int, default=5,
                        help=f"timed forward+backward batches before each {row} (the minimum is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1 ...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of the synthetic images")


def parse_checked(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; the counts (images, batch size, repeats, threads) must be >= 1."""
    args = parser.parse_args(argv)
    for name in ("n_images", "batch_size", "repeats", "baseline_repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time per saliency map vs its lower bound (forward+backward passes x measured batched "
            "forward+backward time per image). Goal: ratio <= 1.2 for every method except XRAI's "
            "segmentation, reported separately. Untrained weights, synthetic radiographs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_options(parser, preset_help="preset whose primary architecture, image size and per-method settings "
                                          "are used")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method names (default: every method registered by helpers.saliency that "
                             "explains a plain classifier, i.e. all but TRAINABLE, which needs a self-explaining model)")
    parser.add_argument("--n-images", type=int, default=4, help="images explained per timed run")
    parser.add_argument("--batch-size", type=int, default=16, help="explain(batch_size=...)")
    parser.add_argument("--internal-batch-size", type=int, default=None,
                        help="explain(internal_batch_size=...): perturbed inputs per pass (default: --batch-size)")
    add_timing_options(parser, row="method", repeats=3)
    parser.add_argument("--set", dest="settings", action="append", type=_parse_setting, default=[],
                        metavar="METHOD.name=value", help="override a method setting (repeatable), e.g. SG.n_samples=5")
    return parse_checked(parser, argv)


# --------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Best (minimum) wall-clock and process CPU seconds over the runs of one measurement."""

    wall: float
    cpu: float
    runs: int

    def per(self, n: int) -> "Timing":
        return Timing(self.wall / n, self.cpu / n, self.runs)


def timed(fn: Callable[[], Any], *, device: torch.device) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call of ``fn``."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(fn: Callable[[], Any], *, device: torch.device, repeats: int, max_seconds: float = float("inf")) -> Timing:
    """Minimum wall and CPU time over up to ``repeats`` runs (stopping once ``max_seconds`` were spent)."""
    walls: list[float] = []
    cpus: list[float] = []
    while len(walls) < repeats and (not walls or sum(walls) < max_seconds):
        w, c = timed(fn, device=device)
        walls.append(w)
        cpus.append(c)
    return Timing(min(walls), min(cpus), len(walls))


def forward_backward(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One batched forward+backward pass: gradient of one logit per image w.r.t. the input only."""
    x = x.detach().clone().requires_grad_()
    logits = model(x)
    (grad,) = torch.autograd.grad(logits[:, 1].sum(), x)
    del grad


def forward_only(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def per_image(model, pool: torch.Tensor, batch: int, *, backward: bool, device, repeats: int) -> Timing:
    """Seconds per image of one pass over a batch of ``batch`` inputs drawn from ``pool``."""
    idx = torch.arange(batch) % len(pool)
    x = pool[idx].to(device)
    fn = (lambda: forward_backward(model, x)) if backward else (lambda: forward_only(model, x))
    with E.attribution_mode(model):
        return best_of(fn, device=device, repeats=repeats).per(batch)


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    method: str
    per_map: Timing
    passes: float | None = None  # lower-bound passes per image
    pass_kind: str = "f+b"
    pass_batch: int | None = None  # inputs per pass in the method (and in the bound's measurement)
    per_pass: Timing | None = None  # measured seconds per image of one pass at that batch
    note: str = ""

    def bound(self, clock: str) -> float | None:
        if self.passes is None or self.per_pass is None:
            return None
        return self.passes * getattr(self.per_pass, clock)

    def ratio(self, clock: str) -> float | None:
        bound = self.bound(clock)
        return None if not bound else getattr(self.per_map, clock) / bound


def pass_batch(n_images: int, batch_size: int, chunk: int, passes: int) -> int:
    """Inputs per forward(+backward) pass of a method: images per call x passes, cut in chunks."""
    per_call = min(n_images, batch_size)
    if passes <= 1:
        return per_call
    return min(chunk, per_call * passes)


def bench_method(method: str, *, model, x, args, settings, device) -> list[Row]:
    spec = S.registry.get(method)
    resolved = spec.resolve(settings)
    chunk = args.internal_batch_size or args.batch_size
    n = len(x)
    kw = dict(batch_size=args.batch_size, internal_batch_size=args.internal_batch_size, progress=False, **settings)

    # one untimed call on one image with the cheapest settings: lazy imports, first-call set-up (hooks,
    # allocator), the GBP ReLU check, so that a single timed run is not charged for them
    cheap = {k: v for k, v in (("n_samples", 1), ("n_steps", 2), ("window", 0.5), ("stride", 0.5))
             if k in spec.defaults}
    S.explain(model, x[:1], method, progress=False, **{**settings, **cheap})

    def run() -> None:
        if method == "XRAI":
            X.clear_segment_cache()  # an honest total: segments are recomputed, as for a new image
        S.explain(model, x, method, **kw)

    if method == "OCC":
        size = x.shape[-1]
        windows = occlusion_windows(size, window=resolved["window"], stride=resolved["stride"])
        per_eval = max(1, chunk // min(n, args.batch_size))
        batch = per_eval * min(n, args.batch_size)
        fwd = per_image(model, x, batch, backward=False, device=device, repeats=args.baseline_repeats)
        t = best_of(run, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)
        return [Row(method, t, passes=windows + 1, pass_kind="fwd", pass_batch=batch, per_pass=fwd,
                    note=f"{windows} patches + the clean image")]

    passes = spec.n_passes(resolved)
    if passes is None:
        t = best_of(run, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)
        return [Row(method, t, note="passes unknown: no bound")]

    if method != "XRAI":
        batch = pass_batch(n, args.batch_size, chunk, passes)
        fb = per_image(model, x, batch, backward=True, device=device, repeats=args.baseline_repeats)
        t = best_of(run, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)
        return [Row(method, t, passes=passes, pass_batch=batch, per_pass=fb)]

    # XRAI: integrated gradients (forward+backward passes) and the region part (CPU) apart
    batch = pass_batch(n, args.batch_size, chunk, passes)
    fb = per_image(model, x, batch, backward=True, device=device, repeats=args.baseline_repeats)
    xd = x.to(device)
    holder: dict[str, Any] = {}

    def ig_part() -> None:
        with E.attribution_mode(model):
            outs = []
            for start in range(0, n, args.batch_size):
                xb = xd[start : start + args.batch_size]
                target = S._resolve_targets(model, xb, None, batch_size=args.batch_size).to(device)
                outs.append(X.xrai_attribution(
                    model, xb, target=target, n_steps=resolved["n_steps"], baselines=resolved["baselines"],
                    rule=resolved["rule"], internal_batch_size=chunk,
                ).cpu().numpy())
        holder["attr"] = np.concatenate(outs)

    ig = best_of(ig_part, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)
    pixels = x.cpu().numpy()

    def segmentation() -> None:
        X.clear_segment_cache()
        holder["segments"] = [X._pair_xrai._get_segments_felzenszwalb(X._hwc(p)) for p in pixels]

    seg = best_of(segmentation, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)

    def greedy() -> None:
        for p, a, segs in zip(pixels, holder["attr"], holder["segments"]):
            X.xrai_from_attribution(p, a, segments_=segs, algorithm=resolved["algorithm"],
                                    area_threshold=resolved["area_threshold"],
                                    min_pixel_diff=resolved["min_pixel_diff"])

    rank = best_of(greedy, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)
    total = best_of(run, device=device, repeats=args.repeats, max_seconds=args.max_seconds).per(n)
    n_segments = int(np.mean([len(s) for s in holder["segments"]]))
    return [
        Row("XRAI: integrated gradients", ig, passes=passes, pass_batch=batch, per_pass=fb,
            note=f"{len(resolved['baselines'])} baselines x {resolved['n_steps']} steps"),
        Row("XRAI: segmentation", seg, note=f"Felzenszwalb, 6 scales, ~{n_segments} segments/image (CPU, no bound)"),
        Row("XRAI: greedy ranking", rank, note="PAIR XRAI 'full' (CPU, no bound)"),
        Row("XRAI: total (explain)", total, passes=passes, pass_batch=batch, per_pass=fb,
            note="ratio includes the CPU region part"),
    ]


# --------------------------------------------------------------------------- main
def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1.0:
        return f"{s:.2f} s"
    return f"{s * 1e3:.1f} ms"


def _goal(row: Row, clock: str) -> str:
    ratio = row.ratio(clock)
    if ratio is None:
        return "n/a"
    if row.method.startswith("XRAI: total"):
        return "(info)"
    return "ok" if ratio <= GOAL else "ABOVE"


def print_table(rows: list[Row], *, clock: str, extra: tuple[str, Callable[[Row], str]] | None = None) -> None:
    """The table; ``clock`` ("cpu" or "wall") is the one the goal is judged on.

    ``extra`` is the header and the cell function of the column printed after
    the two ratios; the default is this benchmark's goal column.
    """
    other = "wall" if clock == "cpu" else "cpu"
    extra_header, extra_cell = extra if extra is not None else ("goal", lambda r: _goal(r, clock))
    headers = ("method", "wall/map", "cpu/map", "passes", "batch", f"{clock}/img/pass", f"bound ({clock})",
               f"ratio ({clock})", f"ratio ({other})", extra_header, "runs", "note")
    lines = []
    for r in rows:
        ratio, other_ratio = r.ratio(clock), r.ratio(other)
        lines.append((
            r.method, _fmt_seconds(r.per_map.wall), _fmt_seconds(r.per_map.cpu),
            "-" if r.passes is None else f"{r.passes:g} {r.pass_kind}",
            "-" if r.pass_batch is None else str(r.pass_batch),
            _fmt_seconds(None if r.per_pass is None else getattr(r.per_pass, clock)), _fmt_seconds(r.bound(clock)),
            "-" if ratio is None else f"{ratio:.2f}", "-" if other_ratio is None else f"{other_ratio:.2f}",
            extra_cell(r), str(r.per_map.runs), r.note,
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    last = len(headers) - 1
    fmt = "  ".join(f"{{:{'<' if i in (0, last) else '>'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*headers).rstrip())
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt.format(*line).rstrip())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings_all = resolve(args.preset)
    arch = args.architecture or settings_all.architectures[0]
    size = args.image_size or settings_all.image_size
    # TRAINABLE reads the evidence map of a self-explaining model
    # (helpers.trainable); the benchmarked model is a plain classifier.
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else [m for m in S.METHODS if m != "TRAINABLE"]
    for m in methods:
        S.registry.get(m)  # unknown names fail here, listing the valid ones
    per_method: dict[str, dict[str, Any]] = {m: dict(settings_all.method_settings.get(m, {})) for m in methods}
    for method, name, value in args.settings:
        if method not in per_method:
            raise SystemExit(f"--set {method}.{name}: {method!r} is not among the benchmarked methods {methods}")
        per_method[method][name] = value
    for m in methods:
        S.registry.get(m).resolve(per_method[m])  # unknown settings fail before any timing

    from helpers.data.synthetic import generate
    from helpers.models import build

    device = torch.device(args.device)
    model = build(arch, image_size=size, seed=args.seed).to(device).eval()
    images = generate(args.n_images, size=size, seed=args.seed, positive_fraction=1.0, progress=False).images
    x = torch.as_tensor(images)[:, None]

    print(f"# helpers.saliency benchmark, {_dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {arch} (untrained, seed {args.seed}) at {size} px, {args.n_images} synthetic radiographs, "
          f"batch_size={args.batch_size}, internal_batch_size={args.internal_batch_size or args.batch_size}")
    print(f"# device {device}, torch {torch.__version__}, {args.threads} thread(s) of {os.cpu_count()} CPU(s), "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.2f} (other processes "
          "inflate wall times; each bound uses a pass timed just before its method)")
    overrides = {m: s for m, s in per_method.items() if s}
    print(f"# settings: defaults (the paper's){'' if not overrides else ' except ' + repr(overrides)}")
    forward_backward(model, x.to(device))  # warm-up (allocator, kernels)

    rows: list[Row] = []
    for method in methods:
        t0 = time.perf_counter()
        rows.extend(bench_method(method, model=model, x=x, args=args, settings=per_method[method], device=device))
        print(f"#   {method}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    # With one thread on a shared CPU, process CPU time is what the method costs; wall time also counts the
    # time other processes held the core. On a GPU only wall time is meaningful.
    clock = "cpu" if device.type == "cpu" and args.threads == 1 else "wall"
    print()
    print_table(rows, clock=clock)
    above = [r.method for r in rows
             if (r.ratio(clock) or 0) > GOAL and not r.method.startswith("XRAI: total")]
    print()
    print(f"goal: {clock} time/map <= {GOAL} x bound; "
          f"{'all met' if not above else 'above the goal: ' + ', '.join(above)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
