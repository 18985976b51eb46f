"""Sen2Chain indices: the registry against FACTS.md section 7, and masks plus masked indices in tile cubes,
checked against hand computations from the products' own files (real L2A, synthetic L2A, a Landsat slot)."""

from __future__ import annotations

import contextlib
import glob
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from scipy import ndimage
from skimage.morphology import disk

import gmsdask
from gmsdask.errors import ConfigError, ProcessingError
from gmsdask.indices import INDICES, get_index, parse_indices
from gmsdask.indices.compute import IndexBandMissingError, compute_index
from gmsdask.indices.cube import store_slot_variables, write_indices_to_cube
from gmsdask.indices.export import export_sen2chain
from gmsdask.io.cube import CubeGrid, SceneSlot, cube_log, open_cube, open_cube_session, utc_time, write_scene
from gmsdask.synthetic import write_sentinel2_l2a

from .conftest import data_path

REAL_L2A = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
CM004 = "CM004-CSH1-CMP1-CHP1-TCI1-ITER0"
FILL = -32768
S2_COMMON = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge071", "B06": "rededge075",
             "B07": "rededge078", "B08": "nir", "B11": "swir16", "B12": "swir22"}


# --- FACTS.md section 7, written out by hand -------------------------------------------------------------------------
def ndr(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a - b) / (a + b)


FACTS = {
    "NDVI": lambda b: ndr(b["B08"], b["B04"]), "NDWIMCF": lambda b: ndr(b["B03"], b["B08"]),
    "NDWIGAO": lambda b: ndr(b["B08"], b["B11"]), "MNDWI": lambda b: ndr(b["B03"], b["B11"]),
    "NDRE": lambda b: ndr(b["B08"], b["B05"]), "NBR": lambda b: ndr(b["B08"], b["B12"]),
    "NDBI": lambda b: ndr(b["B11"], b["B08"]), "IRECI": lambda b: b["B06"] * (b["B07"] - b["B04"]) / b["B05"],
    "BIGR": lambda b: np.sqrt((b["B03"] ** 2 + b["B04"] ** 2) / 2),
    "BIRNIR": lambda b: np.sqrt((b["B08"] ** 2 + b["B04"] ** 2) / 2),
    "BIBG": lambda b: np.sqrt((b["B02"] ** 2 + b["B03"] ** 2) / 2),
    "EVI": lambda b: 2.5 * (b["B08"] - b["B04"]) / (b["B08"] + 6 * b["B04"] - 7.5 * b["B02"] + 1),
}
SPECTRA = {  # surface reflectance of a few covers, B02..B12
    "vegetation": dict(B02=0.03, B03=0.06, B04=0.04, B05=0.10, B06=0.25, B07=0.32, B08=0.36, B11=0.18, B12=0.09),
    "water": dict(B02=0.06, B03=0.05, B04=0.03, B05=0.02, B06=0.015, B07=0.012, B08=0.01, B11=0.005, B12=0.003),
    "bare soil": dict(B02=0.10, B03=0.14, B04=0.19, B05=0.22, B06=0.24, B07=0.26, B08=0.28, B11=0.35, B12=0.30),
    "burnt": dict(B02=0.04, B03=0.05, B04=0.06, B05=0.07, B06=0.08, B07=0.09, B08=0.10, B11=0.20, B12=0.22),
}


def test_registry_holds_the_12_indices_with_facts_formulas():
    assert list(INDICES) == ["NDVI", "NDWIMCF", "NDWIGAO", "MNDWI", "NDRE", "IRECI", "BIGR", "BIRNIR", "BIBG",
                             "EVI", "NBR", "NDBI"]
    for name, spec in INDICES.items():
        assert set(spec.bands) <= set(S2_COMMON.values()), name
        for cover, spectrum in SPECTRA.items():
            by_common_name = {S2_COMMON[band]: value for band, value in spectrum.items()}
            np.testing.assert_allclose(spec.formula(by_common_name), FACTS[name](spectrum), rtol=1e-12,
                                       err_msg=f"{name} on {cover}")
    assert INDICES["NDVI"].valid_range == (-1.0, 1.0) and INDICES["NDVI"].formula.text == "(nir - red) / (nir + red)"


