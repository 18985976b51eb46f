"""Tests of gmsdask.synthetic: real formats, byte-identical output, and truth that the files bear out.

Small products only (a few hundred pixels); the whole module runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely import wkt

from gmsdask.errors import GmsdaskError
from gmsdask.synthetic import (
    Landscape,
    SyntheticParameterError,
    UtmBox,
    band_atmosphere,
    sentinel2_extent,
    sentinel2_tile_origin,
    surface_reflectance,
    toa_reflectance,
    write_landsat_l1,
    write_sentinel2_l1c,
    write_sentinel2_l2a,
)
from gmsdask.synthetic.spectra import band_reflectance

from .conftest import data_path

TILE = "33UUU"
SIZE = (300, 300)  # 3 km x 3 km at 10 m


# --- small metadata readers (independent of the writer's code) -------------------------------------------
def parse_mtl(text: str) -> dict[str, str]:
    """Flat ``KEY -> value`` of an MTL/ANG ODL text (quotes removed; later duplicates win)."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"\s*([A-Z0-9_]+) = (.*)$", line)
        if match and match.group(1) not in ("GROUP", "END_GROUP"):
            values[match.group(1)] = match.group(2).strip().strip('"')
    return values


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def find_all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if local(e.tag) == name]


def find_one(root: ET.Element, name: str) -> ET.Element:
    found = find_all(root, name)
    assert found, f"no <{name}> in the XML"
    return found[0]


def read_band(path: Path) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_string()


def _phase_correlation(reference: np.ndarray, moved: np.ndarray, upsample: int) -> tuple[float, float]:
    """One FFT phase correlation, its peak refined by an upsampled matrix DFT (Guizar-Sicairos et al. 2008)."""
    window = np.outer(np.hanning(reference.shape[0]), np.hanning(reference.shape[1]))
    a = np.fft.fft2((reference - reference.mean()) * window)
    b = np.fft.fft2((moved - moved.mean()) * window)
    cross = b * np.conj(a)
    cross /= np.maximum(np.abs(cross), 1e-12)
    correlation = np.fft.ifft2(cross).real
    shape = np.array(correlation.shape)
    peak = np.array(np.unravel_index(np.argmax(correlation), correlation.shape), dtype=float)
    peak[peak > shape / 2] -= shape[peak > shape / 2]
    offsets = np.arange(-1.0, 1.0 + 1e-9, 1.0 / upsample)
    rows, cols = peak[0] + offsets, peak[1] + offsets
    kernel_rows = np.exp(2j * np.pi * np.outer(rows, np.fft.fftfreq(shape[0])))
    kernel_cols = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(shape[1]), cols))
    fine = (kernel_rows @ cross @ kernel_cols).real
    best = np.unravel_index(np.argmax(fine), fine.shape)
    return float(rows[best[0]]), float(cols[best[1]])


def phase_correlation_shift(reference: np.ndarray, moved: np.ndarray, upsample: int = 100) -> tuple[float, float]:
    """``(d_row, d_col)`` such that ``moved[r, c] ~ reference[r - d_row, c - d_col]`` (sub-pixel).

    The window that suppresses the image edges biases a single phase correlation towards zero shift, so, as
    AROSICS does, the moved image is shifted back by the estimate and the residual measured again.
    """
    from scipy import ndimage

    total = np.zeros(2)
    for _ in range(6):
        back = ndimage.shift(moved, -total, order=3, mode="nearest")
        residual = np.array(_phase_correlation(reference, back, upsample))
        total += residual
        if np.abs(residual).max() < 0.5 / upsample:
            break
    return float(total[0]), float(total[1])


# --- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def s2_clear(out):
    return write_sentinel2_l1c(out / "s2_clear", tile=TILE, size=SIZE, seed=5, acquisition_time="2024-06-01")


@pytest.fixture(scope="module")
def landsat_shifted(out):
    """Landsat 9 over the same ground as ``s2_clear``, shifted by (30, -20) m."""
    return write_landsat_l1(out / "l9_shifted", location=sentinel2_extent(TILE, SIZE), seed=5,
                            acquisition_time="2024-06-01", shift_m=(30.0, -20.0))


@pytest.fixture(scope="module")
def landsat_cloudy(out):
    return write_landsat_l1(out / "l9_cloudy", platform="LANDSAT_8", location=sentinel2_extent(TILE, (600, 600)),
                            seed=11, cloud_fraction=0.3, aot550=0.25)


@pytest.fixture(scope="module")
def s2_cloudy(out):
    return write_sentinel2_l1c(out / "s2_cloudy", tile=TILE, size=(600, 600), seed=11, cloud_fraction=0.3,
                               aot550=0.25)


