"""Small scenes on a small tile grid for the Icechunk cube tests, and a writer callable from subprocesses.

The grid is 256 x 256 px of 30 m at the 29UNU tile corner with 64-px chunks; a scene covers a 128 x 192 px window
(six chunks) with values that are a pure function of the seed, so every process knows the truth.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from gmsdask.io.cube import CubeGrid, SceneSlot, write_scene

GRID = CubeGrid(GeoBox((256, 256), Affine(30.0, 0.0, 499_980.0, 0.0, -30.0, 5_900_040.0), "EPSG:32629"),
                (64, 64), "zstd", {"mgrs_tile": "29UNU"})
QUANTUM = 1e-4
#: scene id -> (seed, acquisition time, window origin (row, col) in px)
SCENES = {
    "A": (1, "2022-10-05T11:54:11", (64, 0)),
    "B": (2, "2022-09-25T11:54:11", (0, 64)),
    "C": (3, "2022-10-15T11:54:11", (128, 64)),
    "D": (4, "2022-10-10T11:54:11", (64, 64)),
}


def scene_values(seed: int) -> dict[str, np.ndarray]:
    """The decoded truth of a scene: two bands (reflectance, a NaN corner) and an SCL-like QA layer."""
    rng = np.random.default_rng(seed)
    bands = {name: np.round(rng.uniform(0.01, 0.6, (128, 192)), 4).astype(np.float32) for name in ("B02", "B8A")}
    bands["B02"][:10, :20] = np.nan
    bands["SCL"] = np.full((128, 192), seed, dtype=np.uint8)
    return bands


def scene_dataset(seed: int) -> xr.Dataset:
    """The scene as the writer gets it: lazy Dask arrays in decoded units."""
    return xr.Dataset({name: (("y", "x"), da.from_array(values, chunks=64),
                              {"units": "1"} if values.dtype.kind == "f" else {"nodata": 0})
                       for name, values in scene_values(seed).items()})


def scene_slot(scene_id: str, **coords) -> SceneSlot:
    seed, when, _ = SCENES[scene_id]
    return SceneSlot(scene_id, np.datetime64(when, "ms"),
                     {"platform": "SENTINEL_2A", "processing_level": "L2A", "quantity": "surface_reflectance",
                      "aot550": 0.1 * seed, **coords})


def write(location: str | Path, scene_id: str, **kwargs):
    """Write one of :data:`SCENES` into the cube at ``location``."""
    seed, _, origin = SCENES[scene_id]
    return write_scene(location, scene_dataset(seed), GRID, scene_slot(scene_id), origin=origin, **kwargs)


def assert_slot_holds(cube: xr.Dataset, scene_id: str) -> None:
    """The cube's slot of ``scene_id`` equals the scene's truth in its window and is empty elsewhere."""
    seed, _, (row, col) = SCENES[scene_id]
    [index] = np.flatnonzero(cube.scene_id.values == scene_id)
    slot = cube.isel(time=int(index))
    truth = scene_values(seed)
    window = {"y": slice(row, row + 128), "x": slice(col, col + 192)}
    for band in ("B02", "B8A"):
        np.testing.assert_allclose(slot[band].isel(window).values, truth[band], rtol=0, atol=QUANTUM / 2 + 1e-7)
    np.testing.assert_array_equal(slot.SCL.isel(window).values, truth["SCL"])
    np.testing.assert_array_equal(slot.nodata.isel(window).values, np.isnan(truth["B02"]))
    outside = slot.nodata.values.copy()
    outside[row:row + 128, col:col + 192] = True
    assert outside.all(), "pixels outside the scene's window must be no data"
    assert int(slot.B02.notnull().sum()) == int(np.isfinite(truth["B02"]).sum())


def _main(location: str, scene_ids: str, go_file: str) -> None:
    """Subprocess entry: wait for ``go_file`` (a common start), then write the scenes in order."""
    deadline = time.monotonic() + 60
    while not Path(go_file).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    for scene_id in scene_ids.split(","):
        done = write(location, scene_id)
        print(f"{scene_id}: slot {done.time_index}, attempts {done.attempts}", flush=True)


def _stall_mid_write(location: str, scene_id: str, marker: str) -> None:
    """Subprocess entry: write a scene but stall after three chunk windows were written, before the commit,
    touching ``marker`` so the test knows when to kill."""
    import dask

    from gmsdask.io import cube_writer

    original = cube_writer._write_window
    calls = []

    def stalling(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            Path(marker).touch()
            time.sleep(120)
        return result

    cube_writer._write_window = stalling
    with dask.config.set(scheduler="synchronous"):
        write(location, scene_id)


if __name__ == "__main__":
    {"write": _main, "stall": _stall_mid_write}[sys.argv[1]](*sys.argv[2:])
