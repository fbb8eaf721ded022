"""The precompute (helpers.precompute): the plan covers the chapters, a 2-worker Dask graph fills the cache with the
serial maps bit for bit, a second run does nothing, and a worker killed mid-graph corrupts nothing."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.book.execution import cache_snapshot
from helpers.config import resolve
from helpers.precompute import BOX_FRACTIONS, CF_VARIANTS, CHAPTER_REQUESTS, MapWork, PrecomputeError, Training, plan

ROOT = Path(__file__).resolve().parents[1]

# A reduced smoke run for the cluster tests: two methods, four images, one replicate trained for one epoch (the
# permuted-label model for at most two), the chapters of the trained/randomized classifier maps (01, 02):
# 3 trainings and a few dozen map tasks.
TINY = dict(methods=("GRAD", "SG"), n_images=4, n_replicates=1, epochs=1, label_randomization_max_epochs=2)
TINY_CHAPTERS = ("01_localization_utility", "02_randomization_sensitivity")


def _notebook_constant(name: str, notebook: str):
    nb = json.loads((ROOT / "notebooks" / notebook).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():  # cells may hold IPython magics: read line by line
            if line.startswith(f"{name} = "):
                return ast.literal_eval(line.split("=", 1)[1].split("#", 1)[0].strip())
    raise AssertionError(f"{notebook} defines no {name}")


def _settings(tmp: Path, **extra):
    return resolve("smoke", cache_dir=str(tmp / "cache"), results_dir=str(tmp / "results"), **{**TINY, **extra})


def test_plan_constants_are_the_notebooks():
    assert _notebook_constant("BOX_FRACTIONS", "06_trainable_saliency.ipynb") == BOX_FRACTIONS
    assert _notebook_constant("VARIANTS", "07_counterfactual_inpainting.ipynb") == CF_VARIANTS


def test_plan_lists_each_training_once_and_chunks_maps(tmp_path):
    settings = resolve("smoke", cache_dir=str(tmp_path / "cache"), results_dir=str(tmp_path / "results"))
    p = plan(settings, chunk_size=4)
    names = [t.name for t in p.trainings]
    assert len(names) == len(set(names))
    primary, other = settings.architectures
    expected = {f"classifier/{primary}/r0/true", f"classifier/{primary}/r1/true", f"classifier/{other}/r0/true",
                f"classifier/{primary}/r0/permuted", "localizer/r0", "localizer/r1", "inpainter",
                *(f"self_explaining/{primary}/r0/box{f:g}" for f in BOX_FRACTIONS),
                f"self_explaining/{primary}/r1/box0", f"self_explaining/{other}/r0/box0"}
    assert set(names) == expected
    # Dependencies come first: a fine-tuned label-efficiency model after its base, the inpainter first.
    for i, t in enumerate(p.trainings):
        for dep in t.depends_on:
            assert names.index(dep.name) < i
    assert names[0] == "inpainter"
    # Every map's model is trained by the plan; chunks of 4 cover the 6 explained images in 2 tasks.
    assert {w.model for w in p.maps} <= set(p.trainings)
    assert p.n_images == 6
    by_work = {}
    for w in p.maps:
        by_work.setdefault((w.model, w.state, w.method, w.options), []).append(w.images)
    assert all(chunks == [(0, 1, 2, 3), (4, 5)] for chunks in by_work.values())
    # Chapter 02's cascade of the primary model: trained + every block, for every method and replicate.
    from helpers.randomization import state_labels

    r0 = Training("classifier", primary, 0)
    for label in state_labels(primary)[1:]:
        for m in settings.methods:
            assert (r0, f"cascading:{label}", m, ()) in by_work
            assert (r0, f"independent:{label}", m, ()) in by_work
    assert (r0, "trained", "CF", (("perturbation", "blur"),)) in by_work
    # Chapter 01's fully randomized model is the cascade's end state: planned once, for both chapters.
    assert not any(state == "full" for _, state, _, _ in by_work)
    last = f"cascading:{state_labels(primary)[-1]}"
    chapters = {tuple(p.requested_by[w.name]) for w in p.maps
                if w.model == r0 and w.state == last and w.method in settings.methods and not w.options}
    assert chapters == {("01_localization_utility", "02_randomization_sensitivity")}, chapters
    text = p.describe()
    assert "maps SIG" in text and "train self_explaining" in text and "fwd+bwd passes" in text


def test_plan_rejects_bad_options(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(PrecomputeError, match="unknown chapter"):
        plan(settings, chapters=["99_nothing"])
    with pytest.raises(PrecomputeError, match="chunk_size"):
        plan(settings, chunk_size=0)


def test_cli_dry_run_prints_counts(tmp_path, capsys):
    from helpers.book.cli import main

    code = main(["precompute", "--preset", "smoke", "--dry-run", "--param", f"cache_dir={tmp_path / 'cache'}",
                 "--param", f"results_dir={tmp_path / 'results'}", "--param", "methods=[GRAD, IG]"])
    out = capsys.readouterr().out
    assert code == 0
    assert "trainings" in out and "maps IG" in out and "maps GRAD" in out and "total" in out
    assert not (tmp_path / "cache" / "maps").exists()  # a dry run computes nothing
    assert main(["precompute", "--preset", "smoke", "--dry-run", "--only", "nope",
                 "--param", f"cache_dir={tmp_path / 'cache'}"]) == 1
    assert "unknown chapter" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster (helpers.precompute.local_cluster) for every cluster test of this file: each
    start costs two worker processes importing torch."""
    from helpers.precompute import local_cluster

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with local_cluster(2) as started:
        yield started


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, cluster):
    """A 2-worker precompute of the tiny plan (chunks of 2 images) on the module's cluster."""
    from helpers.precompute import precompute

    tmp = tmp_path_factory.mktemp("precompute")
    settings = _settings(tmp)
    results = precompute(settings, scheduler=cluster.scheduler_address, threads=1, chunk_size=2,
                         chapters=TINY_CHAPTERS, progress=False, out=lambda *_: None)
    return settings, results


