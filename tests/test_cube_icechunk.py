"""Icechunk tile cubes: one commit per scene, slots, per-slot coordinates, history, conflicts, cancel, full disk."""

from __future__ import annotations

import contextlib
import errno
from dataclasses import replace
from pathlib import Path

import dask
import icechunk
import numpy as np
import pytest
import xarray as xr
import zarr

from gmsdask.errors import CubeWriteCanceled, CubeWriteError, ProcessingError
from gmsdask.io import cube_writer
from gmsdask.io.cube_storage import repository_exists
from gmsdask.io.cube import SceneSlot, cube_log, open_cube, tag_cube, write_scene

from .cube_helpers import (
    GRID,
    SCENES,
    assert_slot_holds,
    scene_dataset,
    scene_slot,
    write,
)


def _plain(path) -> xr.Dataset:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False).sortby("time")


def _staging_leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".") and "staging" in p.name]


def test_scene_write_is_one_commit_and_reopens_with_equal_values(tmp_path):
    path = tmp_path / "29UNU.icechunk"
    first = write(path, "A", job_id=7)
    second = write(path, "B", job_id=7)
    assert (first.time_index, first.created_cube, first.replaced_slot) == (0, True, False)
    assert (second.time_index, second.created_cube, second.attempts) == (1, False, 1)
    log = cube_log(path)
    assert [c.message for c in log[:2]] == ["job 7: write scene B", "job 7: write scene A"]
    assert log[0].id == second.snapshot_id and log[0].metadata == {"scene_id": "B", "job_id": 7}
    assert len(log) == 3  # and the repository's creation

    cube = open_cube(path)
    assert list(cube.scene_id.values) == ["B", "A"]  # sorted by time, stored in write order
    assert cube.B02.dtype == np.float32 and cube.nodata.dtype == bool
    assert cube.rio.crs.to_epsg() == 32629 and cube.odc.geobox == GRID.geobox
    for scene_id in ("A", "B"):
        assert_slot_holds(cube, scene_id)
    np.testing.assert_allclose(cube.aot550.values, [0.2, 0.1], rtol=1e-6)
    assert list(cube.quantity.values) == ["surface_reflectance"] * 2
    assert list(cube.coreg_status.values) == ["", ""] and np.isnan(cube.shift_x_m.values).all()
    # plain xarray sees the same int16 storage, decoded with the float32 scale factor
    plain = _plain(path)
    assert plain.B02.encoding["dtype"] == np.int16 and plain.B02.encoding["scale_factor"] == np.float32(1e-4)
    np.testing.assert_array_equal(plain.B02.values.astype(np.float32), cube.B02.values)
    assert plain.rio.crs.to_epsg() == 32629


def test_rewriting_a_scene_replaces_its_slot_and_the_old_version_stays_readable(tmp_path):
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    before = write(path, "B")
    tag_cube(path, "job-1")
    # scene B reprocessed: other values and another window; nothing of the first version may survive
    seed, _, origin = SCENES["C"]
    again = write_scene(path, scene_dataset(seed), GRID, scene_slot("B", aot550=0.9), origin=origin)
    assert (again.time_index, again.replaced_slot) == (1, True)
    cube = open_cube(path)
    assert sorted(cube.scene_id.values) == ["A", "B"]
    slot = cube.isel(time=int(np.flatnonzero(cube.scene_id.values == "B")[0]))
    np.testing.assert_allclose(float(slot.aot550), 0.9, rtol=1e-6)
    assert int(slot.SCL.sum()) == 3 * 128 * 192  # C's values ...
    assert bool(slot.nodata[:64].all())  # ... and B's old rows 0-63 are gone
    old = open_cube(path, version="job-1")
    assert_slot_holds(old, "B")
    assert open_cube(path, version=before.snapshot_id).identical(old)
    with pytest.raises(ProcessingError, match="no tag or commit 'nope'"):
        open_cube(path, version="nope")
    with pytest.raises(ProcessingError, match="exists already"):
        tag_cube(path, "job-1")


