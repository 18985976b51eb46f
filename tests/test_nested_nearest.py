"""``geometry.scene_grid.nested_nearest``: a coarse layer on a finer grid nested in it, as a nearest warp gives it."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords, xr_reproject

from gmsdask.geometry.scene_grid import nested_nearest

_SRC = GeoBox((50, 40), Affine(60, 0, 300000, 0, -60, 5000000), "EPSG:32633")


def _layer() -> xr.DataArray:
    values = np.random.default_rng(1).integers(0, 255, _SRC.shape.yx).astype(np.uint8)
    return xr.DataArray(da.from_array(values, chunks=16), dims=("y", "x"), coords=xr_coords(_SRC)).odc.assign_crs(
        _SRC.crs)


@pytest.mark.parametrize("dst", [
    GeoBox((300, 240), Affine(10, 0, 300000, 0, -10, 5000000), "EPSG:32633"),  # 60 m -> 10 m, whole
    GeoBox((100, 90), Affine(20, 0, 300120, 0, -20, 4999940), "EPSG:32633"),  # 60 m -> 20 m, a window
    GeoBox((7, 9), Affine(60, 0, 300060, 0, -60, 4999880), "EPSG:32633"),  # the same pixel size, a window
])
def test_equals_a_nearest_warp_on_nested_grids(dst):
    layer = _layer()
    nested = nested_nearest(layer, dst)
    assert nested is not None and nested.odc.geobox == dst and isinstance(nested.data, da.Array)
    np.testing.assert_array_equal(nested.values, xr_reproject(layer.compute(), dst, resampling="nearest").values)


@pytest.mark.parametrize("dst", [
    GeoBox((10, 10), Affine(10, 0, 300005, 0, -10, 5000000), "EPSG:32633"),  # pixel edges off the source's
    GeoBox((10, 10), Affine(25, 0, 300000, 0, -25, 5000000), "EPSG:32633"),  # not an integer fraction
    GeoBox((10, 10), Affine(10, 0, 300000, 0, -10, 5000000), "EPSG:32632"),  # another CRS
    GeoBox((310, 10), Affine(10, 0, 300000, 0, -10, 5000000), "EPSG:32633"),  # beyond the source
])
def test_grids_that_do_not_nest_are_left_to_a_warp(dst):
    assert nested_nearest(_layer(), dst) is None
