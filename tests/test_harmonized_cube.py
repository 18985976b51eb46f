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


def _on_cube_grid(values: np.ndarray, cube: xr.Dataset, fine_m: int) -> xr.DataArray:
    """A truth array of the Sentinel-2B product (``fine_m`` = 10 or 20 m) on the 30 m tile grid: the exact area
    average (20 m repeated to 10 m, then 3 x 3 means; the product's grids nest into the tile at its upper-left
    corner)."""
    if fine_m == 20:
        values = values.repeat(2, 0).repeat(2, 1)
    ny, nx = (values.shape[0] // 3) * 3, (values.shape[1] // 3) * 3
    coarse = values[:ny, :nx].astype(np.float32).reshape(ny // 3, 3, nx // 3, 3).mean(axis=(1, 3))
    expected = np.full((cube.sizes["y"], cube.sizes["x"]), np.nan, dtype=np.float32)
    expected[: coarse.shape[0], : coarse.shape[1]] = coarse
    return xr.DataArray(expected, dims=("y", "x"), coords={"y": cube.y, "x": cube.x})


def _sentinel2_truth(workdir) -> xr.DataTree:
    return xr.open_datatree(next((workdir / "archive").glob("S2B_*_truth.zarr")), engine="zarr", consolidated=False)


def _truth_on_cube_grid(workdir, cube: xr.Dataset, bands: tuple[str, ...]) -> xr.Dataset:
    """The Sentinel-2B product's nadir-normalized surface-reflectance truth (``nbar``: nadir view, HLS's normalized
    sun) on the 30 m tile grid."""
    truth = _sentinel2_truth(workdir)["nbar"]
    ten = ("B02", "B03", "B04", "B08")
    return xr.Dataset({band: _on_cube_grid(truth["r10m" if band in ten else "r20m"][band].values, cube,
                                           10 if band in ten else 20) for band in bands})


def _free_of_sentinel2_clouds_and_shadows(workdir, cube: xr.Dataset) -> xr.DataArray:
    """Pixels no cloud and no cloud shadow of the Sentinel-2B truth touches (opacity and shadow fraction 0)."""
    scene = _sentinel2_truth(workdir)["scene"]["r20m"]
    touched = _on_cube_grid(scene["cloud_opacity"].values + scene["shadow_fraction"].values, cube, 20)
    return touched == 0


def test_both_observations_agree_with_each_other_and_the_truth_within_ceos(demo):
    """Per band, over pixels clear in both slices: the slices agree with each other, and each agrees with the
    truth at nadir view and HLS's normalized sun (the demo's surfaces reflect with a known BRDF of their own, per
    material, not HLS's: the truth's ``nbar`` is the reflectance L2B's NBAR aims at; the residual includes what
    HLS's global c-factor misses of the materials' own BRDF).

    Over the pixels Fmask calls clear in both slices, both slots and their difference are within the bound too.
    (Before L1C version 4 the Sentinel-2B slot missed it in its bright bands, B08 0.0228 against the truth and
    the slices 0.0273 apart for CEOS 0.0215: Fmask left ~15 % of the truth's cloud-shadow pixels of that scene
    clear, ~35 % darker, because its potential-shadow padding at the clear-land median made the layer mostly
    false and the matched cloud heights wrong, and because 60 % of those pixels are shadows of clouds beyond the
    9 km scene, which no object matching finds; Fmask now also labels the potential shadows at the sun-side image
    edge. Now B08 is 0.0069 against the truth, the slices 0.0151 apart.)
    Over the pixels the truth also calls free of clouds and shadows, every band of both slots and their
    difference is within the bound."""
    workdir, cube = demo
    fmask_clear = _clear_in_both(cube)
    truly_clear = fmask_clear & _free_of_sentinel2_clouds_and_shadows(workdir, cube)
    assert int(truly_clear.sum()) > 0.95 * int(fmask_clear.sum()) > 10_000
    bands = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    truth = _truth_on_cube_grid(workdir, cube, bands)
    # both slots are NBAR (nadir view, HLS's normalized sun), as is the truth they are compared with
    nadir = {slot: truth for slot in range(cube.sizes["time"])}
    rows = {}
    for pixels, clear in (("fmask", fmask_clear), ("truth", truly_clear)):
        for band in bands:
            mask = clear.values & np.isfinite(truth[band].values)
            mean = float(truth[band].values[mask].mean())
            slices = cube[band].values
            between = float(np.sqrt(np.mean((slices[0][mask] - slices[1][mask]) ** 2)))
            against = {str(cube["platform"].values[slot]):
                       float(np.sqrt(np.mean((slices[slot][mask] - nadir[slot][band].values[mask]) ** 2)))
                       for slot in range(cube.sizes["time"])}
            rows[pixels, band] = (mean, between, against, _ceos(mean))
    report = "\n".join(f"{p} clear {b}: mean {m:.3f}, between slices {x:.4f}, vs truth "
                       f"{ {k: round(v, 4) for k, v in t.items()} }, CEOS {c:.4f}"
                       for (p, b), (m, x, t, c) in rows.items())
    print(report)
    for band in bands:
        _, between, against, ceos = rows["truth", band]
        assert between <= ceos and max(against.values()) <= ceos, report
        _, between, against, ceos = rows["fmask", band]
        assert between <= ceos and max(against.values()) <= ceos, report
