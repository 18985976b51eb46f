"""The cold-cache cost of one scene's 6S lookup tables, reported beside the warm chain (issue 13).

A whole tile's tables are 2640 6S runs: ~600-660 CPU s, ~6 min of wall time on 2 cores, more than a quarter of
``make bench``. What they cost depends on the tables' nodes and on 6S, which change rarely, so:

- **Full** (the first run, whenever the tables changed, or ``sample_per_band=0``): the scene's tables are built
  into an empty cache by L1C itself, as the job runs it (its masks, then the atmosphere retrieved over the
  masked scene), and timed (the wall time includes L1C's eager masks and retrieval sums); the nodes it built
  are listed in a manifest in the warm cache (``<cache>/cold_tables/<product>.l1c.json``) and copied there, so
  the jobs that follow find them.
- **Sampled** (later runs): ``sample_per_band`` geometry nodes of each band of that manifest (every AOT node of
  each, i.e. all its 6S runs) are built again into an empty cache, on 2 processes, and the cost is scaled to the
  whole manifest per band: CPU = sum over bands of (nodes of the band x mean CPU per sampled node of the band),
  with its standard error from the spread of the sampled nodes. Wall time = that CPU over the sample's own
  parallel efficiency (CPU / wall). 6S is deterministic, so a node rebuilt here must land under the same cache
  key as the manifest's: if it does not, the tables changed and the full build runs instead.

The per-node cost varies little within a band (it follows the band's width and the aerosol load, not the sun
and view angles), so 2 nodes per band (26 of ~310 nodes for Sentinel-2) give the cost within a few per cent in
half a minute; the JSON says which method measured it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cold_lookup_tables"]

#: Geometry nodes rebuilt per band in a sampled measurement.
SAMPLE_PER_BAND = 2


def _manifest_path(warm: Path, product: Path) -> Path:
    # "l1c": manifests of tables built by ``correct_scene`` on the unmasked scene (before 2026-11-29) are not used
    return warm / "cold_tables" / f"{product.name}.l1c.json"


def _built_nodes(cache: Path) -> list[dict[str, Any]]:
    """Every table node under ``cache``: its key (platform, band, atmosphere, geometry) and its file, relative."""
    nodes = []
    for path in sorted(cache.glob("sixs/*/*.npz")):
        with np.load(path) as stored:
            nodes.append({"key": json.loads(str(stored["key"])), "file": str(path.relative_to(cache))})
    return nodes


def _full(product: Path, warm: Path) -> dict[str, Any]:
    from gmsdask import set_config
    from gmsdask.io import open_scene
    from gmsdask.levels import LevelContext, l1c

    with tempfile.TemporaryDirectory() as empty:
        # L1C itself, as the job runs it: its tables follow the atmosphere retrieved over the masked scene (an
        # unmasked scene gave another water vapour, so the job that followed built its tables again)
        context = LevelContext(record=None, config=set_config(path_cache=empty), job_id=0)
        started = time.perf_counter()
        facts = l1c.run(open_scene(product), context).facts
        wall = time.perf_counter() - started
        nodes = _built_nodes(Path(empty))
        shutil.copytree(empty, warm, dirs_exist_ok=True)  # the runs after this one find the tables
    figures = {"cold_lut_6s_runs": facts["sixs_runs"], "cold_lut_cpu_s": facts["sixs_cpu_seconds"],
               "cold_lut_wall_s": wall}
    manifest = _manifest_path(warm, product)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "figures": figures, "nodes": nodes}, indent=1))
    return figures | {"cold_lut_method": "full build"}


def _rebuild_node(key: dict[str, Any]) -> tuple[str, float, str]:
    """Build one node (all its AOT runs) into an empty cache, in this process: ``(band, CPU s, its file)``."""
    from gmsdask.atmosphere.lut import GeometryGrid, build_tables
    from gmsdask.atmosphere.sixs import AtmosphereState

    atmosphere = AtmosphereState(0.0, key["water_vapour_gcm2"], key["ozone_cm_atm"], key["elevation_km"])
    grid = GeometryGrid((key["sun_zenith"],), (key["view_zenith"],), (key["relative_azimuth"],))
    with tempfile.TemporaryDirectory() as empty:
        _, stats = build_tables(key["platform"], [key["band"]], atmosphere, grid, cache_dir=empty)
        built = _built_nodes(Path(empty))
    return key["band"], stats.cpu_seconds, built[0]["file"] if len(built) == 1 else ""


def _sampled(nodes: list[dict[str, Any]], per_band: int, seed: int) -> dict[str, Any] | None:
    """The cost estimated from ``per_band`` rebuilt nodes of each band; None when a rebuilt node's cache file
    differs from the manifest's (the tables changed since the manifest was made)."""
    by_band: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        by_band.setdefault(node["key"]["band"], []).append(node)
    chosen = random.Random(seed)
    sample = [node for band in sorted(by_band) for node in chosen.sample(by_band[band], min(per_band,
                                                                                            len(by_band[band])))]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        rebuilt = list(pool.map(_rebuild_node, [node["key"] for node in sample]))
    wall = time.perf_counter() - started
    if any(file != node["file"] for node, (_, _, file) in zip(sample, rebuilt)):
        return None
    cpu_of: dict[str, list[float]] = {}
    for band, cpu, _ in rebuilt:
        cpu_of.setdefault(band, []).append(cpu)
    total = sum(len(by_band[band]) * float(np.mean(cpu)) for band, cpu in cpu_of.items())
    # stratified estimate's variance: sum of N_b^2 s_b^2 / n_b (finite-population factor left out: conservative)
    variance = sum(len(by_band[band]) ** 2 * float(np.var(cpu, ddof=1)) / len(cpu)
                   for band, cpu in cpu_of.items() if len(cpu) > 1)
    sample_cpu = sum(cpu for _, cpu, _ in rebuilt)
    runs_per_node = len(nodes[0]["key"]["aot"])
    return {"cold_lut_6s_runs": len(nodes) * runs_per_node, "cold_lut_cpu_s": total,
            "cold_lut_wall_s": total * wall / sample_cpu,
            "cold_lut_method": f"sampled: {len(sample)} of {len(nodes)} nodes rebuilt ({len(sample) * runs_per_node} "
                               f"6S runs, {sample_cpu:.1f} CPU s in {wall:.1f} s), standard error "
                               f"{variance ** 0.5:.1f} CPU s"}


def cold_lookup_tables(product: Path, *, sample_per_band: int = SAMPLE_PER_BAND, seed: int = 0) -> dict[str, Any]:
    """The cost of building ``product``'s 6S tables from an empty cache: ``cold_lut_6s_runs``,
    ``cold_lut_cpu_s`` (6S CPU seconds), ``cold_lut_wall_s`` (on this machine's 2 cores) and
    ``cold_lut_method`` (how it was measured). Leaves the tables in the warm cache (``$GMSDASK_CACHE``)."""
    warm = Path(os.environ["GMSDASK_CACHE"])
    manifest = _manifest_path(warm, product)
    if sample_per_band > 0 and manifest.exists():
        nodes = json.loads(manifest.read_text())["nodes"]
        if nodes and all((warm / node["file"]).exists() for node in nodes):
            estimate = _sampled(nodes, sample_per_band, seed)
            if estimate is not None:
                return estimate
    return _full(product, warm)