def test_index_lists_and_unknown_names():
    assert [s.name for s in parse_indices("NDVI/mndwi")] == ["NDVI", "MNDWI"]
    assert len(parse_indices("All")) == 12 and parse_indices("False") == [] and parse_indices("") == []
    with pytest.raises(ConfigError, match="unknown index 'NDXI'.*known: NDVI"):
        parse_indices("NDVI/NDXI")
    with pytest.raises(ConfigError, match="indices"):
        get_index("CM001")


def test_index_values_valid_range_and_missing_band():
    ds = xr.Dataset({"B04": ("x", np.array([0.04, 0.0, np.nan, 0.1], np.float32), {"common_name": "red"}),
                     "B08": ("x", np.array([0.36, 0.0, 0.3, -0.3], np.float32), {"common_name": "nir"})})
    ndvi = compute_index(ds, "NDVI").values
    assert ndvi.dtype == np.float32
    np.testing.assert_allclose(ndvi[0], 0.8, rtol=1e-6)
    assert np.isnan(ndvi[1:]).all()  # 0/0, no data, and -2 outside [-1, 1]
    masked = compute_index(ds, "NDVI", cloud_mask=xr.DataArray(np.array([1, 0, 0, 255], np.uint8), dims="x"))
    assert np.isnan(masked.values).all()
    with pytest.raises(IndexBandMissingError, match=r"index NDWIGAO needs band 'swir16' \(B11\)") as err:
        compute_index(ds, "NDWIGAO", scene="S2X")
    assert err.value.index == "NDWIGAO" and err.value.band == "swir16" and "S2X" in str(err.value)


# --- cubes ----------------------------------------------------------------------------------------------------
def write_cube(path: Path, grid, slots, chunks) -> None:
    """A tile cube with ``slots`` = [(scene_id, time, platform, {name: (y, x) DataArray})], each written by the
    cube writer (one commit per scene, slots appended in this order)."""
    for scene_id, time, platform, variables in slots:
        write_scene(path, xr.Dataset(variables), CubeGrid(grid, chunks, "zstd", {"mgrs_tile": "29UNU"}),
                    SceneSlot(scene_id, utc_time(time), {"platform": platform}))


def raw(path: Path, name: str, slot: int) -> np.ndarray:
    """The stored integers of ``name`` in storage slot ``slot`` of the cube's latest commit."""
    return zarr.open_array(open_cube_session(path).store, path=name, mode="r")[slot]


def reflectance(file: str, window=None) -> np.ndarray:
    """L2A DN -> surface reflectance for baselines >= 04.00 (BOA_ADD_OFFSET -1000), DN 0 = no data."""
    with rasterio.open(file) as src:
        dn = src.read(1, window=window).astype(np.float64)
    return np.where(dn == 0, np.nan, (dn - 1000.0) / 10000.0)


def read(file: str, window=None) -> np.ndarray:
    with rasterio.open(file) as src:
        return src.read(1, window=window)


def stored(values: np.ndarray, valid=(-1.0, 1.0)) -> np.ndarray:
    """Hand encoding: round(value x 10 000), -32768 where no data or outside the valid range."""
    ok = np.isfinite(values) & (values >= valid[0]) & (values <= valid[1])
    return np.where(ok, np.round(np.where(ok, values, 0) * 1e4), FILL).astype(np.int64)


def assert_index(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    """Same fill pattern; values within one count (float32 vs float64 at a rounding tie), mostly exact."""
    np.testing.assert_array_equal(actual == FILL, expected == FILL, err_msg=name)
    diff = np.abs(actual.astype(np.int64) - expected)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999, name


def hand_cm001(prob):
    return ndimage.binary_dilation(ndimage.binary_erosion(prob > 25, np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])),
                                   disk(5))


