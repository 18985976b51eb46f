"""Fmask building blocks (pure numpy): spectral tests, buffers in metres, shadows, product QA classes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gmsdask.algorithms.fmask_cloud import (
    FmaskParameters,
    dilate_m,
    disk_footprint,
    neighbourhood_radius_px,
)
from gmsdask.algorithms.fmask_probability import scene_statistics
from gmsdask.algorithms.fmask_qa import (
    CLEAR,
    CLOUD,
    NODATA,
    SHADOW,
    SNOW,
    WATER,
    product_qa_classes,
)
from gmsdask.algorithms.fmask_shadow import (
    ShadowMatch,
    edge_shadows,
    fill_holes,
    match_shadows,
    potential_shadow,
)
from gmsdask.algorithms.fmask_spectral import (
    FmaskInputs,
    cloud_displacement_index,
    spectral_features,
)
from gmsdask.errors import ConfigError

# TOA reflectance (blue, green, red, nir, swir1, swir2) and brightness temperature (K) of typical surfaces
SURFACES = {
    "cloud": ((0.45, 0.44, 0.43, 0.45, 0.35, 0.25), 260.0),
    "vegetation": ((0.05, 0.08, 0.05, 0.40, 0.20, 0.08), 296.0),
    "water": ((0.08, 0.06, 0.04, 0.02, 0.01, 0.005), 290.0),
    "snow": ((0.80, 0.78, 0.75, 0.70, 0.05, 0.02), 265.0),
    "bare_soil": ((0.10, 0.13, 0.17, 0.25, 0.35, 0.30), 306.0),
}


def inputs_of(names: list[str], with_bt: bool = True) -> FmaskInputs:
    bands = np.array([SURFACES[n][0] for n in names], dtype=np.float32).T[:, None, :]  # (6, 1, n)
    bt = np.array([[SURFACES[n][1] for n in names]], dtype=np.float32)
    return FmaskInputs(*bands, bt=bt if with_bt else None)


def test_spectral_tests_separate_typical_surfaces():
    names = list(SURFACES)
    features = spectral_features(inputs_of(names))
    by_name = lambda mask: {n for n, flag in zip(names, mask[0]) if flag}
    assert by_name(features.potential_cloud) == {"cloud"}
    assert by_name(features.water) == {"water"}
    assert by_name(features.snow) == {"snow"}
    # snow needs a cold surface where a thermal band exists; without one, the reflectance tests decide
    warm = inputs_of(["snow"])
    warm = FmaskInputs(*(getattr(warm, k) for k in ("blue", "green", "red", "nir", "swir1", "swir2")),
                       bt=np.array([[290.0]], dtype=np.float32))
    assert not spectral_features(warm).snow.any()
    assert spectral_features(inputs_of(["snow"], with_bt=False)).snow.all()


def test_no_data_is_never_cloud_water_or_snow():
    bands = inputs_of(["cloud", "water", "snow"])
    blue = bands.blue.copy()
    blue[:] = np.nan
    features = spectral_features(FmaskInputs(blue, bands.green, bands.red, bands.nir, bands.swir1, bands.swir2,
                                             bt=bands.bt))
    assert not (features.valid.any() or features.potential_cloud.any() or features.water.any()
                or features.snow.any())


def test_scene_statistics_need_enough_clear_area():
    many = inputs_of(["vegetation"] * 50 + ["cloud"] * 50)
    stats = scene_statistics(spectral_features(many), sample_pixel_m=1000.0, threshold=0.175, cirrus_weight=0.3)
    assert stats.enough_clear and stats.land_bt_low == pytest.approx(296.0)
    # a million 30 m pixels: clear sky must cover 0.1 % of them (Fmask's 36 km2 would be 40 000 pixels)
    for clear, enough in ((1500, True), (500, False)):
        scene = inputs_of(["vegetation"] * clear + ["cloud"] * (1_000_000 - clear))
        stats = scene_statistics(spectral_features(scene), sample_pixel_m=30.0, threshold=0.175, cirrus_weight=0.3)
        assert stats.enough_clear is enough
    # fewer than 20 clear pixels are never enough for percentiles
    few = scene_statistics(spectral_features(inputs_of(["vegetation"] * 10 + ["cloud"] * 5)),
                           sample_pixel_m=5000.0, threshold=0.175, cirrus_weight=0.3)
    assert not few.enough_clear


def test_buffers_are_metres_whatever_the_pixel_size():
    assert disk_footprint(300.0, 900.0).shape == (1, 1)          # below one pixel: no buffer
    assert disk_footprint(300.0, 30.0).shape == (21, 21)
    point = np.zeros((21, 21), dtype=bool)
    point[10, 10] = True
    grown = dilate_m(point, 300.0, 100.0)
    assert grown.sum() == 29                                    # integer points with x^2 + y^2 <= 9
    rows, cols = np.nonzero(grown)
    assert np.hypot(rows - 10, cols - 10).max() * 100.0 <= 300.0
    # the chunk overlap grows as pixels shrink
    params = FmaskParameters()
    assert neighbourhood_radius_px(params, 10.0, with_cdi=True) > neighbourhood_radius_px(params, 30.0, with_cdi=False)


def test_parameters_reject_bad_distances():
    with pytest.raises(ConfigError, match="cloud_buffer_m"):
        FmaskParameters(cloud_buffer_m=-1.0)
    with pytest.raises(ConfigError, match="max_cloud_height_m"):
        FmaskParameters(min_cloud_height_m=5000.0, max_cloud_height_m=1000.0)


def test_cloud_displacement_index_sees_parallax():
    rng = np.random.default_rng(0)
    nir_narrow = np.full((40, 40), 0.5, dtype=np.float32)
    # a cloud: B08 and B8A are seen a little apart in time, so their ratio has structure; B07 does not
    structured = (nir_narrow * (1 + 0.05 * rng.standard_normal((40, 40)))).astype(np.float32)
    smooth = (nir_narrow * (1 + 0.001 * rng.standard_normal((40, 40)))).astype(np.float32)
    cloud = cloud_displacement_index(smooth, structured, nir_narrow, pixel_m=20.0)
    ground = cloud_displacement_index(structured, structured, nir_narrow, pixel_m=20.0)
    assert np.nanmedian(cloud) > 0.9  # B08/B8A varies more than B07/B8A
    assert abs(np.nanmedian(ground)) < 0.3


def test_fill_holes_finds_dark_basins_only():
    image = np.full((30, 30), 0.3)
    image[10:15, 10:15] = 0.1           # a closed dark basin: a shadow
    image[0:5, 20:30] = 0.1             # dark but open to the border: not a hole
    filled = fill_holes(image, border_value=0.3)
    assert np.allclose(filled[10:15, 10:15], 0.3)
    shadow = potential_shadow(image, image, np.ones(image.shape, bool), nir_background=0.3, swir1_background=0.3)
    expected = np.zeros(image.shape, bool)
    expected[10:15, 10:15] = True
    expected[0:5, 20:30] = True         # the border is padded with the clear-land background (Fmask)
    np.testing.assert_array_equal(shadow, expected)


def test_nir_and_swir1_holes_are_filled_side_by_side(monkeypatch):
    """The scene-wide shadow task fills NIR and SWIR1 at the same time (the flood releases the GIL): a fill
    that waited for the other would break the barrier. The result is the one of fills in sequence."""
    import threading

    from gmsdask.algorithms import fmask_shadow

    image = np.full((30, 30), 0.3)
    image[10:15, 10:15] = 0.1
    expected = potential_shadow(image, image, np.ones(image.shape, bool), nir_background=0.3, swir1_background=0.3)
    both = threading.Barrier(2, timeout=20)
    real_fill = fmask_shadow.fill_holes

    def meeting_fill(values, border_value, valid=None):
        both.wait()
        return real_fill(values, border_value, valid)
    monkeypatch.setattr(fmask_shadow, "fill_holes", meeting_fill)
    shadow = potential_shadow(image, image, np.ones(image.shape, bool), nir_background=0.3, swir1_background=0.3)
    np.testing.assert_array_equal(shadow, expected)


@pytest.mark.parametrize("shape", [(3, 3), (4, 9), (57, 43), (240, 310)])
def test_priority_flood_equals_the_reconstruction_by_erosion(shape):
    from skimage.morphology import reconstruction

    from gmsdask.algorithms.priority_flood import fill_holes_from_border

    rng = np.random.default_rng(sum(shape))
    smooth = np.cumsum(np.cumsum(rng.standard_normal(shape), axis=0), axis=1)  # large basins and ridges
    for image in (rng.random(shape), np.round(rng.random(shape) * 4) / 4, smooth):  # noise, plateaus, relief
        marker = image.copy()
        marker[1:-1, 1:-1] = image.max()
        expected = reconstruction(marker, image, method="erosion")  # scikit-image: the reference operator
        np.testing.assert_array_equal(fill_holes_from_border(image), expected)
    with pytest.raises(ValueError, match="finite"):
        fill_holes_from_border(np.full((5, 5), np.nan))


def test_priority_flood_fills_in_place_only_when_asked_and_its_index_width_does_not_matter():
    from gmsdask.algorithms.priority_flood import _flood, fill_holes_from_border

    rng = np.random.default_rng(3)
    image = np.cumsum(np.cumsum(rng.standard_normal((60, 70)), axis=0), axis=1).astype(np.float32)
    kept = image.copy()
    filled = fill_holes_from_border(image)
    np.testing.assert_array_equal(image, kept)          # the caller's image is left alone by default
    assert (filled > image).any()                      # the relief has basins
    wide = image.copy()
    _flood(wide, np.empty(0, dtype=np.int64))           # 64-bit queues (grids of 2**31 pixels or more)
    np.testing.assert_array_equal(wide, filled)
    assert fill_holes_from_border(image, overwrite=True) is image
    np.testing.assert_array_equal(image, filled)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_flood_per_band_serves_every_background(dtype):
    """The fill with background b is max(b, the fill with the lowest background), exactly; so the two passes of
    potential_shadow flood each band once and equal fills with each pass's background."""
    from gmsdask.algorithms.fmask_shadow import _LOWEST, _SHADOW_DARKENING

    rng = np.random.default_rng(7)
    relief = np.cumsum(np.cumsum(rng.standard_normal((80, 90)), axis=0), axis=1)
    nir = (0.25 + 0.01 * relief).astype(dtype)
    swir1 = (0.2 + 0.012 * np.flip(relief, 1)).astype(dtype)
    nir[30:33, 40:60] = np.nan
    valid = np.ones(nir.shape, bool)
    valid[:, 80:] = False
    lowest = fill_holes(nir, _LOWEST, valid)
    for background in (float(np.nanmin(nir)) - 1, float(np.nanpercentile(nir, 17.5)), float(np.nanmax(nir)) + 1):
        filled = fill_holes(nir, background, valid)
        assert filled.dtype == nir.dtype
        np.testing.assert_array_equal(np.maximum(lowest, lowest.dtype.type(background)), filled)

    def holes(b_nir, b_swir):  # one pass as written before: a flood per band and background
        dark = [fill_holes(band, b, valid) - np.where(valid & np.isfinite(band), band, b)
                for band, b in ((nir, b_nir), (swir1, b_swir))]
        return (np.minimum(*dark) > _SHADOW_DARKENING) & valid
    b_nir, b_swir = float(np.nanpercentile(nir, 17.5)), float(np.nanpercentile(swir1, 17.5))
    first = holes(b_nir, b_swir)
    lit = valid & ~first & np.isfinite(nir) & np.isfinite(swir1)
    expected = holes(float(np.percentile(nir[lit], 17.5)), float(np.percentile(swir1[lit], 17.5)))
    assert first.any() and expected.any() and (expected != first).any()
    np.testing.assert_array_equal(potential_shadow(nir, swir1, valid, nir_background=b_nir, swir1_background=b_swir,
                                                   clear_land=valid), expected)


