"""Regenerate ``quickstart.ipynb`` from the cells below (keeps the notebook diff-friendly and output-free)."""

from pathlib import Path

import nbformat

CELLS = [
    ("markdown", """# gmsdask quickstart

Open a scene lazily, run a job through L1A ... L2C on a Dask cluster, and look at the harmonized datacube of an
MGRS tile: one band set (the virtual sensor's), surface reflectance, every observation once. The sample products
are gmsdask's own synthetic Sentinel-2B L1C and Landsat-9 L1 products of one landscape and day, in the real
formats, so this runs on a machine with no data."""),
    ("code", """import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from distributed import Client

import gmsdask
from gmsdask.catalog import Catalog
from gmsdask.demo import seed_sixs_cache, write_demo_products

warnings.filterwarnings("ignore", category=UserWarning)  # keep the notebook readable
workdir = Path(tempfile.mkdtemp(prefix="gmsdask_quickstart_"))
s2, l9 = write_demo_products(workdir / "archive")
s2.product_id, l9.product_id"""),
    ("markdown", "## 1. Open a scene: a lazy `DataTree`, one group per native resolution"),
    ("code", """scene = gmsdask.open_scene(s2.path)
print(scene)
scene["r10m"]["B04"]"""),
    ("code", """scene["r10m"]["B04"].plot.imshow(robust=True, cmap="gray", size=5)
plt.title(f"{scene.attrs['platform']} B04 TOA reflectance, {scene.attrs['acquisition_time'][:10]}");"""),
    ("markdown", """## 2. Catalogue the products and run the job on a Dask cluster

L1B measures the Landsat scene's misregistration against the Sentinel-2 scene, L1C masks clouds and corrects the
atmosphere with 6S, L2A resamples once onto the tile grid, L2B turns both into Sentinel-2A bands at nadir view,
L2C writes them into the tile's cube."""),
    ("code", """cfg = gmsdask.set_config(db_url=f"sqlite:///{workdir / 'catalog.sqlite'}", path_procdata_MGRS=workdir / "cubes",
                         path_job_logs=workdir / "logs", tiling_block_size_XY=(512, 512), mgrs_pixel_buffer=0,
                         target_mgrs_tiles=("33UUU",))
seed_sixs_cache(cfg.path_cache)  # the 6S tables of these products ship with gmsdask
catalog = Catalog.from_config(cfg)
job_id = catalog.create_job(catalog.add_products(workdir / "archive"), cfg, comment="quickstart")
with Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0") as client:
    controller = gmsdask.ProcessController(job_id, db_url=cfg.db_url)
    controller.run_all_processors()
controller.summary"""),
    ("markdown", "## 3. The harmonized cube: both sensors in one band set"),
    ("code", """tile = catalog.tiles_written(job_id)[0]
cube = gmsdask.open_cube(tile.path)
print(cube.rio.crs, dict(cube.sizes))
print(cube[["scene_id", "platform", "quantity", "coreg_status", "shift_x_m", "shift_y_m"]].to_dataframe()
      .reset_index(drop=True))"""),
    ("code", """clear = ~cube["nodata"].any("time")  # pixels clear in both observations
bands = [b for b in cfg.target_bands if b in cube]
spectra = cube[bands].where(clear).mean(["x", "y"]).to_array("band").compute()
fig, ax = plt.subplots(figsize=(7, 3.5))
for i, platform in enumerate(spectra["platform"].values):
    ax.plot(bands, spectra.isel(time=i), marker="o", label=str(platform))
ax.set_ylabel("surface reflectance (mean of clear pixels)")
ax.set_title(f"tile {tile.tile}: Landsat-9 and Sentinel-2B in Sentinel-2A bands")
ax.legend();"""),
    ("code", """latest = int(cube["nodata"].mean(["x", "y"]).argmin())  # the clearest slot
rgb = cube[["B04", "B03", "B02"]].isel(time=latest).to_array("band").transpose("y", "x", "band")
rgb = np.clip(rgb.values / 0.15, 0, 1)
plt.figure(figsize=(5, 5))
plt.imshow(np.nan_to_num(rgb), extent=[float(cube.x[0]), float(cube.x[-1]), float(cube.y[-1]), float(cube.y[0])])
plt.title(f"{cube['platform'].values[latest]} {str(cube['time'].values[latest])[:10]}, true colour");"""),
]

notebook = nbformat.v4.new_notebook()
notebook.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                  for kind, src in CELLS]
notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(notebook, Path(__file__).with_name("quickstart.ipynb"))
