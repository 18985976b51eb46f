"""The layout of a tile cube: variables, their storage encodings, per-slot coordinates and the empty template.

Variables are ``(time, y, x)``:

- bands as int16: reflectance x 10 000 (``scale_factor`` float32(1e-4)), brightness temperature in 0.01 K steps
  from 273.15 K (``scale_factor`` float32(0.01), ``add_offset`` 273.15), ``_FillValue`` -9999, so that plain
  ``xarray.open_zarr`` decodes them to physical values with NaN for no data. (Zarr keeps attributes as JSON
  numbers, so a plain reader decodes to float64; :func:`gmsdask.io.cube.open_cube` returns float32.)
- ``nodata`` (uint8, 1 = no data, also where nothing was written), ``saturated`` (uint8), QA layers as their own
  integers (attribute ``nodata`` = their fill value; not CF-masked, so bit tests keep working).

Per time slot: ``time`` (ms since 1970, the dimension coordinate) and the coordinates of :data:`SLOT_COORDINATES`.
The template is written by xarray into an in-memory Zarr store and its documents are copied into the cube, so the
CF encoding is xarray's own, without re-implementing it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (the cube's CRS via .rio)
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox
from zarr.codecs import BloscCodec, BloscShuffle
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..errors import ProcessingError

__all__ = ["REFLECTANCE_SCALE", "THERMAL_SCALE", "THERMAL_OFFSET", "ANGLE_SCALE", "ACCURACY_PREFIXES", "FILL_INT16", "TIME_UNITS", "SLOT_COORDINATES",
           "SlotCoordinate", "VariableSpec", "variable_spec", "spec_from_array", "slot_coordinate_values",
           "template_documents", "put_documents", "copy_slot_rows", "encode_block", "is_band"]

REFLECTANCE_SCALE = np.float32(1e-4)
THERMAL_SCALE = np.float32(0.01)
THERMAL_OFFSET = 273.15  # kept exact: a float32 offset would shift every temperature by 6e-6 K
ANGLE_SCALE = np.float32(0.01)  # sun/view angles in 0.01 degree steps, as NASA HLS ships them
#: The scaled int16 kinds: (scale_factor, add_offset).
_SCALED: dict[str, tuple[np.float32, float]] = {"reflectance": (REFLECTANCE_SCALE, 0.0),
                                                "thermal": (THERMAL_SCALE, THERMAL_OFFSET),
                                                "angle": (ANGLE_SCALE, 0.0)}
#: Name prefixes of accuracy layers: scaled like bands, but not bands (their NaNs do not make a pixel no data).
ACCURACY_PREFIXES = ("spechomo_error_", "ac_uncertainty_")
FILL_INT16 = -9999
TIME_UNITS = "milliseconds since 1970-01-01"
_SLOT_CHUNK = 1024


@dataclass(frozen=True)
class SlotCoordinate:
    """A per-slot coordinate: numpy dtype (``"str"``, ``"float32"``, ``"int8"``), fill where a scene gives none,
    and a description."""

    dtype: str
    fill: Any
    long_name: str


#: The per-slot coordinates every cube carries (besides ``time``), in storage order.
SLOT_COORDINATES: Mapping[str, SlotCoordinate] = {
    "scene_id": SlotCoordinate("str", "", "the scene's id in the catalogue (product id)"),
    "platform": SlotCoordinate("str", "", "platform (SENTINEL_2A, LANDSAT_8 ...)"),
    "processing_level": SlotCoordinate("str", "", "processing level of the input product (L1C, L2A, L1TP ...)"),
    "quantity": SlotCoordinate("str", "", "surface_reflectance or toa_reflectance"),
    "aot550": SlotCoordinate("float32", np.nan, "aerosol optical thickness at 550 nm used by L1C"),
    "coreg_status": SlotCoordinate("str", "", "L1B co-registration status (success, no_shift, failed, skipped)"),
    "shift_x_m": SlotCoordinate("float32", np.nan, "L1B shift applied, east, metres"),
    "shift_y_m": SlotCoordinate("float32", np.nan, "L1B shift applied, north, metres"),
    "brdf_normalized": SlotCoordinate("int8", -1, "1 when BRDF-normalized (NBAR), 0 when not, -1 unknown"),
}


@dataclass(frozen=True)
class VariableSpec:
    """How one variable is stored: kind (``reflectance``, ``thermal``, ``mask``, ``qa``), dtype, fill value.

    ``fill`` is in stored units (-9999 for bands, 1 for ``nodata``, the layer's fill for QA).
    """

    kind: str
    dtype: str
    fill: int


def variable_spec(name: str, var: xr.DataArray) -> VariableSpec:
    """The storage of a scene variable, from its name, dtype and attrs."""
    if name in ("nodata", "saturated"):
        return VariableSpec("mask", "uint8", 1 if name == "nodata" else 0)
    if np.issubdtype(var.dtype, np.floating):
        units = str(var.attrs.get("units", "1"))
        kind = {"K": "thermal", "degree": "angle", "degrees": "angle"}.get(units, "reflectance")
        return VariableSpec(kind, "int16", FILL_INT16)
    if np.issubdtype(var.dtype, np.integer) or var.dtype == bool:
        fill = var.attrs.get("nodata", var.attrs.get("_FillValue", 0))
        return VariableSpec("qa", "uint8" if var.dtype == bool else str(var.dtype), int(fill))
    raise ProcessingError(name, "L2C", f"cannot store a variable of dtype {var.dtype} in a cube")


def spec_from_array(name: str, array: zarr.Array) -> VariableSpec:
    """The spec of a variable already in a cube, from its Zarr metadata."""
    attrs = array.attrs
    if name in ("nodata", "saturated"):
        return VariableSpec("mask", "uint8", 1 if name == "nodata" else 0)
    if "scale_factor" in attrs:
        kind = "thermal" if "add_offset" in attrs else \
            "angle" if str(attrs.get("units", "")).startswith("degree") else "reflectance"
        return VariableSpec(kind, "int16", int(attrs.get("_FillValue", FILL_INT16)))
    return VariableSpec("qa", str(array.dtype), int(attrs.get("nodata", array.fill_value)))


def is_band(name: str, spec: VariableSpec) -> bool:
    """True for the scaled band variables whose NaNs make a pixel ``nodata``."""
    return spec.kind in ("reflectance", "thermal") and name != "cloud" and not name.startswith(ACCURACY_PREFIXES)


def slot_coordinate_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every per-slot coordinate: the given values (cast to the coordinate's dtype), fills for the rest.

    Raises :class:`ProcessingError` naming ``where`` for unknown names or values of the wrong kind.
    """
    unknown = sorted(set(values) - set(SLOT_COORDINATES))
    if unknown:
        raise ProcessingError(where, "L2C", f"unknown per-slot coordinates {unknown}; known: {list(SLOT_COORDINATES)}")
    out = {}
    for name, coord in SLOT_COORDINATES.items():
        value = values.get(name)
        if value is None:
            out[name] = coord.fill
            continue
        try:
            out[name] = str(value) if coord.dtype == "str" else np.dtype(coord.dtype).type(value)
        except (TypeError, ValueError) as error:
            raise ProcessingError(where, "L2C", f"per-slot coordinate {name}={value!r} is not {coord.dtype}") \
                from error
    return out


def _compressors(compressor: str) -> tuple:
    # byte shuffling puts the high bytes of int16 together; measured on the real 29UNU tile, Blosc-zstd level 1
    # with shuffle was smaller (ratio 4.8) and faster (0.5 GB/s) than plain zstd level 3 (4.6, 0.4 GB/s)
    if compressor == "zstd":
        return (BloscCodec(cname="zstd", clevel=1, shuffle=BloscShuffle.shuffle),)
    if compressor == "lz4":
        return (BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle),)
    if compressor == "none":
        return ()
    raise ProcessingError("cube", "L2C", f"unknown compressor {compressor!r}; allowed: zstd, lz4, none")


