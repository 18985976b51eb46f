"""L1C: cloud, cloud-shadow, snow and water masks of Level-1 products, then atmospheric correction to surface
reflectance.

Masks come first, on the TOA reflectance and brightness temperature (``cloud_masking_algorithm``: ``FMASK``, or
``PRODUCT_QA`` for the product's own QA layers; Level-2 inputs always use their QA), and cloud and shadow pixels
become no data in every band before anything is resampled, so cloud brightness never bleeds into clear pixels.
The thermal bands are dropped afterwards where ``skip_thermal`` says so. Everything stays lazy.
"""

from __future__ import annotations

import xarray as xr

from ..masks import fmask_scene, mask_scene, product_qa_masks
from ..sensors import get_sensor
from ._contract import LevelContext, LevelOutcome

__all__ = ["run", "VERSION"]

#: Implementation version: scenes recorded with an older one are processed again on rerun.
VERSION = "1"


def _family(platform: str) -> str:
    return "SENTINEL_2" if platform.upper().startswith("SENTINEL_2") else "LANDSAT"


def _without_thermal(scene: xr.DataTree) -> xr.DataTree:
    """The scene without its thermal bands (``skip_thermal``): they served the masks only."""
    sensor = get_sensor(scene.attrs["platform"])
    thermal = {band.name for band in sensor.bands if band.kind == "thermal"}
    out = scene.copy()
    for name, child in scene.children.items():
        present = [v for v in child.data_vars if v in thermal]
        if present:
            out[name] = xr.DataTree(child.to_dataset().drop_vars(present))
    out.attrs["band_names"] = [b for b in scene.attrs.get("band_names", []) if b not in thermal]
    return out


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L1C of one scene."""
    cfg = ctx.config
    attrs = scene.attrs
    level2 = attrs.get("quantity") == "surface_reflectance"
    algorithm = "PRODUCT_QA" if level2 else cfg.cloud_masking_algorithm.get(_family(str(attrs["platform"])), "FMASK")
    if algorithm == "FMASK":
        masks = fmask_scene(scene, cloud_buffer_m=cfg.cloud_buffer_m, shadow_buffer_m=cfg.shadow_buffer_m,
                            snow_buffer_m=cfg.snow_buffer_m)
    else:
        masks = product_qa_masks(scene)
    masked = mask_scene(scene, masks)
    masked.attrs["cloud_masking_algorithm"] = algorithm
    if cfg.skip_thermal:
        masked = _without_thermal(masked)
    notes = [f"masks: {algorithm}"]
    notes.append("atmosphere: skipped, already surface reflectance" if level2 else
                 "atmosphere: not corrected (TOA reflectance goes on)")
    return LevelOutcome(masked, note="; ".join(notes), facts={"cloud_masking_algorithm": algorithm})
