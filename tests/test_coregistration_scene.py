"""coregister_scene on scene trees (what L1B calls): band choice, QA cloud masks, cross-sensor pairs, statuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmsdask.coregistration import cloud_masked_band, coregister_scene, matching_band, shift_field
from gmsdask.errors import ProcessingError
from gmsdask.io import open_scene
from gmsdask.synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

from .coreg_data import texture
from .scene_factory import GroupSpec, landsat_scene, make_scene, s2_scene

PAIR_BANDS = {"r10m": ("B03",), "r20m": ("B8A",)}  # what matching needs: green and NIR


def s2(shift_m=(0.0, 0.0), size_m=(5120.0, 5120.0), groups=PAIR_BANDS, **kwargs):
    return s2_scene(size_m=size_m, groups=groups, chunks=256,
                    values=texture(shift_m, n_waves=24, min_wavelength_m=150.0), **kwargs)


def test_same_sensor_pair_recovers_the_displacement_in_l2a_convention():
    reference = s2(attrs={"product_id": "REF"})
    target = s2(shift_m=(23.0, -14.0), attrs={"product_id": "TGT"})  # content 23 m east, 14 m south
    result = coregister_scene(target, reference, window_size=(128, 128), grid_res=100)
    assert result.success and result.method == "tie_points"
    assert result.reference_band == "r10m/B03" and result.target_band == "r10m/B03"
    assert result.l1b_shift_m == pytest.approx((23.0, -14.0), abs=0.3)
    assert (result.x_shift_m, result.y_shift_m) == pytest.approx((-23.0, 14.0), abs=0.3)
    assert (result.x_shift_px, result.y_shift_px) == pytest.approx((-2.3, -1.4), abs=0.03)
    assert result.global_window.success
    facts = result.facts()
    assert json.loads(json.dumps(facts)) == facts  # catalogue-ready
    assert facts["coreg_status"] == "success" and facts["reference_id"] == "REF"
    assert facts["tie_points_valid"] == len(result.valid_points) >= 9


def _flat_green(shift_m):
    """Texture in every band but a featureless green band, so only the NIR bands can match."""
    textured = texture(shift_m, n_waves=24, min_wavelength_m=150.0)
    def value(band, x, y):
        out = textured(band, x, y)
        return np.full_like(out, 0.08) if band in ("B03", "B3") else out
    return value


def test_cross_sensor_pair_keeps_the_band_pair_that_matches_and_agrees_to_3_m():
    """A Landsat-8 target (30 m) displaced by (30, -15) m against a Sentinel-2 reference, on the 30 m common
    grid; the green bands are featureless here, so the NIR pair is kept."""
    reference = s2_scene(size_m=(9600.0, 9600.0), groups=PAIR_BANDS, chunks=256, values=_flat_green((0.0, 0.0)))
    target = landsat_scene(size_m=(9000.0, 9000.0), bands=("B3", "B5"), values=_flat_green((30.0, -15.0)),
                           chunks=128)
    result = coregister_scene(target, reference, window_size=(96, 96), grid_res=48)
    assert result.reference_band == "r20m/B8A" and result.target_band == "r30m/B5"
    assert result.success
    dx, dy = result.l1b_shift_m
    assert abs(dx - 30.0) <= 3.0 and abs(dy + 15.0) <= 3.0
    assert result.x_shift_px == pytest.approx(-1.0, abs=0.1)  # Landsat pixels
    green_only = coregister_scene(target, reference, window_size=(96, 96), grid_res=48, cross_sensor=False)
    assert green_only.target_band == "r30m/B3" and green_only.status == "failed:flat window"


@pytest.fixture(scope="module")
def synthetic_pair(tmp_path_factory):
    """Synthetic Sentinel-2 L1C and Landsat-9 L1TP products (real formats) of one landscape, the Landsat one
    showing the ground displaced by (30, -15) m."""
    out = tmp_path_factory.mktemp("coreg_products")
    tile, size = "33UUU", (480, 480)
    s2_product = write_sentinel2_l1c(out / "s2", tile=tile, size=size, seed=5)
    l9_product = write_landsat_l1(out / "l9", location=sentinel2_extent(tile, size), seed=5, shift_m=(30.0, -15.0))
    return open_scene(s2_product.path), open_scene(l9_product.path)


def test_synthetic_landsat_and_sentinel2_products(synthetic_pair):
    """The issue's cross-sensor case on products read through open_scene: within 3 m of the truth."""
    reference, target = synthetic_pair
    result = coregister_scene(target, reference, window_size=(64, 64), grid_res=32)
    assert result.success, result.status
    dx, dy = result.l1b_shift_m
    assert abs(dx - 30.0) <= 3.0 and abs(dy + 15.0) <= 3.0
    assert result.target_band in ("r30m/B3", "r30m/B5")


