"""Sen2Chain cloud masks of a scene, lazily per chunk on the product's own grid, carried to a target grid.

Inputs (first found wins):

- Sentinel-2 L2A: ``MSK_CLDPRB`` (cloud probability, %) and ``SCL`` (Sen2Cor classes) of the ``r20m`` group,
  else of ``r60m`` (a product that has them only at 60 m); B11 (``swir16``, surface reflectance) for CM002.
- gmsdask's own L1C output: ``fmask`` classes and ``cloud_confidence`` (uint8 %) translated into SCL classes and
  MSK_CLDPRB by :mod:`gmsdask.algorithms.fmask_sen2cor` (clouds are SCL 8 or 9 by their confidence; Fmask has no
  cirrus class, so CM004's TCI flag selects nothing there). Slots of a tile cube whose product is not at hand
  are masked from the cube's own layers by :mod:`gmsdask.indices.cube_masks`.
- Anything else (a Landsat product): no inputs; the masks hold :data:`MASK_FILL` (255) and the caller notes it
  (a cube slot of such a scene may still be masked from the cube's own layers, :mod:`.cube_masks`).

Each mask is computed with ``dask.array.map_overlap`` at depth :func:`overlap_depth` (the sum of its kernel
radii), so block seams are invisible; only the source window under the target grid (plus that depth) is read.

Carrying to the target grid is conservative: a target pixel is 1 when ANY source pixel overlapping it is 1.
When both grids share CRS and axes (every MGRS cube of a Sentinel-2 tile), this is an exact max over the
overlapping source rows and columns (separable, gathered with Dask ``take``), for any pixel-size ratio (20 m to
30 m, 60 m ...). Other grids fall back to odc-geo's reprojection with GDAL's ``max`` resampling. Target pixels
no source pixel overlaps get :data:`MASK_FILL`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor)
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords, xr_reproject

from ..algorithms.fmask_sen2cor import FMASK_TO_SCL, fmask_cloud_probability, fmask_to_scl
from ..algorithms.sen2chain_masks import CloudMaskSpec, cloud_mask, overlap_depth, parse_cloud_mask
from .compute import find_band

__all__ = ["MASK_FILL", "FMASK_TO_SCL", "MaskInputs", "MaskResult", "find_mask_inputs", "cloud_masks_on_grid",
           "fill_masks"]

#: Stored value of a mask pixel whose state is unknown (no inputs, outside the product).
MASK_FILL = 255
_GROUP_PREFERENCE = ("r20m", "r60m")
_EPS = 1e-6


@dataclass(frozen=True)
class MaskInputs:
    """The layers the masks are computed from, on one source grid (``probability`` %, ``scl`` classes,
    ``swir16`` reflectance; any may be None), and where they came from."""

    grid: GeoBox
    probability: xr.DataArray | None
    scl: xr.DataArray | None
    swir16: xr.DataArray | None
    source: str


@dataclass(frozen=True)
class MaskResult:
    """Masks on the target grid (uint8 ``(y, x)`` variables named canonically, 0/1/255) and notes for the log."""

    masks: xr.Dataset
    notes: list[str] = field(default_factory=list)


def _groups_in_order(scene: xr.DataTree) -> list[str]:
    names = [name for name in scene.children if isinstance(scene[name], xr.DataTree)]
    preferred = [name for name in _GROUP_PREFERENCE if name in names]
    rest = sorted((n for n in names if n not in preferred and n.startswith("r") and n[1:-1].isdigit()),
                  key=lambda n: int(n[1:-1]))
    return preferred + rest


def _translated(function, fmask: xr.DataArray, confidence: xr.DataArray | None) -> xr.DataArray:
    """``function(fmask, confidence)`` of :mod:`gmsdask.algorithms.fmask_sen2cor`, lazily (uint8)."""
    arrays = [fmask] if confidence is None else [fmask, confidence]
    return xr.apply_ufunc(function, *arrays, dask="parallelized", output_dtypes=[np.uint8])


def find_mask_inputs(scene: xr.DataTree) -> MaskInputs | None:
    """The mask inputs of a scene (module docstring), or None when it has none (e.g. Landsat)."""
    for name in _groups_in_order(scene):
        ds = scene[name].to_dataset()
        if "MSK_CLDPRB" in ds or "SCL" in ds:
            probability, scl, source = ds.get("MSK_CLDPRB"), ds.get("SCL"), f"Sen2Cor MSK_CLDPRB/SCL of {name}"
        elif "fmask" in ds:
            confidence = ds.get("cloud_confidence")
            probability = _translated(fmask_cloud_probability, ds["fmask"], confidence)
            scl = _translated(fmask_to_scl, ds["fmask"], confidence)
            source = f"gmsdask cloud_confidence/fmask of {name}"
        else:
            continue
        grid = ds.odc.geobox
        return MaskInputs(grid, probability, scl, _swir16_on(scene, grid, name), source)
    return None


def _swir16_on(scene: xr.DataTree, grid: GeoBox, group: str) -> xr.DataArray | None:
    """B11 reflectance on ``grid``: from ``group`` itself, else the nearest pixel of another group."""
    for name in [group, *(g for g in _groups_in_order(scene) if g != group)]:
        ds = scene[name].to_dataset()
        band = find_band(ds, "swir16")
        if band is None:
            continue
        if name == group:
            return ds[band]
        return xr_reproject(ds[band], grid, resampling="nearest", dst_nodata=np.nan)
    return None


# --- per-chunk masks on the source grid ------------------------------------------------------------------------
def _block_mask(spec: CloudMaskSpec, names: tuple[str, ...], *blocks: np.ndarray) -> np.ndarray:
    *layers, inside = blocks
    return cloud_mask(spec, inside=inside, **dict(zip(names, layers)))


def _source_mask(spec: CloudMaskSpec, inputs: MaskInputs, rows: slice, cols: slice,
                 chunks: tuple[int, int]) -> da.Array:
    """The mask ``spec`` on ``source[rows, cols]`` (uint8), blockwise with the overlap its kernels need."""
    layers = {"probability": inputs.probability, "scl": inputs.scl, "swir16": inputs.swir16}
    names = spec.needs
    arrays = []
    for name in names:
        data = layers[name].data[rows, cols]
        arrays.append((data if isinstance(data, da.Array) else da.from_array(data)).rechunk(chunks))
    inside = da.ones(arrays[0].shape, dtype=bool, chunks=arrays[0].chunks)
    depth = overlap_depth(spec)
    if depth == 0:
        return da.map_blocks(_block_mask, spec, names, *arrays, inside, dtype=np.uint8)
    # zeros beyond the image: not cloud, and inside=False there (the algorithms keep that padding at 0)
    return da.map_overlap(lambda *b: _block_mask(spec, names, *b), *arrays, inside, depth=depth, boundary=0,
                          dtype=np.uint8, align_arrays=False)


# --- to the target grid -----------------------------------------------------------------------------------------------
def _axis_cover(src_origin: float, src_step: float, dst_origin: float, dst_step: float, n_dst: int,
                n_src: int) -> tuple[np.ndarray, np.ndarray]:
    """Per target pixel the ``[start, stop)`` source pixels overlapping it along one axis (clipped)."""
    edges = (dst_origin + np.arange(n_dst + 1) * dst_step - src_origin) / src_step
    start = np.floor(edges[:-1] + _EPS).astype(np.int64)
    stop = np.ceil(edges[1:] - _EPS).astype(np.int64)
    return np.clip(start, 0, n_src), np.clip(stop, 0, n_src)


def _same_axes(src: GeoBox, dst: GeoBox) -> bool:
    a, b = src.affine, dst.affine
    return src.crs == dst.crs and not (a.b or a.d or b.b or b.d) and a.a * b.a > 0 and a.e * b.e > 0


def _gather_max(data: da.Array, axis: int, start: np.ndarray, stop: np.ndarray, chunk: int) -> da.Array:
    """Max over ``data[start:stop]`` along ``axis`` for every target index (empty ranges: any value, the caller
    replaces it)."""
    width = int(max(1, (stop - start).max(initial=1)))
    last = np.maximum(stop - 1, start)
    out = None
    for k in range(width):
        index = np.minimum(start + k, last)
        index = np.clip(index, 0, data.shape[axis] - 1)
        taken = da.take(data, index, axis=axis).rechunk({axis: chunk})
        out = taken if out is None else da.maximum(out, taken)
    return out


def _nested_masks(specs: Sequence[CloudMaskSpec], inputs: MaskInputs, target: GeoBox,
                  chunks: tuple[int, int]) -> dict[str, da.Array]:
    src, dst = inputs.grid, target
    (n_rows, n_cols), (t_rows, t_cols) = src.shape.yx, dst.shape.yx
    row0, row1 = _axis_cover(src.affine.f, src.affine.e, dst.affine.f, dst.affine.e, t_rows, n_rows)
    col0, col1 = _axis_cover(src.affine.c, src.affine.a, dst.affine.c, dst.affine.a, t_cols, n_cols)
    covered_rows, covered_cols = row1 > row0, col1 > col0
    out: dict[str, da.Array] = {}
    if not covered_rows.any() or not covered_cols.any():
        return {spec.name: da.full(dst.shape.yx, MASK_FILL, dtype=np.uint8, chunks=chunks) for spec in specs}
    for spec in specs:
        depth = overlap_depth(spec)
        r_lo = max(int(row0[covered_rows].min()) - depth, 0)
        r_hi = min(int(row1[covered_rows].max()) + depth, n_rows)
        c_lo = max(int(col0[covered_cols].min()) - depth, 0)
        c_hi = min(int(col1[covered_cols].max()) + depth, n_cols)
        src_chunks = (min(chunks[0], r_hi - r_lo), min(chunks[1], c_hi - c_lo))
        mask = _source_mask(spec, inputs, slice(r_lo, r_hi), slice(c_lo, c_hi), src_chunks)
        mask = _gather_max(mask, 0, row0 - r_lo, row1 - r_lo, chunks[0])
        mask = _gather_max(mask, 1, col0 - c_lo, col1 - c_lo, chunks[1])
        # an outer product of two 1-D flags, broadcast lazily (no full-size array in the graph)
        known = (da.broadcast_to(da.from_array(covered_rows[:, None], chunks=(chunks[0], 1)), dst.shape.yx, chunks)
                 & da.broadcast_to(da.from_array(covered_cols[None, :], chunks=(1, chunks[1])), dst.shape.yx, chunks))
        out[spec.name] = da.where(known, mask, np.uint8(MASK_FILL)).astype(np.uint8).rechunk(chunks)
    return out


def _reprojected_masks(specs: Sequence[CloudMaskSpec], inputs: MaskInputs, target: GeoBox,
                       chunks: tuple[int, int]) -> dict[str, da.Array]:
    out = {}
    n_rows, n_cols = inputs.grid.shape.yx
    for spec in specs:
        mask = _source_mask(spec, inputs, slice(0, n_rows), slice(0, n_cols), chunks)
        source = xr.DataArray(mask, dims=("y", "x"), coords=xr_coords(inputs.grid))
        moved = xr_reproject(source, target, resampling="max", dst_nodata=MASK_FILL, dtype="uint8")
        out[spec.name] = moved.data.rechunk(chunks)
    return out


def _on_target(data: da.Array, target: GeoBox, name: str, attrs: dict) -> xr.DataArray:
    return xr.DataArray(data, dims=("y", "x"), coords=xr_coords(target), name=name, attrs=attrs)


def _mask_attrs(spec: CloudMaskSpec, source: str) -> dict:
    return {"long_name": f"Sen2Chain cloud mask {spec.name}", "flag_values": [0, 1],
            "flag_meanings": "clear masked", "nodata": MASK_FILL, "source": source}


def fill_masks(masks: Sequence[str], target: GeoBox, chunks: tuple[int, int]) -> xr.Dataset:
    """Masks that hold :data:`MASK_FILL` everywhere (a slot without mask inputs)."""
    specs = [parse_cloud_mask(m) for m in masks]
    return xr.Dataset({spec.name: _on_target(da.full(target.shape.yx, MASK_FILL, dtype=np.uint8, chunks=chunks),
                                             target, spec.name, _mask_attrs(spec, "none"))
                       for spec in specs})


def cloud_masks_on_grid(scene: xr.DataTree, masks: Sequence[str], target: GeoBox, *,
                        chunks: tuple[int, int] = (1024, 1024), scene_id: str = "") -> MaskResult:
    """The Sen2Chain ``masks`` of ``scene`` on the ``target`` grid, lazily (uint8, 1 masked, 255 unknown).

    Parameters
    ----------
    scene
        The scene tree as :func:`gmsdask.open_scene` returns it (or gmsdask's L1C output).
    masks
        Mask strings (``CM001``, ``CM004-CSH1-CMP1-CHP1-TCI1-ITER0`` ...); variables get canonical names.
    target
        The target grid (e.g. the MGRS tile cube's GeoBox).
    chunks
        ``(y, x)`` block size of the result and of the source blocks the masks are computed on, pixels.
    scene_id
        Names the scene in notes.

    A mask whose inputs the scene lacks (all of them for Landsat; B11 for CM002; SCL for CM004) is filled with
    :data:`MASK_FILL`, with a note saying why.
    """
    specs = [parse_cloud_mask(m) for m in masks]
    label = scene_id or str(scene.attrs.get("product_id", "scene"))
    inputs = find_mask_inputs(scene)
    if inputs is None:
        platform = scene.attrs.get("platform", "?")
        return MaskResult(fill_masks(masks, target, chunks),
                          [f"{label} ({platform}): no cloud-mask inputs (MSK_CLDPRB/SCL or cloud_confidence/fmask); "
                           f"{', '.join(s.name for s in specs)} hold the fill value {MASK_FILL}"])
    available = {"probability": inputs.probability is not None, "scl": inputs.scl is not None,
                 "swir16": inputs.swir16 is not None}
    computable = [s for s in specs if all(available[need] for need in s.needs)]
    notes = [f"{label}: {s.name} needs {', '.join(n for n in s.needs if not available[n])}, which the scene lacks; "
             f"it holds the fill value {MASK_FILL}" for s in specs if s not in computable]
    builder = _nested_masks if _same_axes(inputs.grid, target) else _reprojected_masks
    if not _same_axes(inputs.grid, target):
        notes.append(f"{label}: masks carried to the target grid by GDAL 'max' resampling (other CRS or axes)")
    arrays = builder(computable, inputs, target, chunks) if computable else {}
    variables = {}
    for spec in specs:
        data = arrays.get(spec.name)
        if data is None:
            data = da.full(target.shape.yx, MASK_FILL, dtype=np.uint8, chunks=chunks)
        variables[spec.name] = _on_target(data, target, spec.name, _mask_attrs(spec, inputs.source))
    return MaskResult(xr.Dataset(variables), notes)
