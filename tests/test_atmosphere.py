"""6S lookup tables, their interpolation against direct 6S runs, and the correction arithmetic.

The tables and direct runs come from the committed cache ``tests/data/atmosphere/cache`` (copied per session,
so a test that needed a new 6S run would show it as ``stats.runs > 0`` rather than slowly computing it);
``test_a_regenerated_table_sample_equals_the_committed_one`` reruns 6S for one node to check the fixture.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from gmsdask.algorithms.atmospheric import (cell_bilinear, dark_target_mask, forward_lambertian, invert_lambertian,
                                            smooth_fill)
from gmsdask.atmosphere.inputs import mean_elevation_m
from gmsdask.atmosphere.lut import AOT_NODES, GeometryGrid, build_tables, geometry_grid_for
from gmsdask.atmosphere.sixs import AtmosphereState, cached_run, run_sixs

from .atmosphere_fixtures import INTERPOLATION_GRID, INTERPOLATION_POINTS, atmosphere_cache  # noqa: F401

RHO = np.linspace(0.0, 0.6, 25)


def test_lut_interpolation_error_against_direct_6s_runs_is_below_0_001(atmosphere_cache):
    tables, stats = build_tables("SENTINEL_2B", ["B01", "B12"], AtmosphereState(0.0), INTERPOLATION_GRID,
                                 cache_dir=atmosphere_cache)
    assert stats.runs == 0 and stats.cached_nodes == 2 * 8
    worst = 0.0
    for band, table in tables.items():
        for aot, sun, view, azimuth in INTERPOLATION_POINTS:
            direct = cached_run("SENTINEL_2B", band, AtmosphereState(aot), sun_zenith_deg=sun, view_zenith_deg=view,
                                relative_azimuth_deg=azimuth, cache_dir=atmosphere_cache)
            c = table.coefficients(aot, sun, view, azimuth)
            toa = forward_lambertian(RHO, direct.path_reflectance, direct.transmittance, direct.spherical_albedo)
            rho = invert_lambertian(toa, c["path_reflectance"], c["transmittance"], c["spherical_albedo"])
            worst = max(worst, float(np.abs(rho - RHO).max()))
    # measured 0.00068 (B01, the band with the most path reflectance); docs/atmospheric-correction.md
    assert 1e-5 < worst < 0.001


def test_coefficients_along_aot_equal_the_pointwise_interpolation(atmosphere_cache):
    tables, _ = build_tables("SENTINEL_2B", ["B12"], AtmosphereState(0.0), INTERPOLATION_GRID,
                             cache_dir=atmosphere_cache)
    table = tables["B12"]
    rng = np.random.default_rng(3)
    sun, view, azimuth = rng.uniform(20, 60, 50), rng.uniform(0, 12, 50), rng.uniform(0, 180, 50)
    aot = np.array([-0.05, 0.0, 0.07, 0.3, 0.55, 1.0, 1.2])  # nodes, between them and beyond both ends
    along = table.coefficients_along_aot(aot, sun, view, azimuth)
    pointwise = table.coefficients(aot[None, :], sun[:, None], view[:, None], azimuth[:, None])
    for name, values in pointwise.items():
        assert along[name].shape == (50, aot.size)
        np.testing.assert_allclose(along[name], values, rtol=1e-12, atol=1e-15)


def test_a_regenerated_table_sample_equals_the_committed_one(atmosphere_cache):
    tables, _ = build_tables("SENTINEL_2B", ["B12"], AtmosphereState(0.0), INTERPOLATION_GRID,
                             cache_dir=atmosphere_cache)
    stored = tables["B12"].values[:, :, 1, 0, 1]  # sun 35, view 5, azimuth 60
    for a in (0, 3):
        run = run_sixs("SENTINEL_2B", "B12", AtmosphereState(AOT_NODES[a]), sun_zenith_deg=35.0, view_zenith_deg=5.0,
                       relative_azimuth_deg=60.0)
        np.testing.assert_allclose([run.path_reflectance, run.transmittance, run.spherical_albedo,
                                    run.direct_fraction], stored[:, a], rtol=1e-9, atol=0)


def test_the_lookup_table_follows_the_physics(atmosphere_cache):
    tables, _ = build_tables("SENTINEL_2B", ["B01", "B12"], AtmosphereState(0.0), INTERPOLATION_GRID,
                             cache_dir=atmosphere_cache)
    blue, swir = tables["B01"], tables["B12"]
    path = blue.values[0, :, 0, 0, 0]
    assert np.all(np.diff(path) > 0)  # aerosol brightens the path in the blue
    assert np.all(np.diff(blue.values[1, :, 0, 0, 0]) < 0)  # and dims the transmittance
    assert swir.values[0].max() < 0.01 < path.min()  # the 2.2 um band hardly sees aerosol
    # the path reflectance rises with the sun's zenith
    assert np.all(blue.values[0, 1:, 1, 0, 0] > blue.values[0, 1:, 0, 0, 0])


def test_geometry_grid_brackets_the_scene_angles_on_the_lattice():
    grid = geometry_grid_for(np.array([31.2, 32.6]), np.array([2.0, 11.0]), np.array([40.0, 140.0]))
    assert grid == GeometryGrid((30.0, 35.0), (0.0, 5.0, 10.0, 15.0), (30.0, 60.0, 90.0, 120.0, 150.0))
    nadir = geometry_grid_for(np.array([33.4]), np.array([0.0]), np.array([0.0]))
    assert nadir == GeometryGrid((30.0, 35.0), (0.0,), (0.0,))
    # within half a degree of a node, the node alone covers the angle
    assert geometry_grid_for(np.array([35.3]), np.array([9.7]), np.array([50.0])).view_zenith == (10.0,)


def test_lambertian_inverse_is_exact_and_keeps_nan():
    rho = np.array([0.0, 0.05, 0.3, 0.9, np.nan])
    toa = forward_lambertian(rho, 0.08, 0.7, 0.15)
    np.testing.assert_allclose(invert_lambertian(toa, 0.08, 0.7, 0.15), rho, atol=1e-14)
    assert toa[0] == pytest.approx(0.08) and np.isnan(invert_lambertian(toa, 0.08, 0.7, 0.15)[-1])


def test_dark_targets_are_dark_vegetation_only():
    #                    forest  soil   water  cloud  shadowed
    blue = np.array([0.07, 0.12, 0.08, 0.6, 0.03])
    red = np.array([0.05, 0.20, 0.05, 0.6, 0.01])
    nir = np.array([0.35, 0.26, 0.02, 0.6, 0.05])
    swir = np.array([0.08, 0.30, 0.002, 0.4, 0.005])
    assert dark_target_mask(blue, red, nir, swir).tolist() == [True, False, False, False, False]


def test_smooth_fill_keeps_a_constant_field_and_fills_gaps():
    values = np.full((5, 6), 0.3)
    valid = np.zeros((5, 6), dtype=bool)
    valid[1:3, 1:3] = True
    filled = smooth_fill(values, valid)
    np.testing.assert_allclose(filled, 0.3)
    ramp = np.where(valid, np.arange(6)[None, :] * 0.1, 0.0)
    assert smooth_fill(ramp, valid)[0, 5] == pytest.approx(np.median(ramp[valid]))


def test_cell_interpolation_does_not_depend_on_the_chunk():
    values = np.random.default_rng(1).uniform(0, 1, (4, 5))
    cells_y, cells_x = 1000.0 - 300.0 * (np.arange(4) + 0.5), 300.0 * (np.arange(5) + 0.5)
    y, x = 1000.0 - 10.0 * (np.arange(100) + 0.5), 10.0 * (np.arange(150) + 0.5)
    whole = cell_bilinear(values, cells_y, cells_x, y, x)
    part = cell_bilinear(values, cells_y, cells_x, y[37:81], x[20:133])
    assert np.array_equal(whole[37:81, 20:133], part)
    assert whole[0, 0] == pytest.approx(values[0, 0]) and whole.dtype == np.float32
    centre = cell_bilinear(values, cells_y, cells_x, np.array([cells_y[1]]), np.array([cells_x[2]]))
    assert centre[0, 0] == pytest.approx(values[1, 2], abs=1e-6)


def test_block_correction_does_not_depend_on_its_row_strips(monkeypatch):
    """``_correct_block`` works in row strips into reused buffers: every pixel must get the bits of a whole-block
    interpolation and inversion, whatever the strip height (here 7 rows, not dividing the block)."""
    from gmsdask.atmosphere import correct
    from gmsdask.atmosphere.aerosol import CellGrid

    rng = np.random.default_rng(3)
    cells = CellGrid.covering(0.0, 1200.0, 1500.0, 1200.0, 300.0)
    coefficients = np.stack([rng.uniform(lo, hi, cells.shape) for lo, hi in
                             ((0.05, 0.1), (0.6, 0.8), (0.1, 0.2), (0.06, 0.11), (0.55, 0.75), (0.1, 0.2))])
    x, y = 10.0 * (np.arange(150) + 0.5), 1200.0 - 10.0 * (np.arange(120) + 0.5)
    toa = rng.uniform(0.0, 0.5, (83, 61)).astype(np.float32)
    toa[rng.random(toa.shape) < 0.1] = np.nan
    info = {0: {"array-location": [(20, 103), (40, 101)]}}
    grids = [cell_bilinear(c, cells.y, cells.x, y[20:103], x[40:101]) for c in coefficients]
    rho = invert_lambertian(toa, *grids[:3])
    expected = np.stack([rho, np.abs(invert_lambertian(toa, *grids[3:]) - rho)])
    monkeypatch.setattr(correct, "_STRIP_PIXELS", 7 * 61)
    assert np.array_equal(correct._correct_block(toa, x, y, cells, coefficients, block_info=info), expected,
                          equal_nan=True)
    without = correct._correct_block(toa, x, y, cells, coefficients[:3], block_info=info)
    assert np.array_equal(without[0], rho, equal_nan=True) and np.isnan(without[1]).all()


def test_dem_mean_elevation_over_the_scene(tmp_path):
    dem = tmp_path / "dem.tif"
    heights = np.full((200, 200), 300.0, dtype=np.float32)
    heights[:, 100:] = 500.0
    with rasterio.open(dem, "w", driver="GTiff", width=200, height=200, count=1, dtype="float32", crs="EPSG:32633",
                       transform=from_origin(300000.0, 5900000.0, 100.0, 100.0), nodata=-9999.0) as out:
        out.write(heights, 1)
    left_half = (300000.0, 5880000.0, 310000.0, 5900000.0)
    assert mean_elevation_m(str(dem), left_half, "EPSG:32633") == pytest.approx(300.0)
    assert mean_elevation_m(str(dem), (300000.0, 5880000.0, 320000.0, 5900000.0), "EPSG:32633") == \
        pytest.approx(400.0, abs=2.0)
    assert mean_elevation_m("", left_half, "EPSG:32633") == 0.0
    with pytest.raises(ValueError, match="dem.tif"):
        mean_elevation_m(str(dem), (500000.0, 5000000.0, 510000.0, 5010000.0), "EPSG:32633")
