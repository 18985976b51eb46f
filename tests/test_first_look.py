"""The first look: a product read at its JPEG 2000 resolution levels (``open_scene(..., overview_m=...)``), and
Fmask's scene statistics taken from it for large scenes, so that no per-pixel block waits for the whole scene.

The synthetic products here are small; the module constant that decides when a scene is large is lowered, so
that the same path a whole tile takes runs on them."""

from __future__ import annotations

import numpy as np
import pytest

from gmsdask.algorithms.fmask_qa import CLOUD, NODATA
from gmsdask.io import open_scene
from gmsdask.io.raster import raster_info
from gmsdask.io.scene import overview_factor
from gmsdask.levels import l1c
from gmsdask.masks import fmask, fmask_scene
from gmsdask.synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

TILE = "33UUU"
NO_BUFFERS = {"cloud_buffer_m": 0.0, "shadow_buffer_m": 0.0, "snow_buffer_m": 0.0}


def f1(detected: np.ndarray, truth: np.ndarray) -> float:
    return 2.0 * (detected & truth).sum() / (detected.sum() + truth.sum())


@pytest.fixture(scope="module")
def s2(tmp_path_factory):
    return write_sentinel2_l1c(tmp_path_factory.mktemp("look") / "s2", tile=TILE, size=(600, 600), seed=11,
                               cloud_fraction=0.3, aot550=0.25)


@pytest.fixture(scope="module")
def landsat(tmp_path_factory):
    # the parameters of test_fmask_scenes' product: its 6S runs are in the test cache
    return write_landsat_l1(tmp_path_factory.mktemp("look") / "l8", platform="LANDSAT_8",
                            location=sentinel2_extent(TILE, (600, 600)), seed=11, cloud_fraction=0.3, aot550=0.25)


def test_overview_factor_is_the_coarsest_power_of_two_not_coarser_than_asked():
    assert overview_factor(10.0, 80.0) == 8
    assert overview_factor(20.0, 80.0) == 4
    assert overview_factor(60.0, 80.0) == 1
    assert overview_factor(20.0, 79.0) == 2
    assert overview_factor(20.0, 10.0) == 1


def test_first_look_reads_the_overviews_on_an_exact_coarser_grid(s2):
    native = open_scene(s2.path)
    look = open_scene(s2.path, overview_m=40.0)
    for group, factor in (("r10m", 4), ("r20m", 2)):
        full, coarse = native[group], look[group]
        assert coarse.sizes["y"] == full.sizes["y"] // factor and coarse.sizes["x"] == full.sizes["x"] // factor
        # pixel centres of the coarse grid: the centres of factor x factor native blocks
        step = float(full.x[1] - full.x[0])
        np.testing.assert_allclose(coarse.x.values[:3],
                                   full.x.values[0] - step / 2 + step * factor * (np.arange(3) + 0.5))
        band = coarse["B11" if group == "r20m" else "B04"]
        assert band.attrs["decoded_from_overview"] and band.attrs["overview_m"] == 40.0
        # the overview is the wavelet low-pass of the band: close to the block mean, not a copy of a pixel
        ny, nx = coarse.sizes["y"] * factor, coarse.sizes["x"] * factor
        values = full[band.name].values[:ny, :nx]
        block_mean = values.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
        difference = np.nanmedian(np.abs(band.values - block_mean))
        assert difference < 0.1 * np.nanmedian(block_mean)
        assert not np.allclose(band.values, values[factor // 2::factor, factor // 2::factor])
    assert look["r60m"].sizes == native["r60m"].sizes  # 60 m is finer than 40 m asked: read at its own grid


def test_a_file_without_overviews_says_it_was_decoded_in_full(landsat):
    look = open_scene(landsat.path, overview_m=60.0)
    band = look["r30m"]["B4"]
    assert band.attrs["decoded_from_overview"] is False
    info = raster_info(str(next(landsat.path.glob("*_B4.TIF"))))
    assert info.overview_factors == () and not info.reduced(2).from_overviews
    native = open_scene(landsat.path)["r30m"]["B4"].values
    # GDAL decimates (nearest) where the file has no overview
    assert band.shape == (native.shape[0] // 2, native.shape[1] // 2)
    assert np.isfinite(band.values).mean() > 0.5


def test_fmask_statistics_from_the_first_look_give_the_same_clouds(s2, monkeypatch):
    scene = open_scene(s2.path)
    strided = fmask_scene(scene, **NO_BUFFERS).compute()
    assert strided.attrs["fmask_statistics_from"] == "every pixel"
    # the statistics of a "large" scene: any scene of more than 4 x 5000 pixels
    monkeypatch.setattr(fmask, "_STATISTICS_SAMPLES", 5000)
    look_m = fmask.first_look_m(scene)
    assert look_m == 80.0  # 300 x 300 px at 20 m: 75 x 75 at 80 m is the coarsest with >= 5000 pixels
    looked = fmask_scene(scene, **NO_BUFFERS, first_look=open_scene(s2.path, overview_m=look_m)).compute()
    assert looked.attrs["fmask_statistics_from"] == "first look at 80 m (overviews)"
    truth = s2.scene["r20m"]
    classes = looked.fmask.values
    assert f1(classes == CLOUD, truth.cloud.values) >= 0.9
    assert ((classes == NODATA) == truth.nodata.values).all()
    assert (classes == strided.fmask.values).mean() > 0.98


def test_fmask_without_overviews_samples_the_scene_itself(landsat, monkeypatch):
    monkeypatch.setattr(fmask, "_STATISTICS_SAMPLES", 500)
    scene = open_scene(landsat.path)
    masks = fmask_scene(scene, first_look=open_scene(landsat.path, overview_m=fmask.first_look_m(scene)))
    assert masks.attrs["fmask_statistics_from"].startswith("1 in ")


def test_l1c_opens_the_first_look_of_a_large_scene_only(s2, monkeypatch):
    scene = open_scene(s2.path)
    assert l1c._first_look(scene) is None  # 90 000 Fmask pixels: the scene samples itself
    monkeypatch.setattr(fmask, "_STATISTICS_SAMPLES", 5000)
    look = l1c._first_look(scene)
    assert look["r20m"].sizes["x"] == 75 and look["r20m"]["B11"].attrs["decoded_from_overview"]
    without_path = scene.copy()
    del without_path.attrs["product_path"]
    assert l1c._first_look(without_path) is None
