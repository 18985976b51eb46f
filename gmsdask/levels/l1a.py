"""L1A: import and metadata homogenization (the readers), band selection for the processing chain."""

from __future__ import annotations

import xarray as xr

from ..config import JobConfig
from ..io import open_scene
from ..sensors import get_sensor
from ._contract import LevelContext, LevelOutcome

__all__ = ["run", "VERSION"]

VERSION = "3"  # 3: Landsat angles group carries the view angles from the ANG.txt coefficients


def _chain_bands(scene: xr.DataTree, cfg: JobConfig) -> xr.DataTree:
    """The scene without the panchromatic band where ``skip_pan`` says so, and without the thermal bands where
    ``skip_thermal`` says so and L1C (whose masks need them) does not run."""
    sensor = get_sensor(scene.attrs["platform"])
    # L1C's cloud masks read the thermal bands; L1C drops them afterwards where skip_thermal says so
    keep_thermal = not cfg.skip_thermal or cfg.exec_flags("L1C")[0]
    drop = {band.name for band in sensor.bands
            if (band.kind == "thermal" and not keep_thermal) or (cfg.skip_pan and band.kind == "pan")}
    children = {}
    for name, child in scene.children.items():
        dataset = child.to_dataset()
        bands_here = [v for v in dataset.data_vars if v in drop]
        kept = [v for v in dataset.data_vars if v in sensor.band_names and v not in drop]
        if bands_here and not kept:
            continue  # a group of dropped bands only (Landsat r15m pan) goes entirely
        children[name] = xr.DataTree(dataset.drop_vars(bands_here))
    attrs = dict(scene.attrs)
    attrs["band_names"] = [b for b in attrs["band_names"] if b not in drop]
    # what the reflectance bands hold; L1C changes it when it corrects the atmosphere
    attrs["quantity"] = ("surface_reflectance" if str(attrs.get("processing_level", "")).startswith("L2")
                         else "toa_reflectance")
    return xr.DataTree(xr.Dataset(attrs=attrs), children=children)


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Open the scene's product (``ctx.record.product_path``) lazily on the configured chunk grid and keep the
    bands the chain processes. ``scene`` is the product stub (:func:`gmsdask.levels.product_stub`)."""
    opened = open_scene(ctx.record.product_path, chunks=ctx.config.chunks)
    return LevelOutcome(_chain_bands(opened, ctx.config))
