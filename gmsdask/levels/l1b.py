"""L1B: co-registration shift calculation (not available yet: the scene passes unchanged and is recorded as skipped)."""

from __future__ import annotations

import xarray as xr

from ..config import JobConfig
from . import LevelOutcome
from .unavailable import not_available

__all__ = ["run"]


def run(scene: xr.DataTree, cfg: JobConfig) -> LevelOutcome:
    """L1B of one scene."""
    return not_available("L1B", scene, cfg)
