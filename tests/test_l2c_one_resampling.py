"""A scene reaching into the neighbouring UTM zone is resampled once, straight into that zone's tile grid (with its
L1B shift), not first onto its own zone's L2A grid and then again onto the tile's."""

from __future__ import annotations

import numpy as np
import pytest

from gmsdask.config import JobConfig
from gmsdask.io.cube import open_cube
from gmsdask.levels import l2a
from gmsdask.levels.l2c import _direct_source_of, crop_to_tile, direct_source, write_scene_to_tiles
from gmsdask.mgrs_grid import tile_epsg, tile_geobox, tiles_intersecting

from .coreg_data import texture
from .scene_factory import landsat_scene

QUANTUM = 1e-4  # int16 reflectance x 10 000 in the cube
SHIFT_M = (12.0, -7.0)  # what L1B measured: the content appears 12 m east and 7 m south of its place


def _scene():
    """A Landsat-like scene (30 m, UTM 29N) at 6.0 W, the zone border: it touches 29UPV and 30UTE."""
    scene = landsat_scene(ulx=696_015.0, uly=5_910_015.0, bands=("B2", "B3"),
                          values=texture(n_waves=30, min_wavelength_m=120.0), chunks=64,
                          attrs={"acquisition_time": "2022-10-05T11:54:11Z"})
    scene.attrs.update(coreg_status="success", coreg_shift_m=list(SHIFT_M), coreg_reliability=90.0)
    return scene


def _resamplings(crop, name="B3") -> int:
    """The most resampling steps (warp layers) on any path of the variable's graph, source to tile."""
    dependencies = crop.data[name].data.__dask_graph__().dependencies
    depth: dict[str, int] = {}

    def steps(layer: str) -> int:
        if layer not in depth:
            depth[layer] = int(str(layer).startswith("warp")) + max(map(steps, dependencies[layer]), default=0)
        return depth[layer]
    return max(map(steps, dependencies))


def test_a_tile_of_the_neighbouring_zone_is_made_in_one_resampling(tmp_path):
    cfg = JobConfig(path_procdata_MGRS=tmp_path / "cubes", mgrs_pixel_buffer=0, tiling_block_size_XY=(256, 256))
    scene = _scene()
    own_zone = l2a.homogenize(scene, cfg)  # what L2A writes: the scene's own zone, 29N
    assert own_zone.attrs["epsg"] == 32629
    tiles = tiles_intersecting(scene.attrs["footprint"])
    (foreign,) = [t for t in tiles if tile_epsg(t) == 32630]
    tile = tile_geobox(foreign, cfg.target_gsd)
    ds = own_zone["r30m"].to_dataset()
    direct = direct_source(scene, cfg)

    # count the resampling steps in each tile's graph: one warp from the scene, against two via the L2A grid
    via_l2a, straight = crop_to_tile(ds, tile, cfg), crop_to_tile(ds, tile, cfg, direct=direct)
    assert (via_l2a.resamplings, straight.resamplings) == (2, 1)
    assert (_resamplings(via_l2a), _resamplings(straight)) == (2, 1)
    assert (straight.rows, straight.cols) == (via_l2a.rows, via_l2a.cols)
    assert set(straight.data.data_vars) == set(ds.data_vars)  # bands, nodata, QA, shift_reliability

    [twice] = write_scene_to_tiles(own_zone, cfg, scene_id="twice", tiles=[foreign])
    [once] = write_scene_to_tiles(own_zone, cfg, scene_id="once", tiles=[foreign], direct=direct)
    assert (twice.resamplings, once.resamplings) == (2, 1)
    cube = open_cube(once.path)
    slot = {sid: cube.isel(time=int(np.flatnonzero(cube.scene_id.values == sid)[0])) for sid in ("once", "twice")}

    # the cube holds exactly one direct warp of the scene (with its L1B shift) onto the tile's grid
    window = tile[straight.rows, straight.cols]
    single = l2a.geometric_homogenization(scene, cfg, target=window, shift_m=SHIFT_M)["r30m"].to_dataset()
    got = slot["once"]["B3"].sel(x=single.x, y=single.y).values
    expected = single["B3"].values
    assert np.isfinite(expected).sum() > 3000
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=QUANTUM / 2 + 1e-7)
    # the detour through the 29N grid smooths the landscape a second time: measurably different
    detour = slot["twice"]["B3"].sel(x=single.x, y=single.y).values
    both = np.isfinite(detour) & np.isfinite(expected)
    assert float(np.abs(detour - expected)[both].max()) > 20 * QUANTUM
    assert np.array_equal(slot["once"]["shift_reliability"].sel(x=single.x, y=single.y).values[np.isfinite(got)],
                          np.full(int(np.isfinite(got).sum()), 90, dtype=np.uint8))


def test_tiles_of_the_scene_zone_stay_a_slice(tmp_path):
    cfg = JobConfig(path_procdata_MGRS=tmp_path / "cubes", mgrs_pixel_buffer=0, tiling_block_size_XY=(256, 256))
    scene = _scene()
    own_zone = l2a.homogenize(scene, cfg)

    def refuse(grid):
        raise AssertionError("a nested tile must not be made from the scene again")
    [write] = write_scene_to_tiles(own_zone, cfg, scene_id="A", tiles=["29UPV"], direct=refuse)
    assert write.resamplings == 1
    cube = open_cube(write.path)
    expected = own_zone["r30m"].to_dataset()["B3"]
    got = cube.isel(time=0)["B3"].sel(x=expected.x, y=expected.y)
    np.testing.assert_allclose(got.values, expected.values, rtol=0, atol=QUANTUM / 2 + 1e-7)
    assert pytest.approx(float(expected.x[0] - 15) % 30) == 0.0  # nested: pixel corners on the tile's 30 m grid


def test_the_level_builds_its_direct_source_from_the_scene_before_l2a(tmp_path):
    """L2C's run takes the scene before L2A from the context's ``scene_before`` (the controller's lazy build)
    and applies the levels between L2A and L2C that the job runs; without it, tiles go via the L2A grid."""
    cfg = JobConfig(path_procdata_MGRS=tmp_path / "cubes", tiling_block_size_XY=(256, 256),
                    exec_L2BP=(False, False, False))
    scene = _scene()
    asked = []

    class Context:  # the fields of LevelContext that L2C reads, plus the controller's hook
        config = cfg

        @staticmethod
        def scene_before(level: str):
            asked.append(level)
            return scene
    make = _direct_source_of(Context())
    assert asked == []  # asked for only when a tile needs it
    grid = tile_geobox("30UTE", cfg.target_gsd)[2816:3072, 3072:3328]
    made = make(grid)
    make(grid)
    assert asked == ["L2A"]
    expected = l2a.homogenize(scene, cfg, target=grid)["r30m"].to_dataset()
    assert made.odc.geobox == grid
    np.testing.assert_array_equal(made["B3"].values, expected["B3"].values)
    assert _direct_source_of(object()) is None