@pytest.fixture(scope="module")
def real_cube(tmp_path_factory):
    """A 240 x 240 px window at 60 m of the real 29UNU L2A product (its top edge is the product's), cube chunks of
    64 px; the masks are computed on 64 px blocks at 20 m, so neither grid's block borders coincide."""
    product = data_path("sentinel2", REAL_L2A)
    scene = gmsdask.open_scene(product, chunks=64)
    r60 = scene["r60m"].to_dataset()
    rows, cols = slice(0, 240), slice(305, 545)
    grid = r60.odc.geobox[rows, cols]
    variables = {name: r60[name].isel(y=rows, x=cols) for name in ["B02", "B03", "B04", "B05", "B11", "nodata"]}
    path = tmp_path_factory.mktemp("real") / "29UNU.icechunk"
    write_cube(path, grid, [(scene.attrs["product_id"], scene.attrs["acquisition_time"], "SENTINEL_2A", variables)],
               (64, 64))
    report = write_indices_to_cube(path, {scene.attrs["product_id"]: scene}, ["CM001", CM004], "MNDWI/BIGR/NDVI")
    return product, path, report, (rows, cols)


def test_real_l2a_masks_and_indices_equal_a_hand_computation(real_cube):
    product, path, report, (rows, cols) = real_cube
    granule = glob.glob(str(product / "GRANULE" / "*"))[0]
    # the 20 m layers under the window plus a 30 px margin (5x the largest kernel radius; the window's top edge
    # is the product's own edge, so no margin there): the rules are local, so this equals the whole-image result
    margin = 30
    r20 = rasterio.windows.Window(cols.start * 3 - margin, 0, 720 + 2 * margin, 720 + margin)
    prob = read(f"{granule}/QI_DATA/MSK_CLDPRB_20m.jp2", r20)
    scl = read(glob.glob(f"{granule}/IMG_DATA/R20m/*_SCL_20m.jp2")[0], r20)

    def to_60m(mask):  # a 60 m pixel is masked when any of its 3 x 3 20 m pixels is
        window = mask[:720, margin:margin + 720]
        return window.reshape(240, 3, 240, 3).max(axis=(1, 3)).astype(np.uint8)

    masks = {"CM001": to_60m(hand_cm001(prob)), CM004: to_60m(np.isin(scl, [3, 8, 9, 10]))}
    window = rasterio.windows.Window(cols.start, rows.start, 240, 240)
    band = {b: reflectance(glob.glob(f"{granule}/IMG_DATA/R60m/*_{b}_60m.jp2")[0], window) for b in ("B03", "B04",
                                                                                                   "B11")}
    indices = {"MNDWI": stored(ndr(band["B03"], band["B11"])),
               "BIGR": stored(np.sqrt((band["B03"] ** 2 + band["B04"] ** 2) / 2), (0.0, 3.2767))}
    for name, truth in masks.items():
        np.testing.assert_array_equal(raw(path, name, 0), truth, err_msg=name)
        # the borders of the cube's chunks (every 64 px) and of the 20 m blocks (every 64 px = 21.3 px at 60 m)
        # cut through masked and clear pixels
        borders = sorted({*range(63, 240, 64), *range(64, 240, 64), *(int(k * 64 / 3) for k in range(1, 12))})
        on_borders = np.concatenate([truth[borders, :].ravel(), truth[:, borders].ravel()])
        assert 0.05 < on_borders.mean() < 0.95, name
    for name, truth in indices.items():
        assert_index(raw(path, name, 0), truth, name)
        for mask_name, mask in masks.items():
            assert_index(raw(path, f"{name}_{mask_name}", 0), np.where(mask == 0, truth, FILL), f"{name}_{mask_name}")
    assert 0.2 < masks["CM001"].mean() < 0.8
    # NDVI needs B08, which the shared product lacks: a recorded failure, the rest is written
    assert not report.ok and [(f.name, "'nir' (B08)" in f.reason) for f in report.failures] == [("NDVI", True)]
    assert "NDVI" not in report.variables[next(iter(report.slots))]
    decoded = open_cube(path)
    assert decoded["MNDWI"].dtype == np.float32 and decoded[CM004].dtype == np.uint8  # masks are not CF-masked
    assert int(decoded["MNDWI"].isnull().sum()) == int((indices["MNDWI"] == FILL).sum())


