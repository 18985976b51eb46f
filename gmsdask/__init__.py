"""gmsdask: analysis-ready, harmonized Landsat and Sentinel-2 datacubes on Dask."""

from .config import JobConfig, set_config
from .errors import (
    BandFileError,
    ConfigError,
    GmsdaskError,
    MetadataError,
    ProductError,
    UnknownProductError,
)
from .io import open_scene
from .spectral import SpectralHomogenizer

__version__ = "0.2.0"

#: Public names imported on first use (they pull in the Dask cluster, the catalogue or the cube store).
_LAZY = {
    "ProcessController": ("gmsdask.controller", "ProcessController"),
    "Jobs": ("gmsdask.jobs", "Jobs"),
    "Job": ("gmsdask.jobs", "Job"),
    "calculate_shift": ("gmsdask.coregistration", "calculate_shift"),
    "tie_points": ("gmsdask.coregistration", "tie_points"),
    "ShiftResult": ("gmsdask.coregistration", "ShiftResult"),
    "coregister_scene": ("gmsdask.coregistration", "coregister_scene"),
    "open_cube": ("gmsdask.io.cube", "open_cube"),
}

__all__ = [
    "JobConfig",
    "set_config",
    "open_scene",
    "SpectralHomogenizer",
    *_LAZY,
    "GmsdaskError",
    "ConfigError",
    "ProductError",
    "UnknownProductError",
    "MetadataError",
    "BandFileError",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'gmsdask' has no attribute {name!r}")
