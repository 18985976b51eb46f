"""Honest options: every option of ``configs/default.toml`` is honoured, refused as not implemented, or a
GeoMultiSens server setting accepted with a warning. :func:`check_options` runs whenever a configuration is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

__all__ = ["GEOMULTISENS_NOOPS", "NOT_IMPLEMENTED", "GeoMultiSensCompatibilityWarning", "check_options"]


class GeoMultiSensCompatibilityWarning(UserWarning):
    """A GeoMultiSens option that has no effect in gmsdask was set (shown once per option and place)."""


#: GeoMultiSens options accepted so that existing configurations load, with why they change nothing here.
GEOMULTISENS_NOOPS: dict[str, str] = {
    "inmem_serialization": "levels are lazy Dask graphs either way; exec_<level>P decides what is written",
    "parallelization_level": "Dask runs every scene chunk-parallel, so 'scenes' and 'tiles' are the same here",
    "db_host": "the catalogue is db_url (SQLite by default, or any SQLAlchemy URL); no database host is used",
    "spatial_index_server_host": "gmsdask needs no spatial index server: tiles come from the scenes' footprints",
    "spatial_index_server_port": "gmsdask needs no spatial index server: tiles come from the scenes' footprints",
    "allow_subMultiprocessing": "Dask workers are processes with one thread each; there is no sub-multiprocessing",
    "is_test": "gmsdask does not treat test jobs differently",
}

#: Options with values gmsdask does not implement: option -> (accepts(value), why and what to use instead).
NOT_IMPLEMENTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "spechomo_method": (lambda v: v != "RFR",
                        "random-forest regression (RFR) is not implemented; use LR, QR, LI, bandpass or none"),
    "spechomo_classif_alg": (lambda v: v == "MinDist",
                             "only nearest-centroid spectral clusters (MinDist) are implemented"),
    "spechomo_n_clusters": (lambda v: v == 50,
                            "the committed homogenization models were fitted with 50 clusters; another number needs "
                            "a refit (scripts/fit_spechomo.py)"),
    "spechomo_kNN_n_neighbors": (lambda v: v == 10, "k-nearest-neighbour classifiers are not implemented"),
    "ac_fillnonclear_areas": (lambda v: v is False,
                              "non-clear areas are never filled with TOA reflectance (one cube, one quantity)"),
    "ac_bandwise_accuracy": (lambda v: v is True, "the AC uncertainty is always one layer per band"),
    "spechomo_bandwise_accuracy": (lambda v: v is True, "the homogenization error is always one layer per band"),
    "scale_factor_TOARef": (lambda v: v == 10000,
                            "reflectance is stored as int16 x 10000 everywhere (level products and cubes)"),
    "scale_factor_BOARef": (lambda v: v == 10000,
                            "reflectance is stored as int16 x 10000 everywhere (level products and cubes)"),
    "ac_clear_area_labels": (lambda v: tuple(v) == (1, 4, 5),
                             "the aerosol retrieval uses clear land (fmask class 1); other labels are not implemented"),
}


def _unavailable_level_options() -> dict[str, str]:
    """Options of levels whose implementation is not there yet (version "0"), with their level's name."""
    from .levels import default_registry  # levels import the configuration: look them up when checking

    skip_aliases = {"skip_coreg", "skip_ac", "skip_spechomo"}
    return {option: level.name for level in default_registry() if level.version == "0"
            for option in level.options if option not in skip_aliases}


def check_options(values: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Refuse not-implemented values with :class:`ConfigError`; warn once about GeoMultiSens server settings.

    ``values`` are the options as given (before defaults), ``defaults`` the defaults they are compared with.
    """
    for option, value in values.items():
        if option in NOT_IMPLEMENTED:
            accepts, reason = NOT_IMPLEMENTED[option]
            if not accepts(value):
                raise ConfigError(option, f"{value!r} is not implemented yet: {reason}")
    unavailable = _unavailable_level_options()
    for option, value in values.items():
        if option in unavailable and value != defaults.get(option):
            raise ConfigError(option, f"not implemented yet: level {unavailable[option]} is not available in this "
                                      f"release, so {value!r} would have no effect")
        if option in GEOMULTISENS_NOOPS and value != defaults.get(option):
            warnings.warn(f"option {option!r} has no effect in gmsdask: {GEOMULTISENS_NOOPS[option]}",
                          GeoMultiSensCompatibilityWarning, stacklevel=4)
