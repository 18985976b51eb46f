"""Opening catalogues: persistence, URLs, pickling, missing and broken databases, hidden passwords."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest

from gmsdask.catalog import Catalog
from gmsdask.config import JobConfig
from gmsdask.errors import CatalogError

from .fixtures.catalog_scenes import LANDSAT8_ID, SENTINEL2_L1C_ID, landsat8_attrs, run_chain, sentinel2_attrs
from .postgres import TEST_PASSWORD


def test_catalog_reopens_from_the_same_database(catalog_url: str) -> None:
    with Catalog(catalog_url) as first:
        landsat_id = first.add_scene(landsat8_attrs(), ["17SNB"])
        sentinel2_id = first.add_scene(sentinel2_attrs(), [])
        job_id = first.create_job([landsat_id, sentinel2_id], JobConfig(), comment="persist")
        run_chain(first, job_id, landsat_id)
        run_chain(first, job_id, sentinel2_id, failing_level="L2B")
        first.record_tile(job_id, "17SNB", "SENTINEL_2A", "/cubes/17SNB.zarr", landsat_id)
        first.finish_job(job_id)
        before = (first.scenes(), first.job(job_id), first.failures(job_id), first.tiles_written(job_id),
                  first.level_records(job_id))
    reopened = pickle.loads(pickle.dumps(Catalog(catalog_url)))            # also: a Catalog travels as its URL
    after = (reopened.scenes(), reopened.job(job_id), reopened.failures(job_id), reopened.tiles_written(job_id),
             reopened.level_records(job_id))
    assert after == before
    assert reopened.job(job_id).status == "finished_with_errors"
    assert reopened.last_completed_level(job_id, sentinel2_id) == "L2A"
    reopened.close()


def test_from_config_creates_the_folder_of_a_relative_sqlite_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = JobConfig(db_url="sqlite:///gmsdask_data/nested/catalog.sqlite")
    with Catalog.from_config(cfg) as catalog:
        scene_id = catalog.add_scene(landsat8_attrs(), [])
    database = tmp_path / "gmsdask_data" / "nested" / "catalog.sqlite"
    assert database.is_file()
    assert catalog.url == f"sqlite:///{database.resolve()}"       # a worker elsewhere opens the same file
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert pickle.loads(pickle.dumps(catalog)).scene(scene_id).product_id == LANDSAT8_ID


def test_in_memory_catalog_works() -> None:
    with Catalog("sqlite://") as catalog:
        scene_id = catalog.add_scene(sentinel2_attrs(), [])
        assert catalog.scene(scene_id).product_id == SENTINEL2_L1C_ID


def test_invalid_url_is_a_catalog_error() -> None:
    with pytest.raises(CatalogError, match="not a url"):
        Catalog("not a url")
    with pytest.raises(CatalogError, match="nosuchdb"):
        Catalog("nosuchdb://user:pw@host/db")


def test_an_unopenable_database_is_a_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "a_folder.sqlite").mkdir()
    with pytest.raises(CatalogError, match="cannot open catalogue .*a_folder.sqlite"):
        Catalog(f"sqlite:///{tmp_path / 'a_folder.sqlite'}")


def test_a_read_command_does_not_create_a_missing_catalogue(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "catalog.sqlite"
    with pytest.raises(CatalogError, match=f"catalogue {missing} does not exist"):
        Catalog(f"sqlite:///{missing}", create=False)
    assert not missing.exists() and not missing.parent.exists()
    with Catalog(f"sqlite:///{missing}") as created:                    # create=True (default) makes it
        scene_id = created.add_scene(landsat8_attrs(), [])
    with Catalog(f"sqlite:///{missing}", create=False) as opened:
        assert opened.scene(scene_id).product_id == LANDSAT8_ID


def test_a_postgresql_database_without_catalogue_is_not_created_for_reading(postgres_url: str) -> None:
    with pytest.raises(CatalogError, match="holds no catalogue tables"):
        Catalog(postgres_url, create=False)
    Catalog(postgres_url).close()
    Catalog(postgres_url, create=False).close()


def test_a_file_that_is_not_a_database_is_a_catalog_error_naming_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes.sqlite"
    notes.write_text("these are my thesis notes, not a database\n" * 100)
    with pytest.raises(CatalogError, match=f"cannot open catalogue {notes}: file is not a database"):
        Catalog(f"sqlite:///{notes}")
    with pytest.raises(CatalogError, match=f"{notes}: file is not a database"):
        Catalog(f"sqlite:///{notes}", create=False)
    assert notes.read_text().startswith("these are my thesis notes")     # left as it was


def test_default_url_comes_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path / "home"))
    with Catalog() as catalog:
        assert catalog.url == Catalog.from_config(JobConfig()).url
    assert catalog.url.startswith("sqlite:///") and Path(catalog.url.removeprefix("sqlite:///")).is_file()


def test_the_password_never_shows(postgres_server) -> None:
    url = postgres_server.create_database()
    assert TEST_PASSWORD in url
    with Catalog(url) as catalog:
        scene_id = catalog.add_scene(landsat8_attrs(), [])
        shown = [catalog.url, repr(catalog), str(catalog)]
        pickled = pickle.dumps(catalog)
    assert all(TEST_PASSWORD not in text for text in shown), shown
    assert TEST_PASSWORD.encode() not in pickled
    assert f"@127.0.0.1:{postgres_server.port}/" in catalog.url
    reopened = pickle.loads(pickled)            # the server trusts 127.0.0.1, as PGPASSWORD/.pgpass would
    assert reopened.scene(scene_id).product_id == LANDSAT8_ID
    reopened.close()
    with pytest.raises(CatalogError) as raised:
        Catalog(postgres_server.url("nowhere").replace(f":{postgres_server.port}/", ":1/"))   # nobody listens
    assert TEST_PASSWORD not in str(raised.value)


def test_a_database_of_something_else_is_not_taken_over(tmp_path: Path) -> None:
    other = tmp_path / "inventory.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE parcels (id INTEGER PRIMARY KEY, owner TEXT)")
    connection.close()
    for create in (True, False):
        with pytest.raises(CatalogError, match=f"{other}.*(not a gmsdask catalogue .*parcels|no catalogue tables)"):
            Catalog(f"sqlite:///{other}", create=create)
    with sqlite3.connect(other) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    connection.close()
    assert tables == ["parcels"]


def test_a_catalogue_of_a_newer_gmsdask_is_refused(sqlite_url: str) -> None:
    Catalog(sqlite_url).close()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")
    connection.close()
    with pytest.raises(CatalogError, match=f"catalogue {path} has schema revision '0099'.*newer gmsdask"):
        Catalog(sqlite_url)
