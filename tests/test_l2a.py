"""L2A geometric homogenization: laziness, the target grid, exact area averaging, the applied shift."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from gmsdask.algorithms.warp import warp_block
from gmsdask.config import JobConfig
from gmsdask.errors import ConfigError
from gmsdask.geometry import warp_lazy
from gmsdask.levels.l2a import _output_chunks, _source_block, geometric_homogenization, target_geobox
from gmsdask.mgrs_grid import tile_geobox, tile_origin

from .scene_factory import GroupSpec, landsat_scene, make_scene, ramp_values, s2_scene

CFG = JobConfig(tiling_block_size_XY=(64, 64))


def _group(tree: xr.DataTree, name: str = "r30m") -> xr.Dataset:
    assert list(tree.children) == [name]
    return tree[name].to_dataset()


def _pieces_per_block(warped: da.Array) -> list[int]:
    """Source-block parts each output block's task reads."""
    layer = warped.__dask_graph__().layers[warped.name]
    return [len(task[1]) for key, task in layer.items() if key[0] == warped.name and isinstance(task, tuple)
            and len(task) > 2]


def _must_not_compute(band: str, shape: tuple[int, int], chunks: int) -> da.Array:
    def explode(block: np.ndarray) -> np.ndarray:
        raise AssertionError(f"{band} was computed")
    return da.zeros(shape, dtype=np.float32, chunks=chunks).map_blocks(explode, dtype=np.float32)


def test_l2a_is_lazy_and_its_graph_grows_with_blocks_not_pixels():
    scene = s2_scene(band_array=_must_not_compute)
    out = geometric_homogenization(scene, CFG)  # would raise if anything were computed
    assert all(isinstance(v.data, da.Array) for v in _group(out).data_vars.values())

    # a full 10 m tile band (10980^2, never allocated) onto the 30 m tile grid in 2048-pixel blocks
    tile = tile_geobox("29UNU", 10.0)
    source = da.zeros(tile.shape.yx, dtype=np.float32, chunks=2048)
    warped = warp_lazy(source, tile, tile_geobox("29UNU", 30.0), resampling="average", fill=np.nan,
                       chunks=(2048, 2048))
    n_source, n_target = source.npartitions, warped.npartitions
    assert (n_source, n_target) == (36, 4)
    # a task per output block and one per piece of a source block under it (at most 16 pieces)
    assert len(warped.__dask_graph__()) <= n_source + 17 * n_target
    # each output block reads only the source blocks under it (plus the kernel margin): not all 36
    assert max(_pieces_per_block(warped)) <= 16


def test_l2a_blocks_cover_one_block_of_the_finest_source():
    """A 30 m block of a Sentinel-2 tile reads about one 10 m source block per band, not the 61 km square of a
    2048 px 30 m block: otherwise a worker holds most of a tile's 10 m bands until its warps can run
    (issue 13's memory figure: 2.5 GiB per worker for a whole tile). Measured from the source's own chunks
    (1830 px, a tile's 10 m bands split evenly), the 30 m blocks' edges fall on the source blocks' edges."""
    tiles = {gsd: tile_geobox("29UNU", gsd) for gsd in (10.0, 20.0, 30.0, 60.0)}
    chunks = _output_chunks((2048, 2048), [tiles[10.0], tiles[20.0], tiles[60.0]], tiles[30.0])
    assert chunks == (682, 682)  # 2046 px of 10 m
    assert _output_chunks((2048, 2048), [tiles[30.0]], tiles[30.0]) == (2048, 2048)  # Landsat 30 m to 30 m
    assert _output_chunks((2048, 2048), [tiles[60.0]], tiles[30.0]) == (2048, 2048)  # going finer: the block
    assert _output_chunks((96, 64), [tiles[10.0]], tiles[30.0]) == (96, 64)  # never larger than the block
    source = da.zeros(tiles[10.0].shape.yx, dtype=np.float32, chunks=2048)
    warped = warp_lazy(source, tiles[10.0], tiles[30.0], resampling="average", fill=np.nan, chunks=chunks)
    assert max(_pieces_per_block(warped)) <= 4  # 2 x 2 source blocks at most (16 with 2048 px blocks at 30 m)

    # the chain's own blocks: the finest group's chunks set them, not the configuration's
    scene = s2_scene(chunks=48)
    groups = {name: scene[name].to_dataset() for name in ("r10m", "r20m", "r60m")}
    grids = {name: ds.odc.geobox for name, ds in groups.items()}
    assert _source_block(CFG, groups, grids, tiles[30.0]) == (48, 48)
    in_memory = {name: ds.compute() for name, ds in groups.items()}
    assert _source_block(CFG, in_memory, grids, tiles[30.0]) == (64, 64)
    tile_source = da.zeros(tiles[10.0].shape.yx, dtype=np.float32, chunks=1830)
    nested = _output_chunks((1830, 1830), [tiles[10.0], tiles[20.0]], tiles[30.0])
    assert nested == (610, 610)
    warped = warp_lazy(tile_source, tiles[10.0], tiles[30.0], resampling="average", fill=np.nan, chunks=nested)
    assert max(_pieces_per_block(warped)) == 1  # each 30 m block is one whole 10 m block


