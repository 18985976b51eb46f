"""End-to-end job time per scene against the I/O floor, 1 vs 2 workers, and peak memory vs scene area.

- I/O floor: every input band of the product read once with rasterio, plus the same int16 arrays written to a
  Zarr array per band with the cube's chunking and compressor (plain zarr, no resampling, no Dask).
- End-to-end: ``ProcessController.run_all_processors`` on a fresh catalogue and cube, the real Sentinel-2 L2A
  29UNU (11 bands, 1830^2 at 60 m) into its tile at 60 m (identity grid) and at 30 m (the default target).
- Peak memory: resident memory of this process (an in-process cluster) sampled at 50 Hz, above its level
  before the run, for synthetic Sentinel-2 L2A products of 1x and 4x the area.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import zarr
from distributed import Client
from zarr.codecs import BloscCodec, ZstdCodec

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController

from .common import DATA, PeakMemory, report

L2A = DATA / "sentinel2" / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
CHUNK = 1024


def io_floor(product: Path, folder: Path, compressor: str = "zstd") -> float:
    """Seconds to read every band file once and write int16 arrays with the cube's chunks and codec."""
    codec = ZstdCodec(level=3) if compressor == "zstd" else BloscCodec(cname="lz4", clevel=5)
    start = time.perf_counter()
    group = zarr.open_group(str(folder / f"floor_{compressor}.zarr"), mode="w")
    for band_file in sorted(product.glob("GRANULE/*/IMG_DATA/R60m/*_B*_60m.jp2")):
        with rasterio.open(band_file) as dataset:
            dn = dataset.read(1)
        values = dn.astype(np.int16)  # the (DN - 1000) offset fits int16 for reflectance < 2.2
        array = group.create_array(band_file.stem, shape=(1, *values.shape), chunks=(1, CHUNK, CHUNK),
                                   dtype="int16", compressors=[codec], fill_value=-9999)
        array[0] = values
    return time.perf_counter() - start


def end_to_end(product: Path, folder: Path, *, workers: int, gsd: float, compressor: str = "zstd") -> tuple[float, float]:
    """(seconds, peak MiB) of one job of one scene into tile 29UNU."""
    cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                     path_job_logs=folder / "logs", target_gsd=gsd, mgrs_pixel_buffer=0,
                     target_mgrs_tiles=("29UNU",), tiling_block_size_XY=(CHUNK, CHUNK), output_compressor=compressor)
    catalog = Catalog.from_config(cfg)
    job_id = catalog.create_job(catalog.add_products([product]), cfg)
    with Client(processes=False, n_workers=workers, threads_per_worker=1, dashboard_address=":0"):
        with PeakMemory() as memory:
            start = time.perf_counter()
            ProcessController(job_id, db_url=cfg.db_url).run_all_processors()
            seconds = time.perf_counter() - start
    if catalog.job(job_id).status != "finished":
        raise RuntimeError(f"benchmark job failed: {catalog.failures(job_id)}")
    return seconds, memory.peak_mib


def _cube_size_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in (folder / "cubes").rglob("*") if f.is_file()) / 2**20


def main() -> dict:
    results: dict[str, float | str] = {"product": L2A.name}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        io_floor(L2A, root)  # warm the page cache
        results["io_floor_s"] = min(io_floor(L2A, root) for _ in range(2))
        for workers in (1, 2):
            folder = root / f"w{workers}_60m"
            folder.mkdir()
            seconds, peak = end_to_end(L2A, folder, workers=workers, gsd=60.0)
            results[f"end_to_end_60m_{workers}_workers_s"] = seconds
            results[f"peak_memory_60m_{workers}_workers_mib"] = peak
        results["ratio_end_to_end_vs_io_floor (60 m, 2 workers)"] = \
            results["end_to_end_60m_2_workers_s"] / results["io_floor_s"]
        results["speedup_2_vs_1_workers (60 m)"] = \
            results["end_to_end_60m_1_workers_s"] / results["end_to_end_60m_2_workers_s"]
        for compressor in ("zstd", "lz4"):
            folder = root / f"{compressor}_30m"
            folder.mkdir()
            seconds, peak = end_to_end(L2A, folder, workers=2, gsd=30.0, compressor=compressor)
            results[f"end_to_end_30m_{compressor}_s"] = seconds
            results[f"peak_memory_30m_{compressor}_mib"] = peak
            results[f"cube_size_30m_{compressor}_mib"] = _cube_size_mib(folder)
        results.update(area_scaling(root))
    return report("pipeline", results)


def area_scaling(root: Path) -> dict[str, float]:
    """Peak memory and time for synthetic Sentinel-2 L2A scenes of 1x and 4x the area (2 workers, 30 m)."""
    from gmsdask.synthetic import write_sentinel2_l2a

    results = {}
    for factor, side in ((1, 2745), (4, 5490)):  # 20 m pixels: 1/4 and the whole of a 109.8 km tile
        folder = root / f"area_{factor}x"
        folder.mkdir()
        product = write_sentinel2_l2a(folder / "archive", tile="29UNU", size=(side * 2, side * 2), seed=3)
        cfg_folder = folder / "run"
        cfg_folder.mkdir()
        seconds, peak = end_to_end(product.path, cfg_folder, workers=2, gsd=30.0)
        results[f"area_{factor}x_seconds"] = seconds
        results[f"area_{factor}x_peak_memory_mib"] = peak
    results["peak_memory_ratio_4x_vs_1x_area"] = results["area_4x_peak_memory_mib"] / results["area_1x_peak_memory_mib"]
    return results


if __name__ == "__main__":
    main()