def test_potential_shadow_takes_pixels_outside_valid_as_background():
    """No data (``valid`` False) pads the fill like the border does, whatever values it holds."""
    image = np.full((30, 30), 0.3, dtype=np.float32)
    image[10:15, 10:15] = 0.1
    valid = np.ones(image.shape, bool)
    valid[:, 25:] = False
    expected = potential_shadow(np.where(valid, image, np.nan), np.where(valid, image, np.nan), valid,
                                nir_background=0.3, swir1_background=0.3)
    garbage = np.where(valid, image, np.float32(-5.0))  # a deep "basin" where there is no data
    shadow = potential_shadow(garbage, garbage, valid, nir_background=0.3, swir1_background=0.3)
    np.testing.assert_array_equal(shadow, expected)
    assert shadow[10:15, 10:15].all() and not shadow[:, 25:].any()


def test_potential_shadow_background_is_taken_again_without_the_shadows_found():
    # a fifth of the land lies in shadow, so the clear-land 17.5th percentile (Fmask's padding) is a shadow
    # level, and a shadow touching the image edge drains away; clear land outside the holes found does not
    image = np.full((60, 60), 0.3)
    for row, col in ((5, 5), (5, 25), (25, 5), (25, 25), (5, 45)):
        image[row:row + 12, col:col + 12] = 0.12
    image[55:60, 20:40] = 0.12
    valid = np.ones(image.shape, bool)
    background = float(np.percentile(image, 17.5))
    assert background == pytest.approx(0.12)
    once = potential_shadow(image, image, valid, nir_background=background, swir1_background=background)
    twice = potential_shadow(image, image, valid, nir_background=background, swir1_background=background,
                             clear_land=valid)
    assert once[5:17, 5:17].all() and not once[55:60, 20:40].any()
    np.testing.assert_array_equal(twice, image < 0.2)


