"""BRDF normalization (HLS c-factor): the kernels, and NBAR against a surface with a known, different BRDF."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from gmsdask.algorithms.brdf import (HLS_BRDF_COEFFICIENTS, brdf_coefficients, brdf_model, c_factor,
                                     ground_track_azimuth, li_sparse_r, normalized_solar_zenith, ross_thick,
                                     view_angles_from_track)
from gmsdask.errors import ProductError
from gmsdask.spectral import nbar_dataset
from gmsdask.spectral.angles import angles_on_grid

from .conftest import data_path

# The synthetic surface's true BRDF: per land-cover class, HLS's per-band weights scaled by (iso, geo, vol)
# factors, so the surfaces' shapes differ from the global model NBAR assumes (volume scattering stronger
# over canopies, shadowing stronger over rough soil and buildings).
CLASS_FACTORS = {"broadleaf": (0.95, 0.7, 1.3), "cropland": (1.0, 0.6, 1.5), "bare_soil": (1.1, 1.5, 0.6),
                 "urban": (1.0, 1.3, 0.8)}
SUN_ZENITH, SUN_AZIMUTH, LATITUDE = 38.0, 145.0, 48.0


def test_kernels_vanish_at_nadir_view_under_an_overhead_sun_and_are_reciprocal():
    assert ross_thick(0.0, 0.0, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert li_sparse_r(0.0, 0.0, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert li_sparse_r(30.0, 10.0, 40.0) == pytest.approx(li_sparse_r(10.0, 30.0, 40.0))
    assert ross_thick(30.0, 10.0, 40.0) == pytest.approx(ross_thick(10.0, 30.0, 40.0))
    # the hotspot (sensor on the sun's side at the sun's zenith) is the brightest geometry
    assert li_sparse_r(30.0, 30.0, 0.0) > li_sparse_r(30.0, 30.0, 90.0) > li_sparse_r(30.0, 30.0, 180.0)
    assert ross_thick(30.0, 30.0, 0.0) > ross_thick(30.0, 30.0, 180.0)
    # RossThick at sun 30 deg, nadir view: ((pi/2 - xi) cos xi + sin xi) / (cos 30 + 1) - pi/4 with xi = 30 deg
    xi = np.deg2rad(30.0)
    assert ross_thick(30.0, 0.0, 0.0) == pytest.approx(((np.pi / 2 - xi) * np.cos(xi) + np.sin(xi))
                                                       / (np.cos(xi) + 1) - np.pi / 4)


def test_normalized_sun_zenith_and_band_coefficients():
    assert normalized_solar_zenith(0.0) == pytest.approx(31.0076)
    assert normalized_solar_zenith(45.0) == pytest.approx(47.77, abs=0.01)
    assert brdf_coefficients("coastal", 443) == HLS_BRDF_COEFFICIENTS["blue"]
    assert brdf_coefficients("nir08", 865) == HLS_BRDF_COEFFICIENTS["nir"]
    halfway = brdf_coefficients("rededge075", 760.0)
    assert halfway == pytest.approx(tuple((np.array(HLS_BRDF_COEFFICIENTS["red"])
                                           + np.array(HLS_BRDF_COEFFICIENTS["nir"])) / 2))
    assert brdf_coefficients("cirrus", 1373) is None
    # at nadir view under the normalized sun, there is nothing to correct
    sza_n = normalized_solar_zenith(LATITUDE)
    assert c_factor(HLS_BRDF_COEFFICIENTS["red"], sza_n, 0.0, 0.0, sza_n) == pytest.approx(1.0)


def _swath(signed_view_zenith: np.ndarray, scan_azimuth: float) -> tuple[np.ndarray, np.ndarray]:
    """View zenith and azimuth across a swath: negative zeniths look from the other side of the track."""
    return np.abs(signed_view_zenith), np.where(signed_view_zenith >= 0, scan_azimuth, scan_azimuth + 180.0) % 360


@pytest.mark.parametrize("sensor,signed_view_zenith,scan_azimuth", [
    ("Landsat", np.linspace(-7.5, 7.5, 61), 100.0),
    ("Sentinel-2 east", np.linspace(0.0, 12.0, 49), 100.0),
    ("Sentinel-2 west", np.linspace(0.0, 12.0, 49), 280.0),
])
def test_nbar_removes_most_of_the_view_angle_dependence(sensor, signed_view_zenith, scan_azimuth):
    view_zenith, view_azimuth = _swath(signed_view_zenith, scan_azimuth)
    relative_azimuth = view_azimuth - SUN_AZIMUTH
    sza_n = normalized_solar_zenith(LATITUDE)
    for name, (m_iso, m_geo, m_vol) in CLASS_FACTORS.items():
        for band, (f_iso, f_geo, f_vol) in HLS_BRDF_COEFFICIENTS.items():
            truth = (f_iso * m_iso, f_geo * m_geo, f_vol * m_vol)
            observed = brdf_model(truth, li_sparse_r(SUN_ZENITH, view_zenith, relative_azimuth),
                                  ross_thick(SUN_ZENITH, view_zenith, relative_azimuth))
            nbar = observed * c_factor((f_iso, f_geo, f_vol), SUN_ZENITH, view_zenith, relative_azimuth, sza_n)
            removed = 1.0 - nbar.std() / observed.std()
            assert removed >= 0.70, f"{sensor} {name} {band}: NBAR removed only {removed:.0%} of the view effect"
            # and it lands near the true nadir reflectance at the normalized sun
            nadir = brdf_model(truth, li_sparse_r(sza_n, 0.0, 0.0), ross_thick(sza_n, 0.0, 0.0))
            assert abs(nbar.mean() - nadir) < 0.05 * nadir


def _angles(shape: tuple[int, int], coords: dict) -> xr.Dataset:
    view_zenith, view_azimuth = _swath(np.linspace(-7.0, 7.0, shape[1]), 100.0)
    full = {"sun_zenith": np.full(shape, SUN_ZENITH), "sun_azimuth": np.full(shape, SUN_AZIMUTH),
            "view_zenith": np.broadcast_to(view_zenith, shape), "view_azimuth": np.broadcast_to(view_azimuth, shape)}
    return xr.Dataset({k: (("y", "x"), da.from_array(np.array(v), chunks=(8, 16))) for k, v in full.items()},
                      coords=coords)


def test_nbar_dataset_is_lazy_and_applies_the_c_factor_per_pixel():
    shape = (20, 40)
    coords = {"y": 1e6 - 30.0 * np.arange(shape[0]), "x": 4e5 + 30.0 * np.arange(shape[1])}
    rng = np.random.default_rng(3)
    values = {band: rng.uniform(0.02, 0.4, shape).astype(np.float32) for band in ("B1", "B4", "B5", "B10")}
    ds = xr.Dataset({b: (("y", "x"), da.from_array(v, chunks=(8, 16)), {"common_name": "x"})
                     for b, v in values.items()}, coords=coords, attrs={"product_id": "LC08_TEST"})
    angles = _angles(shape, coords)
    out = nbar_dataset(ds, angles, platform="LANDSAT_8", latitude=LATITUDE)
    assert isinstance(out["B4"].data, da.Array) and out["B4"].dtype == np.float32
    assert out.attrs["brdf_normalized"] is True and out["B4"].attrs["brdf_normalized"] is True
    assert out.attrs["brdf_normalized_sun_zenith_deg"] == pytest.approx(normalized_solar_zenith(LATITUDE), abs=1e-3)
    np.testing.assert_array_equal(out["B10"].values, values["B10"])  # thermal: no BRDF model, untouched
    view_zenith, view_azimuth = (angles["view_zenith"].values, angles["view_azimuth"].values)
    expected = values["B4"] * c_factor(HLS_BRDF_COEFFICIENTS["red"], SUN_ZENITH, view_zenith,
                                       view_azimuth - SUN_AZIMUTH, normalized_solar_zenith(LATITUDE))
    np.testing.assert_allclose(out["B4"].values, expected, rtol=1e-5)
    per_pixel = nbar_dataset(ds, angles, platform="LANDSAT_8",
                             latitude=xr.full_like(angles["sun_zenith"], LATITUDE))
    np.testing.assert_allclose(per_pixel["B5"].values, out["B5"].values, rtol=1e-5)


def test_per_pixel_angles_keep_no_image_in_the_graph():
    """The pixel coordinates are broadcast lazily: a 3660 px grid's angle graph holds coordinate vectors, not two
    full float64 images (xr.broadcast embedded 214 MB; the scheduler warned of 51 MB graphs for a 1830 px tile)."""
    coarse = xr.Dataset({name: (("y", "x"), np.full((24, 24), value)) for name, value in
                         (("sun_zenith", 40.0), ("sun_azimuth", 150.0), ("view_zenith", 5.0), ("view_azimuth", 100.0))},
                        coords={"y": 1e6 - 5000.0 * np.arange(24), "x": 3e5 + 5000.0 * np.arange(24)})
    side = 3660
    like = xr.Dataset({"B4": (("y", "x"), da.zeros((side, side), chunks=(1024, 1024), dtype=np.float32))},
                      coords={"y": 1e6 - 15.0 - 30.0 * np.arange(side), "x": 3e5 + 15.0 + 30.0 * np.arange(side)})
    out = angles_on_grid(coarse, like)
    graph = dict(out["view_zenith"].data.__dask_graph__())
    embedded = sum(value.nbytes for value in graph.values() if isinstance(value, np.ndarray))
    assert embedded < 100_000, embedded
    block = out.isel(y=slice(1000, 1030), x=slice(2040, 2050)).compute()  # across a chunk boundary
    np.testing.assert_allclose(block["view_zenith"].values, 5.0, atol=1e-4)
    np.testing.assert_allclose(block["sun_azimuth"].values, 150.0, atol=1e-4)


def test_nbar_dataset_names_missing_angles_and_foreign_grids():
    shape = (4, 6)
    coords = {"y": np.arange(4.0)[::-1], "x": np.arange(6.0)}
    ds = xr.Dataset({"B4": (("y", "x"), np.full(shape, 0.1, np.float32))}, coords=coords,
                    attrs={"product_id": "LC08_TEST"})
    angles = _angles(shape, coords)
    with pytest.raises(ProductError, match="LC08_TEST.*view_azimuth"):
        nbar_dataset(ds, angles.drop_vars("view_azimuth"), platform="LANDSAT_8", latitude=10.0)
    shifted = angles.assign_coords(x=angles.x + 15.0)
    with pytest.raises(ProductError, match="not on the bands' grid"):
        nbar_dataset(ds, shifted, platform="LANDSAT_8", latitude=10.0)
    with pytest.raises(ProductError, match="no HLS BRDF coefficients"):
        nbar_dataset(ds.assign(B9=ds["B4"]), angles, platform="LANDSAT_8", latitude=10.0, bands=["B9"])


def test_angle_grids_are_interpolated_per_pixel_across_the_nadir_flip_and_gaps():
    """A coarse view grid whose azimuth flips by 180 degrees at nadir and whose edge nodes are NaN."""
    node_x = 5000.0 * np.arange(7)
    node_y = 1e6 - 5000.0 * np.arange(5)
    signed = (node_x - 15000.0) / 15000.0 * 9.0  # -9 .. +9 degrees across the swath (nadir at x = 15 km)
    view_zenith = np.broadcast_to(np.abs(signed), (5, 7)).copy()
    view_azimuth = np.broadcast_to(np.where(signed >= 0, 100.0, 280.0), (5, 7)).copy()
    view_zenith[:, -1] = view_azimuth[:, -1] = np.nan  # outside every detector
    coarse = xr.Dataset({"sun_zenith": (("y", "x"), np.full((5, 7), 40.0)),
                         "sun_azimuth": (("y", "x"), np.broadcast_to(np.linspace(355.0, 365.0, 7) % 360, (5, 7))),
                         "view_zenith": (("y", "x"), view_zenith), "view_azimuth": (("y", "x"), view_azimuth)},
                        coords={"y": node_y, "x": node_x})
    pixel_x = 15.0 + 30.0 * np.arange(1000)
    like = xr.Dataset({"B4": (("y", "x"), da.zeros((20, 1000), chunks=(10, 256), dtype=np.float32))},
                      coords={"y": 1e6 - 15.0 - 30.0 * np.arange(20), "x": pixel_x})
    out = angles_on_grid(coarse, like)
    assert isinstance(out["view_zenith"].data, da.Array) and out["view_zenith"].chunks == like["B4"].chunks
    values = out.compute()
    inside = pixel_x <= 25000.0
    expected = np.abs((pixel_x - 15000.0) / 15000.0 * 9.0)
    # tan-vector interpolation: near-linear in angle, and no mixed-up azimuth near nadir
    np.testing.assert_allclose(values["view_zenith"].values[0, inside], expected[inside], atol=0.05)
    right = pixel_x > 15100.0
    np.testing.assert_allclose(values["view_azimuth"].values[0, right & inside], 100.0, atol=0.01)
    np.testing.assert_allclose(values["view_azimuth"].values[0, pixel_x < 14900.0], 280.0, atol=0.01)
    assert np.all(np.isfinite(values["view_zenith"].values))  # the NaN edge nodes took their neighbours
    sun_azimuth = values["sun_azimuth"].values[0]
    assert np.all((sun_azimuth > 354.9) | (sun_azimuth < 5.1))  # across north, not through 180
    assert values.attrs["view_angles_source"] == "product angle grids"


def test_landsat_view_angles_are_approximated_from_the_track_through_the_scene_centre():
    assert ground_track_azimuth(0.0) == pytest.approx(192.0, abs=0.5)
    zenith, azimuth = view_angles_from_track(np.array([0.0, 92500.0, -92500.0]), np.zeros(3), 0.0, 0.0, 192.0)
    assert zenith[0] == pytest.approx(0.0, abs=1e-9)
    # spherical Earth: the look angle from 705 km plus the central angle of the cross-track distance
    distance = 92500 * np.cos(np.deg2rad(12))
    central = distance / 6371e3
    look = np.arctan(6371e3 * np.sin(central) / (705e3 + 6371e3 * (1 - np.cos(central))))
    assert zenith[1] == pytest.approx(zenith[2]) == pytest.approx(np.rad2deg(look + central))
    assert zenith[1] - np.rad2deg(np.arctan(distance / 705e3)) == pytest.approx(0.8, abs=0.05)  # vs flat Earth
    assert azimuth[1] == pytest.approx(282.0) and azimuth[2] == pytest.approx(102.0)  # towards the track


def test_real_landsat_scene_gets_landsat_like_view_angles(shared_data):
    import gmsdask

    scene = gmsdask.open_scene(data_path("landsat", "collection2", "LC08_L2SP_001070_20190114_20200830_02_T2"))
    grid = scene["r30m"].to_dataset()
    angles = angles_on_grid(scene["angles"].to_dataset(), grid, footprint_wkt=scene.attrs["footprint"],
                            epsg=scene.attrs["epsg"]).compute()
    valid = np.isfinite(grid["B4"].values)
    assert angles["view_zenith"].values[valid].min() < 0.5
    # OLI's +-7.5 degree look angle plus 0.8 degree of Earth curvature at the swath edge
    assert 8.0 < angles["view_zenith"].values[valid].max() < 9.0
    assert angles.attrs["view_angles_source"] == "ANG.txt coefficients (band B4, 5 km nodes)"
    out = nbar_dataset(grid, angles, platform="LANDSAT_8", latitude=-10.0)
    ratio = (out["B4"] / grid["B4"]).values[valid]
    assert 0.9 < np.nanmin(ratio) and np.nanmax(ratio) < 1.1  # a few per cent, as HLS's c-factors are


def test_angles_and_kernels_are_made_one_array_each():
    """The per-pixel angles (from nodes and from the nadir track) and the NBAR kernels come out of their block
    functions as one 2-D array each: no task makes a (y, x, n) array that each of them is gathered out of."""
    from dask.callbacks import Callback

    shape = (20, 40)
    coords = {"y": 1e6 - 30.0 * np.arange(shape[0]), "x": 4e5 + 30.0 * np.arange(shape[1])}
    ds = xr.Dataset({"B4": (("y", "x"), da.from_array(np.full(shape, 0.1, np.float32), chunks=(8, 16)))},
                    coords=coords, attrs={"product_id": "LC08_TEST"})
    coarse = xr.Dataset({name: (("y", "x"), np.full((4, 4), value)) for name, value in
                         (("sun_zenith", 40.0), ("sun_azimuth", 150.0), ("view_zenith", 5.0), ("view_azimuth", 100.0))},
                        coords={"y": 1e6 - 200.0 * np.arange(4), "x": 4e5 + 400.0 * np.arange(4)})
    footprint = "POLYGON((9.0 47.0, 10.0 47.0, 10.0 48.0, 9.0 48.0, 9.0 47.0))"
    track = angles_on_grid(coarse[["sun_zenith", "sun_azimuth"]], ds, footprint_wkt=footprint, epsg=32632)
    nbar = nbar_dataset(ds, angles_on_grid(coarse, ds), platform="LANDSAT_8", latitude=LATITUDE)

    class Shapes(Callback):
        def __init__(self):
            super().__init__()
            self.ndims = set()

        def _posttask(self, key, result, dsk, state, worker_id):
            for value in (result if isinstance(result, tuple) else (result,)):
                if isinstance(value, np.ndarray):
                    self.ndims.add(value.ndim)

    with Shapes() as shapes:
        dask.compute(track["view_zenith"].data, track["view_azimuth"].data, nbar["B4"].data, scheduler="sync")
    assert shapes.ndims <= {0, 1, 2}
