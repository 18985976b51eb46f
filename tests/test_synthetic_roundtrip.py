"""Synthetic products through gmsdask's own readers and levels, against their known truth."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from gmsdask import set_config
from gmsdask.io import open_scene
from gmsdask.levels.l2a import geometric_homogenization
from gmsdask.mgrs_grid import tile_geobox
from gmsdask.synthetic import (band_atmosphere, relative_azimuth, sentinel2_extent, surface_reflectance,
                               write_landsat_l1, write_sentinel2_l1c, write_sentinel2_l2a)

from .conftest import data_path

TILE = "33UUU"
SIZE = (600, 600)
TIME = datetime(2024, 6, 1, 10, 20, tzinfo=timezone.utc)
SHIFT_M = (30.0, -15.0)


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    sentinel2 = write_sentinel2_l1c(folder, platform="SENTINEL_2B", tile=TILE, acquisition_time=TIME, size=SIZE,
                                    cloud_fraction=0.15, seed=11)
    sentinel2_l2a = write_sentinel2_l2a(folder / "l2a", platform="SENTINEL_2A", tile=TILE, acquisition_time=TIME,
                                        size=SIZE, cloud_fraction=0.15, seed=11)
    landsat = write_landsat_l1(folder, platform="LANDSAT_9", location=sentinel2_extent(TILE, SIZE),
                               acquisition_time=TIME.replace(minute=5), shift_m=SHIFT_M, cloud_fraction=0.0,
                               seed=11, archive=True)
    return {"s2": sentinel2, "s2_l2a": sentinel2_l2a, "l9": landsat}


def _structure(scene):
    return (set(scene.attrs), sorted(scene.children), list(scene.attrs["band_names"]))


def test_synthetic_and_real_products_of_a_kind_have_the_same_structure(products):
    real_l1c = open_scene(data_path("sentinel2", "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip"))
    synthetic_l1c = open_scene(products["s2"].path)
    assert _structure(synthetic_l1c) == _structure(real_l1c)
    for group in ("r10m", "r20m", "r60m"):
        assert [v for v in synthetic_l1c[group].ds.data_vars if v.startswith("B")] == \
               [v for v in real_l1c[group].ds.data_vars if v.startswith("B")]

    real_l2a = open_scene(data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"))
    synthetic_l2a = open_scene(products["s2_l2a"].path)
    assert set(synthetic_l2a.attrs) == set(real_l2a.attrs)
    assert synthetic_l2a.attrs["processing_level"] == real_l2a.attrs["processing_level"] == "L2A"
    assert {"SCL", "MSK_CLDPRB"} <= set(synthetic_l2a["r20m"].ds.data_vars)

    real_landsat = open_scene(data_path("landsat", "collection1", "LC08_L1TP_016037_20170813_20170814_01_RT"))
    synthetic_landsat = open_scene(products["l9"].path)
    keys, groups, bands = _structure(synthetic_landsat)
    assert (keys, groups, bands) == _structure(real_landsat)
    assert synthetic_landsat.attrs["collection"] == 2 and real_landsat.attrs["collection"] == 1


def test_sentinel2_toa_inverts_to_the_surface_truth_within_quantization(products):
    product = products["s2"]
    scene = open_scene(product.path)
    truth_scene = product.scene["r10m"]
    # soft cloud edges and partial shadows are outside the boolean masks: use the continuous layers
    clear = (truth_scene["cloud_opacity"].values == 0) & (truth_scene["shadow_fraction"].values == 0)
    for band in ("B02", "B04", "B08"):
        toa = scene["r10m"].ds[band].values
        np.testing.assert_allclose(toa, product.toa["r10m"][band].values, atol=0.5e-4 + 1e-7)
        terms = band_atmosphere(product.platform, band, aot550=product.aot550,
                                sun_zenith_deg=product.sun_zenith_deg, view_zenith_deg=product.view_zenith_deg,
                                relative_azimuth_deg=relative_azimuth(product.sun_azimuth_deg,
                                                                      product.view_azimuth_deg))
        surface = surface_reflectance(toa.astype(np.float64), terms)
        truth = product.surface_reflectance["r10m"][band].values
        # half a DN of TOA, amplified by the atmosphere's inversion (1 / (T_down T_up) < 2)
        error = np.abs(surface - truth)[clear & np.isfinite(truth)]
        assert error.size > 0.5 * clear.size and error.max() < 1e-4


def test_landsat_toa_matches_the_truth_up_to_the_per_pixel_sun(products):
    product = products["l9"]
    scene = open_scene(product.path)
    for band in ("B2", "B4", "B5"):
        toa = scene["r30m"].ds[band].values
        truth = product.toa["r30m"][band].values
        valid = np.isfinite(truth) & np.isfinite(toa)
        assert np.array_equal(np.isfinite(toa), np.isfinite(truth)), "fill pixels are NaN, data pixels are not"
        ratio = toa[valid] / truth[valid]
        # the writer encodes with the scene-mean sun elevation, the reader divides by each pixel's own:
        # across a ~10 km scene that differs by < 0.1 degree, i.e. < 0.2 % of the reflectance
        assert np.median(ratio) == pytest.approx(1.0, abs=1e-3)
        assert np.abs(ratio - 1).max() < 2e-3


def _phase_correlation_shift(reference: np.ndarray, moving: np.ndarray, *, upsample: int = 50
                             ) -> tuple[float, float]:
    """(rows, cols) by which ``moving``'s content is displaced relative to ``reference``, to 1/upsample px.

    Phase correlation, then the correlation surface evaluated on a fine grid around its integer peak by a
    matrix DFT (Guizar-Sicairos et al. 2008), which has none of the whole-pixel bias of a parabola fit.
    """
    reference = (reference - reference.mean()) * np.outer(np.hanning(reference.shape[0]), np.hanning(reference.shape[1]))
    moving = (moving - moving.mean()) * np.outer(np.hanning(moving.shape[0]), np.hanning(moving.shape[1]))
    spectrum = np.fft.fft2(moving) * np.conj(np.fft.fft2(reference))
    spectrum /= np.maximum(np.abs(spectrum), 1e-12)
    correlation = np.fft.ifft2(spectrum).real
    peak = np.array(np.unravel_index(np.argmax(correlation), correlation.shape), dtype=float)
    sizes = np.array(correlation.shape)
    peak = np.where(peak > sizes / 2, peak - sizes, peak)
    offsets = np.arange(-1.5, 1.5 + 1e-9, 1.0 / upsample)
    kernels = [np.exp(2j * np.pi * np.outer(peak[axis] + offsets, np.fft.fftfreq(sizes[axis])))
               for axis in (0, 1)]
    fine = (kernels[0] @ spectrum @ kernels[1].T).real
    row, col = np.unravel_index(np.argmax(fine), fine.shape)
    return float(peak[0] + offsets[row]), float(peak[1] + offsets[col])


def _red_on_tile_grid(scene, band: str, shift_m=(0.0, 0.0)) -> np.ndarray:
    cfg = set_config(target_gsd=30.0, tiling_block_size_XY=(256, 256), mask_clouds_l2a=False)  # all ground
    target = tile_geobox(TILE, 30.0)
    homogenized = geometric_homogenization(scene, cfg, target=target, shift_m=shift_m)
    return homogenized["r30m"].ds[band].values


def test_requested_shift_between_sensors_is_measured_and_removed_by_l2a(products):
    sentinel2 = open_scene(products["s2"].path)
    landsat = open_scene(products["l9"].path)
    red_s2 = _red_on_tile_grid(sentinel2, "B04")
    red_l9 = _red_on_tile_grid(landsat, "B4")
    both = np.isfinite(red_s2) & np.isfinite(red_l9)
    rows, cols = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
    window = (slice(rows[0] + 4, rows[0] + 4 + 128), slice(cols[0] + 4, cols[0] + 4 + 128))
    assert both[window].all(), "a 128 x 128 px (3.8 km) window of common ground"
    rows_shift, cols_shift = _phase_correlation_shift(red_s2[window], red_l9[window])
    # Landsat's content is displaced by SHIFT_M = (east, north) metres: +x columns, -y rows on a north-up grid
    assert cols_shift * 30 == pytest.approx(SHIFT_M[0], abs=4.0)
    assert -rows_shift * 30 == pytest.approx(SHIFT_M[1], abs=4.0)
    corrected = _red_on_tile_grid(landsat, "B4", shift_m=SHIFT_M)
    residual_rows, residual_cols = _phase_correlation_shift(red_s2[window], corrected[window])
    assert abs(residual_cols * 30) < 4.0 and abs(residual_rows * 30) < 4.0
