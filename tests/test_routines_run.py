"""Routine runs on the real Sentinel-2 L2A product of tile 29UNU, and tasks that fail without stopping others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from distributed import Client

from gmsdask.catalog import Catalog
from gmsdask.io.cube import open_cube
from gmsdask.jobs import Job, RoutineConfigError

from .conftest import data_path

L2A = ("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
OCTOBER = {"date_min": "2022-10-01", "date_max": "2022-10-31"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("GMSDASK_HOME", str(home))
    monkeypatch.setenv("GMSDASK_CRONTAB", str(tmp_path / "crontab"))
    (home / "archive").mkdir(parents=True)
    (home / "config" / "jobs").mkdir(parents=True)
    # options of every routine, then of this routine only (the 60 m grid keeps the real run fast)
    (home / "config" / "gmsdask.toml").write_text("mgrs_pixel_buffer = 0\ntiling_block_size_XY = [915, 915]\n")
    (home / "config" / "jobs" / "job_real.toml").write_text("target_gsd = 60.0\nbrdf_correction = false\n")
    return home


def test_real_l2a_run_writes_the_cube_reports_its_catalogue_job_and_does_not_redo(home):
    product = data_path(*L2A)
    product_id = product.name.removesuffix(".SAFE")
    link = home / "archive" / product.name
    link.symlink_to(product)  # the archive holds a link: removal must delete the link only
    job = Job("real")
    job.logs = True
    job.copy_l2a_sideproducts = True
    job.nb_proc = 1
    job.task_add({"tile": "31UFS", "download": "l2a", **OCTOBER})  # a tile without products
    job.task_add({"tile": "29UNU", "download": "l2a", "filter_max_pb": True, "cloudmasks": "CM001",
                  "indices": "MNDWI/BIGR", "remove": "l2a-new", **OCTOBER})
    job.save()
    calls = []

    def stand_in(tile, cube_path, cloudmasks, indices, *, scenes, config):
        calls.append((tile, Path(cube_path), cloudmasks, indices, dict(scenes), config.target_gsd))
        return {"written": [f"{i}_{m}" for i in indices for m in cloudmasks], "failed": {}}

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        report = Job("real").run(client=client, compute_products=stand_in)
    empty, done = report.tasks
    assert (empty.status, empty.found, empty.selected, empty.catalog_job_id) == ("empty", [], [], None)
    assert done.status == "done", done.errors
    assert done.found == done.selected == done.processed == [product_id]
    (job_id,) = report.catalog_job_ids
    catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    record = catalog.job(job_id)
    assert record.status == "finished" and record.config["target_gsd"] == 60.0
    assert record.config["target_mgrs_tiles"] == ["29UNU"] and record.config["CPUs"] == 1
    (tile,) = catalog.tiles_written(job_id)
    assert Path(tile.path).is_relative_to(home / "processed_mgrs_tiles")
    assert Path(tile.path) == home / "processed_mgrs_tiles" / "SENTINEL_2A" / "29UNU.icechunk"
    cube = open_cube(tile.path)
    assert cube.sizes["time"] == 1 and cube.sizes["y"] == cube.sizes["x"] == 1830
    with rasterio.open(next(product.glob("GRANULE/*/IMG_DATA/R60m/*_B04_60m.jp2"))) as source:
        dn = source.read(1, window=((1500, 1501), (300, 301)))[0, 0]
    value = float(cube["B04"][0, 1500, 300])
    assert dn > 0 and (np.isnan(value) or value == pytest.approx((int(dn) - 1000) / 10000, abs=1e-4))
    assert calls == [("29UNU", Path(tile.path), ("CM001",), ("MNDWI", "BIGR"), {product_id: str(link)}, 60.0)]
    # remove l2a-new: the archive's link is gone, the shared product is not, the side products are kept
    assert done.removed == [product_id] and not link.is_symlink() and product.is_dir()
    kept = sorted(p.name for p in (home / "sideproducts" / "29UNU" / product_id).iterdir())
    assert kept == ["MSK_CLDPRB_20m.jp2", "T29UNU_20221005T115411_SCL_20m.jp2"]
    log = report.log_file.read_text()
    assert report.log_file.parent == home / "logs" / "routine_real"
    assert f"catalogue job {job_id} finished" in log and "31UFS): no product matches" in log
    assert f"removed {link}" in log and f"catalogue jobs created: {job_id}" in log
    # a second run finds the scene in the cube: no catalogue job, nothing recomputed by the chain; the products
    # hook still sees the scene (it fills in what is missing); a failure it reports makes the task failed
    def failing(tile, cube_path, cloudmasks, indices, *, scenes, config):
        calls.append((tile, dict(scenes)))
        return {"written": [], "failed": {"MNDWI_CM001": "band B03 unreadable"}}

    again = Job("real").run(compute_products=failing)
    assert again.catalog_job_ids == [] and again.tasks[1].already_processed == [product_id]
    assert calls[-1] == ("29UNU", {product_id: None})  # in the cube; its product was removed
    assert again.tasks[1].status == "failed"
    assert again.tasks[1].errors == ["products: MNDWI_CM001: band B03 unreadable"]
    assert len(list((home / "logs" / "routine_real").iterdir())) == 2


def test_bad_tasks_are_recorded_and_the_others_finish(home):
    job = Job("bad")
    job.task_add({"tile": "29UNU", "download": "l2a", "provider": "nowhere", **OCTOBER})
    job.task_add({"tile": "29UNU", "download": "l2a", "indices": "NDVI", **OCTOBER})  # nothing to compute into
    job.task_add({"tile": "33UUU", "download": "l2a", "active": False, "comments": "off"})
    with pytest.raises(RoutineConfigError, match="task 3, tiles: unknown column"):
        job.task_add({"tiles": "33UUU"})
    job.save()
    report = Job("bad").run(compute_products=lambda *a, **k: pytest.fail("no cube: must not be called"))
    unknown, empty, inactive = report.tasks
    assert unknown.status == "failed" and "unknown provider 'nowhere'" in unknown.errors[0]
    assert "local" in unknown.errors[0]
    assert empty.status == "empty" and empty.errors == []
    assert inactive.status == "inactive" and report.catalog_job_ids == []



def test_process_by_line_runs_the_phases_as_barriers_per_chunk(home):
    def phase_order(process_by_line):
        job = Job(f"chunks{process_by_line}")
        job.logs = True
        job.process_by_line = process_by_line
        for tile in ("31UFS", "31UFT"):
            job.task_add({"tile": tile, "download": "l2a", **OCTOBER})
        log = job.run().log_file.read_text().splitlines()
        return [(line.split("task ")[1][:1], "found" if "product(s):" in line else "select")
                for line in log if "product(s):" in line or "no product matches" in line]

    assert phase_order(0) == [("0", "found"), ("1", "found"), ("0", "select"), ("1", "select")]
    assert phase_order(1) == [("0", "found"), ("0", "select"), ("1", "found"), ("1", "select")]


def test_default_products_hook_adapts_the_indices_writer_and_reports_its_failures(tmp_path):
    from types import SimpleNamespace

    from gmsdask import set_config
    from gmsdask.jobs.products_hook import ProductsResult, failures_of, indices_hook

    seen = []

    def writer(cube, scenes, cloudmasks, indices):
        seen.append((cube, scenes, cloudmasks, indices))
        return SimpleNamespace(variables={"S1": ["MNDWI", "MNDWI_CM001"]}, notes=["S1: no SCL"],
                               failures=[SimpleNamespace(scene_id="S1", name="NDVI", reason="band B08 is missing")])

    hook = indices_hook(writer)
    result = hook("29UNU", tmp_path / "29UNU.zarr", ("CM001",), ("MNDWI", "NDVI"), scenes={"S1": "/p/S1.SAFE"},
                  config=set_config())
    assert seen == [(tmp_path / "29UNU.zarr", {"S1": "/p/S1.SAFE"}, ["CM001"], ["MNDWI", "NDVI"])]
    assert result == ProductsResult({"S1": ["MNDWI", "MNDWI_CM001"]}, {"S1: NDVI": "band B08 is missing"},
                                    ["S1: no SCL"])
    assert failures_of(result) == {"S1: NDVI": "band B08 is missing"} and failures_of(None) == {}


def test_default_products_hook_writes_into_the_cube_l2c_writes(tmp_path):
    """The default hook with gmsdask.indices' writer, on an Icechunk cube at L2C's location for the tile."""
    from gmsdask import set_config
    from gmsdask.io.cube import cube_log, open_cube
    from gmsdask.jobs.products_hook import indices_hook
    from gmsdask.levels.l2c import cube_path

    from .cube_helpers import write

    config = set_config(path_procdata_MGRS=str(tmp_path / "cubes"))
    location = cube_path(config, "29UNU")
    assert location == tmp_path / "cubes" / "SENTINEL_2A" / "29UNU.icechunk"
    for scene_id in "BA":
        write(location, scene_id)
    result = indices_hook()("29UNU", location, ("CM001",), ("NDVI",), scenes={"A": None}, config=config)
    # the test scenes have B02 and B8A only: NDVI's failure is reported; the mask of a slot without inputs is fill
    assert list(result.failed) == ["A: NDVI"] and "needs band 'nir' (B08)" in result.failed["A: NDVI"]
    assert result.written == {"A": ["CM001"]} and result.notes and "CM001" in result.notes[0]
    cube = open_cube(location)
    assert cube.CM001.dtype == np.uint8 and (cube.CM001.values == 255).all()
    assert cube_log(location)[0].message == "indices: CM001 of A into slot 1"
