"""Jobs on a real multi-process cluster (``dask scheduler`` + two ``dask worker`` processes): the cubes equal an
in-process run's, a killed worker changes nothing, ``stop()`` cancels within seconds, two jobs writing one cube at
once lose nothing, and a controller killed mid-write is repaired by a rerun.

The inputs are the real Landsat Collection 1 thumbnails (60 x 60 px whole scenes) on a 3660 m grid, written into
the one MGRS tile both touch (55HFA); spectral homogenization and BRDF are off to keep each job at a few seconds.

Such small products run as one scene task each by default (``scene_task_max_mb``); most tests here turn that off
(``CLIENT_GRAPHS``) because they test the client-built graphs' tasks, and their fault levels read the test's
environment where the graphs are built. The scene-task tests use fault levels that run on the workers, which get
their marker folder and pause from the cluster's environment (``WORKER_MARKERS``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from dask.utils import key_split
from distributed import Client, get_task_stream

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.errors import ProcessingError
from gmsdask.io.cube import open_cube
from gmsdask.levels import default_registry

from .cluster import REPO, RealCluster, real_cluster, subprocess_env
from .conftest import data_path
from .fault_levels import (
    EAGER_PAUSED_L1B,
    FAILING_L1C,
    FAILURES_ENV,
    FLAKY_L1B,
    FLAKY_L2C,
    MARKERS_ENV,
    PAUSE_ENV,
    PAUSED_L1B,
    PAUSED_L2C,
    markers,
    wait_for_marker,
)

PRODUCTS = ("LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz", "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz")
TILE = "55HFA"
OPTIONS = {"target_gsd": 3660.0, "mgrs_pixel_buffer": 0, "tiling_block_size_XY": (64, 64),
           "target_mgrs_tiles": [TILE], "skip_spechomo": True, "brdf_correction": False}
CANCEL_LIMIT_S = 10.0
#: levels whose first task per scene fails ``GMSDASK_TEST_FAILURES`` times before it succeeds
FLAKY_LEVELS = {"L1B": FLAKY_L1B, "L2C": FLAKY_L2C}
#: every scene's graph built on the client (the chunks' tasks on the workers)
CLIENT_GRAPHS = {"scene_task_max_mb": 0.0, "whole_scene_task_max_mb": 0.0}
#: the workers' marker folder (below the cluster's directory) for fault levels that run inside scene tasks
WORKER_MARKERS = "worker-markers"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> RealCluster:
    directory = tmp_path_factory.mktemp("cluster")
    (directory / WORKER_MARKERS).mkdir()
    env = {MARKERS_ENV: str(directory / WORKER_MARKERS), PAUSE_ENV: "120"}
    with real_cluster(directory, env=env) as running:
        yield running


def _job(folder: Path, scheduler_address: str | None, **options) -> tuple[Catalog, int]:
    """A catalogue ``folder/catalog.sqlite`` with a job over both products, cubes in ``folder/cubes``."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                     path_procdata_scenes=folder / "scenes", path_job_logs=folder / "logs",
                     scheduler_address=scheduler_address, **(OPTIONS | options))
    catalog = Catalog.from_config(cfg)
    scene_ids = catalog.add_products([data_path("landsat", "collection1", name) for name in PRODUCTS])
    return catalog, catalog.create_job(scene_ids, cfg, comment=folder.name)


def _cubes(catalog: Catalog, job_id: int) -> dict[str, xr.Dataset]:
    """The job's cubes, loaded, by tile."""
    paths = {record.tile: record.path for record in catalog.tiles_written(job_id)}
    return {tile: open_cube(path).load() for tile, path in paths.items()}


def _assert_same_cubes(actual: dict[str, xr.Dataset], expected: dict[str, xr.Dataset]) -> None:
    """Same tiles, variables, time slots (each scene once) and values."""
    assert sorted(actual) == sorted(expected)
    for tile, cube in actual.items():
        reference = expected[tile]
        ids = cube["scene_id"].values.tolist()
        assert len(ids) == len(set(ids)), f"{tile}: a scene is in the cube twice: {ids}"
        assert ids == reference["scene_id"].values.tolist()
        assert sorted(cube.data_vars) == sorted(reference.data_vars)
        np.testing.assert_array_equal(cube["time"].values, reference["time"].values)
        xr.testing.assert_equal(cube.drop_attrs(), reference.drop_attrs())


