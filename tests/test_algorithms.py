"""Pure numpy algorithms: interpolation of angle grids, Earth-Sun distance, solar position."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from gmsdask.algorithms.interpolation import bilinear_from_grid, linear_weights
from gmsdask.algorithms.radiometry import earth_sun_distance_au, solar_position


@pytest.mark.parametrize("descending_y", [True, False])
def test_bilinear_is_exact_on_linear_fields_inside_and_beyond_the_grid(descending_y):
    grid_y = np.linspace(1000, 0, 11) if descending_y else np.linspace(0, 1000, 11)
    grid_x = np.linspace(0, 500, 6)
    field = np.add.outer(2 * grid_y, -3 * grid_x)
    y, x = np.linspace(1100, -50, 37), np.linspace(-20, 530, 29)
    np.testing.assert_allclose(bilinear_from_grid(grid_y, grid_x, field, y, x), np.add.outer(2 * y, -3 * x),
                               atol=1e-3)
    # the restricted (block-local) product equals the full separable product
    full = linear_weights(grid_y, y) @ field @ linear_weights(grid_x, x).T
    np.testing.assert_allclose(bilinear_from_grid(grid_y, grid_x, field, y, x), full, atol=1e-3)


def _numpy_bilinear(grid_y, grid_x, values, y, x):
    """The numpy form of ``bilinear_from_grid`` before its per-pixel pass was compiled (2026-12-01): the reference
    of the test below."""
    from gmsdask.algorithms.interpolation import _segments

    row_index, row_fraction = _segments(grid_y, y)
    col_index, col_fraction = _segments(grid_x, x)
    first, last = int(row_index.min()), int(row_index.max()) + 2
    nodes = values[first:last]
    along_x = nodes[:, col_index] * (1.0 - col_fraction) + nodes[:, col_index + 1] * col_fraction
    upper, lower = along_x[row_index - first], along_x[row_index + 1 - first]
    return (upper * (1.0 - row_fraction)[:, None] + lower * row_fraction[:, None]).astype(np.float32)


@pytest.mark.parametrize("descending_y", [True, False])
def test_bilinear_has_the_bits_of_the_numpy_form(descending_y):
    """Every pixel, inside and beyond a 5 km grid, in a block that starts anywhere: the same float32 bits as numpy's
    float64 arithmetic rounded once (the TOA's per-pixel sun matches an independent implementation exactly)."""
    rng = np.random.default_rng(11)
    grid_y = np.linspace(6_000_000.0, 5_760_000.0, 49)
    grid_x = np.linspace(300_000.0, 540_000.0, 49)
    values = np.cos(np.deg2rad(rng.uniform(20.0, 70.0, (49, 49))))
    if not descending_y:
        grid_y, values = grid_y[::-1].copy(), values[::-1].copy()
    y = 6_010_000.0 - 30.0 * (np.arange(3000) + 0.5)
    x = 290_000.0 + 30.0 * (np.arange(700) + 0.5)
    for rows, cols in ((slice(None), slice(None)), (slice(1234, 1301), slice(7, 700, 3))):
        expected = _numpy_bilinear(grid_y, grid_x, values, y[rows], x[cols])
        got = bilinear_from_grid(grid_y, grid_x, values, y[rows], x[cols])
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.array_equal(got, expected)


def test_bilinear_interpolates_between_nodes_not_nearest():
    grid = np.array([0.0, 10.0])
    values = np.array([[0.0, 10.0], [10.0, 20.0]])
    assert bilinear_from_grid(grid, grid, values, np.array([5.0]), np.array([5.0]))[0, 0] == pytest.approx(10.0)
    assert bilinear_from_grid(grid, grid, values, np.array([2.5]), np.array([0.0]))[0, 0] == pytest.approx(2.5)


@pytest.mark.parametrize("when, usgs_au", [
    (datetime(2017, 8, 13, 15, 54, tzinfo=timezone.utc), 1.0130510),   # LC08 016037 MTL
    (datetime(1997, 4, 6, 23, 13, tzinfo=timezone.utc), 1.0009715),  # LT05 090085 MTL (near the equinox)
    (datetime(2019, 1, 14, 14, 34, tzinfo=timezone.utc), 0.9835616),  # LC08 001070 MTL (near perihelion)
    (datetime(2031, 7, 4, tzinfo=timezone.utc), 1.0167),       # aphelion, after any table of the original ends
])
def test_earth_sun_distance_for_any_date(when, usgs_au):
    assert earth_sun_distance_au(when) == pytest.approx(usgs_au, abs=1.5e-4)


def test_solar_position_matches_usgs_scene_centre():
    # LC08_L1TP_016037_20170813: centre of the product box, scene centre time; MTL 62.17310472 / 126.81463739
    zenith, azimuth = solar_position(np.array(33.170), np.array(-80.082),
                                     datetime(2017, 8, 13, 15, 54, 15, tzinfo=timezone.utc))
    assert 90 - float(zenith) == pytest.approx(62.173, abs=0.05)
    assert float(azimuth) == pytest.approx(126.815, abs=0.1)
