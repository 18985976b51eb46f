"""L2C: scenes into MGRS-tile Icechunk cubes, read back with plain xarray; slots, concurrency, alignment."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import icechunk
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr

from gmsdask.config import JobConfig
from gmsdask.errors import ProcessingError
from gmsdask.io.cube import CubeGrid, SceneSlot, open_cube, write_scene
from gmsdask.levels.l2a import geometric_homogenization
from gmsdask.levels.l2c import _nested_offset, crop_to_tile, cube_path, write_scene_to_tiles
from gmsdask.mgrs_grid import tile_geobox, tile_origin

from .conftest import data_path
from .scene_factory import random_values, ramp_values, s2_scene

QUANTUM = 1e-4  # int16 reflectance x 10 000


def _cfg(tmp_path: Path, **changes) -> JobConfig:
    options = {"path_procdata_MGRS": tmp_path / "cubes", "mgrs_pixel_buffer": 0, "tiling_block_size_XY": (512, 512)}
    return JobConfig(**(options | changes))


def _l2a(cfg: JobConfig, *, seed: int = 0, when: str = "2022-10-05T11:54:11.024Z", **kwargs) -> xr.DataTree:
    scene = s2_scene(values=random_values(seed), attrs={"acquisition_time": when}, **kwargs)
    return geometric_homogenization(scene, cfg)


def _plain(path: Path) -> xr.Dataset:
    """The cube as the docs show it, with Icechunk and xarray only."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False).sortby("time")


def _slot(cube: xr.Dataset, scene_id: str) -> xr.Dataset:
    index = int(np.flatnonzero(cube.scene_id.values == scene_id)[0])
    return cube.isel(time=index)


def _assert_holds(cube: xr.Dataset, scene_id: str, l2a: xr.DataTree) -> None:
    """The cube's slot of ``scene_id`` equals the L2A output where the scene is, and is empty elsewhere."""
    expected = l2a["r30m"].to_dataset()
    slot = _slot(cube, scene_id)
    inside = slot.sel(x=expected.x, y=expected.y)
    for band in ["B02", "B8A", "B12"]:
        np.testing.assert_allclose(inside[band].values, expected[band].values, rtol=0, atol=QUANTUM / 2 + 1e-7)
    np.testing.assert_array_equal(inside.nodata.values.astype(bool), expected.nodata.values)
    np.testing.assert_array_equal(inside.SCL.values, expected.SCL.values)
    outside = slot.B02.where(~slot.x.isin(expected.x) | ~slot.y.isin(expected.y))
    assert int(np.isfinite(outside).sum()) == 0


def test_cube_is_zarr_in_icechunk_with_crs_grid_and_scaled_int16(tmp_path):
    cfg = _cfg(tmp_path)
    l2a = _l2a(cfg)
    writes = write_scene_to_tiles(l2a, cfg, scene_id="S2A_A", tiles=["29UNU"])
    assert [(w.tile, w.time_index, w.created_cube, w.replaced_slot) for w in writes] == [("29UNU", 0, True, False)]
    path = cube_path(cfg, "29UNU")
    assert writes[0].path == path == tmp_path / "cubes" / "SENTINEL_2A" / "29UNU.icechunk"

    cube = _plain(path)  # plain xarray, no gmsdask
    assert cube.rio.crs.to_epsg() == 32629
    assert tuple(cube.rio.transform())[:6] == (30.0, 0.0, 499980.0, 0.0, -30.0, 5900040.0)
    assert dict(cube.sizes) == {"time": 1, "y": 3660, "x": 3660}
    assert cube.B02.dims == ("time", "y", "x") and cube.B02.encoding["dtype"] == np.int16
    assert cube.B02.encoding["scale_factor"] == np.float32(QUANTUM) and cube.B02.encoding["_FillValue"] == -9999
    assert cube.B02.encoding["chunks"] == (1, 512, 512)
    assert str(cube.scene_id.values[0]) == "S2A_A" and str(cube.platform.values[0]) == "SENTINEL_2A"
    assert cube.time.values[0] == np.datetime64("2022-10-05T11:54:11.024")
    assert np.isnan(cube.B02.values[0, 0, 0]) and cube.nodata.values[0, 0, 0] == 1  # fill -> NaN / no data
    _assert_holds(cube, "S2A_A", l2a)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    assert zarr.open_group(repo.readonly_session("main").store, mode="r").metadata.zarr_format == 3


