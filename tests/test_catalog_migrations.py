"""Schema migrations: a catalogue written by gmsdask 0.1.0 (tests/fixtures/catalog_v010.sqlite, made by that
release's own code with tests/fixtures/make_catalog_v010.py) opens upgraded, on SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from gmsdask.catalog import SCHEMA_REVISION, Catalog
from gmsdask.catalog.migrate import BASELINE_REVISION, _alembic_config
from gmsdask.catalog.migrations.baseline_schema import baseline_tables
from gmsdask.catalog.schema import Base
from gmsdask.config import JobConfig
from gmsdask.errors import CatalogError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "catalog_v010.sqlite"
S2A = "S2A_MSIL1C_20221005T115411_N0400_R023_T29UNU_20221005T164454"
L8 = "LC08_L1TP_206023_20221006_20221013_02_T1"
S2B = "S2B_MSIL1C_20221010T115409_N0400_R023_T29UNU_20221010T140000"


def copy_fixture_to(url: str) -> None:
    """The 0.1.0 fixture's rows in the 0.1.0 tables of the (empty) database ``url``."""
    source = sa.create_engine(f"sqlite:///{FIXTURE}")
    target = sa.create_engine(url)
    metadata = sa.MetaData()
    tables = baseline_tables(metadata)
    with source.connect() as reading, target.begin() as writing:
        metadata.create_all(writing)
        for table in metadata.sorted_tables:
            rows = [dict(row._mapping) for row in reading.execute(sa.select(table))]
            writing.execute(table.insert(), rows)
            if writing.dialect.name == "postgresql":   # rows came with their ids: move the sequences on
                writing.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                        f"(SELECT max(id) FROM {table.name}))"))
    assert set(tables) == {"scenes", "jobs", "scene_levels", "mgrs_tiles_written"}
    source.dispose()
    target.dispose()


@pytest.fixture()
def old_catalogue_url(catalog_url: str, tmp_path: Path) -> str:
    """A catalogue of gmsdask 0.1.0: the fixture file itself (SQLite) or its rows (PostgreSQL)."""
    if catalog_url.startswith("sqlite"):
        copy = tmp_path / "catalog.sqlite"
        shutil.copyfile(FIXTURE, copy)
        return f"sqlite:///{copy}"
    copy_fixture_to(catalog_url)
    return catalog_url


def test_a_catalogue_of_gmsdask_010_opens_upgraded(old_catalogue_url: str) -> None:
    with Catalog(old_catalogue_url, create=False) as catalog:
        assert catalog.opened_revision == BASELINE_REVISION
        s2a, l8, s2b = (catalog.scene_id(product) for product in (S2A, L8, S2B))
        # scenes and their tiles, now rows of scene_tiles, selected in SQL
        assert catalog.scene(s2a).mgrs_tiles == ["29UMU", "29UNU"]
        assert catalog.scene(l8).mgrs_tiles == ["29UNU", "29UNV"] and catalog.scene(l8).cloud_cover_pct is None
        assert [scene.id for scene in catalog.scenes(tile="29UNU")] == [s2a, l8, s2b]
        assert [scene.id for scene in catalog.scenes(tile="T29UMU")] == [s2a]
        # jobs and their scenes, now rows of job_scenes, in their order
        first, second = catalog.jobs()
        assert first.scene_ids == [s2a, l8, s2b] and first.comment == "made by gmsdask 0.1.0"
        assert first.status == "finished_with_errors" and first.failed_scene_ids == [s2b]
        assert second.scene_ids == [l8] and second.status == "pending"
        # the stored 0.1 configuration still loads (its "CLASSIFIER" cloud masking is Fmask now)
        stored = second.job_config()
        assert (stored.target_gsd, stored.job_ID, stored.cloud_masking_algorithm["SENTINEL_2"]) == \
            (20.0, second.id, "FMASK")
        # levels "skipped: not available yet" are pending again; what was skipped on purpose stays skipped
        assert catalog.level_status(first.id, s2a) == {
            "L1A": "done", "L1B": "pending", "L1C": "pending", "L2A": "done", "L2B": "pending", "L2C": "done"}
        assert catalog.level_status(first.id, l8)["L2A"] == "skipped"
        records = {(r.scene_id, r.level): r for r in catalog.level_records(first.id)}
        assert records[(s2a, "L1B")].note.endswith("was skipped: L1B: not available yet")
        assert records[(s2a, "L1B")].output == "" and records[(s2a, "L1B")].finished_at is None
        assert records[(l8, "L2A")].output == "L2A: disabled by exec_L2AP"
        assert all(record.version == "" for record in records.values())
        assert catalog.failures(first.id)[0].error_message == "no valid pixel"
        assert "RuntimeError: no valid pixel" in catalog.failures(first.id)[0].error_traceback
        assert first.statistics["L1B"] == {"done": 0, "failed": 0, "skipped": 0}
        assert first.statistics["L2A"] == {"done": 1, "failed": 1, "skipped": 1}
        # a rerun resumes after L1A: the new L1B, L1C and L2B run on scenes processed before them
        assert [catalog.last_completed_level(first.id, scene) for scene in (s2a, l8, s2b)] == ["L1A"] * 3
        assert catalog.level_status(second.id, l8) == {"L1A": "running"}
        [tile] = catalog.tiles_written(first.id)
        assert (tile.tile, tile.path, tile.scene_id) == ("29UNU", "/cubes/29UNU.zarr", s2a)
        # and it works as a new catalogue does
        catalog.record_level(first.id, s2a, "L1B", "done", version="2")
        assert catalog.level_records(first.id, s2a)[1].version == "2"
        third = catalog.create_job([s2a, s2b], JobConfig())
        assert catalog.job(third).scene_ids == [s2a, s2b]
    with Catalog(old_catalogue_url, create=False) as again:
        assert again.opened_revision == SCHEMA_REVISION                  # upgraded once
        assert again.level_status(first.id, s2a)["L1B"] == "done"


