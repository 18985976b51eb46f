"""Several threads and processes writing one catalogue at once (SQLite and PostgreSQL): nothing is lost,
locks are waited for, and two processes creating or upgrading a catalogue at the same moment do not race."""

from __future__ import annotations

import multiprocessing
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gmsdask.catalog import SCHEMA_REVISION, Catalog, JobOwner
from gmsdask.config import LEVELS

from .fixtures.catalog_scenes import make_job, sentinel2_attrs

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "catalog_v010.sqlite"


def _report(results: Any, index: int, target: Callable[..., Any], arguments: Sequence[Any]) -> None:
    try:
        results.put((index, True, target(*arguments)))
    except BaseException:  # noqa: BLE001 - sent to the parent, which fails the test with it
        results.put((index, False, traceback.format_exc()))


def run_in_processes(target: Callable[..., Any], argument_lists: Sequence[Sequence[Any]]) -> list[Any]:
    """``target(*arguments)`` in one process per argument list, all at once; their results (all must succeed).

    The processes are forked from the test process: they are real processes with their own connections,
    without the second or two a fresh interpreter spends importing gmsdask.
    """
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_report, args=(results, index, target, arguments))
                 for index, arguments in enumerate(argument_lists)]
    for process in processes:
        process.start()
    collected = {index: (ok, value) for index, ok, value in (results.get(timeout=120) for _ in processes)}
    for process in processes:
        process.join(timeout=60)
    failures = [value for ok, value in collected.values() if not ok]
    assert failures == [], "\n".join(failures)
    return [collected[index][1] for index in range(len(processes))]

SCENES_PER_WRITER = 3


def record_all_levels(catalog: Catalog, job_id: int, scene_ids: list[int]) -> None:
    for scene_id in scene_ids:
        for level in LEVELS:
            catalog.record_level(job_id, scene_id, level, "running")
            catalog.record_level(job_id, scene_id, level, "done", output=f"/out/{scene_id}/{level}")


