"""Spectral homogenization: the committed models against held-back spectra, and the baselines' definitions.

Held-back spectra: AVIRIS image lines 40-49 and every fifth simulated spectrum of each category
(``gmsdask.spectral.library``); the committed models never saw them.
"""

from __future__ import annotations

import numpy as np
import pytest

from gmsdask.algorithms.spechomo_regression import (assign_clusters, fit_cluster_regression,
                                                     predict_cluster_regression)
from gmsdask.algorithms.spechomo_simple import nearest_band_indices
from gmsdask.errors import ConfigError
from gmsdask.spectral import SpectralHomogenizer
from gmsdask.spectral.homogenizer import MODEL_FILE
from gmsdask.spectral.library import build_library
from gmsdask.spectral.training import pair_band_values, rmse_per_band, score_methods

from .conftest import data_path

S2A, L8 = "SENTINEL_2A", "LANDSAT_8"
SENSOR_NOISE = 0.001  # reflectance: below this a band's error is within sensor noise


@pytest.fixture(scope="session")
def library():
    return build_library(data_path("hyperspectral", "AV_mastercal_testdata.bsq"))


@pytest.fixture(scope="session")
def held_back_scores(library):
    return {(source, target): score_methods(library, source, target, ["none", "LI", "bandpass", "LR", "QR"])
            for source, target in [(S2A, L8), (L8, S2A)]}


@pytest.mark.parametrize("source,target", [(S2A, L8), (L8, S2A)])
def test_lr_beats_nearest_band_interpolation_and_bandpass_in_every_band(held_back_scores, source, target):
    scores = held_back_scores[(source, target)]
    bands = SpectralHomogenizer(source, target, "LR").target_bands
    for baseline in ("none", "LI", "bandpass"):
        for band, lr, other in zip(bands, scores["LR"], scores[baseline]):
            if not np.isfinite(other):  # bandpass has no coefficient for this band (red edge, B08)
                continue
            if other < SENSOR_NOISE:
                assert lr < SENSOR_NOISE, f"{source}->{target} {band}: LR {lr:.5f} left sensor noise"
            else:
                assert lr < other, f"{source}->{target} {band}: LR {lr:.5f} not better than {baseline} {other:.5f}"


def test_red_edge_bands_oli_lacks_are_predicted_within_0_02(held_back_scores):
    h = SpectralHomogenizer(L8, S2A, "LR")
    scores = dict(zip(h.target_bands, held_back_scores[(L8, S2A)]["LR"]))
    for band in ("B05", "B06", "B07"):
        assert scores[band] < 0.02, f"{band}: {scores[band]:.4f}"
    # and the nearest band or interpolation would not have made it
    assert dict(zip(h.target_bands, held_back_scores[(L8, S2A)]["LI"]))["B06"] > 0.05


def test_predicted_error_matches_the_held_back_error(library):
    """The accuracy layer is calibrated: its RMS over held-back spectra is within a factor 2 of the real error."""
    h = SpectralHomogenizer(L8, S2A, "LR")
    x, y = pair_band_values(library, L8, S2A)
    rows = library.held_back
    prediction, error = h.predict_with_error(x[rows])
    real = rmse_per_band(prediction, y[rows])
    expected = np.sqrt(np.mean(error ** 2, axis=0))
    assert np.all(expected > 0)
    ratio = expected / real
    assert np.all((ratio > 0.5) & (ratio < 2.0)), dict(zip(h.target_bands, ratio.round(2)))


def test_committed_models_are_what_the_fitting_script_makes(library):
    """Regenerates the training library, refits one pair and predicts the held-back spectra like the commit."""
    assert MODEL_FILE.stat().st_size < 2_000_000
    x, y = pair_band_values(library, S2A, L8)
    h = SpectralHomogenizer(S2A, L8, "none")
    baseline = nearest_band_indices(h.source_wavelength_nm, h.target_wavelength_nm)
    train = ~library.held_back
    refit = fit_cluster_regression(x[train], y[train], baseline, n_clusters=50, degree=1, seed=0)
    committed = SpectralHomogenizer(S2A, L8, "LR").predict(x[library.held_back])
    regenerated, _ = predict_cluster_regression(refit, x[library.held_back])
    assert np.nanmean(np.abs(committed - regenerated)) < 1e-5


