"""Atmospheric correction arithmetic (pure numpy): the Lambertian model, dark-target aerosol inversion, and the
interpolation of coarse coefficient grids onto pixels.

Lambertian model of 6S (Tanre et al. 1979; Vermote et al. 1997), reflectances unitless:

    rho_toa = rho_path + T * rho / (1 - S * rho)          (forward)
    y = (rho_toa - rho_path) / T;  rho = y / (1 + S * y)   (inverse; 6S: y = xap*rho_toa - xb, xc = S)

Dark dense vegetation (Kaufman et al. 1997): over dark vegetated pixels the surface reflectance in the blue and
red is a fixed share of that at 2.2 um (0.25 and 0.5), where aerosol hardly matters; MODIS Collection 5 (Levy et
al. 2007) generalizes the shares to linear relations with an offset. The AOT is the value for which the predicted
TOA blue and red match the measured ones (least squares over both bands).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["forward_lambertian", "invert_lambertian", "dark_target_mask", "invert_aot", "smooth_fill",
           "cell_bilinear", "CellBilinear"]


def forward_lambertian(rho: np.ndarray, path: np.ndarray, transmittance: np.ndarray, albedo: np.ndarray
                       ) -> np.ndarray:
    """TOA reflectance of a Lambertian surface of reflectance ``rho`` (arrays broadcast)."""
    return path + transmittance * rho / (1.0 - albedo * rho)


def invert_lambertian(rho_toa: np.ndarray, path: np.ndarray, transmittance: np.ndarray, albedo: np.ndarray, *,
                      out: np.ndarray | None = None, work: np.ndarray | None = None) -> np.ndarray:
    """Surface reflectance from TOA reflectance (the exact inverse of ``forward_lambertian``); NaN stays NaN.

    ``out`` receives the result and ``work`` (same shape) the denominator when given: callers looping over strips
    reuse them instead of allocating two arrays per call. The arithmetic is the same either way.
    """
    y = np.subtract(rho_toa, path, out=out)
    y /= transmittance
    denominator = np.multiply(albedo, y, out=work)
    denominator += 1.0
    y /= denominator
    return y


def dark_target_mask(blue: np.ndarray, red: np.ndarray, nir: np.ndarray, swir22: np.ndarray, *,
                     swir_range: tuple[float, float] = (0.01, 0.15), min_ndvi: float = 0.5) -> np.ndarray:
    """Dark dense vegetation pixels from TOA reflectance: 2.2 um reflectance within ``swir_range`` (dark, not
    water, not cloud), NDVI (from TOA red/NIR) at least ``min_ndvi`` (vegetated). No test on the visible bands
    themselves: they carry the aerosol signal, and a threshold on them would select different surfaces at
    different AOTs. NaN anywhere gives False."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
        dark = (swir22 >= swir_range[0]) & (swir22 <= swir_range[1]) & (ndvi >= min_ndvi)
    return dark & np.isfinite(blue) & np.isfinite(red) & np.isfinite(nir)


def invert_aot(aot_axis: np.ndarray, blue_toa: np.ndarray, red_toa: np.ndarray, swir_toa: np.ndarray,
               blue_coeffs: tuple[np.ndarray, np.ndarray, np.ndarray],
               red_coeffs: tuple[np.ndarray, np.ndarray, np.ndarray],
               swir_coeffs: tuple[np.ndarray, np.ndarray, np.ndarray], *,
               blue_relation: tuple[float, float] = (0.25, 0.0), red_relation: tuple[float, float] = (0.5, 0.0)
               ) -> tuple[np.ndarray, np.ndarray]:
    """AOT at 550 nm per target from mean dark-target TOA reflectances (shape ``(n,)``).

    ``*_coeffs`` are (path, transmittance, albedo) arrays of shape ``(n, len(aot_axis))``: each target's
    coefficients along a fine AOT axis. ``*_relation`` = (slope, offset): surface reflectance of the band =
    slope * surface 2.2 um reflectance + offset (Kaufman: (0.25, 0) and (0.5, 0); MODIS C5 adds offsets). Returns ``(aot, disagreement)``: the least-squares AOT of blue and red
    together, and half the difference between the blue-only and red-only AOTs (a spread of the retrieval).
    """
    swir_surface = invert_lambertian(swir_toa[:, None], *swir_coeffs)
    blue_surface = blue_relation[0] * swir_surface + blue_relation[1]
    red_surface = red_relation[0] * swir_surface + red_relation[1]
    blue_residual = forward_lambertian(blue_surface, *blue_coeffs) - blue_toa[:, None]
    red_residual = forward_lambertian(red_surface, *red_coeffs) - red_toa[:, None]
    best = np.argmin(blue_residual ** 2 + red_residual ** 2, axis=1)
    blue_only = np.argmin(np.abs(blue_residual), axis=1)
    red_only = np.argmin(np.abs(red_residual), axis=1)
    return aot_axis[best], np.abs(aot_axis[blue_only] - aot_axis[red_only]) / 2.0


