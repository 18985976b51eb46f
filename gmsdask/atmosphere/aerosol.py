"""Aerosol optical thickness of a scene from its dark dense vegetation, on a coarse grid of cells.

Steps (Kaufman et al. 1997, the classic image-based retrieval; see ``gmsdask.algorithms.atmospheric``):

1. The blue, red, NIR and 2.2 um bands are brought to the coarsest of their grids (block means; Sentinel-2
   B02/B04 go to B12's 20 m), dark vegetated pixels are selected (TOA NDVI >= 0.5, surface 2.2 um reflectance
   from a first-guess correction in ``SWIR_FLOOR .. SWIR_TIERS[-1]``; with an ``fmask`` layer on that grid, only
   clear land, class 1), and per cell (``cell_size_m``, snapped to a whole number of those pixels) and per
   2.2 um tier the dark pixels are counted and their TOA reflectances summed (``dark_target_sums``: lazy, so
   the caller computes it together with its other small reductions in one pass over the scene).
2. Each cell takes the darkest tier with at least ``min_dark_fraction`` of its pixels (and 3), and gets the AOT
   whose predicted TOA blue and red (surface from the 2.2 um band corrected at that AOT and the dark-vegetation
   relation) match the measured ones, with the lookup tables at the cell's geometry. Cells whose blue-only and
   red-only AOTs disagree by more than the expected error are dropped (the relation does not hold there).
3. The field is smoothed (Gaussian, one cell) and filled where there were no dark targets; a scene without
   any dark target gets the configured default everywhere, and says so (``source = "default"``).

Uncertainty: MODIS's expected error over land, 0.05 + 0.15 AOT, widened by the spread between the blue-only
and red-only retrievals; cells that got the default have ``DEFAULT_AOT_UNCERTAINTY``.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.atmospheric import dark_target_mask, invert_aot, invert_lambertian, smooth_fill
from .lut import BandTable

__all__ = ["CellGrid", "AerosolField", "DarkTargets", "DarkTargetSums", "block_mean", "ddv_cells",
           "dark_target_statistics", "dark_target_sums",
           "retrieve_aerosol",
           "DEFAULT_AOT_UNCERTAINTY", "DDV_ROLES", "SWIR_TIERS", "SWIR_FLOOR"]

#: Uncertainty (AOT at 550 nm) of a default value: the spread of continental AOT climatologies.
DEFAULT_AOT_UNCERTAINTY = 0.15
#: The band roles of the retrieval, by STAC common name (several names: the first the sensor has).
DDV_ROLES: dict[str, tuple[str, ...]] = {"blue": ("blue",), "red": ("red",), "nir": ("nir08", "nir"),
                                         "swir22": ("swir22",)}
#: Upper limits of the surface 2.2 um reflectance of dark targets, darkest first: a cell uses the darkest tier
#: that has enough pixels (Kaufman et al. 1997 raise the 2.1 um threshold from 0.05 towards 0.15 only where too
#: few darker pixels exist: the visible/2.2 um relation is tightest over the darkest, densest canopies).
SWIR_TIERS: tuple[float, ...] = (0.05, 0.10, 0.15)
#: Below this 2.2 um reflectance a pixel is water, shadow or a mixed water edge, not vegetation.
SWIR_FLOOR = 0.01
#: Fine AOT axis on which each cell's residuals are evaluated.
_AOT_SEARCH = np.round(np.arange(0.0, 1.0 + 1e-9, 0.0025), 4)


@dataclass(frozen=True)
class CellGrid:
    """Cells of ``size_m`` starting at the scene's upper-left corner; centres in the scene CRS (metres)."""

    x: np.ndarray
    y: np.ndarray
    size_m: float

    @classmethod
    def covering(cls, left: float, top: float, width_m: float, height_m: float, size_m: float) -> "CellGrid":
        nx, ny = max(1, int(np.ceil(width_m / size_m - 1e-9))), max(1, int(np.ceil(height_m / size_m - 1e-9)))
        return cls(left + (np.arange(nx) + 0.5) * size_m, top - (np.arange(ny) + 0.5) * size_m, size_m)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y), len(self.x)