def test_edge_shadows_are_the_potential_shadows_at_the_sun_side_edge():
    potential = np.zeros((40, 40), bool)
    potential[35:40, 5:10] = True       # touches the bottom edge: the sun is in the south-east
    potential[0:5, 5:10] = True         # touches the top edge, away from the sun
    potential[10:15, 35:40] = True      # touches the right (east) edge
    potential[20:25, 20:25] = True      # inside, next to no data to its south
    potential[5:10, 20:25] = True       # inside, next to no data to its north
    valid = np.ones(potential.shape, bool)
    valid[25:27, 20:25] = False
    valid[3:5, 20:25] = False
    cloud = np.zeros(potential.shape, bool)
    found = edge_shadows(potential, cloud, valid, sun_azimuth_deg=135.0, reach_px=100.0)
    expected = np.zeros(potential.shape, bool)
    expected[35:40, 5:10] = expected[10:15, 35:40] = expected[20:25, 20:25] = True
    np.testing.assert_array_equal(found, expected)
    # with the sun due south only the bottom edge and the no data to the south count
    south = edge_shadows(potential, cloud, valid, sun_azimuth_deg=180.0, reach_px=100.0)
    expected[10:15, 35:40] = False
    np.testing.assert_array_equal(south, expected)
    # only as far from the edge as the clouds' shadows reach, and nothing when no cloud was matched
    near = edge_shadows(potential, cloud, valid, sun_azimuth_deg=180.0, reach_px=2.0)
    assert near[38:40, 5:10].all() and not near[35:38].any() and near[23:25, 20:25].all()
    assert not edge_shadows(potential, cloud, valid, sun_azimuth_deg=180.0, reach_px=0.0).any()


