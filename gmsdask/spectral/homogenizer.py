"""``SpectralHomogenizer``: predict one sensor's surface-reflectance bands from another's.

Usable on any spectra, inside or outside the pipeline::

    h = SpectralHomogenizer(source="SENTINEL_2A", target="LANDSAT_8", method="LR")
    oli = h.predict(msi)            # (..., 11) -> (..., 7), reflectance 0-1
    err = h.predict_error(msi)      # (..., 7) expected error (RMSE) of each predicted value

Methods: ``LR`` / ``QR`` cluster-wise regressions fitted by ``scripts/fit_spechomo.py`` (committed in
``gmsdask/spectral/data``), ``LI`` linear interpolation across band centres, ``bandpass`` the NASA HLS
coefficients (Sentinel-2 <-> Landsat-8/9 only; bands without a coefficient, such as the red edge for
OLI -> MSI, are NaN, as HLS does not produce them), ``none`` the nearest band unadjusted.
The expected error of ``LI``, ``bandpass`` and ``none`` is their RMSE per band over the training spectra
(one value per band); of ``LR``/``QR`` the residual RMSE of the pixel's cluster. When source and target
are the same instrument, every method returns the bands unchanged with zero error.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..algorithms.spechomo_regression import ClusterRegression, predict_cluster_regression
from ..algorithms.spechomo_simple import HLS_MSI_TO_OLI, linear_adjustment, linear_interpolation, nearest_band
from ..errors import ConfigError
from .bands import central_wavelengths_nm, common_names, model_platform, surface_reflectance_bands

__all__ = ["SpectralHomogenizer", "METHODS", "MODEL_FILE", "fitted_pairs"]

METHODS = ("LI", "LR", "QR", "bandpass", "none")
MODEL_FILE = Path(__file__).parent / "data" / "spechomo_models.npz"
_OLI = {"LANDSAT_8", "LANDSAT_9"}


@functools.lru_cache(maxsize=4)
def _load_store(path: str) -> dict[str, np.ndarray]:
    if not Path(path).exists():
        raise ConfigError("spechomo_model_file", f"{path} does not exist; run scripts/fit_spechomo.py")
    with np.load(path) as store:
        return {key: store[key] for key in store.files}


def _meta(path: str) -> dict:
    return json.loads(str(_load_store(path)["meta"]))


def fitted_pairs(model_file: str | Path = MODEL_FILE) -> list[tuple[str, str]]:
    """The (source, target) platform pairs with fitted ``LR``/``QR`` models."""
    return [tuple(pair) for pair in _meta(str(model_file))["pairs"]]


def _canonical_method(method: str) -> str:
    for name in METHODS:
        if name.lower() == str(method).lower():
            return name
    raise ConfigError("spechomo_method", f"{method!r} is not a method; choose one of {', '.join(METHODS)}")


class SpectralHomogenizer:
    """Predicts ``target``'s surface-reflectance bands from ``source``'s.

    Parameters
    ----------
    source, target
        Platforms of the registry (``"SENTINEL_2A"``, ``"LANDSAT_8"`` ...).
    method
        ``LI``, ``LR``, ``QR``, ``bandpass`` or ``none`` (case-insensitive).
    target_bands
        Restrict (and order) the predicted bands; default all of ``target``'s surface-reflectance bands.
    n_clusters
        Number of spectral clusters of ``LR``/``QR``; must be what the committed models were fitted with.
    model_file
        The fitted models (default: the committed ``spechomo_models.npz``).
    """

    def __init__(self, source: str = "SENTINEL_2A", target: str = "LANDSAT_8", method: str = "LR", *,
                 target_bands: Sequence[str] | None = None, n_clusters: int = 50,
                 model_file: str | Path | None = None) -> None:
        self.source = source
        self.target = target
        self.method = _canonical_method(method)
        self._model_file = str(model_file or MODEL_FILE)
        self.source_bands: list[str] = surface_reflectance_bands(source)
        all_target = surface_reflectance_bands(target)
        self.target_bands: list[str] = list(target_bands) if target_bands is not None else all_target
        unknown = [band for band in self.target_bands if band not in all_target]
        if unknown or not self.target_bands:
            raise ConfigError("target_bands", f"{unknown or 'an empty list'} are no surface-reflectance bands of "
                                              f"{target}; choose from {', '.join(all_target)}")
        self._target_index = [all_target.index(band) for band in self.target_bands]
        self.source_wavelength_nm = central_wavelengths_nm(source, self.source_bands)
        self.target_wavelength_nm = central_wavelengths_nm(target, self.target_bands)
        self.target_common_names = common_names(target, self.target_bands)
        self._pair = (model_platform(source), model_platform(target))
        self._identity = self._pair[0] == self._pair[1]
        self._model: ClusterRegression | None = None
        self._bandpass: tuple[list[int], list[float], list[float]] | None = None
        if self._identity:
            return
        if self.method in ("LR", "QR"):
            self._model = self._load_regression(n_clusters)
        elif self.method == "bandpass":
            self._bandpass = self._bandpass_coefficients()

    def __repr__(self) -> str:
        return f"SpectralHomogenizer(source={self.source!r}, target={self.target!r}, method={self.method!r})"

    # ------------------------------------------------------------------------------------------ set-up
    def _key(self) -> str:
        return f"{self._pair[0]}__{self._pair[1]}"

    def _load_regression(self, n_clusters: int) -> ClusterRegression:
        store = _load_store(self._model_file)
        key = self._key()
        if f"{key}__centroids" not in store:
            pairs = ", ".join(f"{s}->{t}" for s, t in fitted_pairs(self._model_file))
            raise ConfigError("spechomo_method", f"no fitted {self.method} model for {self.source} -> {self.target} "
                                                 f"(fitted pairs: {pairs}); use LI or fit the pair with "
                                                 f"scripts/fit_spechomo.py")
        centroids = store[f"{key}__centroids"]
        if centroids.shape[0] != n_clusters:
            raise ConfigError("spechomo_n_clusters", f"the committed models have {centroids.shape[0]} clusters, "
                                                     f"not {n_clusters}; refit with scripts/fit_spechomo.py "
                                                     f"--n-clusters {n_clusters}")
        coefficients = store[f"{key}__{self.method}__coefficients"][:, :, self._target_index]
        rmse = store[f"{key}__{self.method}__rmse"][:, self._target_index]
        return ClusterRegression(centroids=centroids, coefficients=coefficients, rmse=rmse,
                                 far_distance=float(store[f"{key}__far_distance"]),
                                 degree=2 if self.method == "QR" else 1,
                                 baseline_index=store[f"{key}__baseline_index"][self._target_index])

    def _bandpass_coefficients(self) -> tuple[list[int], list[float], list[float]]:
        src, tgt = self._pair
        src_names = common_names(self.source, self.source_bands)

        def to_oli(platform: str, name: str) -> tuple[float, float] | None:
            return (1.0, 0.0) if platform in _OLI else HLS_MSI_TO_OLI[platform].get(name)

        if not {src, tgt} <= _OLI | set(HLS_MSI_TO_OLI):
            raise ConfigError("spechomo_method", f"bandpass coefficients (NASA HLS) exist for Sentinel-2A/B/C and "
                                                 f"Landsat-8/9 only, not {self.source} -> {self.target}")
        index, slope, offset = [], [], []
        for band, name in zip(self.target_bands, self.target_common_names):
            forward, backward = to_oli(src, name), to_oli(tgt, name)
            if name in src_names and forward and backward:
                # source -> OLI with the source's coefficients, OLI -> target inverted (as sen2like does)
                index.append(src_names.index(name))
                slope.append(forward[0] / backward[0])
                offset.append((forward[1] - backward[1]) / backward[0])
            elif (src in _OLI) == (tgt in _OLI) and band in self.source_bands:
                index.append(self.source_bands.index(band))  # same instrument family, band HLS leaves alone
                slope.append(1.0)
                offset.append(0.0)
            else:
                index.append(-1)
                slope.append(np.nan)
                offset.append(np.nan)
        return index, slope, offset

    # ------------------------------------------------------------------------------------------ use
    def _check(self, reflectance: np.ndarray) -> np.ndarray:
        x = np.asarray(reflectance, dtype=np.float32)
        if x.ndim == 0 or x.shape[-1] != len(self.source_bands):
            raise ConfigError("reflectance", f"{self!r} needs (..., {len(self.source_bands)}) reflectance in the "
                                             f"order {', '.join(self.source_bands)}; got shape {x.shape}")
        return x

    def predict_with_error(self, reflectance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted target reflectance and expected error, both ``(..., len(target_bands))`` float32."""
        x = self._check(reflectance)
        if self._identity:
            index = [self.source_bands.index(band) for band in self.target_bands]
            prediction = x[..., index].copy()
            return prediction, np.where(np.isfinite(prediction), 0.0, np.nan).astype(np.float32)
        if self._model is not None:
            return predict_cluster_regression(self._model, x)
        prediction = self._predict_unfitted(x)
        error = np.broadcast_to(self._method_rmse(), prediction.shape)
        return prediction, np.where(np.isfinite(prediction), error, np.nan).astype(np.float32)

    def predict(self, reflectance: np.ndarray) -> np.ndarray:
        """Target reflectance ``(..., len(target_bands))`` from source reflectance ``(..., len(source_bands))``
        (0-1, in ``source_bands`` order; NaN = no data)."""
        x = self._check(reflectance)
        if self._identity or self._model is not None:
            return self.predict_with_error(x)[0]
        return self._predict_unfitted(x)

    def predict_error(self, reflectance: np.ndarray) -> np.ndarray:
        """Expected error (RMSE, reflectance) of each value ``predict`` returns, ``(..., len(target_bands))``."""
        return self.predict_with_error(reflectance)[1]

    def _predict_unfitted(self, x: np.ndarray) -> np.ndarray:
        if self.method == "LI":
            return linear_interpolation(x, self.source_wavelength_nm, self.target_wavelength_nm)
        if self.method == "none":
            return nearest_band(x, self.source_wavelength_nm, self.target_wavelength_nm)
        return linear_adjustment(x, *self._bandpass)

    def _method_rmse(self) -> np.ndarray:
        store = _load_store(self._model_file)
        key = f"{self._key()}__{self.method}__train_rmse"
        if key not in store:  # a pair without fitted statistics: the error is unknown, not zero
            return np.full(len(self.target_bands), np.nan, dtype=np.float32)
        return store[key][self._target_index].astype(np.float32)
