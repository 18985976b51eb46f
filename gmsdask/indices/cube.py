"""Sen2Chain cloud masks and (masked) indices written into an MGRS tile cube, beside the bands.

Variables (dims ``time, y, x``, Zarr chunks and compressor of the cube's bands):

- ``CM001``, ``CM004-CSH1-CMP1-CHP1-TCI1-ITER0`` ...: the masks, ``uint8`` 0 clear / 1 masked / 255 unknown
  (no inputs in that slot, e.g. Landsat, or outside the product); attribute ``nodata`` = 255, not CF-masked;
- ``NDVI``, ``MNDWI`` ...: the unmasked indices (Sen2Chain computes none without a mask; gmsdask does);
- ``NDVI_CM001`` ...: the index where the mask is 0, fill elsewhere.

Indices are stored losslessly as ``int16`` = round(value x 10 000) (``scale_factor`` 1e-4, ``_FillValue``
-32768, so ``xarray.open_zarr`` decodes them to floats with NaN); -32768 is outside every index's valid range,
unlike the bands' -9999, which is index value -0.9999.

Every scene's masks and indices are one commit of the cube (Icechunk), written by
:func:`~gmsdask.indices.cube_store.store_slot_variables`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike

import odc.geo.xr  # noqa: F401  (the .odc accessor)
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox

from ..algorithms.sen2chain_masks import parse_cloud_mask
from ..errors import ProcessingError
from ..io.cube import open_cube, open_cube_session
from ..io.cube_storage import normalize_location
from .cloudmasks import MASK_FILL, cloud_masks_on_grid, fill_masks, find_mask_inputs
from .cube_masks import cube_slot_masks, has_cube_mask_inputs
from .compute import IndexBandMissingError, apply_cloud_mask, compute_index
from .cube_store import INDEX_FILL, INDEX_SCALE, band_layout, store_slot_variables
from .cube_window import slot_data_windows
from .registry import parse_indices

__all__ = ["INDEX_SCALE", "INDEX_FILL", "IndexFailure", "IndexWriteReport", "write_indices_to_cube",
           "store_slot_variables", "index_variable_name"]

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
        The cube's location (absolute path or URL).
    slots
        ``{scene_id: storage index of its time slot}`` of the scenes written (not the position in time order).
    variables
        ``{scene_id: [variable names written]}``.
    failures
        Indices that could not be computed (a missing band), never silently dropped.
    notes
        What the task log should say (slots without mask inputs, masks without their inputs ...).
    """

    cube: str
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


def _scene_positions(scene_ids: Sequence) -> dict[str, int]:
    """``{scene_id: position}`` along the time axis of a cube (or of a Dataset read from it)."""
    return {str(scene_id): i for i, scene_id in enumerate(list(scene_ids))}


def _location(cube: xr.Dataset | str | PathLike[str], store: str | PathLike[str] | None) -> str:
    if store is not None:
        return normalize_location(store)
    if isinstance(cube, xr.Dataset):
        raise ProcessingError("cube", "INDICES", "a cube Dataset needs store=<the cube's location>")
    return normalize_location(cube)


def _level(bands: xr.Dataset) -> str:
    return str(bands.coords["processing_level"].values).upper() if "processing_level" in bands.coords else ""


def _is_level1(bands: xr.Dataset) -> bool:
    return _level(bands).startswith("L1")


def _uses_cube_fmask(bands: xr.Dataset) -> bool:
    """True when the slot may hold gmsdask's own Fmask layers: the cube has ``fmask`` and the slot's input was not
    a Level-2 product (those carry Sen2Cor's or the USGS's layers; their ``fmask`` is fill)."""
    return has_cube_mask_inputs(bands) and not _level(bands).startswith("L2")