@pytest.fixture(scope="module")
def s2_l2a(out):
    return write_sentinel2_l2a(out / "s2_l2a", platform="SENTINEL_2A", tile="29UNU", size=SIZE, seed=3,
                               cloud_fraction=0.25, aot550=0.15)


# --- tile geometry against real products -------------------------------------------------------------
def test_tile_origin_rule_matches_real_tiles():
    l1c = data_path("sentinel2", "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
    with zipfile.ZipFile(l1c) as zf:
        name = next(n for n in zf.namelist() if n.endswith("MTD_TL.xml"))
        mtd_56jmm = ET.fromstring(zf.read(name))
    aws = data_path("sentinel2", "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip")
    with zipfile.ZipFile(aws) as zf:
        tile_info = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("tileInfo.json"))))
        mtd_55jgf = ET.fromstring(zf.read(next(n for n in zf.namelist()
                                               if n.endswith("/metadata.xml") and "datastrip" not in n)))
    l2a = data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    mtd_29unu = ET.parse(next(l2a.glob("GRANULE/*/MTD_TL.xml"))).getroot()

    for tile, mtd in (("56JMM", mtd_56jmm), ("55JGF", mtd_55jgf), ("29UNU", mtd_29unu)):
        epsg = int(find_one(mtd, "HORIZONTAL_CS_CODE").text.split(":")[1])
        position = find_one(mtd, "Geoposition")
        expected = (epsg, float(find_one(position, "ULX").text), float(find_one(position, "ULY").text))
        assert sentinel2_tile_origin(tile) == expected, tile
    ring = tile_info["tileGeometry"]["coordinates"][0]
    assert sentinel2_tile_origin("55JGF")[1:] == (min(p[0] for p in ring), max(p[1] for p in ring))


# --- determinism -------------------------------------------------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    runs = {}
    for run, seed in (("a", 1), ("b", 1), ("c", 2)):
        s2 = write_sentinel2_l1c(tmp_path / run, size=(120, 120), seed=seed, cloud_fraction=0.2, archive=True)
        l8 = write_landsat_l1(tmp_path / run, platform="LANDSAT_8", location=sentinel2_extent(TILE, (120, 120)),
                              seed=seed, cloud_fraction=0.2, archive=True)
        runs[run] = {"s2": _sha(s2.path), "l8": _sha(l8.path), "s2_truth": _sha(s2.truth_json),
                     "l8_truth": _sha(l8.truth_json), "names": (s2.path.name, l8.path.name)}
        assert s2.path.suffix == ".zip" and l8.path.suffix == ".tar"
    assert runs["a"] == runs["b"]
    assert runs["a"]["names"] == runs["c"]["names"]
    for key in ("s2", "l8", "s2_truth", "l8_truth"):
        assert runs["a"][key] != runs["c"][key], key


def test_archives_have_the_delivered_layout_and_open_in_place(tmp_path):
    s2 = write_sentinel2_l1c(tmp_path, size=(60, 60), archive=True)
    with zipfile.ZipFile(s2.path) as zf:
        names = zf.namelist()
    assert names[0] == f"{s2.product_id}.SAFE/"
    band = next(n for n in names if n.endswith("_B04.jp2"))
    with rasterio.open(f"/vsizip/{s2.path}/{band}") as ds:
        assert ds.shape == (60, 60) and ds.crs.to_epsg() == 32633
    l9 = write_landsat_l1(tmp_path, size=(40, 40))
    l9_tar = write_landsat_l1(tmp_path / "tar", size=(40, 40), archive=True)
    with tarfile.open(l9_tar.path) as tar:
        members = tar.getnames()
    assert sorted(members) == sorted(p.name for p in l9.path.iterdir())
    with rasterio.open(f"/vsitar/{l9_tar.path}/{l9.product_id}_B4.TIF") as ds:
        assert ds.shape == (40, 40)


# --- Sentinel-2 format ------------------------------------------------------------------------------------
def _safe_xml(product) -> tuple[ET.Element, ET.Element]:
    level = product.processing_level
    mtd = ET.parse(product.path / f"MTD_MSI{level}.xml").getroot()
    tile = ET.parse(next(product.path.glob("GRANULE/*/MTD_TL.xml"))).getroot()
    return mtd, tile


