"""L1A's decoded copy (``decode_once``): a scene's JPEG 2000 bands decoded once into a Zarr store of the same
integers, which the later passes read instead of decoding the files again (``gmsdask/io/decoded_copy.py``)."""

from __future__ import annotations

from dataclasses import replace

import dask
import numpy as np
import pytest
import xarray as xr
import zarr
from distributed import Client

from gmsdask import open_cube, set_config
from gmsdask.algorithms.fmask_qa import CLOUD, NODATA
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.io import open_scene
from gmsdask.io.decoded_copy import DecodedCopy
from gmsdask.io.raster import raster_info
from gmsdask.levels import LevelContext, default_registry, l1a, l1c, product_stub
from gmsdask.masks import fmask
from gmsdask.synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

from .atmosphere_fixtures import atmosphere_cache  # noqa: F401

TILE = "33UUU"
CHUNKS = (128, 128)


@pytest.fixture(scope="module")
def s2(tmp_path_factory):
    # the product of test_first_look (its 6S runs are in the test cache)
    return write_sentinel2_l1c(tmp_path_factory.mktemp("copy") / "s2", tile=TILE, size=(600, 600), seed=11,
                               cloud_fraction=0.3, aot550=0.25)


def _rasters(tree: xr.DataTree) -> list:
    return [var.encoding["source_raster"] for node in tree.subtree for var in node.dataset.data_vars.values()
            if "source_raster" in var.encoding]


def _bands(tree: xr.DataTree) -> dict[str, np.ndarray]:
    with dask.config.set(scheduler="threads"):
        return {f"{node.path}/{name}": var.values for node in tree.subtree
                for name, var in node.dataset.data_vars.items() if var.dims == ("y", "x") and var.dtype == np.float32}


def _written(copy: DecodedCopy, tree: xr.DataTree) -> None:
    work = copy.write(_rasters(tree))
    assert work is not None
    with dask.config.set(scheduler="threads"):
        assert work.compute() > 0


def test_the_copy_covers_jpeg2000_bands_of_a_chunk_or_more_at_their_own_grid(s2, tmp_path):
    copy = DecodedCopy(str(tmp_path / "copy.zarr"), CHUNKS)
    rasters = {r.path.rsplit("_", 1)[-1]: r for r in _rasters(open_scene(s2.path, chunks=CHUNKS))}
    assert copy.covers(rasters["B03.jp2"]) and copy.covers(rasters["B11.jp2"])  # 600² and 300² px
    assert not copy.covers(rasters["B01.jp2"])  # 100² px: less than one chunk
    assert not copy.covers(rasters["B03.jp2"].reduced(2))  # an overview read decodes a fraction anyway
    landsat = write_landsat_l1(tmp_path / "l9", platform="LANDSAT_9", location=sentinel2_extent(TILE, (600, 600)),
                               seed=3)
    tif = raster_info(str(next(landsat.path.glob("*_B4.TIF"))))
    assert not copy.covers(tif)  # GeoTIFF decodes about as fast as the copy reads


def test_the_copys_tasks_run_after_every_other_task(s2, tmp_path):
    # scenes started together would otherwise all end their copies together and run their later passes in step
    copy = DecodedCopy(str(tmp_path / "copy.zarr"), CHUNKS)
    work = copy.write(_rasters(open_scene(s2.path, chunks=CHUNKS)))
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        future = client.compute(work)
        assert future.result() > 0
        # the copy's last task, kept while its future is: the scheduler's first priority element is minus the
        # annotated priority (0 for every other task)
        priorities = client.run_on_scheduler(lambda dask_scheduler: [
            ts.priority[0] for key, ts in dask_scheduler.tasks.items() if "decoded-copy-written" in str(key)])
    assert priorities == [10]


def test_reads_take_the_copy_once_it_is_complete_and_the_file_otherwise(s2, tmp_path):
    plain = open_scene(s2.path, chunks=CHUNKS)
    copy = DecodedCopy(str(tmp_path / "copy.zarr"), CHUNKS)
    tree = open_scene(s2.path, chunks=CHUNKS, decoded=copy)
    expected = _bands(plain)
    assert np.isfinite(expected["/r10m/B03"]).mean() > 0.5
    layers = tree["r10m"].ds["B03"].data.dask.layers
    assert any(name.startswith("read-copy-") for name in layers)  # the graph reads the copy
    _written(copy, tree)
    # written but not complete: the reads decode the files
    b03 = copy.array_name(tree["r10m"].ds["B03"].encoding["source_raster"])
    zarr.open_array(copy.location, path=b03, mode="r+")[:] = 0  # mark the copy's values (DN 0: no data)
    assert not copy.complete
    np.testing.assert_array_equal(_bands(tree)["/r10m/B03"], expected["/r10m/B03"])
    # complete: the reads take the copy (here the zeros, proof that the file was not read)
    copy.mark_complete()
    assert np.isnan(_bands(tree)["/r10m/B03"]).all()
    # a copy written again holds the files' integers: every band the same as decoded from its file
    _written(copy, tree)
    assert not copy.complete  # a new copy counts only once it is complete again
    copy.mark_complete()
    decoded = _bands(tree)
    assert decoded.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(decoded[name], values, err_msg=name)