@pytest.fixture(scope="module")
def reference_cubes(tmp_path_factory) -> dict[str, xr.Dataset]:
    """Cubes of an undisturbed run on an in-process cluster (closed again before the real-cluster tests)."""
    catalog, job_id = _job(tmp_path_factory.mktemp("reference"), None)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        controller = ProcessController(job_id, db_url=catalog.url)
        controller.run_all_processors()
        controller.shutdown()
    assert catalog.job(job_id).status == "finished"
    cubes = _cubes(catalog, job_id)
    assert list(cubes) == [TILE] and cubes[TILE].sizes["time"] == 2
    # a real cube: both scenes carry valid reflectance on the tile
    assert all(int(cubes[TILE]["nodata"].isel(time=i).sum()) < cubes[TILE]["nodata"].isel(time=i).size
               for i in range(2))
    return cubes


def _chunk_writes_by_worker(task_stream: list[dict]) -> dict[str, int]:
    """``{worker address: cube chunk writes it executed}`` from a task stream of the run."""
    from collections import Counter

    return dict(Counter(task["worker"] for task in task_stream if key_split(task["key"]) == "cube-window"))


@pytest.mark.parametrize("scene_task_max_mb,whole_scene_task_max_mb,scene_tasks",
                         [(0.0, 0.0, 0), (0.2, 0.0, 1), (16.0, 0.0, 2), (0.0, 16.0, 2)],
                         ids=["client-graphs", "mixed", "scene-tasks", "whole-scenes"])
def test_job_on_a_real_cluster_writes_the_cubes_of_an_in_process_run(scene_task_max_mb, whole_scene_task_max_mb,
                                                                      scene_tasks, tmp_path, cluster,
                                                                      reference_cubes, monkeypatch):
    # relative output paths in the job's configuration: the workers run in another folder, so the cubes land in
    # the right place only because paths are made absolute when the job starts
    monkeypatch.chdir(tmp_path)
    # the products are 0.09 MB (LC08) and 0.43 MB (LT05): 0.2 MB runs one as a scene task, the other's graph here;
    # whole scenes: a job of as many scenes as workers runs each as a task, whatever scene_task_max_mb says
    catalog, job_id = _job(Path("job"), cluster.scheduler_address, scene_task_max_mb=scene_task_max_mb,
                           whole_scene_task_max_mb=whole_scene_task_max_mb)
    assert catalog.job(job_id).config["path_procdata_MGRS"] == "job/cubes"
    controller = ProcessController(job_id, db_url=catalog.url)
    with cluster.client() as observer, get_task_stream(client=observer) as stream:
        results = controller.run_all_processors()
    controller.shutdown()
    assert catalog.job(job_id).status == "finished"
    _assert_same_cubes(_cubes(catalog, job_id), reference_cubes)
    assert all(Path(t.path).is_relative_to(tmp_path / "job" / "cubes") for t in catalog.tiles_written(job_id))
    assert not list(cluster.directory.rglob("*.zarr"))
    # one task per small scene (the workers built and computed its chain); the others' chunk tasks wrote their
    # pixels from the workers to the cube, not through the client
    keys = [key_split(task["key"]) for task in stream.data]
    assert keys.count("scene-task") == scene_tasks, sorted(set(keys))
    assert (keys.count("cube-window") > 0) == (scene_tasks < len(PRODUCTS)), sorted(set(keys))
    # what the scene tasks did is in the catalogue and the job log as for the others, recorded by the client
    levels = default_registry().names
    for result in results:
        records = {r.level: r for r in catalog.level_records(job_id, result.scene_id)}
        assert [records[name].status for name in levels] == ["done"] * 4 + ["skipped", "done"], records  # no L2B
        assert records["L1B"].facts["coreg_status"] == "no_reference"
        assert records["L2C"].output.endswith(f"{TILE}.icechunk")
    log = (tmp_path / "job" / "logs" / f"job_{job_id}.log").read_text()
    assert all(f"{product.split('.')[0]} L2C done" in log for product in PRODUCTS), log[-2000:]


