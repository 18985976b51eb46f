"""The level contract: one registry feeds the controller, the CLI and the statistics; plugins need no controller
edit; the whole GeoMultiSens controller API; reference planning for the whole job."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from gmsdask import set_config
from gmsdask.catalog import SceneRecord
from gmsdask.controller import ProcessController
from gmsdask.errors import ConfigError
from gmsdask.levels import LevelOutcome, default_registry
from gmsdask.levels.coreg_reference import ANCHOR_ROLE, REFERENCE_ROLE, select_reference

from .conftest import REPO
from .thumbnail_jobs import thumbnail_job
from .dummy_level import DUMMY

@pytest.fixture
def job(tmp_path):
    return thumbnail_job(tmp_path)


@pytest.fixture
def client(in_process_client):
    return in_process_client


def test_registry_orders_levels_and_refuses_duplicates_and_unknown_names():
    registry = default_registry()
    assert registry.names == ("L1A", "L1B", "L1C", "L2A", "L2B", "L2C")
    with_dummy = registry.with_level(DUMMY)
    assert with_dummy.names == ("L1A", "L1B", "L1C", "L1D", "L2A", "L2B", "L2C")
    assert [level.name for level in with_dummy.upto("L1D")] == ["L1A", "L1B", "L1C", "L1D"]
    with pytest.raises(ConfigError, match="L3A.*allowed: L1A"):
        registry["L3A"]
    from gmsdask.levels import LevelRegistry

    with pytest.raises(ConfigError, match="given twice: L1A"):
        LevelRegistry((*registry.levels, registry["L1A"]))


def test_a_plugin_level_runs_in_a_job_and_is_recorded(job, client):
    catalog, job_id, cfg = job
    controller = ProcessController(job_id, registry=default_registry().with_level(DUMMY), db_url=cfg.db_url)
    results = controller.run_all_processors()
    assert all(r.level_reached == "L2C" for r in results), results
    assert controller.DB_job_record.status == "finished"
    for result in results:
        assert catalog.level_status(job_id, result.scene_id)["L1D"] == "done"
    statistics = controller.update_DB_job_statistics()
    assert statistics["L1D"]["done"] == 2
    assert hasattr(controller, "run_L1D_processing") and "dummy level" in controller.run_L1D_processing.__doc__
    controller.shutdown()


def test_a_plugin_level_is_listed_by_the_cli(tmp_path):
    env = dict(os.environ, GMSDASK_LEVEL_PLUGINS="tests.dummy_level:DUMMY", COLUMNS="200")
    shown = subprocess.run([sys.executable, "-m", "gmsdask.cli", "run", "--help"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "L1D = a dummy level added by a test" in " ".join(shown.stdout.split())
    broken = dict(env, GMSDASK_LEVEL_PLUGINS="tests.dummy_level:NOT_THERE")
    failed = subprocess.run([sys.executable, "-m", "gmsdask.cli", "run", "--help"], cwd=REPO, env=broken,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "tests.dummy_level:NOT_THERE" in failed.stderr


def test_geomultisens_controller_api(job, client):
    catalog, job_id, cfg = job
    controller = ProcessController(job_id, db_url=cfg.db_url)
    assert {"run_L1A_processing", "run_L2C_processing", "add_local_availability", "benchmark",
            "create_job_summary", "get_DB_objects", "update_DB_job_record", "update_DB_job_statistics",
            "DB_job_record", "logger", "sceneids_failed", "stop", "shutdown"} <= set(dir(controller))
    controller.run_L1A_processing()
    # L1B has to process both scenes, handed over as their lazy L1A trees
    trees = controller.get_DB_objects("L1B")
    assert len(trees) == 2 and all("r30m" in tree.children for tree in trees)
    blocks = controller.get_DB_objects("L1B", parallLev="tiles", blocksize=(32, 32))
    assert len(blocks) > 2 and all(b[2]["r15m" if "r15m" in b[2].children else "r30m"].ds.sizes["x"] <= 32
                                   for b in blocks)
    assert controller.get_DB_objects("L1A") == []  # already done
    timings = controller.benchmark()
    assert set(timings["level"]) == {"L1B", "L1C", "L2A", "L2B", "L2C"} and (timings["seconds"] >= 0).all()
    summary = controller.create_job_summary()
    assert summary.by_platform.set_index("platform")["succeeded"].to_dict() == {"LANDSAT_5": 1, "LANDSAT_8": 1}
    record = controller.update_DB_job_record()
    assert record.status == "finished"
    # a scene whose two subsystems disagree is reset to the lower level
    scene_id = record.scene_ids[0]
    available = controller.add_local_availability([{"scene_ID": scene_id, "proc_level": "L2C"},
                                                   {"scene_ID": scene_id, "proc_level": "L1A"}])
    assert [entry["proc_level"] for entry in available] == ["L1A", "L1A"]
    assert set(catalog.level_status(job_id, scene_id)) == {"L1A"}
    controller.shutdown()


def _record(scene_id, platform, when, cloud, footprint="POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"):
    return SceneRecord(scene_id, f"P{scene_id}", f"/p/{scene_id}", platform, "", "L1", when, cloud, footprint,
                       ["33UUU"], when)


def test_reference_planning_is_consistent_for_the_whole_job():
    cfg = set_config()
    june = datetime(2024, 6, 1, tzinfo=timezone.utc)
    s2_clear = _record(1, "SENTINEL_2B", june, 5.0)
    s2_cloudy = _record(2, "SENTINEL_2A", june.replace(day=11), 60.0)
    landsat = _record(3, "LANDSAT_9", june.replace(day=3), 2.0)
    far = _record(4, "LANDSAT_8", june.replace(day=1, month=12), 1.0)  # half a year off season
    elsewhere = _record(5, "LANDSAT_8", june, 1.0, "POLYGON((5 5, 6 5, 6 6, 5 6, 5 5))")
    plan = select_reference([landsat, s2_cloudy, s2_clear, far, elsewhere], [], cfg)
    # the clear Sentinel-2 scene is the anchor: never shifted itself, the reference of the scenes it fits
    assert plan[s2_clear.id] == [(ANCHOR_ROLE, s2_clear)]
    assert plan[landsat.id] == [(REFERENCE_ROLE, s2_clear)] and plan[s2_cloudy.id] == [(REFERENCE_ROLE, s2_clear)]
    assert far.id not in plan and elsewhere.id not in plan  # nothing fits them, and they are no reference
    # an already catalogued clear Sentinel-2 scene of the area is preferred over making one of the job's own
    catalogued = _record(9, "SENTINEL_2A", june.replace(year=2023), 0.5)
    plan = select_reference([landsat, s2_clear], [catalogued], cfg)
    assert plan == {landsat.id: [(REFERENCE_ROLE, catalogued)], s2_clear.id: [(REFERENCE_ROLE, catalogued)]}
    # a job without the reference platform co-registers to its own best scene rather than not at all
    clearest = replace(far, acquisition_time=june)
    plan = select_reference([landsat, clearest], [], cfg)
    assert plan == {landsat.id: [(REFERENCE_ROLE, clearest)], clearest.id: [(ANCHOR_ROLE, clearest)]}
    assert select_reference([landsat, s2_clear], [], cfg.replace(skip_coreg=True)) == {}


def test_level_outcome_work_runs_on_the_cluster_before_finish(job, client):
    catalog, job_id, cfg = job
    import dask

    calls = []

    def run_with_work(scene, ctx):
        work = dask.delayed(lambda: ctx.record.product_id)()
        return LevelOutcome(scene, work=(work,),
                            finish=lambda results: calls.append(results) or LevelOutcome(scene, note="finished"))

    registry = default_registry()
    controller = ProcessController(job_id, registry=registry.with_level(replace(registry["L1B"], run=run_with_work)),
                                   db_url=cfg.db_url)
    controller.run_L1B_processing()
    assert sorted(c[0] for c in calls) == sorted(catalog.scene(i).product_id for i in catalog.job(job_id).scene_ids)
    assert all(catalog.level_status(job_id, i)["L1B"] == "done" for i in catalog.job(job_id).scene_ids)
    controller.shutdown()


def test_docs_levels_table_is_generated_from_the_registry():
    from gmsdask.levels.docs import levels_markdown

    text = (REPO / "docs" / "levels.md").read_text()
    assert text == levels_markdown(), "docs/levels.md is stale: python -m gmsdask.levels.docs > docs/levels.md"
    for level in default_registry():
        assert f"| {level.name} | {level.title} |" in text
