"""Every kind of bad input in one place: each raises a named gmsdask error whose message names the file and the
problem, and a job holding such a scene goes on with its other scenes without losing anything already written.

The jobs of this module run once, in order, on one catalogue and one set of cubes (module fixture ``runs``):

1. ``earlier``: the Landsat-8 thumbnail alone, into cube 55HFA (the slot every later step must leave intact);
2. ``disk_full``: the Landsat-5 thumbnail, whose cube chunk writes fail with ENOSPC after the first one;
   ``cloudy``: a 100 % cloudy synthetic Sentinel-2 scene (cube 33UUU), which must finish;
3. ``bad``: the Landsat-5 thumbnail again (it must now arrive) beside one broken product per kind: truncated
   archive, corrupt MTL, corrupt Sentinel-2 XML, missing band file, unknown product, a scene outside every MGRS
   tile. The broken products are catalogued intact, then broken on disk, as happens when storage fails.

Invalid configurations and a catalogue file that is not a database are refused before anything runs.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from distributed import Client

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.errors import (
    BandFileError,
    CatalogError,
    ConfigError,
    DiskFullError,
    MetadataError,
    ProcessingError,
    ProductError,
    UnknownProductError,
)
from gmsdask.io import open_scene
from gmsdask.io.cube import open_cube
from gmsdask.synthetic import write_sentinel2_l1c

from .conftest import data_path

GOOD_A = ("landsat", "collection1", "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz")
GOOD_B = ("landsat", "collection1", "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz")
TILE, CLOUDY_TILE = "55HFA", "33UUU"
OPTIONS = {"target_gsd": 3660.0, "mgrs_pixel_buffer": 0, "tiling_block_size_XY": (64, 64),
           "target_mgrs_tiles": [TILE, CLOUDY_TILE], "skip_spechomo": True, "brdf_correction": False}
POLAR_FOOTPRINT = "POLYGON ((10 86, 12 86, 12 87, 10 87, 10 86))"  # north of 84 N: no MGRS tile


# --- broken products: (make an intact copy, break it) ------------------------------------------------------------
def _truncated_archive(folder: Path) -> tuple[Path, Callable[[Path], None]]:
    source = data_path("landsat", "collection1", "LE07_L1TP_104078_20130429_20161124_01_T1.tar")
    copy = folder / source.name
    shutil.copyfile(source, copy)
    return copy, lambda path: path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def _corrupt_mtl(folder: Path) -> tuple[Path, Callable[[Path], None]]:
    source = data_path("landsat", "collection1", "LC08_L1TP_016037_20170813_20170814_01_RT")
    copy = folder / source.name
    copy.mkdir()
    for file in source.iterdir():
        if file.name.endswith("_MTL.txt"):
            shutil.copyfile(file, copy / file.name)
        else:
            (copy / file.name).symlink_to(file)

    def corrupt(path: Path) -> None:
        (mtl,) = path.glob("*_MTL.txt")
        mtl.write_text(mtl.read_text()[: mtl.stat().st_size // 2])
    return copy, corrupt


def _corrupt_sentinel2_xml(folder: Path) -> tuple[Path, Callable[[Path], None]]:
    source = data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    copy = folder / source.name
    for file in source.rglob("*"):
        if file.is_file():
            target = copy / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target) if file.suffix == ".xml" else target.symlink_to(file)

    def corrupt(path: Path) -> None:
        mtd = path / "MTD_MSIL2A.xml"
        mtd.write_bytes(mtd.read_bytes()[:20000])
    return copy, corrupt


def _missing_band(folder: Path) -> tuple[Path, Callable[[Path], None]]:
    source = data_path("sentinel2", "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
    copy = folder / source.name
    shutil.copyfile(source, copy)

    def drop_b04(path: Path) -> None:
        kept = path.with_suffix(".tmp")
        with zipfile.ZipFile(source) as original, zipfile.ZipFile(kept, "w", zipfile.ZIP_STORED) as out:
            for info in original.infolist():
                if not info.filename.endswith("_B04.jp2"):
                    out.writestr(info, original.read(info.filename))
        kept.replace(path)
    return copy, drop_b04


def _unknown_product(folder: Path) -> tuple[Path, Callable[[Path], None]]:
    source = data_path("sentinel2", "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip")
    copy = folder / source.name
    shutil.copyfile(source, copy)

    def replace_by_notes(path: Path) -> None:
        path.unlink()
        path.mkdir()
        (path / "notes.txt").write_text("a folder named like a product, holding no product")
    return copy, replace_by_notes


@dataclass(frozen=True)
class BadCase:
    make: Callable[[Path], tuple[Path, Callable[[Path], None]]]
    error: type[Exception]
    problem: str  # regex the message must match besides the file's name
    names: str = ""  # the file the message must name, relative to the product ('' = the product itself)


BAD_PRODUCTS = {
    "truncated archive": BadCase(_truncated_archive, ProductError, "truncated or corrupt"),
    "corrupt MTL": BadCase(_corrupt_mtl, MetadataError, "(truncated|never closed|not ODL)",
                           "LC08_L1TP_016037_20170813_20170814_01_RT_MTL.txt"),
    "corrupt Sentinel-2 XML": BadCase(_corrupt_sentinel2_xml, MetadataError, "not well-formed XML", "MTD_MSIL2A.xml"),
    "missing band file": BadCase(_missing_band, BandFileError, "B04.jp2.*missing|missing.*B04"),
    "unknown product": BadCase(_unknown_product, UnknownProductError, "no Landsat MTL .* or Sentinel-2 metadata"),
}


# --- the module's jobs -------------------------------------------------------------------------------------------
@dataclass
class Runs:
    catalog: Catalog
    jobs: dict[str, int]
    scene_of: dict[str, int]  # case or product role -> scene id
    product_of: dict[str, Path]
    earlier_cube: xr.Dataset  # cube 55HFA after the first job
    enospc_raised: int  # chunk writes refused with ENOSPC during the disk_full job
    written_before_enospc: int


_PIXEL_CHUNK = re.compile(r"/c/\d+/\d+/\d+$")  # a (time, y, x) chunk, not the per-slot coordinates


def _fail_cube_chunk_writes_with_enospc(monkeypatch, allowed: int) -> dict[str, int]:
    """Let ``allowed`` pixel chunk writes into the cubes pass, then raise ENOSPC, as a full disk does mid-write.

    Patch point: the Icechunk store the cube writer writes chunks through (``icechunk.IcechunkStore.set``);
    ``counts`` lets the test assert that the fault was really injected.
    """
    import icechunk

    counts = {"written": 0, "refused": 0}
    original = icechunk.IcechunkStore.set

    async def set_or_fail(store, key, value):
        if _PIXEL_CHUNK.search(key):
            if counts["written"] >= allowed:
                counts["refused"] += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            counts["written"] += 1
        return await original(store, key, value)

    monkeypatch.setattr(icechunk.IcechunkStore, "set", set_or_fail)
    return counts


def _run(catalog: Catalog, job_id: int) -> None:
    controller = ProcessController(job_id, db_url=catalog.url)
    controller.run_all_processors()
    controller.shutdown()


def _cube(catalog: Catalog, job_id: int, tile: str) -> xr.Dataset:
    (path,) = {t.path for t in catalog.tiles_written(job_id) if t.tile == tile}
    return open_cube(path).load()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    folder = tmp_path_factory.mktemp("bad_input")
    cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                     path_procdata_scenes=folder / "scenes", path_job_logs=folder / "logs", **OPTIONS)
    catalog = Catalog.from_config(cfg)
    (good_a,) = catalog.add_products([data_path(*GOOD_A)])
    (good_b,) = catalog.add_products([data_path(*GOOD_B)])
    cloudy = write_sentinel2_l1c(folder / "cloudy", tile=CLOUDY_TILE, size=(1200, 1200), cloud_fraction=1.0)
    (cloudy_id,) = catalog.add_products([cloudy.path])
    polar = write_sentinel2_l1c(folder / "polar", tile=CLOUDY_TILE, size=(600, 600), seed=1,
                                acquisition_time="2024-06-02")

    def opened_at_the_pole(path: Path) -> xr.DataTree:
        scene = open_scene(path)
        scene.attrs["footprint"] = POLAR_FOOTPRINT
        scene.attrs.pop("mgrs_tile")  # Sentinel-2 tiles end at 84 N too
        return scene

    (polar_id,) = catalog.add_products([polar.path], open_scene=opened_at_the_pole)
    scene_of = {"A": good_a, "B": good_b, "cloudy": cloudy_id, "outside every MGRS tile": polar_id}
    product_of = {"cloudy": cloudy.path, "outside every MGRS tile": polar.path}
    breakers = {}
    for name, case in BAD_PRODUCTS.items():
        case_folder = folder / "broken" / name.replace(" ", "_")
        case_folder.mkdir(parents=True)
        product_of[name], breakers[name] = case.make(case_folder)
        (scene_of[name],) = catalog.add_products([product_of[name]])
    jobs = {"earlier": catalog.create_job([good_a], cfg, comment="earlier"),
            "disk_full": catalog.create_job([good_b], cfg, comment="disk full"),
            # 64-pixel blocks suit the thumbnails; the 1200^2 synthetic scene would be 4,000 tasks per level
            "cloudy": catalog.create_job([cloudy_id], cfg.replace(tiling_block_size_XY=(512, 512)),
                                         comment="a scene that is all cloud"),
            "bad": catalog.create_job([good_b, polar_id, *(scene_of[name] for name in BAD_PRODUCTS)], cfg,
                                      comment="bad input")}
    for name, breaker in breakers.items():
        breaker(product_of[name])

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        _run(catalog, jobs["earlier"])
        earlier_cube = _cube(catalog, jobs["earlier"], TILE)
        with pytest.MonkeyPatch.context() as monkeypatch:
            counts = _fail_cube_chunk_writes_with_enospc(monkeypatch, allowed=1)
            _run(catalog, jobs["disk_full"])
        _run(catalog, jobs["cloudy"])
        _run(catalog, jobs["bad"])
    return Runs(catalog, jobs, scene_of, product_of, earlier_cube, counts["refused"], counts["written"])


def _failure(runs: Runs, job: str, case: str):
    failures = {f.scene_id: f for f in runs.catalog.failures(runs.jobs[job])}
    assert runs.scene_of[case] in failures, f"{case}: no failure recorded; statuses " \
        f"{runs.catalog.level_status(runs.jobs[job], runs.scene_of[case])}"
    return failures[runs.scene_of[case]]


def _assert_earlier_slot_intact(runs: Runs, cube: xr.Dataset) -> None:
    earlier = runs.earlier_cube
    (slot,) = np.flatnonzero(cube["scene_id"].values == earlier["scene_id"].values[0])
    xr.testing.assert_identical(cube.isel(time=[slot]).drop_attrs(), earlier.drop_attrs())


# --- products ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(BAD_PRODUCTS))
def test_broken_product_raises_a_named_error_naming_its_file(case, runs):
    bad = BAD_PRODUCTS[case]
    path = runs.product_of[case]
    named = re.escape(str(path / bad.names if bad.names else path))
    with pytest.raises(bad.error, match=named + ".*" + bad.problem):
        open_scene(path)


@pytest.mark.parametrize("case", list(BAD_PRODUCTS))
def test_broken_product_fails_its_scene_and_the_job_goes_on(case, runs):
    bad = BAD_PRODUCTS[case]
    failure = _failure(runs, "bad", case)
    assert failure.level == "L1A"
    assert failure.error_type == bad.error.__name__
    assert str(runs.product_of[case]) in failure.error_message and re.search(bad.problem, failure.error_message)
    assert "Traceback" in failure.error_traceback
    # the good scene of the same job reached its cube, the earlier slot is as it was
    assert runs.catalog.level_status(runs.jobs["bad"], runs.scene_of["B"])["L2C"] == "done"
    assert runs.catalog.job(runs.jobs["bad"]).status == "finished_with_errors"
    cube = _cube(runs.catalog, runs.jobs["bad"], TILE)
    assert sorted(cube["scene_id"].values.tolist()) == sorted(
        [runs.catalog.scene(runs.scene_of[s]).product_id for s in ("A", "B")])
    _assert_earlier_slot_intact(runs, cube)


def test_a_fully_cloudy_scene_finishes_and_is_recorded(runs):
    job, scene = runs.jobs["cloudy"], runs.scene_of["cloudy"]
    assert runs.catalog.scene(scene).cloud_cover_pct == 100.0
    statuses = runs.catalog.level_status(job, scene)
    assert statuses["L2C"] == "done" and "failed" not in statuses.values(), statuses
    # L1C's Fmask masks every pixel: if the writer keeps the slot, it holds the scene once, classed cloud,
    # without a single valid reflectance
    for record in runs.catalog.tiles_written(job):
        cube = open_cube(record.path).load()
        slots = np.flatnonzero(cube["scene_id"].values == runs.catalog.scene(scene).product_id)
        assert len(slots) <= 1
        for slot in slots:
            assert bool(cube["nodata"].isel(time=slot).all())
            assert int((cube["fmask"].isel(time=slot) == 2).sum()) > 0
            assert all(int(cube[band].isel(time=slot).count()) == 0 for band in ("B02", "B04", "B8A"))


def test_a_scene_outside_every_mgrs_tile_fails_at_tiling_naming_the_scene(runs):
    # catalogued with no tile (MGRS ends at 84 N); its levels before tiling are fine
    scene = runs.catalog.scene(runs.scene_of["outside every MGRS tile"])
    assert scene.mgrs_tiles == []
    failure = _failure(runs, "bad", "outside every MGRS tile")
    assert failure.level == "L2C" and failure.error_type == ProcessingError.__name__
    assert scene.product_id in failure.error_message and "MGRS tile" in failure.error_message


# --- a full disk -------------------------------------------------------------------------------------------------
def test_disk_full_mid_write_fails_the_scene_with_a_named_error_and_keeps_earlier_slots(runs):
    assert runs.written_before_enospc == 1 and runs.enospc_raised >= 1, "the ENOSPC fault was not injected"
    failure = _failure(runs, "disk_full", "B")
    assert failure.level == "L2C" and failure.error_type == DiskFullError.__name__
    assert "no space left" in failure.error_message and "cubes" in failure.error_message
    assert runs.catalog.scene(runs.scene_of["B"]).product_id in failure.error_message
    assert runs.catalog.job(runs.jobs["disk_full"]).status == "failed"  # its one scene failed
    # the earlier scene's slot is intact in the cube the failed write went to (read after the module's last job)
    cube = _cube(runs.catalog, runs.jobs["earlier"], TILE)
    _assert_earlier_slot_intact(runs, cube)


# --- configuration and catalogue ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "key", "problem"), [
    ({"bogus_option": 1}, "bogus_option", "unknown option"),
    ({"target_gsd": "thirty"}, "target_gsd", "valid number"),
    ({"retries": -1}, "retries", "greater than or equal to 0"),
])
def test_invalid_configuration_is_refused_naming_the_option(options, key, problem, runs, tmp_path):
    with pytest.raises(ConfigError, match=rf"'{key}'.*{problem}"):
        set_config(**options)
    config_file = tmp_path / "job.json"
    config_file.write_text(json.dumps(options))
    with pytest.raises(ConfigError, match=rf"'{key}'.*{problem}"):
        ProcessController(runs.jobs["earlier"], db_url=runs.catalog.url, json_config=str(config_file))
    # nothing ran: the job and its cube are as they were
    assert runs.catalog.job(runs.jobs["earlier"]).status == "finished"
    _assert_earlier_slot_intact(runs, _cube(runs.catalog, runs.jobs["earlier"], TILE))


def test_a_catalogue_file_that_is_not_a_database_is_named(tmp_path):
    not_a_database = tmp_path / "catalog.sqlite"
    not_a_database.write_bytes(b"these are not the bytes of a SQLite database\n" * 200)
    with pytest.raises(CatalogError, match=re.escape(str(not_a_database)) + ".*not a database"):
        Catalog(f"sqlite:///{not_a_database}")
    with pytest.raises(CatalogError, match=re.escape(str(not_a_database))):
        ProcessController(1, db_url=f"sqlite:///{not_a_database}")
    assert not_a_database.read_bytes().startswith(b"these are not")  # left as it was
