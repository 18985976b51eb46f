"""Dark-dense-vegetation aerosol retrieval on cell statistics made from the lookup tables' own forward model:
the darkest 2.2 um tier with enough pixels is used, and cells whose blue and red disagree are rejected."""

from __future__ import annotations

import numpy as np
import pytest

from gmsdask.algorithms.atmospheric import forward_lambertian
from gmsdask.atmosphere.aerosol import SWIR_TIERS, DarkTargets, retrieve_aerosol
from gmsdask.atmosphere.lut import GeometryGrid, build_tables
from gmsdask.atmosphere.sixs import AtmosphereState

from .atmosphere_fixtures import atmosphere_cache  # noqa: F401

#: The Landsat-9 round-trip product's lattice cell (sun 33.4 degrees, nadir view): in the committed cache.
GRID = GeometryGrid((30.0, 35.0), (0.0,), (0.0,))
TRUE_AOT = 0.3


def _toa(table, surface: float) -> float:
    c = table.coefficients(TRUE_AOT, 33.4, 0.0, 0.0)
    return float(forward_lambertian(surface, c["path_reflectance"], c["transmittance"], c["spherical_albedo"]))


@pytest.fixture(scope="module")
def tables(atmosphere_cache):
    built, stats = build_tables("LANDSAT_9", ["B2", "B4", "B7"], AtmosphereState(0.0), GRID,
                                cache_dir=atmosphere_cache)
    assert stats.runs == 0
    return {"blue": built["B2"], "red": built["B4"], "swir22": built["B7"]}


def test_darkest_tier_is_used_and_inconsistent_cells_are_rejected(tables):
    # cells: forest (follows Kaufman's 0.25/0.5, surface 2.2 um 0.08), a bright crop (0.14; red only 0.28 of
    # the 2.2 um reflectance), and a cell without dark targets
    surfaces = [(0.02, 0.04, 0.08), (0.038, 0.039, 0.14), (np.nan, np.nan, np.nan)]
    count = np.zeros((len(SWIR_TIERS), 1, 3), dtype=np.int64)
    count[:, 0, 0] = (5, 400, 420)  # too few pixels under 0.05: tier 0.10 must be chosen
    count[:, 0, 1] = (0, 0, 500)
    means = {role: np.full((len(SWIR_TIERS), 1, 3), np.nan) for role in ("blue", "red", "swir22")}
    for cell, surface in enumerate(surfaces[:2]):
        for role, value in zip(("blue", "red", "swir22"), surface):
            means[role][:, 0, cell] = _toa(tables[role], value)
    means["blue"][0, 0, 0] = 0.5  # the too-small darkest tier is nonsense and must not be looked at
    targets = DarkTargets(count, means, cell_pixels=100, tiers=SWIR_TIERS)
    geometry = {"sun_zenith": np.full((1, 3), 33.4), "view_zenith": np.zeros((1, 3)),
                "relative_azimuth": np.zeros((1, 3))}
    field = retrieve_aerosol(targets, tables, geometry, default_aot550=0.1)
    assert field.source == "dark_dense_vegetation"
    assert field.retrieved.tolist() == [[True, False, False]] and field.rejected.tolist() == [[False, True, False]]
    assert field.dark_pixels.tolist() == [[400, 0, 0]]
    np.testing.assert_allclose(field.swir22_limit, [[0.10, np.nan, np.nan]])
    np.testing.assert_allclose(field.aot550, TRUE_AOT, atol=0.01)  # filled from the one good cell
    # without the check the crop cell would pull the field down: its red-only AOT is 0
    kept = retrieve_aerosol(DarkTargets(count[:, :, 1:2], {k: v[:, :, 1:2] for k, v in means.items()}, 100),
                            tables, {k: v[:, 1:2] for k, v in geometry.items()}, default_aot550=0.1)
    assert kept.rejected.tolist() == [[False]] and kept.aot550[0, 0] < TRUE_AOT - 0.1


def test_no_dark_targets_gives_the_default(tables):
    count = np.zeros((len(SWIR_TIERS), 2, 2), dtype=np.int64)
    count[2] = 2  # fewer than 3 pixels per cell anywhere
    means = {role: np.full(count.shape, 0.05) for role in ("blue", "red", "swir22")}
    geometry = {"sun_zenith": np.full((2, 2), 33.4), "view_zenith": np.zeros((2, 2)),
                "relative_azimuth": np.zeros((2, 2))}
    field = retrieve_aerosol(DarkTargets(count, means, 100), tables, geometry, default_aot550=0.17)
    assert field.source == "default" and not field.retrieved.any() and np.all(field.aot550 == 0.17)


@pytest.mark.parametrize("chunks", [1000, 256, (97, 130)])
def test_cell_sums_count_and_sum_the_dark_pixels_of_each_cell_whatever_the_blocks(chunks):
    """Per tier k, the pixels with 0 <= tier <= k are counted and their values summed (NaN as 0) in each cell;
    cells cut by a block edge, and the partial cells at the scene's far edges, get every pixel they hold."""
    import dask.array as da

    from gmsdask.atmosphere.aerosol import _cell_sums

    rng = np.random.default_rng(4)
    rows, cols, cell = 331, 407, 50
    shape = (-(-rows // cell), -(-cols // cell))         # 7 x 9 cells, the last ones partial
    tier = rng.integers(-1, 3, (rows, cols)).astype(np.int8)
    band = rng.random((rows, cols)).astype(np.float32)
    band[rng.random((rows, cols)) < 0.02] = np.nan
    totals = _cell_sums(da.from_array(tier, chunks=chunks), [da.from_array(band, chunks=chunks)], cell, shape,
                        n_tiers=3).compute()
    assert totals.shape == (2, 3, *shape)
    for k in range(3):
        for i in range(shape[0]):
            for j in range(shape[1]):
                window = np.s_[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell]
                dark = (tier[window] >= 0) & (tier[window] <= k)
                assert totals[0, k, i, j] == dark.sum()
                expected = np.nansum(np.where(dark, band[window].astype(np.float64), 0.0))
                assert totals[1, k, i, j] == pytest.approx(expected, rel=1e-12)
