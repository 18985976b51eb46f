"""L1C..L2C of real scenes on a distributed (in-process) client: the eager steps of L1C (masks statistics,
aerosol and water vapour reductions) must not submit parts of the graph that the lazy steps later submit again
with different task specs (the scheduler's "Detected different run_spec" warning)."""

from __future__ import annotations

import logging

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController

from .conftest import data_path
from .thumbnail_jobs import LANDSAT_A


def test_l1c_to_l2c_on_a_distributed_client_logs_no_run_spec_conflict(tmp_path, in_process_client, caplog):
    # one real Landsat-8 thumbnail (60 x 60 pixels of ~4 km; the thumbnail job's settings) through every level
    cfg = set_config(db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}", path_procdata_MGRS=tmp_path / "cubes",
                     path_procdata_scenes=tmp_path / "scenes", path_job_logs=tmp_path / "logs",
                     target_gsd=3660.0, mgrs_pixel_buffer=0, tiling_block_size_XY=(64, 64))
    catalog = Catalog.from_config(cfg)
    job_id = catalog.create_job(catalog.add_products([data_path(*LANDSAT_A)]), cfg)
    distributed_log = logging.getLogger("distributed")  # it does not propagate to the root logger caplog watches
    distributed_log.addHandler(caplog.handler)
    try:
        controller = ProcessController(job_id, db_url=cfg.db_url)
        results = controller.run_all_processors()
        controller.shutdown()
    finally:
        distributed_log.removeHandler(caplog.handler)
    assert all(r.level_reached == "L2C" for r in results), results
    status = catalog.level_status(job_id, results[0].scene_id)
    assert len(results) == 1 and status["L1C"] == "done", status
    conflicts = [r.getMessage() for r in caplog.records if "Detected different `run_spec`" in r.getMessage()]
    assert not conflicts, conflicts[:3]
