"""A rerun starts from the last completed level's written product: the levels before it are not run again."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from gmsdask.controller import ProcessController
from gmsdask.io.cube import open_cube
from gmsdask.levels import LevelRegistry, default_registry

from .thumbnail_jobs import thumbnail_job

#: L1C products written and kept; one of the tiles the thumbnails touch (each more tile costs seconds of L2C)
_OPTIONS = {"exec_L1CP": (True, True, False), "target_mgrs_tiles": ("55HEV",)}


def _counting(registry: LevelRegistry, calls: Counter, fail: str | None = None) -> LevelRegistry:
    """``registry`` whose levels count their runs; level ``fail`` raises."""
    for level in registry.levels:
        def run(scene, ctx, _real=level.run, _name=level.name):
            calls[_name] += 1
            if _name == fail:
                raise RuntimeError(f"injected failure in {_name}")
            return _real(scene, ctx)

        registry = registry.with_level(replace(level, run=run))
    return registry


def _cubes(catalog, job_id) -> dict[str, dict[str, np.ndarray]]:
    """Every cube of the job as ``{path: {variable: values}}`` (time slots sorted by scene id)."""
    cubes = {}
    for path in sorted({t.path for t in catalog.tiles_written(job_id)}):
        cube = open_cube(path).sortby("scene_id")
        cubes[path.rsplit("/", 1)[-1]] = {name: cube[name].values for name in cube.data_vars}
    return cubes


def test_a_rerun_starts_from_the_written_l1c_product(tmp_path, in_process_client):
    catalog, job_id, cfg = thumbnail_job(tmp_path / "resumed", **_OPTIONS)
    first_calls: Counter = Counter()
    first = ProcessController(job_id, registry=_counting(default_registry(), first_calls, fail="L2A"),
                              db_url=cfg.db_url)
    first.run_all_processors()
    assert first.DB_job_record.status == "failed"  # every scene stopped at L2A
    products = sorted((cfg.path_procdata_scenes / f"job_{job_id}").glob("*/L1C.zarr"))
    assert len(products) == 2 and first_calls["L1C"] == 2

    rerun_calls: Counter = Counter()
    rerun = ProcessController(job_id, registry=_counting(default_registry(), rerun_calls), db_url=cfg.db_url)
    rerun.run_all_processors()
    assert rerun.DB_job_record.status == "finished"
    # L1A..L1C are neither rebuilt nor recomputed: both scenes go on from their L1C products
    assert rerun_calls == Counter({"L2A": 2, "L2B": 2, "L2C": 2})

    # the same cubes as a job that ran through at once
    straight_catalog, straight_id, straight_cfg = thumbnail_job(tmp_path / "straight", **_OPTIONS)
    straight = ProcessController(straight_id, db_url=straight_cfg.db_url)
    straight.run_all_processors()
    assert straight.DB_job_record.status == "finished"
    resumed, expected = _cubes(catalog, job_id), _cubes(straight_catalog, straight_id)
    assert resumed.keys() == expected.keys() and resumed
    for tile, variables in expected.items():
        assert resumed[tile].keys() == variables.keys()
        for name, values in variables.items():
            # the L1C product stores reflectance as int16 x 10000 (rounding by up to 0.5e-4), which L2B's band
            # mixing can grow to a few units of that digit; no data stays where it was
            np.testing.assert_allclose(resumed[tile][name], values, rtol=0, atol=5e-4, err_msg=f"{tile} {name}")
            same = np.isclose(resumed[tile][name], values, rtol=0, atol=1e-6, equal_nan=True)
            assert same.mean() > 0.95, f"{tile} {name}: only {same.mean():.1%} of the pixels are the same"
    for controller in (first, rerun, straight):
        controller.shutdown()


def test_the_level_after_a_written_product_reads_it_instead_of_computing_its_levels_again(tmp_path,
                                                                                         in_process_client):
    """With ``exec_L1CP`` writing, L2A starts from the L1C product: its input graphs are the product's reads, not
    L1A..L1C again (which the product's write had already computed once)."""
    catalog, job_id, cfg = thumbnail_job(tmp_path, **_OPTIONS)
    entered: dict[str, object] = {}
    registry = default_registry()
    for level in registry.levels:
        def run(scene, ctx, _real=level.run, _name=level.name):
            entered.setdefault(_name, scene)
            return _real(scene, ctx)
        registry = registry.with_level(replace(level, run=run))
    controller = ProcessController(job_id, registry=registry, db_url=cfg.db_url)
    controller.run_all_processors()
    assert controller.DB_job_record.status == "finished"
    controller.shutdown()

    def layers(level: str) -> list[str]:
        group = next(node for node in entered[level].subtree if node.ds.data_vars)
        band = next(var for var in group.ds.data_vars.values() if var.chunks is not None)
        return [str(name) for name in band.data.__dask_graph__().layers]

    # L2A's input: the Zarr read (and its decode to float32), nothing of L1A..L1C
    assert len(layers("L2A")) <= 2 and not any(name.startswith("warp") for name in layers("L2A")), layers("L2A")
    # L2A's output was not written: L2B's input is L2A's warps on top of that read, lazily
    assert any(name.startswith("warp") for name in layers("L2B")), layers("L2B")
