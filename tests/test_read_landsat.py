"""Landsat readers against the real products in ../shared/data, checked with values read independently."""

from __future__ import annotations

import math
import re
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio

import gmsdask.io.raster as raster_module
from gmsdask import BandFileError, MetadataError, ProductError, UnknownProductError
from gmsdask.io import open_scene

from .conftest import data_path

C1 = ("landsat", "collection1")
PRODUCTS = {
    "LC08_L1TP_016037_20170813_20170814_01_RT": data_path(*C1, "LC08_L1TP_016037_20170813_20170814_01_RT"),
    "LC08_L1TP_090084_20160121_20170405_01_T1": data_path(*C1, "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz"),
    "LE07_L1TP_104078_20130429_20161124_01_T1": data_path(*C1, "LE07_L1TP_104078_20130429_20161124_01_T1.tar"),
    "LT05_L1TP_090085_19970406_20161231_01_T1": data_path(*C1, "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz"),
    "LC08_L2SP_001070_20190114_20200830_02_T2": data_path("landsat", "collection2",
                                                          "LC08_L2SP_001070_20190114_20200830_02_T2"),
}
EXPECTED_BANDS = {
    "LC08_L1TP_016037_20170813_20170814_01_RT": [f"B{i}" for i in range(1, 12)],
    "LC08_L1TP_090084_20160121_20170405_01_T1": [f"B{i}" for i in range(1, 12)],
    "LE07_L1TP_104078_20130429_20161124_01_T1": ["B1", "B2", "B3", "B4", "B5", "B6_VCID_1", "B6_VCID_2", "B7", "B8"],
    "LT05_L1TP_090085_19970406_20161231_01_T1": ["B1", "B2", "B3", "B4", "B5", "B6", "B7"],
    "LC08_L2SP_001070_20190114_20200830_02_T2": [f"B{i}" for i in range(1, 8)],
}


# --- independent helpers (deliberately not gmsdask code) -----------------------------------------------
def product_member(path: Path, suffix: str) -> tuple[str, str]:
    """(GDAL path, member name) of the file ending with ``suffix`` in a product dir or tar."""
    if path.is_dir():
        (found,) = [p for p in path.iterdir() if p.name.endswith(suffix)]
        return str(found), found.name
    with tarfile.open(path) as archive:
        (name,) = [n for n in archive.getnames() if n.endswith(suffix)]
    return f"/vsitar/{path}/{name}", name


def read_mtl(path: Path) -> dict[str, str]:
    if path.is_dir():
        text = next(path.glob("*_MTL.txt")).read_text()
    else:
        with tarfile.open(path) as archive:
            (name,) = [n for n in archive.getnames() if n.endswith("_MTL.txt")]
            text = archive.extractfile(name).read().decode()
    values: dict[str, str] = {}
    for key, value in re.findall(r"^\s*(\w+) = (.+)$", text, flags=re.M):
        values.setdefault(key, value.strip().strip('"'))  # first occurrence (C2 L2: the Level-2 group first)
    return values


def read_dn(path: Path, band: str) -> tuple[np.ndarray, rasterio.Affine, int]:
    gdal_path, _ = product_member(path, f"_{band}.TIF")
    with rasterio.open(gdal_path) as dataset:
        return dataset.read(1), dataset.transform, dataset.crs.to_epsg()


