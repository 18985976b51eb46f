"""``geometry.scene_grid.nested_nearest``: a coarse layer on a finer grid nested in it, as a nearest warp gives it."""

from __future__ import annotations

import dask
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


_FINE = GeoBox((300, 240), Affine(10, 0, 300000, 0, -10, 5000000), "EPSG:32633")


@pytest.mark.parametrize("chunks", [((70, 70, 70, 70, 20), (50, 50, 50, 50, 40)), ((300,), (240,)),
                                    ((6,) * 50, (123, 117))])
def test_blocks_of_any_size_equal_a_nearest_warp(chunks):
    nested = nested_nearest(_layer(), _FINE, chunks=chunks)
    assert nested.data.chunks == chunks
    np.testing.assert_array_equal(nested.values, xr_reproject(_layer().compute(), _FINE, resampling="nearest").values)


def test_an_eager_layer_gives_an_eager_result():
    layer = _layer().compute()
    nested = nested_nearest(layer, _FINE)
    assert isinstance(nested.data, np.ndarray)
    np.testing.assert_array_equal(nested.values, xr_reproject(layer, _FINE, resampling="nearest").values)


def test_the_fine_blocks_are_made_inside_their_consumers_tasks():
    """Masking a band by the nested layer makes no task per fine block of the layer: after Dask's optimization the
    graph holds the band's and the layer's own chunks, one task joining the layer, and the masked blocks."""
    layer = _layer()
    band = da.from_array(np.ones(_FINE.shape.yx, dtype=np.float32), chunks=(70, 50))
    nested = nested_nearest(layer, _FINE, chunks=band.chunks)
    masked = da.where(nested.data > 100, np.nan, band)
    (optimized,) = dask.optimize(masked)
    keys = dict(optimized.__dask_graph__())
    assert not [key for key in keys if str(key[0] if isinstance(key, tuple) else key).startswith("nested-nearest")]
    assert len(keys) <= optimized.npartitions + band.npartitions + layer.data.npartitions + 1
    expected = np.where(xr_reproject(layer.compute(), _FINE, resampling="nearest").values > 100, np.nan, 1)
    np.testing.assert_array_equal(optimized.compute(), expected)


@pytest.mark.parametrize("dst", [
    GeoBox((10, 10), Affine(10, 0, 300005, 0, -10, 5000000), "EPSG:32633"),  # pixel edges off the source's
    GeoBox((10, 10), Affine(25, 0, 300000, 0, -25, 5000000), "EPSG:32633"),  # not an integer fraction
    GeoBox((10, 10), Affine(10, 0, 300000, 0, -10, 5000000), "EPSG:32632"),  # another CRS
    GeoBox((310, 10), Affine(10, 0, 300000, 0, -10, 5000000), "EPSG:32633"),  # beyond the source
])
def test_grids_that_do_not_nest_are_left_to_a_warp(dst):
    assert nested_nearest(_layer(), dst) is None