@pytest.fixture(scope="module")
def synthetic_cube(tmp_path_factory):
    """A 10 m cube of a small synthetic L2A product (bands at 20 m repeated onto 10 m) plus a Landsat slot."""
    out = tmp_path_factory.mktemp("synthetic")
    product = write_sentinel2_l2a(out, platform="SENTINEL_2A", tile="29UNU", size=(240, 240), seed=3,
                                  cloud_fraction=0.3)
    scene = gmsdask.open_scene(product.path, chunks=64)
    r10, r20 = scene["r10m"].to_dataset(), scene["r20m"].to_dataset()
    variables = {b: r10[b] for b in ("B02", "B03", "B04", "B08")}
    for b in ("B05", "B11"):
        variables[b] = xr.DataArray(da.repeat(da.repeat(r20[b].data, 2, axis=0), 2, axis=1), dims=("y", "x"),
                                    attrs=r20[b].attrs)
    rng = np.random.default_rng(8)
    landsat = {b: xr.DataArray(da.from_array(rng.uniform(0.02, 0.5, (240, 240)).astype(np.float32), chunks=64),
                               dims=("y", "x")) for b in variables}  # harmonized bands, no common_name attrs
    grid = r10.odc.geobox
    path = out / "29UNU.icechunk"
    s2_id, l8_id = scene.attrs["product_id"], "LC08_L2SP_205023_20240601_20240610_02_T1"
    write_cube(path, grid, [(s2_id, scene.attrs["acquisition_time"], "SENTINEL_2A", variables),
                            (l8_id, "2024-06-01T11:20:00Z", "LANDSAT_8", landsat)], (64, 64))
    l8_scene = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"platform": "LANDSAT_8"}),
                                      "/r30m": xr.Dataset({"B4": xr.DataArray(np.zeros((3, 3), np.float32),
                                                                              dims=("y", "x"))})})
    report = write_indices_to_cube(path, {s2_id: scene, l8_id: l8_scene}, ["CM001", CM004, "CM003-PRB20-ITER2"],
                                   ["NDVI", "NDWIGAO", "NDRE"])
    return product.path, path, report, s2_id, l8_id, landsat