def test_sentinel2_l1c_files_named_in_metadata_have_the_tile_geocoding(s2_clear):
    mtd, tile = _safe_xml(s2_clear)
    assert find_one(mtd, "PROCESSING_BASELINE").text >= "04.00"
    assert find_one(mtd, "QUANTIFICATION_VALUE").text == "10000"
    offsets = find_all(mtd, "RADIO_ADD_OFFSET")
    assert len(offsets) == 13 and {o.text for o in offsets} == {"-1000"}
    special = {find_one(s, "SPECIAL_VALUE_TEXT").text: find_one(s, "SPECIAL_VALUE_INDEX").text
               for s in find_all(mtd, "Special_Values")}
    assert special == {"NODATA": "0", "SATURATED": "65535"}
    resolution = {e.get("physicalBand"): int(find_one(e, "RESOLUTION").text)
                  for e in find_all(mtd, "Spectral_Information")}
    assert resolution["B2"] == 10 and resolution["B5"] == 20 and resolution["B10"] == 60

    epsg = int(find_one(tile, "HORIZONTAL_CS_CODE").text.split(":")[1])
    geoposition = {int(g.get("resolution")): (float(find_one(g, "ULX").text), float(find_one(g, "ULY").text))
                   for g in find_all(tile, "Geoposition")}
    sizes = {int(s.get("resolution")): (int(find_one(s, "NROWS").text), int(find_one(s, "NCOLS").text))
             for s in find_all(tile, "Size")}
    origin = sentinel2_tile_origin(TILE)
    assert epsg == origin[0] and set(geoposition.values()) == {origin[1:]}
    assert sizes == {10: SIZE, 20: (150, 150), 60: (50, 50)}

    image_files = [e.text for e in find_all(mtd, "IMAGE_FILE")]
    assert len(image_files) == 13
    for name in image_files:
        band = name.rsplit("_", 1)[1]
        res = resolution[band if band == "B8A" else f"B{int(band[1:])}"]
        data, transform, crs = read_band(s2_clear.path / f"{name}.jp2")
        assert crs == f"EPSG:{epsg}"
        assert (transform.c, transform.f, transform.a, transform.e) == (*origin[1:], res, -res)
        assert data.shape == sizes[res] and data.dtype == np.uint16
        assert data.min() >= 1000  # no fill in a full-coverage tile, DN = reflectance * 1e4 + 1000

    masks = {m.get("type"): m.text for m in find_all(tile, "MASK_FILENAME")}
    with rasterio.open(s2_clear.path / masks["MSK_CLASSI"]) as ds:
        assert ds.count == 3 and ds.shape == sizes[60] and ds.transform.a == 60 and ds.crs.to_epsg() == epsg

    sun = find_one(find_one(tile, "Sun_Angles_Grid"), "Zenith")
    rows = [r.text.split() for r in find_all(sun, "VALUES")]
    assert len(rows) == 23 and {len(r) for r in rows} == {23}
    assert find_one(sun, "COL_STEP").text == "5000"
    mean_sun = float(find_one(find_one(tile, "Mean_Sun_Angle"), "ZENITH_ANGLE").text)
    assert mean_sun == pytest.approx(s2_clear.sun_zenith_deg, abs=1e-9)
    assert float(np.nanmin(np.array(rows, dtype=float))) <= mean_sun <= float(np.nanmax(np.array(rows, dtype=float)))
    assert len({g.get("bandId") for g in find_all(tile, "Viewing_Incidence_Angles_Grids")}) == 13

    footprint = [float(v) for v in find_one(mtd, "EXT_POS_LIST").text.split()]
    lats, lons = footprint[0::2], footprint[1::2]
    truth_polygon = wkt.loads(s2_clear.footprint_wkt)
    assert truth_polygon.bounds == pytest.approx((min(lons), min(lats), max(lons), max(lats)), abs=1e-6)

    manifest = ET.parse(s2_clear.path / "manifest.safe").getroot()
    listed = {e.get("href")[2:] for e in find_all(manifest, "fileLocation")}
    written = {p.relative_to(s2_clear.path).as_posix() for p in s2_clear.path.rglob("*")
               if p.is_file() and p.name != "manifest.safe"}
    assert listed == written


