"""Regenerate ``quickstart.ipynb`` from the cells below (keeps the notebook diff-friendly and output-free)."""

from pathlib import Path

import nbformat

CELLS = [
    ("markdown", """# gmsdask quickstart

Open a scene lazily, run a job through L1A ... L2C on a Dask cluster, and plot an MGRS tile from its datacube.
The sample products are gmsdask's own synthetic Sentinel-2 L1C and Landsat-9 L1 products, in the real formats,
so this runs on a machine with no data."""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr
from distributed import Client

import gmsdask
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

workdir = Path(tempfile.mkdtemp(prefix="gmsdask_quickstart_"))
archive = workdir / "archive"
s2 = write_sentinel2_l1c(archive, tile="33UUU", size=(600, 600), cloud_fraction=0.1, seed=7)
l9 = write_landsat_l1(archive, location=sentinel2_extent("33UUU", (600, 600)), shift_m=(30.0, 0.0), seed=7)
s2.product_id, l9.product_id"""),
    ("markdown", "## 1. Open a scene: a lazy `DataTree`, one group per native resolution"),
    ("code", """scene = gmsdask.open_scene(s2.path)
print(scene)
scene["r10m"]["B04"]"""),
    ("code", """scene["r10m"]["B04"].plot.imshow(robust=True, cmap="gray", size=5)
plt.title(f"{scene.attrs['platform']} B04 TOA reflectance, {scene.attrs['acquisition_time'][:10]}");"""),
    ("markdown", "## 2. Catalogue the products and run a job on a Dask cluster"),
    ("code", """cfg = gmsdask.set_config(db_url=f"sqlite:///{workdir / 'catalog.sqlite'}", path_procdata_MGRS=workdir / "cubes",
                         path_job_logs=workdir / "logs", tiling_block_size_XY=(512, 512), mgrs_pixel_buffer=0)
catalog = Catalog.from_config(cfg)
job_id = catalog.create_job(catalog.add_products(archive), cfg, comment="quickstart")
with Client(processes=False, n_workers=2, threads_per_worker=1) as client:
    controller = ProcessController(job_id, db_url=cfg.db_url)
    controller.run_all_processors()
controller.summary"""),
    ("markdown", "## 3. Plot a tile from its datacube (plain `xarray.open_zarr`)"),
    ("code", """tile = catalog.tiles_written(job_id)[0]
cube = xr.open_zarr(tile.path)
print(cube.rio.crs, dict(cube.sizes), list(cube["scene_id"].values))
red = [name for name, var in cube.data_vars.items() if var.attrs.get("common_name") == "red"][0]
cube[red].isel(time=0).plot.imshow(robust=True, cmap="magma", size=5)
plt.title(f"tile {tile.tile}: {red} from {cube['scene_id'].values[0][:24]}");"""),
]

notebook = nbformat.v4.new_notebook()
notebook.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                  for kind, src in CELLS]
notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(notebook, Path(__file__).with_name("quickstart.ipynb"))
