"""What each option changes, where no other test sets it (tests/test_options.py walks every option and names the
test that checks it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import os

import dask
import pytest
import xarray as xr
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from gmsdask import set_config
from gmsdask.catalog import Catalog, SceneRecord
from gmsdask.cli import app
from gmsdask.cluster import WORKER_CONFIG, WORKER_ENVIRONMENT, job_client
from gmsdask.controller import ProcessController
from gmsdask.demo import seed_sixs_cache, write_demo_products
from gmsdask.levels import Level, LevelContext, LevelOutcome, default_registry, l1a, l1b, l1c, l2a, l2b, product_stub
from gmsdask.levels.coreg_reference import ANCHOR_ROLE, REFERENCE_ROLE, select_reference

from .conftest import data_path
from .thumbnail_jobs import LANDSAT_A, thumbnail_job

LANDSAT_RT = ("landsat", "collection1", "LC08_L1TP_016037_20170813_20170814_01_RT")


@pytest.fixture
def client():  # per test: test_cluster_options needs a process without a current client
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as dask_client:
        yield dask_client


def _job(tmp_path, **options):
    return thumbnail_job(tmp_path, **options)


def test_run_flags_turn_levels_off(tmp_path, client):
    catalog, job_id, cfg = _job(tmp_path, exec_L1BP=(False, False, True), exec_L1CP=(False, False, True),
                                exec_L2BP=(False, True, False), exec_L2CP=(False, True, False))
    controller = ProcessController(job_id, db_url=cfg.db_url)
    controller.run_all_processors()
    for scene_id in catalog.job(job_id).scene_ids:
        assert catalog.level_status(job_id, scene_id) == {"L1A": "done", "L1B": "skipped", "L1C": "skipped",
                                                          "L2A": "done", "L2B": "skipped", "L2C": "skipped"}
    assert catalog.tiles_written(job_id) == []  # L2C off: no cube
    controller.shutdown()

    # the GeoMultiSens aliases turn L1B, L1C and L2B off; with L2A off too, L2C resamples the scene's own grid
    second = tmp_path / "second"
    catalog, job_id, cfg = _job(second, skip_coreg=True, skip_ac=True, skip_spechomo=True,
                                exec_L2AP=(False, False, True))
    controller = ProcessController(job_id, db_url=cfg.db_url)
    controller.run_all_processors()
    for scene_id in catalog.job(job_id).scene_ids:
        statuses = catalog.level_status(job_id, scene_id)
        assert [statuses[level] for level in ("L1B", "L1C", "L2A", "L2B", "L2C")] == ["skipped"] * 4 + ["done"]
    assert {t.path.split("/")[-2] for t in catalog.tiles_written(job_id)} == {"SENTINEL_2A_TOA"}  # TOA: own cube
    controller.shutdown()


def test_run_control_options(tmp_path, client):
    catalog, job_id, cfg = _job(tmp_path, exec_L1AP=(True, True, True))
    controller = ProcessController(job_id, db_url=cfg.db_url)
    controller.run_L1A_processing()
    first = {r.scene_id: r.started_at for r in catalog.level_records(job_id) if r.level == "L1A"}
    products = list((tmp_path / "scenes" / f"job_{job_id}").glob("*/L1A.zarr"))
    assert len(products) == 2
    # reset_status: every level runs again; delete_old_output: the job's earlier level products are removed first
    again = ProcessController(job_id, db_url=cfg.db_url, reset_status=True, delete_old_output=True,
                              exec_L1AP=(True, False, True))
    again.run_L1A_processing()
    second = {r.scene_id: r.started_at for r in catalog.level_records(job_id) if r.level == "L1A"}
    assert all(second[i] > first[i] for i in first)
    assert not any(p.exists() for p in products)
    controller.shutdown()
    again.shutdown()

    # disable_exception_handler: a scene's failure stops the job instead of being recorded
    def failing(scene, ctx):
        raise RuntimeError("injected failure in L1B")

    registry = default_registry()
    registry = registry.with_level(replace(registry["L1B"], run=failing))
    strict = ProcessController(job_id, registry=registry, db_url=cfg.db_url, disable_exception_handler=True)
    with pytest.raises(RuntimeError, match="injected failure"):
        strict.run_L1B_processing()
    strict.shutdown()


_ATTEMPTS: dict[str, int] = {}


def _flaky(key: str) -> str:
    """Fails on its first call per key (a lost worker, say), then succeeds."""
    _ATTEMPTS[key] = _ATTEMPTS.get(key, 0) + 1
    if _ATTEMPTS[key] == 1:
        raise OSError(f"transient failure of {key}")
    return key


def test_cluster_options(tmp_path):
    cfg = set_config(CPUs=1, memory_limit_per_worker="1GiB", log_level="DEBUG", retries=1,
                     db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    own_interval = dask.config.get("distributed.worker.profile.interval")
    with job_client(cfg) as client:
        workers = client.scheduler_info()["workers"].values()
        assert len(workers) == 1 and all(w["memory_limit"] == 2**30 for w in workers)
        # the worker process started with glibc's mmap threshold raised (WORKER_ENVIRONMENT), and the job's own
        # process did not keep the setting once the cluster was made
        (environ,) = client.run(lambda: dict(os.environ)).values()
        assert environ["MALLOC_MMAP_THRESHOLD_"] == WORKER_ENVIRONMENT["MALLOC_MMAP_THRESHOLD_"] == str(12 * 2**20)
        assert "MALLOC_MMAP_THRESHOLD_" not in dask.config.get("distributed.nanny.pre-spawn-environ")
        assert environ["MALLOC_ARENA_MAX"] == "1"  # one malloc heap per worker (gmsdask.cluster)
        # and Zarr's codecs run in one thread there (one worker, one core)
        assert client.run(lambda: __import__("zarr").config.get("threading.max_workers")) == {
            next(iter(client.scheduler_info()["workers"])): 1}
        # its profiler samples the task thread every 100 ms (WORKER_CONFIG), and the job's own process kept its
        # setting (Dask's default: 10 ms) once the cluster was made
        (sampling_ms,) = client.run(lambda dask_worker: dask_worker.periodic_callbacks["profile"].callback_time
                                    ).values()
        assert sampling_ms == 100 and WORKER_CONFIG["distributed.worker.profile.interval"] == "100ms"
        assert dask.config.get("distributed.worker.profile.interval") == own_interval
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \
            job_client(cfg.replace(scheduler_address=cluster.scheduler_address)) as client:
        assert client.scheduler.address == cluster.scheduler_address

    # retries: the level's work fails once and is retried with retries=1; with retries=0 the scene fails
    catalog, job_id, job_cfg = _job(tmp_path)

    def flaky_level(scene, ctx):
        key = f"{ctx.config.retries}-{ctx.record.product_id}"
        work = dask.delayed(_flaky)(key, dask_key_name=f"flaky-{key}")
        return LevelOutcome(scene, work=(work,))

    registry = default_registry().with_level(Level("L1D", 35, "flaky", flaky_level))
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"):
        controller = ProcessController(job_id, registry=registry, db_url=job_cfg.db_url, retries=1,
                                       log_level="DEBUG")
        assert controller.logger.level == 10  # DEBUG
        controller.run_level("L1D")
        assert all(catalog.level_status(job_id, i)["L1D"] == "done" for i in catalog.job(job_id).scene_ids)
        no_retry = ProcessController(job_id, registry=registry, db_url=job_cfg.db_url, retries=0,
                                     reset_status=True)
        no_retry.run_level("L1D")
        assert {f.level for f in catalog.failures(job_id)} == {"L1D"}
    controller.shutdown()
    no_retry.shutdown()


def test_archive_add_without_arguments_scans_path_archive(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "notes.txt").write_text("not a product")
    config = tmp_path / "job.toml"
    config.write_text("\n".join([f'db_url = "sqlite:///{tmp_path / "catalog.sqlite"}"',
                                  f'path_archive = "{archive}"', ""]))
    runner = CliRunner()
    empty = runner.invoke(app, ["archive", "add", "--config", str(config)])
    assert empty.exit_code == 1 and "no products found" in empty.output and str(archive) in empty.output
    product = data_path(*LANDSAT_A)
    (archive / product.name).symlink_to(product)
    added = runner.invoke(app, ["archive", "add", "--config", str(config)])
    assert added.exit_code == 0 and "catalogued 1 scene" in added.output


def _ctx(record: SceneRecord, references=(), **options) -> LevelContext:
    return LevelContext(record=record, config=set_config(**options), job_id=1, references=tuple(references))


def test_l1a_band_selection(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    record = catalog.scene(catalog.add_products([data_path(*LANDSAT_RT)])[0])

    def bands(**options):
        scene = l1a.run(product_stub(record), _ctx(record, **options)).scene
        return {name for child in scene.children.values() for name in child.data_vars}

    default = bands()
    assert "B10" in default and "B8" not in default  # L1C's masks read the thermal bands; pan is left out
    assert "B10" not in bands(exec_L1CP=(False, False, True))  # skip_thermal, and no L1C to need them
    assert "B10" in bands(exec_L1CP=(False, False, True), skip_thermal=False)
    assert "B8" in bands(skip_pan=False)


def _record(scene_id, platform, when, cloud, footprint="POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"):
    return SceneRecord(scene_id, f"P{scene_id}", f"/p/{scene_id}", platform, "", "L1", when, cloud, footprint,
                       ["33UUU"], when)


def test_reference_options():
    june = datetime(2024, 6, 1, tzinfo=timezone.utc)
    sentinel2 = _record(1, "SENTINEL_2A", june, 10.0)
    landsat = _record(2, "LANDSAT_8", june.replace(day=20), 5.0, "POLYGON((0.5 0, 1.5 0, 1.5 1, 0.5 1, 0.5 0))")
    scenes = [sentinel2, landsat]
    assert select_reference(scenes, [], set_config())[landsat.id] == [(REFERENCE_ROLE, sentinel2)]
    # each option can rule the Sentinel-2 scene out as a reference for the Landsat one (50 % overlap, 19 days)
    for options in ({"spatial_ref_min_overlap": 60.0}, {"spatial_ref_max_cloudcov": 5.0},
                    {"spatial_ref_min_cloudcov": 15.0}, {"spatial_ref_plusminus_days": 10},
                    {"datasetid_spatial_ref": "SENTINEL_2B"}):
        assert select_reference(scenes, [], set_config(**options)).get(landsat.id, [(None, None)])[0][0] \
            != REFERENCE_ROLE, options
    older = replace(sentinel2, acquisition_time=june.replace(year=2020))
    assert landsat.id in select_reference([older, landsat], [], set_config(spatial_ref_plusminus_years=5))
    assert landsat.id not in select_reference([older, landsat], [], set_config(spatial_ref_plusminus_years=2))
    # the reference platform decides which scene is the anchor
    plan = select_reference(scenes, [], set_config(datasetid_spatial_ref="LANDSAT_8"))
    assert plan[landsat.id] == [(ANCHOR_ROLE, landsat)] and plan[sentinel2.id] == [(REFERENCE_ROLE, landsat)]


@pytest.fixture(scope="module")
def demo_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo_products")
    write_demo_products(folder / "archive")
    cache = folder / "cache"
    seed_sixs_cache(cache)
    catalog = Catalog(f"sqlite:///{folder / 'catalog.sqlite'}")
    records = {catalog.scene(i).platform: catalog.scene(i) for i in catalog.add_products(folder / "archive")}
    return records["SENTINEL_2B"], records["LANDSAT_9"], cache


def test_level_options_change_l1b_l1c_l2b(demo_records, monkeypatch):
    sentinel2, landsat, cache = demo_records
    base = {"path_cache": cache, "tiling_block_size_XY": (512, 512)}
    scene = l1a.run(product_stub(landsat), _ctx(landsat, **base)).scene
    reference = [(REFERENCE_ROLE, sentinel2)]

    # L1B: the measured misregistration (30, -15) m, refused when larger than coreg_max_shift_allowed
    measured = l1b.run(scene, _ctx(landsat, reference, **base))
    assert measured.scene.attrs["coreg_status"] == "success"
    dx, dy = measured.scene.attrs["coreg_shift_m"]
    assert abs(dx - 30) < 3 and abs(dy + 15) < 3
    too_far = l1b.run(scene, _ctx(landsat, reference, coreg_max_shift_allowed=0.5, **base))
    assert too_far.scene.attrs["coreg_status"].startswith("failed:") and too_far.scene.attrs["coreg_shift_m"] == [0, 0]
    seen = {}
    monkeypatch.setattr(l1b, "coregister_scene", lambda *a, **kw: seen.update(kw) or (_ for _ in ()).throw(
        RuntimeError("stop here")))
    with pytest.raises(RuntimeError, match="stop here"):
        l1b.run(scene, _ctx(landsat, reference, coreg_band_wavelength_for_matching=865.0,
                            coreg_window_size=(128, 128), coreg_grid_res=100, **base))
    assert (seen["wavelength_nm"], seen["window_size"], seen["grid_res"]) == (865.0, (128, 128), 100)
    monkeypatch.undo()

    # L1C: the masking algorithm, the buffers, the accuracy layers; the 6S inputs reach the correction
    fmask = l1c.run(scene, _ctx(landsat, **base)).scene
    product_qa = l1c.run(scene, _ctx(landsat, cloud_masking_algorithm={"LANDSAT": "PRODUCT_QA"}, **base)).scene
    assert (fmask.attrs["cloud_masking_algorithm"], product_qa.attrs["cloud_masking_algorithm"]) == \
        ("FMASK", "PRODUCT_QA")
    no_buffer = l1c.run(scene, _ctx(landsat, cloud_buffer_m=0.0, **base)).scene
    clouds = [int((tree["r30m"]["fmask"] == 2).sum()) for tree in (fmask, no_buffer)]
    assert clouds[0] > clouds[1] > 0
    assert any(name.startswith("ac_uncertainty_") for name in fmask["r30m"].data_vars)
    without = l1c.run(scene, _ctx(landsat, ac_estimate_accuracy=False, **base)).scene
    assert not any(name.startswith("ac_uncertainty_") for name in without["r30m"].data_vars)
    calls = {}
    real = l1c.correct_scene
    monkeypatch.setattr(l1c, "correct_scene", lambda s, **kw: calls.update(kw) or real(s, **{**kw, "path_dem": ""}))
    l1c.run(scene, _ctx(landsat, aot550=0.3, path_dem="/data/dem.tif", **base))
    assert (calls["aot550"], calls["path_dem"], calls["cache_dir"]) == (0.3, "/data/dem.tif", cache)
    monkeypatch.undo()

    # L2A: the resampling; L2B: BRDF, the method, the accuracy layers, the virtual sensor and its bands
    corrected = l1c.run(measured.scene, _ctx(landsat, **base)).scene
    bilinear = l2a.run(corrected, _ctx(landsat, spatial_resamp_alg_default="bilinear", **base)).scene
    assert bilinear["r30m"]["B4"].attrs["resampling"] == "bilinear"
    gridded = l2a.run(corrected, _ctx(landsat, **base)).scene
    assert gridded["r30m"]["B4"].attrs["resampling"] == "cubic"
    harmonized = l2b.run(gridded, _ctx(landsat, **base)).scene
    assert harmonized.attrs["brdf_normalized"] is True and "spechomo_error_B8A" in harmonized["r30m"].data_vars
    plain = l2b.run(gridded, _ctx(landsat, brdf_correction=False, spechomo_estimate_accuracy=False,
                                  spechomo_method="none", **base)).scene
    assert plain.attrs["brdf_normalized"] is False and plain.attrs["spechomo_method"] == "none"
    assert not any(name.startswith("spechomo_error_") for name in plain["r30m"].data_vars)
    a, b = (float(tree["r30m"]["B04"].mean()) for tree in (harmonized, plain))
    assert a != b
    oli = l2b.run(gridded, _ctx(landsat, virtual_sensor_name="LANDSAT_8", target_bands=("B2", "B3", "B4", "B5"),
                                **base)).scene
    assert {"B2", "B3", "B4", "B5"} <= set(oli["r30m"].data_vars) and "B8A" not in oli["r30m"].data_vars
    assert isinstance(oli["r30m"]["B5"].data, dask.array.Array) and isinstance(oli, xr.DataTree)