def _run_killing_the_first_worker_at_work(catalog: Catalog, job_id: int, marker_dir: Path, *,
                                          release: bool = False) -> tuple[list, list[int]]:
    """Run the job with ``PAUSED_L1B``; SIGKILL the worker whose L1B work leaves the first marker (then end every
    pause if ``release``). The job's results and the killed worker's pid (asserted: exactly one)."""
    killed: list[int] = []

    def kill_first_worker_at_work() -> None:
        pid = int(wait_for_marker(marker_dir, "L1B").read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        if release:
            (marker_dir / "release").touch()

    killer = threading.Thread(target=kill_first_worker_at_work, daemon=True)
    killer.start()
    controller = ProcessController(job_id, registry=default_registry().with_level(PAUSED_L1B), db_url=catalog.url)
    results = controller.run_all_processors()
    controller.shutdown()
    killer.join(5)
    assert len(killed) == 1, "the worker was not killed during the job"
    return results, killed


def _worker_markers(cluster: RealCluster) -> Path:
    """The workers' marker folder, emptied (no release file, no markers of an earlier test)."""
    folder = cluster.directory / WORKER_MARKERS
    for path in folder.iterdir():
        path.unlink()
    return folder


def _markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, pause_s: float | None = None,
             failures: int | None = None) -> Path:
    """A marker folder for fault levels built on the client (they read this test's environment), with their pause
    and injected failures."""
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    monkeypatch.setenv(MARKERS_ENV, str(marker_dir))
    if pause_s is not None:
        monkeypatch.setenv(PAUSE_ENV, str(pause_s))
    if failures is not None:
        monkeypatch.setenv(FAILURES_ENV, str(failures))
    return marker_dir


def _running_tasks(client: Client) -> int:
    """Tasks whose function still runs in a worker thread, cancelled ones included (the scheduler forgets a
    cancelled task at once; its worker keeps it, in state ``cancelled``, until the function returns)."""
    def running(dask_worker) -> int:
        return sum(ts.state in ("executing", "cancelled", "long-running")
                   for ts in dask_worker.state.tasks.values())
    return sum(client.run(running).values())


def _run_stopped_at_work(controller: ProcessController, marker_dir: Path, tag: str, *,
                         by_signal: bool = False) -> tuple[list, float]:
    """Run the job and stop it once a work marker ``tag`` appears in ``marker_dir``: with ``controller.stop()``, or
    with SIGTERM to this process (``by_signal``: the controller's handler runs stop() in the main thread). Returns
    the scenes' results and the seconds from the stop to ``run_all_processors``' return; then lets the paused
    work end and shuts the controller down."""
    stopped_at: list[float] = []

    def stop_once_at_work() -> None:
        wait_for_marker(marker_dir, tag)
        stopped_at.append(time.monotonic())
        if by_signal:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            controller.stop(signal.SIGINT, None)

    threading.Thread(target=stop_once_at_work, daemon=True).start()
    try:
        results = controller.run_all_processors()
        returned_at = time.monotonic()
    finally:
        (marker_dir / "release").touch()  # the paused work ends (cancelled tasks' worker threads go)
        controller.shutdown()
    assert stopped_at, f"the job ended before its work ({tag}) started"
    seconds = returned_at - stopped_at[0]
    print(f"stop at {tag} -> run_all_processors returned in {seconds:.2f} s")
    return results, seconds