def test_sentinel2_dn_decode_to_the_toa_truth(s2_cloudy):
    mtd, _ = _safe_xml(s2_cloudy)
    quantification = float(find_one(mtd, "QUANTIFICATION_VALUE").text)
    offsets = {int(o.get("band_id")): float(o.text) for o in find_all(mtd, "RADIO_ADD_OFFSET")}
    band_ids = {e.get("physicalBand"): int(e.get("bandId")) for e in find_all(mtd, "Spectral_Information")}
    for name in (e.text for e in find_all(mtd, "IMAGE_FILE")):
        band = name.rsplit("_", 1)[1]
        dn, transform, _ = read_band(s2_cloudy.path / f"{name}.jp2")
        toa = (dn + offsets[band_ids[band if band == "B8A" else f"B{int(band[1:])}"]]) / quantification
        group = f"r{int(transform.a)}m"
        truth = s2_cloudy.toa[group][band].values
        assert np.abs(toa - truth).max() <= 0.5 / quantification + 1e-6, band
    cover = float(find_one(mtd, "Cloud_Coverage_Assessment").text)
    assert cover == pytest.approx(100 * float(s2_cloudy.scene["r20m"].cloud.mean()), abs=1e-4)
    assert 20.0 < cover < 40.0  # 30 % requested
    classi = next(s2_cloudy.path.glob("GRANULE/*/QI_DATA/MSK_CLASSI_B00.jp2"))
    with rasterio.open(classi) as ds:
        opaque = ds.read(1).astype(bool)
    np.testing.assert_array_equal(opaque, s2_cloudy.scene["r60m"].cloud.values)