# --- structure and metadata --------------------------------------------------------------------------------
@pytest.mark.parametrize("product_id", sorted(PRODUCTS))
def test_every_landsat_product_opens_with_bands_grids_and_metadata(product_id):
    path = PRODUCTS[product_id]
    scene = open_scene(path)
    mtl = read_mtl(path)
    attrs = scene.attrs
    assert attrs["product_id"] == product_id
    assert attrs["band_names"] == EXPECTED_BANDS[product_id]
    assert attrs["platform"] == mtl["SPACECRAFT_ID"]
    assert attrs["processing_level"] == mtl.get("PROCESSING_LEVEL", mtl.get("DATA_TYPE"))
    assert attrs["sun_elevation_deg"] == pytest.approx(float(mtl["SUN_ELEVATION"]))
    assert attrs["sun_azimuth_deg"] == pytest.approx(float(mtl["SUN_AZIMUTH"]))
    assert attrs["cloud_cover_pct"] == pytest.approx(float(mtl["CLOUD_COVER"]))
    assert attrs["acquisition_time"].startswith(f"{mtl['DATE_ACQUIRED']}T{mtl['SCENE_CENTER_TIME'][:8]}")
    assert attrs["acquisition_time"].endswith("Z")
    assert attrs["wrs_path"] == int(mtl["WRS_PATH"]) and attrs["wrs_row"] == int(mtl["WRS_ROW"])
    if "EARTH_SUN_DISTANCE" in mtl:  # computed from the date, checked against USGS' ephemeris value
        assert attrs["earth_sun_distance_au"] == pytest.approx(float(mtl["EARTH_SUN_DISTANCE"]), abs=1e-4)
    reflective = [b for b in attrs["band_names"] if b not in ("B8",)]
    for band in attrs["band_names"]:
        group = "r15m" if band == "B8" else "r30m"
        dataset = scene[group].ds
        dn, transform, epsg = read_dn(path, f"SR_{band}" if "L2SP" in product_id else band)
        assert dataset[band].shape == dn.shape
        assert dataset[band].dtype == np.float32
        assert dataset.rio.crs.to_epsg() == epsg == attrs["epsg"]
        assert dataset.rio.transform() == transform
        assert dataset[band].attrs["central_wavelength_nm"] > 400
        assert dataset[band].attrs["native_gsd_m"] in (15, 30, 60, 100, 120)
    assert scene["r30m"].ds.x.size == scene["r30m"].ds[reflective[0]].shape[1]
    quality = "QA_PIXEL" if "L2SP" in product_id else "BQA"
    assert np.issubdtype(scene["r30m"].ds[quality].dtype, np.integer)
    # footprint: lon/lat polygon within the product's corner box
    lons = [float(mtl[f"CORNER_{c}_LON_PRODUCT"]) for c in ("UL", "UR", "LL", "LR")]
    coordinates = re.findall(r"(-?\d+\.\d+) (-?\d+\.\d+)", attrs["footprint"])
    assert attrs["footprint"].startswith("POLYGON") and len(coordinates) == 5
    assert all(min(lons) - 0.01 <= float(lon) <= max(lons) + 0.01 for lon, _ in coordinates)


def test_oli_footprint_uses_true_image_corners_from_ang():
    scene = open_scene(PRODUCTS["LC08_L1TP_090084_20160121_20170405_01_T1"])
    assert scene.attrs["footprint_source"].startswith("ANG.txt") and scene.attrs["footprint_exact"] is True
    # TM/ETM+ ANG files have no true corners: the product box is no data footprint
    assert open_scene(PRODUCTS["LT05_L1TP_090085_19970406_20161231_01_T1"]).attrs["footprint_exact"] is False
    # the true data area of a Landsat scene is a rotated quadrilateral: no corner on the product box
    mtl = read_mtl(PRODUCTS["LC08_L1TP_090084_20160121_20170405_01_T1"])
    first_lon = float(re.findall(r"(-?\d+\.\d+) (-?\d+\.\d+)", scene.attrs["footprint"])[0][0])
    assert first_lon != pytest.approx(float(mtl["CORNER_UL_LON_PRODUCT"]), abs=0.01)


