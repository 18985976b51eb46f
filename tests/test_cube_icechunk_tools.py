"""Cube tools: COG and Zarr export, compaction in time order, migration of plain-Zarr cubes, ``gmsdask cube``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import typer
import xarray as xr
from odc.geo.geobox import GeoBox
from typer.testing import CliRunner

from gmsdask.cube_cli import cube_app
from gmsdask.errors import CubeWriteError, ProcessingError
from gmsdask.io.cube import CubeGrid, SceneSlot, cube_log, open_cube, write_scene
from gmsdask.io.cube_export import compact_cube, export_cube
from gmsdask.io.cube_migrate import migrate_cube

from .cube_helpers import GRID, SCENES, assert_slot_holds, scene_values, write

OLD_CUBES = Path(__file__).parent / "data" / "plain_zarr_cubes" / "SENTINEL_2A"


@pytest.fixture
def cube(tmp_path) -> Path:
    """A cube with scenes written out of time order: A (Oct 5), B (Sep 25), C (Oct 15)."""
    path = tmp_path / "cubes" / "SENTINEL_2A" / "29UNU.icechunk"
    for scene_id in "ABC":
        write(path, scene_id)
    return path


def test_cog_export_per_variable_and_date_reopens_with_its_georeference(cube, tmp_path):
    files = export_cube(cube, tmp_path / "cog", time="2022-09-25/2022-10-05")
    names = sorted(f.name for f in files)
    assert names == sorted(f"29UNU.{stamp}.{scene}.{var}.tif" for scene, stamp in
                           (("B", "20220925T115411"), ("A", "20221005T115411"))
                           for var in ("B02", "B8A", "SCL", "nodata"))
    seed, _, (row, col) = SCENES["A"]
    with rasterio.open(tmp_path / "cog" / "29UNU.20221005T115411.A.B02.tif") as src:
        assert src.crs.to_epsg() == 32629 and src.transform == GRID.geobox.affine
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (src.dtypes[0], src.nodata, src.scales[0]) == ("int16", -9999.0, pytest.approx(1e-4))
        stored = src.read(1, masked=True)
    decoded = stored.astype(np.float64).filled(np.nan) * src.scales[0]
    np.testing.assert_allclose(decoded[row:row + 128, col:col + 192], scene_values(seed)["B02"], atol=0.5e-4 + 1e-7)
    assert int(stored.count()) == int(np.isfinite(scene_values(seed)["B02"]).sum())
    x, y = src.xy(row, col)  # the pixel centre matches the cube's coordinates
    assert (x, y) == (float(open_cube(cube).x[col]), float(open_cube(cube).y[row]))


def test_zarr_export_is_a_plain_sorted_copy(cube, tmp_path):
    [store] = export_cube(cube, tmp_path / "zarr", format="zarr")
    copy = xr.open_zarr(store, consolidated=False)
    assert list(copy.scene_id.values) == ["B", "A", "C"]
    original = open_cube(cube)
    np.testing.assert_array_equal(copy.B02.values.astype(np.float32), original.B02.values)
    assert copy.rio.crs.to_epsg() == 32629


def test_compact_rewrites_slots_in_time_order_in_one_commit(cube):
    before = open_cube(cube).load()
    commits = len(cube_log(cube))
    snapshot = compact_cube(cube)
    assert len(cube_log(cube)) == commits + 1 and cube_log(cube)[0].id == snapshot
    assert cube_log(cube)[0].message.startswith("compact: 3 slots in time order")
    import icechunk

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(cube)))
    stored = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)  # storage order, unsorted
    assert list(stored.scene_id.values) == ["B", "A", "C"]
    assert open_cube(cube).load().identical(before)
    assert compact_cube(cube) is None  # in order already: nothing to commit


def test_migrate_a_plain_zarr_cube_of_the_previous_release(tmp_path):
    old = shutil.copytree(OLD_CUBES / "29UNU.zarr", tmp_path / "29UNU.zarr")
    result = migrate_cube(old)
    assert (result.location, result.slots, result.dropped_scenes) == (str(tmp_path / "29UNU.icechunk"), 2, [])
    cube = open_cube(result.location)
    plain = xr.open_zarr(old, consolidated=False).sortby("time")
    assert list(cube.scene_id.values) == ["S2B_A", "S2A_B"] == list(plain.scene_id.values)
    assert list(cube.platform.values) == ["SENTINEL_2B", "SENTINEL_2A"] and np.isnan(cube.aot550.values).all()
    for name in ("B02", "B8A", "SCL", "nodata", "saturated"):  # the same integers (scale factor now float32)
        np.testing.assert_allclose(cube[name].values, plain[name].values.astype(cube[name].dtype), rtol=0,
                                   atol=1e-7, err_msg=name)
    truth = np.round(np.random.default_rng(5).uniform(0.01, 0.6, (32, 64)).astype("float32") * 1e4) / 1e4
    truth[:3, :5] = np.nan
    np.testing.assert_allclose(cube.B02.values[0, 32:, :], truth, atol=0.5e-4 + 1e-7)
    assert cube.rio.crs.to_epsg() == 32629 and tuple(cube.rio.transform())[:6] == (30, 0, 499980, 0, -30, 5900040)
    with pytest.raises(ProcessingError, match="differs from the tile grid"):
        write(result.location, "A")  # a 256-px grid does not fit the 64-px cube
    small = CubeGrid(GeoBox((64, 64), GRID.geobox.affine, "EPSG:32629"), (32, 32))
    scene = xr.Dataset({"B02": (("y", "x"), np.full((32, 32), 0.25, np.float32), {"units": "1"})})
    write_scene(result.location, scene, small, SceneSlot("new", np.datetime64("2022-11-01")), origin=(32, 32))
    migrated = open_cube(result.location)
    assert list(migrated.scene_id.values) == ["S2B_A", "S2A_B", "new"]
    assert float(migrated.B02[2, 32:, 32:].mean()) == pytest.approx(0.25) and bool(migrated.B8A[2].isnull().all())


def test_a_cube_mixing_band_sets_is_refused_unless_rebuilt(tmp_path):
    old = shutil.copytree(OLD_CUBES / "29UMU.zarr", tmp_path / "29UMU.zarr")
    with pytest.raises(CubeWriteError, match=r"mixes band sets \(B02, B2, B5, B8A\).*gmsdask cube migrate --rebuild"):
        migrate_cube(old)
    result = migrate_cube(old, rebuild=True)
    assert (result.slots, result.dropped_scenes, result.dropped_variables) == (1, ["LC09_X"], ["B2", "B5", "QA_PIXEL"])
    cube = open_cube(result.location)
    assert list(cube.scene_id.values) == ["S2A_B"]
    assert {"B02", "B8A", "SCL"} <= set(cube.data_vars) and not {"B2", "B5", "QA_PIXEL"} & set(cube.data_vars)
    assert "LC09_X" in cube_log(result.location)[0].message


def test_cube_command_line(cube, tmp_path):
    app = typer.Typer()
    app.add_typer(cube_app, name="cube")
    runner = CliRunner()
    config = tmp_path / "config.json"
    config.write_text(f'{{"path_procdata_MGRS": "{tmp_path / "cubes"}"}}')
    shown = runner.invoke(app, ["cube", "log", "29UNU", "--config", str(config)], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "write scene C" in shown.output and "Repository initialized" in shown.output
    assert runner.invoke(app, ["cube", "tag", "29UNU", "v1", "--config", str(config)]).exit_code == 0
    exported = runner.invoke(app, ["cube", "export", str(cube), "--format", "cog", "--time", "2022-10-15",
                                   "--out", str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output
    assert len(list((tmp_path / "out").glob("29UNU.20221015T115411.C.*.tif"))) == 4
    compacted = runner.invoke(app, ["cube", "compact", "29UNU", "--sensor", "SENTINEL_2A", "--config", str(config)])
    assert compacted.exit_code == 0 and "compacted: commit" in compacted.output
    assert_slot_holds(open_cube(cube, version="v1"), "C")
    refused = runner.invoke(app, ["cube", "migrate", str(OLD_CUBES / "29UMU.zarr")], terminal_width=300)
    assert refused.exit_code == 2 and "--rebuild" in refused.output


def test_cube_locations_and_time_selections():
    from gmsdask.errors import ConfigError
    from gmsdask.io.cube_export import time_range
    from gmsdask.io.cube_storage import cube_location

    # a URL folded by pathlib (s3:/bucket) keeps its scheme; local roots become absolute
    assert cube_location(Path("s3://bucket/cubes"), "SENTINEL_2A", "29UNU") == \
        "s3://bucket/cubes/SENTINEL_2A/29UNU.icechunk"
    assert cube_location("rel", "S", "29UNU") == str(Path.cwd() / "rel" / "S" / "29UNU.icechunk")
    with pytest.raises(ConfigError, match="'ftp://host/x': unsupported URL scheme"):
        cube_location("ftp://host/x", "S", "29UNU")
    day = np.datetime64("2022-10-05T00:00:00.000")
    assert time_range("2022-10-05") == (day, day + np.timedelta64(1, "D"))
    assert time_range("2022-10-01/2022-10-05") == (day - np.timedelta64(4, "D"), day + np.timedelta64(1, "D"))
    assert time_range(None) is None
    with pytest.raises(ProcessingError, match="ISO dates"):
        time_range("not-a-date")


def test_cube_export_in_sen2chains_layout(cube, tmp_path):
    """``--layout sen2chain`` writes the cube's masks and indices as Sen2Chain's per-product GeoTIFFs."""
    from gmsdask.indices.cube import store_slot_variables

    rng = np.random.default_rng(5)
    ndvi = np.round(rng.uniform(-1, 1, (2, 256, 256)), 4).astype(np.float32)
    ndvi[:, :3, :5] = np.nan
    cm001 = rng.integers(0, 2, (2, 256, 256), dtype=np.uint8)
    store_slot_variables(cube, xr.Dataset({"NDVI": (("time", "y", "x"), ndvi),
                                           "CM001": (("time", "y", "x"), cm001)}), [0, 2], scene_ids=["A", "C"])
    app = typer.Typer()
    app.add_typer(cube_app, name="cube")
    runner = CliRunner()
    config = tmp_path / "config.json"
    config.write_text(f'{{"path_procdata_MGRS": "{tmp_path / "cubes"}"}}')
    out = tmp_path / "s2c"
    exported = runner.invoke(app, ["cube", "export", "29UNU", "--layout", "sen2chain", "--time", "2022-10-15",
                                   "--out", str(out), "--config", str(config)])
    assert exported.exit_code == 0, exported.output
    assert "2 files written" in exported.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tif")) == [
        "CLOUDMASKS/29UNU/C/C_CM001.tif", "INDICES/NDVI/29UNU/C/C_NDVI.tif"]  # A (Oct 5) is outside --time
    with rasterio.open(out / "INDICES/NDVI/29UNU/C/C_NDVI.tif") as src:
        expected = np.where(np.isnan(ndvi[1]), -32768, np.round(np.nan_to_num(ndvi[1]) * 1e4)).astype(np.int16)
        np.testing.assert_array_equal(src.read(1), expected)
        assert (src.nodata, src.scales[0]) == (-32768, pytest.approx(1e-4))
        assert src.crs.to_epsg() == 32629 and src.transform == GRID.geobox.affine
    with rasterio.open(out / "CLOUDMASKS/29UNU/C/C_CM001.tif") as src:
        np.testing.assert_array_equal(src.read(1), cm001[1])
    refused = runner.invoke(app, ["cube", "export", str(cube), "--layout", "sen2cor", "--out", str(out)])
    assert refused.exit_code == 2
    assert "unknown layout 'sen2cor'; allowed: hls, sen2chain" in " ".join(refused.output.split())  # rich wraps