def test_concurrent_threads_do_not_lose_rows(catalog_url: str) -> None:
    n_writers = 4
    with Catalog(catalog_url) as catalog:
        job_id, scene_ids = make_job(catalog, n_writers * SCENES_PER_WRITER)
    errors: list[BaseException] = []
    start = threading.Barrier(n_writers)

    def writer(index: int) -> None:
        own_catalog = Catalog(catalog_url) if index % 2 else shared    # separate engines and a shared one
        try:
            start.wait()
            record_all_levels(own_catalog, job_id, scene_ids[index::n_writers])
            own_catalog.add_scene(sentinel2_attrs(product_id=f"S2A_MSIL1C_20180629T000241_thread{index}"), [])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    shared = Catalog(catalog_url)
    threads = [threading.Thread(target=writer, args=(index,)) for index in range(n_writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    reader = Catalog(catalog_url)
    records = reader.level_records(job_id)
    assert len(records) == len(scene_ids) * len(LEVELS)
    assert all(record.status == "done" for record in records)
    assert all(reader.last_completed_level(job_id, scene_id) == "L2C" for scene_id in scene_ids)
    assert len(reader.scenes(platform="SENTINEL_2A")) == n_writers
    assert reader.finish_job(job_id) == "finished"


def write_levels_and_tiles(url: str, job_id: int, scene_ids: list[int]) -> None:
    catalog = Catalog(url, create=False)
    for scene_id in scene_ids:
        for level in LEVELS:
            catalog.record_level(job_id, scene_id, level, "running")
            catalog.record_level(job_id, scene_id, level, "done", output=f"/out/{scene_id}/{level}")
            catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", f"/cubes/{level}.zarr", scene_id)


def test_concurrent_processes_do_not_lose_rows(catalog_url: str) -> None:
    with Catalog(catalog_url) as catalog:
        job_id, scene_ids = make_job(catalog, 3 * SCENES_PER_WRITER)
    run_in_processes(write_levels_and_tiles, [(catalog_url, job_id, scene_ids[index::3]) for index in range(3)])
    with Catalog(catalog_url) as reader:
        records = reader.level_records(job_id)
        assert len(records) == len(scene_ids) * len(LEVELS)
        assert {record.status for record in records} == {"done"}
        assert len(reader.tiles_written(job_id)) == 3 * SCENES_PER_WRITER
        assert reader.update_statistics(job_id)["L2C"]["done"] == len(scene_ids)


def test_a_writer_waits_for_a_lock_held_by_another_connection(sqlite_url: str, tmp_path: Path) -> None:
    import sqlite3

    with Catalog(sqlite_url) as catalog:
        job_id, [scene_id] = make_job(catalog, 1)
        other = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")                                   # another process is writing
        release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        started = time.perf_counter()
        release.start()
        catalog.record_level(job_id, scene_id, "L1A", "done")
        waited = time.perf_counter() - started
        release.join()
        other.close()
        assert waited >= 0.4
        assert catalog.level_status(job_id, scene_id) == {"L1A": "done"}


def run_job_as_controller(url: str, job_id: int, scene_ids: list[int]) -> str:
    catalog = Catalog(url, create=False)
    owner = JobOwner.this_process()
    catalog.set_job_status(job_id, "running", owner=owner)
    for scene_id in scene_ids:
        for level in LEVELS:
            catalog.record_level(job_id, scene_id, level, "running", version="1")
            assert catalog.heartbeat(job_id, owner=owner)
            catalog.record_level(job_id, scene_id, level, "done", version="1", facts={"scene": scene_id})
        catalog.set_job_status(job_id, "running", owner=owner)       # status updates interleave with the other job
    return catalog.finish_job(job_id)


def test_two_controllers_running_two_jobs_lose_no_update(postgres_url: str) -> None:
    with Catalog(postgres_url) as catalog:
        first_job, first_scenes = make_job(catalog, 3)
        scenes = [catalog.add_scene(sentinel2_attrs(product_id=f"S2A_MSIL1C_20180629T000241_second{i}"), [])
                  for i in range(2)]
        second_job = catalog.create_job(first_scenes[:2] + scenes, catalog.job(first_job).job_config())
    jobs = {first_job: first_scenes, second_job: first_scenes[:2] + scenes}      # two scenes in both jobs
    outputs = run_in_processes(run_job_as_controller, [(postgres_url, job, ids) for job, ids in jobs.items()])
    assert outputs == ["finished", "finished"]
    with Catalog(postgres_url, create=False) as reader:
        for job_id, scene_ids in jobs.items():
            job = reader.job(job_id)
            assert job.status == "finished" and job.owner is None and job.finish_time is not None
            assert job.statistics["L2C"] == {"done": len(scene_ids), "failed": 0, "skipped": 0}
            records = reader.level_records(job_id)
            assert len(records) == len(scene_ids) * len(LEVELS)
            assert {(r.status, r.version) for r in records} == {("done", "1")}
            assert all(r.facts == {"scene": r.scene_id} for r in records)


def open_at_the_same_moment(url: str, barrier: Any) -> str:
    barrier.wait(timeout=60)
    catalog = Catalog(url)
    return f"{catalog.opened_revision} {len(catalog.jobs())}"


def opened_at_once(url: str, n_processes: int = 3) -> list[str]:
    barrier = multiprocessing.get_context("fork").Barrier(n_processes)
    return run_in_processes(open_at_the_same_moment, [(url, barrier)] * n_processes)


def count_versions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        versions = list(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return versions


def test_processes_creating_one_catalogue_at_once_do_not_race(catalog_url: str) -> None:
    outputs = opened_at_once(catalog_url)
    assert sorted(outputs) == ["0002 0"] * (len(outputs) - 1) + ["None 0"]      # one created it, the others found it
    assert count_versions(catalog_url) == [SCHEMA_REVISION]


def test_processes_upgrading_one_old_catalogue_at_once_do_not_race(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURE, old)
    outputs = opened_at_once(f"sqlite:///{old}")
    assert sorted(outputs) == ["0001 2"] + ["0002 2"] * (len(outputs) - 1)
    assert count_versions(f"sqlite:///{old}") == [SCHEMA_REVISION]
