"""The MGRS tile grid: origins checked against real products, pixel-grid nesting, tiles of a footprint."""

from __future__ import annotations

import json
import re
import warnings
import zipfile

import mgrs
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box

from gmsdask.errors import GmsdaskError
from gmsdask.mgrs_grid import (
    _tile_of_square,
    normalize_tile,
    tile_epsg,
    tile_geobox,
    tile_origin,
    tile_polygon,
    tiles_intersecting,
)

from .conftest import data_path


def _geocoding(xml: str) -> tuple[int, float, float]:
    """EPSG and upper-left corner of the 10 m grid from a Sentinel-2 tile metadata XML (Tile_Geocoding)."""
    epsg = int(re.search(r"<HORIZONTAL_CS_CODE>EPSG:(\d+)</HORIZONTAL_CS_CODE>", xml)[1])
    geopos = re.search(r'<Geoposition resolution="10">\s*<ULX>([\d.]+)</ULX>\s*<ULY>([\d.]+)</ULY>', xml)
    return epsg, float(geopos[1]), float(geopos[2])


def _zip_member(path, suffix: str) -> str:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(suffix) and "datastrip/" not in n)
        return archive.read(name).decode()


def test_origins_of_real_tiles_match_their_products():
    aws = data_path("sentinel2", "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip")
    assert tile_origin("55JGF") == _geocoding(_zip_member(aws, "/metadata.xml")) == (32755, 699960.0, 6600040.0)
    tile_info = json.loads(_zip_member(aws, "tileInfo.json"))
    assert list(tile_origin("55JGF")[1:]) == tile_info["tileOrigin"]["coordinates"]

    safe = data_path("sentinel2", "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
    assert tile_origin("56JMM") == _geocoding(_zip_member(safe, "MTD_TL.xml")) == (32756, 399960.0, 6700000.0)

    l2a = data_path("sentinel2", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    mtd = next(l2a.glob("GRANULE/*/MTD_TL.xml")).read_text()
    expected = (32629, 499980.0, 5900040.0)
    assert tile_origin("29UNU") == tile_origin("T29UNU") == expected
    epsg, ulx, uly = _geocoding(mtd.replace('resolution="20"', 'resolution="10"'))  # the L2A lists 20/60 m
    assert (epsg, ulx, uly) == expected


def test_origin_is_the_100km_square_upper_left_corner_snapped_to_60m():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mgrs warns for squares reaching outside their latitude band
        for tile in ["29UNU", "56JMM", "55JGF", "50TMK", "13SFR", "32UNU", "01CCV", "60XWQ"]:
            zone, hemisphere, easting, northing = mgrs.MGRS().MGRSToUTM(tile + "0000000000")
            epsg, ulx, uly = tile_origin(tile)
            false_northing = 10_000_000 if hemisphere == "S" else 0
            assert epsg == (32600 if hemisphere == "N" else 32700) + zone == tile_epsg(tile)
            assert ulx == np.floor(int(easting) / 60) * 60
            assert uly - false_northing == np.ceil((int(northing) + 100_000 - false_northing) / 60) * 60
            assert ulx % 60 == 0 and (uly - false_northing) % 60 == 0


def test_tile_names_are_normalized():
    assert normalize_tile("T29UNU") == normalize_tile("29unu") == "29UNU"
    assert normalize_tile("1CCV") == "01CCV"


def test_bad_tile_names_are_refused():
    for bad in ["29UNI", "29ZNU", "61UNU", "29UAU", "hello"]:
        with pytest.raises(GmsdaskError, match="MGRS tile"):
            tile_origin(bad)


@pytest.mark.parametrize(("gsd", "size"), [(10, 10980), (20, 5490), (30, 3660), (60, 1830)])
def test_tile_geobox_nests_at_every_sentinel2_gsd(gsd, size):
    for tile in ["29UNU", "55JGF"]:
        gbox = tile_geobox(tile, gsd)
        epsg, ulx, uly = tile_origin(tile)
        assert gbox.shape.yx == (size, size)
        assert gbox.crs.epsg == epsg
        assert tuple(gbox.affine)[:6] == (gsd, 0.0, ulx, 0.0, -gsd, uly)
        # the grid of a neighbouring tile lands on this tile's pixel corners (grids nest across tiles)
        for neighbour in {"29UNU": ["29UPU", "29UNT", "29UMV"], "55JGF": ["55JFF", "55JGG", "55HGE"]}[tile]:
            _, nx0, ny0 = tile_origin(neighbour)
            assert (nx0 - ulx) % gsd == 0 and (ny0 - uly) % gsd == 0
    with pytest.raises(GmsdaskError, match="does not divide"):
        tile_geobox("29UNU", 25.0 * 1.0001)


def test_tile_geobox_buffer_grows_every_side():
    gbox = tile_geobox("29UNU", 30.0, buffer_px=10)
    assert gbox.shape.yx == (3680, 3680)
    assert (gbox.affine.c, gbox.affine.f) == (499980.0 - 300, 5900040.0 + 300)


def _utm_box(epsg: int, left: float, bottom: float, right: float, top: float) -> str:
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    ring = shapely.segmentize(box(left, bottom, right, top), 500.0)
    return shapely.transform(ring, to_lonlat.transform, interleaved=False).wkt


def test_footprint_in_the_middle_of_a_tile_touches_one_tile():
    assert tiles_intersecting(_utm_box(32629, 540_000, 5_840_000, 560_000, 5_860_000)) == ["29UNU"]


def test_footprint_across_a_corner_touches_four_tiles():
    # around the corner shared by squares MT, MU, NT, NU; each of their tiles reaches over the corner
    assert tiles_intersecting(_utm_box(32629, 498_000, 5_798_000, 502_000, 5_802_000)) == \
        ["29UMT", "29UMU", "29UNT", "29UNU"]


def test_footprint_in_the_overlap_strip_touches_both_tiles():
    # x 505-509 km lies in square NU only, but the tile of MU reaches 9.8 km past its square to 509 760
    assert tiles_intersecting(_utm_box(32629, 505_000, 5_840_000, 509_000, 5_850_000)) == ["29UMU", "29UNU"]
    assert tiles_intersecting(_utm_box(32629, 510_000, 5_840_000, 512_000, 5_850_000)) == ["29UNU"]


def test_footprint_across_a_utm_zone_boundary_touches_tiles_of_both_zones():
    footprint = "POLYGON((-6.3 52.3, -5.7 52.3, -5.7 52.6, -6.3 52.6, -6.3 52.3))"
    found = tiles_intersecting(footprint)
    assert {t[:2] for t in found} == {"29", "30"}
    # brute force: every square of zones 28..31 near the footprint, tested exactly in its own CRS
    polygon = shapely.wkt.loads(footprint)
    expected = set()
    for zone in (28, 29, 30, 31):
        for column in range(1, 9):
            for row in range(55, 62):
                name = _tile_of_square(zone, True, column, row)
                if name is None:
                    continue
                to_utm = Transformer.from_crs(4326, tile_epsg(name), always_xy=True)
                projected = shapely.transform(shapely.segmentize(polygon, 0.01), to_utm.transform,
                                              interleaved=False)
                if projected.intersection(tile_polygon(name)).area > 0:
                    expected.add(name)
    assert found == sorted(expected)


def test_real_tile_footprint_touches_the_tile_and_its_neighbours():
    aws = data_path("sentinel2", "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip")
    ring = json.loads(_zip_member(aws, "tileInfo.json"))["tileDataGeometry"]["coordinates"][0]
    to_lonlat = Transformer.from_crs(32755, 4326, always_xy=True)
    footprint = shapely.Polygon([to_lonlat.transform(x, y) for x, y in ring]).wkt
    found = tiles_intersecting(footprint)
    assert "55JGF" in found
    # the data touch the western and northern neighbours (overlap strips) and reach into zone 56 (east edge)
    assert {"55JFF", "55JGG"} <= set(found)
    assert len(found) <= 9


def test_tile_names_agree_with_the_mgrs_library_away_from_band_edges():
    rng = np.random.default_rng(42)
    converter = mgrs.MGRS()
    checked = 0
    for lon, lat in zip(rng.uniform(-179, 179, 300), rng.uniform(-79, 83, 300)):
        if abs(((lat + 80) % 8) - 4) > 3.0:  # within ~1 deg of a band edge MGRS and Sentinel-2 names may differ
            continue
        name = converter.toMGRS(lat, lon, MGRSPrecision=0)
        point = shapely.Point(lon, lat).buffer(1e-4).wkt
        assert name in tiles_intersecting(point), (lon, lat, name)
        checked += 1
    assert checked > 100


def test_bad_footprints_are_refused():
    with pytest.raises(GmsdaskError, match="not valid WKT"):
        tiles_intersecting("POLYGON((1 2")
    with pytest.raises(GmsdaskError, match="empty or without area"):
        tiles_intersecting("POLYGON EMPTY")
