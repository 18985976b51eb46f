"""Test-only levels that make cluster work long and observable, so that a test can kill or stop it mid-way.

Work started on a worker leaves a marker file ``<marker_dir>/<tag>.<pid>.<n>`` (its text: the worker's pid), then
pauses until ``seconds`` passed or ``<marker_dir>/release`` exists. The levels read their settings from the
environment (``GMSDASK_TEST_MARKERS``, ``GMSDASK_TEST_PAUSE_S``) so that a ``gmsdask run`` subprocess loads them
through ``GMSDASK_LEVEL_PLUGINS="tests.fault_levels:PAUSED_L1B"`` (or ``...:PAUSED_L2C``). They replace the
built-in level of the same name and leave the scene as it is (cubes equal those of the built-in chain).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from gmsdask.errors import ProcessingError
from gmsdask.geometry import resolution_groups
from gmsdask.levels import BUILTIN_LEVELS, LevelContext, LevelOutcome

MARKERS_ENV = "GMSDASK_TEST_MARKERS"
PAUSE_ENV = "GMSDASK_TEST_PAUSE_S"
FAILURES_ENV = "GMSDASK_TEST_FAILURES"
_BUILTIN = {level.name: level for level in BUILTIN_LEVELS}


def pause(marker_dir: str, tag: str, seconds: float) -> str:
    """Leave a marker naming this process, then wait ``seconds`` (or until ``<marker_dir>/release`` exists)."""
    folder = Path(marker_dir)
    marker = folder / f"{tag}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (folder / "release").exists():
        time.sleep(0.05)
    return tag


def markers(marker_dir: Path, tag: str = "") -> list[Path]:
    """Marker files left so far (for ``tag``, or all)."""
    return sorted(p for p in Path(marker_dir).glob(f"{tag}*.*") if p.name != "release")


def wait_for_marker(marker_dir: Path, tag: str = "", timeout: float = 120.0) -> Path:
    """The first marker of ``tag``; raises TimeoutError when none appears in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := markers(marker_dir, tag)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no work marker {tag!r} appeared in {marker_dir} in {timeout} s")
        time.sleep(0.05)
    return found[0]


def _settings() -> tuple[str, float]:
    return os.environ[MARKERS_ENV], float(os.environ.get(PAUSE_ENV, "3"))


def _paused_l1b(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Built-in L1B, plus one paused task on the cluster per scene (the level's ``work``)."""
    outcome = _BUILTIN["L1B"].run(scene, ctx)
    marker_dir, seconds = _settings()
    work = dask.delayed(pause, pure=False)(marker_dir, f"L1B-{ctx.record.product_id}", seconds)
    return replace(outcome, work=(*outcome.work, work))


def flaky(marker_dir: str, tag: str, failures: int) -> str:
    """Leave a marker; raise while this task has run ``failures`` times or fewer (a transient error)."""
    marker = pause(marker_dir, tag, 0.0)
    attempts = len(markers(Path(marker_dir), tag))
    if attempts <= failures:
        raise RuntimeError(f"injected transient failure {attempts} of {failures} ({tag})")
    return marker


def _flaky_l1b(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Built-in L1B, plus one task per scene that fails ``GMSDASK_TEST_FAILURES`` times before it succeeds."""
    outcome = _BUILTIN["L1B"].run(scene, ctx)
    marker_dir, _seconds = _settings()
    work = dask.delayed(flaky, pure=False)(marker_dir, f"L1B-{ctx.record.product_id}",
                                           int(os.environ.get(FAILURES_ENV, "1")))
    return replace(outcome, work=(*outcome.work, work))


def _eager_paused_l1b(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Built-in L1B after a small eager step of the level's own (as L1B's matching windows or L1C's aerosol sums
    are): one ``dask.compute`` of a paused task, then of a task that fails ``GMSDASK_TEST_FAILURES`` times
    (default 0), on whatever scheduler the controller set."""
    marker_dir, seconds = _settings()
    dask.compute(dask.delayed(pause, pure=False)(marker_dir, f"eager-L1B-{ctx.record.product_id}", seconds))
    dask.compute(dask.delayed(flaky, pure=False)(marker_dir, f"flaky-L1B-{ctx.record.product_id}",
                                                 int(os.environ.get(FAILURES_ENV, "0"))))
    return _BUILTIN["L1B"].run(scene, ctx)


def _pause_block(block: np.ndarray, marker_dir: str, tag: str, seconds: float) -> np.ndarray:
    pause(marker_dir, tag, seconds)
    return block


def _flaky_block(block: np.ndarray, marker_dir: str, tag: str, failures: int) -> np.ndarray:
    flaky(marker_dir, tag, failures)
    return block


def _through_blocks(scene: xr.DataTree, block_function, *args) -> xr.DataTree:
    """``scene`` whose first floating band of each resolution group passes through ``block_function(block, *args)``
    block by block."""
    out = scene.copy()
    for group_name, group in resolution_groups(scene, "L2C").items():
        band = next(name for name, var in group.data_vars.items() if np.issubdtype(var.dtype, np.floating)
                    and name not in ("nodata", "cloud"))
        group[band] = group[band].copy(data=group[band].data.map_blocks(
            block_function, *args, meta=np.empty((0, 0), dtype=group[band].dtype)))  # dask must not call it
        out[group_name] = xr.DataTree(group)
    return out


def _l2c_through_blocks(scene: xr.DataTree, ctx: LevelContext, block_function, *args) -> LevelOutcome:
    """Built-in L2C whose pixel writes pass through ``block_function``: the first band of the target-grid group
    block by block, so the cube's slot is allocated before and filled after it. Tiles of another UTM zone are made
    from the scene before L2A (``ctx.scene_before``): its bands pass through it the same way."""
    before = ctx.scene_before
    if before is not None:
        ctx = replace(ctx, scene_before=lambda name: _through_blocks(before(name), block_function, *args))
    return _BUILTIN["L2C"].run(_through_blocks(scene, block_function, *args), ctx)


def _paused_l2c(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Built-in L2C whose pixel writes pause (:func:`pause`)."""
    marker_dir, seconds = _settings()
    return _l2c_through_blocks(scene, ctx, _pause_block, marker_dir, f"L2C-{ctx.record.product_id}", seconds)


def _flaky_l2c(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Built-in L2C whose pixel writes fail ``GMSDASK_TEST_FAILURES`` times per scene before they succeed."""
    marker_dir, _seconds = _settings()
    return _l2c_through_blocks(scene, ctx, _flaky_block, marker_dir, f"L2C-{ctx.record.product_id}",
                               int(os.environ.get(FAILURES_ENV, "1")))


def _failing_l1c(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """Fails as a level fails on bad input: a named error (whose ``__init__`` does not take ``args``)."""
    raise ProcessingError(ctx.record.product_id, "L1C", "injected failure (tests.fault_levels)")


PAUSED_L1B = replace(_BUILTIN["L1B"], run=_paused_l1b)
EAGER_PAUSED_L1B = replace(_BUILTIN["L1B"], run=_eager_paused_l1b)
FAILING_L1C = replace(_BUILTIN["L1C"], run=_failing_l1c)
PAUSED_L2C = replace(_BUILTIN["L2C"], run=_paused_l2c)
FLAKY_L2C = replace(_BUILTIN["L2C"], run=_flaky_l2c)
FLAKY_L1B = replace(_BUILTIN["L1B"], run=_flaky_l1b)