def test_an_average_onto_nested_blocks_reads_whole_source_blocks_without_padding():
    """A 30 m block whose edges fall on the edges of 10 or 20 m source pixels averages only the pixels under it:
    it reads its one source block as it is (no padding by the kernel's radius, no task that cuts a part), and
    its values are those of the unblocked average; blocks cut elsewhere are padded and agree too."""
    rng = np.random.default_rng(7)
    dst = tile_geobox("29UNU", 30.0)[:1220, :1220]
    for gsd, block in ((10.0, 1830), (20.0, 915)):
        src = tile_geobox("29UNU", gsd)[:int(36600 // gsd), :int(36600 // gsd)]
        values = rng.random(src.shape.yx, dtype=np.float32)
        values[100:200, 500:1300] = np.nan  # a cloud hole across a block edge
        truth = warp_block(values, src, dst, resampling="average", src_nodata=np.nan, dst_fill=np.nan)
        source = da.from_array(values, chunks=block)
        nested = warp_lazy(source, src, dst, resampling="average", fill=np.nan, chunks=(610, 610))
        graph = dict(nested.__dask_graph__())
        assert not [key for key in graph if str(key[0]).endswith("-window")]
        assert _pieces_per_block(nested) == [1, 1, 1, 1]
        np.testing.assert_array_equal(nested.compute(), truth)
        cut_elsewhere = warp_lazy(source, src, dst, resampling="average", fill=np.nan, chunks=(500, 500))
        assert [key for key in dict(cut_elsewhere.__dask_graph__()) if str(key[0]).endswith("-window")]
        np.testing.assert_array_equal(cut_elsewhere.compute(), truth)
        # moved by L1B's shift (a fraction of a pixel and more): the footprint rounded out, no padding, so a
        # block reads its own source block and the side of its neighbours the shift points to (2 x 2 at most)
        moved = GeoBox(src.shape, Affine.translation(-gsd * 1.37, gsd * 0.42) * src.affine, src.crs)
        truth = warp_block(values, moved, dst, resampling="average", src_nodata=np.nan, dst_fill=np.nan)
        shifted = warp_lazy(source, moved, dst, resampling="average", fill=np.nan, chunks=(610, 610))
        assert max(_pieces_per_block(shifted)) <= 4
        np.testing.assert_array_equal(shifted.compute(), truth)


def test_a_warp_task_holds_copies_of_the_parts_it_needs_not_whole_source_blocks():
    """Each source block is cut into the parts the output blocks need, as copies: a part waiting for its
    output block's other parts does not keep a whole (10 m, or L1C's two-layer) source block in memory."""
    base = np.arange(2 * 200 * 300, dtype=np.float32).reshape(2, 200, 300)
    source = da.from_array(base, chunks=(2, 64, 64))[0]  # views of a two-layer block, as L1C's outputs are
    src = tile_geobox("29UNU", 10.0)[:200, :300]
    dst = tile_geobox("29UNU", 30.0)[:66, :100]
    warped = warp_lazy(source, src, dst, resampling="average", fill=np.nan, chunks=(20, 20))
    graph = dict(warped.__dask_graph__())
    pieces = {key: dask.get(graph, key) for key in graph if str(key[0]).endswith("-window")}
    assert pieces and all(p.base is None for p in pieces.values())
    np.testing.assert_allclose(warped.compute(), base[0, :198, :300].reshape(66, 3, 100, 3).mean(axis=(1, 3)),
                               rtol=1e-6)


def test_sentinel2_groups_land_on_one_30m_grid_nested_in_the_tile():
    scene = s2_scene()
    out = geometric_homogenization(scene, CFG)
    ds = _group(out)
    _, ulx, uly = tile_origin("29UNU")
    affine = ds.rio.transform()
    assert ds.rio.crs.to_epsg() == 32629
    assert (affine.a, affine.e) == (30.0, -30.0)
    assert (affine.c - ulx) % 30 == 0 and (affine.f - uly) % 30 == 0
    assert (affine.c, affine.f) == (ulx + 30_000, uly - 30_000)  # the scene's own corner, no extra pixel
    assert ds.sizes == {"y": 80, "x": 120}
    assert ds.odc.geobox == target_geobox(scene, CFG)
    # bands sorted by central wavelength; masks and the QA layer follow
    assert list(ds.data_vars) == ["B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12",
                                  "nodata", "SCL", "cloud"]  # cloud: from SCL (mask_clouds_l2a)
    assert ds.B02.dtype == np.float32 and ds.nodata.dtype == bool and ds.SCL.dtype == np.uint8
    assert ds.SCL.attrs["nodata"] == 0
    assert out.attrs["l2a_target_epsg"] == 32629 and out.attrs["l2a_shift_m"] == [0.0, 0.0]
    assert out.attrs["l2a_resampling"][:3] == ["r10m:average", "r20m:average", "r60m:cubic"]
    assert out.attrs["mgrs_tile"] == "29UNU"


def test_area_averaging_10m_to_30m_gives_exact_block_means():
    scene = s2_scene()
    out = _group(geometric_homogenization(scene, CFG))
    for band, group in [("B02", "r10m"), ("B08", "r10m")]:
        fine = scene[group][band].values
        expected = fine.reshape(fine.shape[0] // 3, 3, fine.shape[1] // 3, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(out[band].values, expected, rtol=0, atol=1e-6)
    # 20 m -> 60 m is an exact 3 x 3 mean too
    out60 = _group(geometric_homogenization(scene, CFG.replace(target_gsd=60.0)), "r60m")
    fine = scene["r20m"]["B11"].values
    np.testing.assert_allclose(out60.B11.values,
                               fine.reshape(fine.shape[0] // 3, 3, fine.shape[1] // 3, 3).mean(axis=(1, 3)),
                               atol=1e-6)


def test_results_do_not_depend_on_block_boundaries():
    scene = s2_scene(values=ramp_values(per_metre=3e-5), chunks=50)
    small = _group(geometric_homogenization(scene, CFG.replace(tiling_block_size_XY=(16, 16))))
    large = _group(geometric_homogenization(scene, CFG.replace(tiling_block_size_XY=(512, 512))))
    xr.testing.assert_identical(small.compute(), large.compute())


def test_nodata_is_resampled_and_averaging_skips_missing_pixels():
    _, ulx, uly = tile_origin("29UNU")
    # no data in a box of the scene whose edges cut through 30 m pixels (10 m offset)
    box = (ulx + 30_000, uly - 30_000 - 610, ulx + 30_610, uly - 30_000)
    scene = s2_scene(nodata_box=box)
    ds = _group(geometric_homogenization(scene, CFG))
    nodata = ds.nodata.values
    assert nodata[:20, :20].all() and not nodata[21:, :].any() and not nodata[:, 21:].any()
    assert np.isnan(ds.B02.values[:20, :20]).all() and np.isfinite(ds.B02.values[20:, 20:]).all()
    # 1 of the 9 source pixels of the 30 m pixel (20, 20) is missing: it is the mean of the other 8
    fine = scene["r10m"]["B02"].values[60:63, 60:63]
    assert np.isnan(fine).sum() == 1
    assert np.isclose(ds.B02.values[20, 20], np.nanmean(fine), atol=1e-6)


def test_nodata_comes_from_the_surface_reflectance_bands_and_cirrus_is_not_computed_for_it():
    """L2B and the cube keep only the surface-reflectance bands: cirrus (B9) must not be read, converted and
    warped for the no-data mask alone (it is warped, lazily, for whoever asks for it)."""
    def band_array(band: str, shape: tuple[int, int], chunks: int) -> da.Array:
        if band == "B9":
            return _must_not_compute(band, shape, chunks)
        values = np.full(shape, 0.2, dtype=np.float32)
        values[:10, :10] = np.nan  # a gap in the reflectance bands
        return da.from_array(values, chunks=chunks)
    scene = landsat_scene(bands=("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9"), band_array=band_array,
                          attrs={"platform": "LANDSAT_9", "sensor": "OLI_TIRS"})
    ds = _group(geometric_homogenization(scene, CFG))
    assert "B9" in ds  # still there, for an L2A product
    assert ds.nodata.attrs["long_name"] == "no data in at least one surface-reflectance band"
    nodata = ds.nodata.values  # computes the mask and the reflectance bands, never B9
    assert nodata.any() and not nodata.all()
    with pytest.raises(AssertionError, match="B9 was computed"):
        ds.B9.values


def _bright_pixel_scene(row: int, col: int) -> xr.DataTree:
    def values(band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.full(x.shape, 0.1, dtype=np.float32)
        out[row, col] = 0.9
        return out
    return make_scene([GroupSpec("r30m", 30.0, ["B2", "B3"])], epsg=32629, ulx=531_000.0, uly=5_871_000.0,
                      width_m=1_800.0, height_m=1_200.0, values=values,
                      attrs={"platform": "LANDSAT_8", "mgrs_tile": ""})


def test_shift_moves_the_content_back_by_the_given_metres():
    scene = _bright_pixel_scene(20, 30)
    # the content appears 60 m east and 30 m south of where it belongs: correct it 2 px west, 1 px north
    out = geometric_homogenization(scene, CFG, shift_m=(60.0, -30.0))
    ds = _group(out)
    assert out.attrs["l2a_shift_m"] == [60.0, -30.0]
    b2 = ds.B2.values
    bright_y, bright_x = np.unravel_index(np.nanargmax(b2), b2.shape)
    x, y = float(ds.x[bright_x]), float(ds.y[bright_y])
    assert (x, y) == (531_000.0 + 30.5 * 30 - 60, 5_871_000.0 - 20.5 * 30 + 30)
    assert np.isclose(np.nanmax(b2), 0.9, atol=1e-6)  # an integer-pixel shift does not blur
    # the grid still sits on multiples of 30 m and covers the moved scene
    assert ds.rio.transform().c == 531_000.0 - 60 and ds.rio.transform().f == 5_871_000.0 + 30


def test_subpixel_shift_is_applied_in_the_same_resampling_step():
    per_metre = 2e-5
    scene = make_scene([GroupSpec("r30m", 30.0, ["B2"])], epsg=32629, ulx=531_000.0, uly=5_871_000.0,
                       width_m=1_800.0, height_m=1_200.0, values=ramp_values(per_metre=per_metre),
                       attrs={"platform": "LANDSAT_8"})
    plain = _group(geometric_homogenization(scene, CFG)).B2
    shifted = _group(geometric_homogenization(scene, CFG, shift_m=(12.0, 0.0))).B2
    common = shifted.sel(x=plain.x[5:-5], y=plain.y[5:-5])
    # displaced 12 m east: the corrected value at x is the observed value at x + 12 m (cubic keeps a ramp)
    np.testing.assert_allclose(common.values, plain.isel(x=slice(5, -5), y=slice(5, -5)).values + 12 * per_metre,
                               atol=2e-6)


def test_landsat_grid_moves_half_a_pixel_onto_the_tile_grid():
    scene = landsat_scene()  # pixel corners at odd multiples of 15 m
    out = geometric_homogenization(scene, CFG)
    ds = _group(out)
    affine = ds.rio.transform()
    assert affine.c % 30 == 0 and affine.f % 30 == 0
    assert out.attrs["l2a_resampling"][0] == "r30m:cubic"
    assert "QA_PIXEL" in ds and ds.QA_PIXEL.attrs["nodata"] == 1
    assert ds.sizes == {"y": 81, "x": 101}  # the moved grid covers the whole scene


def test_southern_hemisphere_grid_nests_relative_to_the_false_northing():
    scene = s2_scene("55JGF", offset_m=(12_000.0, 18_000.0))
    ds = _group(geometric_homogenization(scene, CFG))
    _, ulx, uly = tile_origin("55JGF")
    affine = ds.rio.transform()
    assert (affine.c - ulx) % 30 == 0 and (affine.f - uly) % 30 == 0
    # no tile attr: the anchor is the false northing, which is not a multiple of 30 m
    landsat = landsat_scene(epsg=32755, ulx=720_015.0, uly=6_580_005.0)
    affine = _group(geometric_homogenization(landsat, CFG)).rio.transform()
    assert (affine.f - 10_000_000) % 30 == 0 and (affine.f - uly) % 30 == 0


def test_target_epsg_reprojects_in_one_step():
    scene = s2_scene()
    out = geometric_homogenization(scene, CFG.replace(target_epsg=32630))
    ds = _group(out)
    assert ds.rio.crs.to_epsg() == 32630 and out.attrs["epsg"] == 32630
    assert ds.rio.transform().c % 30 == 0
    values = ds.B02.values
    assert np.isfinite(values).sum() > 0.8 * 120 * 80 and np.isnan(values).any()  # rotated: corners are empty
    assert (np.isnan(values) <= ds.nodata.values).all()
    with pytest.raises(ConfigError, match="target_epsg"):
        geometric_homogenization(scene, CFG.replace(target_epsg=4326))


def test_explicit_target_grid_and_unsorted_bands():
    scene = s2_scene()
    target = tile_geobox("29UNU", 60.0)[490:510, 490:520]
    out = geometric_homogenization(scene, CFG.replace(sort_bands_by_cwl=False), target=target)
    ds = _group(out, "r60m")
    assert ds.sizes == {"y": 20, "x": 30}
    assert list(ds.data_vars)[:4] == ["B02", "B03", "B04", "B08"]  # sensor order
    assert ds.nodata.values[:, :10].all() and not ds.nodata.values[:, 10:].all()


def test_l2a_runs_on_the_threaded_scheduler_without_a_cluster():
    scene = s2_scene()
    with dask.config.set(scheduler="threads"):
        ds = _group(geometric_homogenization(scene, CFG)).compute()
    assert np.isfinite(ds.B02.values).all()