def test_a_deleted_copy_is_never_read(s2, tmp_path):
    copy = DecodedCopy(str(tmp_path / "copy.zarr"), CHUNKS)
    tree = open_scene(s2.path, chunks=CHUNKS, decoded=copy)
    _written(copy, tree)
    copy.mark_complete()
    copy.delete()
    assert not (tmp_path / "copy.zarr").exists()
    # Zarr gives a missing chunk its fill value (0: no data); the reads decode the file instead
    np.testing.assert_array_equal(_bands(tree)["/r20m/B11"], _bands(open_scene(s2.path, chunks=CHUNKS))["/r20m/B11"])


def test_a_copy_must_have_the_scenes_chunks(s2, tmp_path):
    with pytest.raises(ValueError, match="chunks"):
        open_scene(s2.path, chunks=(256, 256), decoded=DecodedCopy(str(tmp_path / "copy.zarr"), CHUNKS))


def _l1a_with_copy(product, tmp_path):
    """L1A of ``product`` with its decoded copy written: the config, the context, the outcome and the copy."""
    cfg = set_config(tiling_block_size_XY=CHUNKS, db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog = Catalog.from_config(cfg)
    (scene_id,) = catalog.add_products([product.path])
    record = catalog.scene(scene_id)
    ctx = LevelContext(record=record, config=cfg, job_id=1, output_dir=tmp_path / "scene")
    outcome = l1a.run(product_stub(record), ctx)
    assert len(outcome.work) == 1 and outcome.finish is not None
    with dask.config.set(scheduler="threads"):
        results = dask.compute(*outcome.work)
    return cfg, ctx, outcome.finish(results), l1a.decoded_copy(ctx)


def test_fmask_reads_its_grid_group_from_the_copy_in_the_chunks_of_the_averaged_bands(s2, tmp_path, monkeypatch):
    """The scene's 10 m chunks of 128 px are 64 px of Fmask's 20 m grid: the 20 m bands are read again from the
    copy in 64 px chunks, so that every input of a Fmask block comes in a block of its own."""
    cfg, _, done, copy = _l1a_with_copy(s2, tmp_path)
    monkeypatch.setattr(fmask, "_STATISTICS_SAMPLES", 5000)
    scene = done.scene
    assert scene["r20m"].ds["B11"].data.chunks == ((128, 128, 44),) * 2
    reduced = l1c._fmask_input(scene, fmask.first_look_m(scene), cfg.chunks, copy)
    twenty = reduced["r20m"].ds
    assert twenty["B11"].data.chunks == reduced["r10m"].ds["B03"].data.chunks == ((64,) * 4 + (44,),) * 2
    assert all(name.startswith(("read-copy-", "_convert_block")) for name in twenty["B11"].data.dask.layers)
    for band in ("B11", "B12", "B8A", "B07"):
        np.testing.assert_array_equal(twenty[band].values, scene["r20m"].ds[band].values)
    # chunks as fine already: nothing read again
    assert l1c._grid_group_in_fine_chunks(reduced, copy, str(s2.path)) is reduced


def test_l1a_decodes_once_and_fmask_reads_its_20m_bands_from_the_copy(s2, tmp_path, monkeypatch):
    cfg, ctx, done, copy = _l1a_with_copy(s2, tmp_path)
    assert copy is not None and copy.complete and copy.location == str(tmp_path / "scene" / "L1A_decoded.zarr")
    assert "decoded" in done.note
    assert all(name.startswith(("read-copy-", "_convert_block"))
               for name in done.scene["r20m"].ds["B11"].data.dask.layers)
    # Fmask's input: its 20 m bands from the copy, the 10 m bands as means of the copy's 2 x 2 pixels on the
    # 20 m grid (no JPEG 2000 decode, not even of an overview)
    monkeypatch.setattr(fmask, "_STATISTICS_SAMPLES", 5000)
    scene = l1c._in_processing_blocks(done.scene)
    reduced = l1c._fmask_input(scene, fmask.first_look_m(scene), cfg.chunks, copy)
    assert any(name.startswith("read-copy-") for name in reduced["r20m"].ds["B11"].data.dask.layers)
    ten, twenty = reduced["r10m"].ds, scene["r20m"].ds
    assert any(name.startswith("read-copy-") for name in ten["B03"].data.dask.layers)
    assert ten.sizes == twenty.sizes and np.array_equal(ten.x.values, twenty.x.values)
    assert ten["B03"].data.chunks == twenty["B11"].data.chunks
    full = scene["r10m"].ds["B03"].values
    expected = full.reshape(full.shape[0] // 2, 2, full.shape[1] // 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(ten["B03"].values, expected, rtol=1e-6)
    saturated = scene["r10m"].ds["saturated"].values
    assert (ten["saturated"].values == saturated.reshape(expected.shape[0], 2, -1, 2).any(axis=(1, 3))).all()
    # and Fmask finds the synthetic clouds from them
    look = open_scene(s2.path, overview_m=fmask.first_look_m(scene))
    with dask.config.set(scheduler="threads"):
        classes = fmask.fmask_scene(reduced, cloud_buffer_m=0.0, shadow_buffer_m=0.0, snow_buffer_m=0.0,
                                    first_look=look).fmask.values
    truth = s2.scene["r20m"]
    cloud = classes == CLOUD
    assert 2.0 * (cloud & truth.cloud.values).sum() / (cloud.sum() + truth.cloud.values.sum()) >= 0.9
    assert ((classes == NODATA) == truth.nodata.values).all()
    # without the copy: the overviews, as before
    assert not any(name.startswith("read-copy-") for name in l1c._fmask_input(
        scene, fmask.first_look_m(scene), cfg.chunks)["r10m"].ds["B03"].data.dask.layers)
    l1a.delete_decoded_copy(ctx)
    assert not (tmp_path / "scene" / "L1A_decoded.zarr").exists()
    # without decode_once: no copy, no work
    off = replace(ctx, config=set_config(tiling_block_size_XY=CHUNKS, decode_once=False))
    assert l1a.decoded_copy(off) is None and l1a.run(product_stub(ctx.record), off).work == ()


def test_the_copy_is_made_for_runs_with_a_final_pass_only(s2, tmp_path):
    cfg = set_config(tiling_block_size_XY=CHUNKS, db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog = Catalog.from_config(cfg)
    record = catalog.scene(catalog.add_products([s2.path])[0])
    ctx = LevelContext(record=record, config=cfg, job_id=1, output_dir=tmp_path / "scene")
    # L2B's product and L2C's cubes are written by default: a run to them reads every band in a final pass
    names = default_registry().names
    for target, copied in (("L1A", False), ("L1B", False), ("L1C", False), ("L2A", False), ("L2B", True),
                           ("L2C", True), (None, True)):
        run_levels = names[: names.index(target) + 1] if target else ()  # () where the run is unknown
        assert (len(l1a.run(product_stub(record), replace(ctx, run_levels=run_levels)).work) == 1) is copied, target
    # a run to L1C that writes L1C's product reads every band there
    writes_l1c = replace(ctx, run_levels=names[: names.index("L1C") + 1],
                         config=cfg.model_copy(update={"exec_L1CP": (True, True, True)}))
    assert len(l1a.run(product_stub(record), writes_l1c).work) == 1


@pytest.mark.usefixtures("atmosphere_cache")
def test_a_job_writes_the_same_cube_with_and_without_the_copy_and_leaves_no_copy(s2, tmp_path):
    cubes = {}
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        for decode_once in (False, True):
            folder = tmp_path / str(decode_once)
            cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                             path_procdata_scenes=folder / "scenes", path_job_logs=folder / "logs",
                             target_gsd=60.0, tiling_block_size_XY=(256, 256), scene_task_max_mb=0,
                             decode_once=decode_once)
            catalog = Catalog.from_config(cfg)
            job_id = catalog.create_job(catalog.add_products([s2.path]), cfg)
            controller = ProcessController(job_id, db_url=cfg.db_url)
            controller.run_all_processors()
            controller.shutdown()
            (scene_id,) = catalog.job(job_id).scene_ids
            l1a_record = next(r for r in catalog.level_records(job_id, scene_id) if r.level == "L1A")
            assert ("decoded" in l1a_record.note) is decode_once
            assert not list(folder.rglob("L1A_decoded.zarr"))  # deleted when the chain ended
            (tile,) = catalog.tiles_written(job_id)
            cubes[decode_once] = open_cube(tile.path).load()
    # the 6 km scene in the tile's cube at 60 m: 100 x 100 pixels, 30 % of them clouds (3537 clear, buffered)
    assert cubes[True].sizes["time"] == 1 and int(np.isfinite(cubes[True]["B04"]).sum()) > 2000
    xr.testing.assert_identical(cubes[True], cubes[False])


def test_a_job_that_ends_before_the_final_pass_makes_no_copy(s2, tmp_path):
    # the controller tells L1A which levels the run goes through: run_L1A_processing has no reader of a copy
    cfg = set_config(db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}", path_procdata_scenes=tmp_path / "scenes",
                     path_job_logs=tmp_path / "logs", tiling_block_size_XY=(256, 256), scene_task_max_mb=0)
    catalog = Catalog.from_config(cfg)
    (scene_id,) = catalog.add_products([s2.path])
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        controller = ProcessController(catalog.create_job([scene_id], cfg), db_url=cfg.db_url)
        (result,) = controller.run_L1A_processing()
        controller.shutdown()
    assert result.level_reached == "L1A", result
    l1a_record = next(r for r in catalog.level_records(controller.job_ID, scene_id) if r.level == "L1A")
    assert "decoded" not in l1a_record.note
