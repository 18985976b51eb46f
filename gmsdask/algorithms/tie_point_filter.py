"""Outlier filtering of co-registration tie points, and a smooth shift field from the valid ones (pure numpy).

Three levels, as AROSICS (Scheffler et al. 2017), applied in order to the points whose window matched:

1. reliability below ``min_reliability`` percent;
2. SSIM not improved by the correction (``ssim_after < ssim_before``);
3. RANSAC on an affine model mapping target positions to corrected positions (scikit-image's ``ransac``): points
   whose residual exceeds a robust threshold (3 x the scaled median absolute residual, at least
   ``ransac_min_threshold_px`` and at most ``ransac_tolerance_px``) are outliers, but never more than
   ``ransac_max_outlier_fraction`` of the points (AROSICS's ``rs_max_outlier``; the threshold is raised to keep
   to it).

The shift field is a thin-plate-spline (scipy's ``RBFInterpolator``) through the valid points, smoothed, so a
local warp follows terrain-related distortions without reproducing single-point noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RBFInterpolator
from skimage.measure import ransac
from skimage.transform import AffineTransform

__all__ = ["FilterSettings", "outlier_reasons", "fit_shift_field"]

# RANSAC needs this many points to tell an affine model from noise; with fewer, level 3 is skipped.
_MIN_RANSAC_POINTS = 6


@dataclass(frozen=True)
class FilterSettings:
    """Thresholds of the three filter levels (units: percent, SSIM, target pixels)."""

    min_reliability: float = 60.0
    ransac_tolerance_px: float = 2.5
    ransac_min_threshold_px: float = 0.1
    ransac_max_outlier_fraction: float = 0.10
    ransac_max_trials: int = 1000
    seed: int = 0


def outlier_reasons(x_im: np.ndarray, y_im: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                    reliability: np.ndarray, ssim_before: np.ndarray, ssim_after: np.ndarray,
                    matched: np.ndarray, settings: FilterSettings = FilterSettings()) -> np.ndarray:
    """Why each tie point is an outlier: ``""`` (valid), ``"reliability"``, ``"ssim"`` or ``"ransac"``.

    ``x_im``/``y_im``: point positions, target pixels; ``dx``/``dy``: the correction found there, target pixels;
    ``matched``: False for points whose window could not be matched (they are left as ``""`` here; the caller
    names their failure).
    """
    n = len(x_im)
    reasons = np.full(n, "", dtype=object)
    matched = np.asarray(matched, dtype=bool)
    low = matched & ~(np.asarray(reliability) >= settings.min_reliability)
    reasons[low] = "reliability"
    worse = matched & ~low & ~(np.asarray(ssim_after) >= np.asarray(ssim_before))
    reasons[worse] = "ssim"
    keep = np.flatnonzero(matched & (reasons == ""))
    if keep.size >= _MIN_RANSAC_POINTS:
        src = np.column_stack([x_im[keep], y_im[keep]]).astype(float)
        dst = src + np.column_stack([dx[keep], dy[keep]])
        residuals = _ransac_residuals(src, dst, settings)
        limit = _ransac_threshold(residuals, settings)
        reasons[keep[residuals > limit]] = "ransac"
    return reasons


def _ransac_residuals(src: np.ndarray, dst: np.ndarray, settings: FilterSettings) -> np.ndarray:
    model, _ = ransac((src, dst), AffineTransform, min_samples=3, residual_threshold=settings.ransac_tolerance_px,
                      max_trials=settings.ransac_max_trials, rng=settings.seed)
    if model is None:  # no consensus at all: judge against the median shift instead
        return np.hypot(*(dst - src - np.median(dst - src, axis=0)).T)
    return model.residuals(src, dst)


def _ransac_threshold(residuals: np.ndarray, settings: FilterSettings) -> float:
    robust = 3.0 * 1.4826 * float(np.median(residuals))
    limit = min(max(robust, settings.ransac_min_threshold_px), settings.ransac_tolerance_px)
    # never flag more than the allowed fraction: raise the limit to the matching quantile
    quantile = float(np.quantile(residuals, 1.0 - settings.ransac_max_outlier_fraction))
    return max(limit, quantile)


def fit_shift_field(x_im: np.ndarray, y_im: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                    grid_x: np.ndarray, grid_y: np.ndarray, *, smoothing: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The correction (dx, dy) at positions ``grid_x``/``grid_y`` from valid tie points, by a smoothed thin-plate
    spline (all in the same units, e.g. target pixels). With fewer than 3 points the field is their mean (a
    global shift)."""
    points = np.column_stack([x_im, y_im]).astype(float)
    values = np.column_stack([dx, dy]).astype(float)
    targets = np.column_stack([np.ravel(grid_x), np.ravel(grid_y)]).astype(float)
    if len(points) < 3:
        mean = values.mean(axis=0) if len(points) else np.zeros(2)
        field = np.broadcast_to(mean, targets.shape)
    else:
        # scale coordinates to ~unit range so that the smoothing parameter does not depend on the image size
        scale = max(float(np.ptp(points, axis=0).max()), 1.0)
        spline = RBFInterpolator(points / scale, values, kernel="thin_plate_spline", smoothing=smoothing)
        field = spline(targets / scale)
    shape = np.shape(grid_x)
    return field[:, 0].reshape(shape), field[:, 1].reshape(shape)
