"""Atmospheric correction: cold-cache 6S table cost and warm per-pixel correction throughput.

- Cold: ``build_tables`` into an empty cache for each sensor at the geometry bin of a synthetic product
  (Landsat-9: nadir view, 2 sun-zenith nodes; Sentinel-2B: 2 sun x 1 view x 2 azimuth nodes), reported as 6S
  runs, CPU seconds of the 6S processes, and CPU seconds per run (a full Sentinel-2 tile spans 2 x 4 x 5 nodes).
- Warm: ``correct_scene`` on a synthetic Sentinel-2 L1C product with the tables cached (set-up = geometry, tables
  from disk, water vapour, dark-target reduction), then the per-pixel correction of one 2048 x 2048 chunk
  (``_correct_block``: coefficient interpolation, inversion, uncertainty) against a plain numpy read of the same
  chunk (``np.load`` of a ``.npy`` from the page cache), and the CPU seconds that gives for the 11 corrected bands
  of a full Sentinel-2 tile (4 x 10980^2 + 6 x 5490^2 + 1830^2 pixels).

``python -m benchmarks atmosphere``; results in ``benchmarks/results/atmosphere.json``.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gmsdask.atmosphere import correct_scene, corrected_bands
from gmsdask.atmosphere.aerosol import CellGrid
from gmsdask.atmosphere.correct import _correct_block
from gmsdask.atmosphere.inputs import DEFAULT_WATER_VAPOUR_GCM2
from gmsdask.atmosphere.lut import GeometryGrid, build_tables
from gmsdask.atmosphere.sixs import AtmosphereState
from gmsdask.io import open_scene
from gmsdask.synthetic import write_sentinel2_l1c

from .common import best_of, report

TIME = datetime(2024, 6, 1, 10, 20, tzinfo=timezone.utc)
#: The geometry bins of the synthetic test products (see tests/test_atmosphere_roundtrip.py).
BINS = {"LANDSAT_9": GeometryGrid((30.0, 35.0), (0.0,), (0.0,)),
        "SENTINEL_2B": GeometryGrid((30.0, 35.0), (10.0,), (30.0, 60.0))}
CHUNK = 2048


def cold_tables(platform: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        _, stats = build_tables(platform, corrected_bands(platform), AtmosphereState(0.0, DEFAULT_WATER_VAPOUR_GCM2),
                                BINS[platform], cache_dir=cache)
        wall = time.perf_counter() - started
    return {f"{platform}_6s_runs": stats.runs, f"{platform}_6s_cpu_s": stats.cpu_seconds,
            f"{platform}_cpu_s_per_run": stats.cpu_seconds / stats.runs, f"{platform}_wall_s": wall}


def warm(cache: Path, folder: Path) -> dict[str, float]:
    product = write_sentinel2_l1c(folder, platform="SENTINEL_2B", tile="33UUU", acquisition_time=TIME,
                                  size=(600, 600), seed=11, aot550=0.2)
    correct_scene(open_scene(product.path), cache_dir=cache)  # fills the cache
    setup = best_of(lambda: correct_scene(open_scene(product.path), cache_dir=cache), repeat=2)
    toa = np.random.default_rng(0).uniform(0.0, 0.5, (CHUNK, CHUNK)).astype(np.float32)
    cells = CellGrid.covering(300000.0, 5900000.0, CHUNK * 10.0, CHUNK * 10.0, 3000.0)
    coefficients = np.stack([np.full(cells.shape, v) for v in (0.08, 0.75, 0.15, 0.09, 0.72, 0.16)])
    x = 300000.0 + 10.0 * (np.arange(CHUNK) + 0.5)
    y = 5900000.0 - 10.0 * (np.arange(CHUNK) + 0.5)
    info = {0: {"array-location": [(0, CHUNK), (0, CHUNK)]}}
    correction = best_of(lambda: _correct_block(toa, x, y, cells, coefficients, block_info=info))
    np.save(folder / "chunk.npy", toa)
    baseline = best_of(lambda: np.load(folder / "chunk.npy"))
    pixels = CHUNK * CHUNK / 1e6
    tile_mpix = (4 * 10980 ** 2 + 6 * 5490 ** 2 + 1830 ** 2) / 1e6
    return {"warm_correct_scene_setup_s": setup, "correction_mpix_per_s_one_core": pixels / correction,
            "numpy_read_mpix_per_s_one_core": pixels / baseline, "correction_vs_numpy_read": correction / baseline,
            "s2_tile_correction_cpu_s": tile_mpix / (pixels / correction)}


def main() -> dict:
    results: dict[str, float] = {}
    for platform in BINS:
        results |= cold_tables(platform)
    with tempfile.TemporaryDirectory() as folder:
        results |= warm(Path(folder) / "cache", Path(folder))
    return report("atmosphere", results)


if __name__ == "__main__":
    main()