def test_typical_cloud_height_is_the_pixel_weighted_median():
    empty = np.zeros((2, 2), bool)
    # specks of one pixel matched at any height do not move it
    assert ShadowMatch(empty, 4, 4, (200.0, 1600.0, 9000.0, 1700.0), (1, 100, 1, 50)).typical_height_m == 1600.0
    assert ShadowMatch(empty, 0, 0, ()).typical_height_m == 0.0


def test_shadow_matching_recovers_the_cloud_height():
    pixel, zenith, azimuth, height = 30.0, 40.0, 135.0, 1500.0
    cloud = np.zeros((200, 200), dtype=bool)
    yy, xx = np.mgrid[:200, :200]
    cloud |= (yy - 60) ** 2 + (xx - 70) ** 2 < 15 ** 2
    cloud |= (yy - 150) ** 2 + (xx - 40) ** 2 < 8 ** 2
    reach = height * math.tan(math.radians(zenith)) / pixel
    d_row, d_col = reach * math.cos(math.radians(azimuth)), -reach * math.sin(math.radians(azimuth))
    true_shadow = np.zeros_like(cloud)
    rows, cols = np.nonzero(cloud)
    true_shadow[np.rint(rows + d_row).astype(int), np.rint(cols + d_col).astype(int)] = True
    true_shadow &= ~cloud
    result = match_shadows(cloud, true_shadow, np.ones_like(cloud), pixel_m=pixel, sun_zenith_deg=zenith,
                           sun_azimuth_deg=azimuth)
    assert result.objects == 2 and result.matched == 2
    step = pixel / (math.tan(math.radians(zenith)) * math.sqrt(0.5))
    assert all(abs(h - height) <= step for h in result.heights_m)
    f1 = 2 * (result.shadow & true_shadow).sum() / (result.shadow.sum() + true_shadow.sum())
    assert f1 > 0.95


