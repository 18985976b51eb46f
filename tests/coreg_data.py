"""Inputs of the co-registration tests: crops of the real T33UUU pair and known-shift pairs made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.windows import Window
from scipy.ndimage import fourier_shift, gaussian_filter

from gmsdask.algorithms.phase_correlation import margin_px

from .conftest import data_path

REF_NAME = "ref_S2A_20160608T153121_T33UUU_sub.jp2"
TGT_NAME = "tgt_S2A_20160529T153631_T33UUU_sub.jp2"
#: A textured, cloud-free 512 x 512 part of the reference image (fields, roads, a village), rows/cols.
CROP_WINDOW = Window(900, 1200, 512, 512)


def pair_path(name: str) -> Path:
    return data_path("coregistration", name)


def read_reflectance(path: Path, window: Window | None = None) -> tuple[np.ndarray, Affine, str]:
    """Band 1 as float32 reflectance (DN / 10000, DN 0 = no data -> NaN), its transform and CRS."""
    with rasterio.open(path) as src:
        dn = src.read(1, window=window)
        transform = src.window_transform(window) if window is not None else src.transform
        crs = src.crs.to_string()
    out = dn.astype(np.float32) / 10000.0
    out[dn == 0] = np.nan
    return out, transform, crs


def georeferenced(values: np.ndarray, transform: Affine, crs: str) -> xr.DataArray:
    """A 2-D DataArray with pixel-centre x/y coordinates and a rioxarray CRS."""
    rows, cols = values.shape
    x = transform.c + (np.arange(cols) + 0.5) * transform.a
    y = transform.f + (np.arange(rows) + 0.5) * transform.e
    image = xr.DataArray(values, dims=("y", "x"), coords={"x": x, "y": y})
    return image.rio.write_crs(crs).rio.write_transform(transform)


def fourier_shifted(image: np.ndarray, shift_yx: tuple[float, float]) -> np.ndarray:
    """``image`` with its content moved by ``shift_yx`` (rows down, cols right) pixels, exactly (periodic)."""
    spectrum = fourier_shift(np.fft.fft2(image.astype(np.float64)), shift_yx)
    return np.fft.ifft2(spectrum).real.astype(np.float32)


def degraded(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another sensor's view of the same ground: blurred (Gaussian sigma 1 px), gain 0.8, offset 0.03, and
    white noise of 5 % of the image's standard deviation."""
    noisy = gaussian_filter(image, 1.0) * 0.8 + 0.03
    return (noisy + rng.normal(0.0, 0.05 * float(np.std(image)), image.shape)).astype(np.float32)


def central_regions(reference: np.ndarray, target: np.ndarray, window: int,
                    max_shift: float = 5) -> tuple[np.ndarray, np.ndarray]:
    """The regions ``match_window`` takes: the central window plus its margin, cut from both images; the
    images' own borders (where a periodic Fourier shift wraps around) stay outside."""
    size = window + 2 * margin_px(max_shift)
    r0 = (reference.shape[0] - size) // 2
    c0 = (reference.shape[1] - size) // 2
    cut = (slice(r0, r0 + size), slice(c0, c0 + size))
    return reference[cut], target[cut]


def texture(shift_m: tuple[float, float] = (0.0, 0.0), seed: int = 0, n_waves: int = 40,
            min_wavelength_m: float = 60.0):
    """Band-limited reflectance as a function of map coordinates (no wave shorter than ``min_wavelength_m`` along
    either axis), with its content displaced by ``shift_m`` = (east, north) metres; for scene-factory scenes and
    synthetic grids."""
    rng = np.random.default_rng(seed)
    k_max = 2 * np.pi / min_wavelength_m
    k = rng.uniform(-k_max, k_max, (n_waves, 2))
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    amplitude = rng.uniform(0.01, 0.03, n_waves)

    def value(band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xs, ys = x - shift_m[0], y - shift_m[1]
        out = 0.2 + sum(a * np.sin(kx * xs + ky * ys + p) for (kx, ky), p, a in zip(k, phase, amplitude))
        return np.asarray(out, dtype=np.float32)
    return value