def test_sentinel2_l2a_layout_and_boa_equal_surface_reflectance_outside_clouds(s2_l2a):
    mtd, tile = _safe_xml(s2_l2a)
    assert find_one(mtd, "BOA_QUANTIFICATION_VALUE").text == "10000"
    offsets = {o.text for o in find_all(mtd, "BOA_ADD_OFFSET")}
    assert offsets == {"-1000"}
    assert find_one(tile, "HORIZONTAL_CS_CODE").text == "EPSG:32629"
    names = [e.text for e in find_all(mtd, "IMAGE_FILE")]
    assert any(n.endswith("R10m/" + Path(n).name) and n.endswith("_B02_10m") for n in names)
    assert any(n.endswith("_SCL_20m") for n in names)
    origin = sentinel2_tile_origin("29UNU")
    for name in names:
        res = int(re.search(r"/R(\d+)m/", name).group(1))
        assert name.endswith(f"_{res}m")
        data, transform, crs = read_band(s2_l2a.path / f"{name}.jp2")
        assert crs == "EPSG:32629" and (transform.c, transform.f, transform.a) == (*origin[1:], res)
        assert data.shape == (SIZE[0] * 10 // res, SIZE[1] * 10 // res)
        assert data.dtype == (np.uint8 if name.endswith(("_SCL_20m", "_SCL_60m")) else np.uint16)
    masks = {m.text for m in find_all(tile, "MASK_FILENAME")}
    assert any(m.endswith("MSK_CLDPRB_20m.jp2") for m in masks)
    for mask in masks:
        assert (s2_l2a.path / mask).exists(), mask

    scene10 = s2_l2a.scene["r10m"]
    # untouched by any cloud or shadow (the masks start at 10 % opacity / blocked sunlight)
    clear = (scene10.cloud_opacity.values == 0) & (scene10.shadow_fraction.values == 0)
    assert 0.3 < clear.mean() < 0.95
    for band in ("B02", "B04", "B08"):
        dn, _, _ = read_band(next(s2_l2a.path.glob(f"GRANULE/*/IMG_DATA/R10m/*_{band}_10m.jp2")))
        boa = (dn - 1000.0) / 10000.0
        truth = s2_l2a.surface_reflectance["r10m"][band].values
        assert np.abs(boa - truth)[clear].max() <= 0.5e-4 + 1e-6, band
        # under clouds the BOA is far brighter than the ground
        assert np.median(boa[scene10.cloud.values]) > np.median(truth) + 0.1

    scl, _, _ = read_band(next(s2_l2a.path.glob("GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2")))
    scene = s2_l2a.scene["r20m"]
    np.testing.assert_array_equal(np.isin(scl, (8, 9)), scene.cloud.values)
    np.testing.assert_array_equal(scl == 3, scene.shadow.values)
    water = (scene.land_cover.values == 1) & ~scene.cloud.values & ~scene.shadow.values
    np.testing.assert_array_equal(scl == 6, water)
    cloud_probability, _, _ = read_band(next(s2_l2a.path.glob("GRANULE/*/QI_DATA/MSK_CLDPRB_20m.jp2")))
    assert (cloud_probability[scene.cloud.values] >= 10).all() and (cloud_probability[~scene.cloud.values] < 10).all()
    aot, _, _ = read_band(next(s2_l2a.path.glob("GRANULE/*/IMG_DATA/R60m/*_AOT_60m.jp2")))
    assert set(np.unique(aot)) == {150}


# --- Landsat format ----------------------------------------------------------------------------------------
def test_landsat_files_named_in_mtl_have_the_usgs_grid(landsat_cloudy):
    product = landsat_cloudy
    mtl_text = (product.path / f"{product.product_id}_MTL.txt").read_text()
    assert mtl_text.startswith("GROUP = LANDSAT_METADATA_FILE\n") and mtl_text.endswith("END\n")
    mtl = parse_mtl(mtl_text)
    mtl_xml = ET.parse(product.path / f"{product.product_id}_MTL.xml")
    xml_leaves = {local(e.tag): (e.text or "") for e in mtl_xml.iter() if len(e) == 0}
    assert {k: v for k, v in xml_leaves.items()} == {k: mtl[k] for k in xml_leaves}
    assert mtl["SPACECRAFT_ID"] == "LANDSAT_8" and mtl["PROCESSING_LEVEL"] == "L1TP"
    assert mtl["LANDSAT_PRODUCT_ID"] == product.product_id and product.path.name == product.product_id
    assert re.fullmatch(r"LC08_L1TP_\d{6}_\d{8}_\d{8}_02_T1", product.product_id)
    epsg = 32600 + int(mtl["UTM_ZONE"])
    shapes = {30: (int(mtl["REFLECTIVE_LINES"]), int(mtl["REFLECTIVE_SAMPLES"])),
              15: (int(mtl["PANCHROMATIC_LINES"]), int(mtl["PANCHROMATIC_SAMPLES"]))}
    assert shapes[15] == (2 * shapes[30][0] - 1, 2 * shapes[30][1] - 1)
    ul = (float(mtl["CORNER_UL_PROJECTION_X_PRODUCT"]), float(mtl["CORNER_UL_PROJECTION_Y_PRODUCT"]))
    files = [mtl[f"FILE_NAME_BAND_{b}"] for b in range(1, 12)] + [mtl["FILE_NAME_QUALITY_L1_PIXEL"],
                                                                 mtl["FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION"]]
    for name in files:
        data, transform, crs = read_band(product.path / name)
        res = 15 if name.endswith("_B8.TIF") else 30
        assert crs == f"EPSG:{epsg}" and data.dtype == np.uint16 and data.shape == shapes[res]
        assert (transform.a, transform.e) == (res, -res)
        # pixel centres of the corner pixel at the MTL corner; 30 m corners at odd multiples of 15 m
        assert (transform.c + res / 2, transform.f - res / 2) == ul
        if res == 30:
            assert transform.c % 30 == 15 and transform.f % 30 == 15
    for key in ("ANGLE_COEFFICIENT", "METADATA_ODL", "METADATA_XML"):
        assert (product.path / mtl[f"FILE_NAME_{key}"]).exists()

    # ANG.txt carries the true data corners; the fill follows them
    ang = parse_mtl((product.path / mtl["FILE_NAME_ANGLE_COEFFICIENT"]).read_text())
    lines = [float(v) for v in ang["BAND04_L1T_IMAGE_CORNER_LINES"].strip("()").split(",")]
    samps = [float(v) for v in ang["BAND04_L1T_IMAGE_CORNER_SAMPS"].strip("()").split(",")]
    valid = ~product.scene["r30m"].nodata.values
    rows, cols = np.nonzero(valid)
    # the outermost valid pixel centres lie within a pixel and a half of the tilted rectangle's vertices
    assert rows.min() == pytest.approx(min(lines), abs=1.5) and rows.max() == pytest.approx(max(lines), abs=1.5)
    assert cols.min() == pytest.approx(min(samps), abs=1.5) and cols.max() == pytest.approx(max(samps), abs=1.5)
    pan_lines = [float(v) for v in ang["BAND08_L1T_IMAGE_CORNER_LINES"].strip("()").split(",")]
    assert pan_lines == pytest.approx([2 * v for v in lines], abs=1e-5)
    assert 0.05 < (~valid).mean() < 0.5  # fill triangles around the tilted swath


def test_landsat_dn_decode_to_the_toa_truth(landsat_cloudy):
    product = landsat_cloudy
    mtl = parse_mtl((product.path / f"{product.product_id}_MTL.txt").read_text())
    sin_elevation = math.sin(math.radians(float(mtl["SUN_ELEVATION"])))
    nodata = product.scene["r30m"].nodata.values
    for b in (1, 2, 3, 4, 5, 6, 7, 8, 9):
        dn, _, _ = read_band(product.path / mtl[f"FILE_NAME_BAND_{b}"])
        mult, add = float(mtl[f"REFLECTANCE_MULT_BAND_{b}"]), float(mtl[f"REFLECTANCE_ADD_BAND_{b}"])
        toa = np.where(dn == 0, np.nan, (mult * dn + add) / sin_elevation)
        truth = product.toa["r15m" if b == 8 else "r30m"][f"B{b}"].values
        np.testing.assert_array_equal(np.isnan(toa), np.isnan(truth))
        assert np.nanmax(np.abs(toa - truth)) <= mult / 2 / sin_elevation * 1.001, b
        if b != 8:
            assert (dn[nodata] == 0).all() and (dn[~nodata] > 0).all()
        radiance = float(mtl[f"RADIANCE_MULT_BAND_{b}"]) * dn + float(mtl[f"RADIANCE_ADD_BAND_{b}"])
        # radiance and reflectance coefficients describe the same DN (rho' = pi L d^2 / ESUN)
        ratio = (radiance / (mult * dn + add))[dn > 10000]
        assert np.ptp(ratio) < 1e-3 * ratio.mean()
    for b in (10, 11):
        dn, _, _ = read_band(product.path / mtl[f"FILE_NAME_BAND_{b}"])
        radiance = float(mtl[f"RADIANCE_MULT_BAND_{b}"]) * dn + float(mtl[f"RADIANCE_ADD_BAND_{b}"])
        k1, k2 = float(mtl[f"K1_CONSTANT_BAND_{b}"]), float(mtl[f"K2_CONSTANT_BAND_{b}"])
        bt = np.where(dn == 0, np.nan, k2 / np.log(k1 / radiance + 1))
        truth = product.toa["r30m"][f"B{b}"].values
        assert np.nanmax(np.abs(bt - truth)) < 0.01, b
        assert 240 < np.nanmin(truth) and np.nanmax(truth) < 320


def test_landsat_qa_pixel_bits_follow_the_truth(landsat_cloudy):
    product = landsat_cloudy
    qa, _, _ = read_band(product.path / f"{product.product_id}_QA_PIXEL.TIF")
    scene = product.scene["r30m"]
    np.testing.assert_array_equal(qa & 1 == 1, scene.nodata.values)
    np.testing.assert_array_equal((qa >> 3) & 1 == 1, scene.cloud.values)
    np.testing.assert_array_equal((qa >> 4) & 1 == 1, scene.shadow.values)
    clear = (qa >> 6) & 1 == 1
    assert not (clear & scene.cloud.values).any() and clear[~scene.nodata.values].mean() > 0.4
    cloudy = scene.cloud.values
    assert (((qa >> 8) & 3)[cloudy] >= 2).all() and (((qa >> 8) & 3)[~cloudy & ~scene.nodata.values] == 1).all()
    mtl = parse_mtl((product.path / f"{product.product_id}_MTL.txt").read_text())
    assert float(mtl["CLOUD_COVER"]) == pytest.approx(100 * cloudy.sum() / (~scene.nodata.values).sum(), abs=0.01)
    assert 15.0 < float(mtl["CLOUD_COVER"]) < 45.0  # 30 % requested
    # clouds are bright and flat at TOA, shadows darken the ground
    toa_red = product.toa["r30m"]["B4"].values
    sr_red = product.surface_reflectance["r30m"]["B4"].values
    thick = scene.cloud_opacity.values > 0.9
    assert np.nanmedian(toa_red[thick]) > 0.5
    shadow = (scene.shadow_fraction.values > 0.9) & (scene.cloud_opacity.values == 0)
    darkening = toa_red - sr_red
    assert shadow.any() and np.nanmedian(darkening[shadow]) < np.nanmedian(darkening[~cloudy & ~shadow])


# --- physics -------------------------------------------------------------------------------------------------
def test_atmosphere_inverse_is_exact_and_the_model_behaves():
    rng = np.random.default_rng(0)
    rho = rng.uniform(0.0, 0.9, 1000)
    geometry = dict(sun_zenith_deg=32.45, view_zenith_deg=9.9, relative_azimuth_deg=50.72)

    def terms(band: str, aot: float):
        return band_atmosphere("SENTINEL_2B", band, aot550=aot, **geometry)

    for band in ("B01", "B03", "B8A", "B10", "B12"):
        for aot in (0.05, 0.4):
            np.testing.assert_allclose(surface_reflectance(toa_reflectance(rho, terms(band, aot)), terms(band, aot)),
                                       rho, rtol=0, atol=1e-12)
    assert toa_reflectance(0.02, terms("B02", 0.05)) > 0.02  # path radiance brightens dark targets in the blue
    assert toa_reflectance(0.02, terms("B02", 0.4)) > toa_reflectance(0.02, terms("B02", 0.05))
    assert toa_reflectance(0.3, terms("B10", 0.05)) < 0.02  # the cirrus band sees no ground through water vapour


def test_landscape_is_one_ground_whatever_the_grid():
    landscape = Landscape(seed=4)
    x10 = 300000.0 + 5.0 + 10.0 * np.arange(1200)
    y10 = 5900040.0 - 5.0 - 10.0 * np.arange(1200)
    fine = landscape.sample(x10, y10, 10.0)
    coarse = landscape.sample(x10.reshape(-1, 6).mean(axis=1), y10.reshape(-1, 6).mean(axis=1), 60.0)
    red = band_reflectance("SENTINEL_2B", "B04")
    fine_60 = fine.reflectance(red).reshape(200, 6, 200, 6).mean(axis=(1, 3))
    difference = np.abs(coarse.reflectance(red) - fine_60)
    assert difference.mean() < 0.004 and np.percentile(difference, 99) < 0.03
    classes = np.bincount(fine.land_cover().ravel(), minlength=10)[1:] / fine.land_cover().size
    assert (classes > 0.003).sum() >= 7  # fields, forest, water, roads ... in a 12 km square
    # structure, not noise: neighbouring pixels are far more alike than distant ones
    r = fine.reflectance(red)
    assert np.abs(np.diff(r, axis=1)).mean() < 0.5 * np.abs(r[:, 600:] - r[:, :600]).mean()


def test_a_pixel_does_not_depend_on_the_block_it_is_rendered_in():
    """A pixel's ground is a function of its coordinates only: rendered in a wide block or a narrow one, at
    UTM magnitudes, the material fractions agree (the writers render tilted Landsat strips column by column
    range; parcel edges used to move by float32 steps of 0.25 m with the block's extent)."""
    landscape = Landscape(seed=2)
    x = 298110.0 + 15.0 * np.arange(653)
    y = 5901930.0 - 15.0 * np.arange(64)
    wide = landscape.sample(x, y, 15.0).fractions[..., 100:400]
    narrow = landscape.sample(x[100:400], y, 15.0).fractions
    assert np.abs(wide - narrow).max() < 1e-3


# --- two sensors, one ground ------------------------------------------------------------------------------
def test_landsat_and_sentinel2_of_the_same_place_overlap_and_agree(s2_clear, landsat_shifted):
    s2_area = wkt.loads(s2_clear.footprint_wkt)
    assert wkt.loads(landsat_shifted.footprint_wkt).intersection(s2_area).area > 0.999 * s2_area.area
    assert s2_clear.acquisition_time.date() == landsat_shifted.acquisition_time.date()
    # compare surface reflectance on 600 m blocks of ground (the shift moves Landsat's content by (30, -20) m,
    # which the block choice undoes to within the block edges)
    s2 = s2_clear.surface_reflectance["r10m"]
    x0, y0 = float(s2.x[0]) - 5.0, float(s2.y[0]) + 5.0
    pairs = {"B02": "B2", "B03": "B3", "B04": "B4", "B08": "B5"}
    l9 = landsat_shifted.surface_reflectance["r30m"]
    lx0 = float(l9.x[0]) - 15.0 - 30.0  # content shifted east by 30 m: ground x sits one pixel further east
    ly0 = float(l9.y[0]) + 15.0 + 20.0
    for s2_band, l9_band in pairs.items():
        s2_blocks = s2[s2_band].values.reshape(5, 60, 5, 60).mean(axis=(1, 3))
        col = int(round((x0 - lx0) / 30.0))
        row = int(round((ly0 - y0) / 30.0))
        window = l9[l9_band].values[row:row + 100, col:col + 100]
        l9_blocks = window.reshape(5, 20, 5, 20).mean(axis=(1, 3))
        tolerance = 0.02 if s2_band == "B08" else 0.01  # MSI B08 is broader than OLI B5
        assert np.abs(s2_blocks - l9_blocks).max() < tolerance, (s2_band, np.abs(s2_blocks - l9_blocks).max())


def test_south_of_the_equator_landsat_uses_negative_northings_over_the_same_ground(tmp_path):
    tile, size = "56JMM", (180, 180)
    s2 = write_sentinel2_l1c(tmp_path, platform="SENTINEL_2A", tile=tile, size=size, seed=8)
    l8 = write_landsat_l1(tmp_path, platform="LANDSAT_8", location=sentinel2_extent(tile, size), seed=8)
    _, transform, crs = read_band(l8.path / f"{l8.product_id}_B4.TIF")
    assert crs == "EPSG:32656" and s2.epsg == 32756 and transform.f < 0
    s2_area = wkt.loads(s2.footprint_wkt)
    assert wkt.loads(l8.footprint_wkt).intersection(s2_area).area > 0.999 * s2_area.area
    # the same 600 m blocks of ground in both products (up to Landsat's 15 m grid offset)
    s2_red = s2.surface_reflectance["r10m"]["B04"].values.reshape(3, 60, 3, 60).mean(axis=(1, 3))
    col = int(round((s2.grids["r10m"].x0 - transform.c) / 30.0))
    row = int(round((transform.f - (s2.grids["r10m"].y0 - 10_000_000.0)) / 30.0))
    l8_window = l8.surface_reflectance["r30m"]["B4"].values[row:row + 60, col:col + 60]
    l8_red = l8_window.reshape(3, 20, 3, 20).mean(axis=(1, 3))
    assert np.abs(s2_red - l8_red).max() < 0.01
    assert s2_red.std() > 0.01  # the blocks differ: the comparison is not between two flat fields


def test_the_requested_shift_is_measured_between_the_red_bands(s2_clear, landsat_shifted):
    mtd, _ = _safe_xml(s2_clear)
    red_name = next(e.text for e in find_all(mtd, "IMAGE_FILE") if e.text.endswith("_B04"))
    red_s2, t_s2, _ = read_band(s2_clear.path / f"{red_name}.jp2")
    red_l9, t_l9, _ = read_band(landsat_shifted.path / f"{landsat_shifted.product_id}_B4.TIF")
    s2_30m = ((red_s2.astype(float) - 1000) / 1e4).reshape(100, 3, 100, 3).mean(axis=(1, 3))
    # a 64 x 64 window of each, inside the Landsat data area
    s2_window = s2_30m[18:82, 18:82]
    wx, wy = t_s2.c + 18 * 30.0, t_s2.f - 18 * 30.0
    col, row = int(round((wx - t_l9.c) / 30.0)), int(round((t_l9.f - wy) / 30.0))
    l9_window = red_l9[row:row + 64, col:col + 64].astype(float)
    assert (l9_window > 0).all()
    d_row, d_col = phase_correlation_shift(s2_window, l9_window)
    # l9_window[r, c] shows the ground of s2_window[r - d_row, c - d_col]; the windows' corners differ by
    # Landsat's 15 m grid offset, so on the ground: dx = (l9 corner - s2 corner) + 30 d_col, likewise dy
    l9_wx, l9_wy = t_l9.c + col * 30.0, t_l9.f - row * 30.0
    measured_dx = (l9_wx - wx) + 30.0 * d_col
    measured_dy = (l9_wy - wy) - 30.0 * d_row
    assert measured_dx == pytest.approx(30.0, abs=3.0)
    assert measured_dy == pytest.approx(-20.0, abs=3.0)


# --- errors --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "parameter"), [
    (lambda p: write_sentinel2_l1c(p, size=(100, 100)), "size"),
    (lambda p: write_sentinel2_l1c(p, size=60, cloud_fraction=1.5), "cloud_fraction"),
    (lambda p: write_sentinel2_l1c(p, size=60, tile="99XXX"), "tile"),
    (lambda p: write_sentinel2_l1c(p, size=60, platform="LANDSAT_9"), "platform"),
    (lambda p: write_landsat_l1(p, size=40, platform="LANDSAT_5"), "platform"),
    (lambda p: write_landsat_l1(p, size=40, aot550=-0.1), "aot550"),
    (lambda p: write_landsat_l1(p, size=40, acquisition_time="June 1st"), "acquisition_time"),
    (lambda p: write_landsat_l1(p, size=40, acquisition_time="2024-06-01T23:00:00Z"), "acquisition_time"),
    (lambda p: write_landsat_l1(p, location=UtmBox(32633, 0, 0, 10, 10), size=(40, 40), shift_m=(1.0,)), "shift_m"),
    (lambda p: write_landsat_l1(p, location="33UUX", size=40), "location"),
    (lambda p: write_landsat_l1(p, size=40, seed=1.5), "seed"),
    (lambda p: write_landsat_l1(p, location=UtmBox(4326, 0, 0, 10, 10), size=40), "location"),
])
def test_bad_parameters_raise_an_error_naming_them(tmp_path, call, parameter):
    with pytest.raises(SyntheticParameterError) as info:
        call(tmp_path)
    assert isinstance(info.value, GmsdaskError) and f"'{parameter}'" in str(info.value)


def test_existing_product_is_not_overwritten_silently(tmp_path):
    write_landsat_l1(tmp_path, size=40)
    with pytest.raises(SyntheticParameterError, match="'path'"):
        write_landsat_l1(tmp_path, size=40)
    assert write_landsat_l1(tmp_path, size=40, overwrite=True).path.is_dir()
