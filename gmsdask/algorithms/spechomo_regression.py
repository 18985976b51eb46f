"""Spectral homogenization by regression per spectral cluster (methods ``LR`` and ``QR``).

The model of GeoMultiSens' spechomo, trained on our own spectra: the training spectra, as the source
sensor sees them, are grouped by k-means (default 50 clusters); each cluster gets its own regression
from the source bands to every target band (``LR``: linear; ``QR``: linear plus squared terms of each
source band). A pixel is predicted with the regression of its nearest centroid, except the pixels
farther from every centroid than 90 % of the training spectra were from theirs: those are unlike any
cluster, and one global regression over all training spectra predicts them. The expected error of a
prediction is the residual RMSE of the regression used, per target band.

The regressions predict the difference between each target band and its nearest source band
(``baseline_index``), not the band itself: the small ridge that keeps near-collinear neighbouring bands
solvable then shrinks towards the unadjusted band instead of towards zero, which on held-back spectra
cuts the error of bands the two sensors nearly share (Landsat-9 -> Landsat-8: 1.4e-4 -> 0.1e-4).

Why not scikit-learn: k-means is scipy's ``kmeans2`` (seeded, k-means++) and a regression is a
least-squares solve, so a heavy dependency would add nothing; nor are pickled estimators committed.

Reflectance is 0-1; a pixel with any non-finite source band gives NaN in every target band.
QR omits cross products on purpose: with 11 source bands they would need 78 coefficients per band,
more than a typical cluster has spectra.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

__all__ = ["ClusterRegression", "design_matrix", "fit_cluster_regression", "predict_cluster_regression",
           "assign_clusters"]

_BLOCK = 16384  # pixels per distance block: 16384 x 51 float32 distances = 3.3 MB


@dataclass(frozen=True)
class ClusterRegression:
    """A fitted cluster-wise regression.

    Attributes
    ----------
    centroids
        ``(k, n_source)`` cluster centres in source reflectance.
    coefficients
        ``(k + 1, n_terms, n_target)``; row ``k`` is the global regression.
    rmse
        ``(k + 1, n_target)`` residual RMSE (reflectance) of each regression on its training spectra.
    far_distance
        Euclidean distance (reflectance) beyond which a spectrum uses the global regression.
    degree
        1 (``LR``) or 2 (``QR``).
    baseline_index
        ``(n_target,)`` source band each target band is predicted as an adjustment of.
    """

    centroids: np.ndarray
    coefficients: np.ndarray
    rmse: np.ndarray
    far_distance: float
    degree: int
    baseline_index: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])


def design_matrix(source: np.ndarray, degree: int) -> np.ndarray:
    """``(n, n_terms)`` regressors: a constant, the source bands and, for degree 2, their squares."""
    x = np.asarray(source, dtype=np.float64)
    terms = [np.ones((x.shape[0], 1)), x] + ([x * x] if degree == 2 else [])
    return np.concatenate(terms, axis=1)


def _solve(design: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    # A tiny ridge (not on the intercept) keeps clusters of near-collinear neighbouring bands solvable.
    gram = design.T @ design
    penalty = ridge * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
    penalty[0, 0] = 0.0
    return np.linalg.solve(gram + penalty, design.T @ target)


def _rmse(design: np.ndarray, target: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    residual = target - design @ coefficients
    dof = max(design.shape[0] - design.shape[1], 1)
    return np.sqrt(np.sum(residual ** 2, axis=0) / dof)


def _nearest(source: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centroid and the distance to it, blockwise to bound memory."""
    c = centroids.astype(np.float32)
    c_norm = np.sum(c * c, axis=1)
    labels = np.empty(source.shape[0], dtype=np.int32)
    distance = np.empty(source.shape[0], dtype=np.float32)
    for start in range(0, source.shape[0], _BLOCK):
        x = source[start:start + _BLOCK].astype(np.float32, copy=False)
        partial = x @ c.T  # in place below: one block of distances at a time, no temporaries beside it
        partial *= -2.0
        partial += c_norm[None, :]  # |x - c|^2 - |x|^2: |x|^2 does not change the nearest
        best = np.argmin(partial, axis=1)
        labels[start:start + _BLOCK] = best
        d2 = np.take_along_axis(partial, best[:, None], axis=1)[:, 0] + np.einsum("ij,ij->i", x, x)
        distance[start:start + _BLOCK] = np.sqrt(np.maximum(d2, 0.0))
    return labels, distance


