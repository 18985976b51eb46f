"""Tests of the scene/job catalogue (gmsdask.catalog): scenes, jobs, level states and tiles, each on SQLite and
on a real PostgreSQL server (the ``catalog`` fixture is parametrized over both)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from gmsdask.catalog import Catalog, normalize_tile
from gmsdask.config import LEVELS, JobConfig
from gmsdask.errors import CatalogError, GmsdaskError

from .fixtures.catalog_scenes import (
    LANDSAT8_ID,
    SENTINEL2_L1C_ID,
    landsat8_attrs,
    raise_and_catch,
    run_chain,
    sentinel2_attrs,
    sentinel2_l2a_attrs,
)

# --- scenes ---------------------------------------------------------------------------------------------------

def test_add_scene_stores_the_homogenized_metadata(catalog: Catalog) -> None:
    scene_id = catalog.add_scene(landsat8_attrs(), ["17snb", "T17SPB"])
    scene = catalog.scene(scene_id)
    assert scene.product_id == LANDSAT8_ID
    assert scene.platform == "LANDSAT_8" and scene.sensor == "OLI_TIRS" and scene.processing_level == "L1TP"
    assert scene.acquisition_time == datetime(2017, 8, 13, 15, 45, 12, 345678, tzinfo=UTC)
    assert scene.cloud_cover_pct == pytest.approx(18.54)
    assert scene.footprint.startswith("POLYGON ((-78.93 33.43")
    assert scene.mgrs_tiles == ["17SNB", "17SPB"]
    assert scene.added_at.tzinfo is not None
    assert catalog.scene_id(LANDSAT8_ID) == scene_id


def test_sentinel2_scene_always_lists_its_own_tile(catalog: Catalog) -> None:
    scene_id = catalog.add_scene(sentinel2_attrs(), ["56JLM"])
    assert catalog.scene(scene_id).mgrs_tiles == ["56JLM", "56JMM"]


def test_same_product_twice_is_one_scene_with_the_new_path(catalog: Catalog) -> None:
    first = catalog.add_scene(sentinel2_attrs(), ["56JMM"])
    second = catalog.add_scene(sentinel2_attrs(product_path="/elsewhere/copy.zip"), ["56JMM"])
    assert first == second
    assert [scene.id for scene in catalog.scenes()] == [first]
    assert catalog.scene(first).product_path == "/elsewhere/copy.zip"


def test_unknown_cloud_cover_is_stored_as_none(catalog: Catalog) -> None:
    scene_id = catalog.add_scene(landsat8_attrs(cloud_cover_pct=-1), [])
    assert catalog.scene(scene_id).cloud_cover_pct is None


@pytest.mark.parametrize("missing", ["product_id", "acquisition_time", "footprint"])
def test_scene_attrs_lacking_a_required_key_are_refused(catalog: Catalog, missing: str) -> None:
    attrs = landsat8_attrs()
    del attrs[missing]
    with pytest.raises(CatalogError, match=missing):
        catalog.add_scene(attrs, [])


def test_bad_footprint_and_time_are_refused_naming_the_product(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match=f"{LANDSAT8_ID}.*footprint"):
        catalog.add_scene(landsat8_attrs(footprint="POLYGON ((1 2"), [])
    with pytest.raises(CatalogError, match=f"{LANDSAT8_ID}.*acquisition_time"):
        catalog.add_scene(landsat8_attrs(acquisition_time="13 August 2017"), [])
    assert catalog.scenes() == []


def test_tile_ids_are_normalized_and_checked() -> None:
    assert normalize_tile("T29UNU") == "29UNU"
    assert normalize_tile(" 56jmm ") == "56JMM"
    assert normalize_tile("4QFJ") == "04QFJ"
    with pytest.raises(GmsdaskError, match="XYZ"):
        normalize_tile("XYZ")


def test_bad_tile_ids_are_catalog_errors_naming_them(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match=f"{LANDSAT8_ID}.*'17S'"):
        catalog.add_scene(landsat8_attrs(), ["17SNB", "17S"])
    with pytest.raises(CatalogError, match="'ABCDE'"):
        catalog.scenes(tile="ABCDE")
    assert catalog.scenes() == []


# --- scene selection --------------------------------------------------------------------------------------------

@pytest.fixture()
def three_scenes(catalog: Catalog) -> dict[str, int]:
    return {
        "landsat": catalog.add_scene(landsat8_attrs(), ["17SNB", "17SPB"]),
        "s2_l1c": catalog.add_scene(sentinel2_attrs(), ["56JLM"]),
        "s2_l2a": catalog.add_scene(sentinel2_l2a_attrs(), []),
    }


def ids_of(records: list[Any]) -> list[int]:
    return [record.id for record in records]


def test_scenes_filter_by_tile(catalog: Catalog, three_scenes: dict[str, int]) -> None:
    assert ids_of(catalog.scenes(tile="T56JMM")) == [three_scenes["s2_l1c"]]
    assert ids_of(catalog.scenes(tile="17spb")) == [three_scenes["landsat"]]
    assert catalog.scenes(tile="33UUU") == []


def test_scenes_filter_by_time(catalog: Catalog, three_scenes: dict[str, int]) -> None:
    landsat, s2_l1c, s2_l2a = three_scenes["landsat"], three_scenes["s2_l1c"], three_scenes["s2_l2a"]
    assert ids_of(catalog.scenes()) == [landsat, s2_l1c, s2_l2a]          # by acquisition time
    assert ids_of(catalog.scenes(start="2018-01-01")) == [s2_l1c, s2_l2a]
    assert ids_of(catalog.scenes(end=date(2018, 6, 29))) == [landsat, s2_l1c]  # a bare end date: whole day
    assert ids_of(catalog.scenes(end="2018-06-29T00:00:00Z")) == [landsat]
    assert ids_of(catalog.scenes(start=datetime(2018, 6, 29, 0, 2, 41, 24000, tzinfo=UTC),
                                 end=datetime(2018, 6, 29, 0, 2, 41, 24000))) == [s2_l1c]  # inclusive, naive = UTC
    assert ids_of(catalog.scenes(start="2017-08-14", end="2022-10-04")) == [s2_l1c]


def test_scenes_filter_by_cloud_platform_and_ids(catalog: Catalog, three_scenes: dict[str, int]) -> None:
    landsat, s2_l1c, s2_l2a = three_scenes["landsat"], three_scenes["s2_l1c"], three_scenes["s2_l2a"]
    assert ids_of(catalog.scenes(max_cloud=20)) == [landsat, s2_l1c]
    assert ids_of(catalog.scenes(max_cloud=2.5)) == [s2_l1c]
    assert ids_of(catalog.scenes(platform="SENTINEL_2A")) == [s2_l1c, s2_l2a]
    assert ids_of(catalog.scenes(platform=["LANDSAT_8", "SENTINEL_2B"])) == [landsat]
    assert ids_of(catalog.scenes([s2_l2a, landsat])) == [landsat, s2_l2a]
    assert ids_of(catalog.scenes([s2_l2a, landsat], max_cloud=20)) == [landsat]
    assert ids_of(catalog.scenes(platform="SENTINEL_2A", max_cloud=10, tile="56JMM", start="2018-06-01")) == [s2_l1c]


def test_scenes_with_unknown_ids_name_them(catalog: Catalog, three_scenes: dict[str, int]) -> None:
    with pytest.raises(CatalogError, match=r"\b(404, 405)\b"):
        catalog.scenes([three_scenes["landsat"], 404, 405])


# --- jobs -------------------------------------------------------------------------------------------------------

def test_job_lifecycle(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    job = catalog.job(job_id)
    assert job.status == "pending" and job.finish_time is None
    assert job.scene_ids == [landsat_id, sentinel2_id] and job.failed_scene_ids == []
    assert job.virtual_sensor == "SENTINEL_2A" and job.comment == "two sensors"
    assert job.statistics == {level: {"done": 0, "failed": 0, "skipped": 0} for level in LEVELS}
    assert job.config["job_ID"] == job_id and job.config["target_gsd"] == 30.0
    assert job.job_config() == JobConfig(job_ID=job_id)

    catalog.set_job_status(job_id, "running")
    assert catalog.job(job_id).status == "running" and catalog.job(job_id).finish_time is None
    catalog.set_job_status(job_id, "canceled")
    canceled = catalog.job(job_id)
    assert canceled.status == "canceled" and canceled.finish_time is not None
    assert [job.id for job in catalog.jobs(status="canceled")] == [job_id]
    assert catalog.jobs(status="pending") == []


def test_scenes_of_a_job_and_jobs_of_a_scene(catalog: Catalog, three_scenes: dict[str, int]) -> None:
    landsat, s2_l1c, s2_l2a = three_scenes["landsat"], three_scenes["s2_l1c"], three_scenes["s2_l2a"]
    first = catalog.create_job([s2_l2a, landsat], JobConfig())
    second = catalog.create_job([s2_l1c, s2_l2a], JobConfig())
    assert ids_of(catalog.scenes(job_id=first)) == [landsat, s2_l2a]          # by acquisition time
    assert ids_of(catalog.scenes(job_id=second, tile="56JMM")) == [s2_l1c]
    assert ids_of(catalog.jobs(scene_id=s2_l2a)) == [first, second]
    assert ids_of(catalog.jobs(scene_id=landsat)) == [first]
    assert catalog.jobs("running", scene_id=landsat) == []
    with pytest.raises(CatalogError, match="job with id 777"):
        catalog.scenes(job_id=777)


def test_job_stores_the_config_it_was_given(catalog: Catalog) -> None:
    scene_id = catalog.add_scene(landsat8_attrs(), [])
    cfg = JobConfig(target_gsd=20.0, virtual_sensor_name="LANDSAT_8", exec_L2AP=(True, True, False))
    job = catalog.job(catalog.create_job([scene_id, scene_id], cfg))
    assert job.scene_ids == [scene_id]
    assert job.virtual_sensor == "LANDSAT_8"
    assert job.job_config() == cfg.replace(job_ID=job.id)


def test_bad_job_status_is_refused_naming_it(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id = two_scene_job[0]
    with pytest.raises(CatalogError, match="'done'.*pending"):
        catalog.set_job_status(job_id, "done")
    assert catalog.job(job_id).status == "pending"


def test_unknown_ids_raise_naming_the_id(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, _ = two_scene_job
    calls = {
        "scene with id 9991\\b": lambda: catalog.scene(9991),
        "job with id 9992\\b": lambda: catalog.job(9992),
        "job with id 9993\\b": lambda: catalog.set_job_status(9993, "running"),
        "job with id 9994\\b": lambda: catalog.record_level(9994, landsat_id, "L1A", "done"),
        "scene with id 9995\\b": lambda: catalog.record_level(job_id, 9995, "L1A", "done"),
        "job with id 9996\\b": lambda: catalog.failures(9996),
        "job with id 9997\\b": lambda: catalog.finish_job(9997),
        "job with id 9998\\b": lambda: catalog.tiles_written(9998),
        "job with id 9999\\b": lambda: catalog.reset_job(9999),
        "scene with id 9990\\b": lambda: catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", "/x.zarr", 9990),
        "job with id 9989\\b": lambda: catalog.update_statistics(9989),
        "job with id 9988\\b": lambda: catalog.level_status(9988, landsat_id),
        "id 9987": lambda: catalog.create_job([landsat_id, 9987], JobConfig()),
        "'NOPE_PRODUCT'": lambda: catalog.scene_id("NOPE_PRODUCT"),
    }
    for expected, call in calls.items():
        with pytest.raises(CatalogError, match=expected):
            call()


def test_level_and_status_values_are_checked(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, _ = two_scene_job
    # the level registry decides which levels exist (plugins add their own); the catalogue checks the form
    with pytest.raises(CatalogError, match="'3A; drop'"):
        catalog.record_level(job_id, landsat_id, "3A; drop", "done")
    with pytest.raises(CatalogError, match="'finished'"):
        catalog.record_level(job_id, landsat_id, "L1A", "finished")
    other_scene = catalog.add_scene(sentinel2_l2a_attrs(), [])
    with pytest.raises(CatalogError, match=f"scene {other_scene} is not part of job {job_id}"):
        catalog.record_level(job_id, other_scene, "L1A", "done")
    with pytest.raises(CatalogError, match="at least one scene"):
        catalog.create_job([], JobConfig())
    assert catalog.level_status(job_id, landsat_id) == {}


# --- level states and resume -------------------------------------------------------------------------------------

def test_resume_starts_after_the_last_completed_level(
    catalog: Catalog, two_scene_job: tuple[int, int, int],
) -> None:
    job_id, scene_id, _ = two_scene_job
    assert catalog.last_completed_level(job_id, scene_id) is None
    catalog.record_level(job_id, scene_id, "L1A", "done", output="/out/L1A.zarr")
    catalog.record_level(job_id, scene_id, "L1B", "skipped")
    catalog.record_level(job_id, scene_id, "L1C", "running")
    catalog.record_level(job_id, scene_id, "L1C", "failed", error=raise_and_catch(RuntimeError("no aerosol")))
    assert catalog.level_status(job_id, scene_id) == {"L1A": "done", "L1B": "skipped", "L1C": "failed"}
    assert catalog.last_completed_level(job_id, scene_id) == "L1B"

    for level in ("L1C", "L2A", "L2B", "L2C"):                       # the rerun
        catalog.record_level(job_id, scene_id, level, "running")
        catalog.record_level(job_id, scene_id, level, "done", output=Path(f"/out/{level}.zarr"))
    assert catalog.last_completed_level(job_id, scene_id) == "L2C"
    records = {record.level: record for record in catalog.level_records(job_id, scene_id)}
    assert list(records) == list(LEVELS)
    assert records["L1A"].output == "/out/L1A.zarr" and records["L2C"].output == "/out/L2C.zarr"
    assert records["L1C"].error_type == "" and records["L1C"].error_traceback == ""   # cleared by success
    assert records["L1C"].started_at <= records["L1C"].finished_at
    assert catalog.failures(job_id) == []


def test_resume_stops_at_a_gap_in_the_chain(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    catalog.record_level(job_id, landsat_id, "L1A", "done")
    catalog.record_level(job_id, landsat_id, "L1C", "done")           # L1B never recorded
    assert catalog.last_completed_level(job_id, landsat_id) == "L1A"
    catalog.record_level(job_id, sentinel2_id, "L1A", "running")
    assert catalog.last_completed_level(job_id, sentinel2_id) is None
    assert catalog.level_status(job_id, sentinel2_id) == {"L1A": "running"}


def test_failures_keep_exception_type_message_and_traceback(
    catalog: Catalog, two_scene_job: tuple[int, int, int],
) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    catalog.record_level(job_id, landsat_id, "L1A", "done")
    catalog.record_level(job_id, landsat_id, "L1B", "failed",
                         error=raise_and_catch(ValueError("no reference scene within 30 days")))
    catalog.record_level(job_id, sentinel2_id, "L1A", "failed", error=KeyError("B8A"))   # never raised
    failures = catalog.failures(job_id)
    assert [(f.scene_id, f.level) for f in failures] == [(landsat_id, "L1B"), (sentinel2_id, "L1A")]
    landsat_failure = failures[0]
    assert landsat_failure.product_id == LANDSAT8_ID and landsat_failure.platform == "LANDSAT_8"
    assert landsat_failure.error_type == "ValueError"
    assert landsat_failure.error_message == "no reference scene within 30 days"
    assert "Traceback (most recent call last)" in landsat_failure.error_traceback
    assert "atmospheric_correction_step" in landsat_failure.error_traceback
    assert landsat_failure.error_traceback.rstrip().endswith("ValueError: no reference scene within 30 days")
    assert failures[1].error_type == "KeyError" and failures[1].error_message == "'B8A'"
    assert failures[1].product_id == SENTINEL2_L1C_ID and failures[1].platform == "SENTINEL_2A"


# --- finishing a job ---------------------------------------------------------------------------------------------

def test_finish_job_with_one_failed_scene(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    catalog.set_job_status(job_id, "running")
    run_chain(catalog, job_id, landsat_id)
    run_chain(catalog, job_id, sentinel2_id, failing_level="L2A")
    assert catalog.finish_job(job_id) == "finished_with_errors"
    job = catalog.job(job_id)
    assert job.status == "finished_with_errors" and job.finish_time is not None
    assert job.failed_scene_ids == [sentinel2_id]
    assert job.statistics["L1A"] == {"done": 2, "failed": 0, "skipped": 0}
    assert job.statistics["L1B"] == {"done": 0, "failed": 0, "skipped": 2}
    assert job.statistics["L2A"] == {"done": 1, "failed": 1, "skipped": 0}
    assert job.statistics["L2C"] == {"done": 1, "failed": 0, "skipped": 0}


def test_finish_job_finished_and_failed(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    run_chain(catalog, job_id, landsat_id)
    run_chain(catalog, job_id, sentinel2_id)
    assert catalog.finish_job(job_id) == "finished"
    assert catalog.job(job_id).failed_scene_ids == []

    failing_job = catalog.create_job([landsat_id, sentinel2_id], JobConfig())
    run_chain(catalog, failing_job, landsat_id, failing_level="L1A")
    run_chain(catalog, failing_job, sentinel2_id, failing_level="L2C")
    assert catalog.finish_job(failing_job) == "failed"
    assert catalog.job(failing_job).failed_scene_ids == [landsat_id, sentinel2_id]
    assert catalog.job(job_id).status == "finished"                    # jobs keep their own states


def test_finish_job_marks_levels_left_running_as_failed(
    catalog: Catalog, two_scene_job: tuple[int, int, int],
) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    run_chain(catalog, job_id, landsat_id)
    catalog.record_level(job_id, sentinel2_id, "L1A", "running")     # its worker died
    assert catalog.finish_job(job_id) == "finished_with_errors"
    [failure] = catalog.failures(job_id)
    assert (failure.scene_id, failure.level, failure.error_type) == (sentinel2_id, "L1A", "Interrupted")


def test_canceled_job_stays_canceled(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, _ = two_scene_job
    run_chain(catalog, job_id, landsat_id)
    catalog.set_job_status(job_id, "canceled")
    assert catalog.finish_job(job_id) == "canceled"
    assert catalog.job(job_id).statistics["L2C"]["done"] == 1


def test_update_statistics_recounts(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    catalog.record_level(job_id, landsat_id, "L1A", "done")
    catalog.record_level(job_id, sentinel2_id, "L1A", "failed", error=RuntimeError("x"))
    statistics = catalog.update_statistics(job_id)
    assert statistics["L1A"] == {"done": 1, "failed": 1, "skipped": 0}
    assert catalog.job(job_id).statistics == statistics
    assert catalog.job(job_id).failed_scene_ids == [sentinel2_id]
    catalog.record_level(job_id, sentinel2_id, "L1A", "done")
    assert catalog.update_statistics(job_id)["L1A"] == {"done": 2, "failed": 0, "skipped": 0}
    assert catalog.job(job_id).failed_scene_ids == []


def test_reset_job_forgets_level_states(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    run_chain(catalog, job_id, landsat_id)
    run_chain(catalog, job_id, sentinel2_id, failing_level="L1C")
    catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", "/cubes/17SNB.zarr", landsat_id)
    catalog.finish_job(job_id)
    catalog.reset_job(job_id)
    job = catalog.job(job_id)
    assert job.status == "pending" and job.finish_time is None and job.failed_scene_ids == []
    assert job.statistics["L1A"] == {"done": 0, "failed": 0, "skipped": 0}
    assert catalog.level_status(job_id, landsat_id) == {}
    assert catalog.last_completed_level(job_id, landsat_id) is None
    assert catalog.failures(job_id) == []
    assert len(catalog.tiles_written(job_id)) == 1


# --- MGRS tiles -----------------------------------------------------------------------------------------------

def test_tiles_written(catalog: Catalog, two_scene_job: tuple[int, int, int]) -> None:
    job_id, landsat_id, sentinel2_id = two_scene_job
    catalog.record_tile(job_id, "T56JMM", "SENTINEL_2A", "/cubes/56JMM.zarr", sentinel2_id)
    catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", "/cubes/old/17SNB.zarr", landsat_id)
    catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", Path("/cubes/17SNB.zarr"), landsat_id)   # rewritten
    tiles = catalog.tiles_written(job_id)
    assert [(t.tile, t.virtual_sensor, t.path, t.scene_id) for t in tiles] == [
        ("17SNB", "SENTINEL_2A", "/cubes/17SNB.zarr", landsat_id),
        ("56JMM", "SENTINEL_2A", "/cubes/56JMM.zarr", sentinel2_id),
    ]
    assert all(t.job_id == job_id and t.written_at.tzinfo is not None for t in tiles)