@dataclass(frozen=True)
class DarkTargets:
    """Per 2.2 um tier and cell: number of dark pixels and their mean TOA reflectance per role (NaN where
    none), arrays ``(tier, cell row, cell col)``; tier ``k`` holds the pixels whose surface 2.2 um reflectance
    is at most ``tiers[k]`` (cumulative). A cell is ``cell_pixels`` x ``cell_pixels`` pixels of the grid the
    dark pixels were counted on."""

    count: np.ndarray
    mean_toa: dict[str, np.ndarray]
    cell_pixels: int
    tiers: tuple[float, ...] = SWIR_TIERS

    @classmethod
    def of(cls, count: np.ndarray, sums: dict[str, np.ndarray], cell_pixels: int, tiers: tuple[float, ...]
           ) -> "DarkTargets":
        """From computed per-tier cell counts and TOA sums (``DarkTargetSums``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            means = {role: np.where(count > 0, total / count, np.nan) for role, total in sums.items()}
        return cls(np.asarray(count).astype(np.int64), means, cell_pixels, tiers)

    def darkest(self, min_count: float) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Per cell the darkest tier with at least ``min_count`` pixels: ``(count, mean TOA by role, 2.2 um
        limit)``; cells where no tier has enough get count 0, NaN means and a NaN limit."""
        enough = self.count >= min_count
        chosen = np.argmax(enough, axis=0)
        usable = enough.any(axis=0)
        pick = np.take_along_axis
        count = np.where(usable, pick(self.count, chosen[None], 0)[0], 0)
        means = {role: np.where(usable, pick(values, chosen[None], 0)[0], np.nan)
                 for role, values in self.mean_toa.items()}
        limit = np.where(usable, np.asarray(self.tiers)[chosen], np.nan)
        return count, means, limit


@dataclass(frozen=True)
class DarkTargetSums:
    """Lazy per tier and cell: dark pixel counts and TOA sums per role (``(tier, cell row, cell col)``)."""

    count: da.Array
    sums: dict[str, da.Array]
    cell_pixels: int
    tiers: tuple[float, ...]


@dataclass(frozen=True)
class AerosolField:
    """AOT at 550 nm on the cells, its uncertainty, and where it came from.

    ``source``: ``"dark_dense_vegetation"`` if any cell had dark targets, else ``"default"``;
    ``retrieved`` marks the cells with their own retrieval; ``dark_pixels`` counts their dark targets and
    ``swir22_limit`` is the 2.2 um tier those came from (NaN elsewhere); ``rejected`` marks cells with dark
    targets whose blue and red disagreed (see ``retrieve_aerosol``).
    """

    aot550: np.ndarray
    uncertainty: np.ndarray
    retrieved: np.ndarray
    dark_pixels: np.ndarray
    source: str
    swir22_limit: np.ndarray | None = None
    rejected: np.ndarray | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.aot550))


