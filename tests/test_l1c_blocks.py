"""L1C computes on blocks of >= PROCESSING_BLOCK_PX whatever the chunks the scene was read with (the cube's
small tiling chunks made thousands of tiny tasks), and the result does not depend on those chunks."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from gmsdask import set_config
from gmsdask.io import open_scene
from gmsdask.levels import l1c
from gmsdask.levels._contract import LevelContext
from gmsdask.synthetic import write_sentinel2_l1c

from .atmosphere_fixtures import atmosphere_cache  # noqa: F401


def test_chunks_are_merged_into_whole_runs_of_at_least_the_minimum():
    assert l1c._merged((64,) * 19 + (48,), 1024) == (1024, 240)
    assert l1c._merged((600, 600), 1024) == (1200,)
    assert l1c._merged((2048, 100), 1024) == (2048, 100)


def test_l1c_on_small_chunks_equals_l1c_on_large_chunks(tmp_path, atmosphere_cache):
    product = write_sentinel2_l1c(tmp_path / "s2", platform="SENTINEL_2B", tile="33UUU", size=(600, 600), seed=11,
                                  acquisition_time=datetime(2024, 6, 1, 10, 20, tzinfo=timezone.utc), aot550=0.2,
                                  cloud_fraction=0.2)
    ctx = LevelContext(record=None, config=set_config(path_cache=atmosphere_cache), job_id=1)
    small = l1c.run(open_scene(product.path, chunks=(64, 64)), ctx)
    large = l1c.run(open_scene(product.path, chunks=(600, 600)), ctx)
    band = small.scene["r10m"].ds["B04"].data
    assert band.chunks == ((600,), (600,)) and len(band.__dask_graph__()) < 5000
    assert small.facts == large.facts and small.facts["aot_source"] == "dark_dense_vegetation"
    for group, name in (("r10m", "B04"), ("r20m", "B12"), ("r20m", "fmask"), ("r60m", "ac_uncertainty_B01")):
        np.testing.assert_array_equal(small.scene[group].ds[name].values, large.scene[group].ds[name].values)
