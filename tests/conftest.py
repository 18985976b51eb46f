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

    os.environ["GMSDASK_HOME"] = tempfile.mkdtemp(prefix="gmsdask_home_")
