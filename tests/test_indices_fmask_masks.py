"""The Fmask-to-Sen2Cor mapping, Sen2Chain's kernels scaled to other pixel sizes, the lazy masks of a cube slot and
the data window of a slot, against values written out by hand."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from scipy import ndimage

from gmsdask.algorithms.fmask_sen2cor import (
    fmask_cloud_probability,
    fmask_has_data,
    fmask_to_scl,
    swir16_for_cm002,
)
from gmsdask.algorithms.sen2chain_masks import cloud_mask, overlap_depth, parse_cloud_mask
from gmsdask.algorithms.sen2chain_masks_gsd import (
    MaskKernels,
    cloud_mask_at,
    disc_erosion,
    mask_kernels,
    octagon_dilation,
    overlap_depth_at,
)
from gmsdask.indices.cube_masks import cube_slot_masks
from gmsdask.indices.cube_window import slot_data_windows
from gmsdask.io.cube import open_cube_session

from .cube_helpers import write

SPECS = ["CM001", "CM002", "CM003-PRB20-ITER0", "CM003-PRB40-ITER1", "CM003-PRB50-ITER3",
         "CM004-CSH1-CMP0-CHP1-TCI1-ITER2", "CM004-ITER5", "CM004-ITER1"]


def test_fmask_classes_and_confidence_become_scl_and_msk_cldprb():
    fmask = np.array([0, 1, 2, 2, 2, 2, 2, 3, 4, 5, 255], dtype=np.uint8)
    confidence = np.array([255, 40, 20, 64, 65, 100, 255, 70, 0, 10, 255], dtype=np.uint8)
    #                      nodata clear cloud-medium x2, high x2, cloud without confidence, shadow snow water unwritten
    np.testing.assert_array_equal(fmask_to_scl(fmask, confidence), [0, 5, 8, 8, 9, 9, 9, 3, 11, 6, 0])
    np.testing.assert_array_equal(fmask_cloud_probability(fmask, confidence),
                                  [0, 40, 20, 64, 65, 100, 100, 70, 0, 10, 0])
    # without a confidence layer (PRODUCT_QA): clouds are high probability, 100 %; everything else 0 %
    np.testing.assert_array_equal(fmask_to_scl(fmask), [0, 5, 9, 9, 9, 9, 9, 3, 11, 6, 0])
    np.testing.assert_array_equal(fmask_cloud_probability(fmask), [0, 0, 100, 100, 100, 100, 100, 0, 0, 0, 0])
    np.testing.assert_array_equal(fmask_has_data(fmask), [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    swir = np.array([0.3, 0.05, np.nan, np.nan, 0.02], dtype=np.float32)
    np.testing.assert_array_equal(swir16_for_cm002(swir, np.array([1, 1, 2, 0, 3], np.uint8)),
                                  np.array([0.3, 0.05, np.inf, np.nan, np.inf], np.float32))


def _random_inputs(rng, shape):
    blobs = ndimage.gaussian_filter(rng.random(shape), 2)
    probability = np.clip((blobs - blobs.min()) / np.ptp(blobs) * 100 + rng.normal(0, 15, shape), 0, 100)
    scl = rng.choice([0, 3, 4, 5, 6, 8, 9, 10, 11], shape, p=[.05, .05, .3, .2, .1, .1, .1, .05, .05])
    scl = np.where(ndimage.uniform_filter(rng.random(shape), 5) > 0.55, 9, scl)
    swir = rng.uniform(0, 0.4, shape).astype(np.float32)
    swir[rng.random(shape) < 0.05] = np.nan
    return probability.astype(np.uint8), scl.astype(np.uint8), swir


def test_at_20_m_the_scaled_kernels_are_sen2chains_own():
    rng = np.random.default_rng(1)
    for trial in range(8):
        shape = (int(rng.integers(30, 80)), int(rng.integers(30, 80)))
        probability, scl, swir = _random_inputs(rng, shape)
        inside = np.ones(shape, bool)
        if trial % 2:  # a block's margin beyond the image
            inside[:, :int(rng.integers(1, 10))] = False
            probability, scl = np.where(inside, probability, 0), np.where(inside, scl, 0)
        for text in SPECS:
            spec = parse_cloud_mask(text)
            layers = {"probability": probability, "scl": scl, "swir16": swir, "inside": inside}
            np.testing.assert_array_equal(cloud_mask_at(spec, 20.0, **layers), cloud_mask(spec, **layers),
                                          err_msg=f"{text}, trial {trial}")
            assert overlap_depth_at(spec, 20.0) == overlap_depth(spec)


def test_kernels_keep_their_size_in_metres():
    cm001, cm002, cm004 = (parse_cloud_mask(t) for t in ("CM001", "CM002", "CM004-ITER5"))
    assert mask_kernels(cm001, 10.0) == MaskKernels(erosion=2, cloud_dilation=10)
    assert mask_kernels(cm002, 10.0) == MaskKernels(2, 10, 10, 12)
    assert mask_kernels(cm004, 10.0).octagon == (20, 30) and overlap_depth_at(cm004, 10.0) == 20
    # coarser: radii rounded half up, a dilation keeps one pixel, an erosion below half a pixel is none
    assert mask_kernels(cm001, 30.0) == MaskKernels(erosion=1, cloud_dilation=3)
    assert mask_kernels(cm001, 60.0) == MaskKernels(erosion=0, cloud_dilation=2)
    assert mask_kernels(cm001, 3660.0) == MaskKernels(erosion=0, cloud_dilation=1)
    assert mask_kernels(parse_cloud_mask("CM004-ITER1"), 60.0).octagon == (1, 1)  # the cross
    assert mask_kernels(parse_cloud_mask("CM004-ITER0"), 10.0).octagon == (0, 0)
    point = np.zeros((15, 15), bool)
    point[7, 7] = True
    dy, dx = np.mgrid[-7:8, -7:8]
    np.testing.assert_array_equal(octagon_dilation(point, 6, 10),
                                  (np.abs(dx) <= 6) & (np.abs(dy) <= 6) & (np.abs(dx) + np.abs(dy) <= 10))
    square = np.zeros((12, 12), bool)
    square[1:11, 2:12] = True  # touches the right edge: beyond it nothing is masked
    disc3 = dx[4:11, 4:11] ** 2 + dy[4:11, 4:11] ** 2 <= 9
    np.testing.assert_array_equal(disc_erosion(square, 3), ndimage.binary_erosion(square, disc3, border_value=0))


CLOUD_CENTRES = ((30, 33), (62, 66), (75, 20))  # across the 32 px block borders


def _slot(shape, chunks, pixel_m, seed):
    """A cube slot: three round clouds (radius 9 px) with their shadows, speckle of the other classes, no data in
    the first columns, a dark water strip; B11 blanked (NaN) under clouds and shadows, as L1C leaves it."""
    rng = np.random.default_rng(seed)
    fmask = rng.choice([1, 4, 5], shape, p=[0.98, 0.01, 0.01]).astype(np.uint8)
    rows, cols = np.indices(shape)
    for row, col in CLOUD_CENTRES:
        fmask[(rows - row - 12) ** 2 + (cols - col - 6) ** 2 <= 36] = 3
        fmask[(rows - row) ** 2 + (cols - col) ** 2 <= 81] = 2
    fmask[:, :5] = 0  # no data
    # Fmask: 0 % where the potential-cloud tests fail, some probability elsewhere
    other = np.where(rng.random(shape) < 0.02, rng.integers(1, 40, shape), 0)
    confidence = np.where(fmask == 2, rng.integers(20, 101, shape), other).astype(np.uint8)
    confidence[fmask == 0] = 255
    swir = rng.uniform(0.16, 0.4, shape).astype(np.float32)
    swir[85:, :] = 0.02  # water
    swir[(fmask == 2) | (fmask == 3) | (fmask == 0)] = np.nan  # L1C blanked clouds and shadows
    grid = GeoBox(shape, Affine(pixel_m, 0, 300000.0, 0, -pixel_m, 5900040.0), "EPSG:32633")
    coords = xr_coords(grid)
    layers = {"fmask": fmask, "cloud_confidence": confidence, "B11": swir}
    ds = xr.Dataset({name: (("y", "x"), da.from_array(v, chunks=chunks)) for name, v in layers.items()},
                    coords=coords)
    ds["B11"].attrs["common_name"] = "swir16"
    return ds, layers


@pytest.mark.parametrize("pixel_m", [10.0, 30.0])
def test_cube_slot_masks_are_seamless_and_follow_the_mapping(pixel_m):
    ds, layers = _slot((90, 110), (32, 32), pixel_m, seed=int(pixel_m))
    result = cube_slot_masks(ds, SPECS, chunks=(32, 32), scene_id="S2X")
    assert result.notes == []
    fmask, confidence = layers["fmask"], layers["cloud_confidence"]
    whole = {"probability": fmask_cloud_probability(fmask, confidence), "scl": fmask_to_scl(fmask, confidence),
             "swir16": swir16_for_cm002(layers["B11"], fmask)}
    for text in SPECS:
        spec = parse_cloud_mask(text)
        mask = result.masks[spec.name]
        assert isinstance(mask.data, da.Array) and mask.data.chunksize == (32, 32)
        expected = np.where(fmask == 0, 255, cloud_mask_at(spec, pixel_m, **whole))
        np.testing.assert_array_equal(mask.values, expected, err_msg=text)
        assert 0 < (expected == 1).mean() < 0.95, text
    # CM002 keeps clouds though L1C blanked their B11 (NaN would count as dark SWIR and delete them)
    cm002 = result.masks["CM002"].values
    assert all(cm002[row, col] == 1 for row, col in CLOUD_CENTRES)


def test_cube_slot_without_confidence_or_b11_says_so():
    ds, layers = _slot((40, 40), (20, 20), 20.0, seed=3)
    result = cube_slot_masks(ds.drop_vars(["cloud_confidence", "B11"]), ["CM003-PRB100-ITER0", "CM002"],
                             chunks=(20, 20), scene_id="LC09_X")
    np.testing.assert_array_equal(result.masks["CM003-PRB100-ITER0"].values,
                                  np.where(layers["fmask"] == 0, 255, layers["fmask"] == 2))
    assert (result.masks["CM002"].values == 255).all()
    assert any("LC09_X: the cube has no cloud_confidence" in n for n in result.notes)
    assert any("LC09_X: CM002 needs swir16, which the cube slot lacks" in n for n in result.notes)


def test_slot_data_window_is_the_box_of_the_chunks_the_slot_stores(tmp_path):
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")  # rows 64-191, cols 0-191 of a 256 px grid with 64 px chunks
    write(path, "C")  # rows 128-255, cols 64-255
    group = zarr.open_group(open_cube_session(path).store, mode="r")
    assert slot_data_windows(group, [0, 1], (64, 64)) == {0: (slice(64, 192), slice(0, 192)),
                                                          1: (slice(128, 256), slice(64, 256))}


def test_slot_variables_are_written_into_a_window_of_whole_chunks_only(tmp_path):
    from gmsdask.errors import ProcessingError
    from gmsdask.indices.cube_store import store_slot_variables

    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    mask = xr.Dataset({"CM001": (("time", "y", "x"), np.ones((1, 64, 128), np.uint8))})
    with pytest.raises(ProcessingError, match=r"does not start at a chunk corner of \(64, 64\) px"):
        store_slot_variables(path, mask, [0], window=(slice(10, 74), slice(0, 128)))
    store_slot_variables(path, mask, [0], window=(slice(64, 128), slice(64, 192)))
    stored = zarr.open_array(open_cube_session(path).store, path="CM001", mode="r")[0]
    assert (stored[64:128, 64:192] == 1).all() and stored.sum() == 64 * 128 + 255 * (256 * 256 - 64 * 128)
