"""Levels whose algorithms are not implemented yet: explicit identity steps recorded as *skipped*."""

from __future__ import annotations

import logging

import xarray as xr

from ..config import JobConfig
from . import LevelOutcome

__all__ = ["not_available"]

log = logging.getLogger("gmsdask.levels")


def not_available(level: str, scene: xr.DataTree, cfg: JobConfig) -> LevelOutcome:
    """Pass the scene on unchanged, saying so in the log and in the catalogue (status ``skipped``)."""
    note = f"{level}: not available yet"
    log.info("%s (%s)", note, scene.attrs.get("product_id", "?"))
    return LevelOutcome(scene, "skipped", note)