def test_a_stopped_scene_task_ends_within_seconds_and_commits_nothing(tmp_path, cluster):
    cluster.wait_for_workers(2)
    marker_dir = _worker_markers(cluster)
    catalog, job_id = _job(tmp_path, cluster.scheduler_address)
    controller = ProcessController(job_id, registry=default_registry().with_level(PAUSED_L1B), db_url=catalog.url)
    # stopped once a scene task reached its L1B work on a worker; the paused work ends after the stop, and each
    # task's chain must then see it
    results, seconds = _run_stopped_at_work(controller, marker_dir, "L1B")
    assert seconds < CANCEL_LIMIT_S
    assert catalog.job(job_id).status == "canceled"
    assert all(r.exception_type == "Cancelled" and r.level_reached is None for r in results), results
    for result in results:  # the client records what it knows: the scene's first level not done was canceled
        assert catalog.level_status(job_id, result.scene_id) == {"L1A": "canceled"}
    # the tasks go on until their pause ends, then stop at the next level: no level product, no cube
    with cluster.client() as observer:
        deadline = time.monotonic() + 60
        while _running_tasks(observer) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running_tasks(observer)
    assert not list((tmp_path / "cubes").rglob("*.icechunk")) and catalog.tiles_written(job_id) == []
    assert not list((tmp_path / "scenes").rglob("L2B.zarr"))


def test_a_scene_task_failure_is_recorded_with_its_level_error_and_traceback(tmp_path, cluster):
    catalog, job_id = _job(tmp_path, cluster.scheduler_address)
    controller = ProcessController(job_id, registry=default_registry().with_level(FAILING_L1C), db_url=catalog.url)
    results = controller.run_all_processors()
    controller.shutdown()
    assert all(r.failed_level == "L1C" and r.exception_type == "ProcessingError" and r.level_reached == "L1B"
               for r in results), results
    assert catalog.job(job_id).status == "failed"  # every scene failed
    failures = catalog.failures(job_id)
    assert len(failures) == len(PRODUCTS)
    for failure in failures:  # the traceback as the worker saw it, not just the type
        assert failure.error_type == "ProcessingError" and "injected failure" in failure.error_message
        assert "_failing_l1c" in failure.error_traceback and "raise ProcessingError" in failure.error_traceback
        assert catalog.level_status(job_id, failure.scene_id) == {"L1A": "done", "L1B": "done", "L1C": "failed"}
    log = (tmp_path / "logs" / f"job_{job_id}.log").read_text()
    assert log.count("L1C failed: ProcessingError") == len(PRODUCTS), log[-2000:]


@pytest.mark.parametrize("retries", [1, 0])
def test_a_scene_tasks_failing_computation_is_retried_as_often_as_the_retries_option_says(retries, tmp_path,
                                                                                           cluster):
    marker_dir = _worker_markers(cluster)  # FLAKY_L1B fails its first attempt on the workers (no failures set)
    catalog, job_id = _job(tmp_path, cluster.scheduler_address)
    controller = ProcessController(job_id, registry=default_registry().with_level(FLAKY_L1B), db_url=catalog.url,
                                   retries=retries)
    results = controller.run_L1B_processing()
    controller.shutdown()
    attempts = {r.product_id: len(markers(marker_dir, f"L1B-{r.product_id}")) for r in results}
    statuses = [catalog.level_status(job_id, r.scene_id)["L1B"] for r in results]
    if retries:
        assert all(r.level_reached == "L1B" and r.failed_level is None for r in results), results
        assert set(attempts.values()) == {2} and set(statuses) == {"done"}
    else:
        assert all(r.failed_level == "L1B" and r.exception_type == "RuntimeError" for r in results), results
        assert set(attempts.values()) == {1} and set(statuses) == {"failed"}


def test_killing_a_worker_in_a_scene_task_reruns_the_scene_elsewhere(tmp_path, cluster, reference_cubes):
    cluster.wait_for_workers(2)
    marker_dir = _worker_markers(cluster)
    catalog, job_id = _job(tmp_path, cluster.scheduler_address)
    # the tasks go on after the kill (the rerun one too): their pause ends
    results, killed = _run_killing_the_first_worker_at_work(catalog, job_id, marker_dir, release=True)
    starts = [int(p.read_text()) for p in markers(marker_dir, "L1B")]
    assert killed[0] in starts and len(starts) >= len(PRODUCTS) + 1, starts  # the killed task's scene ran again
    assert catalog.job(job_id).status == "finished"
    assert all(r.level_reached == "L2C" and r.failed_level is None for r in results), results
    _assert_same_cubes(_cubes(catalog, job_id), reference_cubes)


