"""``warp_block``'s shortcuts give GDAL's full masked warp, value for value."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.warp
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling

from gmsdask.algorithms.warp import warp_block

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


@pytest.mark.parametrize("dst", [CROSS, SAME], ids=["cross-crs", "same-crs"])
@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic", "average"])
@pytest.mark.parametrize("holes", [False, True], ids=["complete", "with-holes"])
def test_equals_gdals_masked_warp(dst, resampling, holes):
    rng = np.random.default_rng(3)
    src = rng.random(SOURCE.shape.yx, dtype=np.float32)
    if holes:
        src[40:60, 100:130] = np.nan
    out = warp_block(src, SOURCE, dst, resampling=resampling, src_nodata=np.nan, dst_fill=np.nan)
    expected = _gdal_masked(src, dst, resampling, np.nan)
    assert 0.05 < np.isnan(out).mean() < 0.9  # the source covers part of the target, not all of it
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("fill", [0, 255])
def test_integer_layers_keep_their_fill_where_the_source_ends(fill):
    rng = np.random.default_rng(4)
    classes = rng.integers(1, 10, SOURCE.shape.yx).astype(np.uint8)
    out = warp_block(classes, SOURCE, CROSS, resampling="nearest", src_nodata=fill, dst_fill=fill)
    expected = _gdal_masked(classes, CROSS, "nearest", fill)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and 0.05 < (out == fill).mean() < 0.9
