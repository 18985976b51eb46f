"""Tests of the scene/job catalogue (gmsdask.catalog) on temporary SQLite files."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gmsdask.catalog import Catalog, find_products, is_product_name, normalize_tile
from gmsdask.config import LEVELS, JobConfig
from gmsdask.errors import CatalogError, GmsdaskError

REPO_ROOT = Path(__file__).resolve().parents[1]

LANDSAT8_ID = "LC08_L1TP_016037_20170813_20170814_01_RT"
SENTINEL2_L1C_ID = "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042"
SENTINEL2_L2A_ID = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"


def landsat8_attrs(**changes: Any) -> dict[str, Any]:
    """Root attrs of a Landsat-8 C1 L1TP scene as docs/scene-model.md defines them."""
    attrs: dict[str, Any] = {
        "platform": "LANDSAT_8",
        "sensor": "OLI_TIRS",
        "product_id": LANDSAT8_ID,
        "product_path": f"/archive/landsat/{LANDSAT8_ID}",
        "processing_level": "L1TP",
        "acquisition_time": "2017-08-13T15:45:12.345678Z",
        "sun_elevation_deg": 63.5,
        "sun_azimuth_deg": 118.2,
        "earth_sun_distance_au": 1.0133,
        "cloud_cover_pct": 18.54,
        "footprint": "POLYGON ((-78.93 33.43, -76.95 33.05, -77.43 31.33, -79.38 31.71, -78.93 33.43))",
        "footprint_source": "MTL corners",
        "processing_baseline": "",
        "epsg": 32617,
        "mgrs_tile": "",
        "wrs_path": 16,
        "wrs_row": 37,
        "collection": 1,
        "band_names": ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11"],
    }
    return attrs | changes


def sentinel2_attrs(**changes: Any) -> dict[str, Any]:
    """Root attrs of a Sentinel-2A L1C scene as docs/scene-model.md defines them."""
    attrs: dict[str, Any] = {
        "platform": "SENTINEL_2A",
        "sensor": "MSI",
        "product_id": SENTINEL2_L1C_ID,
        "product_path": f"/archive/sentinel2/{SENTINEL2_L1C_ID}.zip",
        "processing_level": "L1C",
        "acquisition_time": "2018-06-29T00:02:41.024Z",
        "sun_elevation_deg": 34.1,
        "sun_azimuth_deg": 30.8,
        "earth_sun_distance_au": 1.0166,
        "cloud_cover_pct": 2.5,
        "footprint": "POLYGON ((152.0 -26.2, 153.1 -26.2, 153.1 -27.2, 152.0 -27.2, 152.0 -26.2))",
        "footprint_source": "MTD_MSIL1C.xml Product_Footprint",
        "processing_baseline": "02.06",
        "epsg": 32756,
        "mgrs_tile": "56JMM",
        "wrs_path": 0,
        "wrs_row": 0,
        "collection": 0,
        "band_names": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"],
    }
    return attrs | changes


def sentinel2_l2a_attrs() -> dict[str, Any]:
    """A cloudy Sentinel-2A L2A scene of tile 29UNU in 2022."""
    return sentinel2_attrs(
        product_id=SENTINEL2_L2A_ID, product_path=f"/archive/sentinel2/{SENTINEL2_L2A_ID}.SAFE",
        processing_level="L2A", acquisition_time="2022-10-05T11:54:11.024Z", cloud_cover_pct=45.7,
        footprint="POLYGON ((-9.0 53.2, -7.4 53.2, -7.4 52.2, -9.0 52.2, -9.0 53.2))",
        processing_baseline="04.00", epsg=32629, mgrs_tile="29UNU",
    )


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


@pytest.fixture()
def catalog(db_url: str) -> Catalog:
    with Catalog(db_url) as opened:
        yield opened


@pytest.fixture()
def two_scene_job(catalog: Catalog) -> tuple[int, int, int]:
    """A job over a Landsat-8 and a Sentinel-2 scene: ``(job_id, landsat_id, sentinel2_id)``."""
    landsat_id = catalog.add_scene(landsat8_attrs(), ["17SNB", "17SPB"])
    sentinel2_id = catalog.add_scene(sentinel2_attrs(), ["56JMM", "56JLM"])
    job_id = catalog.create_job([landsat_id, sentinel2_id], JobConfig(), comment="two sensors")
    return job_id, landsat_id, sentinel2_id


def raise_and_catch(error: BaseException) -> BaseException:
    """``error`` after it was raised in a named function, so that it carries a traceback."""

    def atmospheric_correction_step() -> None:
        raise error

    try:
        atmospheric_correction_step()
    except BaseException as caught:  # noqa: BLE001 - the point is to keep it
        return caught
    raise AssertionError("not raised")


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


# --- product discovery ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "is_dir", "expected"), [
    (LANDSAT8_ID, True, True),
    ("LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz", False, True),
    ("LE07_L1TP_104078_20130429_20161124_01_T1.tar", False, True),
    ("LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz", False, True),
    ("LC09_L2SP_010065_20220101_20220103_02_T1", True, True),
    (f"{SENTINEL2_L1C_ID}.zip", False, True),
    (f"{SENTINEL2_L2A_ID}.SAFE", True, True),
    (f"{SENTINEL2_L2A_ID}.SAFE.zip", False, True),
    ("S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip", False, True),
    ("S2C_MSIL2A_20250101T101010_N0511_R022_T32UNE_20250101T120000.SAFE", True, True),
    (LANDSAT8_ID, False, False),                                  # a file without archive suffix
    ("LC08_L1TP_224077_20200127_20200127_01_RT_B2.TIF", False, False),
    ("LC08_L2SP_224078_20200127_20200208_02_T1_MTL.txt", False, False),
    ("LC08_L1TP_016037_20170813_20170814_01_RT.tif", True, False),  # a directory with another suffix
    ("S2A_MSIL1C_notes.zip", False, False),
    ("LC03_L1TP_016037_20170813_20170814_01_RT", True, False),
    ("archive.zip", False, False),
    ("readme.txt", False, False),
])
def test_product_names(name: str, is_dir: bool, expected: bool) -> None:
    assert is_product_name(name, is_dir=is_dir) is expected


@pytest.fixture()
def product_folder(tmp_path: Path) -> Path:
    """Empty files and folders named like real products, plus things that are not products."""
    root = tmp_path / "archive"
    (root / LANDSAT8_ID).mkdir(parents=True)
    (root / LANDSAT8_ID / f"{LANDSAT8_ID}_MTL.txt").write_text("")
    (root / LANDSAT8_ID / f"{SENTINEL2_L1C_ID}.zip").write_text("")     # inside a product: not searched
    (root / f"{SENTINEL2_L1C_ID}.zip").write_bytes(b"")
    (root / f"{SENTINEL2_L2A_ID}.SAFE" / "GRANULE").mkdir(parents=True)
    (root / "landsat" / "collection1").mkdir(parents=True)
    (root / "landsat" / "collection1" / "LE07_L1TP_104078_20130429_20161124_01_T1.tar").write_bytes(b"")
    (root / "landsat" / "collection1" / "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz").write_bytes(b"")
    (root / "notes.txt").write_text("not a product")
    (root / "LC08_L1TP_224077_20200127_20200127_01_RT_B2.TIF").write_bytes(b"")
    (root / "empty_folder").mkdir()
    return root


class StubReader:
    """Stands in for gmsdask.io.open_scene: scene attrs made up from the product name, calls recorded."""

    def __init__(self) -> None:
        self.opened: list[Path] = []

    def __call__(self, path: Path) -> SimpleNamespace:
        self.opened.append(Path(path))
        name = Path(path).name
        if name.startswith("S2"):
            attrs = sentinel2_attrs(product_id=name.split(".")[0], product_path=str(path))
        else:
            attrs = landsat8_attrs(product_id=name.split(".")[0], product_path=str(path))
        return SimpleNamespace(attrs=attrs)


def stub_tiles(footprint_wkt: str) -> list[str]:
    """Stands in for gmsdask.mgrs_grid.tiles_intersecting."""
    assert footprint_wkt.startswith("POLYGON")
    return ["56JMM", "56JLM"] if "152.0" in footprint_wkt else ["17SNB"]


def test_add_products_finds_every_product_in_a_folder_and_ignores_the_rest(
    catalog: Catalog, product_folder: Path,
) -> None:
    reader = StubReader()
    scene_ids = catalog.add_products(product_folder, open_scene=reader, tiles_for_footprint=stub_tiles)
    expected = sorted([
        product_folder / LANDSAT8_ID,
        product_folder / f"{SENTINEL2_L1C_ID}.zip",
        product_folder / f"{SENTINEL2_L2A_ID}.SAFE",
        product_folder / "landsat" / "collection1" / "LE07_L1TP_104078_20130429_20161124_01_T1.tar",
        product_folder / "landsat" / "collection1" / "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz",
    ])
    assert sorted(reader.opened) == expected
    assert len(scene_ids) == len(set(scene_ids)) == 5
    products = {scene.product_id: scene for scene in catalog.scenes()}
    assert set(products) == {
        LANDSAT8_ID, SENTINEL2_L1C_ID, SENTINEL2_L2A_ID,
        "LE07_L1TP_104078_20130429_20161124_01_T1", "LT05_L1TP_090085_19970406_20161231_01_T1",
    }
    assert products[SENTINEL2_L1C_ID].mgrs_tiles == ["56JLM", "56JMM"]
    assert products[LANDSAT8_ID].mgrs_tiles == ["17SNB"]
    assert products[LANDSAT8_ID].product_path == str(product_folder / LANDSAT8_ID)


def test_add_products_twice_adds_nothing_new(catalog: Catalog, product_folder: Path) -> None:
    first = catalog.add_products(product_folder, open_scene=StubReader(), tiles_for_footprint=stub_tiles)
    again = catalog.add_products([product_folder / f"{SENTINEL2_L1C_ID}.zip", product_folder],
                                 open_scene=StubReader(), tiles_for_footprint=stub_tiles)
    assert sorted(again) == sorted(first)
    assert len(catalog.scenes()) == 5


def test_add_products_takes_a_product_path_as_given(catalog: Catalog, product_folder: Path) -> None:
    reader = StubReader()
    product = product_folder / LANDSAT8_ID
    [scene_id] = catalog.add_products(str(product), open_scene=reader, tiles_for_footprint=stub_tiles)
    assert reader.opened == [product]
    assert catalog.scene(scene_id).product_id == LANDSAT8_ID


def test_add_products_refuses_a_missing_path(catalog: Catalog, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(CatalogError, match="no_such_folder"):
        catalog.add_products(missing, open_scene=StubReader(), tiles_for_footprint=stub_tiles)


def test_find_products_does_not_enter_products(product_folder: Path) -> None:
    found = find_products(product_folder)
    assert product_folder / LANDSAT8_ID / f"{SENTINEL2_L1C_ID}.zip" not in found
    assert product_folder / "notes.txt" not in found
    assert len(found) == 5


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
    with pytest.raises(CatalogError, match="'L3A'"):
        catalog.record_level(job_id, landsat_id, "L3A", "done")
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

def run_chain(catalog: Catalog, job_id: int, scene_id: int, failing_level: str | None = None) -> None:
    """Record a scene's levels as a worker would: done up to ``failing_level``, which fails."""
    for level in LEVELS:
        catalog.record_level(job_id, scene_id, level, "running")
        if level == failing_level:
            catalog.record_level(job_id, scene_id, level, "failed", error=raise_and_catch(OSError("disk full")))
            return
        status = "skipped" if level == "L1B" else "done"
        catalog.record_level(job_id, scene_id, level, status, output=f"/out/{scene_id}/{level}")


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