def test_synthetic_l2a_and_landsat_slots(synthetic_cube):
    product, path, report, s2_id, l8_id, landsat = synthetic_cube
    assert report.ok and report.slots == {s2_id: 0, l8_id: 1}
    # oldest first: the creation, the two scene writes, then one commit per scene naming its variables and slot
    commits = cube_log(path)[::-1]
    assert commits[3].message.startswith(f"indices: CM001, {CM004}, CM003-PRB20-ITER2, NDVI, NDVI_CM001, ")
    assert commits[3].message.endswith(f"NDRE_CM003-PRB20-ITER2 of {s2_id} into slot 0")
    assert commits[4].message.endswith(f"of {l8_id} into slot 1") and commits[4].metadata["scene_ids"] == [l8_id]
    assert len(commits[4].metadata["variables"]) == 3 + 3 * 4
    granule = glob.glob(str(product / "GRANULE" / "*"))[0]

    def up(a):  # 20 m -> 10 m: each 10 m pixel lies under one 20 m pixel
        return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)

    b = {name: reflectance(glob.glob(f"{granule}/IMG_DATA/R{res}m/*_{name}_{res}m.jp2")[0])
         for name, res in (("B04", 10), ("B08", 10), ("B05", 20), ("B11", 20))}
    b["B05"], b["B11"] = up(b["B05"]), up(b["B11"])
    prob = read(f"{granule}/QI_DATA/MSK_CLDPRB_20m.jp2")
    scl = read(glob.glob(f"{granule}/IMG_DATA/R20m/*_SCL_20m.jp2")[0])
    k5 = np.ones((5, 5), bool)
    k5[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    masks = {"CM001": up(hand_cm001(prob)), CM004: up(np.isin(scl, [3, 8, 9, 10])),
             "CM003-PRB20-ITER2": up(ndimage.binary_dilation(prob >= 20, k5, iterations=2))}
    indices = {"NDVI": ndr(b["B08"], b["B04"]), "NDWIGAO": ndr(b["B08"], b["B11"]), "NDRE": ndr(b["B08"], b["B05"])}
    for name, truth in masks.items():
        assert 0 < truth.mean() < 1, name
        np.testing.assert_array_equal(raw(path, name, 0), truth.astype(np.uint8), err_msg=name)
    for name, values in indices.items():
        truth = stored(values)
        assert_index(raw(path, name, 0), truth, name)
        for mask_name, mask in masks.items():
            assert_index(raw(path, f"{name}_{mask_name}", 0), np.where(mask, FILL, truth), f"{name}_{mask_name}")

    # the Landsat slot: indices from its harmonized bands, masks and masked indices hold the fill value
    l8 = {name: raw(path, name, 1) * 1e-4 for name in ("B04", "B08")}  # the harmonized bands as stored
    np.testing.assert_allclose(l8["B08"], landsat["B08"].values, atol=0.5e-4 + 1e-7)
    assert_index(raw(path, "NDVI", 1), stored(ndr(l8["B08"], l8["B04"])), "Landsat NDVI")
    for name in masks:
        assert (raw(path, name, 1) == 255).all() and (raw(path, f"NDVI_{name}", 1) == FILL).all()
    assert any(l8_id in note and "LANDSAT_8" in note for note in report.notes)


def test_export_writes_sen2chains_layout_losslessly(synthetic_cube, tmp_path):
    _, path, _, s2_id, l8_id, _ = synthetic_cube
    files = export_sen2chain(path, tmp_path, "29UNU")
    rel = {str(f.relative_to(tmp_path)) for f in files}
    assert f"CLOUDMASKS/29UNU/{s2_id}/{s2_id}_CM001.tif" in rel
    assert f"CLOUDMASKS/29UNU/{s2_id}/{s2_id}_{CM004}.tif" in rel
    assert f"INDICES/NDVI/29UNU/{s2_id}/{s2_id}_NDVI.tif" in rel
    assert f"INDICES/NDRE/29UNU/{s2_id}/{s2_id}_NDRE_CM001.tif" in rel
    assert f"INDICES/NDVI/29UNU/{l8_id}/{l8_id}_NDVI.tif" in rel
    assert not any(l8_id in r and ("CLOUDMASKS" in r or "_CM0" in r) for r in rel)  # all fill: no file
    assert len(rel) == 3 + 3 * 4 + 3  # S2: 3 masks, 3 indices x (1 + 3 masks); Landsat: 3 indices
    with rasterio.open(tmp_path / f"INDICES/NDVI/29UNU/{s2_id}/{s2_id}_NDVI_CM001.tif") as src:
        np.testing.assert_array_equal(src.read(1), raw(path, "NDVI_CM001", 0))
        assert src.nodata == FILL and src.dtypes[0] == "int16" and src.scales == (1e-4,)
        assert src.compression.name.lower() == "deflate" and src.crs.to_epsg() == 32629
        assert src.transform == open_cube(path).odc.geobox.affine
    with rasterio.open(tmp_path / f"CLOUDMASKS/29UNU/{s2_id}/{s2_id}_CM001.tif") as src:
        np.testing.assert_array_equal(src.read(1), raw(path, "CM001", 0))
        assert src.nodata == 255 and src.dtypes[0] == "uint8"


def test_cube_writer_errors_and_a_time_sorted_cube(synthetic_cube):
    _, path, _, s2_id, l8_id, _ = synthetic_cube
    with pytest.raises(ConfigError, match="cloudmasks.*CM009"):
        write_indices_to_cube(path, {s2_id: None}, ["CM009"], "NDVI")
    with pytest.raises(ConfigError, match="unknown index 'NDXI'"):
        write_indices_to_cube(path, {s2_id: None}, ["CM001"], "NDXI")
    with pytest.raises(ProcessingError, match="scenes not in the cube: S2B_NOT_THERE"):
        write_indices_to_cube(path, {"S2B_NOT_THERE": None}, ["CM001"], "NDVI")
    before = {slot: raw(path, "NDVI", slot) for slot in (0, 1)}
    # open_cube sorts by time: the Landsat slot (stored second) comes first; reads and writes must not mix them
    cube = open_cube(path)
    assert list(cube.scene_id.values) == [l8_id, s2_id]
    report = write_indices_to_cube(cube, {s2_id: None, l8_id: None}, [], "NDVI", store=path)
    assert report.slots == {s2_id: 0, l8_id: 1} and report.notes == []
    for slot in (0, 1):  # open_cube's float32 bands may round an index one count differently
        assert_index(raw(path, "NDVI", slot), before[slot].astype(np.int64), f"slot {slot}")


# --- the Icechunk transaction ---------------------------------------------------------------------------------
def small_cube(tmp_path: Path, scene_ids: str) -> Path:
    from .cube_helpers import write

    path = tmp_path / "SENTINEL_2A" / "29UNU.icechunk"
    for scene_id in scene_ids:
        write(path, scene_id)
    return path


def slot_values(seed: int) -> xr.Dataset:
    """An index (with NaN) and a mask for one slot of the 256 x 256 px test grid."""
    rng = np.random.default_rng(seed)
    ndvi = rng.uniform(-1, 1, (1, 256, 256)).astype(np.float32)
    ndvi[0, :4, :7] = np.nan
    return xr.Dataset({"NDVI": (("time", "y", "x"), da.from_array(ndvi, chunks=(1, 100, 100))),
                       "CM001": (("time", "y", "x"), rng.integers(0, 2, (1, 256, 256), dtype=np.uint8))})


def test_a_slot_appended_while_indices_are_written_retries_and_keeps_the_cube_consistent(tmp_path, monkeypatch):
    from gmsdask.indices import cube_store
    from gmsdask.io import cube_storage
    from gmsdask.io.cube import cube_log

    from .cube_helpers import assert_slot_holds, write

    path = small_cube(tmp_path, "AB")
    data = slot_values(1)
    real_guard, raced = cube_storage.commit_guard, []

    @contextlib.contextmanager
    def racing_guard(location):  # another job commits a scene between our session's start and our commit
        if len(raced) < len(racers):
            raced.append(write(path, racers[len(raced)]).time_index)
        with real_guard(location):
            yield

    racers = ["C"]

    monkeypatch.setattr(cube_store, "commit_guard", racing_guard)
    store_slot_variables(path, data, [1], scene_ids=["B"])
    # the new variables were created against 2 slots; the append made it 3: the transaction was repeated
    log = [commit.message for commit in cube_log(path)]
    assert raced == [2] and log[:2] == ["indices: NDVI, CM001 into slot(s) 1 (B)", "job -: write scene C"]
    cube = open_cube(path)
    assert cube.sizes["time"] == 3 and cube["NDVI"].dtype == np.float32 and cube["CM001"].dtype == np.uint8
    assert_slot_holds(cube, "C")
    ndvi = data["NDVI"].values[0]
    np.testing.assert_array_equal(raw(path, "NDVI", 1), stored(ndvi.astype(np.float64)))
    np.testing.assert_array_equal(raw(path, "CM001", 1), data["CM001"].values[0])
    for slot in (0, 2):  # the other slots hold the fills
        assert (raw(path, "NDVI", slot) == FILL).all() and (raw(path, "CM001", slot) == 255).all()
    # the variables exist now: the append (scene D) resizes them, which conflicts with our chunk writes too
    racers.append("D")
    again = slot_values(3)
    store_slot_variables(path, again, [0], scene_ids=["A"])
    assert raced == [2, 3] and open_cube(path).sizes["time"] == 4
    np.testing.assert_array_equal(raw(path, "NDVI", 0), stored(again["NDVI"].values[0].astype(np.float64)))
    np.testing.assert_array_equal(raw(path, "NDVI", 1), stored(ndvi.astype(np.float64)))
    assert (raw(path, "NDVI", 3) == FILL).all() and (raw(path, "CM001", 3) == 255).all()


def test_a_compacted_or_missing_cube_is_refused_without_a_commit(tmp_path):
    from gmsdask.io.cube import cube_log
    from gmsdask.io.cube_export import compact_cube

    path = small_cube(tmp_path, "AB")  # A (Oct 5) stored before B (Sep 25)
    compact_cube(path)  # now B is slot 0
    before = cube_log(path)[0].id
    with pytest.raises(ProcessingError, match=r"slot 0 holds 'B', not 'A': the cube changed"):
        store_slot_variables(path, slot_values(2), [0], scene_ids=["A"])
    with pytest.raises(ProcessingError, match="slot 5 is not in the cube"):
        store_slot_variables(path, slot_values(2), [5])
    assert cube_log(path)[0].id == before and "NDVI" not in open_cube(path)
    with pytest.raises(ProcessingError, match=r"elsewhere\.icechunk.*no Icechunk cube at this location"):
        write_indices_to_cube(tmp_path / "elsewhere.icechunk", {"A": None}, ["CM001"], "NDVI")
