"""L2B: spectral homogenization to the virtual sensor (not available yet: the scene passes unchanged and is recorded as skipped)."""

from __future__ import annotations

import xarray as xr

from ..config import JobConfig
from . import LevelOutcome
from .unavailable import not_available

__all__ = ["run"]


def run(scene: xr.DataTree, cfg: JobConfig) -> LevelOutcome:
    """L2B of one scene."""
    return not_available("L2B", scene, cfg)
