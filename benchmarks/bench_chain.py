"""Issue 13's figures: the whole chain against one I/O floor, 1 vs 2 workers, memory vs scene area, many small
scenes, a Landsat-9 scene to every tile it touches. ``python -m benchmarks chain [--scale S]`` (``make bench``).

Every figure is a ratio of two times (or sizes) measured in the same run, printed beside its target and written
to ``benchmarks/results/chain[_scale<S>].json`` with the inputs, the per-level shares and the machine; the Dask
performance report of the end-to-end run is kept beside it. ``--scale`` is the fraction of a tile's side
(1.0: the full 10980 x 10980 tile; 0.25: 1/16 of its area); the quarter tiles of the memory and scaling figures
are half that side. ``--end-to-end`` runs the end-to-end job alone (``chain_end_to_end[_scale<S>].json``).
Synthetic inputs are written once per scale into ``benchmarks/.cache``.

- End to end: one Sentinel-2 L1C (13 bands) through L1A..L2C to the 30 m harmonized cube, L1B against a
  second acquisition of the tile (``coreg_grid_res`` 200, global shift), warm lookup-table cache, 2 worker
  processes; against the floor (``floor.py``). Per-level shares of worker time from Dask's profile (``jobs.py``).
- Cold lookup tables: what building the 6S tables of that scene into an empty cache costs (6S runs, CPU seconds,
  wall): built in full the first time, later from a rebuilt sample of the tables' nodes (``cold_lut.py``).
- Scaling: a job of several quarter-tile scenes on 1 and on 2 single-threaded worker processes.
- Memory: peak resident memory of the busiest worker, full-size scene vs quarter-size scene (same chain).
- Many scenes: a job of small scenes: the client's CPU (opening, graph building and submission, catalogue)
  as a share of the run's wall time, and the catalogue's seconds per scene.
- Landsat: one Landsat-9 scene (7 reflective bands at 30 m) to the cubes of every tile it touches vs its floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from . import inputs
from .cold_lut import cold_lookup_tables
from .common import RESULTS
from .floor import io_floor
from .jobs import JobRun, cluster, run_job

#: figure -> (comparison, target); the figure is met when ``value <comparison> target``.
TARGETS: dict[str, tuple[str, float]] = {
    "end_to_end_vs_floor": ("<=", 1.5),
    "scaling_2_vs_1_workers": (">=", 1.8),
    "memory_full_vs_quarter": ("<=", 1.2),
    "many_scenes_client_share": ("<", 0.05),
    "catalogue_ms_per_scene": ("<", 50.0),
    "landsat_vs_floor": ("<=", 1.5),
}
#: figures reported without a target
REPORTED = ("l1b_share", "l1c_share", "cold_lut_cpu_s", "cold_lut_wall_s", "many_scenes_client_process_share")
#: L1B with its default global shift (coreg_local = false) on the issue's grid
_CHAIN_OPTIONS = {"coreg_grid_res": 200, "target_gsd": 30.0}


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Records the wall seconds of the block as ``phases[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - started


def _met(value: float, comparison: str, target: float) -> bool:
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[comparison]


def _job(products: Sequence[Path], folder: Path, workers: int, processes: bool, **kwargs: Any) -> JobRun:
    """One job; run again when its 6S tables were cold (the first ``make bench`` after a fresh clone, or after the
    tables changed), since every figure is of a chain with warm tables. The cost of cold tables is measured
    separately (``cold_lut.py``)."""
    attempts = (folder, folder.with_name(folder.name + "_warm"))
    for attempt in attempts:
        with cluster(workers, processes=processes) as client:
            run = run_job(client, products, attempt, **kwargs, **_CHAIN_OPTIONS)
        if not run.sixs_runs or attempt is attempts[-1]:
            break
        print(f"  {attempt.name}: {run.sixs_runs} 6S runs built this job's tables; running it again with them warm")
    return run


def _summary(run: JobRun) -> dict[str, Any]:
    return {k: v for k, v in asdict(run).items() if k != "cubes"} | {"cubes": len(run.cubes),
                                                                      "utilization": run.utilization}


def run_suite(scale: float = 1.0, *, small_scenes: int = 100, scaling_scenes: int = 4, processes: bool = True,
              results_dir: Path = RESULTS, cold_lut: Callable[[Path], dict[str, Any]] = cold_lookup_tables,
              scratch: Path | None = None, end_to_end_only: bool = False) -> dict[str, Any]:
    """Measure every figure at ``scale`` and write them to ``results_dir``; returns what was written.
    ``end_to_end_only``: the end-to-end job, its floor, level shares and cold tables only (a whole tile's
    figures of the level issues, in minutes instead of the whole suite)."""
    os.environ.setdefault("GMSDASK_CACHE", str(inputs.cache_dir() / "lut"))  # workers inherit it
    name = ("chain_end_to_end" if end_to_end_only else "chain") + ("" if scale == 1.0 else f"_scale{scale:g}")
    results_dir.mkdir(parents=True, exist_ok=True)
    side, quarter = inputs.s2_side(scale), inputs.s2_side(scale / 2)
    started = time.perf_counter()
    main, reference = inputs.sentinel2_scene(side), inputs.sentinel2_scene(side, day=11, cloud_fraction=0.0)
    if end_to_end_only:
        return _end_to_end_only(name, scale, main.path, reference.path, results_dir, cold_lut, scratch, processes)
    quarter_main = inputs.sentinel2_scene(quarter)
    quarter_reference = inputs.sentinel2_scene(quarter, day=11, cloud_fraction=0.0)
    scaling = [inputs.sentinel2_scene(quarter, day=1 + 5 * i) for i in range(scaling_scenes)]
    small = inputs.small_scenes(small_scenes)
    landsat = inputs.landsat9_scene(inputs.landsat_size(scale))
    details: dict[str, Any] = {"inputs_write_s": time.perf_counter() - started}
    figures: dict[str, float] = {}
    phases: dict[str, float] = {}
    details["phase_wall_s"] = phases
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        root = Path(folder)
        with _timed(phases, "cold_lut"):
            figures |= _cold_figures(cold_lut(main.path), details)
        report_html = results_dir / f"{name}_dask_report.html"
        with _timed(phases, "end_to_end"):
            full = _job([main.path], root / "full", 2, processes, reference=reference.path, report_html=report_html)
        with _timed(phases, "end_to_end_floor"):
            floor = io_floor([main.path], full.cubes, root)
        figures["end_to_end_vs_floor"] = full.seconds / floor["floor_s"]
        figures["l1b_share"], figures["l1c_share"] = full.profile_share["L1B"], full.profile_share["L1C"]
        details["end_to_end"] = _summary(full) | {"floor": floor}

        with _timed(phases, "quarter"):
            part = _job([quarter_main.path], root / "quarter", 2, processes, reference=quarter_reference.path)
        figures["memory_full_vs_quarter"] = max(full.worker_peak_rss_mib) / max(part.worker_peak_rss_mib)
        details["quarter"] = _summary(part)

        with _timed(phases, "scaling_1_worker"):
            one = _job([p.path for p in scaling], root / "w1", 1, processes)
        with _timed(phases, "scaling_2_workers"):
            two = _job([p.path for p in scaling], root / "w2", 2, processes)
        figures["scaling_2_vs_1_workers"] = one.seconds / two.seconds
        details["scaling"] = {"1_worker": _summary(one), "2_workers": _summary(two)}

        with _timed(phases, "many_scenes"):
            many = _job([p.path for p in small], root / "many", 2, processes)
        figures["many_scenes_client_share"] = many.client_cpu_s / many.seconds
        # the whole client process: its scene threads, Dask's client loop and the LocalCluster's scheduler
        figures["many_scenes_client_process_share"] = many.client_process_cpu_s / many.seconds
        figures["catalogue_ms_per_scene"] = 1000.0 * many.catalog_s / many.scenes
        details["many_scenes"] = _summary(many) | {"ingest_ms_per_scene": 1000.0 * many.ingest_s / many.scenes}

        with _timed(phases, "landsat"):
            scene = _job([landsat.path], root / "landsat", 2, processes)
        with _timed(phases, "landsat_floor"):
            landsat_floor = io_floor([landsat.path], scene.cubes, root)
        figures["landsat_vs_floor"] = scene.seconds / landsat_floor["floor_s"]
        details["landsat"] = _summary(scene) | {"floor": landsat_floor}
    details["suite_wall_s"] = time.perf_counter() - started
    written = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "scale": scale, "sentinel2_side_px": side, "quarter_side_px": quarter,
        "landsat_size_px": list(inputs.landsat_size(scale)), "small_scenes": small_scenes,
        "scaling_scenes": scaling_scenes, "worker_processes": processes,
        "figures": {key: {"value": figures[key], "target": f"{comparison} {target:g}",
                          "met": _met(figures[key], comparison, target)}
                    for key, (comparison, target) in TARGETS.items()}
                   | {key: {"value": figures[key], "target": "report"} for key in REPORTED},
        "level_shares": full.profile_share, "details": details,
        "dask_report": report_html.name,
    }
    (results_dir / f"{name}.json").write_text(json.dumps(written, indent=2, default=str))
    _print(name, written)
    return written


def _cold_figures(cold: dict[str, Any], details: dict[str, Any]) -> dict[str, float]:
    """The cold tables' figures; how they were measured goes to ``details``."""
    details["cold_lut_method"] = cold.get("cold_lut_method", "full build")
    return {key: value for key, value in cold.items() if key != "cold_lut_method"}


