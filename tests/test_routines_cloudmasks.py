"""Sen2Chain cloud masks of scenes gmsdask corrected itself: a routine with ``compute_l2a`` on a synthetic
Sentinel-2 L1C product and a synthetic Landsat-9 L1 scene (Fmask + 6S in L1C) writes CM001/CM004 computed from the
cube's own ``fmask``/``cloud_confidence``; the values equal a hand computation with the documented mapping and the
kernels scaled to the cube's 30 m (docs/indices-and-cloudmasks.md), including next to the cube's chunk borders."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import zarr
from distributed import Client
from scipy import ndimage

from gmsdask.io.cube import open_cube_session
from gmsdask.jobs import Job
from gmsdask.synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

TILE = "33UUU"
SIZE = (300, 300)  # 3 km at 10 m: 100 px of the 30 m cube, which the 64 px chunk borders cross
TIME = datetime(2024, 6, 1, 10, 20, tzinfo=UTC)  # the 6S tables of this geometry are in the committed cache
CM004 = "CM004-CSH1-CMP1-CHP1-TCI1-ITER2"
MASKS = ("CM001", CM004)
FILL = -32768
CHUNK = 64
WINDOW = 192  # rows and columns compared: the scenes' data and the fill beyond them


# --- the documented rules, written out by hand for a 30 m grid ---------------------------------------------------
def hand_scl(fmask: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """0 no data -> 0, clear -> 5, cloud -> 9 from 65 % confidence (or without one: 255) else 8, shadow -> 3,
    snow -> 11, water -> 6."""
    cloud = np.where(confidence >= 65, 9, 8)
    return np.select([fmask == 1, fmask == 2, fmask == 3, fmask == 4, fmask == 5], [5, cloud, 3, 11, 6], 0)


def hand_probability(fmask: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """The confidence where fmask has data; without a confidence (255) 100 for clouds, 0 for the rest."""
    missing = np.where(fmask == 2, 100, 0)
    return np.where((fmask >= 1) & (fmask <= 5), np.where(confidence <= 100, confidence, missing), 0)


def disc(radius: int) -> np.ndarray:
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return dx * dx + dy * dy <= radius * radius


def octagon(half_width: int, l1: int) -> np.ndarray:
    dy, dx = np.mgrid[-half_width:half_width + 1, -half_width:half_width + 1]
    return np.abs(dx) + np.abs(dy) <= l1


def hand_masks(fmask: np.ndarray, confidence: np.ndarray) -> dict[str, np.ndarray]:
    """At 30 m: CM001 erodes by the disc of round(20 / 30) = 1 px (the cross) and dilates by the disc of
    round(100 / 30) = 3 px; CM004-ITER2 dilates once by the octagon |dx|, |dy| <= round(80 / 30) = 3,
    |dx| + |dy| <= round(120 / 30) = 4. 255 where fmask has no data. Outside the cube nothing is cloud."""
    probability, scl = hand_probability(fmask, confidence), hand_scl(fmask, confidence)
    cm001 = ndimage.binary_dilation(ndimage.binary_erosion(probability > 25, disc(1)), disc(3))
    cm004 = ndimage.binary_dilation(np.isin(scl, [3, 8, 9, 10]), octagon(3, 4))
    no_data = ~((fmask >= 1) & (fmask <= 5))
    return {name: np.where(no_data, 255, mask).astype(np.uint8) for name, mask in (("CM001", cm001), (CM004, cm004))}


# --- the routine run ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def routine(tmp_path_factory):
    root = tmp_path_factory.mktemp("routine_cm")
    home = root / "home"
    archive = home / "archive"
    (home / "config" / "jobs").mkdir(parents=True)
    (home / "config" / "gmsdask.toml").write_text(f"mgrs_pixel_buffer = 0\ntiling_block_size_XY = [{CHUNK}, {CHUNK}]\n")
    (home / "config" / "jobs" / "job_fmask.toml").write_text(  # what the masks and NDVI need, nothing more
        'target_gsd = 30.0\nbrdf_correction = false\nskip_coreg = true\nac_estimate_accuracy = false\n'
        'spechomo_estimate_accuracy = false\ntarget_bands = ["B02", "B03", "B04", "B08", "B11"]\n')
    s2 = write_sentinel2_l1c(archive, platform="SENTINEL_2B", tile=TILE, acquisition_time=TIME, size=SIZE, seed=11,
                             cloud_fraction=0.3, aot550=0.2)
    l9 = write_landsat_l1(archive, platform="LANDSAT_9", location=sentinel2_extent(TILE, SIZE),
                          acquisition_time=TIME.replace(minute=5), seed=11, cloud_fraction=0.3, aot550=0.2)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("GMSDASK_HOME", str(home))
        monkeypatch.setenv("GMSDASK_CRONTAB", str(root / "crontab"))
        job = Job("fmask")
        job.logs = True
        job.nb_proc = 1
        job.task_add({"tile": TILE, "download": "l1c", "compute_l2a": True, "cloudmasks": "/".join(MASKS),
                      "indices": "NDVI", "date_min": "2024-05-01", "date_max": "2024-06-30"})
        job.save()
        with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
            report = Job("fmask").run(client=client)
    (task,) = report.tasks
    assert task.status == "done", task.errors
    cube = home / "processed_mgrs_tiles" / "SENTINEL_2A" / f"{TILE}.icechunk"
    return task, report.log_file.read_text(), cube, {"S2": s2.product_id, "L9": l9.product_id}


def stored(cube, name: str, slot: int, rows=slice(0, WINDOW), cols=slice(0, WINDOW)) -> np.ndarray:
    return zarr.open_array(open_cube_session(cube).store, path=name, mode="r")[slot, rows, cols]


def slot_of(cube, scene_id: str) -> int:
    ids = [str(v) for v in zarr.open_group(open_cube_session(cube).store, mode="r")["scene_id"][:]]
    return ids.index(scene_id)


@pytest.mark.parametrize("scene", ["S2", "L9"])
def test_masks_of_gmsdask_corrected_slots_equal_the_hand_computation_from_the_cubes_fmask(routine, scene):
    task, log, cube, ids = routine
    scene_id = ids[scene]
    assert scene_id in task.processed
    slot = slot_of(cube, scene_id)
    fmask, confidence = stored(cube, "fmask", slot), stored(cube, "cloud_confidence", slot)
    assert {1, 2}.issubset(np.unique(fmask)) and (fmask[:90, :90] > 0).mean() > 0.9  # clear and cloud, data
    truth = hand_masks(fmask, confidence)
    for name, expected in truth.items():
        actual = stored(cube, name, slot)
        np.testing.assert_array_equal(actual, expected, err_msg=f"{scene} {name}")
        # the chunk borders (rows and columns 63/64) cut through masked and clear pixels of the data
        data = expected[:96, :96]
        on_borders = np.concatenate([data[[63, 64], :].ravel(), data[:, [63, 64]].ravel()])
        assert (on_borders == 0).sum() > 10 and (on_borders == 1).sum() > 10, f"{scene} {name}"
        # the dilation masks pixels the rule itself does not select, and beyond the data the mask is the fill
        selected = {"CM001": hand_probability(fmask, confidence) > 25,
                    CM004: np.isin(hand_scl(fmask, confidence), [3, 8, 9, 10])}[name]
        assert ((expected == 1) & ~selected).sum() > 20, f"{scene} {name}"
        assert (stored(cube, name, slot, slice(1000, 1064), slice(2000, 2064)) == 255).all()
    assert f"{scene_id}: CM001, {CM004} from the cube's fmask/cloud_confidence at 30 m" in log


@pytest.mark.parametrize("scene", ["S2", "L9"])
def test_masked_ndvi_is_fill_where_the_mask_says_cloud(routine, scene):
    _, _, cube, ids = routine
    slot = slot_of(cube, ids[scene])
    ndvi = stored(cube, "NDVI", slot)
    assert (ndvi != FILL).sum() > 500  # L1C blanked the clouds (and Fmask's 300 m buffer) already
    removed = 0
    for name in MASKS:
        mask = stored(cube, name, slot)
        np.testing.assert_array_equal(stored(cube, f"NDVI_{name}", slot), np.where(mask == 0, ndvi, FILL),
                                      err_msg=f"{scene} NDVI_{name}")
        removed += int(((mask == 1) & (ndvi != FILL)).sum())
    assert removed > 20, scene  # the dilated masks remove NDVI values L1C kept