def test_a_cube_keeps_its_chunks_when_a_later_job_tiles_otherwise(tmp_path):
    """A job whose ``tiling_block_size_XY`` differs from the cube's chunks writes whole stored chunks: chunk tasks
    cut by the job's blocks would write parts of one chunk in separate forks, and the merge kept one part (2048
    of the second scene's 24376 pixels were lost before)."""
    location = tmp_path / "T.icechunk"
    with dask.config.set(scheduler="threads", num_workers=4):
        write(location, "A")
        seed, _, origin = SCENES["B"]
        write_scene(location, scene_dataset(seed), replace(GRID, chunks=(48, 48)), scene_slot("B"), origin=origin)
    cube = open_cube(location)
    for scene_id in ("A", "B"):
        assert_slot_holds(cube, scene_id)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(location)))
    stored = zarr.open_group(repo.readonly_session("main").store, mode="r")
    assert stored["B02"].chunks == stored["nodata"].chunks == (1, 64, 64)


def test_per_slot_coordinates_are_checked(tmp_path):
    with pytest.raises(ProcessingError, match="unknown per-slot coordinates"):
        write_scene(tmp_path / "c.icechunk", scene_dataset(1), GRID,
                    SceneSlot("A", np.datetime64("2022-10-05"), {"cloudiness": 3}), origin=(0, 0))
    with pytest.raises(ProcessingError, match="aot550='thick' is not float32"):
        write_scene(tmp_path / "c.icechunk", scene_dataset(1), GRID,
                    SceneSlot("A", np.datetime64("2022-10-05"), {"aot550": "thick"}), origin=(0, 0))
    # a failed first write leaves no repository, and no staging directory either
    assert not (tmp_path / "c.icechunk").exists() and _staging_leftovers(tmp_path) == []


def _interleave(monkeypatch, action) -> None:
    """Run ``action`` once, in the middle of the next scene write (after its first chunk, before its commit)."""
    original = cube_writer._write_window
    pending = [action]

    def write_window(*args, **kwargs):
        result = original(*args, **kwargs)
        if pending:
            pending.pop()()
        return result

    monkeypatch.setattr(cube_writer, "_write_window", write_window)


def test_a_writer_that_loses_the_race_moves_its_chunks_to_a_new_slot(tmp_path, monkeypatch):
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    _interleave(monkeypatch, lambda: write(path, "B"))  # B commits slot 1 while C is being written
    with dask.config.set(scheduler="synchronous"):
        late = write(path, "C")
    assert (late.attempts, late.time_index) == (2, 2)
    cube = open_cube(path)
    assert sorted(cube.scene_id.values) == ["A", "B", "C"]
    for scene_id in "ABC":
        assert_slot_holds(cube, scene_id)


@pytest.mark.parametrize("scheduler,max_windows,exclusive", [("synchronous", None, True), ("synchronous", 0, False),
                                                               ("threads", None, False)],
                         ids=["small-writes-wait", "lock-free-control", "not-computed-here-lock-free"])