def assign_clusters(model: ClusterRegression, source: np.ndarray) -> np.ndarray:
    """Regression index per spectrum of ``source`` ``(n, n_source)``: nearest centroid, or ``k`` (global)
    for spectra beyond ``far_distance``."""
    labels, distance = _nearest(source, model.centroids)
    labels[distance > model.far_distance] = model.n_clusters
    return labels


def fit_cluster_regression(source: np.ndarray, target: np.ndarray, baseline_index: np.ndarray, *,
                           n_clusters: int = 50, degree: int = 1, far_fraction: float = 0.1, seed: int = 0,
                           ridge: float = 1e-6) -> ClusterRegression:
    """Fit cluster-wise regressions from ``source`` ``(n, n_source)`` to ``target`` ``(n, n_target)`` spectra.

    ``baseline_index`` names, per target band, the source band it is predicted as an adjustment of
    (usually the nearest in wavelength).

    Clusters with fewer than three spectra per coefficient keep the global regression (and its error).
    The result depends only on the inputs and ``seed``.
    """
    if degree not in (1, 2):
        raise ValueError(f"degree must be 1 (LR) or 2 (QR), not {degree}")
    source = np.asarray(source, dtype=np.float64)
    baseline_index = np.asarray(baseline_index, dtype=np.int32)
    target = np.asarray(target, dtype=np.float64) - source[:, baseline_index]
    with warnings.catch_warnings():  # an empty cluster is handled below (it keeps the global regression)
        warnings.simplefilter("ignore", UserWarning)
        centroids, _ = kmeans2(source, n_clusters, iter=50, minit="++", seed=np.random.default_rng(seed))
    labels, distance = _nearest(source, centroids)
    far_distance = float(np.quantile(distance, 1.0 - far_fraction))
    far = distance > far_distance

    design = design_matrix(source, degree)
    n_terms = design.shape[1]
    global_coefficients = _solve(design, target, ridge)
    far_rows = far if far.sum() >= n_terms else np.ones_like(far)
    global_rmse = _rmse(design[far_rows], target[far_rows], global_coefficients)

    coefficients = np.repeat(global_coefficients[None], n_clusters + 1, axis=0)
    rmse = np.repeat(global_rmse[None], n_clusters + 1, axis=0)
    for cluster in range(n_clusters):
        members = (labels == cluster) & ~far
        if members.sum() >= 3 * n_terms:
            coefficients[cluster] = _solve(design[members], target[members], ridge)
            rmse[cluster] = _rmse(design[members], target[members], coefficients[cluster])
    return ClusterRegression(centroids=centroids.astype(np.float32), coefficients=coefficients.astype(np.float32),
                             rmse=rmse.astype(np.float32), far_distance=far_distance, degree=degree,
                             baseline_index=baseline_index)


def predict_cluster_regression(model: ClusterRegression, reflectance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted target reflectance and its expected error, both ``(..., n_target)`` float32.

    ``reflectance`` is ``(..., n_source)`` in the model's source band order (0-1). Each pixel takes the
    regression of its nearest centroid (:func:`assign_clusters`' rule), pixel by pixel in one compiled pass
    (:mod:`._spechomo_kernels`, which says how it differs from numpy's arithmetic).
    """
    # imported here: numba's import is paid by the processes that predict, not by ``import gmsdask``
    from ._spechomo_kernels import predict_pixels

    x = np.asarray(reflectance, dtype=np.float32)
    n_source, n_target = x.shape[-1], model.coefficients.shape[2]
    flat = np.ascontiguousarray(x.reshape(-1, n_source))
    prediction = np.empty((flat.shape[0], n_target), dtype=np.float32)
    error = np.empty((flat.shape[0], n_target), dtype=np.float32)
    predict_pixels(flat, np.ascontiguousarray(model.centroids.T, dtype=np.float32),
                   np.ascontiguousarray(model.coefficients, dtype=np.float32),
                   np.ascontiguousarray(model.rmse, dtype=np.float32), np.float32(model.far_distance),
                   np.ascontiguousarray(model.baseline_index, dtype=np.int64), model.degree == 2, prediction, error)
    shape = x.shape[:-1] + (n_target,)
    return prediction.reshape(shape), error.reshape(shape)
