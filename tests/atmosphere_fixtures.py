"""Shared fixtures of the atmospheric-correction tests: the committed 6S cache and the interpolation sample.

``tests/data/atmosphere/cache`` holds the 6S lookup-table nodes and single runs these tests use (regenerate with
``python -m tests.atmosphere_fixtures``, which reruns the tests with an empty cache and keeps what they made).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gmsdask.atmosphere.lut import GeometryGrid

CACHE = Path(__file__).parent / "data" / "atmosphere" / "cache"
#: A geometry cell whose inside the interpolation test probes.
INTERPOLATION_GRID = GeometryGrid((30.0, 35.0), (5.0, 10.0), (30.0, 60.0))
#: (aot550, sun zenith, view zenith, relative azimuth) off every node of ``INTERPOLATION_GRID`` and ``AOT_NODES``.
INTERPOLATION_POINTS = ((0.47, 34.75, 5.72, 58.5), (0.294, 32.12, 9.14, 42.3), (0.504, 30.14, 8.77, 46.1),
                        (0.138, 32.02, 6.02, 37.9), (0.68, 31.4, 7.43, 59.4), (0.866, 33.62, 7.71, 38.3),
                        (0.05, 32.5, 7.5, 45.0))


@pytest.fixture(scope="session")
def atmosphere_cache(tmp_path_factory) -> Path:
    """A per-session copy of the committed 6S cache (tests may add to it without touching the repository)."""
    if not CACHE.is_dir():
        raise FileNotFoundError(f"the committed 6S cache {CACHE} is missing")
    copy = tmp_path_factory.mktemp("atmosphere") / "cache"
    shutil.copytree(CACHE, copy)
    return copy
