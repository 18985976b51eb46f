"""L1A reading: ``open_scene`` + DN -> TOA of a full-size band vs a plain rasterio read + numpy formula.

The full-size band (10980 x 10980 uint16, tiled, deflate, like a Sentinel-2 10 m band or a large Landsat scene)
is made by tiling the real DNs of the Landsat-8 B4 in ../shared/data, inside a copy of that product whose
MTL names it for every band, so ``open_scene`` reads it through the ordinary Landsat path.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import dask
import numpy as np
import rasterio
from affine import Affine

from gmsdask.io import open_scene

from .common import DATA, best_of, report

SIZE = 10980
PRODUCT = "LC08_L1TP_016037_20170813_20170814_01_RT"


def make_full_size_product(folder: Path) -> Path:
    """A Landsat product folder whose band files are one 10980^2 raster of tiled real DNs."""
    source = DATA / "landsat" / "collection1" / PRODUCT
    with rasterio.open(source / f"{PRODUCT}_B4.TIF") as band:
        dn = band.read(1)
        crs = band.crs
        left, top = band.transform.c, band.transform.f
    tiled = np.tile(dn, (math.ceil(SIZE / dn.shape[0]), math.ceil(SIZE / dn.shape[1])))[:SIZE, :SIZE]
    product = folder / PRODUCT
    product.mkdir()
    big = product / "full_size_band.tif"
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint16", crs=crs,
                   transform=Affine(30.0, 0, left, 0, -30.0, top), tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate", predictor=2)
    with rasterio.open(big, "w", **profile) as out:
        out.write(tiled, 1)
    mtl = (source / f"{PRODUCT}_MTL.txt").read_text()
    for name in re.findall(r'FILE_NAME_BAND_\w+ = "([^"]+)"', mtl):
        (product / name).symlink_to(big)
    (product / f"{PRODUCT}_MTL.txt").write_text(mtl)
    return product


def plain_numpy(product: Path) -> np.ndarray:
    """The baseline: one rasterio read and the MTL formula with the scene-centre sun elevation."""
    mtl = (product / f"{PRODUCT}_MTL.txt").read_text()
    mult = float(re.search(r"REFLECTANCE_MULT_BAND_4 = (\S+)", mtl).group(1))
    add = float(re.search(r"REFLECTANCE_ADD_BAND_4 = (\S+)", mtl).group(1))
    elevation = float(re.search(r"SUN_ELEVATION = (\S+)", mtl).group(1))
    with rasterio.open(product / f"{PRODUCT}_B4.TIF") as band:
        dn = band.read(1)
    toa = ((mult * dn + add) / math.sin(math.radians(elevation))).astype(np.float32)
    toa[dn == 0] = np.nan
    return toa


def gmsdask_toa(product: Path, threads: int) -> np.ndarray:
    band = open_scene(product, chunks=2048)["r30m"].ds["B4"]
    with dask.config.set(scheduler="threads", num_workers=threads):
        return band.values


def main() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        product = make_full_size_product(Path(folder))
        plain_numpy(product)  # warm the page cache for both
        baseline = best_of(lambda: plain_numpy(product))
        one_thread = best_of(lambda: gmsdask_toa(product, 1))
        two_threads = best_of(lambda: gmsdask_toa(product, 2))
        difference = np.nanmax(np.abs(gmsdask_toa(product, 2) - plain_numpy(product)))
    return report("read_l1a", {
        "band_pixels": SIZE * SIZE,
        "baseline_rasterio_numpy_s": baseline,
        "gmsdask_1_thread_s": one_thread,
        "gmsdask_2_threads_s": two_threads,
        "ratio_gmsdask_2_threads_vs_baseline": two_threads / baseline,
        "speedup_2_vs_1_threads": one_thread / two_threads,
        "max_abs_difference_toa (per-pixel vs centre sun)": float(difference),
    })


if __name__ == "__main__":
    main()