def _encoding(spec: VariableSpec, chunks: tuple[int, int], compressor: str) -> dict:
    enc: dict = {"chunks": (1, *chunks), "compressors": _compressors(compressor), "fill_value": spec.fill}
    if spec.kind in _SCALED:
        scale, offset = _SCALED[spec.kind]
        enc.update(dtype="int16", scale_factor=scale, _FillValue=FILL_INT16, **({"add_offset": offset} if offset else {}))
    else:
        enc.update(dtype=spec.dtype)
    return enc


def _attrs(spec: VariableSpec, source_attrs: Mapping) -> dict:
    attrs = {k: v for k, v in source_attrs.items()
             if k not in ("nodata", "_FillValue", "scale_factor", "add_offset", "grid_mapping", "coordinates")}
    # listed explicitly: xarray leaves a grid_mapping variable out of the "coordinates" it writes, and readers
    # (rioxarray, odc-geo) find the CRS only when spatial_ref is a coordinate
    attrs.update(grid_mapping="spatial_ref", coordinates=" ".join(("spatial_ref", *SLOT_COORDINATES)))
    if spec.kind == "mask":
        attrs.update(flag_values=[0, 1], flag_meanings="false true")
    elif spec.kind == "qa":
        attrs["nodata"] = spec.fill
    return attrs