def test_small_writes_of_one_cube_wait_for_each_other_instead_of_colliding(scheduler, max_windows, exclusive,
                                                                           tmp_path, monkeypatch):
    """Two writers of one-window scenes computed in their own thread: the second waits for the first's commit
    (one attempt each). The controls are lock-free: the same writes with no window count small enough, and
    writes whose chunks another thread pool computes (a writer waiting for cluster workers must not hold the
    lock). There the second commits first, and the first writes its slot again."""
    import threading

    path = tmp_path / "29UNU.icechunk"
    write(path, "A")  # the cube exists
    if max_windows is not None:
        monkeypatch.setattr(cube_writer, "_EXCLUSIVE_MAX_WINDOWS", max_windows)
    inside, release = threading.Event(), threading.Event()
    original = cube_writer._write_window
    pause_once = [True]

    def write_window(*args, **kwargs):
        if pause_once:  # the first writer's (only) window pauses inside its write
            pause_once.pop()
            inside.set()
            release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(cube_writer, "_write_window", write_window)
    done: dict[str, object] = {}

    def small(scene_id: str) -> None:  # one 64 x 64 window at a chunk boundary
        seed, _, _ = SCENES[scene_id]
        data = scene_dataset(seed).isel(y=slice(0, 64), x=slice(0, 64))
        done[scene_id] = write_scene(path, data, GRID, scene_slot(scene_id), origin=(64, 64))

    with dask.config.set(scheduler=scheduler):
        first = threading.Thread(target=small, args=("B",), name="first")
        first.start()
        assert inside.wait(30)
        second = threading.Thread(target=small, args=("C",), name="second")
        second.start()
        second.join(2.0)
        assert second.is_alive() == exclusive  # with the lock, the second waits for the first's commit
        release.set()
        first.join(30)
        second.join(30)
    b, c = done["B"], done["C"]
    if exclusive:
        assert (b.attempts, c.attempts) == (1, 1) and (b.time_index, c.time_index) == (1, 2)
    else:
        assert (c.attempts, c.time_index) == (1, 1) and (b.attempts, b.time_index) == (2, 2)
    assert sorted(open_cube(path).scene_id.values) == ["A", "B", "C"]


def test_two_writers_of_one_scene_leave_it_once(tmp_path, monkeypatch):
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    seed, _, origin = SCENES["D"]
    other = scene_dataset(seed)
    _interleave(monkeypatch, lambda: write_scene(path, other, GRID, scene_slot("B"), origin=origin))
    with dask.config.set(scheduler="synchronous"):
        late = write(path, "B")
    assert (late.attempts, late.replaced_slot) == (2, True)
    cube = open_cube(path)
    assert sorted(cube.scene_id.values) == ["A", "B"]
    assert_slot_holds(cube, "B")  # the later writer's version, in the window it wrote


def test_cancel_drops_the_uncommitted_transaction(tmp_path, monkeypatch):
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    canceled = []
    _interleave(monkeypatch, lambda: canceled.append(True))  # "Ctrl-C" arrives while chunks are written
    with pytest.raises(CubeWriteCanceled, match="nothing was written"):
        write(path, "B", should_cancel=lambda: bool(canceled))
    assert len(cube_log(path)) == 2
    cube = open_cube(path)
    assert list(cube.scene_id.values) == ["A"]  # no ghost slot
    assert_slot_holds(cube, "A")


def test_a_full_disk_mid_write_keeps_the_previous_cube_and_names_the_problem(tmp_path, monkeypatch):
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    before = open_cube(path).load()
    original_set = icechunk.IcechunkStore.set
    calls = []

    async def full_disk_set(self, key, value):  # the store runs out of space after a few chunks
        calls.append(key)
        if len(calls) > 8 and "/c/" in key:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await original_set(self, key, value)

    monkeypatch.setattr(icechunk.IcechunkStore, "set", full_disk_set)
    with pytest.raises(CubeWriteError, match="no space left on the device of .*29UNU.icechunk"):
        write(path, "B")
    monkeypatch.undo()
    assert len(cube_log(path)) == 2
    assert open_cube(path).load().identical(before)
    write(path, "B")  # space again: the write goes through
    assert sorted(open_cube(path).scene_id.values) == ["A", "B"]


def test_dask_distributed_workers_write_forks_merged_on_the_client(tmp_path):
    import distributed

    path = tmp_path / "29UNU.icechunk"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        for scene_id in ("A", "B"):
            write(path, scene_id)
    cube = open_cube(path)
    for scene_id in ("A", "B"):
        assert_slot_holds(cube, scene_id)


