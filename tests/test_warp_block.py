"""``warp_block``: its shortcuts give GDAL's full masked warp, value for value; float averages within a CRS give
GDAL's to float32 rounding; float warps into another CRS are sampled at the exactly transformed positions (the
compiled kernels, not GDAL's approximate transformer)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import rasterio.warp
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.enums import Resampling

from gmsdask.algorithms.point_resampling import resample_at
from gmsdask.algorithms.warp import warp_block
from gmsdask.geometry import warp_lazy

SOURCE = GeoBox((300, 280), Affine(30, 0, 699_015, 0, -30, 5_200_015), "EPSG:32633")
# the neighbouring UTM zone (rotated and scaled against the source) and the source's zone shifted by a fraction
CROSS = GeoBox((320, 320), Affine(30, 0, 238_000, 0, -30, 5_200_600), "EPSG:32634")
SAME = GeoBox((300, 300), Affine(30, 0, 699_000, 0, -30, 5_200_000), "EPSG:32633")


def _gdal_masked(src: np.ndarray, dst: GeoBox, resampling: str, nodata) -> np.ndarray:
    out = np.full(dst.shape.yx, nodata, dtype=src.dtype)
    rasterio.warp.reproject(src, out, src_transform=SOURCE.affine, src_crs="EPSG:32633", src_nodata=nodata,
                            dst_transform=dst.affine, dst_crs=str(dst.crs), dst_nodata=nodata,
                            resampling=Resampling[resampling], init_dest_nodata=False)
    return out


@pytest.mark.parametrize("dst, resampling", [(SAME, "nearest"), (SAME, "average"), (CROSS, "nearest"),
                                             (CROSS, "average")])
@pytest.mark.parametrize("holes", [False, True], ids=["complete", "with-holes"])
def test_equals_gdals_masked_warp(dst, resampling, holes):
    rng = np.random.default_rng(3)
    src = rng.random(SOURCE.shape.yx, dtype=np.float32)
    if holes:
        src[40:60, 100:130] = np.nan
    out = warp_block(src, SOURCE, dst, resampling=resampling, src_nodata=np.nan, dst_fill=np.nan)
    expected = _gdal_masked(src, dst, resampling, np.nan)
    assert 0.05 < np.isnan(out).mean() < 0.9  # the source covers part of the target, not all of it
    if (dst, resampling) == (SAME, "average"):  # the compiled average: GDAL's sums in another order
        _assert_within_float32_rounding(out, expected)
    else:
        np.testing.assert_array_equal(out, expected)


def _assert_within_float32_rounding(out: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(out, expected, rtol=2.5e-7, atol=0)  # two units in the last place


@pytest.mark.parametrize("resolution", [10, 20, 60])
def test_averages_within_a_crs_give_gdals_values(resolution):
    # L2A's case: Sentinel-2's 10, 20 and 60 m bands (shifted by L1B) onto a 30 m tile grid they cover in part
    source = GeoBox((330, 310), Affine(resolution, 0, 600_003.7, 0, -resolution, 5_000_002.1), "EPSG:32633")
    # the target reaches beyond every edge of the source: GDAL counts a footprint's part beyond the edge as the
    # edge pixel's (``_axis_overlaps``), the target pixels wholly beyond it are no data
    side = 330 * resolution // 30 + 40
    target = GeoBox((side, side), Affine(30, 0, 599_400, 0, -30, 5_000_600), "EPSG:32633")
    rng = np.random.default_rng(resolution)
    src = rng.random(source.shape.yx, dtype=np.float32)
    src[100:140, 200:260] = np.nan  # a cloud hole, and scattered no-data pixels
    src[rng.random(src.shape) < 0.01] = np.nan
    out = warp_block(src, source, target, resampling="average", src_nodata=np.nan, dst_fill=np.nan)
    expected = np.full(target.shape.yx, np.nan, dtype=np.float32)
    rasterio.warp.reproject(src, expected, src_transform=source.affine, src_crs="EPSG:32633", src_nodata=np.nan,
                            dst_transform=target.affine, dst_crs="EPSG:32633", dst_nodata=np.nan,
                            resampling=Resampling.average, init_dest_nodata=False)
    assert 0.1 < np.isnan(out).mean() < 0.8  # the source covers part of the target
    _assert_within_float32_rounding(out, expected)


@pytest.mark.parametrize("fill", [0, 255])
def test_integer_layers_keep_their_fill_where_the_source_ends(fill):
    rng = np.random.default_rng(4)
    classes = rng.integers(1, 10, SOURCE.shape.yx).astype(np.uint8)
    out = warp_block(classes, SOURCE, CROSS, resampling="nearest", src_nodata=fill, dst_fill=fill)
    expected = _gdal_masked(classes, CROSS, "nearest", fill)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and 0.05 < (out == fill).mean() < 0.9


def _smooth(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return (0.2 + 0.1 * np.sin(rows / 7.0) * np.cos(cols / 9.0)).astype(np.float32)


def _source_positions(dst: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Every target pixel centre in SOURCE's pixel-edge coordinates, transformed by pyproj one by one."""
    cols, rows = np.meshgrid(np.arange(dst.shape.x) + 0.5, np.arange(dst.shape.y) + 0.5)
    x, y = dst.affine * (cols, rows)
    return ~SOURCE.affine * Transformer.from_crs(str(dst.crs), str(SOURCE.crs), always_xy=True).transform(x, y)


