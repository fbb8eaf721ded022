"""Map work of the chapters: `precompute` on a 2-worker Dask LocalCluster vs the serial chapters, side by side.

Also, when Quantus is importable: the book's cascading-randomization test vs
Quantus' MPRT on the same model, images, explanation (GRAD) and similarity (SSIM).

Usage::

    .venv/bin/python bench/bench_precompute.py --help
    .venv/bin/python bench/bench_precompute.py --preset default                 # the default preset's map work
    .venv/bin/python bench/bench_precompute.py --preset smoke --methods GRAD,SG,IG --n-images 4 --only 02_randomization_sensitivity

Both runs start from the same trained models (trained first, not timed) and
an empty map cache each; the serial run computes every map of the plan with
:meth:`Study.maps` on all explained images in one process with ``--threads``
torch threads (the chapters' path), the parallel run is
:func:`helpers.precompute.execute` on ``--workers`` processes with
``threads // workers`` torch threads each. The bound of the parallel run is
serial / workers (the same CPU split differently): the ratio says how much of
it the graph reaches. The maps of both runs are compared bit for bit.

References
----------
.. [1] Dask Development Team (2016). Dask: library for dynamic task scheduling. https://dask.org
.. [2] Hedström, A. et al. (2023). Quantus: an explainable AI toolkit for responsible evaluation of neural network
   explanations and beyond. JMLR 24(34). (MPRT: model parameter randomisation test.)
.. [3] Adebayo, J. et al. (2018). Sanity checks for saliency maps. NeurIPS. arXiv:1810.03292
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: the preset's)")
    p.add_argument("--n-images", type=int, default=None, help="explained images (default: the preset's)")
    p.add_argument("--image-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--only", nargs="+", default=None, metavar="CHAPTER", help="only these chapters' maps")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the serial run (split among workers)")
    p.add_argument("--chunk-size", type=int, default=None, help="images per map task (default: all)")
    p.add_argument("--cache", default=None, help="folder of the trained models (kept); default: a temporary one")
    p.add_argument("--mprt-images", type=int, default=4, help="images of the MPRT comparison")
    p.add_argument("--architecture", default=None, help="model of the MPRT comparison (default: the preset's primary)")
    p.add_argument("--parts", default="maps,mprt", help="comma-separated parts to run: maps, mprt")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def _header(args, settings) -> None:
    import torch

    print(f"# bench_precompute  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"preset {settings.preset}: {settings.image_size} px, {settings.n_images} images, "
          f"{', '.join(settings.architectures)}, methods {', '.join(settings.methods)}; torch {torch.__version__}, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _map_plan(p):
    """``p`` with only the trainings its maps need (all cached by then)."""
    needed = {w.model for w in p.maps}
    extra = set()
    for t in p.trainings:
        if t.kind == "inpainter" and any(w.method == "CF" for w in p.maps):
            extra.add(t)
    return dataclasses.replace(p, trainings=[t for t in p.trainings if t in needed or t in extra])


def bench_maps(args, settings) -> None:
    import numpy as np
    import torch
    from distributed import Client

    from helpers.precompute import _load, _model_state, _WORKER, execute, local_cluster, plan
    from helpers.saliency.cache import MapCache
    from helpers.study import Study

    torch.set_num_threads(args.threads)
    study = Study(settings)
    p = _map_plan(plan(settings, chapters=args.only, chunk_size=args.chunk_size, study=study))
    print(p.describe())
    t0 = time.perf_counter()
    for t in p.trainings:
        _load(study, t)
    print(f"trainings (not timed below): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    maps_dir = Path(settings.cache_dir) / "maps"
    serial_dir = Path(settings.cache_dir) / "bench-serial-maps"
    for folder in (maps_dir, serial_dir):  # both runs from an empty map cache (a kept --cache keeps only models)
        shutil.rmtree(folder, ignore_errors=True)

    # Serial: the chapters' calls, one process, every image at once.
    serial_cache = MapCache(serial_dir)
    study.__dict__["map_cache"] = serial_cache
    works = list(dict.fromkeys((w.model, w.state, w.method, w.options) for w in p.maps))
    _WORKER["study"] = study
    wall, cpu = time.perf_counter(), time.process_time()
    for model, state, method, options in works:
        trained, st = _model_state(study, dataclasses.replace(p.maps[0], model=model, state=state, method=method,
                                                              options=options))
        study.maps(trained, method, state=st, **dict(options))
    serial_wall, serial_cpu = time.perf_counter() - wall, time.process_time() - cpu
    if serial_cache.stats.hits:
        raise SystemExit(f"bench: the serial run found {serial_cache.stats.hits} maps cached in {serial_dir}; it must "
                         "start from an empty cache")
    _WORKER.update(study=None)
    _WORKER["models"].clear()
    _WORKER["states"].clear()

    # Parallel: the precompute graph on a LocalCluster (cluster start timed separately).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    with local_cluster(args.workers) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("helpers.saliency"))  # imports torch/captum on every worker
        start_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = execute(p, client, threads=max(1, args.threads // args.workers), progress=False)
        graph_s = time.perf_counter() - t1
    n_maps = sum(r.get("computed", 0) for r in results if r["kind"] == "maps")
    graph_cpu = sum(r.get("cpu_seconds", 0.0) for r in results if r["kind"] == "maps")

    # Same maps, bit for bit.
    shared = MapCache(maps_dir, on_corrupt="raise")
    differ = 0
    study.__dict__["map_cache"] = shared
    for model, state, method, options in works[: min(len(works), 40)]:
        _WORKER["study"] = study
        trained, st = _model_state(study, dataclasses.replace(p.maps[0], model=model, state=state, method=method,
                                                              options=options))
        a = study.maps(trained, method, state=st, **dict(options))
        study.__dict__["map_cache"] = serial_cache
        b = study.maps(trained, method, state=st, **dict(options))
        study.__dict__["map_cache"] = shared
        differ += int(not np.array_equal(a, b))
    print()
    print(f"{'run':<44} {'wall s':>8} {'CPU s':>15} {'maps':>6}")
    print(f"{'serial chapters path, ' + str(args.threads) + ' threads':<44} {serial_wall:>8.1f} {serial_cpu:>15.1f} "
          f"{len(works) * p.n_images:>6}")
    print(f"{f'precompute, {args.workers} workers x {max(1, args.threads // args.workers)} thread(s), graph':<44} "
          f"{graph_s:>8.1f} {graph_cpu:>15.1f} {n_maps:>6}")
    print(f"{'  + cluster start':<44} {start_s:>8.1f}")
    print(f"speed-up serial / precompute graph: {serial_wall / graph_s:.2f}x (bound {args.workers}x on "
          f"{args.workers} idle cores); with cluster start {serial_wall / (graph_s + start_s):.2f}x")
    print(f"CPU time serial / graph (all workers' map tasks): {serial_cpu / graph_cpu:.2f}x (1x: no work added "
          f"by the graph; judge the wall-time ratio only on an idle machine, see the load average above)")
    print(f"maps compared bit for bit: {min(len(works), 40)} (model, state, method) groups, {differ} differ")


def bench_mprt(args, settings) -> None:
    """Cascading randomization (book) vs Quantus' MPRT on one untrained-weights model: GRAD maps, SSIM."""
    try:
        import quantus
    except ImportError:
        print("\nMPRT comparison skipped: quantus is not installed (pip install quantus==0.6.0 into a separate "
              "environment or --target folder on PYTHONPATH; it pulls OpenCV, kept out of the book's install)")
        return
    import numpy as np
    import torch

    from helpers import criteria
    from helpers.data.synthetic import generate
    from helpers.models import build
    from helpers.randomization import randomized_states
    from helpers.saliency import explain

    torch.set_num_threads(args.threads)
    arch = args.architecture or settings.architectures[0]
    size = max(64, settings.image_size)
    sample = generate(args.mprt_images, size=size, seed=args.seed, positive_fraction=1.0)
    x = torch.from_numpy(np.ascontiguousarray(sample.images)[:, None].copy())
    model = build(arch, image_size=size, seed=args.seed).eval()
    y = model(x).argmax(1).detach().numpy()

    def book():
        ref = explain(model, x, "GRAD", target=torch.as_tensor(y))
        n = 0
        for label, m in randomized_states(model, mode="cascading", seed=args.seed):
            maps = explain(m.eval(), x, "GRAD", target=torch.as_tensor(y))
            criteria.similarity_rows(ref, maps, [str(i) for i in range(len(x))], method="GRAD", replicate=0,
                                     state=label)
            n += 1
        return n

    def grad_explain(model, inputs, targets, **kwargs):
        xt = torch.as_tensor(inputs)
        return explain(model.eval(), xt, "GRAD", target=torch.as_tensor(targets))[:, None]

    def quantus_mprt():
        def ssim(a, b, batched=False, **kwargs):  # quantus 0.6.0's MPRT calls .tolist() on ssim's batched list
            return np.asarray(quantus.similarity_func.ssim(a, b, batched=batched, **kwargs))

        metric = quantus.MPRT(layer_order="top_down", similarity_func=ssim,
                              disable_warnings=True, display_progressbar=False)
        scores = metric(model=model, x_batch=x.numpy(), y_batch=y, a_batch=None, explain_func=grad_explain,
                        device="cpu")
        return len(getattr(metric, "evaluation_scores", scores) or [])

    for f in (book, quantus_mprt):  # warm-up
        f()
    times = {}
    for name, f in (("book cascading randomization", book), ("Quantus MPRT", quantus_mprt)):
        best = None
        for _ in range(2):
            t = time.perf_counter()
            f()
            best = min(best or 1e9, time.perf_counter() - t)
        times[name] = best
    n_layers = sum(1 for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    n_states = book()
    print(f"\ncascading randomization vs MPRT: {arch} at {size} px, {len(x)} images, GRAD, SSIM, quantus "
          f"{quantus.__version__}")
    print(f"{'run':<34} {'states':>7} {'wall s':>8} {'s / state':>10}")
    print(f"{'book cascading randomization':<34} {n_states:>7} {times['book cascading randomization']:>8.2f} "
          f"{times['book cascading randomization'] / n_states:>10.3f}")
    print(f"{'Quantus MPRT (layer by layer)':<34} {n_layers + 1:>7} {times['Quantus MPRT']:>8.2f} "
          f"{times['Quantus MPRT'] / (n_layers + 1):>10.3f}")
    print(f"ratio Quantus / book, per state: "
          f"{(times['Quantus MPRT'] / (n_layers + 1)) / (times['book cascading randomization'] / n_states):.2f}x; "
          f"whole test: {times['Quantus MPRT'] / times['book cascading randomization']:.2f}x")


def main() -> None:
    args = _parse()
    from helpers.config import resolve

    tmp = None
    cache = args.cache
    if cache is None:
        tmp = tempfile.mkdtemp(prefix="bench-precompute-")
        cache = tmp
    overrides = {k: v for k, v in dict(methods=args.methods, n_images=args.n_images, image_size=args.image_size).items()
                 if v is not None}
    settings = resolve(args.preset, cache_dir=str(Path(cache) / "cache"), results_dir=str(Path(cache) / "results"),
                       seed=args.seed, **overrides)
    _header(args, settings)
    try:
        parts = {x.strip() for x in args.parts.split(",") if x.strip()}
        unknown = parts - {"maps", "mprt"}
        if unknown:
            raise SystemExit(f"--parts: unknown part(s) {sorted(unknown)}; valid: maps, mprt")
        if "maps" in parts:
            bench_maps(args, settings)
        if "mprt" in parts:
            bench_mprt(args, settings)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