# --- persistence and opening --------------------------------------------------------------------------------------

def test_catalog_reopens_from_the_same_file(db_url: str) -> None:
    with Catalog(db_url) as first:
        landsat_id = first.add_scene(landsat8_attrs(), ["17SNB"])
        sentinel2_id = first.add_scene(sentinel2_attrs(), [])
        job_id = first.create_job([landsat_id, sentinel2_id], JobConfig(), comment="persist")
        run_chain(first, job_id, landsat_id)
        run_chain(first, job_id, sentinel2_id, failing_level="L2B")
        first.record_tile(job_id, "17SNB", "SENTINEL_2A", "/cubes/17SNB.zarr", landsat_id)
        first.finish_job(job_id)
        before = (first.scenes(), first.job(job_id), first.failures(job_id), first.tiles_written(job_id),
                  first.level_records(job_id))
    reopened = pickle.loads(pickle.dumps(Catalog(db_url)))            # also: a Catalog travels as its URL
    after = (reopened.scenes(), reopened.job(job_id), reopened.failures(job_id), reopened.tiles_written(job_id),
             reopened.level_records(job_id))
    assert after == before
    assert reopened.job(job_id).status == "finished_with_errors"
    assert reopened.last_completed_level(job_id, sentinel2_id) == "L2A"
    reopened.close()


