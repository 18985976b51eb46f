"""gmsdask: analysis-ready, harmonized Landsat and Sentinel-2 datacubes on Dask."""

from .config import JobConfig, set_config
from .io import open_scene
from .errors import (
    BandFileError,
    ConfigError,
    GmsdaskError,
    MetadataError,
    ProductError,
    UnknownProductError,
)

__version__ = "0.1.0"

__all__ = [
    "JobConfig",
    "set_config",
    "open_scene",
    "GmsdaskError",
    "ConfigError",
    "ProductError",
    "UnknownProductError",
    "MetadataError",
    "BandFileError",
    "__version__",
]