# --- radiometry against hand computation -------------------------------------------------------------------
def test_oli_toa_reflectance_matches_mtl_formula_at_scene_centre():
    path = PRODUCTS["LC08_L1TP_016037_20170813_20170814_01_RT"]
    mtl = read_mtl(path)
    scene = open_scene(path)
    dn, _, _ = read_dn(path, "B4")
    rows, cols = dn.shape
    centre = (rows // 2, cols // 2)
    mult, add = float(mtl["REFLECTANCE_MULT_BAND_4"]), float(mtl["REFLECTANCE_ADD_BAND_4"])
    expected = (mult * float(dn[centre]) + add) / math.sin(math.radians(float(mtl["SUN_ELEVATION"])))
    toa = scene["r30m"].ds["B4"].values
    # per-pixel solar zenith equals the scene-centre elevation at the centre (to ~0.01 degree)
    assert toa[centre] == pytest.approx(expected, rel=1e-3)
    # the same formula with the per-pixel zenith: pixels further north (lower sun in August at 33 N... ) differ
    assert dn[dn > 0].size > 0 and np.all(np.isnan(toa[dn == 0])) and not np.any(np.isnan(toa[dn > 0]))
    zenith = scene["angles"].ds["sun_zenith"]
    assert float(zenith.min()) < 90 - float(mtl["SUN_ELEVATION"]) < float(zenith.max())


def test_thermal_band_is_brightness_temperature():
    path = PRODUCTS["LC08_L1TP_016037_20170813_20170814_01_RT"]
    mtl = read_mtl(path)
    dn, _, _ = read_dn(path, "B10")
    scene = open_scene(path)
    row, col = np.argwhere(dn > 0)[len(np.argwhere(dn > 0)) // 2]
    radiance = float(mtl["RADIANCE_MULT_BAND_10"]) * float(dn[row, col]) + float(mtl["RADIANCE_ADD_BAND_10"])
    expected = float(mtl["K2_CONSTANT_BAND_10"]) / math.log(float(mtl["K1_CONSTANT_BAND_10"]) / radiance + 1)
    value = float(scene["r30m"].ds["B10"][row, col])
    assert value == pytest.approx(expected, rel=1e-5)
    assert 200 < value < 340 and scene["r30m"].ds["B10"].attrs["units"] == "K"


@pytest.mark.parametrize("product_id", ["LE07_L1TP_104078_20130429_20161124_01_T1",
                                        "LT05_L1TP_090085_19970406_20161231_01_T1"])
def test_tm_etm_toa_reflectance(product_id):
    path = PRODUCTS[product_id]
    mtl = read_mtl(path)
    dn, _, _ = read_dn(path, "B3")
    scene = open_scene(path)
    row, col = dn.shape[0] // 2, dn.shape[1] // 2
    expected = (float(mtl["REFLECTANCE_MULT_BAND_3"]) * float(dn[row, col]) + float(mtl["REFLECTANCE_ADD_BAND_3"])) \
        / math.sin(math.radians(float(mtl["SUN_ELEVATION"])))
    assert float(scene["r30m"].ds["B3"][row, col]) == pytest.approx(expected, rel=2e-3)


def test_level2_surface_reflectance_uses_level2_rescaling():
    path = PRODUCTS["LC08_L2SP_001070_20190114_20200830_02_T2"]
    dn, _, _ = read_dn(path, "SR_B5")
    scene = open_scene(path)
    band = scene["r30m"].ds["B5"]
    valid = np.argwhere(dn > 0)
    for row, col in valid[:: max(1, len(valid) // 5)][:5]:
        assert float(band[row, col]) == pytest.approx(2.75e-05 * float(dn[row, col]) - 0.2, rel=1e-6)
    assert scene.attrs["missing_bands"] == ["B10"]  # the ST_B10 download is not part of this product
    assert bool(scene["r30m"].ds["nodata"].values[dn == 0].all())


def test_zero_reflectance_stays_zero_and_fill_is_nan():
    from gmsdask.algorithms.radiometry import landsat_toa_reflectance, sentinel2_reflectance

    dn = np.array([[0, 5000, 1000]], dtype=np.uint16)
    toa = landsat_toa_reflectance(dn, 2e-5, -0.1, 1.0)
    assert np.isnan(toa[0, 0])
    assert not np.isnan(toa[0, 1]) and abs(toa[0, 1]) < 1e-6  # a dark pixel is data, not nodata
    assert sentinel2_reflectance(dn, -1000, 10000)[0, 2] == 0.0


# --- laziness and graph size -----------------------------------------------------------------------------
def test_open_reads_no_pixels_and_graph_is_linear_in_chunks(monkeypatch):
    reads: list[tuple] = []
    original = raster_module.read_window
    monkeypatch.setattr(raster_module, "read_window", lambda *a, **k: reads.append(a) or original(*a, **k))
    scene = open_scene(PRODUCTS["LC08_L1TP_016037_20170813_20170814_01_RT"], chunks=64)
    assert reads == []
    band = scene["r30m"].ds["B4"].data
    n_chunks = band.npartitions
    assert n_chunks == math.ceil(259 / 64) * math.ceil(255 / 64)
    assert len(dict(band.__dask_graph__())) <= 2 * n_chunks + 2
    band.compute()
    assert len(reads) == n_chunks


def test_chunked_read_equals_whole_read():
    path = PRODUCTS["LC08_L1TP_016037_20170813_20170814_01_RT"]
    small = open_scene(path, chunks=(50, 70))["r30m"].ds["B5"].values
    whole = open_scene(path, chunks=4096)["r30m"].ds["B5"].values
    with dask.config.set(scheduler="threads"):
        threaded = open_scene(path, chunks=32)["r30m"].ds["B5"].values
    np.testing.assert_array_equal(small, whole)
    np.testing.assert_array_equal(threaded, whole)


def test_open_by_mtl_file_and_by_xml_only(tmp_path):
    c2 = PRODUCTS["LC08_L2SP_001070_20190114_20200830_02_T2"]
    by_txt = open_scene(next(c2.glob("*_MTL.txt")))
    xml_only = tmp_path / c2.name
    xml_only.mkdir()
    for file in c2.iterdir():
        if not file.name.endswith("_MTL.txt"):
            (xml_only / file.name).symlink_to(file)
    by_xml = open_scene(xml_only)
    assert by_xml.attrs["metadata_file"].endswith("_MTL.xml")
    for key in ("product_id", "sun_elevation_deg", "cloud_cover_pct", "acquisition_time", "epsg"):
        assert by_xml.attrs[key] == by_txt.attrs[key]
    np.testing.assert_array_equal(by_xml["r30m"].ds["B2"].values, by_txt["r30m"].ds["B2"].values)


# --- bad input -----------------------------------------------------------------------------------------------
def _linked_copy(source: Path, target: Path, skip: str = "") -> Path:
    target.mkdir()
    for file in source.iterdir():
        if not (skip and file.name.endswith(skip)):
            (target / file.name).symlink_to(file)
    return target


def test_truncated_archive_is_named(tmp_path):
    source = PRODUCTS["LC08_L1TP_090084_20160121_20170405_01_T1"]
    truncated = tmp_path / source.name
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ProductError, match=re.escape(str(truncated)) + ".*truncated or corrupt"):
        open_scene(truncated)


def test_missing_band_file_is_named(tmp_path):
    source = PRODUCTS["LC08_L1TP_016037_20170813_20170814_01_RT"]
    product = _linked_copy(source, tmp_path / source.name, skip="_B4.TIF")
    with pytest.raises(BandFileError, match=r"_B4\.TIF.*missing"):
        open_scene(product)


def test_corrupt_and_missing_mtl(tmp_path):
    source = PRODUCTS["LC08_L1TP_016037_20170813_20170814_01_RT"]
    product = _linked_copy(source, tmp_path / source.name, skip="_MTL.txt")
    with pytest.raises(UnknownProductError, match="no Landsat MTL"):
        open_scene(product)
    mtl_text = next(source.glob("*_MTL.txt")).read_text()
    corrupt = product / f"{source.name}_MTL.txt"
    corrupt.write_text(mtl_text[: len(mtl_text) // 2])
    with pytest.raises(MetadataError, match=r"_MTL\.txt.*(truncated|never closed|not ODL)"):
        open_scene(product)
    corrupt.write_text(mtl_text.replace("REFLECTANCE_MULT_BAND_4", "SOMETHING_ELSE"))
    with pytest.raises(MetadataError, match=r"_MTL\.txt.*REFLECTANCE_MULT_BAND_4"):
        open_scene(product)


def test_unknown_product_and_missing_path(tmp_path):
    (tmp_path / "notes.txt").write_text("not a product")
    with pytest.raises(UnknownProductError, match=re.escape(str(tmp_path))):
        open_scene(tmp_path)
    with pytest.raises(UnknownProductError, match="no such file"):
        open_scene(tmp_path / "LC08_does_not_exist")
    with pytest.raises(UnknownProductError, match="not a product"):
        open_scene(tmp_path / "notes.txt")


def test_mtl_of_another_product_names_the_missing_files():
    # the 30 m folder holds bands of 224/077 and 224/078 beside the MTL of another acquisition
    with pytest.raises(BandFileError, match=r"SR_B1\.TIF.*missing"):
        open_scene(data_path("landsat", "landsat8_30m_no_mtl"))


def test_acquisition_time_is_utc():
    scene = open_scene(PRODUCTS["LT05_L1TP_090085_19970406_20161231_01_T1"])
    time = datetime.fromisoformat(scene.attrs["acquisition_time"].replace("Z", "+00:00"))
    assert time.tzinfo == timezone.utc and time.year == 1997