def test_buffered_tile_grid_and_default_tiles(tmp_path):
    cfg = _cfg(tmp_path, mgrs_pixel_buffer=10)
    l2a = _l2a(cfg)
    writes = write_scene_to_tiles(l2a, cfg, scene_id="A")  # tiles from the footprint: only 29UNU
    assert [w.tile for w in writes] == ["29UNU"]
    cube = open_cube(writes[0].path)
    assert dict(cube.sizes) == {"time": 1, "y": 3680, "x": 3680}
    assert tuple(cube.rio.transform())[:6] == (30.0, 0.0, 499980.0 - 300, 0.0, -30.0, 5900040.0 + 300)
    assert cube.B02.dtype == np.float32 and cube.nodata.dtype == bool
    _assert_holds(cube, "A", l2a)


def test_scene_in_the_overlap_goes_to_both_tiles(tmp_path):
    cfg = _cfg(tmp_path)
    # 6 km east of the 29UNU origin: inside the 9.8 km overlap with 29UMU (whose tile ends at x = 509 760)
    l2a = _l2a(cfg, offset_m=(6_000.0, 60_000.0), size_m=(1_800.0, 1_200.0))
    writes = write_scene_to_tiles(l2a, cfg, scene_id="A")
    assert sorted(w.tile for w in writes) == ["29UMU", "29UNU"]
    for write in writes:
        _assert_holds(open_cube(write.path), "A", l2a)
    _, ulx, _ = tile_origin("29UMU")
    assert open_cube(cube_path(cfg, "29UMU")).x.values[0] == ulx + 15


def test_a_scene_writes_its_tiles_at_once_on_a_distributed_client(tmp_path, in_process_client, monkeypatch):
    """On a cluster the tiles of one scene are written concurrently (one tile's last chunk windows would leave
    workers idle), each tile still one commit; the first failure is raised after the other tiles committed."""
    import dask

    import gmsdask.levels.l2c as l2c

    cfg = _cfg(tmp_path)
    l2a = _l2a(cfg, offset_m=(6_000.0, 60_000.0), size_m=(1_800.0, 1_200.0))
    both_started = threading.Barrier(2, timeout=20)  # broken (an error) if one tile waited for the other
    real_write = l2c.write_scene

    def meeting_write(location, *args, **kwargs):
        both_started.wait()
        return real_write(location, *args, **kwargs)
    monkeypatch.setattr(l2c, "write_scene", meeting_write)
    with dask.config.set(scheduler=in_process_client):
        writes = write_scene_to_tiles(l2a, cfg, scene_id="A")
    assert sorted(w.tile for w in writes) == ["29UMU", "29UNU"]
    for write in writes:
        _assert_holds(open_cube(write.path), "A", l2a)

    def failing_write(location, *args, **kwargs):
        if "29UMU" in str(location):
            raise ProcessingError("B", "L2C", "disk gone")
        return real_write(location, *args, **kwargs)
    monkeypatch.setattr(l2c, "write_scene", failing_write)
    with dask.config.set(scheduler=in_process_client), pytest.raises(ProcessingError, match="disk gone"):
        write_scene_to_tiles(l2a, cfg, scene_id="B")
    assert set(open_cube(cube_path(cfg, "29UNU")).scene_id.values) == {"A", "B"}
    assert set(open_cube(cube_path(cfg, "29UMU")).scene_id.values) == {"A"}


