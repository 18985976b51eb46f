"""calculate_shift and tie_points on georeferenced DataArrays: the real T33UUU pair, sign conventions (AROSICS
and L2A's), grids that differ, Dask blocks, and named failures."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_reproject
from pyproj import Transformer

from gmsdask.algorithms.phase_correlation import MatchSettings
from gmsdask.coregistration import TIE_POINT_COLUMNS, CoregInputError, calculate_shift, tie_points
from gmsdask.coregistration.points import _point_graph
from gmsdask.coregistration.shift import prepare_pair
from gmsdask.levels.l2a import shift_geobox

from .coreg_data import (CROP_WINDOW, REF_NAME, TGT_NAME, fourier_shifted, georeferenced, pair_path,
                         read_reflectance, texture)

# Measured on the real pair (docs/coregistration.md): global window at the overlap centre, and the median of the
# valid tie points of a 400 px grid; AROSICS's description of the pair: about 0.7 px in x and 1.8 px in y.
REAL_GLOBAL_PX = (-0.585, 1.865)
REAL_MEDIAN_PX = (-0.64, 1.83)


@pytest.fixture(scope="session")
def real_pair() -> tuple[xr.DataArray, xr.DataArray]:
    ref = georeferenced(*read_reflectance(pair_path(REF_NAME)))
    tgt = georeferenced(*read_reflectance(pair_path(TGT_NAME)))
    return ref, tgt


@pytest.fixture(scope="session")
def crop_image() -> xr.DataArray:
    return georeferenced(*read_reflectance(pair_path(REF_NAME), CROP_WINDOW))


def test_real_pair_global_shift(real_pair):
    ref, tgt = real_pair
    result = calculate_shift(ref, tgt)
    assert result.success and result.status == "success"
    assert result.x_shift_px == pytest.approx(REAL_GLOBAL_PX[0], abs=0.02)
    assert result.y_shift_px == pytest.approx(REAL_GLOBAL_PX[1], abs=0.02)
    # 10 m pixels, AROSICS map convention: x_m = x_px * gsd, y_m = -y_px * gsd
    assert result.x_shift_m == pytest.approx(10 * result.x_shift_px)
    assert result.y_shift_m == pytest.approx(-10 * result.y_shift_px)
    assert result.reliability > 80 and result.ssim_after > result.ssim_before
    assert result.window_size == (256, 256)


def test_real_pair_tie_points(real_pair):
    ref, tgt = real_pair
    table = tie_points(ref, tgt, grid_res=400, window_size=256)
    assert list(table.columns) == TIE_POINT_COLUMNS
    assert len(table) >= 20
    # points are on the target grid at multiples of grid_res, inside the target image
    assert (table["X_IM"] % 400 == 0).all() and (table["Y_IM"] % 400 == 0).all()
    assert table["X_MAP"].to_numpy() == pytest.approx(335440 + 10 * table["X_IM"].to_numpy() + 5)
    valid = table[~table["OUTLIER"]]
    assert len(valid) >= 0.7 * len(table)
    assert valid["X_SHIFT_PX"].median() == pytest.approx(REAL_MEDIAN_PX[0], abs=0.05)
    assert valid["Y_SHIFT_PX"].median() == pytest.approx(REAL_MEDIAN_PX[1], abs=0.05)
    assert valid["X_SHIFT_PX"].std() < 0.15 and valid["Y_SHIFT_PX"].std() < 0.15
    assert (valid["RELIABILITY"] >= 60).all() and valid["SSIM_IMPROVED"].all()
    assert np.allclose(valid["ABS_SHIFT"], np.hypot(valid["X_SHIFT_M"], valid["Y_SHIFT_M"]))
    # the cloudy target area gives named outliers, not missing rows or exceptions
    outliers = table[table["OUTLIER"]]
    assert (outliers["REASON"] != "").all() and (valid["REASON"] == "").all()


@pytest.mark.parametrize("content_shift_px", [(0.37, -1.62), (-2.5, 3.25)])
def test_correction_relates_to_l2a_shift_and_aligns_the_target(crop_image, content_shift_px):
    """A real crop shifted by a known amount: AROSICS's correction is the negative content displacement, L2A's
    ``l1b_shift_m`` is the displacement (x east, y north), and applying it through L2A's ``shift_geobox``
    aligns the target with the reference."""
    dy, dx = content_shift_px
    gsd = 10.0
    target = crop_image.copy(data=fourier_shifted(crop_image.values, (dy, dx)))
    result = calculate_shift(crop_image, target, window_size=256)
    assert result.success
    assert result.x_shift_px == pytest.approx(-dx, abs=0.03) and result.y_shift_px == pytest.approx(-dy, abs=0.03)
    # content moved dx columns right (east) and dy rows down (south)
    assert result.l2a_shift_m == pytest.approx((dx * gsd, -dy * gsd), abs=0.3)
    assert result.l2a_shift_m == (-result.x_shift_m, -result.y_shift_m)

    corrected = shift_geobox(target.odc.geobox, result.l2a_shift_m)
    # AROSICS: the corrected origin is the old one plus (x_shift_m, y_shift_m)
    assert corrected.affine.c == pytest.approx(target.odc.geobox.affine.c + result.x_shift_m)
    assert corrected.affine.f == pytest.approx(target.odc.geobox.affine.f + result.y_shift_m)
    moved = georeferenced(target.values, corrected.affine, "EPSG:32633")
    aligned = xr_reproject(moved, crop_image.odc.geobox, resampling="cubic", dst_nodata=np.nan)
    inner = (slice(40, -40), slice(40, -40))
    before = np.sqrt(np.nanmean((target.values[inner] - crop_image.values[inner]) ** 2))
    after = np.sqrt(np.nanmean((aligned.values[inner] - crop_image.values[inner]) ** 2))
    assert after < 0.15 * before


def test_target_on_a_coarser_grid_in_metres(crop_image):
    """Reference 10 m, target 20 m with content displaced by (+26 m east, -14 m north): matched on the target's
    20 m grid; pixel shifts in target pixels, metres as in AROSICS."""
    x0, y0 = 500_000.0, 5_800_000.0
    def sample(gsd: float, shape: tuple[int, int], shift_m=(0.0, 0.0)) -> xr.DataArray:
        value = texture(shift_m)
        x = x0 + (np.arange(shape[1]) + 0.5) * gsd
        y = y0 - (np.arange(shape[0]) + 0.5) * gsd
        xx, yy = np.meshgrid(x, y)
        return georeferenced(value("B", xx, yy), Affine(gsd, 0, x0, 0, -gsd, y0), "EPSG:32633")
    ref = sample(10.0, (800, 800))
    tgt = sample(20.0, (400, 400), shift_m=(26.0, -14.0))
    result = calculate_shift(ref, tgt, window_size=128)
    assert result.success
    assert result.x_shift_m == pytest.approx(-26.0, abs=0.6) and result.y_shift_m == pytest.approx(14.0, abs=0.6)
    assert result.x_shift_px == pytest.approx(-26.0 / 20, abs=0.03)
    assert result.y_shift_px == pytest.approx(-14.0 / 20, abs=0.03)


def test_target_in_another_utm_zone():
    """Reference in UTM 33 (10 m), target in UTM 34 (20 m), content displaced by (+26 m east, -14 m north) of
    zone 33: matched on a zone-33 grid; the correction is stated in the target's own CRS (zone 34), i.e. the
    vector rotated by the grid convergence between the zones (~5 degrees here)."""
    x0, y0 = 700_000.0, 5_800_000.0
    value = texture(min_wavelength_m=150.0)
    gx = x0 + (np.arange(600) + 0.5) * 10
    gy = y0 - (np.arange(600) + 0.5) * 10
    ref = georeferenced(value("B", *np.meshgrid(gx, gy)), Affine(10, 0, x0, 0, -10, y0), "EPSG:32633")
    to34 = Transformer.from_crs(32633, 32634, always_xy=True)
    to33 = Transformer.from_crs(32634, 32633, always_xy=True)
    cx, cy = to34.transform(x0 + 3000, y0 - 3000)
    tx0, ty0 = round(cx - 2000, -1), round(cy + 2000, -1)
    txx, tyy = np.meshgrid(tx0 + (np.arange(200) + 0.5) * 20, ty0 - (np.arange(200) + 0.5) * 20)
    displaced = texture((26.0, -14.0), min_wavelength_m=150.0)
    tgt = georeferenced(displaced("B", *to33.transform(txx, tyy)), Affine(20, 0, tx0, 0, -20, ty0), "EPSG:32634")
    result = calculate_shift(ref, tgt, window_size=128)
    assert result.success
    # expected: the zone-33 correction (-26, +14) m carried into zone 34 at the window centre
    (ax, bx), (ay, by) = to34.transform([result.x_map, result.x_map - 26.0], [result.y_map, result.y_map + 14.0])
    expected = (bx - ax, by - ay)
    assert abs(expected[0] + 26.0) > 1.0  # the rotation matters at this scale
    assert (result.x_shift_m, result.y_shift_m) == pytest.approx(expected, abs=0.5)
    assert (result.x_shift_px, result.y_shift_px) == pytest.approx((expected[0] / 20, -expected[1] / 20), abs=0.03)


def test_tie_points_run_as_one_task_per_block_and_match_in_memory_results(real_pair):
    ref, tgt = real_pair
    grid, ref_c, tgt_c = prepare_pair(ref, tgt)
    graph = _point_graph(ref_c, tgt_c, grid, 100, (256, 256), MatchSettings())
    n_points = graph.shape[0] * graph.shape[1] * graph.shape[2]
    layers = graph.__dask_graph__().layers
    layer = [name for name in layers if name.startswith("coreg-tie-points")]
    assert len(layer) == 1
    keys = list(layers[layer[0]])
    n_tasks = sum(1 for key in keys if key[0] == graph.name)
    assert n_tasks == graph.shape[0] * graph.shape[1] and n_tasks * 20 < n_points  # blocks, not points
    # the rest cut the parts of the images' blocks under a block's windows: at most 2 x 2 blocks per image,
    # with no rechunk, overlap or slicing layers of small tasks between the images and the matches
    assert len(keys) - n_tasks <= 8 * n_tasks
    assert not [name for name in layers if name.split("-")[0] in ("rechunk", "overlap", "getitem", "concatenate")]
    # lazy (Dask-backed) inputs give the same table as in-memory ones
    crop = dict(y=slice(1000, 1800), x=slice(0, 900))
    lazy_ref = ref.copy(data=da.from_array(ref.values, chunks=300))
    lazy_tgt = tgt.isel(crop).copy(data=da.from_array(tgt.isel(crop).values, chunks=256))
    with dask.config.set(scheduler="threads", num_workers=2):
        eager = tie_points(ref, tgt.isel(crop), grid_res=200)
        lazy = tie_points(lazy_ref, lazy_tgt, grid_res=200)
    assert len(eager) > 4
    np.testing.assert_array_equal(eager[["X_SHIFT_PX", "Y_SHIFT_PX"]].to_numpy(),
                                  lazy[["X_SHIFT_PX", "Y_SHIFT_PX"]].to_numpy())


def test_no_overlap_is_a_named_outcome(crop_image):
    far = crop_image.assign_coords(x=crop_image.x + 100_000.0).rio.write_transform(
        Affine(10, 0, float(crop_image.x[0]) + 100_000 - 5, 0, -10, float(crop_image.y[0]) + 5))
    result = calculate_shift(crop_image, far)
    assert not result.success and result.status == "failed:no overlap"
    assert np.isnan(result.x_shift_m) and result.l2a_shift_m == (0.0, 0.0)
    table = tie_points(crop_image, far)
    assert table.empty and list(table.columns) == TIE_POINT_COLUMNS


def test_fully_clouded_and_flat_targets_are_named_outcomes(crop_image):
    clouded = crop_image.copy(data=np.full(crop_image.shape, np.nan, dtype=np.float32))
    result = calculate_shift(crop_image, clouded)
    assert not result.success and result.status == "failed:target: no valid data in the window"
    assert tie_points(crop_image, clouded, grid_res=64, window_size=128).empty
    flat = crop_image.copy(data=np.full(crop_image.shape, 0.12, dtype=np.float32))
    result = calculate_shift(crop_image, flat)
    assert result.status == "failed:target: flat window (no texture to match)"
    table = tie_points(crop_image, flat, grid_res=64, window_size=128)
    assert len(table) > 0 and table["OUTLIER"].all()
    assert set(table["REASON"]) == {"failed:target: flat window (no texture to match)"}


def test_position_and_max_shift(crop_image):
    target = crop_image.copy(data=fourier_shifted(crop_image.values, (0.0, 7.0)))
    assert calculate_shift(crop_image, target).status == "failed:shift exceeds max_shift"
    ok = calculate_shift(crop_image, target, max_shift=8, position=(float(crop_image.x[250]),
                                                                   float(crop_image.y[260])))
    assert ok.success and ok.x_shift_px == pytest.approx(-7.0, abs=0.03)
    assert ok.x_map == pytest.approx(float(crop_image.x[250])) and ok.y_map == pytest.approx(float(crop_image.y[260]))
    # a window reaching beyond the overlap is moved inwards (AROSICS), a position outside it is a named failure
    edge = calculate_shift(crop_image, target, max_shift=8, position=(float(crop_image.x[5]), float(crop_image.y[5])))
    assert edge.success and edge.x_map > float(crop_image.x[5]) and edge.y_map < float(crop_image.y[5])
    outside = calculate_shift(crop_image, target, position=(float(crop_image.x[0]) - 100, float(crop_image.y[5])))
    assert outside.status.startswith("failed:position") and outside.status.endswith("is outside the overlap")


def test_a_clouded_centre_moves_the_global_window_to_the_next_candidate_lazy_or_not(crop_image):
    """The centre window without enough valid data: the next of the eight positions around it is read (one at a
    time, after the first window was computed with everything else), for in-memory and Dask-backed images."""
    values = fourier_shifted(crop_image.values, (2.0, -1.5)).astype(np.float32)
    rows, cols = values.shape
    values[rows // 2 - 100:rows // 2 + 100, cols // 2 - 100:cols // 2 + 100] = np.nan  # a cloud on the centre
    target = crop_image.copy(data=values)
    lazy = (crop_image.copy(data=da.from_array(crop_image.values, chunks=128)),
            target.copy(data=da.from_array(values, chunks=128)))
    for reference, moved in ((crop_image, target), lazy):
        result = calculate_shift(reference, moved, window_size=128)
        assert result.success
        assert (result.x_shift_px, result.y_shift_px) == pytest.approx((1.5, -2.0), abs=0.05)
        centre_x = float(crop_image.x[cols // 2])
        assert abs(result.x_map - centre_x) > 50  # not the centre window


def test_inputs_without_georeference_are_rejected():
    plain = xr.DataArray(np.zeros((64, 64), dtype=np.float32), dims=("y", "x"))
    with pytest.raises(CoregInputError, match="reference"):
        calculate_shift(plain, plain)
    gbox = GeoBox((64, 64), Affine(10, 0, 0, 0, -10, 640), "EPSG:32633")
    cube = xr.DataArray(np.zeros((2, 64, 64)), dims=("t", "y", "x"))
    with pytest.raises(CoregInputError, match="2-D"):
        calculate_shift(cube, cube)
    assert gbox.shape == (64, 64)


def test_dense_grid_and_non_square_window(crop_image):
    """A grid finer than a window's reach (blocks must grow) and a non-square window (cols, rows)."""
    target = crop_image.copy(data=fourier_shifted(crop_image.values, (0.8, -1.3)))
    table = tie_points(crop_image, target, grid_res=40, window_size=(96, 64))
    assert len(table) >= 30 and not table["OUTLIER"].any()
    assert np.allclose(table["X_SHIFT_PX"], 1.3, atol=0.05) and np.allclose(table["Y_SHIFT_PX"], -0.8, atol=0.05)
