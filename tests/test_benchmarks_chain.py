"""Issue 13's benchmark harness: every figure lands in the JSON beside its target, ratios are formed from the
measured parts, per-level shares come from the profile, the floor decodes the bands the chain reads, inputs are
cached. The jobs themselves are replaced by recorded measurements here (a real run, even at the smallest scale,
takes minutes: ``python -m benchmarks chain --quick``); no timing is asserted."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_chain, inputs
from benchmarks.floor import band_files, decode_seconds
from benchmarks.jobs import LEVELS, JobRun, _catalog_timer, profile_shares
from gmsdask.catalog import Catalog
from gmsdask.errors import CatalogError

from .conftest import data_path


def _run(seconds: float, *, peak: float = 100.0, scenes: int = 1, client_cpu: float = 0.5,
         catalog: float = 0.01) -> JobRun:
    share = dict.fromkeys(LEVELS, 0.0) | {"L1B": 0.1, "L1C": 0.3, "L2C": 0.6}
    return JobRun(seconds=seconds, scenes=scenes, level_wall_s={"L2C": seconds}, profile_share=share,
                  worker_peak_rss_mib=[peak, peak / 2], client_cpu_s=client_cpu, client_process_cpu_s=2 * client_cpu,
                  catalog_s=catalog, ingest_s=0.1,
                  task_s=seconds, workers=2, cubes=[])


@pytest.fixture()
def recorded(monkeypatch, tmp_path):
    """The suite with recorded jobs (seconds per job by its folder name) and floors of 2 s."""
    runs = {"full": _run(6.0, peak=300.0), "quarter": _run(2.0, peak=200.0), "w1": _run(10.0), "w2": _run(8.0),
            "many": _run(20.0, scenes=4, client_cpu=0.4, catalog=0.12), "landsat": _run(12.0)}
    made: list[str] = []

    def scene(*args, **kwargs):
        made.append(repr((args, kwargs)))
        return inputs.Product(tmp_path / f"product{len(made)}", 0.0)

    monkeypatch.setattr(inputs, "sentinel2_scene", scene)
    monkeypatch.setattr(inputs, "landsat9_scene", scene)
    monkeypatch.setattr(bench_chain, "_job", lambda products, folder, *a, **k: runs[folder.name])
    monkeypatch.setattr(bench_chain, "io_floor", lambda products, cubes, scratch: {
        "decode_s": 1.0, "write_s": 1.0, "floor_s": 2.0})
    return runs


def test_every_figure_is_written_beside_its_target(recorded, tmp_path):
    cold = {"cold_lut_6s_runs": 12, "cold_lut_cpu_s": 3.5, "cold_lut_wall_s": 4.0}
    written = bench_chain.run_suite(0.01, small_scenes=4, scaling_scenes=2, processes=False,
                                    results_dir=tmp_path / "results", cold_lut=lambda product: cold)
    stored = json.loads((tmp_path / "results" / "chain_scale0.01.json").read_text())
    assert stored["figures"] == json.loads(json.dumps(written["figures"]))
    figures = stored["figures"]
    assert set(figures) == set(bench_chain.TARGETS) | set(bench_chain.REPORTED)
    for name, (comparison, target) in bench_chain.TARGETS.items():
        assert figures[name]["target"] == f"{comparison} {target:g}" and isinstance(figures[name]["met"], bool)
    assert all(figures[name]["target"] == "report" for name in bench_chain.REPORTED)
    # ratios of the recorded parts
    assert figures["end_to_end_vs_floor"]["value"] == pytest.approx(6.0 / 2.0)
    assert figures["end_to_end_vs_floor"]["met"] is False
    assert figures["scaling_2_vs_1_workers"]["value"] == pytest.approx(10.0 / 8.0)
    assert figures["memory_full_vs_quarter"]["value"] == pytest.approx(300.0 / 200.0)
    assert figures["many_scenes_client_share"]["value"] == pytest.approx(0.4 / 20.0)
    assert figures["many_scenes_client_share"]["met"] is True
    assert figures["catalogue_ms_per_scene"]["value"] == pytest.approx(1000 * 0.12 / 4)
    assert figures["landsat_vs_floor"]["value"] == pytest.approx(12.0 / 2.0)
    assert figures["l1c_share"]["value"] == pytest.approx(0.3) and figures["cold_lut_cpu_s"]["value"] == 3.5
    assert stored["scale"] == 0.01 and stored["sentinel2_side_px"] == inputs.s2_side(0.01)
    assert stored["machine"]["cpus"] >= 1 and stored["dask_report"] == "chain_scale0.01_dask_report.html"
    # the suite's own wall time (issue 13: under 20 min) and its phases
    phases = stored["details"]["phase_wall_s"]
    assert set(phases) == {"cold_lut", "end_to_end", "end_to_end_floor", "quarter", "scaling_1_worker",
                           "scaling_2_workers", "many_scenes", "landsat", "landsat_floor"}
    assert 0 <= sum(phases.values()) <= stored["details"]["suite_wall_s"]
    assert stored["details"]["cold_lut_method"] == "full build"


def test_the_end_to_end_job_alone_writes_its_own_figures(recorded, tmp_path):
    cold = {"cold_lut_6s_runs": 12, "cold_lut_cpu_s": 3.5, "cold_lut_wall_s": 4.0}
    bench_chain.run_suite(0.01, processes=False, results_dir=tmp_path / "results", cold_lut=lambda product: cold,
                          end_to_end_only=True)
    stored = json.loads((tmp_path / "results" / "chain_end_to_end_scale0.01.json").read_text())
    figures = stored["figures"]
    assert set(figures) == {"end_to_end_vs_floor", "l1b_share", "l1c_share", "cold_lut_cpu_s", "cold_lut_wall_s"}
    assert figures["end_to_end_vs_floor"]["value"] == pytest.approx(6.0 / 2.0)
    assert figures["end_to_end_vs_floor"]["met"] is False and figures["l1b_share"]["value"] == pytest.approx(0.1)
    assert figures["cold_lut_cpu_s"] == {"value": 3.5, "target": "report"}
    assert stored["details"]["end_to_end"]["floor"]["floor_s"] == 2.0
    assert not (tmp_path / "results" / "chain_scale0.01.json").exists()


def test_each_figure_is_printed_beside_its_target(recorded, tmp_path, capsys):
    cold = {"cold_lut_6s_runs": 1, "cold_lut_cpu_s": 1.0, "cold_lut_wall_s": 1.0}
    written = bench_chain.run_suite(0.125, small_scenes=2, scaling_scenes=2, results_dir=tmp_path / "results",
                                    cold_lut=lambda product: cold)
    out = capsys.readouterr().out
    assert "end_to_end_vs_floor" in out and "target <= 1.5" in out and "NOT MET" in out
    assert "target >= 1.8" in out and "target < 50" in out and "L1C 30%" in out
    assert written["quarter_side_px"] == inputs.s2_side(0.0625)


def _frame(filename: str, count: int, *children: dict) -> dict:
    return {"description": {"filename": filename, "name": "f"}, "count": count,
            "children": {str(i): child for i, child in enumerate(children)}}


def test_level_shares_follow_the_innermost_level_module_of_each_sample():
    frame = _frame
    profile = frame("", 100,
                    frame("/x/dask/array/core.py", 60,
                          frame("/r/gmsdask/atmosphere/correct.py", 30, frame("/r/gmsdask/algorithms/fmask.py", 10)),
                          frame("/r/gmsdask/io/cube_writer.py", 20, frame("/v/site-packages/zarr/core.py", 15)),
                          frame("/r/gmsdask/io/raster.py", 5, frame("/v/site-packages/rasterio/io.py", 5))),
                    frame("/x/distributed/worker.py", 40))
    shares = profile_shares(profile)
    assert shares["L1C"] == pytest.approx(0.30)  # numpy algorithms called by L1C count for L1C
    assert shares["L2C"] == pytest.approx(0.20) and shares["L1A"] == pytest.approx(0.05)
    assert shares["other"] == pytest.approx(0.45) and sum(shares.values()) == pytest.approx(1.0)


def test_libraries_count_for_the_gmsdask_code_that_called_them():
    frame = _frame
    profile = frame("", 100,
                    # GDAL's warp under L2A's resampling: L2A's work, not reading (L1A)
                    frame("/r/gmsdask/geometry/lazy_warp.py", 40, frame("/r/gmsdask/algorithms/warp.py", 40,
                          frame("/v/site-packages/rasterio/warp.py", 35))),
                    # the L2B product's encoding and compression: L2B's write, not the cube's
                    frame("/r/gmsdask/io/scene_store.py", 25, frame("/v/site-packages/numcodecs/zstd.py", 20)),
                    # Zarr decoding a level product inside a Dask task, no gmsdask frame above: L2C reads it
                    frame("/x/dask/array/core.py", 20, frame("/v/site-packages/zarr/codecs.py", 20)),
                    # its int16 decoded to float32 (gmsdask/io, but not reading an input): L2C as well
                    frame("/r/gmsdask/io/float32_decoding.py", 10, frame("/r/gmsdask/algorithms/scaled_integers.py",
                                                                         10)),
                    frame("/x/dask/local.py", 5))
    shares = profile_shares(profile)
    assert shares["L2A"] == pytest.approx(0.40) and shares["L1A"] == pytest.approx(0.0)
    assert shares["L2B"] == pytest.approx(0.25) and shares["L2C"] == pytest.approx(0.30)
    assert shares["other"] == pytest.approx(0.05)


def test_the_floor_decodes_the_bands_the_chain_reads():
    product = data_path("landsat", "collection1", "LE07_L1TP_104078_20130429_20161124_01_T1.tar")
    names = [Path(p).name.rsplit("_", 1)[-1] for p in band_files(product)]
    assert names == ["B1.TIF", "B2.TIF", "B3.TIF", "B4.TIF", "B5.TIF", "B7.TIF"]  # ETM+: no B9, no pan/thermal
    assert all(p.startswith("/vsitar/") for p in band_files(product))
    assert decode_seconds([product]) > 0.0


def test_the_catalogue_timer_counts_outer_calls_and_restores_the_methods(tmp_path):
    original = Catalog.level_status
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with _catalog_timer() as seconds:
        assert Catalog.level_status is not original
        with pytest.raises(CatalogError, match="no job with id 1"):  # timed all the same
            catalog.level_status(1, 1)
    assert Catalog.level_status is original and seconds[0] > 0.0
    catalog.close()


def test_inputs_are_written_once_and_found_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GMSDASK_BENCH_CACHE", str(tmp_path))
    writes = []

    def write(folder: Path) -> Path:
        writes.append(folder)
        (folder / "P.SAFE").mkdir()
        return folder / "P.SAFE"

    first = inputs._cached("x", write)
    again = inputs._cached("x", write)
    assert len(writes) == 1 and first.path == again.path == tmp_path / "x" / "P.SAFE" and again.write_s == 0.0
    assert inputs.s2_side(1.0) == 10980 and inputs.s2_side(0.5) == 5490 and inputs.s2_side(0.001) == 120


def test_the_many_scenes_job_has_as_many_distinct_products_as_asked(monkeypatch):
    """A Sentinel-2 product's name holds its datatake (the day here: one overpass a day) and its processing
    time, and the catalogue knows a scene by that name: a job of 100 products of 28 days used to be 28 scenes."""
    names = []
    monkeypatch.setattr(inputs, "sentinel2_scene",
                        lambda side, *, day, seed, cloud_fraction, processed: names.append((day, processed)))
    inputs.small_scenes(100)
    assert len(names) == 100 and len(set(names)) == 100


def test_a_job_whose_tables_were_cold_is_measured_again_warm(monkeypatch, tmp_path):
    """Every chain figure is of warm 6S tables: a job that built tables (a fresh clone's first ``make bench``) is
    run a second time, in a folder of its own, and the second run is the one reported."""
    calls: list[str] = []

    def run_job(client, products, folder, **options):
        calls.append(folder.name)
        return JobRun(**{**_run(30.0).__dict__, "sixs_runs": 264}) if len(calls) == 1 else _run(6.0)

    monkeypatch.setattr(bench_chain, "cluster", lambda workers, processes: contextlib.nullcontext())
    monkeypatch.setattr(bench_chain, "run_job", run_job)
    run = bench_chain._job([tmp_path / "p"], tmp_path / "full", 2, False)
    assert calls == ["full", "full_warm"] and run.seconds == 6.0 and run.sixs_runs == 0
    calls.clear()
    monkeypatch.setattr(bench_chain, "run_job", lambda client, products, folder, **o: calls.append(folder.name)
                        or _run(6.0))
    assert bench_chain._job([tmp_path / "p"], tmp_path / "quarter", 2, False).seconds == 6.0
    assert calls == ["quarter"]


def test_the_floor_writes_every_array_of_every_cube_as_stored(tmp_path):
    """The floor's write reads the job's cubes back (side by side, untimed) and writes each array once with the
    same codecs: every stored value of every cube is counted, whichever cube and array it came from."""
    import zarr

    from benchmarks import floor
    from gmsdask.io.cube import open_cube_session

    from .cube_helpers import write

    cubes = [str(tmp_path / "one"), str(tmp_path / "two")]
    write(cubes[0], "A")
    write(cubes[1], "B")
    write(cubes[1], "C")
    read = floor._read_all(cubes)
    assert [index for index, _ in read] == [0, 1]
    for index, arrays in read:
        stored = zarr.open_group(open_cube_session(cubes[index]).store, mode="r")
        assert sorted(name for name, _, _ in arrays) == sorted(name for name, _ in stored.arrays())
        for name, _, values in arrays:
            np.testing.assert_array_equal(values, stored[name][...])
    seconds, nbytes = floor.write_seconds(cubes, tmp_path / "scratch")
    assert seconds > 0 and nbytes == sum(values.nbytes for _, arrays in read for _, _, values in arrays)
    slots = {index: dict((name, values.shape) for name, _, values in arrays)["B02"][0] for index, arrays in read}
    assert slots == {0: 1, 1: 2}
