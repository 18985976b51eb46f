"""Planning a job before it runs: the other scenes each level needs (references), and the order scenes start in."""

from __future__ import annotations

from collections.abc import Sequence

from ..catalog import Catalog, SceneRecord
from ..config import JobConfig
from ..levels import LevelRegistry

__all__ = ["plan_references", "start_order"]


def _catalogue_neighbours(catalog: Catalog, scenes: Sequence[SceneRecord]) -> list[SceneRecord]:
    """Catalogued scenes outside the job that share a tile with one of its scenes."""
    in_job = {scene.id for scene in scenes}
    found: dict[int, SceneRecord] = {}
    for tile in sorted({tile for scene in scenes for tile in scene.mgrs_tiles}):
        for record in catalog.scenes(tile=tile):
            if record.id not in in_job:
                found[record.id] = record
    return [found[i] for i in sorted(found)]


def plan_references(registry: LevelRegistry, target: str, scenes: Sequence[SceneRecord], catalog: Catalog,
                    cfg: JobConfig) -> dict[int, tuple[tuple[str, SceneRecord], ...]]:
    """``{scene_id: ((role, record), ...)}`` from every level up to ``target`` that selects references."""
    selectors = [level.select_references for level in registry.upto(target) if level.select_references]
    if not selectors or not scenes:
        return {}
    neighbours = _catalogue_neighbours(catalog, scenes)
    plan: dict[int, list[tuple[str, SceneRecord]]] = {}
    for select in selectors:
        for scene_id, chosen in select(scenes, neighbours, cfg).items():
            plan.setdefault(scene_id, []).extend(chosen)
    return {scene_id: tuple(chosen) for scene_id, chosen in plan.items()}


def start_order(scenes: Sequence[SceneRecord],
                references: dict[int, tuple[tuple[str, SceneRecord], ...]]) -> list[SceneRecord]:
    """Scenes that others reference first (they unblock the rest), then the others, each group by id."""
    referenced = {record.id for scene_id, chosen in references.items() for _role, record in chosen
                  if record.id != scene_id}
    return sorted(scenes, key=lambda scene: (scene.id not in referenced, scene.id))
