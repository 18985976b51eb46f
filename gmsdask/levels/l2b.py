"""L2B: spectral homogenization to the virtual sensor (not available yet: the scene passes unchanged and is recorded as skipped)."""

from __future__ import annotations

import xarray as xr

from ._contract import LevelContext, LevelOutcome

__all__ = ["run", "VERSION"]

#: Implementation version: scenes recorded with an older one are processed again on rerun.
VERSION = "0"


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L2B of one scene."""
    return LevelOutcome(scene, "skipped", "L2B: not available yet")
