"""Product discovery (gmsdask.io.discovery, re-exported by gmsdask.catalog) and cataloguing found products."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from gmsdask.catalog import Catalog, find_products, is_product_name
from gmsdask.errors import CatalogError, UnknownProductError
from gmsdask.io import discovery

from .fixtures.catalog_scenes import LANDSAT8_ID, SENTINEL2_L1C_ID, SENTINEL2_L2A_ID, landsat8_attrs, sentinel2_attrs


@pytest.mark.parametrize(("name", "is_dir", "expected"), [
    (LANDSAT8_ID, True, True),
    ("LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz", False, True),
    ("LE07_L1TP_104078_20130429_20161124_01_T1.tar", False, True),
    ("LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz", False, True),
    ("LC09_L2SP_010065_20220101_20220103_02_T1", True, True),
    (f"{SENTINEL2_L1C_ID}.zip", False, True),
    (f"{SENTINEL2_L2A_ID}.SAFE", True, True),
    (f"{SENTINEL2_L2A_ID}.SAFE.zip", False, True),
    ("S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip", False, True),
    ("S2C_MSIL2A_20250101T101010_N0511_R022_T32UNE_20250101T120000.SAFE", True, True),
    (LANDSAT8_ID, False, False),                                  # a file without archive suffix
    ("LC08_L1TP_224077_20200127_20200127_01_RT_B2.TIF", False, False),
    ("LC08_L2SP_224078_20200127_20200208_02_T1_MTL.txt", False, False),
    ("LC08_L1TP_016037_20170813_20170814_01_RT.tif", True, False),  # a directory with another suffix
    ("S2A_MSIL1C_notes.zip", False, False),
    ("LC03_L1TP_016037_20170813_20170814_01_RT", True, False),
    ("archive.zip", False, False),
    ("readme.txt", False, False),
])
def test_product_names(name: str, is_dir: bool, expected: bool) -> None:
    assert is_product_name(name, is_dir=is_dir) is expected


@pytest.fixture()
def product_folder(tmp_path: Path) -> Path:
    """Empty files and folders named like real products, plus things that are not products."""
    root = tmp_path / "archive"
    (root / LANDSAT8_ID).mkdir(parents=True)
    (root / LANDSAT8_ID / f"{LANDSAT8_ID}_MTL.txt").write_text("")
    (root / LANDSAT8_ID / f"{SENTINEL2_L1C_ID}.zip").write_text("")     # inside a product: not searched
    (root / f"{SENTINEL2_L1C_ID}.zip").write_bytes(b"")
    (root / f"{SENTINEL2_L2A_ID}.SAFE" / "GRANULE").mkdir(parents=True)
    (root / "landsat" / "collection1").mkdir(parents=True)
    (root / "landsat" / "collection1" / "LE07_L1TP_104078_20130429_20161124_01_T1.tar").write_bytes(b"")
    (root / "landsat" / "collection1" / "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz").write_bytes(b"")
    (root / "notes.txt").write_text("not a product")
    (root / "LC08_L1TP_224077_20200127_20200127_01_RT_B2.TIF").write_bytes(b"")
    (root / "empty_folder").mkdir()
    return root


class StubReader:
    """Stands in for gmsdask.io.open_scene: scene attrs made up from the product name, calls recorded."""

    def __init__(self) -> None:
        self.opened: list[Path] = []

    def __call__(self, path: Path) -> SimpleNamespace:
        self.opened.append(Path(path))
        name = Path(path).name
        if name.startswith("S2"):
            attrs = sentinel2_attrs(product_id=name.split(".")[0], product_path=str(path))
        else:
            attrs = landsat8_attrs(product_id=name.split(".")[0], product_path=str(path))
        return SimpleNamespace(attrs=attrs)


def stub_tiles(footprint_wkt: str) -> list[str]:
    """Stands in for gmsdask.mgrs_grid.tiles_intersecting."""
    assert footprint_wkt.startswith("POLYGON")
    return ["56JMM", "56JLM"] if "152.0" in footprint_wkt else ["17SNB"]


def test_add_products_finds_every_product_in_a_folder_and_ignores_the_rest(
    catalog: Catalog, product_folder: Path,
) -> None:
    reader = StubReader()
    scene_ids = catalog.add_products(product_folder, open_scene=reader, tiles_for_footprint=stub_tiles)
    expected = sorted([
        product_folder / LANDSAT8_ID,
        product_folder / f"{SENTINEL2_L1C_ID}.zip",
        product_folder / f"{SENTINEL2_L2A_ID}.SAFE",
        product_folder / "landsat" / "collection1" / "LE07_L1TP_104078_20130429_20161124_01_T1.tar",
        product_folder / "landsat" / "collection1" / "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz",
    ])
    assert sorted(reader.opened) == expected
    assert len(scene_ids) == len(set(scene_ids)) == 5
    products = {scene.product_id: scene for scene in catalog.scenes()}
    assert set(products) == {
        LANDSAT8_ID, SENTINEL2_L1C_ID, SENTINEL2_L2A_ID,
        "LE07_L1TP_104078_20130429_20161124_01_T1", "LT05_L1TP_090085_19970406_20161231_01_T1",
    }
    assert products[SENTINEL2_L1C_ID].mgrs_tiles == ["56JLM", "56JMM"]
    assert products[LANDSAT8_ID].mgrs_tiles == ["17SNB"]
    assert products[LANDSAT8_ID].product_path == str(product_folder / LANDSAT8_ID)


def test_add_products_twice_adds_nothing_new(catalog: Catalog, product_folder: Path) -> None:
    first = catalog.add_products(product_folder, open_scene=StubReader(), tiles_for_footprint=stub_tiles)
    again = catalog.add_products([product_folder / f"{SENTINEL2_L1C_ID}.zip", product_folder],
                                 open_scene=StubReader(), tiles_for_footprint=stub_tiles)
    assert sorted(again) == sorted(first)
    assert len(catalog.scenes()) == 5


def test_add_products_takes_a_product_path_as_given(catalog: Catalog, product_folder: Path) -> None:
    reader = StubReader()
    product = product_folder / LANDSAT8_ID
    [scene_id] = catalog.add_products(str(product), open_scene=reader, tiles_for_footprint=stub_tiles)
    assert reader.opened == [product]
    assert catalog.scene(scene_id).product_id == LANDSAT8_ID


def test_add_products_refuses_a_missing_path(catalog: Catalog, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(CatalogError, match="no_such_folder"):
        catalog.add_products(missing, open_scene=StubReader(), tiles_for_footprint=stub_tiles)


def test_find_products_does_not_enter_products(product_folder: Path) -> None:
    found = find_products(product_folder)
    assert product_folder / LANDSAT8_ID / f"{SENTINEL2_L1C_ID}.zip" not in found
    assert product_folder / "notes.txt" not in found
    assert len(found) == 5


def test_discovery_lives_with_the_readers(tmp_path: Path) -> None:
    assert find_products is discovery.find_products and is_product_name is discovery.is_product_name
    with pytest.raises(UnknownProductError, match="nothing_here"):
        discovery.product_paths([tmp_path / "nothing_here"])
