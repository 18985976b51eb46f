"""Writing a full-size synthetic Sentinel-2 L1C tile (10980^2 at 10 m, 13 lossless JPEG 2000 bands)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from gmsdask.synthetic import SENTINEL2_TILE_SIZE, write_sentinel2_l1c

from .common import PeakMemory, report


def main() -> dict:
    with tempfile.TemporaryDirectory() as folder, PeakMemory() as memory:
        start = time.perf_counter()
        product = write_sentinel2_l1c(Path(folder), tile="33UUU", size=SENTINEL2_TILE_SIZE, cloud_fraction=0.2,
                                      seed=5)
        seconds = time.perf_counter() - start
        size_mib = sum(f.stat().st_size for f in Path(product.path).rglob("*") if f.is_file()) / 2**20
    return report("synthetic_full_tile", {
        "tile_pixels_10m": SENTINEL2_TILE_SIZE[0] * SENTINEL2_TILE_SIZE[1],
        "write_seconds": seconds,
        "peak_memory_mib": memory.peak_mib,
        "product_size_mib": size_mib,
    })


if __name__ == "__main__":
    main()