def _template(variables: Mapping[str, tuple[VariableSpec, Mapping]], gbox: GeoBox, attrs: Mapping) -> xr.Dataset:
    """An empty cube (no time slot) with ``variables`` (name -> (spec, attrs)), grid coordinates and slot coords."""
    ny, nx = gbox.shape.yx
    affine = gbox.affine
    data_vars = {}
    for name, (spec, var_attrs) in variables.items():
        dtype = np.float32 if spec.kind in _SCALED else np.dtype(spec.dtype)
        data_vars[name] = xr.DataArray(np.zeros((0, ny, nx), dtype=dtype), dims=("time", "y", "x"),
                                       attrs=_attrs(spec, var_attrs))
    coords: dict[str, Any] = {
        "x": ("x", affine.c + (np.arange(nx) + 0.5) * affine.a, {"units": "m", "axis": "X"}),
        "y": ("y", affine.f + (np.arange(ny) + 0.5) * affine.e, {"units": "m", "axis": "Y"}),
        "time": ("time", np.array([], dtype="datetime64[ms]"), {"long_name": "acquisition time (UTC)"}),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.rio.write_crs(str(gbox.crs)).rio.write_transform(affine).reset_coords("spatial_ref")
    for name, coord in SLOT_COORDINATES.items():
        dtype = np.dtypes.StringDType() if coord.dtype == "str" else np.dtype(coord.dtype)
        ds[name] = xr.DataArray(np.array([], dtype=dtype), dims="time", attrs={"long_name": coord.long_name})
    ds.attrs.update(attrs)
    return ds


def template_documents(variables: Mapping[str, tuple[VariableSpec, Mapping]], gbox: GeoBox, *,
                       chunks: tuple[int, int], compressor: str, attrs: Mapping) -> dict[str, bytes]:
    """The Zarr documents (key -> bytes) of an empty cube: ``zarr.json`` files plus the grid coordinates' chunks.

    Keys are ordered parents first, so they can be copied into another store one by one.
    """
    ds = _template(variables, gbox, attrs)
    encoding = {name: _encoding(spec, chunks, compressor) for name, (spec, _) in variables.items()}
    encoding["time"] = {"units": TIME_UNITS, "dtype": "int64", "chunks": (_SLOT_CHUNK,)}
    for name, coord in SLOT_COORDINATES.items():
        encoding[name] = {"chunks": (_SLOT_CHUNK,)}
        if coord.dtype != "str":
            encoding[name].update(_FillValue=coord.fill, fill_value=coord.fill)
    store = zarr.storage.MemoryStore()
    ds.to_zarr(store, mode="w-", encoding=encoding, zarr_format=3, consolidated=False)

    async def _read() -> dict[str, bytes]:
        keys = [key async for key in store.list()]
        out = {}
        for key in sorted(keys, key=lambda k: (k.count("/"), k)):
            buffer = await store.get(key, prototype=default_buffer_prototype())
            out[key] = buffer.to_bytes()
        return out

    return sync(_read())


def encode_block(spec: VariableSpec, block: np.ndarray) -> np.ndarray:
    """A block in decoded units as the stored integers: scaled, rounded, clipped off the fill code, fill for NaN."""
    if spec.kind not in _SCALED:
        return np.asarray(block).astype(spec.dtype)
    # imported here: numba's import (~0.7 s) is paid by the processes that write, not by ``import gmsdask``
    from ..algorithms.scaled_integers import encode_to_scaled_int16
    scale, offset = _SCALED[spec.kind]
    return encode_to_scaled_int16(np.asarray(block), scale_factor=float(scale), add_offset=offset,
                                  fill_value=FILL_INT16)


def put_documents(store: zarr.abc.store.Store, documents: Mapping[str, bytes]) -> None:
    """Writes ``documents`` (key -> bytes, parents first) into ``store``."""
    for key, raw in documents.items():
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(raw)))


def copy_slot_rows(src: zarr.Array, dst: zarr.Array, old: int, new: int,
                   window: tuple[slice, slice] | None = None) -> None:
    """Copies the stored integers of slot ``old`` of ``src`` into slot ``new`` of ``dst`` (optionally only
    ``window``), one row of chunks at a time so a 10 m tile never sits in memory whole."""
    rows, cols = window or (slice(0, src.shape[1]), slice(0, src.shape[2]))
    step = src.chunks[1]
    for row in range(rows.start, rows.stop, step):
        band = slice(row, min(row + step, rows.stop))
        dst[new, band, cols] = src[old, band, cols]
