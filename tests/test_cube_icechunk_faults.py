"""Cube writers in separate processes: two jobs at once, and a writer killed (SIGKILL) before its commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gmsdask.io.cube import cube_log, open_cube

from .cube_helpers import assert_slot_holds, write

REPO = Path(__file__).resolve().parents[1]


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "tests.cube_helpers", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the writer ended early: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.02)


def test_two_processes_writing_overlapping_scenes_leave_every_slot_exactly_once(tmp_path):
    path = tmp_path / "29UNU.icechunk"
    go = tmp_path / "go"
    jobs = [_start("write", str(path), "A,B,C", str(go)), _start("write", str(path), "B,C,D", str(go))]
    time.sleep(0.5)
    go.touch()
    for job in jobs:
        _, stderr = job.communicate(timeout=120)
        assert job.returncode == 0, stderr[-2000:]
    cube = open_cube(path)
    assert sorted(cube.scene_id.values) == ["A", "B", "C", "D"]  # each exactly once
    for scene_id in "ABCD":
        assert_slot_holds(cube, scene_id)
    scene_commits = [c for c in cube_log(path) if c.metadata.get("scene_id")]
    assert sorted(c.metadata["scene_id"] for c in scene_commits) == ["A", "B", "B", "C", "C", "D"]


def test_a_writer_killed_before_its_commit_leaves_no_trace_and_a_rerun_equals_an_undisturbed_run(tmp_path):
    undisturbed = tmp_path / "undisturbed.icechunk"
    for scene_id in ("A", "B"):
        write(undisturbed, scene_id)

    path = tmp_path / "29UNU.icechunk"
    write(path, "A")
    marker = tmp_path / "chunks-written"
    writer = _start("stall", str(path), "B", str(marker))
    _wait_for(marker, writer)  # three chunk windows of B are in storage, the commit is not
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert [c.metadata.get("scene_id") for c in cube_log(path)] == ["A", None]
    assert list(open_cube(path).scene_id.values) == ["A"]  # no ghost slot

    write(path, "B")  # the rerun
    cube, expected = open_cube(path).load(), open_cube(undisturbed).load()
    assert set(cube.variables) == set(expected.variables)
    assert list(cube.scene_id.values) == list(expected.scene_id.values) == ["B", "A"]
    for name in expected.variables:
        np.testing.assert_array_equal(cube[name].values, expected[name].values, err_msg=name)
    assert cube.identical(expected)