def test_killing_a_worker_mid_job_changes_nothing(tmp_path, cluster, reference_cubes, monkeypatch):
    cluster.wait_for_workers(2)
    marker_dir = _markers(tmp_path, monkeypatch, pause_s=3)
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    results, killed = _run_killing_the_first_worker_at_work(catalog, job_id, marker_dir)
    starts = markers(marker_dir, "L1B")
    by_pid = [int(p.read_text()) for p in starts]
    # the killed worker's task ran again elsewhere: one more start than scenes, one by the killed worker
    assert len(starts) == len(PRODUCTS) + 1 and by_pid.count(killed[0]) == 1, [p.name for p in starts]
    assert catalog.job(job_id).status == "finished"
    assert all(r.level_reached == "L2C" and r.failed_level is None for r in results), results
    _assert_same_cubes(_cubes(catalog, job_id), reference_cubes)
    print(f"worker {killed[0]} killed; L1B work started {len(starts)} times for {len(PRODUCTS)} scenes")


@pytest.mark.parametrize("retries", [2, 0])
@pytest.mark.parametrize("level", ["L1B", "L2C"])  # the level's work; the cube writer's chunk computations
def test_a_task_error_is_retried_as_often_as_the_retries_option_says(level, retries, tmp_path, cluster, monkeypatch,
                                                                     reference_cubes):
    cluster.wait_for_workers(2)
    marker_dir = _markers(tmp_path, monkeypatch, failures=1)  # each scene's first task fails once, then succeeds
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    controller = ProcessController(job_id, registry=default_registry().with_level(FLAKY_LEVELS[level]),
                                   db_url=catalog.url, retries=retries)
    results = controller.run_level(level)
    controller.shutdown()
    attempts = {r.product_id: len(markers(marker_dir, f"{level}-{r.product_id}")) for r in results}
    print(f"retries={retries}: {level} attempts per scene {attempts}")
    statuses = [catalog.level_status(job_id, r.scene_id)[level] for r in results]
    if retries:
        assert all(r.level_reached == level and r.failed_level is None for r in results), results
        assert set(attempts.values()) == {2} and set(statuses) <= {"done", "skipped"}  # completed
        if level == "L2C":
            _assert_same_cubes(_cubes(catalog, job_id), reference_cubes)
    else:
        assert all(r.failed_level == level and r.exception_type == "RuntimeError" for r in results), results
        assert set(attempts.values()) == {1} and set(statuses) == {"failed"}


def test_stop_cancels_work_in_flight_within_seconds(tmp_path, cluster, monkeypatch):
    cluster.wait_for_workers(2)
    # the work pauses far longer than the test: only cancelling ends the job in time
    marker_dir = _markers(tmp_path, monkeypatch, pause_s=120)
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    controller = ProcessController(job_id, registry=default_registry().with_level(PAUSED_L1B), db_url=catalog.url)
    results, seconds = _run_stopped_at_work(controller, marker_dir, "L1B", by_signal=True)
    assert seconds < CANCEL_LIMIT_S
    assert catalog.job(job_id).status == "canceled"
    assert all(r.level_reached in (None, "L1A") and r.exception_type == "Cancelled" for r in results), results
    for result in results:
        statuses = catalog.level_status(job_id, result.scene_id)
        assert statuses.get("L1B") != "done" and not {"L1C", "L2A", "L2B", "L2C"} & set(statuses), statuses
    assert catalog.tiles_written(job_id) == []


def test_stop_during_a_levels_own_eager_step_cancels_it_within_seconds(tmp_path, cluster, monkeypatch):
    """A level's small eager step (``dask.compute`` inside ``run``) is cancelled by stop() like the level's work:
    in CI a stop during one scene's cube write waited 12 s for another scene's L1C sums queued behind it."""
    cluster.wait_for_workers(2)
    # the work pauses far longer than the test: only cancelling ends the job in time
    marker_dir = _markers(tmp_path, monkeypatch, pause_s=120)
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    controller = ProcessController(job_id, registry=default_registry().with_level(EAGER_PAUSED_L1B),
                                   db_url=catalog.url)
    results, seconds = _run_stopped_at_work(controller, marker_dir, "eager-L1B")
    assert seconds < CANCEL_LIMIT_S
    assert catalog.job(job_id).status == "canceled"
    assert all(r.level_reached in (None, "L1A") and r.exception_type == "Cancelled" for r in results), results
    assert {catalog.level_status(job_id, r.scene_id).get("L1B") for r in results} == {"canceled"}
    assert not markers(marker_dir, "flaky-L1B"), "a level went on past its cancelled eager step"


