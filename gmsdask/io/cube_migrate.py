"""Converting plain-Zarr tile cubes of gmsdask 0.1 (``<TILE>.zarr``, written under a file lock) into Icechunk cubes.

The old layout is the new one without the Icechunk repository: int16 bands with ``scale_factor``, ``nodata``,
``saturated``, QA layers, per-slot ``time``/``scene_id``/``platform``. Migration copies the stored integers slot by
slot (no decoding, so values are bit-identical), gives the new per-slot coordinates their fills, and commits once.

Old cubes could mix band sets (Landsat ``B1..B9`` beside Sentinel-2 ``B01..B12``, before spectral homogenization):
such a cube is refused unless ``rebuild`` is asked for, which keeps the band set of the cube's virtual sensor and the
slots of that sensor family only, and reports the dropped scenes so they can be reprocessed into the new cube.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from affine import Affine
from odc.geo.geobox import GeoBox

from .. import __version__
from ..errors import CubeWriteError, ProcessingError
from ..sensors import SENSORS
from .cube_schema import (
    SLOT_COORDINATES,
    TIME_UNITS,
    copy_slot_rows,
    put_documents,
    spec_from_array,
    template_documents,
)
from .cube_storage import (
    commit_guard,
    normalize_location,
    open_repository,
    repository_exists,
)

__all__ = ["MigrationResult", "migrate_cube", "old_cube_problem", "mixed_band_sets"]

_REBUILD_HINT = "gmsdask cube migrate --rebuild"


@dataclass(frozen=True)
class MigrationResult:
    """What a migration made: the new cube's location, the slots it holds, the scenes and variables left out
    (``rebuild`` of a mixed cube), and the commit id."""

    location: str
    slots: int
    dropped_scenes: list[str]
    dropped_variables: list[str]
    snapshot_id: str


def _band_names(group: zarr.Group) -> list[str]:
    return sorted(name for name, arr in group.arrays() if arr.ndim == 3 and "scale_factor" in arr.attrs
                  and "add_offset" not in arr.attrs)


def mixed_band_sets(bands: list[str]) -> bool:
    """True when no single sensor of the registry has all of ``bands`` (e.g. ``B2`` of Landsat with ``B02``)."""
    return bool(bands) and not any(set(bands) <= set(sensor.band_names) for sensor in SENSORS.values())


def _open_old(zarr_path: Path) -> zarr.Group:
    if not (zarr_path / "zarr.json").is_file():
        raise ProcessingError(str(zarr_path), "cube migrate", "no plain Zarr cube here (no zarr.json)")
    group = zarr.open_group(str(zarr_path), mode="r", use_consolidated=False)
    if "time" not in group or "scene_id" not in group or \
            not str(group["time"].attrs.get("units", "")).startswith(TIME_UNITS):
        raise ProcessingError(str(zarr_path), "cube migrate", "not a gmsdask cube (no time/scene_id in "
                                                              f"{TIME_UNITS!r})")
    return group


def old_cube_problem(zarr_path: str | os.PathLike[str]) -> str | None:
    """A message telling how to convert the plain-Zarr cube at ``zarr_path``, or None when there is none."""
    path = Path(zarr_path)
    if not (path / "zarr.json").is_file():
        return None
    mixed = mixed_band_sets(_band_names(zarr.open_group(str(path), mode="r", use_consolidated=False)))
    command = f"{_REBUILD_HINT} {path}" if mixed else f"gmsdask cube migrate {path}"
    why = "it mixes band sets of different sensors, so " if mixed else ""
    return (f"{path} is a plain-Zarr cube of an earlier gmsdask; {why}convert it first with `{command}` "
            "(cubes are Icechunk repositories now)")


def _compressor(arr: zarr.Array) -> str:
    names = [str(getattr(codec, "cname", "")) for codec in arr.compressors]
    return "lz4" if any("lz4" in n for n in names) else "zstd" if arr.compressors else "none"


def _grid(group: zarr.Group) -> GeoBox:
    x, y = group["x"][:], group["y"][:]
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    crs = group["spatial_ref"].attrs.get("crs_wkt") or group["spatial_ref"].attrs.get("spatial_ref")
    return GeoBox((len(y), len(x)), Affine(dx, 0, float(x[0]) - dx / 2, 0, dy, float(y[0]) - dy / 2), crs)


def _stored_slots(zarr_path: Path, name: str) -> set[int]:
    """Slots of a variable with at least one stored chunk (zarr does not store all-fill chunks)."""
    folder = zarr_path / name / "c"
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()


def _plan(zarr_path: Path, group: zarr.Group, rebuild: bool) -> tuple[list[int], list[str], list[str]]:
    """Slots to keep, scenes dropped, variables dropped."""
    ids = [str(v) for v in group["scene_id"][:]]
    bands = _band_names(group)
    if not mixed_band_sets(bands):
        return list(range(len(ids))), [], []
    if not rebuild:
        raise CubeWriteError(str(zarr_path), "cube migrate", f"the cube mixes band sets ({', '.join(bands)}); "
                                                             f"`{_REBUILD_HINT} {zarr_path}` keeps the virtual "
                                                             "sensor's bands and slots and lists the other scenes "
                                                             "for reprocessing")
    sensor = SENSORS.get(str(group.attrs.get("virtual_sensor_name", "SENTINEL_2A")), SENSORS["SENTINEL_2A"])
    family = set(sensor.band_names)
    platforms = [str(v) for v in group["platform"][:]]
    keep = [t for t, platform in enumerate(platforms)
            if platform in SENSORS and set(SENSORS[platform].band_names) == family]
    dropped_vars = [b for b in bands if b not in family]
    for name, arr in group.arrays():  # layers only the dropped scenes had (e.g. Landsat's QA_PIXEL)
        if arr.ndim == 3 and name not in dropped_vars and name not in ("nodata", "saturated") \
                and "scale_factor" not in arr.attrs and not (_stored_slots(zarr_path, name) & set(keep)):
            dropped_vars.append(name)
    return keep, [ids[t] for t in range(len(ids)) if t not in keep], sorted(dropped_vars)


def migrate_cube(zarr_path: str | os.PathLike[str], *, rebuild: bool = False,
                 target: str | os.PathLike[str] | None = None) -> MigrationResult:
    """Convert the plain-Zarr cube ``<TILE>.zarr`` into the Icechunk cube ``<TILE>.icechunk`` beside it (or
    ``target``) in one commit; the old cube is left as it is (delete it once satisfied).

    Raises :class:`~gmsdask.errors.CubeWriteError` naming ``gmsdask cube migrate --rebuild`` for a cube with
    mixed band sets unless ``rebuild``, and :class:`~gmsdask.errors.ProcessingError` when the target exists.
    """
    zarr_path = Path(zarr_path)
    old = _open_old(zarr_path)
    location = normalize_location(target or zarr_path.with_suffix(".icechunk"))
    if repository_exists(location):
        raise ProcessingError(location, "cube migrate", "an Icechunk cube exists already at the target")
    keep, dropped_scenes, dropped_vars = _plan(zarr_path, old, rebuild)
    pixels = {name: arr for name, arr in old.arrays() if arr.ndim == 3 and name not in dropped_vars}
    specs = {name: (spec_from_array(name, arr), {k: v for k, v in arr.attrs.items() if k != "coordinates"})
             for name, arr in pixels.items()}
    first = next(iter(pixels.values()))
    attrs = {**old.attrs.asdict(), "history": f"{old.attrs.get('history', '')}; migrated from {zarr_path.name} "
                                              f"by gmsdask {__version__}".lstrip("; ")}
    repo = open_repository(location, create=True)
    session = repo.writable_session("main")
    store = session.store
    put_documents(store, template_documents(specs, _grid(old), chunks=tuple(first.chunks[1:]),
                                             compressor=_compressor(first), attrs=attrs))
    group = zarr.open_group(store, mode="r+")
    for _, arr in group.arrays():
        if (arr.metadata.dimension_names or (None,))[0] == "time":
            arr.resize((len(keep), *arr.shape[1:]))
    if keep:
        group["time"][:] = old["time"][:][keep]
        for name in SLOT_COORDINATES:
            if name in old:
                group[name][:] = np.asarray([str(v) for v in old[name][:]], dtype=object)[keep]
        for name in pixels:
            stored = _stored_slots(zarr_path, name)
            for new, t in enumerate(keep):
                if t in stored:
                    copy_slot_rows(old[name], group[name], t, new)
    with commit_guard(location):
        snapshot = session.commit(f"migrate {zarr_path} ({len(keep)} slots"
                                  + (f"; dropped {', '.join(dropped_scenes)}" if dropped_scenes else "") + ")",
                                  metadata={"migrated_from": str(zarr_path), "dropped_scenes": dropped_scenes})
    return MigrationResult(location, len(keep), dropped_scenes, dropped_vars, snapshot)
