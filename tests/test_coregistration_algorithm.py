"""The numpy phase-correlation engine: known sub-pixel shifts of a real image, failures, SSIM, tie-point filters."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from gmsdask.algorithms.phase_correlation import (
    FAILURE_REASONS,
    MatchSettings,
    margin_px,
    match_window,
    reliability_percent,
    ssim,
    upsampled_peak,
)
from gmsdask.algorithms.tie_point_filter import FilterSettings, fit_shift_field, outlier_reasons

from .coreg_data import CROP_WINDOW, REF_NAME, central_regions, degraded, fourier_shifted, pair_path, read_reflectance

WINDOW = 256


@pytest.fixture(scope="session")
def crop() -> np.ndarray:
    values, _, _ = read_reflectance(pair_path(REF_NAME), CROP_WINDOW)
    assert np.isfinite(values).all()
    return values


def known_shifts() -> np.ndarray:
    """24 (dy, dx) content shifts up to +-4 px: 8 near half-pixel fractions, 16 random fractions."""
    rng = np.random.default_rng(20260608)
    near_half = np.array([[0.49, -0.51], [-0.5, 0.5], [1.51, 2.49], [-2.49, -3.51], [3.5, -0.49],
                          [-3.49, 1.5], [0.51, 3.49], [-1.5, -2.5]])
    return np.vstack([near_half, rng.uniform(-4.0, 4.0, (16, 2))])


@pytest.fixture(scope="session")
def shifted_pairs(crop) -> dict[bool, list[tuple[np.ndarray, np.ndarray]]]:
    """(reference region, target region) for every known shift, clean (False) and degraded (True); made once."""
    rng = np.random.default_rng(7)
    pairs: dict[bool, list] = {False: [], True: []}
    for dy, dx in known_shifts():
        target = fourier_shifted(crop, (dy, dx))
        pairs[False].append(central_regions(crop, target, WINDOW))
        pairs[True].append(central_regions(crop, degraded(target, rng), WINDOW))
    return pairs


def _errors(pairs: list[tuple[np.ndarray, np.ndarray]], settings: MatchSettings, count: int | None = None
            ) -> np.ndarray:
    """Estimated correction + applied content shift (0 when exact), px, for the first ``count`` known shifts;
    (n, 2) as (dy, dx)."""
    errors = []
    for (ref_region, tgt_region), (dy, dx) in list(zip(pairs, known_shifts()))[:count]:
        result = match_window(ref_region, tgt_region, (WINDOW, WINDOW), settings)
        assert result.success, result.status
        # the target's content moved by (dy, dx): the correction to apply is (-dy, -dx)
        errors.append((result.y_shift_px + dy, result.x_shift_px + dx))
    return np.array(errors)


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors ** 2)))


def test_known_subpixel_shifts_of_a_real_image_are_recovered(shifted_pairs):
    errors = _errors(shifted_pairs[False], MatchSettings())
    assert len(errors) == 24
    assert rmse(errors) < 0.03
    assert np.abs(errors).max() < 0.03
    near_half = errors[:8]
    assert rmse(near_half) < 0.03  # no bias at half-pixel fractions (AROSICS's side-maximum estimator has one)


def test_integer_shifts_are_recovered_exactly(crop):
    for dy, dx in [(0, 0), (3, -2), (-4, 4), (1, 0), (0, -3)]:
        target = np.roll(crop, (dy, dx), axis=(0, 1))
        result = match_window(*central_regions(crop, target, WINDOW), (WINDOW, WINDOW))
        assert result.success
        assert (result.y_shift_px, result.x_shift_px) == (-dy, -dx)
        assert result.ssim_after == pytest.approx(1.0)


def test_blurred_rescaled_noisy_target_stays_below_005_px(shifted_pairs):
    errors = _errors(shifted_pairs[True], MatchSettings())
    assert rmse(errors) < 0.05


def test_measured_effect_of_taper_and_normalization(shifted_pairs):
    """The documented choices (docs/coregistration.md): the Hann taper matters for a single estimate on windows
    whose borders do not wrap around; the half-normalized cross-power spectrum beats pure phase correlation when
    the target is noisy."""
    clean, noisy = shifted_pairs[False], shifted_pairs[True]
    single_tapered = rmse(_errors(clean, MatchSettings(max_iter=1), 12))
    single_untapered = rmse(_errors(clean, MatchSettings(max_iter=1, taper=False), 12))
    assert single_tapered < single_untapered / 2
    phase_only = rmse(_errors(noisy, MatchSettings(normalization=1.0), 12))
    half = rmse(_errors(noisy, MatchSettings(normalization=0.5), 12))
    assert half < phase_only / 1.5


def test_failures_are_named_outcomes_not_exceptions(crop):
    ref_region, _ = central_regions(crop, crop, WINDOW)
    flat = np.full_like(ref_region, 0.2)
    clouded = np.full_like(ref_region, np.nan)
    half_clouded = ref_region.copy()
    half_clouded[: ref_region.shape[0] // 2] = np.nan
    far = np.roll(crop, (0, 9), axis=(0, 1))
    cases = {
        "target: flat window (no texture to match)": (ref_region, flat),
        "reference: flat window (no texture to match)": (flat, ref_region),
        "target: no valid data in the window": (ref_region, clouded),
        "target: too little valid data in the window": (ref_region, half_clouded),
        "shift exceeds max_shift": central_regions(crop, far, WINDOW),
    }
    for reason, (ref, tgt) in cases.items():
        result = match_window(ref, tgt, (WINDOW, WINDOW))
        assert not result.success
        assert result.status == f"failed:{reason}"
        assert reason in FAILURE_REASONS
        assert np.isnan(result.x_shift_px) and np.isnan(result.y_shift_px)


def test_scattered_nans_are_filled_not_fatal(crop):
    target = fourier_shifted(crop, (1.3, -0.7))
    target[::17, ::13] = np.nan  # ~0.5 % of the pixels
    result = match_window(*central_regions(crop, target, WINDOW), (WINDOW, WINDOW))
    assert result.success
    assert abs(result.y_shift_px + 1.3) < 0.05 and abs(result.x_shift_px - 0.7) < 0.05


def test_regions_of_the_wrong_size_are_a_programming_error(crop):
    with pytest.raises(ValueError, match="plus"):
        match_window(crop[:300, :300], crop[:300, :300], (WINDOW, WINDOW))


def test_ssim_equals_scikit_image(crop):
    a = crop[:128, :128]
    b = fourier_shifted(crop, (0.4, 0.3))[:128, :128]
    assert ssim(a, b, data_range=1.0) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-5)


def test_upsampled_peak_finds_a_fractional_peak():
    # a pure phase ramp is a delta at the shift: the upsampled DFT must find it to 1/200 px
    rows, cols = 64, 64
    ky = np.fft.fftfreq(rows)[:, None]
    kx = np.fft.rfftfreq(cols)[None, :]
    spectrum = np.exp(-2j * np.pi * (ky * 2.37 + kx * -1.61)).astype(np.complex64)
    dy, dx = upsampled_peak(spectrum, (rows, cols), (2, -2))
    assert dy == pytest.approx(2.37, abs=0.005) and dx == pytest.approx(-1.61, abs=0.005)


def test_reliability_is_high_for_a_sharp_peak_and_low_for_noise():
    sharp = np.zeros((64, 64))
    sharp[3, 5] = 1.0
    assert reliability_percent(sharp) > 95
    noise = np.random.default_rng(0).random((64, 64))
    assert reliability_percent(noise) < 10


def test_three_level_outlier_filter():
    rng = np.random.default_rng(3)
    n = 60
    x, y = rng.uniform(0, 2000, n), rng.uniform(0, 2000, n)
    dx, dy = -0.65 + rng.normal(0, 0.03, n), 1.8 + rng.normal(0, 0.03, n)
    dx[:3] += 2.0  # three gross mismatches
    reliability = np.full(n, 90.0)
    reliability[10] = 40.0
    before, after = np.full(n, 0.6), np.full(n, 0.8)
    after[20] = 0.5
    matched = np.ones(n, dtype=bool)
    matched[30] = False
    reasons = outlier_reasons(x, y, dx, dy, reliability, before, after, matched, FilterSettings())
    assert reasons[10] == "reliability" and reasons[20] == "ssim" and reasons[30] == ""
    assert list(reasons[:3]) == ["ransac"] * 3
    # never more than 10 % flagged by RANSAC
    assert (reasons == "ransac").sum() <= 0.1 * (n - 3)


def test_shift_field_reproduces_a_smooth_field():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 1000, 80), rng.uniform(0, 1000, 80)
    true = lambda px, py: (0.5 + 0.001 * px, -1.0 + 0.0005 * py)  # noqa: E731
    dx, dy = true(x, y)
    gx, gy = np.meshgrid(np.linspace(100, 900, 5), np.linspace(100, 900, 5))
    fx, fy = fit_shift_field(x, y, dx, dy, gx, gy, smoothing=0.0)
    tx, ty = true(gx, gy)
    assert np.abs(fx - tx).max() < 1e-3 and np.abs(fy - ty).max() < 1e-3
    assert margin_px(5) > 5
