"""L1B: co-registration shift of a scene against its reference (chosen for the whole job by
:mod:`gmsdask.levels.coreg_reference`)."""

from __future__ import annotations

import xarray as xr

from ._contract import LevelContext, LevelOutcome
from .coreg_reference import select_reference

__all__ = ["run", "select_reference", "VERSION"]

#: Implementation version: scenes recorded with an older one are processed again on rerun.
VERSION = "0"


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L1B of one scene."""
    return LevelOutcome(scene, "skipped", "L1B: not available yet")
