"""Sentinel-2 reader against the real products in ../shared/data, checked with values read independently
(xml.etree, regular expressions and rasterio here; never the reader's own parsing)."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import shutil
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
import shapely
import xarray as xr
from pyproj import Transformer
from rasterio.windows import Window
from shapely import wkt
from shapely.geometry import Polygon, shape

import gmsdask.io.raster as raster_module
from gmsdask import BandFileError, MetadataError, ProductError
from gmsdask.io import open_scene
from gmsdask.io.sentinel2.angles import angles_dataset
from gmsdask.io.sentinel2.xml import XmlDoc
from gmsdask.synthetic.grid import PixelGrid
from gmsdask.synthetic.rasters import write_sentinel2_jp2

from .conftest import data_path

L1C_SAFE = "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042"
AWS_TILE = "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06"
L2A_SAFE = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"

R10, R20, R60 = ["B02", "B03", "B04", "B08"], ["B05", "B06", "B07", "B8A", "B11", "B12"], ["B01", "B09", "B10"]
ESA_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
SCENE_MODEL_KEYS = {"platform", "sensor", "product_id", "product_path", "processing_level", "acquisition_time",
                    "sun_elevation_deg", "sun_azimuth_deg", "earth_sun_distance_au", "cloud_cover_pct",
                    "footprint", "footprint_source", "processing_baseline", "epsg", "mgrs_tile", "wrs_path",
                    "wrs_row", "collection", "band_names",
                    "metadata_file", "missing_bands", "fill_dn"}  # the Landsat reader's extras, too


@dataclass(frozen=True)
class Product:
    """What a test knows about a real product beforehand (the rest comes from its files)."""

    file: str
    product_id: str
    platform: str
    level: str
    epsg: int
    mgrs_tile: str
    product_xml: str  # suffix of the member holding quantification, offsets, U
    tile_xml: str
    band_suffix: str  # member suffix of a band file; {band} is replaced
    groups: dict[str, list[str]]

    @property
    def path(self) -> Path:
        return data_path("sentinel2", self.file)


PRODUCTS = {
    "L1C_SAFE_zip": Product(f"{L1C_SAFE}.zip", L1C_SAFE, "SENTINEL_2A", "L1C", 32756, "56JMM", "/MTD_MSIL1C.xml",
                            "/MTD_TL.xml", "_{band}.jp2", {"r10m": R10, "r20m": R20, "r60m": R60}),
    "AWS_PDS_zip": Product(f"{AWS_TILE}.AWSPDS.zip", AWS_TILE, "SENTINEL_2B", "L1C", 32755, "55JGF",
                           "/datastrip/metadata.xml", f"{AWS_TILE}/metadata.xml", "/{band}.jp2",
                           {"r10m": R10, "r20m": R20, "r60m": R60}),
    "L2A_SAFE_dir": Product(f"{L2A_SAFE}.SAFE", L2A_SAFE, "SENTINEL_2A", "L2A", 32629, "29UNU", "/MTD_MSIL2A.xml",
                            "/MTD_TL.xml", "_{band}_60m.jp2",
                            {"r60m": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"]}),
}


# --- independent helpers (deliberately not gmsdask code) -----------------------------------------------
def members(path: Path) -> list[str]:
    if path.is_dir():
        return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    with zipfile.ZipFile(path) as archive:
        return [n for n in archive.namelist() if not n.endswith("/")]


def member(path: Path, suffix: str) -> str:
    (found,) = [m for m in members(path) if f"/{m}".endswith(suffix)]
    return found


def member_bytes(path: Path, suffix: str) -> bytes:
    name = member(path, suffix)
    if path.is_dir():
        return (path / name).read_bytes()
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def gdal_path(path: Path, suffix: str) -> str:
    name = member(path, suffix)
    return str(path / name) if path.is_dir() else f"/vsizip/{path}/{name}"


def xml(path: Path, suffix: str) -> ET.Element:
    return ET.fromstring(member_bytes(path, suffix))


def first_text(root: ET.Element, tag: str) -> str:
    return root.find(f".//{{*}}{tag}").text.strip()  # {*}: any or no namespace


def head_value(raw: bytes, tag: str) -> str:
    """First ``<tag ...>value</tag>`` of a large document, by regular expression (no XML parse)."""
    return re.search(rf"<{tag}(?: [^>]*)?>([^<]*)</{tag}>".encode(), raw).group(1).decode().strip()


def read_dn(path: Path, suffix: str, row: int, col: int) -> int:
    with rasterio.open(gdal_path(path, suffix)) as dataset:
        return int(dataset.read(1, window=Window(col, row, 1, 1))[0, 0])


def radiometry(product: Product) -> tuple[float, dict[str, float]]:
    """(quantification, offsets per band) of a product, straight from its XML (offsets: none before 04.00)."""
    raw = member_bytes(product.path, product.product_xml)
    prefix, offset_tag = ("BOA_", "BOA_ADD_OFFSET") if product.level == "L2A" else ("", "RADIO_ADD_OFFSET")
    offsets = re.findall(rf'<{offset_tag} band_?[iI]d="(\d+)"[^>]*>([^<]*)<'.encode(), raw)
    return (float(head_value(raw, f"{prefix}QUANTIFICATION_VALUE")),
            {ESA_ORDER[int(band_id)]: float(value) for band_id, value in offsets})


def safe_copy(tmp_path: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """A copy of the L2A SAFE folder: XML files copied, everything else symlinked (fast), some files left out."""
    source = PRODUCTS["L2A_SAFE_dir"].path
    target = tmp_path / source.name
    for file in source.rglob("*"):
        relative = file.relative_to(source)
        if file.is_dir() or any(relative.as_posix().endswith(s) for s in leave_out):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        if file.suffix == ".xml":
            shutil.copyfile(file, target / relative)
        else:
            (target / relative).symlink_to(file)
    return target


def zip_without(source: Path, target: Path, suffix: str) -> Path:
    """A copy of a zip without the member ending with ``suffix`` (and without unneeded non-product files)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as copy:
        for info in original.infolist():
            if not info.filename.endswith((suffix, "/creds")):
                copy.writestr(info.filename, original.read(info.filename))
    return target