def test_a_levels_own_eager_step_is_retried_as_often_as_the_retries_option_says(tmp_path, cluster, monkeypatch):
    cluster.wait_for_workers(2)
    marker_dir = _markers(tmp_path, monkeypatch, pause_s=0, failures=1)  # each eager task fails once, then succeeds
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    controller = ProcessController(job_id, registry=default_registry().with_level(EAGER_PAUSED_L1B),
                                   db_url=catalog.url, retries=1)
    results = controller.run_L1B_processing()
    controller.shutdown()
    assert all(r.level_reached == "L1B" and r.failed_level is None for r in results), results
    assert {len(markers(marker_dir, f"flaky-L1B-{r.product_id}")) for r in results} == {2}


def test_stop_during_the_cube_write_cancels_within_seconds(tmp_path, cluster, monkeypatch):
    """L2C computes its chunk writes itself and polls the stop flag; the other scene's levels may still be in their
    own eager steps then, queued behind the paused writes (the CI failure the eager-step test reproduces)."""
    cluster.wait_for_workers(2)
    marker_dir = _markers(tmp_path, monkeypatch, pause_s=12)  # each write pauses longer than the limit
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    controller = ProcessController(job_id, registry=default_registry().with_level(PAUSED_L2C), db_url=catalog.url)
    _results, seconds = _run_stopped_at_work(controller, marker_dir, "L2C")
    assert catalog.job(job_id).status == "canceled"
    assert seconds < CANCEL_LIMIT_S
    assert all(catalog.level_status(job_id, i).get("L2C") != "done" for i in catalog.job(job_id).scene_ids)


def _gmsdask_run(job_id: int, db_url: str, scheduler_address: str, log: Path, **env: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "gmsdask.cli", "run", str(job_id), "--db-url", db_url,
                                 "--scheduler-address", scheduler_address],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=subprocess_env(**env))


def test_two_jobs_writing_one_cube_at_once_lose_nothing(tmp_path, cluster, reference_cubes):
    cluster.wait_for_workers(2)
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    catalog, first = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    second = catalog.create_job(catalog.job(first).scene_ids[::-1],
                                set_config(**{k: v for k, v in catalog.job(first).config.items() if k != "job_ID"}))
    # the pixel writes pause a second, so that the two jobs' writes into the one cube overlap
    env = {MARKERS_ENV: str(marker_dir), PAUSE_ENV: "1", "GMSDASK_LEVEL_PLUGINS": "tests.fault_levels:PAUSED_L2C"}
    runs = [_gmsdask_run(job, catalog.url, cluster.scheduler_address, tmp_path / f"run{job}.log", **env)
            for job in (first, second)]
    for run, job in zip(runs, (first, second)):
        assert run.wait(180) == 0, (tmp_path / f"run{job}.log").read_text()[-3000:]
    # each scene's write paused (the two jobs share one scheduler, so identical pixel tasks may run once for both)
    for name in PRODUCTS:
        assert len(markers(marker_dir, f"L2C-{name.split('.')[0]}")) >= 1
    for job in (first, second):
        assert catalog.job(job).status == "finished"
        assert {(t.tile, t.scene_id) for t in catalog.tiles_written(job)} == \
            {(TILE, scene) for scene in catalog.job(job).scene_ids}
        _assert_same_cubes(_cubes(catalog, job), reference_cubes)