def test_appending_adds_slots_and_rewriting_overwrites_its_own_slot(tmp_path):
    cfg = _cfg(tmp_path)
    first, second = _l2a(cfg, seed=1), _l2a(cfg, seed=2, when="2022-09-25T11:54:11Z")
    write_scene_to_tiles(first, cfg, scene_id="A", tiles=["29UNU"])
    [again] = write_scene_to_tiles(second, cfg, scene_id="B", tiles=["29UNU"])
    assert (again.time_index, again.created_cube, again.replaced_slot) == (1, False, False)
    # A reprocessed: a different result and a smaller footprint; nothing of the first version may survive
    reprocessed = _l2a(cfg, seed=3, offset_m=(60_000.0, 60_000.0), size_m=(600.0, 600.0))
    [redo] = write_scene_to_tiles(reprocessed, cfg, scene_id="A", tiles=["29UNU"])
    assert (redo.time_index, redo.replaced_slot) == (0, True)
    cube = open_cube(cube_path(cfg, "29UNU"))
    assert cube.sizes["time"] == 2
    assert list(cube.scene_id.values) == ["B", "A"]  # open_cube sorts by time
    _assert_holds(cube, "A", reprocessed)
    _assert_holds(cube, "B", second)


def test_all_nodata_scene_writes_nothing(tmp_path):
    cfg = _cfg(tmp_path)
    _, ulx, uly = tile_origin("29UNU")
    everything = (ulx, uly - 200_000, ulx + 200_000, uly)
    l2a = _l2a(cfg, nodata_box=everything)
    assert write_scene_to_tiles(l2a, cfg, scene_id="A") == []
    # the writes counted no pixel with data and committed nothing: nothing at the cube's location (the repository
    # was staged beside it and removed), and opening the cube says there is none
    location = Path(cube_path(cfg, "29UNU"))
    assert not location.exists()
    assert [p.name for p in location.parent.iterdir() if p.name.startswith(".") and "staging" in p.name] == []
    with pytest.raises(ProcessingError, match="29UNU"):
        open_cube(location)
    # a tile the scene does not reach at all is skipped too
    assert write_scene_to_tiles(_l2a(cfg), cfg, scene_id="A", tiles=["29UPU"]) == []


def test_dask_chunks_that_do_not_match_zarr_chunks_lose_no_data(tmp_path):
    # L2A blocks of 100 px (sources of 37 px), cube chunks of 128 px, a scene starting mid-chunk
    cfg = _cfg(tmp_path, tiling_block_size_XY=(100, 100))
    l2a = _l2a(cfg, offset_m=(33_000.0, 31_980.0), size_m=(5_400.0, 4_200.0), chunks=37)
    cube_cfg = cfg.replace(tiling_block_size_XY=(128, 128))
    write_scene_to_tiles(l2a, cube_cfg, scene_id="A", tiles=["29UNU"])
    assert _plain(cube_path(cube_cfg, "29UNU")).B02.encoding["chunks"] == (1, 128, 128)
    cube = open_cube(cube_path(cube_cfg, "29UNU"))
    _assert_holds(cube, "A", l2a)


def test_a_window_anywhere_in_the_grid_is_written_and_replaces_the_slot_it_rewrites(tmp_path):
    cfg = _cfg(tmp_path, tiling_block_size_XY=(64, 64))
    write_scene_to_tiles(_l2a(cfg), cfg, scene_id="A", tiles=["29UNU"])
    path = cube_path(cfg, "29UNU")
    data = xr.Dataset({"B02": (("y", "x"), da.zeros((64, 64), dtype=np.float32, chunks=16))})
    grid = CubeGrid(tile_geobox("29UNU"), (64, 64))
    with pytest.raises(ProcessingError, match="leaves the cube grid"):
        write_scene(path, data, grid, SceneSlot("A", np.datetime64("2022-10-05")), origin=(3660 - 10, 0))
    # a window across four chunks, on no chunk boundary, replaces scene A's slot
    write_scene(path, data, grid, SceneSlot("A", np.datetime64("2022-10-05")), origin=(70, 100))
    cube = open_cube(path)
    assert cube.sizes["time"] == 1 and float(cube.B02[0, 70:134, 100:164].max()) == 0.0
    assert int(cube.B02[0].notnull().sum()) == 64 * 64  # nothing of the first version of A survives
    assert not cube.nodata[0, 70:134, 100:164].any() and int(cube.nodata[0].sum()) == 3660 * 3660 - 64 * 64