def json_roundtrip(values: dict) -> None:
    json.loads(json.dumps(values))


# --- structure, grids, metadata ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(PRODUCTS))
def test_every_sentinel2_product_opens_with_groups_bands_and_grids(key):
    product = PRODUCTS[key]
    scene = open_scene(product.path)
    tile = xml(product.path, product.tile_xml)
    ulx, uly = float(first_text(tile, "ULX")), float(first_text(tile, "ULY"))
    assert int(first_text(tile, "HORIZONTAL_CS_CODE").split(":")[1]) == product.epsg

    assert set(scene.children) == {*product.groups, "angles"} | ({"r20m"} if product.level == "L2A" else set())
    expected_bands = [b for b in ESA_ORDER if any(b in bands for bands in product.groups.values())]
    assert scene.attrs["band_names"] == expected_bands
    for group, bands in product.groups.items():
        dataset = scene[group].ds
        assert [name for name in dataset.data_vars if name.startswith("B")] == bands
        assert dataset.rio.crs.to_epsg() == product.epsg
        for band in bands:
            with rasterio.open(gdal_path(product.path, product.band_suffix.format(band=band))) as raw:
                assert dataset[band].shape == raw.shape
                assert dataset.rio.transform().almost_equals(raw.transform)
                assert raw.crs.to_epsg() == product.epsg
            assert dataset[band].dtype == np.float32
            assert dataset[band].attrs["units"] == "1"
            assert {"central_wavelength_nm", "fwhm_nm", "common_name", "native_gsd_m", "long_name",
                    "radiometric_offset", "quantification_value", "solar_irradiance_w_m2_um"} <= set(
                dataset[band].attrs)
            json_roundtrip(dataset[band].attrs)
        # The grid starts at the tile's upper-left corner; x/y are pixel centres, y decreasing.
        transform = dataset.rio.transform()
        assert (transform.c, transform.f) == (ulx, uly)
        assert dataset.x[0] == pytest.approx(ulx + transform.a / 2)
        assert dataset.y[0] == pytest.approx(uly + transform.e / 2) and float(dataset.y[1] - dataset.y[0]) < 0
        assert dataset["nodata"].dtype == bool and dataset["saturated"].dtype == bool
    if key == "L2A_SAFE_dir":
        assert (ulx, uly) == (499980.0, 5900040.0)


