"""The catalogue's per-scene cost stays structural, not timed: one SQL statement per call a controller makes for a
scene and level (issue 13: < 50 ms per scene), no transaction around them on SQLite, writes of one process taking
turns in Python, WAL with synchronous NORMAL, and a level state's heartbeat at most every few seconds."""

from __future__ import annotations

from typing import Any, Self

import pytest
from sqlalchemy import event, text

from gmsdask.catalog import Catalog
from gmsdask.catalog import engine as catalog_engine
from gmsdask.catalog import levels as catalog_levels
from gmsdask.config import LEVELS, JobConfig
from gmsdask.errors import CatalogError

from .fixtures.catalog_scenes import landsat8_attrs, make_job

TILES = ("32UMU", "32UNU")


def _one_scene(catalog: Catalog, job_id: int, scene_id: int) -> None:
    """The calls ``SceneChain`` makes for one scene through L1A..L2C (gmsdask/controller/scene_chain.py)."""
    catalog.scene(scene_id)
    catalog.level_status(job_id, scene_id)
    catalog.level_records(job_id, scene_id)
    for level in LEVELS:
        catalog.record_level(job_id, scene_id, level, "running")
        if level == LEVELS[-1]:
            for tile in TILES:
                catalog.record_tile(job_id, tile, "MSI_30m", f"/cubes/{tile}.icechunk", scene_id)
        catalog.record_level(job_id, scene_id, level, "done", output=f"/out/{level}.zarr", version="1",
                             facts={"shift_x_m": 1.5} if level == "L1B" else None)