def _exact(src: np.ndarray, dst: GeoBox, resampling: str) -> np.ndarray:
    """The kernel at every target pixel centre transformed by pyproj, one by one."""
    return resample_at(src, *_source_positions(dst), resampling=resampling, fill=np.nan)


@pytest.mark.parametrize("resampling", ["bilinear", "cubic"])
@pytest.mark.parametrize("dst, off_gdal", [(CROSS, 2e-3), (SAME, 2e-7)], ids=["another-crs", "same-crs"])
def test_float_warps_sample_the_exact_positions(resampling, dst, off_gdal):
    src = _smooth(SOURCE.shape.yx)
    src[40:60, 100:130] = np.nan
    src[200, 50] = np.nan
    out = warp_block(src, SOURCE, dst, resampling=resampling, src_nodata=np.nan, dst_fill=np.nan)
    exact = _exact(src, dst, resampling)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(exact))
    np.testing.assert_allclose(out, exact, atol=2e-7, rtol=0)  # float32 rounding: the lattice is ~1e-5 px off
    assert 0.05 < np.isnan(out).mean() < 0.9
    # GDAL's kernel where every tap has data (GDAL extends the source's edge pixels outwards, the kernels here
    # renormalize over the taps inside); into another CRS at GDAL's approximate positions (0.125 px)
    gdal = _gdal_masked(src, dst, resampling, np.nan)
    # a tap on a hole filled with 1e6 shows in the result
    near_hole = ~(np.abs(_gdal_masked(np.where(np.isnan(src), np.float32(1e6), src), dst, resampling,
                                      np.nan)) < 10)
    u, v = _source_positions(dst)
    inside = (u >= 2) & (u <= SOURCE.shape.x - 2) & (v >= 2) & (v <= SOURCE.shape.y - 2)
    both = np.isfinite(out) & np.isfinite(gdal) & ~near_hole & inside
    assert both.mean() > 0.05
    assert np.abs(out[both] - gdal[both]).max() < off_gdal


@pytest.mark.parametrize("dst", [CROSS, SAME], ids=["another-crs", "same-crs"])
def test_a_float_warp_does_not_depend_on_where_blocks_are_cut(dst):
    src = da.from_array(_smooth(SOURCE.shape.yx), chunks=64)
    target = GeoBox((300, 300), dst.affine, dst.crs)
    whole = warp_lazy(src, SOURCE, target, resampling="cubic", fill=np.nan, chunks=(300, 300)).compute()
    blocks = warp_lazy(src, SOURCE, target, resampling="cubic", fill=np.nan, chunks=(77, 50)).compute()
    assert np.isfinite(whole).mean() > 0.3
    np.testing.assert_array_equal(blocks, whole)
