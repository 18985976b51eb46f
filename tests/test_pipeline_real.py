"""Acceptance on real data: the Sentinel-2 L2A tile 29UNU through the chain into its MGRS datacube."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
from distributed import Client

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.io.cube import open_cube

from .conftest import data_path

L2A = ("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")


def test_sentinel2_l2a_tile_lands_on_its_own_grid_in_the_29unu_cube(tmp_path):
    product = data_path(*L2A)
    # 60 m: the product's own grid, so the cube must hold the input values themselves
    cfg = set_config(db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}", path_procdata_MGRS=tmp_path / "cubes",
                     path_job_logs=tmp_path / "logs", target_gsd=60.0, mgrs_pixel_buffer=0,
                     target_mgrs_tiles=("29UNU",), tiling_block_size_XY=(915, 915),
                     mask_clouds_l2a=False,  # this test checks resampled values, cloudy or not
                     brdf_correction=False)  # and Sentinel-2A stays Sentinel-2A without a BRDF adjustment
    catalog = Catalog.from_config(cfg)
    (scene_id,) = catalog.add_products([product])
    assert "29UNU" in catalog.scene(scene_id).mgrs_tiles
    job_id = catalog.create_job([scene_id], cfg)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        controller = ProcessController(job_id, db_url=cfg.db_url)
        controller.run_all_processors()
    assert controller.DB_job_record.status == "finished", controller.summary.to_string()
    (tile,) = catalog.tiles_written(job_id)
    cube = open_cube(tile.path)
    assert tile.tile == "29UNU" and cube.sizes["time"] == 1 and cube.sizes["y"] == cube.sizes["x"] == 1830
    assert cube.rio.crs.to_epsg() == 32629
    left, top = float(cube.x[0]) - 30.0, float(cube.y[0]) + 30.0
    assert (left, top) == (499980.0, 5900040.0)
    assert str(cube["scene_id"].values[0]) == product.name.removesuffix(".SAFE")
    assert cube["B04"].dtype == np.float32 or cube["B04"].dtype == np.float64
    band_file = next(product.glob("GRANULE/*/IMG_DATA/R60m/*_B04_60m.jp2"))
    with rasterio.open(band_file) as source:
        dn = source.read(1)
    for row, col in [(100, 200), (915, 915), (1500, 300), (1829, 1829)]:
        expected = np.nan if dn[row, col] == 0 else (int(dn[row, col]) - 1000) / 10000
        value = float(cube["B04"][0, row, col])
        if np.isnan(expected):
            assert np.isnan(value)
        else:
            assert value == pytest.approx(expected, abs=1e-4)
    controller.shutdown()
