"""Processing levels: each a lazy transform, scene in, scene out (L2C writes the datacubes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import xarray as xr

__all__ = ["LevelOutcome"]


@dataclass(frozen=True)
class LevelOutcome:
    """What a level did to one scene: the (lazy) scene after it, and whether it ran or was skipped."""

    scene: xr.DataTree
    status: Literal["done", "skipped"]
    note: str = ""
    outputs: list[str] = field(default_factory=list)
