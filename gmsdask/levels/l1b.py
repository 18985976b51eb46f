"""L1B: the co-registration shift of a scene against its reference (chosen for the whole job by
:mod:`gmsdask.levels.coreg_reference`), by phase correlation (:mod:`gmsdask.coregistration`).

Pixels are not touched: the scene gains root attrs that L2A applies in its one resampling
(``docs/scene-model.md``): ``coreg_status`` (``success``, ``reference`` for the scene others are registered to,
``no_reference``, or ``failed:<reason>``), ``coreg_shift_m`` (the content's displacement, dx east and dy north in
metres, that L2A removes; (0, 0) unless ``success``), ``coreg_reliability`` (percent) and ``coreg_reference``
(the reference's product id). A failed match does not fail the scene: it goes on unshifted, and says why.

With ``coreg_local`` the scene also gains a small ``l1b`` group: the filtered tie-point table of the
``coreg_grid_res`` grid and the smooth displacement field L2A warps with
(:func:`gmsdask.coregistration.local.local_field`), and the root attr ``coreg_field_status`` (``local``, or
``fallback:global (<why>)`` when too few tie points are valid: L2A then applies the global shift).
"""

from __future__ import annotations

import math
from typing import Any

import xarray as xr

from ..coregistration import CoregResult, coregister_scene
from ..coregistration.local import local_field
from ..geometry import group_geobox
from ..io import open_scene
from ..io.raster import whole_blocks
from ._contract import LevelContext, LevelOutcome
from .coreg_reference import ANCHOR_ROLE, REFERENCE_ROLE, select_reference

__all__ = ["run", "select_reference", "with_local_field", "VERSION", "MIN_FIELD_POINTS"]

#: Implementation version: scenes recorded with an older one are processed again on rerun (2: coreg_local).
VERSION = "2"

#: Fewest valid tie points a local field is fitted to; with fewer, L2A applies the global shift.
MIN_FIELD_POINTS = 10


def _json_safe(facts: dict[str, Any]) -> dict[str, Any]:
    """NaN (a failed match's shifts) as null: JSON and PostgreSQL know no NaN."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in facts.items()}


def _reference_scene(path: str, chunks: tuple[int, int]) -> xr.DataTree:
    """The reference scene, in chunks of whole tiles of its finest band's file. Its bands are read from their
    files (only a job's own scenes have a decoded copy), and windows that cut the tiles decode a cut tile once for
    each window (:func:`~gmsdask.io.raster.whole_blocks`): a whole tile's B03 took L1B 24.1 s of worker time in
    2046 px chunks and 13.9 s in 2048 px ones. The reference's chunks need not be the scene's."""
    scene = open_scene(path, chunks=chunks)
    rasters = [var.encoding["source_raster"] for node in scene.subtree for var in node.ds.data_vars.values()
               if "source_raster" in var.encoding]
    aligned = whole_blocks(min(rasters, key=lambda r: r.resolution), chunks) if rasters else chunks
    return scene if aligned == chunks else open_scene(path, chunks=aligned)


def _marked(scene: xr.DataTree, status: str, shift_m: tuple[float, float] = (0.0, 0.0), reliability: float = 0.0,
            reference: str = "") -> xr.DataTree:
    out = scene.copy()
    out.attrs.update(coreg_status=status, coreg_shift_m=[float(shift_m[0]), float(shift_m[1])],
                     coreg_reliability=float(reliability), coreg_reference=reference)
    return out


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L1B of one scene: one small eager step (the matching windows), nothing else is computed."""
    reference = ctx.reference(REFERENCE_ROLE)
    if reference is None:
        if ctx.reference(ANCHOR_ROLE) is not None:
            note = "the reference of the other scenes of its area (not shifted)"
            return LevelOutcome(_marked(scene, "reference"), note=note, facts={"coreg_status": "reference"})
        note = "no reference scene fits (platform, cloud cover, overlap, season); not shifted"
        return LevelOutcome(_marked(scene, "no_reference"), note=note, facts={"coreg_status": "no_reference"})
    cfg = ctx.config
    reference_scene = _reference_scene(reference.product_path, (cfg.chunks["y"], cfg.chunks["x"]))
    result = coregister_scene(scene, reference_scene, window_size=tuple(cfg.coreg_window_size),
                              max_shift=cfg.coreg_max_shift_allowed, local=cfg.coreg_local,
                              grid_res=cfg.coreg_grid_res, wavelength_nm=cfg.coreg_band_wavelength_for_matching)
    reliability = result.reliability if result.success else 0.0
    marked = _marked(scene, result.status, result.l1b_shift_m, reliability, reference.product_id)
    dx, dy = result.l1b_shift_m
    note = (f"shift ({dx:+.2f}, {dy:+.2f}) m against {reference.product_id}, reliability {reliability:.0f} %"
            if result.success else f"{result.status}; not shifted")
    facts = result.facts()
    if cfg.coreg_local:
        marked, local_facts = with_local_field(marked, result, spacing_px=max(cfg.coreg_grid_res // 2, 16))
        facts.update(local_facts)
        note += f"; local field: {local_facts['coreg_field_status']}"
    return LevelOutcome(marked, note=note, facts=_json_safe(facts))


def with_local_field(scene: xr.DataTree, result: CoregResult, *, spacing_px: int,
                     min_points: int = MIN_FIELD_POINTS) -> tuple[xr.DataTree, dict[str, Any]]:
    """``scene`` with the ``l1b`` group of local mode (tie points and field, see
    :func:`gmsdask.coregistration.local.local_field`) and root attr ``coreg_field_status``; and the statistics
    for the catalogue. ``spacing_px``: field node spacing, pixels of the matched target band."""
    group_name, _ = result.target_band.split("/")
    geobox = group_geobox(scene[group_name].to_dataset(), f"{scene.attrs.get('product_id', 'scene')}/{group_name}",
                          "L1B")
    local = local_field(result.points, geobox, spacing_px=spacing_px, min_points=min_points,
                        match_status=result.status)
    out = scene.copy()
    out["l1b"] = xr.DataTree(local.group)
    out.attrs["coreg_field_status"] = local.status
    return out, local.stats
