"""Sen2Chain cloud masks: the rules against plain scipy on whole images, blockwise seams, grids, parsing."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords, xr_reproject
from scipy import ndimage
from skimage.morphology import disk

from gmsdask.algorithms.sen2chain_masks import (
    CROSS_3X3,
    KERNEL_5X5_NO_CORNERS,
    cm001,
    cm002,
    cm003,
    cm004,
    disc,
    overlap_depth,
    parse_cloud_mask,
)
from gmsdask.errors import ConfigError
from gmsdask.indices.cloudmasks import FMASK_TO_SCL, MASK_FILL, cloud_masks_on_grid, find_mask_inputs

# the rules written out independently of the module: FACTS.md section 7
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
K5 = np.array([[0, 1, 1, 1, 0]] + [[1] * 5] * 3 + [[0, 1, 1, 1, 0]], dtype=bool)


def hand_cm001(prob):
    return ndimage.binary_dilation(ndimage.binary_erosion(prob > 25, CROSS), disk(5))


def hand_cm002(prob, b11):
    dark = ndimage.binary_dilation(~(b11 >= 0.15), disk(5))
    return ndimage.binary_dilation(hand_cm001(prob) & ~dark, disk(6))


def hand_dilate(mask, iterations):
    return ndimage.binary_dilation(mask, K5, iterations=iterations) if iterations else mask


def blobs(shape, seed, n=25):
    """Cloud-probability-like field: 0 with round blobs of 1-100 %, and single speckles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    prob = np.zeros(shape, dtype=np.uint8)
    for _ in range(n):
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(1, 9)
        prob[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(1, 101)
    speckles = rng.random(shape) < 0.01
    prob[speckles] = 90
    return prob


def test_kernels_are_sen2chains():
    np.testing.assert_array_equal(disc(11), disk(5))
    np.testing.assert_array_equal(disc(13), disk(6))
    np.testing.assert_array_equal(CROSS_3X3, CROSS)
    np.testing.assert_array_equal(KERNEL_5X5_NO_CORNERS, K5)
    assert disc(11).shape == (11, 11) and disc(13).shape == (13, 13) and K5.sum() == 21


def test_parser_defaults_and_canonical_names():
    assert parse_cloud_mask("CM001").name == "CM001"
    assert parse_cloud_mask("cm002").name == "CM002"
    assert parse_cloud_mask("CM003").name == "CM003-PRB1-ITER5"
    assert parse_cloud_mask("CM003-ITER0-PRB20").name == "CM003-PRB20-ITER0"
    spec = parse_cloud_mask("CM004-CSH1-CMP1-CHP1-TCI1-ITER0")
    assert spec.name == "CM004-CSH1-CMP1-CHP1-TCI1-ITER0" and spec.classes == (3, 8, 9, 10) and spec.iterations == 0
    spec = parse_cloud_mask("CM004-CSH0-TCI0-ITER2")
    assert spec.classes == (8, 9) and spec.name == "CM004-CSH0-CMP1-CHP1-TCI0-ITER2"
    assert parse_cloud_mask("CM004").name == "CM004-CSH1-CMP1-CHP1-TCI1-ITER5"
    assert parse_cloud_mask("CM003-PRB7-ITER3").needs == ("probability",)
    assert parse_cloud_mask("CM002").needs == ("probability", "swir16")


@pytest.mark.parametrize("text, problem", [
    ("CM005", "unknown cloud mask"), ("NDVI", "unknown cloud mask"), ("", "unknown cloud mask"),
    ("CM001-ITER1", "invalid parameter 'ITER1'"), ("CM003-PRB200", "PRB must be"),
    ("CM004-CSH2", "CSH must be 0 or 1"), ("CM003-PRB1-PRB2", "PRB given twice"),
    ("CM003-FOO1", "invalid parameter 'FOO1'"), ("CM004-CSH0-CMP0-CHP0-TCI0", "every SCL class"),
])
def test_bad_mask_strings_raise_config_error(text, problem):
    with pytest.raises(ConfigError, match="cloudmasks") as err:
        parse_cloud_mask(text)
    assert problem in str(err.value)


def test_zero_iterations_means_no_dilation():
    prob = blobs((60, 70), seed=1)
    scl = np.where(prob > 50, 9, 4).astype(np.uint8)
    np.testing.assert_array_equal(cm003(prob, 1, 0), (prob >= 1).astype(np.uint8))
    np.testing.assert_array_equal(cm004(scl, (9,), 0), (scl == 9).astype(np.uint8))
    # scipy's iterations=0 repeats until nothing changes: Sen2Chain's ITER0 masked (nearly) everything
    assert ndimage.binary_dilation(prob >= 1, K5, iterations=0).mean() > 0.99 > cm003(prob, 1, 0).mean()
    assert cm003(prob, 1, 1).sum() > cm003(prob, 1, 0).sum()


def test_masks_equal_scipy_on_whole_images():
    prob = blobs((90, 110), seed=2)
    b11 = np.random.default_rng(3).uniform(0.16, 0.4, prob.shape).astype(np.float32)
    b11[40:60, 10:50] = 0.05  # a dark river under some clouds
    b11[0, :5] = np.nan  # no data counts as dark (Sen2Chain: DN 0 < 1500)
    scl = np.random.default_rng(4).choice([3, 4, 5, 6, 8, 9, 10], prob.shape).astype(np.uint8)
    np.testing.assert_array_equal(cm001(prob), hand_cm001(prob))
    np.testing.assert_array_equal(cm002(prob, b11), hand_cm002(prob, b11))
    assert cm002(prob, b11).sum() != ndimage.binary_dilation(hand_cm001(prob), disk(6)).sum()
    np.testing.assert_array_equal(cm003(prob, 30, 3), hand_dilate(prob >= 30, 3))
    np.testing.assert_array_equal(cm004(scl, (3, 10), 2), hand_dilate(np.isin(scl, (3, 10)), 2))
    assert 0 < cm001(prob).mean() < 1 and cm001(prob).dtype == np.uint8


def test_overlap_depth_is_the_sum_of_kernel_radii():
    assert overlap_depth(parse_cloud_mask("CM001")) == 6
    assert overlap_depth(parse_cloud_mask("CM002")) == 12
    assert overlap_depth(parse_cloud_mask("CM003-PRB1-ITER5")) == 10
    assert overlap_depth(parse_cloud_mask("CM004-ITER0")) == 0


# --- lazy masks on a scene tree --------------------------------------------------------------------------------
def _grid(res, shape, x0=500000.0, y0=5900040.0):
    return GeoBox(shape, Affine(res, 0.0, x0, 0.0, -res, y0), "EPSG:32629")


def _scene(layers: dict, grid: GeoBox, group="r20m", platform="SENTINEL_2A", chunks=32):
    coords = xr_coords(grid)
    ds = xr.Dataset({name: xr.DataArray(values, dims=("y", "x"), coords=coords, attrs=attrs).chunk(chunks)
                     for name, (values, attrs) in layers.items()})
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs={"platform": platform, "product_id": "test"}),
                                  f"/{group}": ds})


