"""Sub-pixel shift between two image windows by phase correlation (pure numpy/scipy; no xarray, no Dask).

Conventions (those of AROSICS, so that its users can switch): the result ``(x_shift_px, y_shift_px)`` is the
correction to apply to the *target* window, in pixels, x to the right (columns) and y down (rows): after moving
the target's content by it, ``target_corrected(row, col) = target(row - y_shift_px, col - x_shift_px)`` matches
the reference. Equivalently, a feature at column ``c`` of the target is at column ``c + x_shift_px`` in the
reference.

The method, per window (see docs/coregistration.md for the measurements behind each choice):

1. Both windows are mean-removed and tapered with a Hann window (without the taper the image borders, which do
   not wrap around, produce a cross-shaped artefact that biases single sub-pixel estimates by up to 0.08 px).
2. Cross-power spectrum ``F_ref * conj(F_tgt)``, divided by the square root of its magnitude (AROSICS divides by
   the magnitude, pure phase correlation, which weighs noise-dominated high frequencies as much as the signal:
   3x the error on a noisy target), inverse FFT: a correlation surface with a sharp peak at the shift.
3. Integer peak, then sub-pixel refinement by matrix-multiply DFT upsampling of the cross-power spectrum around
   the peak (Guizar-Sicairos et al. 2008, in two stages: 1/10 px over +-1 px, then 1/200 px over +-0.1 px).
4. Iteration (``max_iter``): the target window is cut again at the integer part of the estimate and moved by its
   fractional part (a Fourier shift of a slightly larger cut), and the residual shift is estimated again, until
   it is below ``tolerance_px``. Windows then hold the same ground, so edge effects and the taper no longer bias
   the result; the last resampled target window is also the "after" window of the SSIM check.

scikit-image's ``phase_cross_correlation`` implements step 3 well but returns neither the correlation surface
(needed for AROSICS's reliability) nor accepts a precomputed reference spectrum (reused across iterations), and
it cannot taper; the ~40 lines of step 3 are therefore our own, tested against known Fourier shifts. SSIM is
computed here with box filters in float32 (identical to ``skimage.metrics.structural_similarity`` with its
defaults, checked by a test) because the reference window's statistics are shared by the "before" and "after"
values and skimage's float64 implementation would be two thirds of the whole matching time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter
from threadpoolctl import ThreadpoolController

__all__ = [
    "FAILURE_REASONS",
    "WindowMatch",
    "MatchSettings",
    "margin_px",
    "match_window",
    "correlation_surface",
    "upsampled_peak",
    "fourier_shift_window",
    "reliability_percent",
    "ssim",
    "single_threaded_blas",
]

#: Flat-window threshold: a window whose standard deviation is below this fraction of its mean magnitude (or
#: exactly zero) has no texture to match.
_FLAT_RELATIVE_STD = 1e-6
#: Extra pixels cut around a window that is resampled by a Fourier shift, so that the wrap-around of the
#: periodic shift stays outside the window.
_FOURIER_MARGIN = 4
_NO_DATA = "no valid data in the window"
_TOO_LITTLE = "too little valid data in the window"
_FLAT = "flat window (no texture to match)"
#: Every reason a window match can fail with (``WindowMatch.status == "failed:" + reason``); a fixed list so that
#: tables can store a code.
FAILURE_REASONS: tuple[str, ...] = (
    *(f"{image}: {problem}" for image in ("reference", "target") for problem in (_NO_DATA, _TOO_LITTLE, _FLAT)),
    "shift exceeds max_shift",
    "no stable peak",
)
# Half-width of AROSICS's 3 x 3 peak box, compared with the rest of the surface for the reliability.
_PEAK_BOX = 1


@dataclass(frozen=True)
class MatchSettings:
    """How one pair of windows is matched.

    Parameters
    ----------
    max_shift
        Largest accepted shift, pixels (either axis); larger results fail with ``shift exceeds max_shift``.
    max_iter
        Most estimate-resample-reestimate rounds (AROSICS: 5).
    tolerance_px
        Iteration stops when the residual shift is below this, pixels.
    taper
        Hann-taper both windows before the FFT.
    normalization
        Exponent of the cross-power magnitude the spectrum is divided by: 1 = pure phase correlation
        (AROSICS), 0.5 (default) = its square root, 0 = plain cross-correlation (docs/coregistration.md).
    min_valid_fraction
        Windows with fewer valid (non-NaN) pixels than this fraction are not matched.
    """

    max_shift: float = 5.0
    max_iter: int = 5
    tolerance_px: float = 0.01
    taper: bool = True
    normalization: float = 0.5
    min_valid_fraction: float = 0.9


@dataclass(frozen=True)
class WindowMatch:
    """The result of matching one window pair.

    ``x_shift_px``/``y_shift_px``: correction to apply to the target, pixels (x right, y down; NaN on failure).
    ``reliability``: percent, AROSICS's measure of the peak's dominance over the rest of the correlation
    surface. ``ssim_before``/``ssim_after``: structural similarity of the reference window with the target window
    before and after the correction. ``status``: ``"success"`` or ``"failed:<reason>"``. ``iterations``: rounds
    used.
    """

    x_shift_px: float
    y_shift_px: float
    reliability: float
    ssim_before: float
    ssim_after: float
    status: str
    iterations: int = 0

    @property
    def success(self) -> bool:
        return self.status == "success"


@cache
def _blas_controller() -> ThreadpoolController:
    # inspecting the loaded BLAS libraries takes ~3 ms; entering a limit afterwards ~10 us
    return ThreadpoolController()


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread (process-wide) inside the block.

    The sub-pixel step multiplies matrices of ~20 x 256; OpenBLAS spreads even those over all cores and, on a
    loaded machine or under Dask's own threads, each product then takes 60 ms instead of 1 ms. Callers that run
    many matches in parallel threads should hold this around the whole computation.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def margin_px(max_shift: float) -> int:
    """Pixels the regions handed to :func:`match_window` must extend beyond the window on every side."""
    return int(math.ceil(max_shift)) + 1 + _FOURIER_MARGIN


def _failed(reason: str, ssim_before: float = math.nan, iterations: int = 0) -> WindowMatch:
    return WindowMatch(math.nan, math.nan, 0.0, ssim_before, math.nan, f"failed:{reason}", iterations)


def _hann(shape: tuple[int, int]) -> np.ndarray:
    rows = np.hanning(shape[0] + 2)[1:-1].astype(np.float32)
    cols = np.hanning(shape[1] + 2)[1:-1].astype(np.float32)
    return np.outer(rows, cols)


def _spectrum(window: np.ndarray, taper: np.ndarray | None) -> np.ndarray:
    centred = window - window.mean(dtype=np.float64).astype(np.float32)
    if taper is not None:
        centred = centred * taper
    return scipy.fft.rfft2(centred, workers=1)


def _normalized(cross: np.ndarray, exponent: float) -> np.ndarray:
    """Cross-power spectrum divided by its magnitude to the power ``exponent`` (1: phase only)."""
    if exponent == 0:
        return cross
    magnitude = np.abs(cross)
    eps = np.float32(magnitude.max() * 1e-12 + np.finfo(np.float32).tiny)
    return cross / (magnitude + eps) if exponent == 1 else cross / (magnitude ** np.float32(exponent) + eps)


def correlation_surface(cross_power: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The real correlation surface of a half (``rfft2``) cross-power spectrum, zero shift at ``[0, 0]``."""
    return scipy.fft.irfft2(cross_power, s=shape, workers=1)


