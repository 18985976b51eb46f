"""L1C: atmospheric correction and cloud masking (not available yet: the scene passes unchanged and is recorded as skipped)."""

from __future__ import annotations

import xarray as xr

from ._contract import LevelContext, LevelOutcome

__all__ = ["run", "VERSION"]

#: Implementation version: scenes recorded with an older one are processed again on rerun.
VERSION = "0"


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L1C of one scene."""
    return LevelOutcome(scene, "skipped", "L1C: not available yet")