def test_from_config_creates_the_folder_of_a_relative_sqlite_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = JobConfig(db_url="sqlite:///gmsdask_data/nested/catalog.sqlite")
    with Catalog.from_config(cfg) as catalog:
        scene_id = catalog.add_scene(landsat8_attrs(), [])
    database = tmp_path / "gmsdask_data" / "nested" / "catalog.sqlite"
    assert database.is_file()
    assert catalog.url == f"sqlite:///{database.resolve()}"       # a worker elsewhere opens the same file
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert pickle.loads(pickle.dumps(catalog)).scene(scene_id).product_id == LANDSAT8_ID


def test_in_memory_catalog_works() -> None:
    with Catalog("sqlite://") as catalog:
        scene_id = catalog.add_scene(sentinel2_attrs(), [])
        assert catalog.scene(scene_id).product_id == SENTINEL2_L1C_ID


def test_invalid_url_is_a_catalog_error() -> None:
    with pytest.raises(CatalogError, match="not a url"):
        Catalog("not a url")
    with pytest.raises(CatalogError, match="nosuchdb"):
        Catalog("nosuchdb://user:pw@host/db")


# --- concurrent writers --------------------------------------------------------------------------------------------

SCENES_PER_WRITER = 3


def record_all_levels(catalog: Catalog, job_id: int, scene_ids: list[int]) -> None:
    for scene_id in scene_ids:
        for level in LEVELS:
            catalog.record_level(job_id, scene_id, level, "running")
            catalog.record_level(job_id, scene_id, level, "done", output=f"/out/{scene_id}/{level}")