def _numpy_match(cloud, potential, valid, *, pixel_m, sun_zenith_deg, sun_azimuth_deg, similarity=0.3):
    """The shadow matching as numpy scored it before the compiled kernels (2026-11-30), per object and height."""
    from scipy import ndimage

    labels, _count = ndimage.label(cloud, structure=np.ones((3, 3), dtype=bool))
    reach = math.tan(math.radians(min(sun_zenith_deg, 85.0)))
    azimuth = math.radians(sun_azimuth_deg)
    per_metre = np.array([reach * math.cos(azimuth), -reach * math.sin(azimuth)]) / pixel_m
    step_m = pixel_m / max(reach * max(abs(math.cos(azimuth)), abs(math.sin(azimuth))), 1e-6)
    heights = np.arange(200.0, 12_000.0 + step_m / 2, step_m)
    target, shade = potential | cloud, potential & ~cloud
    shadow, found = np.zeros(cloud.shape, dtype=bool), []
    for label, window in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = np.nonzero(labels[window] == label)
        rows, cols = rows + window[0].start, cols + window[1].start
        stride = math.ceil(rows.size / 20_000) if rows.size > 20_000 else 1
        shifts = heights[:, None] * per_metre[None, :]
        r = np.rint(rows[::stride, None] + shifts[None, :, 0]).astype(np.int64)
        c = np.rint(cols[::stride, None] + shifts[None, :, 1]).astype(np.int64)
        inside = (r >= 0) & (r < cloud.shape[0]) & (c >= 0) & (c < cloud.shape[1])
        r, c = np.where(inside, r, 0), np.where(inside, c, 0)
        counted = inside & valid[r, c] & (labels[r, c] != label)
        total, hits = counted.sum(axis=0), (counted & target[r, c]).sum(axis=0)
        scores = np.where(total > 0, hits / np.maximum(total, 1), 0.0)
        evidence = (counted & shade[r, c]).sum(axis=0) - (total - hits)
        if not (scores >= similarity).any():
            continue
        best = int(np.argmax(np.where(scores >= similarity, evidence, np.iinfo(np.int64).min)))
        found.append(float(heights[best]))
        r, c = np.rint(rows + shifts[best, 0]).astype(np.int64), np.rint(cols + shifts[best, 1]).astype(np.int64)
        inside = (r >= 0) & (r < cloud.shape[0]) & (c >= 0) & (c < cloud.shape[1])
        shadow[r[inside], c[inside]] = True
    return shadow & ~cloud & valid, found