def test_an_old_plain_zarr_cube_in_the_way_is_refused(tmp_path):
    import shutil
    from pathlib import Path

    old = Path(__file__).parent / "data" / "plain_zarr_cubes" / "SENTINEL_2A" / "29UMU.zarr"
    shutil.copytree(old, tmp_path / "29UMU.zarr")
    with pytest.raises(CubeWriteError, match=r"mixes band sets .*`gmsdask cube migrate --rebuild "):
        write(tmp_path / "29UMU.icechunk", "A")
    assert not (tmp_path / "29UMU.icechunk").exists()
    with pytest.raises(ProcessingError, match="plain-Zarr cube of an earlier gmsdask.*cube migrate --rebuild"):
        open_cube(tmp_path / "29UMU.zarr")


def test_a_scene_without_pixels_in_the_window_is_not_written_when_asked(tmp_path):
    """``skip_empty``: the chunk tasks that write count the pixels with data; a window with none is not committed
    (L2C's tiles reached by a scene's footprint but by none of its pixels), and a window with one is."""
    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    seed, when, origin = SCENES["B"]
    empty = scene_dataset(seed).map(lambda var: var.where(False) if var.dtype.kind == "f" else var)
    assert write_scene(path, empty, GRID, scene_slot("B"), origin=origin, skip_empty=True) is None
    assert len(cube_log(path)) == 2 and list(open_cube(path).scene_id.values) == ["A"]
    one_pixel = empty.copy()
    for band in ("B02", "B8A"):  # a pixel has data where every band has
        values = np.full(empty[band].shape, np.nan, dtype=np.float32)
        values[70, 100] = 0.25
        one_pixel[band] = empty[band].copy(data=dask.array.from_array(values, chunks=64))
    written = write_scene(path, one_pixel, GRID, scene_slot("B"), origin=origin, skip_empty=True)
    assert written is not None and written.time_index == 1
    cube = open_cube(path)
    assert int((~cube.nodata.sel(time=cube.scene_id == "B")).sum()) == 1
    # a new cube whose only scene has no pixel: nothing appears at its location (no empty repository either)
    new = tmp_path / "29UNV.icechunk"
    assert write_scene(new, empty, GRID, scene_slot("B"), origin=origin, skip_empty=True) is None
    assert not new.exists() and _staging_leftovers(tmp_path) == []
    with pytest.raises(ProcessingError, match="29UNV"):
        open_cube(new)


def test_upstream_work_the_variables_share_runs_once_per_block(tmp_path):
    """Two bands derived from one upstream array (as bands share masks, angles and the chain's reads): the write
    computes each upstream block once. Optimized one variable at a time, each variable's graph fused its own copy
    of the upstream work and ran it once per variable."""
    calls = []

    def upstream(block: np.ndarray) -> np.ndarray:
        calls.append(block.shape)
        return (block % 500).astype(np.float32) * np.float32(0.001)

    source = dask.array.from_array(np.arange(128 * 192).reshape(128, 192), chunks=64)
    shared = source.map_blocks(upstream, dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32))
    data = xr.Dataset({"B02": (("y", "x"), shared + np.float32(0.01)), "B8A": (("y", "x"), shared * 2)})
    seed, _, origin = SCENES["A"]
    write_scene(tmp_path / "29UNU.icechunk", data, GRID, scene_slot("A"), origin=origin)
    assert len(calls) == shared.npartitions == 6
    cube = open_cube(tmp_path / "29UNU.icechunk")
    rows, cols = slice(origin[0], origin[0] + 128), slice(origin[1], origin[1] + 192)
    np.testing.assert_allclose(cube.B8A.isel(time=0, y=rows, x=cols).values, shared.compute() * 2, atol=1e-4)


