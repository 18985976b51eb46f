"""The harmonized cube of ``make demo`` (synthetic Landsat-9 and Sentinel-2B of one landscape and day, the
Landsat scene misregistered by (30, -15) m): one band set, one quantity, the two observations agreeing with
each other and with the synthetic surface-reflectance truth, registered to each other within 3 m."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from rich.console import Console

from gmsdask import calculate_shift, open_cube
from gmsdask.demo import DEMO_TILE, run_demo
from gmsdask.mgrs_grid import tile_geobox

VIRTUAL_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    run_demo(workdir, cpus=2, console=Console(quiet=True))
    cube = open_cube(workdir / "mgrs_tiles" / "SENTINEL_2A" / f"{DEMO_TILE}.icechunk").load()
    return workdir, cube


def _ceos(mean_reflectance: float) -> float:
    """The CEOS surface-reflectance specification at a reflectance: 0.005 + 0.05 rho."""
    return 0.005 + 0.05 * mean_reflectance


def _clear_in_both(cube: xr.Dataset) -> xr.DataArray:
    return ~cube["nodata"].any("time") & (cube["fmask"] == 1).all("time")


def test_one_band_set_one_quantity_every_observation_once(demo):
    workdir, cube = demo
    assert set(VIRTUAL_BANDS) <= set(cube.data_vars)
    assert not {"B1", "B5", "B10", "B9", "B09"} & set(cube.data_vars)  # no Landsat names, no TOA-only bands
    assert sorted(cube["platform"].values.tolist()) == ["LANDSAT_9", "SENTINEL_2B"]
    assert set(cube["quantity"].values.tolist()) == {"surface_reflectance"}
    assert cube["brdf_normalized"].values.tolist() == [1, 1]
    assert not (workdir / "mgrs_tiles" / "SENTINEL_2A_TOA").exists()
    for band in VIRTUAL_BANDS:
        assert cube[band].dtype == np.float32 and cube[band].attrs.get("common_name")
    accuracy = [name for name in cube.data_vars if name.startswith(("spechomo_error_", "ac_uncertainty_"))]
    assert accuracy and {"shift_reliability", "fmask", "cloud_confidence", "sun_zenith", "view_zenith"} <= \
        set(cube.data_vars)


def test_l1b_registers_landsat_to_sentinel2_within_3_m(demo):
    _, cube = demo
    landsat = int(np.flatnonzero(cube["platform"].values == "LANDSAT_9")[0])
    assert cube["coreg_status"].values[landsat] == "success"
    assert abs(float(cube["shift_x_m"][landsat]) - 30.0) < 3 and abs(float(cube["shift_y_m"][landsat]) + 15.0) < 3
    sentinel2 = 1 - landsat
    clear = _clear_in_both(cube)
    ref = cube["B8A"].isel(time=sentinel2).where(clear).rio.write_crs(cube.rio.crs)
    tgt = cube["B8A"].isel(time=landsat).where(clear).rio.write_crs(cube.rio.crs)
    residual = calculate_shift(ref, tgt, window_size=128)
    assert residual.success, residual
    assert np.hypot(residual.x_shift_m, residual.y_shift_m) <= 3.0, residual


def test_both_observations_agree_with_each_other_and_the_truth_within_ceos(demo):
    workdir, cube = demo
    clear = _clear_in_both(cube)
    assert int(clear.sum()) > 10_000
    sentinel2 = int(np.flatnonzero(cube["platform"].values == "SENTINEL_2B")[0])
    truth = xr.open_datatree(next((workdir / "archive").glob("S2B_*_truth.zarr")), engine="zarr",
                             consolidated=False)["surface_reflectance"]
    # the truth of the Sentinel-2B product on the 30 m tile grid (area average of 3 x 3 10 m pixels; the
    # product's 10 m grid nests into the tile)
    gbox = tile_geobox(DEMO_TILE, 30.0)
    rows = []
    for band in ("B02", "B03", "B04", "B8A", "B11", "B12"):
        group = "r10m" if band in ("B02", "B03", "B04", "B08") else "r20m"
        factor = 3 if group == "r10m" else None
        source = truth[group][band]
        if factor is None:  # 20 m -> 30 m: through 10 m, by repetition then averaging
            source = source.values.repeat(2, 0).repeat(2, 1)
        else:
            source = source.values
        ny, nx = (source.shape[0] // 3) * 3, (source.shape[1] // 3) * 3
        coarse = source[:ny, :nx].reshape(ny // 3, 3, nx // 3, 3).mean(axis=(1, 3))
        expected = np.full(gbox.shape.yx, np.nan, dtype=np.float32)
        expected[: coarse.shape[0], : coarse.shape[1]] = coarse
        slices = cube[band].values
        mask = clear.values & np.isfinite(expected)
        mean = float(np.nanmean(expected[mask]))
        between = float(np.sqrt(np.nanmean((slices[0][mask] - slices[1][mask]) ** 2)))
        against = float(np.sqrt(np.nanmean((slices[sentinel2][mask] - expected[mask]) ** 2)))
        rows.append((band, mean, between, against, _ceos(mean)))
    failures = [row for row in rows if row[2] > row[4] or row[3] > row[4]]
    assert not failures, "\n".join(f"{b}: mean {m:.3f} between {x:.4f} vs truth {t:.4f} > CEOS {c:.4f}"
                                   for b, m, x, t, c in rows)
