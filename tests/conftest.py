"""Shared test fixtures. Real data lives in ../shared/data; CI always has it, so its absence is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GMSDASK_TEST_DATA", REPO.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path in the shared real-data folder; fails the test loudly when it is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"required test data {path} is missing: ../shared/data must be present (see MANIFEST.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return data_path()


def pytest_configure(config: pytest.Config) -> None:
    """Keep every test away from the user's ``~/gmsdask_data``: defaults live below a throw-away GMSDASK_HOME."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="gmsdask_home_"))
    os.environ["GMSDASK_HOME"] = str(home)
    # 6S lookup tables cost minutes: every test (whatever its GMSDASK_HOME) shares one committed cache, to which
    # new geometries are added
    (REPO / "tests" / "data" / "sixs_cache").mkdir(parents=True, exist_ok=True)
    os.environ["GMSDASK_CACHE"] = str(REPO / "tests" / "data" / "sixs_cache")
# --- PostgreSQL (catalogue tests) ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for this test session (started on first use, stopped at the end)."""
    from .postgres import PostgresServer

    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture()
def postgres_url(postgres_server) -> str:
    """The URL of a new, empty catalogue (a schema of its own) on the session's PostgreSQL server."""
    return postgres_server.create_schema()


# --- catalogue on both databases (tests/test_catalog*.py) ---------------------------------------------------------

@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a new SQLite catalogue file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> str:
    """A new empty catalogue database: a SQLite file, then a database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture()
def catalog(catalog_url: str):
    """A :class:`gmsdask.catalog.Catalog` on ``catalog_url``."""
    from gmsdask.catalog import Catalog

    with Catalog(catalog_url) as opened:
        yield opened


@pytest.fixture()
def two_scene_job(catalog) -> tuple[int, int, int]:
    """A job over a Landsat-8 and a Sentinel-2 scene: ``(job_id, landsat_id, sentinel2_id)``."""
    from gmsdask.config import JobConfig

    from .fixtures.catalog_scenes import landsat8_attrs, sentinel2_attrs

    landsat_id = catalog.add_scene(landsat8_attrs(), ["17SNB", "17SPB"])
    sentinel2_id = catalog.add_scene(sentinel2_attrs(), ["56JMM", "56JLM"])
    job_id = catalog.create_job([landsat_id, sentinel2_id], JobConfig(), comment="two sensors")
    return job_id, landsat_id, sentinel2_id


@pytest.fixture(scope="module")
def in_process_client():
    """An in-process Dask client for a module's jobs (levels run in this process, so tests may patch them)."""
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as dask_client:
        yield dask_client