def test_none_renames_the_nearest_band():
    h = SpectralHomogenizer(L8, S2A, "none")
    x = np.arange(1, 8, dtype=np.float32) / 10  # B1..B7 = 0.1..0.7
    out = dict(zip(h.target_bands, h.predict(x)))
    assert out["B01"] == pytest.approx(0.1) and out["B02"] == pytest.approx(0.2)
    assert out["B05"] == pytest.approx(0.4)  # 704 nm is closer to OLI red (655) than NIR (865)
    assert out["B07"] == pytest.approx(0.5) and out["B8A"] == pytest.approx(0.5)
    assert out["B11"] == pytest.approx(0.6) and out["B12"] == pytest.approx(0.7)
    back = SpectralHomogenizer(S2A, L8, "none")
    s2 = np.arange(1, 12, dtype=np.float32) / 100
    assert dict(zip(back.target_bands, back.predict(s2)))["B5"] == pytest.approx(s2[back.source_bands.index("B8A")])


def test_linear_interpolation_is_linear_between_band_centres():
    h = SpectralHomogenizer(L8, S2A, "LI")
    wavelength = np.array(h.source_wavelength_nm)
    x = (0.1 + 1e-4 * wavelength).astype(np.float32)  # a straight line in wavelength is reproduced exactly
    out = dict(zip(h.target_bands, h.predict(x)))
    for band, centre in zip(h.target_bands, h.target_wavelength_nm):
        inside = np.clip(centre, wavelength.min(), wavelength.max())  # outside: the outermost band, no extrapolation
        assert out[band] == pytest.approx(0.1 + 1e-4 * inside, abs=1e-6), band
    assert out["B01"] == x[0]  # 442.7 nm lies just short of OLI B1's 443.0 nm


def test_bandpass_applies_and_inverts_the_hls_coefficients():
    s2a_to_oli = SpectralHomogenizer(S2A, L8, "bandpass")
    s2 = np.full(11, 0.2, dtype=np.float32)
    oli = dict(zip(s2a_to_oli.target_bands, s2a_to_oli.predict(s2)))
    assert oli["B4"] == pytest.approx(0.9765 * 0.2 + 0.0009, abs=1e-6)
    assert oli["B5"] == pytest.approx(0.9983 * 0.2 - 0.0001, abs=1e-6)
    oli_to_s2a = SpectralHomogenizer(L8, S2A, "bandpass")
    s2_back = dict(zip(oli_to_s2a.target_bands, oli_to_s2a.predict(np.full(7, 0.2, dtype=np.float32))))
    assert s2_back["B04"] == pytest.approx((0.2 - 0.0009) / 0.9765, abs=1e-6)
    assert np.isnan(s2_back["B05"]) and np.isnan(s2_back["B08"])  # HLS does not make these from OLI
    with pytest.raises(ConfigError, match="bandpass coefficients"):
        SpectralHomogenizer("LANDSAT_5", S2A, "bandpass")


def test_predict_shapes_no_data_and_errors():
    h = SpectralHomogenizer(S2A, L8, "LR")
    assert h.source_bands == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    assert h.target_bands == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    rng = np.random.default_rng(1)
    x = rng.uniform(0.02, 0.4, (4, 5, 11)).astype(np.float32)
    x[1, 2, 3] = np.nan
    prediction, error = h.predict_with_error(x)
    assert prediction.shape == error.shape == (4, 5, 7) and prediction.dtype == np.float32
    assert np.all(np.isnan(prediction[1, 2])) and np.all(np.isnan(error[1, 2]))
    finite = np.isfinite(prediction[..., 0])
    assert finite.sum() == 19 and np.all(error[finite] > 0)
    np.testing.assert_array_equal(h.predict(x), prediction)
    np.testing.assert_array_equal(h.predict_error(x), error)


