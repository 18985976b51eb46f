"""Processing levels: one module per level, each ``run(scene, ctx) -> LevelOutcome``, declared in one registry."""

from ._contract import Level, LevelCanceled, LevelContext, LevelOutcome, TileOutput, product_stub
from .registry import BUILTIN_LEVELS, LevelRegistry, default_registry

__all__ = ["Level", "LevelCanceled", "LevelContext", "LevelOutcome", "TileOutput", "product_stub", "LevelRegistry",
           "BUILTIN_LEVELS", "default_registry"]
