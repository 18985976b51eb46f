"""The cold 6S tables' cost in ``make bench``: rebuilt from a sample of the manifest's nodes, with real 6S runs,
and refused (so that the full build runs) when the tables changed since the manifest was made."""

from __future__ import annotations

from benchmarks import cold_lut
from gmsdask import set_config
from gmsdask.atmosphere.lut import AOT_NODES, GeometryGrid, build_tables
from gmsdask.atmosphere.sixs import AtmosphereState
from gmsdask.io import open_scene
from gmsdask.levels import LevelContext, l1c
from gmsdask.synthetic import write_sentinel2_l1c


def test_sampled_cost_rebuilds_manifest_nodes_and_notices_changed_tables(tmp_path):
    atmosphere = AtmosphereState(0.0, 1.5, 0.3, 0.1)
    grid = GeometryGrid((30.0,), (0.0, 5.0), (0.0,))
    _, built = build_tables("LANDSAT_9", ["B4"], atmosphere, grid, cache_dir=tmp_path)
    nodes = cold_lut._built_nodes(tmp_path)
    assert len(nodes) == 2 and {n["key"]["view_zenith"] for n in nodes} == {0.0, 5.0}

    every = cold_lut._sampled(nodes, per_band=2, seed=0)
    assert every is not None and every["cold_lut_6s_runs"] == 2 * len(AOT_NODES)
    # every node rebuilt: the estimate is what the rebuild cost, near what the first build cost
    assert 0.5 * built.cpu_seconds < every["cold_lut_cpu_s"] < 2.0 * built.cpu_seconds
    assert every["cold_lut_method"].startswith("sampled: 2 of 2 nodes")

    half = cold_lut._sampled(nodes, per_band=1, seed=0)
    assert half is not None and half["cold_lut_6s_runs"] == 2 * len(AOT_NODES)
    assert 0.5 * built.cpu_seconds < half["cold_lut_cpu_s"] < 2.0 * built.cpu_seconds  # one node x 2

    nodes[0]["file"] = nodes[1]["file"] = "sixs/LANDSAT_9/an-older-layout.npz"  # the tables' keys changed
    assert cold_lut._sampled(nodes, per_band=1, seed=0) is None


def test_a_full_build_leaves_every_table_the_jobs_l1c_needs(tmp_path, monkeypatch):
    """The full build runs L1C as the job does (masks first, then the atmosphere retrieved over the masked scene),
    so the job that follows it in ``make bench`` runs no 6S at all. Built from the unmasked scene, the tables had
    another water vapour, and the first ``make bench`` of a fresh clone timed the job with cold tables."""
    product = write_sentinel2_l1c(tmp_path / "s2", platform="SENTINEL_2B", tile="33UUU", size=(240, 240), seed=5,
                                  acquisition_time="2024-06-01", cloud_fraction=0.3)
    warm = tmp_path / "warm"
    monkeypatch.setenv("GMSDASK_CACHE", str(warm))
    figures = cold_lut.cold_lookup_tables(product.path)
    assert figures["cold_lut_method"] == "full build" and figures["cold_lut_6s_runs"] > 0
    context = LevelContext(record=None, config=set_config(path_cache=warm), job_id=1)
    assert l1c.run(open_scene(product.path), context).facts["sixs_runs"] == 0
