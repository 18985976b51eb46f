"""Aerosol optical thickness of a scene from its dark dense vegetation, on a coarse grid of cells.

Steps (Kaufman et al. 1997, the classic image-based retrieval; see ``gmsdask.algorithms.atmospheric``):

1. The blue, red, NIR and 2.2 um bands are brought to the coarsest of their grids (block means; Sentinel-2
   B02/B04 go to B12's 20 m), dark vegetated pixels are selected from TOA reflectance (and, when the scene has
   an ``fmask`` layer on that grid, only clear land, class 1), and per cell (``cell_size_m``, snapped to a
   whole number of those pixels) the dark pixels are counted and their TOA reflectances summed. This is the one eager step: a reduction of the scene to a
   few hundred numbers, computed with Dask.
2. Cells whose dark pixels make at least ``min_dark_fraction`` of the cell (and at least 3) get an AOT from their mean TOA blue, red and SWIR and the
   lookup tables at the cell's geometry.
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

from ..algorithms.atmospheric import dark_target_mask, invert_aot, smooth_fill
from .lut import BandTable

__all__ = ["CellGrid", "AerosolField", "DarkTargets", "block_mean", "ddv_cells", "dark_target_statistics",
           "retrieve_aerosol",
           "DEFAULT_AOT_UNCERTAINTY", "DDV_ROLES"]

#: Uncertainty (AOT at 550 nm) of a default value: the spread of continental AOT climatologies.
DEFAULT_AOT_UNCERTAINTY = 0.15
#: The band roles of the retrieval, by STAC common name (several names: the first the sensor has).
DDV_ROLES: dict[str, tuple[str, ...]] = {"blue": ("blue",), "red": ("red",), "nir": ("nir08", "nir"),
                                         "swir22": ("swir22",)}
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
    """Per cell: number of dark pixels and their mean TOA reflectance per role (NaN where none); a cell is
    ``cell_pixels`` x ``cell_pixels`` pixels of the grid the dark pixels were counted on."""

    count: np.ndarray
    mean_toa: dict[str, np.ndarray]
    cell_pixels: int


@dataclass(frozen=True)
class AerosolField:
    """AOT at 550 nm on the cells, its uncertainty, and where it came from.

    ``source``: ``"dark_dense_vegetation"`` if any cell had dark targets, else ``"default"``;
    ``retrieved`` marks the cells with their own retrieval.
    """

    aot550: np.ndarray
    uncertainty: np.ndarray
    retrieved: np.ndarray
    dark_pixels: np.ndarray
    source: str

    @property
    def mean(self) -> float:
        return float(np.mean(self.aot550))


def block_mean(band: xr.DataArray, factor: int) -> da.Array:
    """Block means of ``factor`` x ``factor`` pixels (NaN-padded at the far edges), in fixed chunks."""
    data = band.data.astype(np.float64)
    if factor == 1:
        return data
    rows, cols = (-(-n // factor) * factor for n in data.shape)
    padded = da.pad(data, ((0, rows - data.shape[0]), (0, cols - data.shape[1])), constant_values=np.nan)
    padded = padded.rechunk(tuple(max(factor, c - c % factor) for c in (2048, 2048)))
    return da.coarsen(np.mean, padded, {0: factor, 1: factor}, trim_excess=True)


def _cell_sums(values: da.Array, cell_pixels: int, shape: tuple[int, int]) -> da.Array:
    """Sums over cells of ``cell_pixels`` x ``cell_pixels`` (NaN counts as 0), cropped to ``shape``."""
    rows, cols = (n * cell_pixels for n in shape)
    data = values[: rows, : cols]
    data = da.pad(data, ((0, rows - data.shape[0]), (0, cols - data.shape[1])), constant_values=0)
    block = max(cell_pixels, (2048 // cell_pixels) * cell_pixels)
    data = da.nan_to_num(data.rechunk((block, block)))
    return da.coarsen(np.sum, data, {0: cell_pixels, 1: cell_pixels})


def _resolution(scene: xr.DataTree, group: str) -> float:
    x = scene[group].ds["x"].values
    return float(abs(x[1] - x[0]))


def ddv_cells(scene: xr.DataTree, roles: dict[str, tuple[str, str]], box: tuple[float, float, float, float],
              cell_size_m: float) -> CellGrid:
    """Cells over ``box`` (left, bottom, right, top) of about ``cell_size_m``, a whole number of pixels of the
    coarsest grid among the retrieval's bands (so cell sums and cell centres agree)."""
    common = max(_resolution(scene, group) for group, _ in roles.values())
    size = max(1, int(round(cell_size_m / common))) * common
    left, bottom, right, top = box
    return CellGrid.covering(left, top, right - left, top - bottom, size)