@pytest.mark.parametrize("key", sorted(PRODUCTS))
def test_root_metadata_matches_the_xml(key):
    product = PRODUCTS[key]
    scene = open_scene(product.path)
    attrs = scene.attrs
    tile = xml(product.path, product.tile_xml)
    raw = member_bytes(product.path, product.product_xml)

    assert SCENE_MODEL_KEYS <= set(attrs)
    json_roundtrip(dict(attrs))
    assert attrs["platform"] == product.platform
    assert head_value(raw, "SPACECRAFT_NAME") == product.platform.replace("SENTINEL_", "Sentinel-")
    assert attrs["sensor"] == "MSI"
    assert attrs["product_id"] == product.product_id
    assert attrs["product_path"] == str(product.path)
    assert attrs["processing_level"] == product.level
    assert attrs["processing_baseline"] == head_value(raw, "PROCESSING_BASELINE")
    assert attrs["epsg"] == product.epsg
    assert attrs["mgrs_tile"] == product.mgrs_tile
    assert (attrs["wrs_path"], attrs["wrs_row"], attrs["collection"]) == (0, 0, 0)
    assert attrs["relative_orbit"] == int(head_value(raw, "SENSING_ORBIT_NUMBER"))

    sensing = datetime.fromisoformat(first_text(tile, "SENSING_TIME"))
    assert attrs["acquisition_time"].endswith("Z")
    assert datetime.fromisoformat(attrs["acquisition_time"]) == sensing
    assert attrs["cloud_cover_pct"] == float(first_text(tile, "CLOUDY_PIXEL_PERCENTAGE"))
    mean_sun = tile.find(".//{*}Mean_Sun_Angle")
    assert attrs["sun_elevation_deg"] == pytest.approx(90 - float(mean_sun.find("ZENITH_ANGLE").text), abs=1e-9)
    assert attrs["sun_azimuth_deg"] == pytest.approx(float(mean_sun.find("AZIMUTH_ANGLE").text), abs=1e-9)

    u = float(head_value(raw, "U"))
    assert attrs["reflectance_conversion_u"] == u
    assert attrs["earth_sun_distance_au"] == pytest.approx(1 / math.sqrt(u), abs=1e-3)

    footprint = wkt.loads(attrs["footprint"])
    assert footprint.is_valid and footprint.area > 0
    if key == "AWS_PDS_zip":
        geometry = json.loads(member_bytes(product.path, "/tileInfo.json"))["tileDataGeometry"]
        to_lonlat = Transformer.from_crs(f"EPSG:{product.epsg}", "EPSG:4326", always_xy=True)
        expected = shapely.transform(shape(geometry), to_lonlat.transform, interleaved=False)
        assert attrs["footprint_source"].startswith("tileInfo.json")
    else:
        lat_lon = [float(v) for v in first_text(xml(product.path, product.product_xml), "EXT_POS_LIST").split()]
        expected = Polygon(zip(lat_lon[1::2], lat_lon[0::2]))  # ESA lists lat lon pairs
        assert "EXT_POS_LIST" in attrs["footprint_source"]
    assert footprint.equals_exact(expected, 1e-9)
    # In lon/lat: the footprint holds the tile centre projected to lon/lat.
    centre = scene[next(iter(product.groups))].ds
    to_lonlat = Transformer.from_crs(f"EPSG:{product.epsg}", "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(float(centre.x[len(centre.x) // 4]), float(centre.y[len(centre.y) // 4]))
    assert footprint.buffer(0.01).contains(Polygon([(lon, lat), (lon + 1e-6, lat), (lon, lat + 1e-6)]))


# --- values ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(PRODUCTS))
def test_reflectance_of_pixels_matches_a_hand_computation_from_the_dn(key):
    product = PRODUCTS[key]
    scene = open_scene(product.path, chunks=256)
    quantification, offsets = radiometry(product)
    assert quantification == 10000
    for group, bands in product.groups.items():
        dataset = scene[group].ds
        height, width = dataset.sizes["y"], dataset.sizes["x"]
        with rasterio.open(gdal_path(product.path, product.band_suffix.format(band=bands[0]))) as raw:
            no_data_row, no_data_col = np.argwhere(raw.read(1) == 0)[0]  # every product has some outside the swath
        rows = [0, height // 2, height - 1, 7, int(no_data_row)]
        cols = [0, width // 3, 0, width - 2, int(no_data_col)]
        pixels = dataset.isel(y=xr.DataArray(rows, dims="pixel"), x=xr.DataArray(cols, dims="pixel")).compute()
        any_no_data = np.zeros(len(rows), dtype=bool)
        for band in bands:
            suffix = product.band_suffix.format(band=band)
            offset = offsets.get(band, 0.0)
            assert dataset[band].attrs["radiometric_offset"] == offset
            assert dataset[band].attrs["quantification_value"] == quantification
            dn = np.array([read_dn(product.path, suffix, row, col) for row, col in zip(rows, cols)])
            values = pixels[band].values
            expected = np.where(dn == 0, np.nan, (dn + offset) / quantification)
            np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)  # NaN where DN is 0
            any_no_data |= dn == 0
        assert any_no_data[-1]
        np.testing.assert_array_equal(pixels["nodata"].values, any_no_data)
    if product.level == "L2A":
        assert offsets["B02"] == -1000
        assert read_dn(product.path, "_B02_60m.jp2", 89, 448) == 1000
        assert float(scene["r60m"]["B02"][89, 448]) == 0.0  # a reflectance of exactly 0 stays 0


def test_l2a_masks_are_integer_layers_in_their_resolution_group():
    product = PRODUCTS["L2A_SAFE_dir"]
    scene = open_scene(product.path, chunks=512)
    r20m = scene["r20m"].ds
    assert list(r20m.data_vars) == ["SCL", "MSK_CLDPRB", "MSK_SNWPRB"]  # SCL at 20 m: bands only at 60 m
    for name, suffix in [("SCL", "_SCL_20m.jp2"), ("MSK_CLDPRB", "MSK_CLDPRB_20m.jp2"),
                         ("MSK_SNWPRB", "MSK_SNWPRB_20m.jp2")]:
        with rasterio.open(gdal_path(product.path, suffix)) as raw:
            assert r20m[name].shape == raw.shape and r20m.rio.transform().almost_equals(raw.transform)
            window = raw.read(1, window=Window(2000, 1000, 40, 30))
        assert r20m[name].dtype == np.uint8
        np.testing.assert_array_equal(r20m[name][1000:1030, 2000:2040].values, window)
    assert r20m["SCL"].attrs["flag_values"] == list(range(12))
    assert r20m["MSK_CLDPRB"].attrs["units"] == "%"
    # MSK_CLASSI_B00.jp2: three 0/1 layers on the 60 m grid.
    with rasterio.open(gdal_path(product.path, "MSK_CLASSI_B00.jp2")) as raw:
        classi = raw.read(window=Window(600, 300, 50, 50))
    for index, name in enumerate(["MSK_CLASSI_OPAQUE", "MSK_CLASSI_CIRRUS", "MSK_CLASSI_SNOW_ICE"]):
        np.testing.assert_array_equal(scene["r60m"][name][300:350, 600:650].values, classi[index])


@pytest.mark.parametrize("key", sorted(PRODUCTS))
def test_angle_grids_are_the_tile_metadata_grids_on_their_own_coordinates(key):
    product = PRODUCTS[key]
    scene = open_scene(product.path)
    angles = scene["angles"].ds
    tile = xml(product.path, product.tile_xml)

    def grid(element: ET.Element) -> np.ndarray:
        return np.array([[float(v) for v in row.text.split()] for row in element.iter("VALUES")])

    sun = tile.find(".//Sun_Angles_Grid")
    np.testing.assert_array_equal(angles["sun_zenith"].values, grid(sun.find("Zenith")).astype(np.float32))
    np.testing.assert_array_equal(angles["sun_azimuth"].values, grid(sun.find("Azimuth")).astype(np.float32))
    step = float(sun.find("Zenith/COL_STEP").text)
    assert angles.sizes == {"y": 23, "x": 23} and step == 5000
    assert angles.x[0] == float(first_text(tile, "ULX")) and angles.y[0] == float(first_text(tile, "ULY"))
    assert set(np.diff(angles.x.values)) == {step} and set(np.diff(angles.y.values)) == {-step}
    assert angles.rio.crs.to_epsg() == product.epsg
    assert all(angles[name].dtype == np.float32 for name in angles.data_vars)

    zenith_grids = np.array([grid(g.find("Zenith")) for g in tile.iter("Viewing_Incidence_Angles_Grids")])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        plain_mean = np.nanmean(zenith_grids, axis=0)  # all-NaN nodes warn
    view = angles["view_zenith"].values
    np.testing.assert_array_equal(np.isnan(view), np.isnan(plain_mean))
    # The reader averages viewing directions (not angles): within 0.3 degree of the plain mean of zeniths.
    assert np.nanmax(np.abs(view - plain_mean)) < 0.3
    band_means = [float(e.find("ZENITH_ANGLE").text) for e in tile.iter("Mean_Viewing_Incidence_Angle")]
    assert np.nanmean(view) == pytest.approx(np.mean(band_means), abs=0.1)


def test_view_angles_merge_detectors_and_average_directions_not_azimuths():
    """Two detectors of one band: disjoint nodes pass through; where they overlap near nadir, looking from
    opposite sides (azimuth 90 and 270), the mean direction is straight down."""
    document = """<Tile><Geoposition><ULX>0</ULX><ULY>100</ULY></Geoposition><Tile_Angles>
      <Sun_Angles_Grid><Zenith><COL_STEP>10</COL_STEP><ROW_STEP>10</ROW_STEP><Values_List>
        <VALUES>30 30 30</VALUES></Values_List></Zenith>
        <Azimuth><COL_STEP>10</COL_STEP><ROW_STEP>10</ROW_STEP><Values_List>
        <VALUES>150 150 150</VALUES></Values_List></Azimuth></Sun_Angles_Grid>
      <Viewing_Incidence_Angles_Grids bandId="1" detectorId="1">
        <Zenith><Values_List><VALUES>5 1 NaN</VALUES></Values_List></Zenith>
        <Azimuth><Values_List><VALUES>100 90 NaN</VALUES></Values_List></Azimuth></Viewing_Incidence_Angles_Grids>
      <Viewing_Incidence_Angles_Grids bandId="1" detectorId="2">
        <Zenith><Values_List><VALUES>NaN 1 NaN</VALUES></Values_List></Zenith>
        <Azimuth><Values_List><VALUES>NaN 270 NaN</VALUES></Values_List></Azimuth></Viewing_Incidence_Angles_Grids>
      </Tile_Angles></Tile>"""
    angles = angles_dataset(XmlDoc(ET.fromstring(document), "test"), rasterio.crs.CRS.from_epsg(32632))
    np.testing.assert_allclose(angles["view_zenith"].values[0, :2], [5, 0], atol=1e-5)
    assert angles["view_azimuth"].values[0, 0] == pytest.approx(100, abs=1e-4)
    assert np.isnan(angles["view_zenith"].values[0, 2])
    np.testing.assert_array_equal(angles.x.values, [0, 10, 20])


# --- laziness, chunks, graph size ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(PRODUCTS))
def test_opening_reads_no_pixel(key, monkeypatch):
    product = PRODUCTS[key]
    reads: list[tuple] = []
    real_read_window = raster_module.read_window

    def counting_read_window(*args, **kwargs):
        reads.append(args)
        return real_read_window(*args, **kwargs)

    def forbidden_scheduler(*args, **kwargs):
        raise AssertionError("a Dask graph was computed while opening")

    monkeypatch.setattr(raster_module, "read_window", counting_read_window)
    with dask.config.set(scheduler=forbidden_scheduler):
        scene = open_scene(product.path)
    assert reads == []
    # The probe sees reads once something is computed.
    band = product.groups[next(iter(product.groups))][0]
    scene[next(iter(product.groups))][band][:2, :2].compute(scheduler="sync")
    assert reads


def test_chunked_read_equals_whole_read():
    product = PRODUCTS["L1C_SAFE_zip"]
    whole = open_scene(product.path)
    chunked = open_scene(product.path, chunks={"y": 100, "x": 64})
    assert chunked["r10m"]["B02"].chunks == ((100,) * 4 + (39,), (64,) * 6 + (55,))
    for group in product.groups:
        for name in whole[group].ds.data_vars:
            np.testing.assert_array_equal(chunked[group][name].values, whole[group][name].values)
    with rasterio.open(gdal_path(product.path, "_B04.jp2")) as raw:
        dn = raw.read(1)
    expected = np.where(dn == 0, np.nan, dn / 10000.0).astype(np.float32)
    np.testing.assert_allclose(chunked["r10m"]["B04"].values, expected, rtol=1e-6)
    # Distributed workers get the graph pickled: the per-band conversion and the reader must survive it.
    restored = pickle.loads(pickle.dumps(chunked["r10m"]["B04"].data))
    np.testing.assert_array_equal(restored.compute(scheduler="sync"), chunked["r10m"]["B04"].values)


def _decoding_threads(path: str) -> int:
    """The most threads this process ran at once, beyond the ones it had before, during one windowed JPEG 2000
    read with a fresh handle (GDAL's block cache would serve a second read): OpenJPEG decodes in threads it
    starts for the read, one when one thread decodes, as many as the cores when GDAL's default spreads it. A
    count of threads, not of CPU seconds over wall seconds: it does not depend on what else the machine runs
    (another test process, another worker)."""
    raster_module._thread_state.handles = None
    raster_module.read_window(path, slice(0, 8), slice(0, 8))  # opens the handle outside the measurement
    done, peak = threading.Event(), [0]

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(os.listdir("/proc/self/task")))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    before = len(os.listdir("/proc/self/task"))  # this process's threads, the watcher included
    try:
        raster_module.read_window(path, slice(0, 2048), slice(0, 2048))
    finally:  # a failing read must not leave the watcher running (the test would hang instead of failing)
        done.set()
        watcher.join()
    return peak[0] - before


def test_jpeg2000_reads_decode_in_one_thread(tmp_path, monkeypatch):
    """A Dask task is one unit of parallelism: GDAL's JPEG 2000 driver, which decodes with every CPU by default,
    must not spread one read over the cores the other workers use (``GDAL_NUM_THREADS`` set by the user wins)."""
    values = (np.arange(2048 * 2048, dtype=np.uint32).reshape(2048, 2048) * 7919 % 10000).astype(np.uint16)
    path = str(tmp_path / "B04.jp2")
    write_sentinel2_jp2(Path(path), values, PixelGrid(32633, 300000.0, 5900040.0, 10.0, 2048, 2048))
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    assert _decoding_threads(path) <= 1
    np.testing.assert_array_equal(raster_module.read_window(path, slice(0, 2048), slice(0, 2048)), values)
    if (os.cpu_count() or 1) >= 2:  # the control: GDAL's own default spreads the decoding over the cores
        monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")
        assert _decoding_threads(path) >= 2


def test_graph_of_one_band_has_a_few_tasks_per_chunk():
    product = PRODUCTS["L2A_SAFE_dir"]
    sizes = {}
    for chunk in (256, 128):
        band = open_scene(product.path, chunks=chunk)["r60m"]["B02"].data
        n_chunks = math.prod(len(c) for c in band.chunks)
        sizes[chunk] = n_chunks, len(dict(band.__dask_graph__()))
        assert sizes[chunk][1] <= 3 * n_chunks + 3
    assert sizes[256][0] == 64 and sizes[128][0] == 225


# --- baseline >= 04.00 L1C, as ESA writes it -----------------------------------------------------------------------
def test_l1c_baseline_04_applies_radio_add_offset(tmp_path):
    """The real 02.06 L1C rewritten as a 04.00 product: PROCESSING_BASELINE and a Radiometric_Offset_List
    with ``RADIO_ADD_OFFSET band_id=..`` after QUANTIFICATION_VALUE (ESA's layout); real jp2 files."""
    source = PRODUCTS["L1C_SAFE_zip"].path
    with zipfile.ZipFile(source) as archive:
        for name in archive.namelist():
            if name.endswith((".xml", ".jp2")) and "/QI_DATA/" not in name and "/DATASTRIP/" not in name:
                archive.extract(name, tmp_path)
    safe = tmp_path / f"{L1C_SAFE}.SAFE"
    mtd = safe / "MTD_MSIL1C.xml"
    offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
    text = mtd.read_text(encoding="utf-8").replace("<PROCESSING_BASELINE>02.06<", "<PROCESSING_BASELINE>04.00<")
    text = re.sub(r"(<QUANTIFICATION_VALUE[^>]*>[^<]*</QUANTIFICATION_VALUE>)",
                  rf"\1<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>", text)
    mtd.write_text(text, encoding="utf-8")

    scene = open_scene(safe)
    assert scene.attrs["processing_baseline"] == "04.00"
    band = scene["r10m"]["B03"]
    assert band.attrs["radiometric_offset"] == -1000
    with rasterio.open(next(safe.rglob("*_B03.jp2"))) as raw:
        dn = raw.read(1)
    expected = np.where(dn == 0, np.nan, (dn - 1000.0) / 10000.0).astype(np.float32)
    np.testing.assert_allclose(band.values, expected, rtol=1e-6, atol=1e-7)


# --- bad inputs ---------------------------------------------------------------------------------------------------
def test_truncated_zip_raises_product_error_naming_it(tmp_path):
    source = PRODUCTS["L1C_SAFE_zip"].path
    truncated = tmp_path / source.name
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ProductError, match=re.escape(str(truncated))):
        open_scene(truncated)