def test_a_new_cube_is_staged_beside_its_location_and_renamed_into_place(tmp_path):
    path = tmp_path / "29UNU.icechunk"
    seen = []

    def cancel_never() -> bool:  # polled during the write: records what the parent directory holds then
        seen.append((path.exists(), _staging_leftovers(tmp_path)))
        return False

    first = write(path, "A", should_cancel=cancel_never)
    assert first.created_cube and first.time_index == 0
    # while the scene was written, only a hidden staging directory existed; the location appeared with the commit
    assert seen[-1][1] and not any(exists for exists, _ in seen)
    assert repository_exists(path) and _staging_leftovers(tmp_path) == []
    assert [c.message for c in cube_log(path)] == ["job -: write scene A", "Repository initialized"]
    assert_slot_holds(open_cube(path), "A")
    second = write(path, "B")  # the renamed repository takes further commits in place
    assert (second.created_cube, second.time_index) == (False, 1)
    cube = open_cube(path)
    for scene_id in "AB":
        assert_slot_holds(cube, scene_id)


def test_a_writer_whose_new_cube_was_created_by_another_moves_its_commit_there(tmp_path, monkeypatch):
    """Two writers create one tile: the one that publishes second copies its encoded chunks into the other's
    cube (nothing is computed again) and reports the cube as not created by it."""
    path = tmp_path / "29UNU.icechunk"
    original, pending, other = cube_writer.staged_repository, [lambda: write(path, "B")], []

    @contextlib.contextmanager
    def racing(location, options=None):
        with original(location, options) as (repo, publish):
            def publish_late() -> bool:
                if pending:  # the other writer creates the cube between this commit and this publish
                    other.append(pending.pop()())
                return publish()
            yield repo, (publish_late if publish is not None else None)

    monkeypatch.setattr(cube_writer, "staged_repository", racing)
    computed, original_window = [], cube_writer._write_window

    def write_window(*args):  # counts the chunk windows computed
        computed.append(args[3:5])
        return original_window(*args)

    monkeypatch.setattr(cube_writer, "_write_window", write_window)
    with dask.config.set(scheduler="synchronous"):
        late = write(path, "C")
    assert other[0].created_cube and other[0].time_index == 0
    assert (late.created_cube, late.time_index, late.attempts) == (False, 1, 2)
    assert len(computed) == 12  # six chunks of B and six of C: C was not computed again
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    assert list(zarr.open_array(repo.readonly_session("main").store, path="scene_id")[:]) == ["B", "C"]
    assert [c.message for c in cube_log(path)] == ["job -: write scene C", "job -: write scene B",
                                                   "Repository initialized"]
    cube = open_cube(path)
    assert sorted(cube.scene_id.values) == ["B", "C"]
    for scene_id in "BC":
        assert_slot_holds(cube, scene_id)
    assert _staging_leftovers(tmp_path) == []


def test_a_new_cube_whose_write_fails_leaves_nothing(tmp_path):
    path = tmp_path / "29UNU.icechunk"
    staged = []

    def cancel_once_staged() -> bool:  # the stop flag arrives while the staging repository is written
        staged.extend(_staging_leftovers(tmp_path))
        return bool(staged)

    with pytest.raises(CubeWriteCanceled, match="nothing was written"):
        write(path, "A", should_cancel=cancel_once_staged)
    assert staged, "the cancel must come during the staged write"
    assert not path.exists() and _staging_leftovers(tmp_path) == []
    with pytest.raises(ProcessingError, match="29UNU"):
        open_cube(path)


def test_what_is_at_a_new_cubes_location_decides_whether_it_is_written(tmp_path):
    empty = tmp_path / "29UNU.icechunk"
    empty.mkdir()  # an empty directory is replaced by the cube
    assert write(empty, "A").created_cube
    assert_slot_holds(open_cube(empty), "A")
    other = tmp_path / "29UNV.icechunk"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CubeWriteError, match="29UNV.icechunk.*no Icechunk repository"):
        write(other, "A")
    assert [p.name for p in other.iterdir()] == ["notes.txt"] and _staging_leftovers(tmp_path) == []
