"""Sen2Chain cloud masks and (masked) indices written into an MGRS tile cube, beside the bands.

Variables (dims ``time, y, x``, Zarr chunks and compressor of the cube's bands):

- ``CM001``, ``CM004-CSH1-CMP1-CHP1-TCI1-ITER0`` ...: the masks, ``uint8`` 0 clear / 1 masked / 255 unknown
  (no inputs in that slot, e.g. Landsat, or outside the product); attribute ``nodata`` = 255, not CF-masked;
- ``NDVI``, ``MNDWI`` ...: the unmasked indices (Sen2Chain computes none without a mask; gmsdask does);
- ``NDVI_CM001`` ...: the index where the mask is 0, fill elsewhere.

Indices are stored losslessly as ``int16`` = round(value x 10 000) (``scale_factor`` 1e-4, ``_FillValue``
-32768, so ``xarray.open_zarr`` decodes them to floats with NaN); -32768 is outside every index's valid range,
unlike the bands' -9999, which is index value -0.9999.

The cube store is about to move to Icechunk: everything that touches the store is in :func:`store_slot_variables`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor)
import xarray as xr
import zarr

from ..algorithms.sen2chain_masks import parse_cloud_mask
from ..errors import ProcessingError
from ..io.cube import cube_lock
from .cloudmasks import MASK_FILL, cloud_masks_on_grid, fill_masks
from .compute import IndexBandMissingError, apply_cloud_mask, compute_index
from .registry import parse_indices

__all__ = ["INDEX_SCALE", "INDEX_FILL", "IndexFailure", "IndexWriteReport", "write_indices_to_cube",
           "store_slot_variables", "index_variable_name"]

INDEX_SCALE = 1e-4
INDEX_FILL = -32768
SceneInput = xr.DataTree | str | PathLike[str] | None


@dataclass(frozen=True)
class IndexFailure:
    """An index (or mask) that could not be computed for one scene, and why."""

    scene_id: str
    name: str
    reason: str


@dataclass
class IndexWriteReport:
    """What :func:`write_indices_to_cube` did.

    Attributes
    ----------
    cube
        The cube's path.
    slots
        ``{scene_id: time slot}`` of the scenes written.
    variables
        ``{scene_id: [variable names written]}``.
    failures
        Indices that could not be computed (a missing band), never silently dropped.
    notes
        What the task log should say (slots without mask inputs, masks without their inputs ...).
    """

    cube: Path
    slots: dict[str, int] = field(default_factory=dict)
    variables: dict[str, list[str]] = field(default_factory=dict)
    failures: list[IndexFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every requested index was computed for every scene."""
        return not self.failures


def index_variable_name(index: str, mask: str | None = None) -> str:
    """Sen2Chain's product name: ``NDVI`` or ``NDVI_CM001`` (canonical mask name)."""
    return index if mask is None else f"{index}_{parse_cloud_mask(mask).name}"


def _open_scene(scene: SceneInput) -> xr.DataTree | None:
    if scene is None or isinstance(scene, xr.DataTree):
        return scene
    from ..io.open import open_scene  # the readers are only needed when a product path is given

    return open_scene(scene)


def _cube_path(cube: xr.Dataset | str | PathLike[str], store: str | PathLike[str] | None) -> Path:
    if store is not None:
        return Path(store)
    if isinstance(cube, xr.Dataset):
        source = cube.encoding.get("source")
        if not source:
            raise ProcessingError("cube", "INDICES", "a cube Dataset without encoding['source'] needs store=<path>")
        return Path(source)
    return Path(cube)


def _band_chunks(group: zarr.Group) -> tuple[tuple[int, int], tuple]:
    """Spatial Zarr chunks and compressors of the cube's bands (the new variables get the same)."""
    for _, arr in group.arrays():
        if (arr.metadata.dimension_names or (None,))[0] == "time" and arr.ndim == 3:
            return (arr.chunks[1], arr.chunks[2]), tuple(arr.compressors)
    raise ProcessingError(str(group.store), "INDICES", "the cube has no (time, y, x) variable")


def _encoding(name: str, data: xr.DataArray, chunks: tuple[int, int], compressors: tuple) -> dict:
    enc: dict = {"chunks": (1, *chunks), "compressors": compressors}
    if np.issubdtype(data.dtype, np.floating):
        enc.update(dtype="int16", scale_factor=INDEX_SCALE, _FillValue=INDEX_FILL, fill_value=INDEX_FILL)
    else:
        enc.update(dtype="uint8", fill_value=MASK_FILL)
    return enc


