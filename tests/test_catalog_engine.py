"""Engine details: PostgreSQL lock and serialization failures are retried, the portable upsert path."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gmsdask.catalog import Catalog, engine
from gmsdask.errors import CatalogError

from .fixtures.catalog_scenes import landsat8_attrs, make_job


def failing_first(sqlstate: str, attempts: list[int]):
    """A transaction that the server aborts with ``sqlstate`` on its first run and that succeeds after."""

    def work(session: Session) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            session.execute(text(f"DO $$ BEGIN RAISE EXCEPTION 'simulated {sqlstate}' USING ERRCODE = '{sqlstate}'; "
                                 "END $$"))
        return session.execute(text("SELECT 'committed'")).scalar_one()

    return work


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])   # deadlock detected, serialization failure
def test_postgresql_deadlocks_and_serialization_failures_are_retried(postgres_url: str, sqlstate: str) -> None:
    attempts: list[int] = []
    with Catalog(postgres_url) as catalog:
        assert catalog._write(failing_first(sqlstate, attempts)) == "committed"
    assert len(attempts) == 2


def test_other_postgresql_errors_are_not_retried(postgres_url: str) -> None:
    attempts: list[int] = []
    with Catalog(postgres_url) as catalog, pytest.raises(CatalogError, match="write failed: simulated P0001"):
        catalog._write(failing_first("P0001", attempts))
    assert len(attempts) == 1


def test_the_select_then_write_upsert_of_other_databases(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_UPSERT_DIALECTS", {})               # as on a database without ON CONFLICT
    with Catalog(sqlite_url) as catalog:
        first = catalog.add_scene(landsat8_attrs(), ["17SNB"])
        again = catalog.add_scene(landsat8_attrs(product_path="/moved/there"), ["17SPB"])
        assert first == again and catalog.scene(first).product_path == "/moved/there"
        assert catalog.scene(first).mgrs_tiles == ["17SPB"]
        job_id, [scene_id] = make_job(catalog, 1)
        catalog.record_level(job_id, scene_id, "L1A", "running")
        started = catalog.level_records(job_id)[0].started_at
        catalog.record_level(job_id, scene_id, "L1A", "done", version="3")
        [record] = catalog.level_records(job_id)
        assert (record.status, record.version, record.started_at) == ("done", "3", started)
        assert record.finished_at >= started
        catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", "/a.zarr", scene_id)
        catalog.record_tile(job_id, "17SNB", "SENTINEL_2A", "/b.zarr", scene_id)
        assert [tile.path for tile in catalog.tiles_written(job_id)] == ["/b.zarr"]
