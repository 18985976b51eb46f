"""The harmonized cube of ``make demo`` (synthetic Landsat-9 and Sentinel-2B of one landscape and day, the
Landsat scene misregistered by (30, -15) m): one band set, one quantity, the two observations agreeing with
each other and with the synthetic surface-reflectance truth, registered to each other within 3 m."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.ndimage import uniform_filter
from rich.console import Console

from gmsdask import calculate_shift, open_cube
from gmsdask.demo import DEMO_TILE, run_demo
from gmsdask.spectral import nbar_dataset

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
    # the sample covers the tile's upper-left 9 x 9 km (300 x 300 px at 30 m): match at the centre of the
    # 96 x 96 px window with the most pixels clear in both slices (clouds and their buffers are no data)
    data = cube.isel(y=slice(0, 300), x=slice(0, 300))
    clear = _clear_in_both(data).values.astype(float)
    size = 96
    counts = uniform_filter(clear, size=size, mode="constant")[size // 2: -size // 2, size // 2: -size // 2]
    row, col = np.unravel_index(np.argmax(counts), counts.shape)
    row, col = row + size // 2, col + size // 2
    assert counts.max() > 0.8, "no window of the sample is clear enough to match"
    ref = data["B8A"].isel(time=sentinel2).rio.write_crs(cube.rio.crs)
    tgt = data["B8A"].isel(time=landsat).rio.write_crs(cube.rio.crs)
    residual = calculate_shift(ref, tgt, window_size=size, position=(float(data.x[col]), float(data.y[row])))
    assert residual.success, residual
    assert np.hypot(residual.x_shift_m, residual.y_shift_m) <= 3.0, residual


def _truth_on_cube_grid(workdir, cube: xr.Dataset, bands: tuple[str, ...]) -> xr.Dataset:
    """The Sentinel-2B product's surface-reflectance truth on the 30 m tile grid (area average of 3 x 3 10 m
    pixels: the product's 10 m grid nests into the tile at its upper-left corner)."""
    truth = xr.open_datatree(next((workdir / "archive").glob("S2B_*_truth.zarr")), engine="zarr",
                             consolidated=False)["surface_reflectance"]
    out = {}
    for band in bands:
        source = truth["r10m" if band in ("B02", "B03", "B04", "B08") else "r20m"][band].values
        if band not in ("B02", "B03", "B04", "B08"):
            source = source.repeat(2, 0).repeat(2, 1)  # 20 m -> 10 m, then 3 x 3 averages
        ny, nx = (source.shape[0] // 3) * 3, (source.shape[1] // 3) * 3
        coarse = source[:ny, :nx].reshape(ny // 3, 3, nx // 3, 3).mean(axis=(1, 3))
        expected = np.full((cube.sizes["y"], cube.sizes["x"]), np.nan, dtype=np.float32)
        expected[: coarse.shape[0], : coarse.shape[1]] = coarse
        out[band] = xr.DataArray(expected, dims=("y", "x"), coords={"y": cube.y, "x": cube.x})
    return xr.Dataset(out)


def test_both_observations_agree_with_each_other_and_the_truth_within_ceos(demo):
    """Per band, over pixels clear in both slices: the slices agree with each other, and each agrees with the
    truth adjusted to nadir view and HLS's normalized sun (the synthetic world is Lambertian, so its truth seen
    through L2B's NBAR is the truth times the c-factor of that slot's sun and view geometry)."""
    workdir, cube = demo
    clear = _clear_in_both(cube)
    assert int(clear.sum()) > 10_000
    bands = ("B02", "B03", "B04", "B8A", "B11", "B12")
    truth = _truth_on_cube_grid(workdir, cube, bands)
    latitude = float(cube.odc.geobox.extent.centroid.to_crs("EPSG:4326").coords[0][1])
    rows = []
    for band in bands:
        mask = clear.values & np.isfinite(truth[band].values)
        mean = float(truth[band].values[mask].mean())
        slices = cube[band].values
        between = float(np.sqrt(np.mean((slices[0][mask] - slices[1][mask]) ** 2)))
        against = {}
        for slot in range(cube.sizes["time"]):
            angles = cube[["sun_zenith", "sun_azimuth", "view_zenith", "view_azimuth"]].isel(time=slot)
            nadir = nbar_dataset(truth[[band]], angles.drop_vars(list(set(angles.coords) - {"x", "y"})),
                                 platform="SENTINEL_2A", latitude=latitude, bands=[band])[band].values
            platform = str(cube["platform"].values[slot])
            against[platform] = float(np.sqrt(np.mean((slices[slot][mask] - nadir[mask]) ** 2)))
        rows.append((band, mean, between, against, _ceos(mean)))
    report = "\n".join(f"{b}: mean {m:.3f}, between slices {x:.4f}, vs truth {t}, CEOS {c:.4f}"
                       for b, m, x, t, c in rows)
    print(report)
    # met: the Landsat-9 slot (its whole chain: L1B, 6S, Fmask, L2A, NBAR, LR to Sentinel-2A bands) in every band,
    # and the Sentinel-2B slot in its 10 m bands
    assert all(t["LANDSAT_9"] <= c for _, _, _, t, c in rows), report
    assert all(t["SENTINEL_2B"] <= c for b, _, _, t, c in rows if b in ("B02", "B03", "B04")), report
    # not yet met (issue 10, kept open): the Sentinel-2B 20 m bands resampled to 30 m are up to 1.2x the CEOS
    # specification against the truth, and so the two slices up to 1.25x apart; this bounds the gap
    assert all(x <= 1.25 * c and t["SENTINEL_2B"] <= 1.25 * c for _, _, x, t, c in rows), report
