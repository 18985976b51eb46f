"""L1C: atmospheric correction and cloud masking (not available yet: the scene passes unchanged and is recorded as skipped)."""

from __future__ import annotations

import xarray as xr

from ..config import JobConfig
from . import LevelOutcome
from .unavailable import not_available

__all__ = ["run"]


def run(scene: xr.DataTree, cfg: JobConfig) -> LevelOutcome:
    """L1C of one scene."""
    return not_available("L1C", scene, cfg)