def test_reprojection_path_when_grids_do_not_nest(tmp_path):
    cfg = _cfg(tmp_path)
    scene = s2_scene(values=ramp_values(per_metre=1e-5))
    nested = geometric_homogenization(scene, cfg)
    other_zone = geometric_homogenization(scene, cfg.replace(target_epsg=32630))
    assert crop_to_tile(other_zone["r30m"].to_dataset(), tile_geobox("29UNU"), cfg) is not None
    write_scene_to_tiles(nested, cfg, scene_id="nested", tiles=["29UNU"])
    write_scene_to_tiles(other_zone, cfg, scene_id="via_zone_30", tiles=["29UNU"])
    cube = open_cube(cube_path(cfg, "29UNU"))
    a, b = _slot(cube, "nested").B02, _slot(cube, "via_zone_30").B02
    both = np.isfinite(a) & np.isfinite(b)
    assert int(both.sum()) > 0.8 * 120 * 80
    # a smooth ramp survives the detour through zone 30 up to interpolation and quantization error
    assert float(np.abs(a - b).where(both).max()) < 3e-4


@pytest.mark.parametrize("compressor", ["zstd", "lz4", "none"])
def test_compressors(tmp_path, compressor):
    cfg = _cfg(tmp_path, output_compressor=compressor)
    l2a = _l2a(cfg)
    write_scene_to_tiles(l2a, cfg, scene_id="A", tiles=["29UNU"])
    cube = _plain(cube_path(cfg, "29UNU"))
    codecs = [(type(c).__name__, getattr(c, "cname", None)) for c in cube.B02.encoding["compressors"]]
    assert [(name, str(getattr(cname, "value", cname))) for name, cname in codecs] == \
        {"zstd": [("BloscCodec", "zstd")], "lz4": [("BloscCodec", "lz4")], "none": []}[compressor]
    _assert_holds(cube, "A", l2a)