def test_missing_tile_metadata_raises_metadata_error(tmp_path):
    safe = safe_copy(tmp_path, leave_out=("/MTD_TL.xml",))
    with pytest.raises(MetadataError, match="MTD_TL.xml") as error:
        open_scene(safe)
    assert str(safe) in str(error.value)


def test_truncated_product_metadata_raises_metadata_error_naming_it(tmp_path):
    safe = safe_copy(tmp_path)
    mtd = safe / "MTD_MSIL2A.xml"
    mtd.write_bytes(mtd.read_bytes()[:20000])
    with pytest.raises(MetadataError, match=re.escape(str(mtd)) + ".*not well-formed XML"):
        open_scene(safe)


def test_corrupt_tile_metadata_raises_metadata_error_naming_it(tmp_path):
    safe = safe_copy(tmp_path)
    (tile,) = safe.rglob("MTD_TL.xml")
    tile.write_text("<n1:Level-2A_Tile_ID><General_Info>", encoding="utf-8")
    with pytest.raises(MetadataError, match=re.escape(str(tile))):
        open_scene(safe)


def test_l2a_band_without_any_file_is_listed_as_missing(tmp_path, caplog):
    safe = safe_copy(tmp_path, leave_out=("_B05_60m.jp2",))
    with caplog.at_level(logging.WARNING, logger="gmsdask.io.sentinel2"):
        scene = open_scene(safe)
    assert scene.attrs["missing_bands"] == ["B05", "B08"]  # B08 ships only at 10 m, absent from this product
    assert "B05" not in scene["r60m"].ds and "B05" not in scene.attrs["band_names"]
    assert "B05" in caplog.text


def test_l2a_without_any_band_file_raises_band_file_error(tmp_path):
    safe = safe_copy(tmp_path, leave_out=tuple(f"_{band}_60m.jp2" for band in ESA_ORDER))
    with pytest.raises(BandFileError, match="no spectral band file"):
        open_scene(safe)


@pytest.mark.parametrize("key", ["L1C_SAFE_zip", "AWS_PDS_zip"])
def test_l1c_zip_without_a_band_file_raises_band_file_error_naming_it(key, tmp_path):
    product = PRODUCTS[key]
    suffix = product.band_suffix.format(band="B04")
    broken = zip_without(product.path, tmp_path / product.path.name, suffix)
    with pytest.raises(BandFileError, match=re.escape(f"{broken}!/{member(product.path, suffix)}")):
        open_scene(broken)