def smooth_fill(values: np.ndarray, valid: np.ndarray, *, sigma_cells: float = 1.0) -> np.ndarray:
    """Gaussian-smoothed field of ``values`` where ``valid``, filled elsewhere.

    Normalized convolution: cells near retrievals get their weighted mean; cells no retrieval reaches (weight
    below 5 % of a full neighbourhood) get the median of the valid cells. ``valid`` must have a True cell.
    """
    weights = ndimage.gaussian_filter(valid.astype(np.float64), sigma_cells, mode="nearest")
    sums = ndimage.gaussian_filter(np.where(valid, values, 0.0), sigma_cells, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = sums / weights
    return np.where(weights > 0.05, smooth, np.median(values[valid]))


def cell_bilinear(values: np.ndarray, cell_y: np.ndarray, cell_x: np.ndarray, y: np.ndarray, x: np.ndarray
                  ) -> np.ndarray:
    """Bilinear interpolation of ``values[cell_y, cell_x]`` (cell centres, evenly spaced, any direction) at the
    pixel rows ``y`` and columns ``x`` (float32 ``(len(y), len(x))``; constant beyond the outer centres).

    Each pixel's value depends only on its own coordinates (the same arithmetic whatever else is computed with
    it), so results do not depend on the chunking. One grid of :class:`CellBilinear`.
    """
    return CellBilinear(np.asarray(values)[None], cell_y, cell_x, x).rows(y)[0]


class CellBilinear:
    """Bilinear interpolation of a stack of cell grids ``values[k, cell_y, cell_x]`` onto pixel columns ``x``, for
    any pixel rows (float32 ``(k, len(y), len(x))``; cell centres evenly spaced, constant beyond the outer ones).

    The pass along x (cell rows x pixel columns, small) is done once, here; :meth:`rows` then fills the rows
    asked for: per band of pixel rows between two cell rows the value is ``top[col] + row_fraction *
    (bottom - top)[col]``, two passes over the pixels. A caller can so fill row strips of a block into reused
    buffers, and every pixel gets the same arithmetic (the same bits) whichever strip, block or stack it is in.
    """

    def __init__(self, values: np.ndarray, cell_y: np.ndarray, cell_x: np.ndarray, x: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 3:
            raise ValueError(f"values must be (grids, cell rows, cell columns), not shape {values.shape}")
        cols, col_frac = _position(cell_x, x)
        last_col = np.minimum(cols + 1, values.shape[2] - 1)
        self._along_x = (values[..., cols] * (1.0 - col_frac) + values[..., last_col] * col_frac
                         ).astype(np.float32)
        # (bottom - top) per cell row, the last row's 0 (constant beyond the last centre)
        below = np.minimum(np.arange(values.shape[1]) + 1, values.shape[1] - 1)
        self._step = self._along_x[:, below] - self._along_x
        self._cell_y = np.asarray(cell_y, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, int]:
        """(grids, pixel columns)."""
        return self._along_x.shape[0], self._along_x.shape[2]

    def rows(self, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The grids at pixel rows ``y``: float32 ``(k, len(y), len(x))``, written into ``out`` when given."""
        if out is None:
            out = np.empty((self.shape[0], len(y), self.shape[1]), dtype=np.float32)
        if len(y) == 0:
            return out
        rows, row_frac = _position(self._cell_y, y)
        fraction = row_frac.astype(np.float32)
        # runs of equal cell row (pixel rows are monotonic in y, so each cell row's pixel rows are contiguous)
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(rows)]):
            row = rows[start]
            block = out[:, start:stop]
            np.multiply(fraction[None, start:stop, None], self._step[:, row, None, :], out=block)
            block += self._along_x[:, row, None, :]
        return out


def _position(centres: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centres = np.asarray(centres, dtype=np.float64)
    if len(centres) == 1:
        return np.zeros(len(points), dtype=int), np.zeros(len(points))
    step = centres[1] - centres[0]
    position = np.clip((np.asarray(points, dtype=np.float64) - centres[0]) / step, 0.0, len(centres) - 1.0)
    index = np.minimum(np.floor(position).astype(int), len(centres) - 2)
    return index, position - index