def _end_to_end_only(name: str, scale: float, product: Path, reference: Path, results_dir: Path,
                     cold_lut: Callable[[Path], dict[str, Any]], scratch: Path | None,
                     processes: bool) -> dict[str, Any]:
    figures: dict[str, float] = {}
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        root = Path(folder)
        figures |= _cold_figures(cold_lut(product), details)
        report_html = results_dir / f"{name}_dask_report.html"
        full = _job([product], root / "full", 2, processes, reference=reference, report_html=report_html)
        floor = io_floor([product], full.cubes, root)
    figures["end_to_end_vs_floor"] = full.seconds / floor["floor_s"]
    figures["l1b_share"], figures["l1c_share"] = full.profile_share["L1B"], full.profile_share["L1C"]
    written = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "scale": scale, "sentinel2_side_px": inputs.s2_side(scale), "worker_processes": processes,
        "figures": {key: ({"value": figures[key], "target": f"{TARGETS[key][0]} {TARGETS[key][1]:g}",
                           "met": _met(figures[key], *TARGETS[key])} if key in TARGETS
                          else {"value": figures[key], "target": "report"})
                    for key in figures if key in TARGETS or key in REPORTED},
        "level_shares": full.profile_share, "details": details | {"end_to_end": _summary(full) | {"floor": floor}},
        "dask_report": report_html.name,
    }
    (results_dir / f"{name}.json").write_text(json.dumps(written, indent=2, default=str))
    _print(name, written)
    return written


