"""The processing levels, declared once (as xclim declares its indicators): the controller, the CLI, the
GeoMultiSens ``run_<level>_processing`` methods, the catalogue's statistics and ``docs/levels.md`` all come from
here.

A plugin adds a level without editing the controller: a module attribute holding a :class:`Level` named in the
``gmsdask.levels`` entry-point group of an installed package, or in the environment variable
``GMSDASK_LEVEL_PLUGINS`` (``"package.module:ATTRIBUTE,..."``), joins :func:`default_registry`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

from ..errors import ConfigError
from . import l1a, l1b, l1c, l2a, l2b, l2c
from ._contract import Level

__all__ = ["LevelRegistry", "BUILTIN_LEVELS", "default_registry", "PLUGIN_ENV"]

#: Environment variable naming plugin levels, ``"module:attribute"`` items separated by commas.
PLUGIN_ENV = "GMSDASK_LEVEL_PLUGINS"


@dataclass(frozen=True)
class LevelRegistry:
    """An ordered, immutable set of levels. ``with_level`` returns a new registry."""

    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        names = [level.name for level in self.levels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError("levels", f"level names must be unique; given twice: {', '.join(duplicates)}")
        object.__setattr__(self, "levels", tuple(sorted(self.levels, key=lambda level: level.order)))
        for level in self.levels:
            if level.reference_level is not None and level.reference_level not in names:
                raise ConfigError("levels", f"{level.name}: reference_level {level.reference_level!r} is not a level")

    @property
    def names(self) -> tuple[str, ...]:
        """Level names in chain order."""
        return tuple(level.name for level in self.levels)

    def __iter__(self) -> Iterator[Level]:
        return iter(self.levels)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Level:
        for level in self.levels:
            if level.name == name:
                return level
        raise ConfigError("level", f"unknown processing level {name!r}; allowed: {', '.join(self.names)}")

    def upto(self, target: str) -> tuple[Level, ...]:
        """The levels from the first one up to and including ``target``."""
        index = self.names.index(self[target].name)
        return self.levels[: index + 1]

    def with_level(self, level: Level) -> "LevelRegistry":
        """A registry with ``level`` added (or replacing the level of the same name)."""
        return LevelRegistry(tuple(lv for lv in self.levels if lv.name != level.name) + (level,))


BUILTIN_LEVELS: tuple[Level, ...] = (
    Level("L1A", 10, "import, metadata homogenization, TOA or surface reflectance", l1a.run,
          reads=("product archive",), adds=("resolution groups", "angles", "root metadata"),
          options=("skip_thermal", "skip_pan", "tiling_block_size_XY", "decode_once", "scale_factor_TOARef",
                   "scale_factor_BOARef"),
          version=l1a.VERSION, end_of_chain=l1a.delete_decoded_copy),
    Level("L1B", 20, "co-registration shift calculation", l1b.run,
          reads=("band nearest coreg_band_wavelength_for_matching", "reference scene"),
          adds=("root attrs coreg_*", "l1b group (coreg_local)"),
          options=("skip_coreg", "coreg_window_size", "coreg_max_shift_allowed", "coreg_local", "coreg_grid_res",
                   "coreg_band_wavelength_for_matching", "datasetid_spatial_ref", "spatial_ref_min_overlap",
                   "spatial_ref_min_cloudcov", "spatial_ref_max_cloudcov", "spatial_ref_plusminus_days",
                   "spatial_ref_plusminus_years"),
          accuracy_layers=("shift_reliability",), version=l1b.VERSION,
          select_references=l1b.select_reference, reference_level="L1A"),
    Level("L1C", 30, "atmospheric correction and cloud masking", l1c.run,
          reads=("TOA reflectance", "brightness temperature", "angles"),
          adds=("fmask", "cloud_confidence", "surface reflectance", "ac_uncertainty_<band>", "root attrs aot550, "
                "aot_source, quantity"),
          options=("skip_ac", "aot550", "path_dem", "cloud_masking_algorithm", "cloud_buffer_m", "shadow_buffer_m",
                   "snow_buffer_m", "ac_estimate_accuracy", "ac_landsat_view_angles", "skip_thermal"),
          accuracy_layers=("ac_uncertainty_<band>", "cloud_confidence"), version=l1c.VERSION),
    Level("L2A", 40, "geometric homogenization onto the MGRS-nested target grid", l2a.run,
          reads=("resolution groups", "coreg_shift_m"), adds=("one target-grid group", "cloud"),
          options=("target_gsd", "target_epsg", "spatial_resamp_alg_default", "sort_bands_by_cwl",
                   "mask_clouds_l2a", "coreg_local"),
          version=l2a.VERSION),
    Level("L2B", 50, "spectral homogenization to the virtual sensor and BRDF normalization", l2b.run,
          reads=("target-grid bands", "angles"), adds=("virtual-sensor bands", "spechomo_error_<band>"),
          options=("skip_spechomo", "spechomo_method", "spechomo_n_clusters", "spechomo_estimate_accuracy",
                   "virtual_sensor_name", "target_bands", "brdf_correction"),
          accuracy_layers=("spechomo_error_<band>",), version=l2b.VERSION),
    Level("L2C", 60, "accuracy layers and MGRS tiling into the datacubes", l2c.run,
          reads=("target-grid group",), adds=("datacube time slots",),
          options=("path_procdata_MGRS", "mgrs_pixel_buffer", "target_mgrs_tiles", "output_compressor"),
          version=l2c.VERSION, writes_scene=False, rebuild_when_done=False),
)


def _load(spec: str, where: str) -> Level:
    module_name, _, attribute = spec.strip().partition(":")
    try:
        level = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(where, f"cannot load level plugin {spec!r}: {error}") from None
    if not isinstance(level, Level):
        raise ConfigError(where, f"{spec!r} is a {type(level).__name__}, not a gmsdask.levels.Level")
    return level


def default_registry() -> LevelRegistry:
    """The built-in levels plus the installed and configured plugin levels."""
    registry = LevelRegistry(BUILTIN_LEVELS)
    for entry in entry_points(group="gmsdask.levels"):
        registry = registry.with_level(_load(entry.value, f"entry point {entry.name}"))
    for spec in filter(None, os.environ.get(PLUGIN_ENV, "").split(",")):
        registry = registry.with_level(_load(spec, PLUGIN_ENV))
    return registry
