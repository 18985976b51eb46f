"""Choosing the co-registration reference of every scene of a job (GeoMultiSens' ``spatial_ref_*`` rules).

A reference must be of the configured reference platform family (``datasetid_spatial_ref``: ``SENTINEL_2`` is
any Sentinel-2 unit, ``SENTINEL_2A`` only that one, ``LANDSAT_8`` ...), have a cloud cover within
``spatial_ref_min_cloudcov`` .. ``spatial_ref_max_cloudcov`` percent, cover at least ``spatial_ref_min_overlap``
percent of the target's footprint, and be acquired within ``spatial_ref_plusminus_days`` of the target's day of
the year and ``spatial_ref_plusminus_years`` of its year.

GeoMultiSens only accepted references that were already processed, so the first scenes of an area were never
co-registered. Here the whole job is planned at once: scenes are ranked (reference platform first, then least
cloud, then earliest catalogue id), and each scene in that order references the best *anchor* that fits it;
a scene that finds none but qualifies itself becomes an anchor (the reference of the scenes after it). Anchors
are never shifted themselves, so no two scenes reference each other and every shift is towards one geometry.
Catalogue scenes outside the job that qualify are anchors from the start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from shapely import wkt
from shapely.errors import ShapelyError

from ..config import JobConfig

__all__ = ["REFERENCE_ROLE", "ANCHOR_ROLE", "select_reference", "overlap_pct", "is_reference_platform"]

#: The role name under which L1B finds its reference in ``LevelContext.references``.
REFERENCE_ROLE = "coreg_reference"
#: The role marking a scene that is itself the reference of others (it references itself under this role).
ANCHOR_ROLE = "coreg_anchor"


def is_reference_platform(platform: str, datasetid_spatial_ref: str) -> bool:
    """Whether ``platform`` (``SENTINEL_2B``) belongs to the configured family (``SENTINEL_2`` or exact name)."""
    family = datasetid_spatial_ref.upper()
    return platform.upper() == family or platform.upper().startswith(family) and len(platform) == len(family) + 1


def overlap_pct(target_footprint: str, reference_footprint: str) -> float:
    """Percentage of the target footprint (WKT, lon/lat) covered by the reference footprint; 0 when unreadable."""
    try:
        target, reference = wkt.loads(target_footprint), wkt.loads(reference_footprint)
    except (ShapelyError, TypeError, ValueError):
        return 0.0
    if target.is_empty or target.area == 0:
        return 0.0
    return 100.0 * target.intersection(reference).area / target.area


def _season_distance_days(a: datetime, b: datetime) -> int:
    """Distance between the days of the year of ``a`` and ``b``, across the turn of the year."""
    delta = abs(a.timetuple().tm_yday - b.timetuple().tm_yday)
    return min(delta, 365 - delta)


def _cloud(record) -> float:
    return float(record.cloud_cover_pct) if record.cloud_cover_pct is not None else 100.0


def _qualifies(record, cfg: JobConfig, *, any_platform: bool = False) -> bool:
    return ((any_platform or is_reference_platform(record.platform, cfg.datasetid_spatial_ref))
            and cfg.spatial_ref_min_cloudcov <= _cloud(record) <= cfg.spatial_ref_max_cloudcov)


def _fits(target, reference, cfg: JobConfig) -> float | None:
    """The overlap (percent) when ``reference`` may serve ``target``, else None."""
    if reference.id == target.id or reference.product_id == target.product_id:
        return None
    if abs(reference.acquisition_time.year - target.acquisition_time.year) > cfg.spatial_ref_plusminus_years:
        return None
    if _season_distance_days(reference.acquisition_time, target.acquisition_time) > cfg.spatial_ref_plusminus_days:
        return None
    overlap = overlap_pct(target.footprint, reference.footprint)
    return overlap if overlap >= cfg.spatial_ref_min_overlap else None


def select_reference(job_scenes: Sequence, catalogue_scenes: Sequence,
                     cfg: JobConfig) -> Mapping[int, list[tuple[str, object]]]:
    """``{scene_id: [(REFERENCE_ROLE, reference_record)]}`` for every job scene that gets a reference.

    Anchors (the references of others, never shifted) get ``[(ANCHOR_ROLE, themselves)]``; scenes absent from
    the result have nothing that fits them. L1B says which in its match status.
    """
    if cfg.skip_coreg:
        return {}
    anchors = [record for record in catalogue_scenes if _qualifies(record, cfg)]
    # the reference platform is a preference: a job (and catalogue) without any scene of it co-registers its
    # scenes to the best of the others rather than not at all
    any_platform = not anchors and not any(_qualifies(record, cfg) for record in job_scenes)
    ranked = sorted(job_scenes, key=lambda r: (not is_reference_platform(r.platform, cfg.datasetid_spatial_ref),
                                               _cloud(r), r.id))
    chosen: dict[int, list[tuple[str, object]]] = {}
    for scene in ranked:
        fitting = [(overlap, anchor) for anchor in anchors if (overlap := _fits(scene, anchor, cfg)) is not None]
        if fitting:
            best = max(fitting, key=lambda item: (item[0], -_cloud(item[1]),
                                                  is_reference_platform(item[1].platform, cfg.datasetid_spatial_ref)))
            chosen[scene.id] = [(REFERENCE_ROLE, best[1])]
        elif _qualifies(scene, cfg, any_platform=any_platform):
            anchors.append(scene)
            chosen[scene.id] = [(ANCHOR_ROLE, scene)]
    return chosen
