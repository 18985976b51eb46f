"""A tile cube's indices and cloud masks as per-date GeoTIFFs in Sen2Chain's folder layout.

Sen2Chain keeps one folder per product under ``CLOUDMASKS/<TILE>/`` and ``INDICES/<INDEX>/<TILE>/``, named by
the L2A product identifier, with one file per mask or (masked) index named ``<identifier>_<PRODUCT>``:

- ``CLOUDMASKS/<TILE>/<ID>/<ID>_CM001.tif``, ``..._CM004-CSH1-CMP1-CHP1-TCI1-ITER0.tif``;
- ``INDICES/<INDEX>/<TILE>/<ID>/<ID>_<INDEX>.tif`` (unmasked) and ``<ID>_<INDEX>_<CM>.tif`` (masked).

``<ID>`` is the slot's ``scene_id`` (for a Sentinel-2 L2A product: its name without ``.SAFE``, as in Sen2Chain).
Sen2Chain writes lossy JPEG 2000; gmsdask writes lossless GeoTIFFs (deflate, horizontal predictor, 512 px tiles)
with the stored integers unchanged: indices int16 = value x 10 000 (GDAL scale 1e-4, nodata -32768), masks uint8
0/1 (nodata 255). A product whose raster holds only the fill value (a Landsat slot's masks, an index that
failed) gets no file, as Sen2Chain has none.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor)
import rasterio
import xarray as xr

from ..algorithms.sen2chain_masks import parse_cloud_mask
from ..errors import ConfigError, ProcessingError
from ..io.cube import open_cube_session
from ..io.cube_export import time_range
from ..io.cube_storage import CubeStorageOptions, normalize_location
from .cloudmasks import MASK_FILL
from .cube_store import INDEX_FILL, INDEX_SCALE
from .registry import INDICES

__all__ = ["export_sen2chain", "sen2chain_products"]

_PROFILE = dict(driver="GTiff", count=1, tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE",
                predictor=2, zlevel=6, BIGTIFF="IF_SAFER")


def _is_mask(name: str) -> bool:
    try:
        return parse_cloud_mask(name).name == name
    except ConfigError:
        return False


def sen2chain_products(names: list[str]) -> dict[str, tuple[str, str | None]]:
    """``{variable: (kind, index)}`` of the cube variables Sen2Chain has products for.

    ``kind`` is ``mask`` (index None) or ``index`` (``NDVI``, ``NDVI_CM001``: index ``NDVI``).
    """
    out: dict[str, tuple[str, str | None]] = {}
    for name in names:
        if _is_mask(name):
            out[name] = ("mask", None)
            continue
        index, _, mask = name.partition("_")
        if index in INDICES and (not mask or _is_mask(mask)):
            out[name] = ("index", index)
    return out


def _relative_path(tile: str, scene_id: str, name: str, kind: str, index: str | None) -> Path:
    if kind == "mask":
        return Path("CLOUDMASKS") / tile / scene_id / f"{scene_id}_{name}.tif"
    return Path("INDICES") / str(index) / tile / scene_id / f"{scene_id}_{name}.tif"


def export_sen2chain(cube: str | PathLike[str], out_dir: str | PathLike[str], tile: str | None = None, *,
                     time: str | tuple | None = None, version: str | None = None,
                     options: CubeStorageOptions | None = None) -> list[Path]:
    """Write every slot's indices and cloud masks of the cube at ``cube`` under ``out_dir`` (module docstring).

    Parameters
    ----------
    cube
        Location (path or URL) of a tile cube holding variables of
        :func:`gmsdask.indices.cube.write_indices_to_cube`.
    out_dir
        Root of the Sen2Chain layout (the folder holding ``INDICES`` and ``CLOUDMASKS``).
    tile
        The MGRS tile in the folder names; default the cube's ``mgrs_tile`` attribute.
    time
        Only the slots acquired then: a date or ``START/END`` dates (:func:`gmsdask.io.cube_export.time_range`).
    version
        A tag or commit id of the cube (default: the latest commit of ``main``).

    Returns
    -------
    list of Path
        The files written (existing files are replaced), in time order. Reads one slot of one variable at a time.
    """
    location = normalize_location(cube)
    session = open_cube_session(location, version=version, options=options)  # raises when there is no cube
    ds = xr.open_zarr(session.store, consolidated=False, mask_and_scale=False)
    tile = tile or str(ds.attrs.get("mgrs_tile", ""))
    if not tile:
        raise ProcessingError(location, "EXPORT", "the cube has no mgrs_tile attribute; pass tile=")
    grid = ds.odc.geobox
    products = sen2chain_products([str(n) for n in ds.data_vars])
    scene_ids = [str(s) for s in ds["scene_id"].values.tolist()]
    times = ds["time"].values.astype("datetime64[ms]")
    window = time_range(time)
    slots = [int(slot) for slot in np.argsort(times, kind="stable")
             if window is None or window[0] <= times[slot] < window[1]]
    written = []
    for slot in slots:
        scene_id = scene_ids[slot]
        for name, (kind, index) in products.items():
            fill = MASK_FILL if kind == "mask" else INDEX_FILL
            values = np.asarray(ds[name].isel(time=slot).values)
            if np.all(values == fill):
                continue
            target = Path(out_dir) / _relative_path(tile, scene_id, name, kind, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            profile = dict(_PROFILE, width=values.shape[1], height=values.shape[0], dtype=values.dtype.name,
                           nodata=fill, crs=str(grid.crs), transform=grid.affine)
            with rasterio.open(target, "w", **profile) as dst:
                dst.write(values, 1)
                if kind == "index":
                    dst.scales = (INDEX_SCALE,)
                    dst.offsets = (0.0,)
                dst.update_tags(product=name, scene_id=scene_id, tile=tile, **{
                    k: str(v) for k, v in ds[name].attrs.items() if k in ("long_name", "formula", "source")})
            written.append(target)
    return written
