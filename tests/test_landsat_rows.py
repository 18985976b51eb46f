"""Acceptance on real data: two overlapping Landsat-8 rows of one path and day land in one MGRS cube.

The real 30 m bands of 224/077 and 224/078 (2020-05-18) come without their MTL; the test writes one for each
(the standard OLI rescaling, 2e-5 and -0.1, which is the same for every Landsat-8 Collection 1 scene).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio
from distributed import Client
from pyproj import Transformer

from gmsdask import set_config
from gmsdask.algorithms.radiometry import solar_position
from gmsdask.catalog import Catalog
from gmsdask.controller import ProcessController
from gmsdask.io.cube import open_cube

from .conftest import data_path

ROWS = {77: datetime(2020, 5, 18, 13, 33, 40, tzinfo=timezone.utc),
        78: datetime(2020, 5, 18, 13, 34, 4, tzinfo=timezone.utc)}


def write_product(folder: Path, row: int, time: datetime) -> Path:
    product_id = f"LC08_L1TP_224{row:03d}_20200518_20200518_01_RT"
    product = folder / product_id
    product.mkdir()
    source = data_path("landsat", "landsat8_30m_no_mtl")
    for band in (2, 3, 4):
        (product / f"{product_id}_B{band}.TIF").symlink_to(source / f"{product_id}_B{band}.TIF")
    with rasterio.open(product / f"{product_id}_B2.TIF") as dataset:
        bounds, crs = dataset.bounds, dataset.crs
    # MTL corner coordinates are pixel centres
    corners = {"UL": (bounds.left + 15, bounds.top - 15), "UR": (bounds.right - 15, bounds.top - 15),
               "LL": (bounds.left + 15, bounds.bottom + 15), "LR": (bounds.right - 15, bounds.bottom + 15)}
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    centre_lon, centre_lat = to_lonlat.transform((bounds.left + bounds.right) / 2, (bounds.top + bounds.bottom) / 2)
    zenith, azimuth = solar_position(np.array(centre_lat), np.array(centre_lon), time)
    corner_lines = []
    for name, (x, y) in corners.items():
        lon, lat = to_lonlat.transform(x, y)
        corner_lines += [f"    CORNER_{name}_LAT_PRODUCT = {lat:.5f}", f"    CORNER_{name}_LON_PRODUCT = {lon:.5f}",
                         f"    CORNER_{name}_PROJECTION_X_PRODUCT = {x:.3f}",
                         f"    CORNER_{name}_PROJECTION_Y_PRODUCT = {y:.3f}"]
    bands = (2, 3, 4)
    mtl = "\n".join([
        "GROUP = L1_METADATA_FILE",
        "  GROUP = METADATA_FILE_INFO",
        f'    LANDSAT_PRODUCT_ID = "{product_id}"',
        "    COLLECTION_NUMBER = 01",
        "  END_GROUP = METADATA_FILE_INFO",
        "  GROUP = PRODUCT_METADATA",
        '    DATA_TYPE = "L1TP"',
        '    SPACECRAFT_ID = "LANDSAT_8"',
        '    SENSOR_ID = "OLI_TIRS"',
        "    WRS_PATH = 224",
        f"    WRS_ROW = {row}",
        "    DATE_ACQUIRED = 2020-05-18",
        f'    SCENE_CENTER_TIME = "{time:%H:%M:%S}.0000000Z"',
        *corner_lines,
        *[f'    FILE_NAME_BAND_{b} = "{product_id}_B{b}.TIF"' for b in bands],
        "  END_GROUP = PRODUCT_METADATA",
        "  GROUP = IMAGE_ATTRIBUTES",
        "    CLOUD_COVER = 0.00",
        f"    SUN_AZIMUTH = {float(azimuth):.8f}",
        f"    SUN_ELEVATION = {90 - float(zenith):.8f}",
        "  END_GROUP = IMAGE_ATTRIBUTES",
        "  GROUP = MIN_MAX_PIXEL_VALUE",
        *[f"    QUANTIZE_CAL_MAX_BAND_{b} = 65535" for b in bands],
        "  END_GROUP = MIN_MAX_PIXEL_VALUE",
        "  GROUP = RADIOMETRIC_RESCALING",
        *[f"    REFLECTANCE_MULT_BAND_{b} = 2.0000E-05\n    REFLECTANCE_ADD_BAND_{b} = -0.100000" for b in bands],
        "  END_GROUP = RADIOMETRIC_RESCALING",
        "  GROUP = PROJECTION_PARAMETERS",
        '    MAP_PROJECTION = "UTM"',
        "    UTM_ZONE = 21",
        "    GRID_CELL_SIZE_REFLECTIVE = 30.00",
        "  END_GROUP = PROJECTION_PARAMETERS",
        "END_GROUP = L1_METADATA_FILE",
        "END",
    ])
    (product / f"{product_id}_MTL.txt").write_text(mtl + "\n")
    return product


def test_two_overlapping_rows_are_two_time_slices_of_one_cube_that_agree(tmp_path):
    products = [write_product(tmp_path, row, time) for row, time in ROWS.items()]
    cfg = set_config(db_url=f"sqlite:///{tmp_path / 'catalog.sqlite'}", path_procdata_MGRS=tmp_path / "cubes",
                     path_job_logs=tmp_path / "logs", mgrs_pixel_buffer=0, tiling_block_size_XY=(1024, 1024),
                     # three bands (B2-B4) only: this test is about geometry, not masks, atmosphere or band sets
                     skip_coreg=True, skip_ac=True, skip_spechomo=True)
    catalog = Catalog.from_config(cfg)
    scene_ids = catalog.add_products(products)
    shared = sorted(set(catalog.scene(scene_ids[0]).mgrs_tiles) & set(catalog.scene(scene_ids[1]).mgrs_tiles))
    assert shared, "the two rows must touch a common MGRS tile"
    # the tile holding most of the overlap: the one whose square contains the overlap's centre
    overlap_tile = _tile_of_overlap_centre(products)
    assert overlap_tile in shared
    job_id = catalog.create_job(scene_ids, cfg.replace(target_mgrs_tiles=(overlap_tile,)))
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        controller = ProcessController(job_id, db_url=cfg.db_url)
        controller.run_all_processors()
    assert controller.DB_job_record.status == "finished", controller.summary.to_string()
    (path,) = {t.path for t in catalog.tiles_written(job_id)}
    cube = open_cube(path)
    assert cube.sizes["time"] == 2 and cube.sizes["y"] == cube.sizes["x"] == 3660
    assert sorted(cube["scene_id"].values.tolist()) == sorted(p.name for p in products)
    red = cube["B4"].values
    both = np.isfinite(red[0]) & np.isfinite(red[1])
    assert both.sum() > 500_000, "the rows overlap by about 1230 x 1170 px"
    difference = np.abs(red[0][both] - red[1][both])
    # the same ground seen 24 s apart by the same sensor: the two time slices agree in the overlap
    assert np.median(difference) < 0.002
    assert np.corrcoef(red[0][both], red[1][both])[0, 1] > 0.99
    controller.shutdown()


def _tile_of_overlap_centre(products: list[Path]) -> str:
    import mgrs

    boxes = []
    for product in products:
        with rasterio.open(next(product.glob("*_B2.TIF"))) as dataset:
            boxes.append((dataset.bounds, dataset.crs))
    (first, crs), (second, _) = boxes
    x = (max(first.left, second.left) + min(first.right, second.right)) / 2
    y = (max(first.bottom, second.bottom) + min(first.top, second.top)) / 2
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return mgrs.MGRS().toMGRS(lat, lon, MGRSPrecision=0)[:5]
