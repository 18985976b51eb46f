"""L1C's eager step (the aerosol and water-vapour reduction of the scene) and the lazy result it feeds: computed
under keys of its own, so a later submission of the lazy graph (the scheduler sees it fused differently) never
meets a key of the eager one (distributed's "Detected different `run_spec`" warning, dask/dask#9888). The key
test fails on the code before the fix (they shared the reader's and Fmask's keys); the chain test checks the
log of a whole L1C..L2C job on an in-process cluster.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph
from dask.local import get_sync

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.io import open_scene
from gmsdask.levels import l1c
from gmsdask.levels._contract import LevelContext
from gmsdask.synthetic import write_sentinel2_l1c

from .atmosphere_fixtures import atmosphere_cache  # noqa: F401
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


class _RecordingScheduler:
    """A synchronous scheduler that remembers the keys of every computation it was asked for, call by call."""

    def __init__(self) -> None:
        self.calls: list[set] = []

    def __call__(self, dsk, keys, **kwargs):
        graph = dsk.__dask_graph__() if hasattr(dsk, "__dask_graph__") else dsk  # dask passes an expression
        self.calls.append(set(graph.keys()))
        return get_sync(dsk, keys, **kwargs)


def test_l1c_eager_reduction_shares_no_key_with_its_lazy_result(tmp_path, atmosphere_cache):
    """L1C computes twice before its lazy result is submitted: the masks (kept, so Fmask runs once), then the
    aerosol/water-vapour reduction. The reduction runs under keys of its own; of the masks' computation the lazy
    result holds the masks as data, so no task of either is submitted again under the same key."""
    product = write_sentinel2_l1c(tmp_path / "s2", platform="SENTINEL_2B", tile="33UUU", size=(300, 300), seed=11,
                                  acquisition_time=datetime(2024, 6, 1, 10, 20, tzinfo=timezone.utc), aot550=0.2,
                                  cloud_fraction=0.2)
    ctx = LevelContext(record=None, config=set_config(path_cache=atmosphere_cache), job_id=1)
    recorder = _RecordingScheduler()
    with dask.config.set(scheduler=recorder):
        outcome = l1c.run(open_scene(product.path, chunks=(150, 150)), ctx)
    assert len(recorder.calls) == 2, "expected two eager computations: the masks, then the aerosol reduction"
    masks, reduction = recorder.calls
    arrays = [v.data for node in outcome.scene.subtree for v in node.ds.data_vars.values()
              if isinstance(v.data, da.Array)]
    lazy_graph = dict(HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays)))
    assert len(lazy_graph) > 100 and not reduction & set(lazy_graph), sorted(map(str, reduction & set(lazy_graph)))[:5]
    held = {key for key in masks & set(lazy_graph) if isinstance(lazy_graph[key], np.ndarray)}
    # the Fmask classes and confidence blocks, as data
    assert {str(key[0]).split("-")[0].strip("_") for key in held} == {"classes_block", "confidence_block"}, held