def test_matching_band_choice():
    scene = s2(size_m=(600.0, 600.0), groups={"r10m": ("B02", "B03", "B04"), "r20m": ("B8A", "B11")})
    assert matching_band(scene) == ("r10m", "B03")
    assert matching_band(scene, 660) == ("r10m", "B04")
    assert matching_band(scene, cross_sensor=True) == ("r20m", "B8A")
    empty = make_scene([GroupSpec("r10m", 10.0, ())], epsg=32629, ulx=500_000, uly=5_900_000, width_m=100,
                       height_m=100)
    with pytest.raises(ProcessingError, match="no reflective band"):
        matching_band(empty)


def test_product_cloud_flags_mask_the_matching_band():
    scene = s2()
    scl = scene["r20m"].to_dataset()["SCL"]
    west = np.broadcast_to(np.arange(scl.shape[1])[None, :] < 100, scl.shape)
    cloudy = scl.copy(data=np.where(west, 9, 4).astype("uint8"))  # the western 100 pixels: cloud
    scene["r20m"] = scene["r20m"].to_dataset().assign(SCL=cloudy)
    band = cloud_masked_band(scene, "r10m", "B03")
    values = band.values
    assert np.isnan(values[:, :200]).all()  # 100 SCL pixels at 20 m = 200 pixels at 10 m
    assert np.isfinite(values[:, 200:]).all()


def test_fully_clouded_target_and_no_overlap_are_statuses():
    reference = s2()
    target = s2(shift_m=(10.0, 0.0))
    ds = target["r20m"].to_dataset()
    target["r20m"] = ds.assign(SCL=ds["SCL"].copy(data=np.full(ds["SCL"].shape, 9, dtype="uint8")))
    result = coregister_scene(target, reference, window_size=(128, 128), grid_res=100)
    assert not result.success
    assert result.status == "failed:fully clouded (no valid target data in the overlap)"
    assert result.l1b_shift_m == (0.0, 0.0) and np.isnan(result.x_shift_m)
    assert result.facts()["coreg_status"] == result.status

    far = s2(offset_m=(80_000.0, 80_000.0))
    assert coregister_scene(far, reference).status == "failed:no overlap"


def test_too_large_shift_is_a_status():
    reference = s2()
    target = s2(shift_m=(80.0, 0.0))  # 8 px at 10 m
    result = coregister_scene(target, reference, window_size=(128, 128), grid_res=100, max_shift=5)
    assert result.status == "failed:shift exceeds max_shift"
    assert coregister_scene(target, reference, window_size=(128, 128), grid_res=100, max_shift=10).success


def test_local_shift_field_follows_a_distortion_in_l2a_convention():
    """Tie points whose content displacement grows eastwards: the field reproduces it between the points."""
    reference = s2()
    target = s2(shift_m=(12.0, -6.0))
    result = coregister_scene(target, reference, window_size=(128, 128), grid_res=100, local=True)
    assert result.local and result.facts()["coreg_local"] is True
    points = result.points.copy()
    # impose a known distortion on the measured table: + 1 m east per km east
    points["X_SHIFT_M"] = points["X_SHIFT_M"] - (points["X_MAP"] - points["X_MAP"].min()) / 1000.0
    gbox = target["r10m"].to_dataset().odc.geobox
    field = shift_field(points, gbox, spacing_px=64)
    assert field["dx_m"].dims == ("y", "x") and field.attrs["valid_points"] == len(result.valid_points)
    expected_dx = 12.0 + (field["x"].to_numpy() - points["X_MAP"].min()) / 1000.0
    inside = (field["x"] > points["X_MAP"].min()) & (field["x"] < points["X_MAP"].max())
    assert np.allclose(field["dx_m"].to_numpy()[:, inside], expected_dx[inside], atol=0.3)
    assert np.allclose(field["dy_m"], -6.0, atol=0.3)


def _poisoned(shape: tuple[int, int], chunks: int):
    """A Dask array that fails the test if any of its blocks is computed."""
    import dask.array as da

    def explode(block):
        raise AssertionError("a band that co-registration does not need was read")
    return da.zeros(shape, chunks=chunks, dtype="float32").map_blocks(explode, dtype="float32")


def test_only_the_matching_band_is_read():
    reference = s2(groups={"r10m": ("B03", "B04"), "r20m": ("B8A",)})
    target = s2(shift_m=(15.0, 5.0), groups={"r10m": ("B03", "B04"), "r20m": ("B8A",)})
    for scene in (reference, target):
        ds = scene["r10m"].to_dataset()
        scene["r10m"] = ds.assign(B04=ds["B04"].copy(data=_poisoned(ds["B04"].shape, 256)))
        ds = scene["r20m"].to_dataset()
        scene["r20m"] = ds.assign(B8A=ds["B8A"].copy(data=_poisoned(ds["B8A"].shape, 256)))
    result = coregister_scene(target, reference, window_size=(128, 128), grid_res=100)
    assert result.success and result.l1b_shift_m == pytest.approx((15.0, 5.0), abs=0.3)
