"""Fitting and scoring the homogenization models of one sensor pair from the training library.

Models are fitted on the library's training split only, so the held-back split scores them honestly.
The fitted arrays are what ``scripts/fit_spechomo.py`` writes to ``gmsdask/spectral/data``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..algorithms.spechomo_regression import ClusterRegression, fit_cluster_regression
from ..algorithms.spechomo_simple import nearest_band_indices
from .bands import central_wavelengths_nm, model_platform, surface_reflectance_bands
from .library import SpectralLibrary, band_values

__all__ = ["REGRESSION_DEGREE", "pair_band_values", "fit_pair", "rmse_per_band", "score_methods"]

#: Polynomial degree of each regression method.
REGRESSION_DEGREE = {"LR": 1, "QR": 2}


def pair_band_values(library: SpectralLibrary, source: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Source and target band reflectance ``(n, bands)`` of every library spectrum (all surface-reflectance bands)."""
    return (band_values(library, model_platform(source), surface_reflectance_bands(source)),
            band_values(library, model_platform(target), surface_reflectance_bands(target)))


def fit_pair(library: SpectralLibrary, source: str, target: str, *, n_clusters: int = 50,
             seed: int = 0) -> dict[str, ClusterRegression]:
    """``LR`` and ``QR`` models from ``source`` to ``target`` bands, fitted on the training split.

    Both methods share one clustering (same data, same seed).
    """
    x, y = pair_band_values(library, source, target)
    train = ~library.held_back
    baseline = nearest_band_indices(central_wavelengths_nm(source, surface_reflectance_bands(source)),
                                    central_wavelengths_nm(target, surface_reflectance_bands(target)))
    return {method: fit_cluster_regression(x[train], y[train], baseline, n_clusters=n_clusters, degree=degree,
                                           seed=seed)
            for method, degree in REGRESSION_DEGREE.items()}


def rmse_per_band(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RMSE per band (last axis) over all spectra, ignoring spectra a method cannot predict (NaN)."""
    squared = (np.asarray(prediction, dtype=np.float64) - truth) ** 2
    count = np.sum(np.isfinite(squared), axis=0)
    total = np.nansum(squared, axis=0)
    return np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)


def score_methods(library: SpectralLibrary, source: str, target: str, methods: Iterable[str], *,
                  held_back: bool = True, model_file=None) -> dict[str, np.ndarray]:
    """RMSE per target band of each method on the held-back (or training) split, through ``SpectralHomogenizer``."""
    from .homogenizer import SpectralHomogenizer

    x, y = pair_band_values(library, source, target)
    rows = library.held_back if held_back else ~library.held_back
    scores = {}
    for method in methods:
        homogenizer = SpectralHomogenizer(source, target, method, model_file=model_file)
        scores[method] = rmse_per_band(homogenizer.predict(x[rows]), y[rows])
    return scores