def _any_under(mask: np.ndarray, src: GeoBox, dst: GeoBox) -> np.ndarray:
    """For each dst pixel, 1 if any src pixel overlapping it (positive area) is 1; written pixel by pixel."""
    out = np.full(dst.shape.yx, MASK_FILL, dtype=np.uint8)
    sx, sy, x0, y0 = src.affine.a, -src.affine.e, src.affine.c, src.affine.f
    row_lists, col_lists = [], []
    for i in range(dst.shape.y):
        top, bottom = dst.affine.f + i * dst.affine.e, dst.affine.f + (i + 1) * dst.affine.e
        row_lists.append([r for r in range(src.shape.y)
                          if min(top, y0 - r * sy) - max(bottom, y0 - (r + 1) * sy) > 1e-6])
    for j in range(dst.shape.x):
        left, right = dst.affine.c + j * dst.affine.a, dst.affine.c + (j + 1) * dst.affine.a
        col_lists.append([c for c in range(src.shape.x)
                          if min(right, x0 + (c + 1) * sx) - max(left, x0 + c * sx) > 1e-6])
    for i, rows in enumerate(row_lists):
        for j, cols in enumerate(col_lists):
            if rows and cols:
                out[i, j] = mask[np.ix_(rows, cols)].max()
    return out


def test_blockwise_masks_have_no_seams_and_equal_the_whole_image():
    grid = _grid(20, (150, 170))
    prob = blobs(grid.shape.yx, seed=5, n=60)
    b11 = np.where(np.random.default_rng(6).random(grid.shape.yx) < 0.02, 0.05, 0.3).astype(np.float32)
    scl = np.where(prob > 60, 9, np.where(prob > 30, 3, 4)).astype(np.uint8)
    scene = _scene({"MSK_CLDPRB": (prob, {}), "SCL": (scl, {}), "B11": (b11, {"common_name": "swir16"})}, grid)
    names = ["CM001", "CM002", "CM003-PRB1-ITER3", "CM004-CSH1-CMP0-CHP1-TCI0-ITER2"]
    result = cloud_masks_on_grid(scene, names, grid, chunks=(32, 32))  # 32 px blocks, depth up to 12
    assert result.notes == []
    masks = result.masks.compute()
    expected = {"CM001": hand_cm001(prob), "CM002": hand_cm002(prob, b11),
                "CM003-PRB1-ITER3": hand_dilate(prob >= 1, 3), "CM004-CSH1-CMP0-CHP1-TCI0-ITER2":
                hand_dilate(np.isin(scl, (3, 9)), 2)}
    for name, truth in expected.items():
        np.testing.assert_array_equal(masks[name].values, truth.astype(np.uint8), err_msg=name)
        # the block borders are not trivially clear: masks cross them
        assert truth[31:33, :].any() and truth[:, 95:97].any(), name