@pytest.mark.slow
def test_precompute_maps_equal_serial_maps(precomputed, tmp_path):
    from helpers.saliency.cache import MapCache
    from helpers.study import Study

    settings, results = precomputed
    assert all(r["kind"] in ("training", "maps") for r in results)
    assert sum(r.get("computed", 0) for r in results) > 0
    # The chapters' serial path (Study.maps on every explained image, the states of Study.randomized_states) on
    # the precompute's trained models, into a separate map cache: identical maps, bit for bit.
    study = Study(settings)
    study.__dict__["map_cache"] = MapCache(Path(settings.cache_dir) / "serial-maps")
    shared = Study(settings)
    trained = study.classifier(progress=False)
    states = ["trained", *study.randomized_states(trained, mode="cascading"), study.fully_randomized(trained)]
    for state in states:
        for method in settings.methods:
            serial = study.maps(trained, method, state=state)
            cached = shared.maps(trained, method, state=state)
            np.testing.assert_array_equal(serial, cached)
    assert shared.map_cache.stats.misses == 0 and shared.map_cache.stats.hits > 0


@pytest.mark.slow
def test_second_precompute_does_nothing(precomputed, cluster):
    from helpers.precompute import precompute

    settings, _ = precomputed
    before = cache_snapshot(settings.cache_dir)
    lines = []
    results = precompute(settings, scheduler=cluster.scheduler_address, threads=1, chunk_size=2,
                         chapters=TINY_CHAPTERS, progress=False, out=lines.append)
    assert sum(r.get("computed", 0) for r in results if r["kind"] == "maps") == 0
    assert not [r for r in results if r["kind"] == "training" and r["cached"] is False]
    assert "everything was cached" in lines[-1]
    assert cache_snapshot(settings.cache_dir) == before  # not a file written, not a file touched


@pytest.mark.slow
def test_worker_killed_mid_graph_completes_without_corrupt_entries(tmp_path, precomputed, cluster):
    """SIGKILL of a worker while it computes maps: Dask reruns its tasks elsewhere, every entry reads back valid."""
    from distributed import Client

    from helpers.precompute import _WORKER, _model_state, submit
    from helpers.saliency.cache import MapCache
    from helpers.study import Study

    settings = _settings(tmp_path)
    # The tiny plan's data and trained models, not its maps: the graph below only computes maps. (This test runs
    # last in the file: the killed worker's nanny starts a new one in the shared cluster.)
    for folder in ("data", "models", "localizers"):
        shutil.copytree(Path(precomputed[0].cache_dir) / folder, Path(settings.cache_dir) / folder)
    # Chapter 01's work (one classifier, one U-Net; trained and fully randomized maps), one image per task.
    p = plan(settings, chapters=["01_localization_utility"], chunk_size=1)
    with Client(cluster) as client:
        pids = client.run(os.getpid)
        futures = submit(p, client, threads=1, retries=2)
        victim = None
        deadline = time.monotonic() + 900
        while victim is None and time.monotonic() < deadline:
            done = sum(f.status == "finished" for k, f in futures.items() if "|" in k)  # finished map tasks
            busy = [w for w, keys in client.processing().items() if any(str(k).startswith("maps-") for k in keys)]
            if done >= 2 and busy:
                victim = busy[0]
            else:
                time.sleep(0.05)
        assert victim is not None, "no map task was running to kill"
        os.kill(pids[victim], signal.SIGKILL)  # the worker dies mid-task; its nanny starts a new one
        results = client.gather(list(futures.values()))
        assert pids[victim] not in client.run(os.getpid).values()
    assert len(results) == len(p.trainings) + len(p.maps)
    # (The killed task, and finished tasks whose results lived on the dead worker, rerun and find their map cached.)
    assert 0 < sum(r.get("computed", 0) for r in results if r["kind"] == "maps") <= len(p.maps)
    # Every planned entry reads back and passes its checks (key, SHA-256, shape, finite); nothing was set aside.
    maps_root = Path(settings.cache_dir) / "maps"
    assert not (maps_root / "quarantine").exists()
    study = Study(settings)
    checker = study.__dict__["map_cache"] = MapCache(maps_root, on_corrupt="raise")
    _WORKER.update(study=study)
    try:
        for w in p.maps:
            trained, state = _model_state(study, w)
            study.maps(trained, w.method, state=state, images=study.explained.subset(list(w.images)), **dict(w.options))
    finally:
        _WORKER.update(study=None)
        _WORKER["models"].clear()
        _WORKER["states"].clear()
    assert checker.stats.misses == 0 and checker.stats.hits == len(p.maps)
    # Only entries, their key files and (from the killed task at most) a stray temporary file.
    assert all(f.suffix in (".npz", ".json", ".tmp", ".lock") for f in maps_root.rglob("*") if f.is_file())


def test_map_work_names_are_unique_per_options():
    model = Training("classifier", "smallcnn", 0)
    a = MapWork(model, "trained", "CF", (("perturbation", "blur"),), (0,))
    b = MapWork(model, "trained", "CF", (("perturbation", "noise"),), (0,))
    assert a.name != b.name and "perturbation=blur" in a.name
    assert set(CHAPTER_REQUESTS) >= {"00_data_and_models", "02_randomization_sensitivity", "07_counterfactual_inpainting"}


# The whole smoke book after a 2-worker precompute, adding or changing no cache file, is `make test`'s
# `precompute` + `execute --after-precompute` step (tests/book/test_book_execution.py tests the check itself).
