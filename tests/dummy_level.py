"""A plugin level for the level-contract tests: it runs between L1C and L2A and marks the scene."""

from __future__ import annotations

from gmsdask.levels import Level, LevelOutcome


def _run(scene, ctx):
    marked = scene.copy()
    marked.attrs["dummy_level_job"] = ctx.job_id
    return LevelOutcome(marked, facts={"seen": ctx.record.product_id})


DUMMY = Level("L1D", 35, "a dummy level added by a test", _run, adds=("root attr dummy_level_job",))
