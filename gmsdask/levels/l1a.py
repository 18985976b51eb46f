"""L1A: import and metadata homogenization (the readers), band selection for the processing chain."""

from __future__ import annotations

import xarray as xr

from ..config import LEVELS, JobConfig
from ..io import open_scene
from ..io.decoded_copy import DecodedCopy
from ..io.scene import normalize_chunks
from ..sensors import get_sensor
from ._contract import LevelContext, LevelOutcome

__all__ = ["run", "decoded_copy", "delete_decoded_copy", "VERSION"]

VERSION = "3"  # 3: Landsat angles group carries the view angles from the ANG.txt coefficients
#: The decoded copy's directory in the scene's output directory.
DECODED_COPY_NAME = "L1A_decoded.zarr"


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


def _copy_of(ctx: LevelContext) -> DecodedCopy:
    return DecodedCopy(str(ctx.output_dir / DECODED_COPY_NAME), normalize_chunks(ctx.config.chunks))


def decoded_copy(ctx: LevelContext) -> DecodedCopy | None:
    """Where L1A keeps the scene's decoded JPEG 2000 bands (``decode_once``), None when it does not.

    The copy pays where a run reads the bands in a final pass after L1B's and Fmask's: where a level up to the
    run's target writes its output (``exec_<level>P``'s write flag: by default L2B's product and L2C's cubes).
    A run that ends before (``run_L1B_processing`` ...) reads each band at most once or twice, less than the
    copy's full decode."""
    if not ctx.config.decode_once:
        return None
    return _copy_of(ctx) if any(ctx.config.exec_flags(level)[1] for level in _later_levels(ctx)) else None


def _later_levels(ctx: LevelContext) -> tuple[str, ...]:
    """The levels of the run after L1A; for a run the context does not describe, the built-in chain's."""
    levels = ctx.run_levels if "L1A" in ctx.run_levels else LEVELS
    return levels[levels.index("L1A") + 1:]


def delete_decoded_copy(ctx: LevelContext) -> None:
    """Remove the scene's decoded copy (the level's ``end_of_chain``: a rerun decodes again)."""
    _copy_of(ctx).delete()


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Open the scene's product (``ctx.record.product_path``) lazily on the configured chunk grid and keep the
    bands the chain processes. ``scene`` is the product stub (:func:`gmsdask.levels.product_stub`).

    With ``decode_once`` the kept JPEG 2000 bands are decoded once, as the level's work, into a copy the later
    levels read (:mod:`gmsdask.io.decoded_copy`); the controller deletes it when the scene's chain ends."""
    copy = decoded_copy(ctx)
    opened = _chain_bands(open_scene(ctx.record.product_path, chunks=ctx.config.chunks, decoded=copy), ctx.config)
    rasters = [var.encoding["source_raster"] for node in opened.subtree for var in node.dataset.data_vars.values()
               if "source_raster" in var.encoding]
    work = None if copy is None else copy.write(rasters)
    if work is None:
        return LevelOutcome(opened)

    def finish(results: tuple) -> LevelOutcome:
        assert copy is not None
        copy.mark_complete()
        return LevelOutcome(opened, note=f"decoded {results[0] / 2**20:.0f} MiB of JPEG 2000 bands once")
    return LevelOutcome(opened, work=(work,), finish=finish)
