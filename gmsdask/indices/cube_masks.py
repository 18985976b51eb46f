"""Sen2Chain cloud masks of a cube slot from the cube's own ``fmask`` and ``cloud_confidence``, lazily.

Scenes gmsdask corrected itself (Level-1 products through L1C: Fmask + 6S, e.g. a routine's ``compute_l2a``
products and Landsat Level-1 scenes) have no Sen2Cor ``MSK_CLDPRB``/``SCL``; their slots in the tile cube hold the
Fmask classes ``fmask`` and, with Fmask, ``cloud_confidence``, already on the cube grid. Here they are translated
(:mod:`gmsdask.algorithms.fmask_sen2cor`) and the masks are computed on the cube grid with Sen2Chain's kernels
scaled to the cube's pixel size in metres (:mod:`gmsdask.algorithms.sen2chain_masks_gsd`; at 20 m they are
Sen2Chain's own).

Per Dask block with ``map_overlap`` at the mask's overlap depth (no seams; beyond the computed window nothing is
cloud, which is exact when the window holds every pixel with data, see :mod:`gmsdask.indices.cube_window`).
Pixels where the slot's ``fmask`` has no data hold :data:`MASK_FILL` (255, unknown), like the pixels a product
does not cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor)
import xarray as xr

from ..algorithms.fmask_sen2cor import (
    fmask_cloud_probability,
    fmask_has_data,
    fmask_to_scl,
    swir16_for_cm002,
)
from ..algorithms.sen2chain_masks import CloudMaskSpec, parse_cloud_mask
from ..algorithms.sen2chain_masks_gsd import cloud_mask_at, overlap_depth_at
from .cloudmasks import MASK_FILL, MaskResult
from .compute import find_band

__all__ = ["CUBE_MASK_SOURCE", "has_cube_mask_inputs", "cube_slot_masks"]

#: The ``source`` attribute of masks computed from the cube's Fmask layers.
CUBE_MASK_SOURCE = "gmsdask fmask/cloud_confidence of the cube slot (docs/indices-and-cloudmasks.md)"


def has_cube_mask_inputs(slot: xr.Dataset) -> bool:
    """True when the slot's dataset has an ``fmask`` layer (whether this slot wrote it is decided by its data)."""
    return "fmask" in slot.data_vars


def _as_dask(var: xr.DataArray, chunks: tuple[int, int]) -> da.Array:
    data = var.data if isinstance(var.data, da.Array) else da.from_array(var.data)
    return data.rechunk(chunks)


def _block_mask(spec: CloudMaskSpec, pixel_m: float, names: tuple[str, ...], *blocks: np.ndarray) -> np.ndarray:
    *layers, inside = blocks
    return cloud_mask_at(spec, pixel_m, inside=inside, **dict(zip(names, layers, strict=True)))


def _mask(spec: CloudMaskSpec, pixel_m: float, layers: dict[str, da.Array]) -> da.Array:
    names = spec.needs
    arrays = [layers[name] for name in names]
    inside = da.ones(arrays[0].shape, dtype=bool, chunks=arrays[0].chunks)
    depth = overlap_depth_at(spec, pixel_m)
    if depth == 0:
        return da.map_blocks(_block_mask, spec, pixel_m, names, *arrays, inside, dtype=np.uint8)
    # zeros beyond the window: not cloud, inside=False there (the rules keep that margin at 0)
    return da.map_overlap(lambda *b: _block_mask(spec, pixel_m, names, *b), *arrays, inside, depth=depth,
                          boundary=0, dtype=np.uint8, align_arrays=False)


def _attrs(spec: CloudMaskSpec, pixel_m: float) -> dict:
    return {"long_name": f"Sen2Chain cloud mask {spec.name}", "flag_values": [0, 1],
            "flag_meanings": "clear masked", "nodata": MASK_FILL, "source": CUBE_MASK_SOURCE,
            "kernel_pixel_m": float(pixel_m)}


def cube_slot_masks(slot: xr.Dataset, masks: Sequence[str], *, chunks: tuple[int, int],
                    scene_id: str = "") -> MaskResult:
    """The Sen2Chain ``masks`` of one cube slot from its ``fmask``/``cloud_confidence``, on the slot's grid.

    Parameters
    ----------
    slot
        One time step of the cube (or a window of it): ``(y, x)`` variables ``fmask`` (uint8 classes), optionally
        ``cloud_confidence`` (uint8 %) and the harmonized B11 (``swir16``, reflectance) for CM002.
    masks
        Mask strings; result variables get canonical names.
    chunks
        ``(y, x)`` block size of the computation and of the result, pixels.
    scene_id
        Names the slot in notes.

    Returns
    -------
    MaskResult
        uint8 masks (1 masked, 0 clear, 255 where ``fmask`` has no data) and notes (a mask whose input is missing,
        e.g. CM002 without B11, holds 255). Lazy: nothing is computed.
    """
    specs = [parse_cloud_mask(m) for m in masks]
    grid = slot.odc.geobox
    pixel_m = float(abs(grid.resolution.x))
    fmask = _as_dask(slot["fmask"], chunks)
    confidence = _as_dask(slot["cloud_confidence"], chunks) if "cloud_confidence" in slot.data_vars else None
    if confidence is None:
        probability = da.map_blocks(fmask_cloud_probability, fmask, dtype=np.uint8)
        scl = da.map_blocks(fmask_to_scl, fmask, dtype=np.uint8)
    else:
        probability = da.map_blocks(fmask_cloud_probability, fmask, confidence, dtype=np.uint8)
        scl = da.map_blocks(fmask_to_scl, fmask, confidence, dtype=np.uint8)
    layers: dict[str, da.Array] = {"probability": probability, "scl": scl}
    band = find_band(slot, "swir16")
    if band is not None:
        layers["swir16"] = da.map_blocks(swir16_for_cm002, _as_dask(slot[band], chunks), fmask, dtype=np.float32)
    known = da.map_blocks(fmask_has_data, fmask, dtype=bool)
    label = scene_id or "slot"
    notes = [] if confidence is not None else [
        f"{label}: the cube has no cloud_confidence; Fmask clouds count as 100 % cloud probability, other classes "
        "as 0 %"]
    coords = {name: slot.coords[name] for name in ("y", "x") if name in slot.coords}
    variables = {}
    for spec in specs:
        missing = [need for need in spec.needs if need not in layers]
        if missing:
            data = da.full(fmask.shape, MASK_FILL, dtype=np.uint8, chunks=fmask.chunks)
            notes.append(f"{label}: {spec.name} needs {', '.join(missing)}, which the cube slot lacks; it holds "
                         f"the fill value {MASK_FILL}")
        else:
            data = da.where(known, _mask(spec, pixel_m, layers), np.uint8(MASK_FILL)).astype(np.uint8)
        variables[spec.name] = xr.DataArray(data, dims=("y", "x"), coords=coords, name=spec.name,
                                            attrs=_attrs(spec, pixel_m))
    return MaskResult(xr.Dataset(variables), notes)