def schema_differences(url: str) -> list[object]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    return [d for d in differences if not (isinstance(d, tuple) and d[0] == "remove_table"
                                           and d[1].name == "alembic_version")]


def test_upgraded_schema_equals_the_models(
    old_catalogue_url: str, catalog_url: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    assert schema_differences(f"sqlite:///{FIXTURE}") != []               # the comparison does see changes
    Catalog(old_catalogue_url).close()
    assert schema_differences(old_catalogue_url) == []
    if catalog_url.startswith("sqlite"):
        fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    else:
        fresh = request.getfixturevalue("postgres_server").create_schema("fresh")
    Catalog(fresh).close()                                                 # made from the models, stamped
    assert schema_differences(fresh) == []


def test_the_newest_migration_is_the_schema_revision() -> None:
    scripts = ScriptDirectory.from_config(_alembic_config(connection=None))  # type: ignore[arg-type]
    assert scripts.get_current_head() == SCHEMA_REVISION
    assert [script.revision for script in scripts.walk_revisions()][-1] == BASELINE_REVISION


def test_the_fixture_was_written_by_the_old_schema() -> None:
    engine = sa.create_engine(f"sqlite:///{FIXTURE}")
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        skipped = connection.execute(sa.text(
            "SELECT count(*) FROM scene_levels WHERE status = 'skipped' AND output LIKE '%not available yet'"))
        assert tables == {"scenes", "jobs", "scene_levels", "mgrs_tiles_written"}     # no alembic_version
        assert skipped.scalar_one() == 8
    engine.dispose()


def test_a_failed_upgrade_leaves_the_catalogue_as_it_was(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite"
    shutil.copyfile(FIXTURE, broken)
    engine = sa.create_engine(f"sqlite:///{broken}")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE jobs SET scene_ids = '[1, 2' WHERE id = 2"))     # truncated JSON
    with pytest.raises(CatalogError, match=f"cannot upgrade catalogue {broken} from schema revision 0001"):
        Catalog(f"sqlite:///{broken}")
    with engine.connect() as connection:
        assert set(sa.inspect(connection).get_table_names()) == {"scenes", "jobs", "scene_levels",
                                                                  "mgrs_tiles_written"}
        assert connection.execute(sa.text("SELECT count(*) FROM scene_levels WHERE status = 'skipped'")).scalar_one() == 9
    engine.dispose()
