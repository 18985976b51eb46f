"""ProcessController: a job of several scenes on a Dask cluster, failures isolated and recorded, reruns resume."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

import gmsdask.levels.l2a as l2a_module
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.io.cube import open_cube
from gmsdask.errors import CatalogError
from gmsdask.levels import default_registry

from .thumbnail_jobs import thumbnail_job

@pytest.fixture
def job(tmp_path):
    return thumbnail_job(tmp_path, exec_L1AP=(True, True, True))


@pytest.fixture
def client(in_process_client):
    return in_process_client


def test_one_failing_scene_leaves_the_others_finished_and_a_rerun_completes(job, client, monkeypatch):
    catalog, job_id, cfg = job
    real_l2a = l2a_module.geometric_homogenization

    def failing_for_tm(scene, *args, **kwargs):
        if scene.attrs["platform"] == "LANDSAT_5":
            raise RuntimeError("injected failure in L2A")
        return real_l2a(scene, *args, **kwargs)

    monkeypatch.setattr(l2a_module, "geometric_homogenization", failing_for_tm)
    controller = ProcessController(job_id, db_url=cfg.db_url)
    results = controller.run_all_processors()

    assert controller.DB_job_record.status == "finished_with_errors"
    by_platform = {r.platform: r for r in results}
    assert by_platform["LANDSAT_8"].level_reached == "L2C" and by_platform["LANDSAT_8"].failed_level is None
    assert by_platform["LANDSAT_5"].failed_level == "L2A"
    summary = controller.summary.set_index("platform")
    assert summary.loc["LANDSAT_5", "failed_level"] == "L2A"
    assert summary.loc["LANDSAT_5", "exception_type"] == "RuntimeError"
    assert "injected failure" in summary.loc["LANDSAT_5", "message"]
    assert summary.loc["LANDSAT_5", "level_reached"] == "L2B" or summary.loc["LANDSAT_5", "level_reached"] == "L1C"
    failed_id = by_platform["LANDSAT_5"].scene_id
    assert controller.sceneids_failed == [failed_id]
    (failure,) = catalog.failures(job_id)
    assert failure.level == "L2A" and "Traceback" in failure.error_traceback
    ok_id = by_platform["LANDSAT_8"].scene_id
    statuses = catalog.level_status(job_id, ok_id)
    assert statuses == {"L1A": "done", "L1B": "done", "L1C": "done", "L2A": "done", "L2B": "done", "L2C": "done"}
    tiles_before = {(t.tile, t.scene_id) for t in catalog.tiles_written(job_id)}
    assert tiles_before and all(scene == ok_id for _, scene in tiles_before)
    l1a_record = [r for r in catalog.level_records(job_id, ok_id) if r.level == "L1A"][0]

    # rerun: the failed scene resumes after its last completed level, the finished one is not redone
    monkeypatch.setattr(l2a_module, "geometric_homogenization", real_l2a)
    rerun = ProcessController(job_id, db_url=cfg.db_url)
    rerun.run_all_processors()
    assert rerun.DB_job_record.status == "finished"
    assert rerun.sceneids_failed == []
    assert catalog.level_status(job_id, failed_id)["L2C"] == "done"
    assert [r for r in catalog.level_records(job_id, ok_id) if r.level == "L1A"][0] == l1a_record
    # each scene is in its cubes once: one time slot per scene, none duplicated by the rerun
    for path in {t.path for t in catalog.tiles_written(job_id)}:
        cube = open_cube(path)
        assert len(set(cube["scene_id"].values.tolist())) == cube.sizes["time"]
    rerun.shutdown()
    controller.shutdown()


def test_level_products_are_written_where_asked(job, client):
    catalog, job_id, cfg = job
    controller = ProcessController(job_id, db_url=cfg.db_url)
    controller.run_L1A_processing()
    assert controller.DB_job_record.status == "pending"  # a partial run does not finish the job
    written = sorted((cfg.path_procdata_scenes / f"job_{job_id}").glob("*/L1A.zarr"))
    assert len(written) == 2
    tree = xr.open_datatree(written[0], engine="zarr", decode_coords="all")
    band = tree["r30m"].ds["B4"]
    assert band.encoding["dtype"] == np.int16 and band.encoding["scale_factor"] == pytest.approx(1e-4)
    assert tree["r30m"].ds.rio.crs is not None
    # through L2C, the L1A products are no longer needed: exec_L1AP's delete flag removes them
    controller.run_all_processors()
    assert controller.DB_job_record.status in ("finished", "finished_with_errors")
    assert not any((cfg.path_procdata_scenes / f"job_{job_id}").glob("*/L1A.zarr"))
    # both scenes (UTM zone 55) reach tiles of zone 56: the controller hands L2C the scene before L2A
    # (ctx.scene_before), so those tiles are warped from it once, not again from the L2A grid
    resamplings = {tile: count for r in catalog.level_records(job_id) if r.level == "L2C"
                   for tile, count in r.facts["resamplings"].items()}
    assert any(tile.startswith("56") for tile in resamplings) and set(resamplings.values()) == {1}
    controller.shutdown()


def test_profiling_writes_a_dask_performance_report(job, client):
    catalog, job_id, cfg = job
    controller = ProcessController(job_id, db_url=cfg.db_url, profiling=True, benchmark_global=True)
    controller.run_L1A_processing()
    (report,) = cfg.path_job_logs.glob(f"job_{job_id}_*_dask_report.html")
    assert report.stat().st_size > 10_000
    log_text = (cfg.path_job_logs / f"job_{job_id}.log").read_text()
    assert "benchmark:" in log_text and " L1A done " in log_text
    controller.shutdown()


def test_unknown_job_is_named(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    with pytest.raises(CatalogError, match="empty.sqlite does not exist"):
        ProcessController(42, db_url=url)  # a controller never creates a catalogue
    assert not (tmp_path / "empty.sqlite").exists()
    Catalog(url).close()
    with pytest.raises(CatalogError, match="42"):
        ProcessController(42, db_url=url)


def test_stop_cancels_gracefully(job, client, monkeypatch):
    catalog, job_id, cfg = job
    registry = default_registry()
    real_l1b = registry["L1B"].run

    def stop_during_l1b(scene, ctx):
        controller.stop(15, None)  # as a SIGTERM handler would
        return real_l1b(scene, ctx)

    controller = ProcessController(job_id, registry=registry.with_level(replace(registry["L1B"], run=stop_during_l1b)),
                                   db_url=cfg.db_url)
    results = controller.run_all_processors()
    assert controller.DB_job_record.status == "canceled"
    # levels in flight finish, no later level starts (the other scene may have been in L1A)
    assert all(r.level_reached in (None, "L1A", "L1B") and r.failed_level is None for r in results), results
    for result in results:
        later = {level: status for level, status in catalog.level_status(job_id, result.scene_id).items()
                 if level in ("L1C", "L2A", "L2B", "L2C")}
        assert set(later.values()) <= {"canceled"} and len(later) <= 1, later  # the level cut short says so
    assert catalog.tiles_written(job_id) == []
    controller.shutdown()
