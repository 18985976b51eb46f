"""Readers: products on disk -> lazy scene ``DataTree`` objects (see ``docs/scene-model.md``)."""

from .open import open_scene, detect_product_type

__all__ = ["open_scene", "detect_product_type"]