@pytest.mark.parametrize("res, offset_px", [(60, 0), (30, 0), (30, 1), (10, 3)])
def test_masks_reach_other_grids_conservatively(res, offset_px):
    src = _grid(20, (90, 96))
    prob = blobs(src.shape.yx, seed=7, n=12)
    scene = _scene({"MSK_CLDPRB": (prob, {})}, src)
    # a target grid shifted by offset_px target pixels up/left, so part of it lies outside the source
    size = (int(90 * 20 / res) + 2 * offset_px, int(96 * 20 / res) + offset_px)
    dst = _grid(res, size, x0=500000.0 - offset_px * res, y0=5900040.0 + offset_px * res)
    mask = cloud_masks_on_grid(scene, ["CM003-PRB50-ITER0"], dst, chunks=(16, 16)).masks["CM003-PRB50-ITER0"]
    np.testing.assert_array_equal(mask.values, _any_under((prob >= 50).astype(np.uint8), src, dst))
    if offset_px:
        assert (mask.values[0] == MASK_FILL).all()


@pytest.mark.filterwarnings("ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # odc-geo warps bare arrays
def test_masks_reach_a_grid_in_another_crs_at_least_as_nearest_would():
    src = _grid(20, (90, 96))
    prob = blobs(src.shape.yx, seed=9, n=12)
    scene = _scene({"MSK_CLDPRB": (prob, {})}, src)
    dst = src.to_crs("EPSG:32630").zoom_to(resolution=60)
    result = cloud_masks_on_grid(scene, ["CM001"], dst, chunks=(16, 16))
    assert "GDAL 'max'" in result.notes[0]
    mask = result.masks["CM001"].values
    truth = xr.DataArray(hand_cm001(prob).astype(np.uint8), dims=("y", "x"), coords=xr_coords(src))
    nearest = xr_reproject(truth, dst, resampling="nearest", dst_nodata=MASK_FILL).values
    assert ((nearest == 1) <= (mask == 1)).all() and (mask == 1).sum() > (nearest == 1).sum()
    # the footprint agrees but for edge pixels (max takes partly covered ones, nearest their centres)
    assert ((nearest == MASK_FILL) == (mask == MASK_FILL)).mean() > 0.95 and set(np.unique(mask)) == {0, 1, 255}


def test_scene_without_inputs_gets_fill_and_fmask_is_mapped():
    grid = _grid(30, (40, 40))
    landsat = _scene({"B4": (np.zeros((40, 40), np.float32), {"common_name": "red"})}, grid, group="r30m",
                     platform="LANDSAT_8")
    assert find_mask_inputs(landsat) is None
    result = cloud_masks_on_grid(landsat, ["CM001", "CM004-ITER0"], grid, chunks=(16, 16), scene_id="LC08_X")
    assert (result.masks["CM001"].values == MASK_FILL).all()
    assert "LC08_X" in result.notes[0] and "LANDSAT_8" in result.notes[0] and "fill value 255" in result.notes[0]

    fmask = np.array([[0, 1, 2, 3, 4, 5]] * 6, dtype=np.uint8)
    l1c = _scene({"fmask": (fmask, {}), "cloud_confidence": (np.full((6, 6), 30, np.uint8), {})},
                 _grid(30, (6, 6)), group="r30m", platform="SENTINEL_2B")
    inputs = find_mask_inputs(l1c)
    np.testing.assert_array_equal(inputs.scl.values[0], [0, 5, 8, 3, 11, 6])  # confidence 30 %: SCL 8
    assert FMASK_TO_SCL == {0: 0, 1: 5, 2: 9, 3: 3, 4: 11, 5: 6}
    masks = cloud_masks_on_grid(l1c, ["CM004-ITER0", "CM003-PRB31-ITER0", "CM002"], _grid(30, (6, 6)),
                                chunks=(6, 6))
    np.testing.assert_array_equal(masks.masks["CM004-CSH1-CMP1-CHP1-TCI1-ITER0"].values[0], [0, 0, 1, 1, 0, 0])
    assert (masks.masks["CM003-PRB31-ITER0"].values == 0).all()
    assert (masks.masks["CM002"].values == MASK_FILL).all() and "CM002 needs swir16" in masks.notes[0]
