"""coreg_local: L1B fits a smooth displacement field to the tie points, L2A applies it inside its one resampling.

The target is the reference's landscape warped by a known, spatially varying displacement (0 px on the west edge
to 2 px on the east edge, a rotation-like component and some curvature), evaluated exactly from the band-limited
texture (no resampling in making it). After L1B (local) and L2A the residual misregistration against the truth
is measured by phase correlation on the L2A output.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from gmsdask import set_config
from gmsdask.catalog import SceneRecord
from gmsdask.algorithms.local_field import bilinear_at, fit_local_field, quadratic_outliers
from gmsdask.coregistration import tie_points
from gmsdask.coregistration.local import local_field
from gmsdask.geometry import DisplacementField, group_geobox
from gmsdask.io.scene_store import read_scene, write_scene
from gmsdask.levels import LevelContext, l1b, l2a
from gmsdask.levels.coreg_reference import REFERENCE_ROLE

from .coreg_data import REF_NAME, TGT_NAME, georeferenced, pair_path, read_reflectance, texture
from .scene_factory import s2_scene

SIZE_M = 8_000.0  # 800 x 800 px at 10 m
GSD = 10.0
OFFSET_M = (30_000.0, 30_000.0)
GROUPS = {"r10m": ("B03",)}
OPTIONS = {"coreg_window_size": (128, 128), "coreg_grid_res": 64, "target_gsd": GSD,
           "tiling_block_size_XY": (256, 256)}


def _origin() -> tuple[float, float]:
    scene = s2_scene(size_m=(60.0, 60.0), groups=GROUPS)
    gbox = group_geobox(scene["r10m"].to_dataset())
    return gbox.affine.c, gbox.affine.f


X0, Y0 = _origin()


def truth_displacement_m(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The content displacement (east, north; metres) at observed positions: 0 -> 2 px west to east, a
    rotation-like part of +-0.5 px and a curved part of up to 0.5 px."""
    u, v = (x - X0) / SIZE_M, (Y0 - y) / SIZE_M  # 0..1 east and south
    dx = 2 * GSD * u + 0.5 * GSD * (2 * v - 1)
    dy = 0.5 * GSD * (2 * u - 1) + 0.5 * GSD * 4 * (u - 0.5) ** 2 * (1 - v)
    return dx, dy


LANDSCAPE = texture(n_waves=24, min_wavelength_m=150.0)


