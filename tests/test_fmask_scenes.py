"""Fmask on whole scenes: synthetic products against their truth, real products against their own masks,
chunk invariance, a fully clouded scene, lazy graphs and errors."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
from dask.core import flatten, get_dependencies
from dask.utils import key_split
import pytest
import xarray as xr
from scipy import ndimage

from gmsdask.algorithms.fmask_qa import CLEAR, CLOUD, NODATA, SHADOW, product_qa_classes
from gmsdask.errors import ProcessingError
from gmsdask.io import open_scene
from gmsdask.geometry.scene_grid import nested_within
from gmsdask.masks import (
    CONFIDENCE_NODATA,
    class_cover_pct,
    fmask_scene,
    mask_on_grid,
    mask_scene,
    product_qa_masks,
)
from gmsdask.masks import fmask as fmask_module
from gmsdask.masks.fmask import _nearest_index, _take_nearest
from gmsdask.masks.esa_gml import rasterize_esa_cloud_mask, read_esa_cloud_polygons
from gmsdask.synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

from .conftest import data_path

TILE = "33UUU"
S2_55JGF = ("sentinel2", "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip")
LANDSAT_C1 = ("LC08_L1TP_016037_20170813_20170814_01_RT", "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz",
              "LE07_L1TP_104078_20130429_20161124_01_T1.tar", "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz")
NO_BUFFERS = {"cloud_buffer_m": 0.0, "shadow_buffer_m": 0.0, "snow_buffer_m": 0.0}


def f1(detected: np.ndarray, truth: np.ndarray) -> float:
    return 2.0 * (detected & truth).sum() / (detected.sum() + truth.sum())


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fmask")


@pytest.fixture(scope="module")
def s2_cloudy(out):
    return write_sentinel2_l1c(out / "s2", tile=TILE, size=(600, 600), seed=11, cloud_fraction=0.3, aot550=0.25)


@pytest.fixture(scope="module")
def landsat_cloudy(out):
    return write_landsat_l1(out / "l8", platform="LANDSAT_8", location=sentinel2_extent(TILE, (600, 600)),
                            seed=11, cloud_fraction=0.3, aot550=0.25)


@pytest.fixture(scope="module")
def landsat9(out):
    return write_landsat_l1(out / "l9", location=sentinel2_extent(TILE, (600, 600)), seed=11, cloud_fraction=0.3)


@pytest.fixture(scope="module")
def s2_low_sun(out):
    """Half cloud, October at 48 N: sun zenith 60 degrees, long shadows, many falling on other clouds."""
    return write_sentinel2_l1c(out / "s2_low_sun", tile="32UPU", size=(600, 600), seed=9, cloud_fraction=0.5,
                               acquisition_time="2024-10-20")


@pytest.mark.parametrize("product_name", ["s2_cloudy", "landsat_cloudy", "landsat9", "s2_low_sun"])
def test_synthetic_clouds_and_shadows_match_truth(product_name, request):
    product = request.getfixturevalue(product_name)
    masks = fmask_scene(open_scene(product.path), **NO_BUFFERS).compute()
    group = masks.attrs["fmask_grid_group"]
    assert group == ("r20m" if product.platform.startswith("SENTINEL") else "r30m")
    truth = product.scene[group]
    np.testing.assert_allclose(masks.x, truth.x)
    classes = masks.fmask.values
    cloud, shadow = truth.cloud.values, truth.shadow.values
    assert cloud.mean() > 0.1 and shadow.mean() > 0.05
    assert f1(classes == CLOUD, cloud) >= 0.9
    assert f1(classes == SHADOW, shadow) >= 0.6
    assert ((classes == NODATA) == truth.nodata.values).all()
    confidence = masks.cloud_confidence.values
    assert np.median(confidence[classes == CLOUD]) > 50 and np.median(confidence[classes == CLEAR]) < 10
    assert (confidence[classes == NODATA] == CONFIDENCE_NODATA).all()


def test_buffers_grow_clouds_by_their_distance_in_metres(s2_cloudy):
    scene = open_scene(s2_cloudy.path)
    bare = fmask_scene(scene, **NO_BUFFERS).fmask.values
    buffered = fmask_scene(scene, cloud_buffer_m=300.0, shadow_buffer_m=0.0, snow_buffer_m=0.0).fmask.values
    core = bare == CLOUD
    grown = buffered == CLOUD
    assert (grown | ~core).all() and grown.sum() > core.sum()
    distance_m = ndimage.distance_transform_edt(~core) * 20.0     # the r20m grid
    assert distance_m[grown].max() <= 300.0
    assert (grown[(distance_m <= 300.0) & (bare != NODATA)]).all()


def test_two_chunk_sizes_give_identical_masks(s2_cloudy, landsat_cloudy):
    for product, chunks in ((s2_cloudy, ((256, 256), (150, 210))), (landsat_cloudy, ((128, 128), (100, 70)))):
        first, second = (fmask_scene(open_scene(product.path, chunks=c)) for c in chunks)
        assert first.fmask.data.chunks != second.fmask.data.chunks
        xr.testing.assert_identical(first.compute(), second.compute())


def test_fmask_blocks_nest_the_chunks_of_every_input(s2_cloudy, monkeypatch):
    """Blocks cut from the 20 m chunks must not straddle the 10 m bands' chunks measured on the 20 m grid (10 m
    chunks of 126 px are 63 px there): otherwise each block waits for, and holds, two chunks of each 10 m input."""
    monkeypatch.setattr(fmask_module, "_BLOCK_PX", 64)
    _, inputs = fmask_module._inputs(open_scene(s2_cloudy.path, chunks=126))  # 20 m chunks: 126, 126, 48 px
    expected = ((63, 63, 63, 63, 48),) * 2
    assert {role: data.chunks for role, data in inputs.items()} == {role: expected for role in inputs}
    blue = inputs["blue"]  # B02 at 10 m, taken onto the 20 m grid in its own chunks: nothing to rechunk
    assert not [name for name in blue.dask.layers if name.startswith("rechunk")]
    # B10 at 60 m (one chunk of 100 px) repeated onto the 20 m grid in pieces no larger than a block (repeated
    # whole, it came out in blocks of half the scene, each held until every block cut from it was cut)
    repeated = {name: max(max(axis) for axis in layer.collection_annotations["chunks"])
                for name, layer in inputs["cirrus"].dask.layers.items()
                if name.startswith(("repeat", "concatenate")) and layer.collection_annotations}
    assert repeated and max(repeated.values()) <= 63, repeated


def test_fully_clouded_scene_has_no_clear_pixel(out):
    product = write_sentinel2_l1c(out / "overcast", tile=TILE, size=(120, 120), seed=3, cloud_fraction=1.0)
    classes = fmask_scene(open_scene(product.path)).fmask.values
    assert (classes == CLOUD).all()


def test_fmask_scene_builds_a_lazy_graph(landsat_cloudy):
    masks = fmask_scene(open_scene(landsat_cloudy.path, chunks=128))
    assert isinstance(masks.fmask.data, da.Array) and isinstance(masks.cloud_confidence.data, da.Array)
    assert masks.fmask.dtype == np.uint8 and masks.fmask.attrs["flag_values"] == [0, 1, 2, 3, 4, 5]
    assert masks.rio.crs.to_epsg() == landsat_cloudy.epsg


def test_scene_without_swir_is_refused(landsat_cloudy):
    scene = open_scene(landsat_cloudy.path)
    scene["r30m"] = xr.DataTree(scene["r30m"].to_dataset().drop_vars("B6"))
    with pytest.raises(ProcessingError, match="B6"):
        fmask_scene(scene)
    no_sun = open_scene(landsat_cloudy.path)
    del no_sun.attrs["sun_elevation_deg"]
    with pytest.raises(ProcessingError, match="sun_elevation_deg"):
        fmask_scene(no_sun)


def test_class_cover_of_the_mask(landsat_cloudy):
    masks = fmask_scene(open_scene(landsat_cloudy.path)).compute()
    cover = class_cover_pct(masks)
    classes = masks.fmask.values
    valid = classes != NODATA
    assert set(cover) == {"clear_land", "cloud", "cloud_shadow", "snow_ice", "water"}
    assert cover["cloud"] == pytest.approx(100 * (classes[valid] == CLOUD).mean(), abs=1e-3)
    assert sum(cover.values()) == pytest.approx(100.0, abs=0.01)


@pytest.mark.parametrize("name", LANDSAT_C1)
def test_real_landsat_clouds_agree_with_cfmask(name):
    scene = open_scene(data_path("landsat", "collection1", name))
    classes = fmask_scene(scene).fmask.values
    cfmask = product_qa_classes({"BQA": scene["r30m"].ds["BQA"].values})
    valid = (classes != NODATA) & (cfmask != NODATA)
    assert valid.mean() > 0.3
    agreement = ((classes == CLOUD) == (cfmask == CLOUD))[valid].mean()
    assert agreement >= 0.9, f"{name}: cloud agreement with CFMask {agreement:.3f}"


def test_real_sentinel2_clouds_agree_with_esa_polygons():
    product = data_path(*S2_55JGF)
    scene = open_scene(product)
    masks = fmask_scene(scene).compute()
    esa = rasterize_esa_cloud_mask(product, masks)
    # the polygons cover ESA's stated cloudy share of the tile
    assert esa.mean() * 100 == pytest.approx(scene.attrs["cloud_cover_pct"], abs=3.0)
    valid = masks.fmask.values != NODATA
    agreement = ((masks.fmask.values == CLOUD) == esa)[valid].mean()
    assert agreement >= 0.85, f"cloud agreement with ESA's MSK_CLOUDS_B00.gml {agreement:.3f}"


def test_real_clear_sentinel2_scene_stays_clear():
    """56JMM, 2018-06-29: ESA reports 0 % cloud and its GML has no cloud polygon."""
    product = data_path("sentinel2", "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
    masks = fmask_scene(open_scene(product)).compute()
    assert not rasterize_esa_cloud_mask(product, masks).any()
    cover = class_cover_pct(masks)
    assert all(type(value) is float for value in cover.values())
    assert cover["cloud"] < 1.0 and cover["clear_land"] > 95.0


def test_esa_polygons_of_a_product_without_clouds_file_are_an_error(tmp_path):
    from gmsdask.errors import MetadataError
    empty = tmp_path / "S2A_MSIL1C_20200101T000000_N0209_R001_T33UUU_20200101T000000.SAFE"
    empty.mkdir()
    (empty / "MTD_MSIL1C.xml").write_text("<x/>")
    with pytest.raises(MetadataError, match="MSK_CLOUDS_B00.gml"):
        read_esa_cloud_polygons(empty)


def test_product_qa_masks_follow_the_products_own_layers():
    landsat = open_scene(data_path("landsat", "collection1", LANDSAT_C1[3]))
    qa = product_qa_masks(landsat)
    np.testing.assert_array_equal(qa.fmask.values, product_qa_classes({"BQA": landsat["r30m"].ds["BQA"].values}))
    # Sentinel-2 L1C before baseline 04.00: ESA's GML polygons on the r20m grid
    product = data_path(*S2_55JGF)
    sentinel = open_scene(product)
    qa = product_qa_masks(sentinel)
    assert qa.attrs["fmask_qa_layers"] == ["MSK_CLOUDS_B00.gml"]
    grid = sentinel["r20m"].ds
    expected_cloud = rasterize_esa_cloud_mask(product, grid) & ~grid["nodata"].values
    np.testing.assert_array_equal(qa.fmask.values == CLOUD, expected_cloud)
    # L2A: SCL drives, on its 20 m grid (a corner window keeps this cheap)
    l2a = open_scene(data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"))
    qa = product_qa_masks(l2a)
    assert qa.attrs["fmask_grid_group"] == "r20m" and qa.attrs["fmask_qa_layers"][0] == "SCL"
    window = {"y": slice(2000, 2300), "x": slice(2000, 2300)}
    scl = l2a["r20m"].ds["SCL"].isel(window).values
    classes = qa.fmask.isel(window).values
    assert np.isin(scl, (8, 9, 10)).any()
    assert (classes[np.isin(scl, (8, 9, 10))] == CLOUD).all()
    # SCL's shadows stay shadows unless the MSK_CLASSI layers flag cloud there (cloud comes first)
    assert np.isin(classes[scl == 3], (SHADOW, CLOUD)).all() and (classes[scl == 3] == SHADOW).mean() > 0.5


def test_mask_on_grid_gives_each_fine_pixel_the_class_of_its_coarse_pixel(s2_cloudy):
    scene = open_scene(s2_cloudy.path)
    masks = fmask_scene(scene)
    fine = mask_on_grid(masks, scene["r10m"].ds).compute()
    assert fine.fmask.shape == (600, 600)
    np.testing.assert_array_equal(fine.fmask.values, np.repeat(np.repeat(masks.fmask.values, 2, 0), 2, 1))
    np.testing.assert_array_equal(fine.x, scene["r10m"].ds.x)


def test_mask_scene_blanks_clouds_and_shadows_on_every_grid_before_resampling(s2_cloudy):
    scene = open_scene(s2_cloudy.path)
    masks = fmask_scene(scene)
    masked = mask_scene(scene, masks)
    assert masked.attrs["cloud_mask_classes"] == [CLOUD, SHADOW] and masked.attrs["cloud_mask_group"] == "r20m"
    assert set(masked["r20m"].ds.data_vars) >= {"fmask", "cloud_confidence"}
    assert isinstance(masked["r10m"].ds["B04"].data, da.Array)
    classes_20m = masks.fmask.values
    hidden_10m = np.isin(np.repeat(np.repeat(classes_20m, 2, 0), 2, 1), (CLOUD, SHADOW))
    before, after = scene["r10m"].ds, masked["r10m"].ds
    for band in ("B02", "B08"):
        values = after[band].values
        assert np.isnan(values[hidden_10m]).all()
        np.testing.assert_array_equal(values[~hidden_10m], before[band].values[~hidden_10m])
    assert after["nodata"].values[hidden_10m].all()
    # the 60 m group: each pixel takes the class of the 20 m pixel holding its centre
    b10 = masked["r60m"].ds["B10"].values
    assert np.isnan(b10[np.isin(classes_20m[1::3, 1::3], (CLOUD, SHADOW))]).all()
    assert masked["angles"].ds.identical(scene["angles"].ds)


def test_mask_scene_blanks_each_band_block_in_its_own_task(s2_cloudy):
    """On grids nested in the mask's (10 m and 20 m in Fmask's 20 m), each band block looks its pixels up in the
    class layer inside its own task: no mask block is made once and held for the group's other bands. The values
    are those of the group-wide mask (the coarser 60 m group keeps it)."""
    scene = open_scene(s2_cloudy.path, chunks=(128, 96))
    masks = fmask_scene(scene)
    nested = {group: nested_within(masks.odc.geobox, scene[group].ds.odc.geobox)
              for group in ("r10m", "r20m", "r60m")}
    assert nested == {"r10m": (0, 0, 2), "r20m": (0, 0, 1), "r60m": None}
    masked = mask_scene(scene, masks)
    classes = masks.fmask.compute()
    # two bands of a group optimized together share no task but the class layer joined into one array
    b02, b03 = dask.optimize(masked["r10m"].ds["B02"].data, masked["r10m"].ds["B03"].data)
    graph = {**b02.__dask_graph__(), **b03.__dask_graph__()}
    needs = [set().union(*(get_dependencies(graph, key) for key in flatten(band.__dask_keys__())))
             for band in (b02, b03)]
    (shared,) = needs[0] & needs[1]
    reached, todo = set(), [shared]
    while todo:
        reached |= (new := get_dependencies(graph, todo.pop()) - reached)
        todo.extend(new)
    assert set(flatten(masks.fmask.data.__dask_keys__())) <= reached
    for group, band, k in (("r10m", "B02", 2), ("r10m", "B03", 2), ("r20m", "B05", 1)):
        hidden = np.isin(np.repeat(np.repeat(classes.values, k, 0), k, 1), (CLOUD, SHADOW))
        values, before = masked[group].ds[band].values, scene[group].ds[band].values
        assert hidden.any() and np.isnan(values[hidden]).all()
        np.testing.assert_array_equal(values[~hidden], before[~hidden])


@pytest.mark.parametrize("source_m,target_m", [(10.0, 20.0), (20.0, 10.0), (20.0, 60.0), (60.0, 20.0), (20.0, 30.0)])
def test_nearest_lookups_between_nested_grids_stay_per_block(source_m, target_m):
    """Bands and masks brought onto another grid of the product by nearest neighbour: the same values as NumPy's
    fancy indexing, and between nested grids (every k-th pixel, or each pixel k times) without the tasks of
    Dask's shuffle-based take."""
    values = np.random.default_rng(0).random((120, 120))
    source = np.arange(120) * source_m + source_m / 2
    target = np.arange(int(120 * source_m / target_m)) * target_m + target_m / 2  # one origin, as a product's grids
    rows = _nearest_index(target, source)
    taken = _take_nearest(da.from_array(values, chunks=(17, 23)), rows, rows)
    np.testing.assert_array_equal(taken.compute(), values[rows, :][:, rows])
    shuffles = {key_split(k) for k in dict(taken.__dask_graph__()) if "shuffle" in key_split(k)}
    nested = (target_m / source_m).is_integer() or (source_m / target_m).is_integer()
    assert (not shuffles) if nested else shuffles, shuffles