def _machine() -> dict[str, Any]:
    """The machine a result was measured on, with its load at the end of the run."""
    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_end": os.getloadavg()}


def _print(name: str, written: dict[str, Any]) -> None:
    print(f"== {name} (scale {written['scale']:g}: Sentinel-2 {written['sentinel2_side_px']} px side)")
    for key, figure in written["figures"].items():
        mark = "" if "met" not in figure else ("  met" if figure["met"] else "  NOT MET")
        print(f"  {key:<28} {figure['value']:>10.3f}   target {figure['target']}{mark}")
    print("  level shares of worker time: " + ", ".join(f"{k} {v:.0%}" for k, v in written["level_shares"].items()))
    details = written.get("details", {})
    if "suite_wall_s" in details:
        phases = ", ".join(f"{k} {v / 60:.1f}" for k, v in details["phase_wall_s"].items())
        print(f"  suite wall time {details['suite_wall_s'] / 60:.1f} min (target < 20; phases in min: {phases})")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chain", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of a tile's side (default 1.0)")
    parser.add_argument("--quick", action="store_true", help="scale 0.125, 10 small scenes, 2 scaling scenes")
    parser.add_argument("--small-scenes", type=int, default=None, help="scenes of the many-scenes job (100)")
    parser.add_argument("--scaling-scenes", type=int, default=None, help="scenes of the scaling job (4)")
    parser.add_argument("--end-to-end", action="store_true",
                        help="only the end-to-end job: floor, level shares, cold lookup tables")
    args = parser.parse_args(argv)
    scale = 0.125 if args.quick else args.scale
    small = args.small_scenes or (10 if args.quick else 100)
    scaling = args.scaling_scenes or (2 if args.quick else 4)
    return run_suite(scale, small_scenes=small, scaling_scenes=scaling, end_to_end_only=args.end_to_end)


if __name__ == "__main__":
    main()