def test_same_instrument_passes_bands_and_stand_ins_use_their_sibling():
    x = np.linspace(0.05, 0.5, 11, dtype=np.float32)
    same = SpectralHomogenizer(S2A, S2A, "LR", target_bands=["B04", "B8A"])
    np.testing.assert_array_equal(same.predict(x), x[[3, 8]])
    np.testing.assert_array_equal(same.predict_error(x), [0.0, 0.0])
    s2c = SpectralHomogenizer("SENTINEL_2C", L8, "LR").predict(x)
    np.testing.assert_array_equal(s2c, SpectralHomogenizer("SENTINEL_2B", L8, "LR").predict(x))


def test_bad_requests_name_the_option():
    with pytest.raises(ConfigError, match="spechomo_method"):
        SpectralHomogenizer(S2A, L8, "XGB")
    with pytest.raises(ConfigError, match="target_bands"):
        SpectralHomogenizer(L8, S2A, "LR", target_bands=["B09"])
    with pytest.raises(ConfigError, match="spechomo_n_clusters"):
        SpectralHomogenizer(L8, S2A, "LR", n_clusters=30)
    with pytest.raises(ConfigError, match="no fitted LR model"):
        SpectralHomogenizer(S2A, "LANDSAT_5", "LR")
    with pytest.raises(ConfigError, match=r"needs \(\.\.\., 7\)"):
        SpectralHomogenizer(L8, S2A, "LR").predict(np.zeros((3, 11)))


def _numpy_predict(model, x):
    """The numpy prediction the compiled one replaced (2026-12-01): the regression of each pixel by
    ``assign_clusters`` (distances by a matrix product), applied by numpy. The reference of the test below."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float32)
    n_source = flat.shape[1]
    with np.errstate(invalid="ignore"):  # the non-finite pixels, set to NaN below
        labels = assign_clusters(model, flat)
        coefficients = model.coefficients[labels]  # (n, n_terms, n_target)
        predicted = flat[:, model.baseline_index] + coefficients[:, 0] + np.einsum(
            "ns,nst->nt", flat, coefficients[:, 1:n_source + 1])
        if model.degree == 2:
            predicted += np.einsum("ns,nst->nt", flat * flat, coefficients[:, n_source + 1:])
    invalid = ~np.all(np.isfinite(flat), axis=1)
    predicted[invalid] = np.nan
    error = model.rmse[labels].copy()
    error[invalid] = np.nan
    return predicted.astype(np.float32), error, labels


@pytest.mark.parametrize("degree", [1, 2])
def test_compiled_prediction_matches_the_numpy_prediction(degree):
    """Every regression of the model (50 clusters and the global one beyond ``far_distance``) predicts what numpy
    predicts; a pixel may take the other of two nearly equidistant centroids (the distances are summed in another
    order), which the test allows for one pixel in 10 000 at most."""
    rng = np.random.default_rng(7)
    source = rng.uniform(0.0, 0.6, (3000, 5))
    target = np.column_stack([source @ rng.uniform(0.2, 0.5, 5), source[:, 1] ** 2 + 0.1, source[:, 4] * 0.9])
    model = fit_cluster_regression(source, target, np.array([0, 1, 4]), n_clusters=50, degree=degree)
    x = rng.uniform(-0.05, 0.8, (120, 250, 5)).astype(np.float32)  # beyond the training range: far pixels too
    x[3, 4, 2] = np.nan
    x[7, :, 0] = np.inf
    prediction, error = predict_cluster_regression(model, x)
    expected, expected_error, labels = _numpy_predict(model, x)
    assert prediction.shape == error.shape == (120, 250, 3) and prediction.dtype == error.dtype == np.float32
    flat, flat_error = prediction.reshape(-1, 3), error.reshape(-1, 3)
    assert np.array_equal(np.isnan(flat), np.isnan(expected)) and np.isnan(flat).sum() == 3 * 251
    assert len(set(labels.tolist())) == 51  # every cluster and the global regression were used
    same_regression = np.all(flat_error == expected_error, axis=1) | np.isnan(expected_error[:, 0])
    assert same_regression.mean() > 1 - 1e-4
    np.testing.assert_allclose(flat[same_regression], expected[same_regression], rtol=0, atol=2e-6)