def warped(band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx, dy = truth_displacement_m(x, y)
    return LANDSCAPE(band, x - dx, y - dy)


def _scene(values, product_id: str, **kwargs) -> xr.DataTree:
    return s2_scene(size_m=(SIZE_M, SIZE_M), offset_m=OFFSET_M, groups=GROUPS, chunks=200, values=values,
                    attrs={"product_id": product_id}, **kwargs)


def _ctx(**options) -> LevelContext:
    when = datetime(2022, 10, 5, tzinfo=timezone.utc)
    record = SceneRecord(1, "REF", "/nowhere/REF", "SENTINEL_2A", "MSI", "L2A", when, 0.0,
                         "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", ["29UNU"], when)
    return LevelContext(record=record, config=set_config(**{**OPTIONS, **options}), job_id=1,
                        references=((REFERENCE_ROLE, record),))


def _l1b(target: xr.DataTree, reference: xr.DataTree, monkeypatch, **options):
    monkeypatch.setattr(l1b, "open_scene", lambda path, chunks=None: reference)
    return l1b.run(target, _ctx(**options))


@pytest.fixture(scope="module")
def scenes():
    return _scene(LANDSCAPE, "REF"), _scene(warped, "TGT")


@pytest.fixture(scope="module")
def l1b_local(scenes):
    reference, target = scenes
    with pytest.MonkeyPatch.context() as mp:
        return _l1b(target, reference, mp, coreg_local=True)


def _residual_rmse_px(band: xr.DataArray) -> tuple[float, int]:
    """RMSE (px, both axes) of the misregistration of an L2A band against the true landscape on its grid."""
    xx, yy = np.meshgrid(band["x"].values, band["y"].values)
    truth = georeferenced(LANDSCAPE("B03", xx, yy), band.odc.geobox.affine, str(band.odc.geobox.crs))
    image = georeferenced(band.values, band.odc.geobox.affine, str(band.odc.geobox.crs))
    table = tie_points(truth, image, grid_res=48, window_size=96, min_reliability=0)
    matched = table[~table["REASON"].str.startswith("failed")]
    assert len(matched) >= 100
    return float(np.sqrt(np.mean(matched["X_SHIFT_PX"] ** 2 + matched["Y_SHIFT_PX"] ** 2))), len(matched)


def test_l1b_local_records_tie_points_statistics_and_a_field(l1b_local, tmp_path):
    # the l1b group is part of the level product: it survives the scene store and the field reads back equal
    write_scene(l1b_local.scene, tmp_path / "l1b.zarr")
    scene = read_scene(tmp_path / "l1b.zarr")
    assert scene["l1b"].to_dataset().identical(l1b_local.scene["l1b"].to_dataset())
    assert scene.attrs["coreg_status"] == "success" and scene.attrs["coreg_field_status"] == "local"
    group = scene["l1b"].to_dataset()
    assert group.sizes["tie_point"] == l1b_local.facts["tie_points_total"] >= 81
    assert l1b_local.facts["tie_points_valid"] >= 0.9 * l1b_local.facts["tie_points_total"]
    assert group.attrs["coreg_field_status"] == "local" and group.attrs["field_crs"] == "EPSG:32629"
    # the statistics describe the measured points: mean of the (AROSICS-convention) correction ~ -mean field
    reason = group["tie_point_reason"].values
    valid_x = group["tie_point_x_shift_m"].values[reason == 0]
    assert l1b_local.facts["tie_points_x_shift_m_mean"] == pytest.approx(valid_x.mean(), abs=1e-3)
    assert l1b_local.facts["tie_points_x_shift_m_std"] > 4  # the field varies: 0 .. 20 m west to east
    # the field itself against the truth at its nodes inside the scene
    field = DisplacementField.from_dataset(group)
    gx, gy = np.meshgrid(field.x, field.y)
    tx, ty = truth_displacement_m(gx, gy)
    inner = (gx > X0 + 640) & (gx < X0 + SIZE_M - 640) & (gy < Y0 - 640) & (gy > Y0 - SIZE_M + 640)
    error_px = np.hypot(field.dx_m - tx, field.dy_m - ty)[inner] / GSD
    assert np.sqrt(np.mean(error_px ** 2)) < 0.05
    assert (field.reliability >= 60).all() and (field.reliability <= 100).all()


def test_local_mode_leaves_under_01_px_where_global_leaves_over_03_px(scenes, l1b_local, monkeypatch):
    reference, target = scenes
    local = l2a.run(l1b_local.scene, _ctx(coreg_local=True))
    assert local.scene.attrs["l2a_coreg_mapping"] == "local field"
    band = local.scene["r10m"].to_dataset()["B03"]
    local_rmse, n = _residual_rmse_px(band)

    global_l1b = _l1b(target, reference, monkeypatch)
    assert "l1b" not in global_l1b.scene.children and "coreg_field_status" not in global_l1b.scene.attrs
    global_out = l2a.run(global_l1b.scene, _ctx())
    assert global_out.scene.attrs["l2a_coreg_mapping"] == "global translation"
    global_rmse, _ = _residual_rmse_px(global_out.scene["r10m"].to_dataset()["B03"])
    print(f"residual misregistration RMSE: local {local_rmse:.3f} px, global {global_rmse:.3f} px, {n} windows")
    assert local_rmse < 0.1 and global_rmse > 0.3, (local_rmse, global_rmse, n)

    # the accuracy layer follows the tie points: per pixel, percent, fill where there is no data
    layer = local.scene["r10m"].to_dataset()["shift_reliability"]
    values = layer.values
    nodata = local.scene["r10m"].to_dataset()["nodata"].values
    assert layer.dtype == np.uint8 and (values[nodata] == l2a.RELIABILITY_FILL).all()
    assert (values[~nodata] >= 60).all() and (values[~nodata] <= 100).all() and len(np.unique(values[~nodata])) > 1


def test_local_warp_has_no_seams_two_block_sizes_give_identical_output(l1b_local):
    small = l2a.run(l1b_local.scene, _ctx(coreg_local=True, tiling_block_size_XY=(96, 96))).scene
    large = l2a.run(l1b_local.scene, _ctx(coreg_local=True, tiling_block_size_XY=(512, 512))).scene
    xr.testing.assert_identical(small["r10m"].to_dataset().compute(), large["r10m"].to_dataset().compute())


def test_too_few_tie_points_fall_back_to_the_global_shift_with_a_status(scenes, monkeypatch):
    reference, _ = scenes
    # data only in a 3.3 km square in the north-west corner: 3 x 3 tie points of the 64 px grid (< 10)
    side = 3_300.0
    target = _scene(warped, "TGT", nodata_box=(X0 + side, Y0 - SIZE_M, X0 + SIZE_M, Y0))
    ds = target["r10m"].to_dataset()
    south = xr.DataArray(ds["y"].values < Y0 - side, dims="y")
    target["r10m"] = xr.DataTree(ds.assign(B03=ds["B03"].where(~south)))
    outcome = _l1b(target, reference, monkeypatch, coreg_local=True)
    status = outcome.scene.attrs["coreg_field_status"]
    assert outcome.scene.attrs["coreg_status"] == "success", outcome.facts
    assert status.startswith("fallback:global (") and "valid tie points < 10" in status, str(outcome.facts)
    assert outcome.facts["coreg_field_status"] == status and outcome.facts["tie_points_valid"] < 10
    out = l2a.run(outcome.scene, _ctx(coreg_local=True))
    assert out.scene.attrs["l2a_coreg_mapping"] == "global translation"
    assert "global shift applied" in out.note and out.scene.attrs["l2a_shift_m"] == outcome.scene.attrs["coreg_shift_m"]


def test_real_pair_local_field_is_stable():
    """T33UUU (two dates): the tie points of a 400 px grid and the local field through them (measured values,
    docs/coregistration.md)."""
    ref = georeferenced(*read_reflectance(pair_path(REF_NAME)))
    tgt = georeferenced(*read_reflectance(pair_path(TGT_NAME)))
    table = tie_points(ref, tgt, grid_res=400, window_size=256)
    field = local_field(table, tgt.odc.geobox, spacing_px=200)
    assert field.is_local, field.status
    stats = field.stats
    assert 18 <= stats["tie_points_valid"] <= stats["tie_points_total"] <= 25
    # AROSICS convention: correction -0.64 px in x, +1.83 px in y (-6.4 m east, -18.3 m north)
    assert stats["tie_points_x_shift_m_mean"] == pytest.approx(-6.4, abs=0.3)
    assert stats["tie_points_y_shift_m_mean"] == pytest.approx(-18.2, abs=0.3)
    assert stats["tie_points_x_shift_m_std"] < 1.0 and stats["tie_points_y_shift_m_std"] < 1.2
    # the field (content displacement = -correction) follows the valid points to 0.02 px and varies by about
    # 0.3 px in x and 0.6 px in y over the image
    d = DisplacementField.from_dataset(field.group)
    assert float(np.median(d.dx_m)) == pytest.approx(6.7, abs=0.3)
    assert float(np.median(d.dy_m)) == pytest.approx(18.4, abs=0.3)
    assert 4.5 < d.dx_m.min() < d.dx_m.max() < 8.5 and 14.5 < d.dy_m.min() < d.dy_m.max() < 21.5
    valid = field.points[~field.points["OUTLIER"]]
    a = tgt.odc.geobox.affine
    fx, fy = bilinear_at(d.y, d.x, np.stack([d.dx_m, d.dy_m]), a.f + (valid["Y_IM"].to_numpy() + 0.5) * a.e,
                         a.c + (valid["X_IM"].to_numpy() + 0.5) * a.a)
    residual_m = np.hypot(fx + valid["X_SHIFT_M"].to_numpy(), fy + valid["Y_SHIFT_M"].to_numpy())
    assert np.sqrt(np.mean(residual_m ** 2)) < 0.3
    assert 0 <= d.reliability.min() and d.reliability.max() <= 100 and 80 < np.median(d.reliability) < 95


def test_field_level_outlier_test_and_the_fit():
    """A smooth quadratic field with one point off by 0.8 px: only that point is flagged; the spline reproduces
    an affine field exactly and does not run away beyond the points."""
    cols, rows = np.meshgrid(np.arange(100, 1000, 100.0), np.arange(100, 1000, 100.0))
    x, y = cols.ravel(), rows.ravel()
    dx = 0.5 + 1e-3 * x + 0.4 * ((x - 500) / 500) ** 2
    dy = -0.3 + 5e-4 * y - 2e-4 * x
    dy_bad = dy.copy()
    dy_bad[40] += 0.8
    flagged = quadratic_outliers(x, y, dx, dy_bad)
    assert flagged.tolist() == [i == 40 for i in range(len(x))]
    assert not quadratic_outliers(x, y, dx, dy + np.random.default_rng(0).normal(0, 0.05, len(x))).any()

    table = pd.DataFrame({"X_IM": x, "Y_IM": y, "X_SHIFT_PX": dx, "Y_SHIFT_PX": dy_bad, "X_SHIFT_M": 10 * dx,
                          "Y_SHIFT_M": -10 * dy_bad, "RELIABILITY": 80.0, "SSIM_BEFORE": 0.5, "SSIM_AFTER": 0.6,
                          "X_MAP": 0.0, "Y_MAP": 0.0, "OUTLIER": False, "REASON": ""})
    gbox = GeoBox((1000, 1000), Affine(10, 0, 500_000, 0, -10, 5_800_000), "EPSG:32633")
    field = local_field(table, gbox, spacing_px=100)
    assert field.points["REASON"].tolist() == ["field" if i == 40 else "" for i in range(len(x))]
    assert field.stats["tie_points_outliers_field"] == 1 and field.stats["tie_points_valid"] == len(x) - 1
    assert field.group["tie_point_reason"].values[40] == 5

    gx, gy = np.meshgrid(np.linspace(0, 2000, 9), np.linspace(0, 2000, 9))
    values = 1 + 2e-3 * x - 1e-3 * y  # 0.3 .. 2.7 at the points: clipped to -0.9 .. 3.9 beyond them
    affine = fit_local_field(x, y, values[:, None], gx, gy)[..., 0]
    np.testing.assert_allclose(affine, np.clip(1 + 2e-3 * gx - 1e-3 * gy, -0.9, 3.9), atol=1e-6)
    assert affine.max() == pytest.approx(3.9) and affine.min() == pytest.approx(-0.9)