def test_two_threads_write_into_one_new_cube(tmp_path):
    cfg = _cfg(tmp_path)
    scenes = {"A": _l2a(cfg, seed=1), "B": _l2a(cfg, seed=2, when="2022-10-06T00:00:00Z")}
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(scene_id: str) -> None:
        try:
            start.wait()
            write_scene_to_tiles(scenes[scene_id], cfg, scene_id=scene_id, tiles=["29UNU"])
        except BaseException as err:  # noqa: BLE001  (reported by the main thread)
            errors.append(err)

    threads = [threading.Thread(target=write, args=(scene_id,)) for scene_id in scenes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    cube = open_cube(cube_path(cfg, "29UNU"))
    assert sorted(cube.scene_id.values) == ["A", "B"]
    for scene_id, l2a in scenes.items():
        _assert_holds(cube, scene_id, l2a)


# two processes writing into one new cube at once: tests/test_cube_icechunk_faults.py (writer level)


def test_real_sentinel2_tile_nests_into_its_cube_without_resampling(tmp_path):
    """The real 29UNU L2A product's 60 m grid, taken to 30 m by L2A, lands exactly on the 29UNU cube."""
    safe = data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    r60m = next(safe.glob("GRANULE/*/IMG_DATA/R60m"))
    band = rioxarray.open_rasterio(next(r60m.glob("*_B8A_60m.jp2")), chunks={"x": 915, "y": 915}).squeeze("band")
    assert band.rio.crs.to_epsg() == 32629 and tuple(band.rio.transform())[2:6:3] == (499980.0, 5900040.0)
    # a reader's job in miniature: DN -> BOA reflectance (baseline 04.00 offset -1000), DN 0 = no data
    reflectance = ((band.astype(np.float32) - 1000.0) / 10_000.0).where(band != 0)
    group = xr.Dataset({"B8A": reflectance.drop_vars("band"), "nodata": band == 0,
                        "saturated": xr.zeros_like(band, dtype=bool)}).drop_vars("spatial_ref")
    group = group.rio.write_crs("EPSG:32629").rio.write_transform(band.rio.transform())
    group["B8A"].attrs.update(central_wavelength_nm=865.0, units="1")
    scene = xr.DataTree(xr.Dataset(attrs={"mgrs_tile": "29UNU", "platform": "SENTINEL_2A", "product_id": "real",
                                          "acquisition_time": "2022-10-05T11:54:11.024Z"}),
                        children={"r60m": xr.DataTree(group)})
    cfg = _cfg(tmp_path, tiling_block_size_XY=(1024, 1024))
    l2a = geometric_homogenization(scene, cfg)
    ds = l2a["r30m"].to_dataset()
    assert ds.odc.geobox == tile_geobox("29UNU", 30.0)  # the whole tile, exactly on the tile grid
    assert _nested_offset(ds.odc.geobox, tile_geobox("29UNU", 30.0)) == (0, 0)  # L2C slices, no resampling
    crop = crop_to_tile(ds, tile_geobox("29UNU", 30.0), cfg)
    assert (crop.rows, crop.cols) == (slice(0, 3660), slice(0, 3660))
    [write] = write_scene_to_tiles(l2a, cfg, scene_id="real", tiles=["29UNU"])
    cube = _plain(write.path)
    sample = cube.B8A[0, 1000:1200:7, 2000:2300:11].values
    np.testing.assert_allclose(sample, ds.B8A.values[1000:1200:7, 2000:2300:11], atol=QUANTUM / 2 + 1e-7)


def test_a_small_scene_is_written_as_its_own_pixels_without_padding(tmp_path):
    """A 1.5 x 1.2 km scene, mid-chunk in a cube of 2048 px chunks: L2C slices the scene's pixels (no window of
    fill around them: for small scenes that padding was most of L2C's work), and the writer writes that part of
    the one chunk it reaches, which reads as the scene there and as no data around it."""
    cfg = _cfg(tmp_path, tiling_block_size_XY=(2048, 2048))
    l2a = _l2a(cfg, offset_m=(33_000.0, 31_980.0), size_m=(1_500.0, 1_200.0), chunks=16)
    ds = l2a["r30m"].to_dataset()
    crop = crop_to_tile(ds, tile_geobox("29UNU"), cfg)
    assert (crop.rows.stop - crop.rows.start, crop.cols.stop - crop.cols.start) == ds.B02.shape
    assert crop.rows.start % 2048 and crop.cols.start % 2048  # not on a chunk boundary
    # the scene's own graph plus one slice per block (the padded window added ~4 fill blocks, concatenations and
    # a rechunk per variable)
    added = [len(crop.data[name].data.__dask_graph__()) - len(ds[name].data.__dask_graph__()) for name in ds.data_vars]
    assert max(added) <= ds.B02.data.npartitions, added
    write_scene_to_tiles(l2a, cfg, scene_id="small", tiles=["29UNU"])
    cube = open_cube(cube_path(cfg, "29UNU"))
    _assert_holds(cube, "small", l2a)
    slot = _slot(cube, "small")
    assert int((slot.nodata == 0).sum()) == int((~ds.nodata.values.astype(bool)).sum())


def test_a_level_product_read_back_is_read_in_the_cubes_windows_each_inside_its_window_task(tmp_path):
    """An L2A product on disk, read back as the chain reads it (the job's tiling blocks from the scene's corner),
    starts mid-chunk in the cube: L2C reads it again in the cube's windows, one read per window and variable
    inside the window's task (no merges, nothing read ahead), and the cube holds the product's values."""
    from gmsdask.io.block_graph import window_tasks
    from gmsdask.io.scene_store import read_scene, write_scene

    cfg = _cfg(tmp_path, tiling_block_size_XY=(128, 128))
    l2a = _l2a(cfg, offset_m=(33_000.0, 31_980.0), size_m=(5_400.0, 4_200.0), chunks=37)
    write_scene(l2a, tmp_path / "L2A.zarr")
    back = read_scene(tmp_path / "L2A.zarr", cfg.chunks)
    ds = back["r30m"].to_dataset()
    crop = crop_to_tile(ds, tile_geobox("29UNU"), cfg)
    chunks = crop.data["B02"].data.chunks
    assert chunks[0][0] != 128 and all(size == 128 for size in chunks[0][1:-1])  # the cube's windows, not 128s
    arrays = [var.data for var in crop.data.data_vars.values()]
    writes = [((i, j), len) for i in range(len(chunks[0])) for j in range(len(chunks[1]))]
    graph = dict(window_tasks(arrays, writes, "window")[0].__dask_graph__())
    assert len(graph) == len(writes)  # every read inside a window's task
    write_scene_to_tiles(back, cfg, scene_id="A", tiles=["29UNU"])
    _assert_holds(open_cube(cube_path(cfg, "29UNU")), "A", l2a)