def store_slot_variables(path: str | PathLike[str], data: xr.Dataset, slots: Sequence[int]) -> None:
    """Write ``data`` (variables ``(time, y, x)``, ``time`` of length ``len(slots)``) into those cube slots.

    Float variables are indices (stored int16 x 10 000), integer ones masks (uint8, fill 255). Variables the
    cube lacks are created first, under the cube's lock, for every slot (filled); then each slot is a region
    write of whole Zarr chunks (each slot is its own chunk along time, so concurrent slots never collide).
    """
    path = Path(path)
    if data.sizes.get("time") != len(slots):
        raise ProcessingError(str(path), "INDICES", f"{data.sizes.get('time')} time steps for {len(slots)} slots")
    data = data.drop_vars(list(data.coords))
    with cube_lock(path):
        group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        chunks, compressors = _band_chunks(group)
        n_time, ny, nx = group["time"].shape[0], group["y"].shape[0], group["x"].shape[0]
        missing = [name for name in data.data_vars if name not in group]
        if missing:
            template = xr.Dataset({
                name: (("time", "y", "x"), da.zeros((n_time, ny, nx), dtype=data[name].dtype, chunks=(1, ny, nx)),
                       _attrs(data[name]))
                for name in missing})
            template.to_zarr(str(path), mode="a", compute=False, consolidated=False,
                             encoding={name: _encoding(name, data[name], chunks, compressors) for name in missing})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # consolidated metadata is not in Zarr v3 yet
            zarr.consolidate_metadata(str(path))
    writes = []
    for i, slot in enumerate(slots):
        part = data.isel(time=slice(i, i + 1))
        part = part.map(lambda v: v.copy(data=v.data.rechunk((1, *chunks))) if isinstance(v.data, da.Array)
                        else v.chunk({"time": 1, "y": chunks[0], "x": chunks[1]}))
        region = {"time": slice(slot, slot + 1), "y": slice(0, ny), "x": slice(0, nx)}
        writes.append(part.to_zarr(str(path), region=region, mode="r+", consolidated=False, compute=False))
    dask.compute(*writes)


def _attrs(var: xr.DataArray) -> dict:
    attrs = {k: v for k, v in var.attrs.items() if k not in ("_FillValue", "scale_factor", "add_offset")}
    attrs.update(grid_mapping="spatial_ref", coordinates="spatial_ref")
    return attrs


def _scene_positions(scene_ids: Sequence) -> dict[str, int]:
    """``{scene_id: position}`` along the time axis of a cube (or of a Dataset opened from it)."""
    return {str(scene_id): i for i, scene_id in enumerate(list(scene_ids))}


def write_indices_to_cube(cube: xr.Dataset | str | PathLike[str], scenes: Mapping[str, SceneInput],
                          cloudmasks: Sequence[str], indices: Sequence[str] | str, *,
                          store: str | PathLike[str] | None = None) -> IndexWriteReport:
    """Compute Sen2Chain's cloud masks and the (masked) indices of some cube slots and store them in the cube.

    Parameters
    ----------
    cube
        The tile cube: its path, or a Dataset opened from it (``xr.open_zarr``; time in storage order).
    scenes
        ``{scene_id: scene}`` for the slots to process; the scene is a scene tree (``gmsdask.open_scene``), a
        product path, or None when the slot has no cloud-mask inputs (its masks hold 255). Every ``scene_id`` must
        be in the cube's ``scene_id`` variable.
    cloudmasks
        Mask strings (``CM001``, ``CM003-PRB1-ITER5`` ...); unknown strings raise ``ConfigError``.
    indices
        Index names or a ``/``-separated string (``All`` = every index); unknown names raise ``ConfigError``.
    store
        Where to write, when ``cube`` is a Dataset whose ``encoding['source']`` is not its path.

    Returns
    -------
    IndexWriteReport
        Slots, variables written, failures (an index whose band is missing: recorded per scene with the reason,
        the other indices and masks are still written) and notes.
    """
    path = _cube_path(cube, store)
    specs = parse_indices(indices)
    mask_names = [parse_cloud_mask(m).name for m in cloudmasks]
    ds = cube if isinstance(cube, xr.Dataset) else xr.open_zarr(str(path), consolidated=False)
    if "scene_id" not in ds:
        raise ProcessingError(str(path), "INDICES", "the cube has no scene_id variable (not a gmsdask tile cube)")
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    slots = _scene_positions(group["scene_id"][:].tolist())  # storage order: where to write
    positions = _scene_positions(ds["scene_id"].values.tolist())  # order of ``ds``: where to read
    unknown = [scene_id for scene_id in scenes if scene_id not in slots or scene_id not in positions]
    if unknown:
        raise ProcessingError(str(path), "INDICES", f"scenes not in the cube: {', '.join(unknown)}")
    grid = ds.odc.geobox
    chunks = _band_chunks(group)[0]
    report = IndexWriteReport(cube=path)
    for scene_id, scene_input in scenes.items():
        slot = slots[scene_id]
        bands = ds.isel(time=positions[scene_id])
        scene = _open_scene(scene_input)
        if scene is None:
            masks = fill_masks(mask_names, grid, chunks)
            if mask_names:
                report.notes.append(f"{scene_id}: no scene given for cloud-mask inputs; "
                                    f"{', '.join(mask_names)} hold the fill value {MASK_FILL}")
        else:
            result = cloud_masks_on_grid(scene, mask_names, grid, chunks=chunks, scene_id=scene_id)
            masks = result.masks
            report.notes.extend(result.notes)
        new: dict[str, xr.DataArray] = {name: masks[name].drop_vars(list(masks[name].coords)) for name in mask_names}
        for spec in specs:
            try:
                index = compute_index(bands, spec.name, scene=scene_id)
            except IndexBandMissingError as err:
                report.failures.append(IndexFailure(scene_id, spec.name, str(err)))
                continue
            index = index.drop_vars(list(index.coords))
            new[spec.name] = index
            for mask_name in mask_names:
                new[index_variable_name(spec.name, mask_name)] = apply_cloud_mask(index, new[mask_name])
        data = xr.Dataset({name: var.expand_dims("time") for name, var in new.items()})
        if data.data_vars:
            store_slot_variables(path, data, [slot])
        report.slots[scene_id] = slot
        report.variables[scene_id] = list(data.data_vars)
    return report