def make_concurrency_job(catalog: Catalog, n_scenes: int) -> tuple[int, list[int]]:
    scene_ids = [catalog.add_scene(landsat8_attrs(product_id=f"LC08_L1TP_016037_20170813_20170814_01_{i:02d}"), [])
                 for i in range(n_scenes)]
    return catalog.create_job(scene_ids, JobConfig()), scene_ids


def test_concurrent_threads_do_not_lose_rows(db_url: str) -> None:
    n_writers = 4
    with Catalog(db_url) as catalog:
        job_id, scene_ids = make_concurrency_job(catalog, n_writers * SCENES_PER_WRITER)
    errors: list[BaseException] = []
    start = threading.Barrier(n_writers)

    def writer(index: int) -> None:
        own_catalog = Catalog(db_url) if index % 2 else shared    # separate engines and a shared one
        try:
            start.wait()
            record_all_levels(own_catalog, job_id, scene_ids[index::n_writers])
            own_catalog.add_scene(sentinel2_attrs(product_id=f"S2A_MSIL1C_20180629T000241_thread{index}"), [])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    shared = Catalog(db_url)
    threads = [threading.Thread(target=writer, args=(index,)) for index in range(n_writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    reader = Catalog(db_url)
    records = reader.level_records(job_id)
    assert len(records) == len(scene_ids) * len(LEVELS)
    assert all(record.status == "done" for record in records)
    assert all(reader.last_completed_level(job_id, scene_id) == "L2C" for scene_id in scene_ids)
    assert len(reader.scenes(platform="SENTINEL_2A")) == n_writers
    assert reader.finish_job(job_id) == "finished"


WRITER_PROCESS_SCRIPT = textwrap.dedent("""
    import sys
    from gmsdask.catalog import Catalog
    from gmsdask.config import LEVELS
    url, job_id, scene_ids = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")]
    catalog = Catalog(url)
    for scene_id in scene_ids:
        for level in LEVELS:
            catalog.record_level(job_id, scene_id, level, "running")
            catalog.record_level(job_id, scene_id, level, "done", output=f"/out/{scene_id}/{level}")
            catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", f"/cubes/{level}.zarr", scene_id)
""")


def test_concurrent_processes_do_not_lose_rows(db_url: str) -> None:
    with Catalog(db_url) as catalog:
        job_id, scene_ids = make_concurrency_job(catalog, 3 * SCENES_PER_WRITER)
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                              os.environ.get("PYTHONPATH")]))}
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER_PROCESS_SCRIPT, db_url, str(job_id),
                          ",".join(map(str, scene_ids[index::3]))],
                         env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in (0, 1)
    ]
    with Catalog(db_url) as in_this_process:
        record_all_levels(in_this_process, job_id, scene_ids[2::3])
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    with Catalog(db_url) as reader:
        records = reader.level_records(job_id)
        assert len(records) == len(scene_ids) * len(LEVELS)
        assert {record.status for record in records} == {"done"}
        assert len(reader.tiles_written(job_id)) == 2 * SCENES_PER_WRITER
        assert reader.update_statistics(job_id)["L2C"]["done"] == len(scene_ids)


def test_a_writer_waits_for_a_lock_held_by_another_connection(db_url: str, tmp_path: Path) -> None:
    import sqlite3
    import time

    with Catalog(db_url) as catalog:
        job_id, [scene_id] = make_concurrency_job(catalog, 1)
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


def test_an_unopenable_database_is_a_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "a_folder.sqlite").mkdir()
    with pytest.raises(CatalogError, match="cannot open catalogue .*a_folder.sqlite"):
        Catalog(f"sqlite:///{tmp_path / 'a_folder.sqlite'}")