def dark_target_statistics(scene: xr.DataTree, roles: dict[str, tuple[str, str]], cells: CellGrid, *,
                           swir_range: tuple[float, float] = (0.01, 0.15), min_ndvi: float = 0.5
                           ) -> DarkTargets:
    """Count and mean TOA reflectance of dark vegetation per cell (computed now: a small Dask reduction).

    ``roles`` maps ``blue``, ``red``, ``nir``, ``swir22`` to ``(group, band)`` of ``scene``; ``cells`` from
    ``ddv_cells``.
    """
    resolutions = {role: _resolution(scene, group) for role, (group, _) in roles.items()}
    common = max(resolutions.values())
    arrays = {role: block_mean(scene[group].ds[band], int(round(common / resolutions[role])))
              for role, (group, band) in roles.items()}
    swir_group = roles["swir22"][0]
    shape = arrays["swir22"].shape
    arrays = {role: a[: shape[0], : shape[1]] for role, a in arrays.items()}
    dark = da.map_blocks(lambda b, r, n, s: dark_target_mask(b, r, n, s, swir_range=swir_range, min_ndvi=min_ndvi),
                         *(arrays[k].rechunk(arrays["swir22"].chunks) for k in ("blue", "red", "nir", "swir22")),
                         dtype=bool)
    if "fmask" in scene[swir_group].ds and scene[swir_group].ds["fmask"].shape == shape:
        dark = dark & (scene[swir_group].ds["fmask"].data.rechunk(dark.chunks) == 1)
    cell_pixels = max(1, int(round(cells.size_m / common)))
    sums = {role: _cell_sums(da.where(dark, arrays[role].rechunk(dark.chunks), 0.0), cell_pixels, cells.shape)
            for role in ("blue", "red", "swir22")}
    count = _cell_sums(dark.astype(np.float64), cell_pixels, cells.shape)
    count, sums = dask.compute(count, sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {role: np.where(count > 0, total / count, np.nan) for role, total in sums.items()}
    return DarkTargets(count.astype(np.int64), means, cell_pixels)


def _coefficients_along_aot(table: BandTable, geometry: dict[str, np.ndarray]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = geometry["sun_zenith"].size
    aot = np.broadcast_to(_AOT_SEARCH[None, :], (n, len(_AOT_SEARCH)))
    c = table.coefficients(aot, geometry["sun_zenith"].reshape(-1, 1), geometry["view_zenith"].reshape(-1, 1),
                           geometry["relative_azimuth"].reshape(-1, 1))
    return c["path_reflectance"], c["transmittance"], c["spherical_albedo"]


def retrieve_aerosol(targets: DarkTargets, tables: dict[str, BandTable], geometry: dict[str, np.ndarray], *,
                     default_aot550: float, min_dark_fraction: float = 0.01,
                     blue_relation: tuple[float, float] = (0.25, 0.0),
                     red_relation: tuple[float, float] = (0.5, 0.0)) -> AerosolField:
    """AOT field on the cells from the dark targets (``tables`` by role: blue, red, swir22; ``geometry``:
    cell arrays ``sun_zenith``, ``view_zenith``, ``relative_azimuth`` in degrees; ``*_relation``: surface
    reflectance = slope * 2.2 um surface reflectance + offset over dark vegetation)."""
    usable = targets.count >= max(3.0, min_dark_fraction * targets.cell_pixels ** 2)
    shape = targets.count.shape
    if not usable.any():
        return AerosolField(np.full(shape, float(default_aot550)), np.full(shape, DEFAULT_AOT_UNCERTAINTY),
                            usable, targets.count, "default")
    cell_geometry = {name: values[usable] for name, values in geometry.items()}
    coeffs = {role: _coefficients_along_aot(tables[role], cell_geometry) for role in ("blue", "red", "swir22")}
    aot, spread = invert_aot(_AOT_SEARCH, targets.mean_toa["blue"][usable], targets.mean_toa["red"][usable],
                             targets.mean_toa["swir22"][usable], coeffs["blue"], coeffs["red"], coeffs["swir22"],
                             blue_relation=blue_relation, red_relation=red_relation)
    values = np.zeros(shape)
    values[usable] = aot
    field = smooth_fill(values, usable)
    spread_field = np.zeros(shape)
    spread_field[usable] = spread
    uncertainty = np.hypot(0.05 + 0.15 * field, smooth_fill(spread_field, usable))
    return AerosolField(field, uncertainty, usable, targets.count, "dark_dense_vegetation")