@pytest.mark.parametrize("sun_azimuth_deg", [135.0, 160.0, 290.0])
def test_shadow_matching_scores_every_object_as_numpy_did(sun_azimuth_deg: float):
    """Hundreds of cloud objects of every size, one larger than the scoring's 20 000 pixel sample, objects at the
    grid's edges, no-data holes and noisy potential shadows: the same matches, heights and mask."""
    rng = np.random.default_rng(11)
    cloud = rng.random((400, 420)) < 0.02  # specks
    yy, xx = np.mgrid[:400, :420]
    for _ in range(40):
        row, col, radius = rng.integers(0, 400), rng.integers(0, 420), rng.integers(2, 25)
        cloud |= (yy - row) ** 2 + (xx - col) ** 2 < radius ** 2
    cloud |= (yy - 200) ** 2 + (xx - 210) ** 2 < 85 ** 2  # > 20 000 pixels
    potential = rng.random(cloud.shape) < 0.15
    potential |= np.roll(np.roll(cloud, 12, axis=0), -9, axis=1)
    valid = np.ones(cloud.shape, dtype=bool)
    valid[300:340, :60] = False
    result = match_shadows(cloud, potential, valid, pixel_m=60.0, sun_zenith_deg=35.0,
                           sun_azimuth_deg=sun_azimuth_deg)
    shadow, heights = _numpy_match(cloud, potential, valid, pixel_m=60.0, sun_zenith_deg=35.0,
                                   sun_azimuth_deg=sun_azimuth_deg)
    assert result.objects > 300 and result.matched == len(heights) > 100
    assert result.heights_m == tuple(heights)
    np.testing.assert_array_equal(result.shadow, shadow)


def bits(*positions: int) -> int:
    return sum(1 << p for p in positions)


def test_product_qa_classes_of_every_layer():
    qa_pixel = np.array([bits(0), bits(6), bits(3), bits(1), bits(2), bits(4), bits(5), bits(7)], np.uint16)
    assert product_qa_classes({"QA_PIXEL": qa_pixel}).tolist() == [NODATA, CLEAR, CLOUD, CLOUD, CLOUD, SHADOW,
                                                                   SNOW, WATER]
    bqa = np.array([1, bits(4, 5, 6), bits(7, 8), bits(9, 10), bits(11, 12), bits(7), bits(5)], np.uint16)
    assert product_qa_classes({"BQA": bqa}).tolist() == [NODATA, CLOUD, SHADOW, SNOW, CLOUD, CLEAR, CLEAR]
    scl = np.arange(12, dtype=np.uint8)
    assert product_qa_classes({"SCL": scl}).tolist() == [NODATA, NODATA, CLEAR, SHADOW, CLEAR, CLEAR, WATER,
                                                         CLEAR, CLOUD, CLOUD, CLOUD, SNOW]
    classi = {"MSK_CLASSI_OPAQUE": np.array([0, 1, 0, 0]), "MSK_CLASSI_CIRRUS": np.array([0, 0, 1, 0]),
              "MSK_CLASSI_SNOW_ICE": np.array([0, 0, 0, 1])}
    assert product_qa_classes(classi, nodata=np.array([False, False, False, False])).tolist() == [
        CLEAR, CLOUD, CLOUD, SNOW]
    # SCL and the CLASSI layers together: either flags cloud; an extra no-data mask wins over everything
    both = product_qa_classes({"SCL": np.array([4, 4, 9]), "MSK_CLASSI_OPAQUE": np.array([0, 1, 1])},
                              nodata=np.array([False, False, True]))
    assert both.tolist() == [CLEAR, CLOUD, NODATA]
    with pytest.raises(KeyError, match="QA_PIXEL"):
        product_qa_classes({"B04": np.zeros(3)})


def test_distance_dilation_equals_the_disk_dilation():
    from scipy import ndimage

    from gmsdask.algorithms.fmask_cloud import erode_m

    rng = np.random.default_rng(4)
    mask = rng.random((80, 90)) > 0.97
    for distance_m, pixel_m in ((300.0, 20.0), (90.0, 30.0), (250.0, 60.0), (30.0, 10.0)):
        disk = disk_footprint(distance_m, pixel_m)
        np.testing.assert_array_equal(dilate_m(mask, distance_m, pixel_m),
                                      ndimage.binary_dilation(mask, structure=disk))
        blob = dilate_m(mask, 200.0, pixel_m)
        # away from the edges the distance erosion is the disk erosion
        inner = (slice(disk.shape[0], -disk.shape[0]), slice(disk.shape[1], -disk.shape[1]))
        np.testing.assert_array_equal(erode_m(blob, distance_m, pixel_m)[inner],
                                      ndimage.binary_erosion(blob, structure=disk)[inner])