def _integer_peak(surface: np.ndarray) -> tuple[int, int]:
    """(dy, dx) of the surface maximum, wrapped to [-n/2, n/2)."""
    row, col = np.unravel_index(int(np.argmax(surface)), surface.shape)
    rows, cols = surface.shape
    return (row - rows if row >= rows // 2 else row), (col - cols if col >= cols // 2 else col)


@cache
def _offset_kernel(n: int, half: bool, half_width: float, upsample: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of one upsampling stage and the DFT kernel evaluating them around position 0 (cached: the same
    few stages serve every window)."""
    steps = int(round(half_width * upsample))
    offsets = np.arange(-steps, steps + 1) / upsample  # integer steps: offset 0 is exactly 0
    kernel = np.exp(2j * np.pi * np.outer(offsets, _frequencies(n, half)) / n).astype(np.complex64)
    kernel.flags.writeable = False
    return offsets, kernel


def _frequencies(n: int, half: bool) -> np.ndarray:
    return np.arange(n // 2 + 1) if half else scipy.fft.fftfreq(n, 1.0 / n)


def _dft_kernel(n: int, centre: float, half: bool, half_width: float, upsample: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, kernel): the kernel's rows evaluate an inverse DFT of length ``n`` (``rfft`` half when ``half``)
    at ``centre + offsets``; exp(a + b) = exp(a) exp(b) turns one cached matrix and one vector into it."""
    offsets, base = _offset_kernel(n, half, half_width, upsample)
    shift = np.exp(2j * np.pi * centre * _frequencies(n, half) / n).astype(np.complex64)
    return offsets, base * shift


def upsampled_peak(cross_power: np.ndarray, shape: tuple[int, int], peak: tuple[float, float],
                   *, stages: tuple[tuple[float, int], ...] = ((1.0, 10), (0.1, 200))) -> tuple[float, float]:
    """Sub-pixel (dy, dx) of the correlation peak near ``peak`` by matrix-multiply DFT upsampling.

    ``cross_power`` is a half spectrum (``rfft2`` layout) of a real surface of ``shape``. Each stage evaluates the
    band-limited surface on a grid of +-``half_width`` px around the current peak at ``1/upsample`` px spacing
    (Guizar-Sicairos, Thurman & Fienup 2008) and moves the peak to its maximum.
    """
    rows, cols = shape
    # real surface from a half spectrum: columns 1..n/2-1 stand for their conjugate twins, hence weight 2
    weights = np.full(cols // 2 + 1, 2.0, dtype=np.float32)
    weights[0] = 1.0
    if cols % 2 == 0:
        weights[-1] = 1.0
    weighted = cross_power * weights
    dy, dx = float(peak[0]), float(peak[1])
    for half_width, upsample in stages:
        offsets, row_kernel = _dft_kernel(rows, dy, False, half_width, upsample)  # (k, rows)
        _, col_kernel = _dft_kernel(cols, dx, True, half_width, upsample)         # (k, cols//2+1)
        values = (row_kernel @ weighted @ col_kernel.T).real
        best_row, best_col = np.unravel_index(int(np.argmax(values)), values.shape)
        dy, dx = dy + offsets[best_row], dx + offsets[best_col]
    return dy, dx


def reliability_percent(surface: np.ndarray) -> float:
    """AROSICS's reliability: 100 * (1 - (mean + 2 std of the surface without the 3x3 peak) / mean of the peak).

    ``surface`` is a correlation surface with zero shift at ``[0, 0]``; it is rolled so the peak is central.
    Clipped to [0, 100].
    """
    dy, dx = _integer_peak(surface)
    centred = np.roll(surface, (-dy + surface.shape[0] // 2, -dx + surface.shape[1] // 2), axis=(0, 1))
    rc, cc = surface.shape[0] // 2, surface.shape[1] // 2
    box = centred[rc - _PEAK_BOX:rc + _PEAK_BOX + 1, cc - _PEAK_BOX:cc + _PEAK_BOX + 1]
    peak_power = float(np.abs(box).mean())
    rest = np.abs(centred).astype(np.float64)
    total, total_sq, n = rest.sum(), (rest ** 2).sum(), rest.size
    box_abs = np.abs(box).astype(np.float64)
    total -= box_abs.sum()
    total_sq -= (box_abs ** 2).sum()
    n -= box_abs.size
    mean = total / n
    std = math.sqrt(max(total_sq / n - mean ** 2, 0.0))
    if peak_power <= 0:
        return 0.0
    return float(min(max(100.0 * (1.0 - (mean + 2.0 * std) / peak_power), 0.0), 100.0))


def fourier_shift_window(region: np.ndarray, shift_yx: tuple[float, float]) -> np.ndarray:
    """``region`` with its content moved by ``shift_yx`` (rows down, cols right) pixels, by a Fourier phase ramp.

    The shift is periodic: content leaving one edge enters at the other, so callers crop a margin afterwards.
    """
    rows, cols = region.shape
    spectrum = scipy.fft.rfft2(region, workers=1)
    # the phase ramp is separable: an outer product of two 1-D ramps costs rows + cols exponentials
    ramp_y = np.exp(-2j * np.pi * scipy.fft.fftfreq(rows) * shift_yx[0]).astype(np.complex64)
    ramp_x = np.exp(-2j * np.pi * scipy.fft.rfftfreq(cols) * shift_yx[1]).astype(np.complex64)
    spectrum *= ramp_y[:, None]
    spectrum *= ramp_x[None, :]
    return scipy.fft.irfft2(spectrum, s=region.shape, workers=1).astype(np.float32, copy=False)


def _ssim_stats(window: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    mean = uniform_filter(window, size)
    var = uniform_filter(window * window, size) - mean * mean
    return mean, var


def ssim(reference: np.ndarray, target: np.ndarray, *, data_range: float, win_size: int = 7,
         _ref_stats: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Mean structural similarity of two windows, as ``skimage.metrics.structural_similarity`` with its defaults
    (7x7 box, K1 0.01, K2 0.03, sample covariance, mean over the area the box fully covers)."""
    ref = reference.astype(np.float32, copy=False)
    tgt = target.astype(np.float32, copy=False)
    n = win_size * win_size
    cov_norm = np.float32(n / (n - 1))
    mu_r, var_r = _ref_stats if _ref_stats is not None else _ssim_stats(ref, win_size)
    mu_t, var_t = _ssim_stats(tgt, win_size)
    cov = uniform_filter(ref * tgt, win_size) - mu_r * mu_t
    c1 = np.float32((0.01 * data_range) ** 2)
    c2 = np.float32((0.03 * data_range) ** 2)
    num = (2 * mu_r * mu_t + c1) * (2 * cov_norm * cov + c2)
    den = (mu_r * mu_r + mu_t * mu_t + c1) * (cov_norm * (var_r + var_t) + c2)
    pad = (win_size - 1) // 2
    return float((num / den)[pad:-pad, pad:-pad].mean(dtype=np.float64))


def _prepare(region: np.ndarray, min_valid_fraction: float, window: tuple[slice, slice]) -> tuple[np.ndarray, str]:
    """NaN-free float32 copy of a region (gaps filled with the window mean) or a failure reason."""
    region = np.asarray(region, dtype=np.float32)
    inner = region[window]
    valid = np.isfinite(inner)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return region, _NO_DATA
    if n_valid < min_valid_fraction * inner.size:
        return region, _TOO_LITTLE
    values = inner[valid]
    mean = float(values.mean(dtype=np.float64))
    std = float(values.std(dtype=np.float64))
    if std == 0.0 or std <= _FLAT_RELATIVE_STD * abs(mean):
        return region, _FLAT
    if not np.isfinite(region).all():
        region = np.where(np.isfinite(region), region, np.float32(mean))
    return region, ""


def match_window(reference: np.ndarray, target: np.ndarray, window_size: tuple[int, int],
                 settings: MatchSettings = MatchSettings()) -> WindowMatch:
    """Match the central ``window_size`` (rows, cols) window of two equally shaped regions (same pixel grid).

    Both regions must extend :func:`margin_px` (``settings.max_shift``) pixels beyond the window on every side
    (the target is cut again inside that margin while iterating). NaN marks no data. Never raises for bad
    image content: empty, clouded, flat or unmatched windows give ``status="failed:<reason>"``.
    """
    with single_threaded_blas():
        return _match_window(reference, target, window_size, settings)


def _match_window(reference: np.ndarray, target: np.ndarray, window_size: tuple[int, int],
                  settings: MatchSettings) -> WindowMatch:
    if reference.shape != target.shape:
        raise ValueError(f"reference region {reference.shape} and target region {target.shape} differ in shape")
    win_rows, win_cols = window_size
    margin = margin_px(settings.max_shift)
    if reference.shape != (win_rows + 2 * margin, win_cols + 2 * margin):
        raise ValueError(f"regions must be the window {window_size} plus {margin} px on every side, "
                         f"got {reference.shape}")
    inner = (slice(margin, margin + win_rows), slice(margin, margin + win_cols))
    ref_region, reason = _prepare(reference, settings.min_valid_fraction, inner)
    if reason:
        return _failed(f"reference: {reason}")
    tgt_region, reason = _prepare(target, settings.min_valid_fraction, inner)
    if reason:
        return _failed(f"target: {reason}")

    ref_win = np.ascontiguousarray(ref_region[inner])
    tgt_win = np.ascontiguousarray(tgt_region[inner])
    data_range = float(max(ref_win.max(), tgt_win.max()) - min(ref_win.min(), tgt_win.min()))
    ref_stats = _ssim_stats(ref_win, 7)
    ssim_before = ssim(ref_win, tgt_win, data_range=data_range, _ref_stats=ref_stats)
    taper = _hann(window_size) if settings.taper else None
    ref_spectrum = _spectrum(ref_win, taper)

    shift = np.zeros(2)  # (dy, dx): the correction found so far
    moved = tgt_win
    surface = None
    iterations = 0
    for iterations in range(1, settings.max_iter + 1):
        raw_cross = ref_spectrum * np.conj(_spectrum(moved, taper))
        cross = _normalized(raw_cross, settings.normalization)
        surface = correlation_surface(cross, window_size)
        residual = np.array(upsampled_peak(cross, window_size, _integer_peak(surface)))
        shift = shift + residual
        if np.abs(shift).max() > settings.max_shift:
            return _failed("shift exceeds max_shift", ssim_before, iterations)
        moved = _shifted_target(tgt_region, shift, inner, margin)
        if np.abs(residual).max() <= settings.tolerance_px:
            break
    else:
        # not converged: a last correction of more than half a pixel means the peak is still jumping around
        if settings.max_iter > 1 and np.abs(residual).max() > 0.5:
            return _failed("no stable peak", ssim_before, iterations)

    ssim_after = ssim(ref_win, moved, data_range=data_range, _ref_stats=ref_stats)
    # reliability is AROSICS's measure on the phase-only surface whatever normalization estimated the shift,
    # so that its thresholds (60 %) keep their meaning
    if settings.normalization != 1:
        surface = correlation_surface(_normalized(raw_cross, 1.0), window_size)
    return WindowMatch(float(shift[1]), float(shift[0]), reliability_percent(surface), ssim_before, ssim_after,
                       "success", iterations)


def _shifted_target(tgt_region: np.ndarray, shift: np.ndarray, inner: tuple[slice, slice],
                    margin: int) -> np.ndarray:
    """The target window with the correction ``shift`` (dy, dx) applied: cut at the integer part, Fourier-moved
    by the fractional part."""
    whole = np.round(shift).astype(int)
    frac = shift - whole
    pad = _FOURIER_MARGIN
    r0 = inner[0].start - whole[0] - pad
    c0 = inner[1].start - whole[1] - pad
    rows = inner[0].stop - inner[0].start
    cols = inner[1].stop - inner[1].start
    cut = tgt_region[r0:r0 + rows + 2 * pad, c0:c0 + cols + 2 * pad]
    if not frac.any():
        return np.ascontiguousarray(cut[pad:-pad, pad:-pad])
    return fourier_shift_window(cut, (frac[0], frac[1]))[pad:-pad, pad:-pad]