class _Statements:
    """The SQL a catalogue's engine runs, with whether this process's write turn was held meanwhile."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog, self.seen = catalog, []

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        turn = self.catalog._write_turn
        self.seen.append((statement.split()[0].upper(), " ".join(statement.split()[:3]),
                          turn is not None and turn.locked()))

    def __enter__(self) -> Self:
        event.listen(self.catalog._engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.catalog._engine, "before_cursor_execute", self._record)


def test_a_scene_costs_one_statement_per_catalogue_call(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_levels, "RECORD_HEARTBEAT_EVERY_S", 3600.0)   # however slow the machine
    job_id, scene_ids = make_job(catalog, 2)
    catalog.claim_job(job_id)
    calls = 3 + 2 * len(LEVELS) + len(TILES)          # scene, level_status, level_records; two per level; tiles
    with _Statements(catalog) as statements:
        _one_scene(catalog, job_id, scene_ids[0])
    heartbeats = [s for s in statements.seen if s[1] == "UPDATE jobs SET"]
    assert len(heartbeats) == 1                           # the first level state of the job beats, not the others
    assert len(statements.seen) == calls + len(heartbeats), statements.seen
    assert not [s for s in statements.seen if s[0] in ("BEGIN", "COMMIT")]   # SQLite: no transaction around them
    if catalog._engine.dialect.name == "sqlite":          # and every write waited its turn in Python, not in SQLite
        assert all(locked for kind, _, locked in statements.seen if kind in ("INSERT", "UPDATE"))

    # what the statements did: every state, its facts and the tiles; the other scene untouched
    records = {record.level: record for record in catalog.level_records(job_id, scene_ids[0])}
    assert list(records) == list(LEVELS) and {r.status for r in records.values()} == {"done"}
    assert records["L1B"].facts == {"shift_x_m": 1.5} and records["L1A"].facts is None
    assert records["L2C"].output == "/out/L2C.zarr" and records["L2C"].started_at <= records["L2C"].finished_at
    assert [(t.tile, t.scene_id) for t in catalog.tiles_written(job_id)] == [(tile, scene_ids[0]) for tile in TILES]
    assert catalog.level_status(job_id, scene_ids[1]) == {}
    assert catalog.update_statistics(job_id)["L2C"]["done"] == 1


def test_a_level_state_keeps_its_start_time_and_is_written_only_for_a_scene_of_the_job(catalog: Catalog) -> None:
    job_id, scene_ids = make_job(catalog, 1)
    other_scene = catalog.add_scene(landsat8_attrs(product_id="LC08_L1TP_016037_20170813_20170814_01_XX"), [])
    other_job = catalog.create_job([other_scene], JobConfig())
    catalog.record_level(job_id, scene_ids[0], "L1A", "running")
    started = catalog.level_records(job_id, scene_ids[0])[0].started_at
    catalog.record_level(job_id, scene_ids[0], "L1A", "failed", error=RuntimeError("no aerosol"))
    [failed] = catalog.level_records(job_id, scene_ids[0])
    assert failed.started_at == started and failed.finished_at >= started
    assert (failed.error_type, failed.error_message) == ("RuntimeError", "no aerosol")
    catalog.record_level(job_id, scene_ids[0], "L1A", "done")
    [done] = catalog.level_records(job_id, scene_ids[0])
    assert done.started_at == started and done.error_type == ""
    with pytest.raises(CatalogError, match=f"scene {other_scene} is not part of job {job_id}"):
        catalog.record_level(job_id, other_scene, "L1A", "done")
    assert catalog.level_records(other_job) == [] and catalog.level_status(job_id, other_scene) == {}


def test_recording_levels_writes_the_heartbeat_at_most_every_few_seconds(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id, scene_ids = make_job(catalog, 1)
    catalog.claim_job(job_id)
    claimed = catalog.job(job_id).heartbeat_at
    catalog.record_level(job_id, scene_ids[0], "L1A", "running")
    beat = catalog.job(job_id).heartbeat_at
    assert beat > claimed
    catalog.record_level(job_id, scene_ids[0], "L1A", "done")
    assert catalog.job(job_id).heartbeat_at == beat           # within RECORD_HEARTBEAT_EVERY_S: no write
    monkeypatch.setattr(catalog_levels, "RECORD_HEARTBEAT_EVERY_S", 0.0)
    catalog.record_level(job_id, scene_ids[0], "L1B", "running")
    assert catalog.job(job_id).heartbeat_at > beat


def test_a_sqlite_catalogue_runs_in_wal_mode_with_normal_sync(sqlite_url: str) -> None:
    # WAL: readers and the writer do not block each other; NORMAL: a commit does not wait for the disk (the
    # log is synced at checkpoints), which is crash-safe for the process and never corrupts the file
    for _ in range(2):   # a new catalogue and one opened again
        with Catalog(sqlite_url) as catalog, catalog._engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 1      # NORMAL
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_a_database_without_upserts_records_through_the_generic_path(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # any SQLAlchemy dialect works: without INSERT ... ON CONFLICT the guard is looked up, then the row
    monkeypatch.setattr(catalog_engine, "_UPSERT_DIALECTS", {})
    catalog_levels._level_upsert.cache_clear()
    catalog_levels._tile_upsert.cache_clear()
    try:
        with Catalog(sqlite_url) as catalog:
            job_id, scene_ids = make_job(catalog, 1)
            other_scene = catalog.add_scene(landsat8_attrs(product_id="LC08_L1TP_016037_20170813_20170814_01_XX"), [])
            _one_scene(catalog, job_id, scene_ids[0])
            _one_scene(catalog, job_id, scene_ids[0])                     # again: updates, no duplicates
            assert catalog.level_status(job_id, scene_ids[0]) == dict.fromkeys(LEVELS, "done")
            assert len(catalog.tiles_written(job_id)) == len(TILES)
            with pytest.raises(CatalogError, match=f"scene {other_scene} is not part of job {job_id}"):
                catalog.record_level(job_id, other_scene, "L1A", "done")
            with pytest.raises(CatalogError, match="no scene with id 4242"):
                catalog.record_tile(job_id, TILES[0], "MSI_30m", "/cubes/x", 4242)
    finally:   # the statements built for no dialect must not outlive the test
        catalog_levels._level_upsert.cache_clear()
        catalog_levels._tile_upsert.cache_clear()