def block_mean(band: xr.DataArray, factor: int) -> da.Array:
    """Block means of ``factor`` x ``factor`` pixels (NaN-padded at the far edges), in fixed chunks."""
    data = da.asarray(band.data).astype(np.float64)
    if factor == 1:
        return data
    rows, cols = (-(-n // factor) * factor for n in data.shape)
    padded = da.pad(data, ((0, rows - data.shape[0]), (0, cols - data.shape[1])), constant_values=np.nan)
    padded = padded.rechunk(tuple(max(factor, c - c % factor) for c in (2048, 2048)))
    return da.coarsen(np.mean, padded, {0: factor, 1: factor}, trim_excess=True)


def _cell_sums_block(tier: np.ndarray, *bands: np.ndarray, cell_pixels: int, shape: tuple[int, int],
                     n_tiers: int, block_info: dict | None = None) -> np.ndarray:
    """One block's part of the per-cell sums: ``(1, 1, 1 + len(bands), n_tiers, *shape)`` float64, per tier ``k``
    the count of the pixels with ``0 <= tier <= k`` and the sums of each band over them (NaN counts as 0), in the
    cells of ``cell_pixels`` those pixels fall in (a cell cut by the block's edge gets the part inside it);
    pixels beyond the ``shape`` cells are left out."""
    (row0, row1), (col0, col1) = block_info[0]["array-location"]
    out = np.zeros((1, 1, 1 + len(bands), n_tiers, *shape))
    rows = max(0, min(row1, shape[0] * cell_pixels) - row0)
    cols = max(0, min(col1, shape[1] * cell_pixels) - col0)
    if rows == 0 or cols == 0:
        return out
    row_cells = (row0 + np.arange(rows)) // cell_pixels
    col_cells = (col0 + np.arange(cols)) // cell_pixels
    row_starts = np.flatnonzero(np.diff(row_cells, prepend=-1))
    col_starts = np.flatnonzero(np.diff(col_cells, prepend=-1))
    where = np.ix_(row_cells[row_starts], col_cells[col_starts])
    tier = tier[:rows, :cols]
    values = [np.asarray(band[:rows, :cols], dtype=np.float64) for band in bands]
    for k in range(n_tiers):
        dark = (tier >= 0) & (tier <= k)
        for index, layer in enumerate((dark.astype(np.float64),
                                       *(np.nan_to_num(np.where(dark, band, 0.0)) for band in values))):
            summed = np.add.reduceat(np.add.reduceat(layer, row_starts, axis=0), col_starts, axis=1)
            out[0, 0, index, k][where] = summed
    return out


def _cell_sums(tier: da.Array, bands: list[da.Array], cell_pixels: int, shape: tuple[int, int],
               n_tiers: int) -> da.Array:
    """``(1 + len(bands), n_tiers, *shape)`` float64: per tier, the dark pixel counts and band sums over cells of
    ``cell_pixels`` x ``cell_pixels`` (:func:`_cell_sums_block`), cropped to ``shape`` cells.

    Block by block in the arrays' own chunks, each block summing into the cells it reaches: rechunking to whole
    cells (2025 px for 75 px cells) made blocks of 32 MiB in float64 per band and tier, held side by side at a
    whole tile's 40 m look (~380 MiB on one worker, the peak of its L1C; 2026-11-30)."""
    bands = [band.rechunk(tier.chunks) for band in bands]
    n_row_blocks, n_col_blocks = tier.numblocks
    parts = da.map_blocks(_cell_sums_block, tier, *bands, cell_pixels=cell_pixels, shape=tuple(shape),
                          n_tiers=n_tiers, dtype=np.float64, new_axis=[2, 3, 4, 5],
                          chunks=((1,) * n_row_blocks, (1,) * n_col_blocks, (1 + len(bands),), (n_tiers,),
                                  (shape[0],), (shape[1],)),
                          meta=np.empty((0, 0, 0, 0, 0, 0), dtype=np.float64))
    return parts.sum(axis=(0, 1))


def pixel_size_m(scene: xr.DataTree, group: str) -> float:
    """Pixel width of resolution group ``group`` of ``scene`` (CRS units, metres for UTM)."""
    x = scene[group].ds["x"].values
    return float(abs(x[1] - x[0]))


def ddv_cells(scene: xr.DataTree, roles: dict[str, tuple[str, str]], box: tuple[float, float, float, float],
              cell_size_m: float) -> CellGrid:
    """Cells over ``box`` (left, bottom, right, top) of about ``cell_size_m``, a whole number of pixels of the
    coarsest grid among the retrieval's bands (so cell sums and cell centres agree)."""
    common = max(pixel_size_m(scene, group) for group, _ in roles.values())
    size = max(1, int(round(cell_size_m / common))) * common
    left, bottom, right, top = box
    return CellGrid.covering(left, top, right - left, top - bottom, size)


def _dark_tier(blue: np.ndarray, red: np.ndarray, nir: np.ndarray, swir_toa: np.ndarray, *, swir_terms: tuple,
               tiers: tuple[float, ...], min_ndvi: float) -> np.ndarray:
    """Per pixel the index of the first tier whose 2.2 um limit its estimated surface reflectance stays under
    (int8; -1: not a dark vegetation pixel)."""
    swir = invert_lambertian(swir_toa, *swir_terms)
    dark = dark_target_mask(blue, red, nir, swir, swir_range=(SWIR_FLOOR, tiers[-1]), min_ndvi=min_ndvi)
    tier = np.searchsorted(np.asarray(tiers), np.where(dark, swir, np.inf), side="left").astype(np.int8)
    tier[~dark] = -1
    return tier


def dark_target_sums(scene: xr.DataTree, roles: dict[str, tuple[str, str]], cells: CellGrid, *,
                     swir_terms: tuple[float, float, float] = (0.0, 1.0, 0.0),
                     tiers: tuple[float, ...] = SWIR_TIERS, min_ndvi: float = 0.5) -> DarkTargetSums:
    """The lazy per-cell reduction behind ``dark_target_statistics``: compute it (together with other small
    reductions of the same scene, so the scene's graph runs once) and pass the result to ``DarkTargets.of``.

    ``roles`` maps ``blue``, ``red``, ``nir``, ``swir22`` to ``(group, band)`` of ``scene``; ``cells`` from
    ``ddv_cells``. ``swir_terms``: (path reflectance, transmittance, spherical albedo) of the 2.2 um band at a
    first-guess AOT, which turn its TOA reflectance into the surface reflectance the tiers are defined on (the
    2.2 um band hardly sees aerosol, so the guess barely matters). Tier ``k`` holds the dark pixels whose
    surface 2.2 um reflectance is in ``SWIR_FLOOR .. tiers[k]``.
    """
    resolutions = {role: pixel_size_m(scene, group) for role, (group, _) in roles.items()}
    common = max(resolutions.values())
    arrays = {role: block_mean(scene[group].ds[band], int(round(common / resolutions[role])))
              for role, (group, band) in roles.items()}
    swir_group = roles["swir22"][0]
    shape = arrays["swir22"].shape
    arrays = {role: a[: shape[0], : shape[1]] for role, a in arrays.items()}
    tier = da.map_blocks(_dark_tier, *(arrays[k].rechunk(arrays["swir22"].chunks)
                                       for k in ("blue", "red", "nir", "swir22")),
                         swir_terms=tuple(float(v) for v in swir_terms), tiers=tuple(tiers), min_ndvi=min_ndvi,
                         dtype=np.int8)
    if "fmask" in scene[swir_group].ds and scene[swir_group].ds["fmask"].shape == shape:
        tier = da.where(scene[swir_group].ds["fmask"].data.rechunk(tier.chunks) == 1, tier, -1)
    cell_pixels = max(1, int(round(cells.size_m / common)))
    roles = ("blue", "red", "swir22")
    totals = _cell_sums(tier, [arrays[role] for role in roles], cell_pixels, cells.shape, len(tiers))
    return DarkTargetSums(totals[0], {role: totals[1 + index] for index, role in enumerate(roles)},
                          cell_pixels, tuple(float(t) for t in tiers))


def dark_target_statistics(scene: xr.DataTree, roles: dict[str, tuple[str, str]], cells: CellGrid, *,
                           swir_terms: tuple[float, float, float] = (0.0, 1.0, 0.0),
                           tiers: tuple[float, ...] = SWIR_TIERS, min_ndvi: float = 0.5) -> DarkTargets:
    """Count and mean TOA reflectance of dark vegetation per cell and 2.2 um tier (computed now: a small Dask
    reduction; see ``dark_target_sums`` for the arguments)."""
    sums = dark_target_sums(scene, roles, cells, swir_terms=swir_terms, tiers=tiers, min_ndvi=min_ndvi)
    return DarkTargets.of(*dask.compute(sums.count, sums.sums), sums.cell_pixels, sums.tiers)


def _coefficients_along_aot(table: BandTable, geometry: dict[str, np.ndarray]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = table.coefficients_along_aot(_AOT_SEARCH, geometry["sun_zenith"], geometry["view_zenith"],
                                     geometry["relative_azimuth"])
    return c["path_reflectance"], c["transmittance"], c["spherical_albedo"]


def retrieve_aerosol(targets: DarkTargets, tables: dict[str, BandTable], geometry: dict[str, np.ndarray], *,
                     default_aot550: float, min_dark_fraction: float = 0.01,
                     blue_relation: tuple[float, float] = (0.25, 0.0),
                     red_relation: tuple[float, float] = (0.5, 0.0)) -> AerosolField:
    """AOT field on the cells from the dark targets (``tables`` by role: blue, red, swir22; ``geometry``:
    cell arrays ``sun_zenith``, ``view_zenith``, ``relative_azimuth`` in degrees; ``*_relation``: surface
    reflectance = slope * 2.2 um surface reflectance + offset over dark vegetation)."""
    count, mean_toa, limit = targets.darkest(max(3.0, min_dark_fraction * targets.cell_pixels ** 2))
    usable = count > 0
    shape = count.shape
    if not usable.any():
        return AerosolField(np.full(shape, float(default_aot550)), np.full(shape, DEFAULT_AOT_UNCERTAINTY),
                            usable, count, "default", limit, np.zeros(shape, dtype=bool))
    cell_geometry = {name: values[usable] for name, values in geometry.items()}
    coeffs = {role: _coefficients_along_aot(tables[role], cell_geometry) for role in ("blue", "red", "swir22")}
    aot, spread = invert_aot(_AOT_SEARCH, mean_toa["blue"][usable], mean_toa["red"][usable],
                             mean_toa["swir22"][usable], coeffs["blue"], coeffs["red"], coeffs["swir22"],
                             blue_relation=blue_relation, red_relation=red_relation)
    # blue and red must tell the same AOT where the dark-vegetation relation holds: a cell whose blue-only and
    # red-only AOTs differ by more than the expected error (half-difference > 0.05 + 0.15 AOT) has a surface
    # the relation does not describe (bright crops, mixed edges) and is dropped, unless no cell agrees
    consistent = spread <= 0.05 + 0.15 * aot
    rejected = np.zeros(shape, dtype=bool)
    if consistent.any() and not consistent.all():
        rejected[usable] = ~consistent
        aot, spread = aot[consistent], spread[consistent]
        usable = usable & ~rejected
    values = np.zeros(shape)
    values[usable] = aot
    field = smooth_fill(values, usable)
    spread_field = np.zeros(shape)
    spread_field[usable] = spread
    uncertainty = np.hypot(0.05 + 0.15 * field, smooth_fill(spread_field, usable))
    return AerosolField(field, uncertainty, usable, np.where(rejected, 0, count), "dark_dense_vegetation",
                        np.where(rejected, np.nan, limit), rejected)