def _slot_masks(scene: xr.DataTree | None, bands: xr.Dataset, mask_names: Sequence[str], grid: GeoBox,
                chunks: tuple[int, int], scene_id: str) -> tuple[xr.Dataset, list[str]]:
    """The masks of one slot on ``grid`` and notes. Inputs, first found: the product's MSK_CLDPRB/SCL (or the
    fmask of a scene tree), the cube slot's own fmask/cloud_confidence, none (fill value)."""
    if not mask_names:
        return xr.Dataset(), []
    if scene is not None and find_mask_inputs(scene) is not None:
        result = cloud_masks_on_grid(scene, mask_names, grid, chunks=chunks, scene_id=scene_id)
        return result.masks, list(result.notes)
    if _uses_cube_fmask(bands):
        result = cube_slot_masks(bands, mask_names, chunks=chunks, scene_id=scene_id)
        pixel_m = abs(grid.resolution.x)
        return result.masks, [f"{scene_id}: {', '.join(mask_names)} from the cube's fmask/cloud_confidence at "
                              f"{pixel_m:g} m (Sen2Chain's kernels scaled in metres)", *result.notes]
    if scene is not None:  # its note names the platform and says why
        result = cloud_masks_on_grid(scene, mask_names, grid, chunks=chunks, scene_id=scene_id)
        return result.masks, list(result.notes)
    return fill_masks(mask_names, grid, chunks), [
        f"{scene_id}: no cloud-mask inputs (no product with MSK_CLDPRB/SCL, no fmask in the cube slot); "
        f"{', '.join(mask_names)} hold the fill value {MASK_FILL}"]


def write_indices_to_cube(cube: xr.Dataset | str | PathLike[str], scenes: Mapping[str, SceneInput],
                          cloudmasks: Sequence[str], indices: Sequence[str] | str, *,
                          store: str | PathLike[str] | None = None) -> IndexWriteReport:
    """Compute Sen2Chain's cloud masks and the (masked) indices of some cube slots and store them in the cube.

    Parameters
    ----------
    cube
        The tile cube: its location (path or URL of the Icechunk repository), or a Dataset read from it (e.g.
        :func:`gmsdask.io.cube.open_cube`, in any time order; then ``store`` names the location).
    scenes
        ``{scene_id: scene}`` for the slots to process; the scene is a scene tree (``gmsdask.open_scene``), a
        product path, or None when the slot has no cloud-mask inputs (its masks hold 255). Every ``scene_id`` must
        be in the cube's ``scene_id`` variable.
    cloudmasks
        Mask strings (``CM001``, ``CM003-PRB1-ITER5`` ...); unknown strings raise ``ConfigError``.
    indices
        Index names or a ``/``-separated string (``All`` = every index); unknown names raise ``ConfigError``.
    store
        The cube's location, when ``cube`` is a Dataset.

    Returns
    -------
    IndexWriteReport
        Slots, variables written, failures (an index whose band is missing: recorded per scene with the reason,
        the other indices and masks are still written) and notes. Each scene's variables are one commit.
    """
    location = _location(cube, store)
    specs = parse_indices(indices)
    mask_names = [parse_cloud_mask(m).name for m in cloudmasks]
    session = open_cube_session(location)  # raises naming the location when there is no cube
    group = zarr.open_group(session.store, mode="r")
    if "scene_id" not in group:
        raise ProcessingError(location, "INDICES", "the cube has no scene_id variable (not a gmsdask tile cube)")
    # slots are appended in processing order while open_cube sorts by time: write by storage index, read by label
    slots = _scene_positions(group["scene_id"][:].tolist())
    ds = cube if isinstance(cube, xr.Dataset) else open_cube(location)
    positions = _scene_positions(ds["scene_id"].values.tolist())
    unknown = [scene_id for scene_id in scenes if scene_id not in slots or scene_id not in positions]
    if unknown:
        raise ProcessingError(location, "INDICES", f"scenes not in the cube: {', '.join(unknown)}")
    grid = ds.odc.geobox
    chunks = band_layout(group)[0]
    report = IndexWriteReport(cube=location)
    windows = slot_data_windows(group, [slots[scene_id] for scene_id in scenes], chunks)
    for scene_id, scene_input in scenes.items():
        slot = slots[scene_id]
        window = windows[slot]
        bands = ds.isel(time=positions[scene_id], y=window[0], x=window[1])
        # a Level-1 product has no MSK_CLDPRB/SCL: with the cube's fmask at hand it is not even opened
        level1_path = _uses_cube_fmask(bands) and _is_level1(bands) and not isinstance(scene_input, xr.DataTree)
        scene = None if level1_path else _open_scene(scene_input)
        masks, notes = _slot_masks(scene, bands, mask_names, grid[window], chunks, scene_id)
        report.notes.extend(notes)
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
            store_slot_variables(location, data, [slot], scene_ids=[scene_id], window=window,
                                 message=f"indices: {', '.join(map(str, data.data_vars))} of {scene_id} "
                                         f"into slot {slot}")
        report.slots[scene_id] = slot
        report.variables[scene_id] = list(data.data_vars)
    return report
