"""L2A cloud masking from the products' own quality layers."""

from __future__ import annotations

import numpy as np
import rasterio

from gmsdask import set_config
from gmsdask.algorithms.quality import bqa_cloud, qa_pixel_cloud, scl_cloud
from gmsdask.io import open_scene
from gmsdask.levels.l2a import geometric_homogenization
from gmsdask.mgrs_grid import tile_geobox

from .conftest import data_path


def bits(*positions: int) -> int:
    return sum(1 << p for p in positions)


def test_landsat_collection2_qa_pixel_bits():
    clear, water, fill = bits(6), bits(7), bits(0)
    cloud, shadow, cirrus, dilated = bits(3), bits(4), bits(2), bits(1)
    values = np.array([clear, water, fill, cloud | bits(8, 9), shadow, cirrus, dilated], dtype=np.uint16)
    assert qa_pixel_cloud(values).tolist() == [False, False, False, True, True, True, True]


def test_landsat_collection1_bqa_bits():
    clear = bits(5, 7, 9, 11)             # low confidences everywhere
    cloud = bits(4, 5, 6)                 # cloud bit, high cloud confidence
    shadow_high = bits(7, 8)              # cloud shadow confidence high
    cirrus_high = bits(11, 12)            # cirrus confidence high
    cirrus_medium = bits(12)              # medium is not masked
    values = np.array([clear, cloud, shadow_high, cirrus_high, cirrus_medium, 1], dtype=np.uint16)
    assert bqa_cloud(values).tolist() == [False, True, True, True, False, False]


def test_sentinel2_scl_classes():
    assert scl_cloud(np.arange(12)).tolist() == [c in (3, 8, 9, 10) for c in range(12)]


def test_real_l2a_clouds_follow_scl_at_the_nearest_pixel():
    product = data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    cfg = set_config(target_gsd=60.0, tiling_block_size_XY=(915, 915))
    l2a = geometric_homogenization(open_scene(product), cfg, target=tile_geobox("29UNU", 60.0))
    out = l2a["r60m"].ds
    assert l2a.attrs["l2a_cloud_mask_sources"] == ["SCL", "MSK_CLASSI_OPAQUE", "MSK_CLASSI_CIRRUS"]
    with rasterio.open(next(product.glob("GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2"))) as source:
        scl = source.read(1)
    with rasterio.open(next(product.glob("GRANULE/*/QI_DATA/MSK_CLASSI_B00.jp2"))) as source:
        opaque, cirrus = source.read(1), source.read(2)  # 60 m, the output grid
    rows, cols = np.random.default_rng(1).integers(0, 1830, size=(2, 400))
    cloud = out["cloud"].values
    # the 60 m pixel's nearest 20 m pixel is the centre one of its 3 x 3 block
    expected = scl_cloud(scl[3 * rows + 1, 3 * cols + 1]) | (opaque[rows, cols] != 0) | (cirrus[rows, cols] != 0)
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(cloud[rows, cols], expected)
    band = out["B04"].values
    assert np.isnan(band[cloud]).all()
    assert out["nodata"].values[cloud].all()