def test_killing_the_controller_mid_cube_write_then_rerunning_gives_the_undisturbed_cube(tmp_path, cluster,
                                                                                        reference_cubes):
    cluster.wait_for_workers(2)
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    catalog, job_id = _job(tmp_path, cluster.scheduler_address, **CLIENT_GRAPHS)
    env = {MARKERS_ENV: str(marker_dir), PAUSE_ENV: "3", "GMSDASK_LEVEL_PLUGINS": "tests.fault_levels:PAUSED_L2C"}
    run = _gmsdask_run(job_id, catalog.url, cluster.scheduler_address, tmp_path / "killed.log", **env)
    try:
        wait_for_marker(marker_dir, "L2C", timeout=180)
    finally:
        run.kill()  # SIGKILL: no handler, no cleanup
        run.wait(30)
    assert run.returncode == -signal.SIGKILL
    assert catalog.job(job_id).status == "running"  # the killed run could not record anything after this
    for path in (tmp_path / "cubes").rglob(f"{TILE}.icechunk"):
        try:  # nothing uncommitted is visible: the slots of committed scenes only, or no data at all yet
            print(f"after the kill, cube {TILE} holds {open_cube(path)['scene_id'].values.tolist()}")
        except ProcessingError as empty:
            print(f"after the kill: {empty}")

    rerun = _gmsdask_run(job_id, catalog.url, cluster.scheduler_address, tmp_path / "rerun.log")
    assert rerun.wait(180) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    assert catalog.job(job_id).status == "finished"
    _assert_same_cubes(_cubes(catalog, job_id), reference_cubes)


@pytest.mark.parametrize("workers", [2, 1])
def test_whole_scenes_wait_for_their_reference_inside_their_tasks(workers, tmp_path, cluster):
    """Three dates of one tile, one the others' L1B reference, each run as one task (``whole_scene_task_max_mb``):
    a task waits inside for its reference's L1A, also on one worker, where it must leave the worker's only thread
    to the reference's task (else the job would hang), and every scene is co-registered to the reference."""
    from gmsdask.synthetic import write_sentinel2_l1c

    products = [write_sentinel2_l1c(tmp_path / f"in{day}", tile="33UUU", size=(240, 240),
                                    acquisition_time=f"2024-06-{day:02d}", cloud_fraction=0.0 if day == 11 else 0.1,
                                    seed=day).path for day in (1, 6, 11)]
    folder = tmp_path / "job"
    cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                     path_procdata_scenes=folder / "scenes", path_job_logs=folder / "logs",
                     scheduler_address=cluster.scheduler_address if workers == 2 else None, target_gsd=60.0,
                     tiling_block_size_XY=(128, 128), scene_task_max_mb=0.0, whole_scene_task_max_mb=100.0,
                     skip_spechomo=True, brdf_correction=False)
    catalog = Catalog.from_config(cfg)
    job_id = catalog.create_job(catalog.add_products(products), cfg)
    controller = ProcessController(job_id, db_url=catalog.url)
    if workers == 2:
        observer = cluster.client()
    else:  # a cluster of one single-threaded worker process as the job's current client
        from distributed import LocalCluster

        local = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
        observer = Client(local)
    try:
        with get_task_stream(client=observer) as stream:
            finished = threading.Event()
            runner = threading.Thread(target=lambda: (controller.run_all_processors(), finished.set()), daemon=True)
            runner.start()
            runner.join(timeout=600)
            assert finished.is_set(), "the job hung: a waiting scene task held the thread its reference needed"
    finally:
        controller.shutdown()
        observer.close()
        if workers == 1:
            local.close()
    assert catalog.job(job_id).status == "finished"
    assert [key_split(task["key"]) for task in stream.data].count("scene-task") == 3
    l1b = {}
    for scene_id in catalog.job(job_id).scene_ids:
        records = {r.level: r for r in catalog.level_records(job_id, scene_id)}
        assert records["L2C"].status == "done", records
        l1b[scene_id] = records["L1B"].facts
    # the clearest date is the anchor; the others matched against it (240 px scenes are too small for a shift to
    # be found, but the match ran on the reference's L1A, which the tasks waited for)
    anchor = next(facts for facts in l1b.values() if facts["coreg_status"] == "reference")
    dependents = [facts for facts in l1b.values() if facts is not anchor]
    assert len(dependents) == 2, l1b
    assert all("20240611" in facts["reference_id"] and facts["reference_band"] == "r10m/B03"
               and facts["coreg_status"] != "no_reference" for facts in dependents), l1b
