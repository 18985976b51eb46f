"""The per-pixel resampling behind coreg_local (gmsdask.algorithms.point_resampling) against GDAL's kernels, and
the local warp into another CRS (one resampling: the field and the reprojection in one mapping)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from gmsdask.algorithms.point_resampling import resample_at
from gmsdask.algorithms.warp import warp_block
from gmsdask.coregistration import tie_points
from gmsdask.levels import l2a

from .coreg_data import georeferenced
from .test_coreg_local import LANDSCAPE, _ctx, l1b_local, scenes  # noqa: F401  (module fixtures)

SOURCE = GeoBox((300, 300), Affine(10, 0, 500_000 - 3.7, 0, -10, 5_800_000 + 2.2), "EPSG:32633")


def _positions(dst: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(dst.shape.x) + 0.5, np.arange(dst.shape.y) + 0.5)
    return ~SOURCE.affine * (dst.affine * (cols, rows))


@pytest.mark.parametrize("resampling, gsd", [("nearest", 10), ("bilinear", 10), ("cubic", 10), ("cubic", 5),
                                             ("average", 30)])
def test_kernels_equal_gdal_for_an_affine_mapping(resampling, gsd):
    rng = np.random.default_rng(0)
    src = rng.random(SOURCE.shape.yx).astype(np.float32)
    if resampling in ("nearest", "average"):
        src[100:110, 50:60] = np.nan  # no data is skipped by the average, kept as NaN by nearest
    size = int(2_800 / gsd)
    dst = GeoBox((size, size), Affine(gsd, 0, 500_020, 0, -gsd, 5_799_980), "EPSG:32633")
    gdal = warp_block(src, SOURCE, dst, resampling=resampling, src_nodata=np.nan, dst_fill=np.nan)
    u, v = _positions(dst)
    ours = resample_at(src, u, v, resampling=resampling, fill=np.nan, footprint=(gsd / 10, gsd / 10))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(gdal))
    np.testing.assert_allclose(ours, gdal, atol=2e-7, rtol=0)


def test_a_window_gives_the_whole_image_values_and_integer_layers_stay_nearest():
    rng = np.random.default_rng(1)
    src = rng.random(SOURCE.shape.yx).astype(np.float32)
    u, v = _positions(GeoBox((50, 50), Affine(10, 0, 501_000, 0, -10, 5_799_000), "EPSG:32633"))
    whole = resample_at(src, u, v, resampling="cubic", fill=np.nan)
    window = resample_at(src[80:200, 90:200], u, v, resampling="cubic", fill=np.nan, origin=(80, 90))
    np.testing.assert_array_equal(whole, window)
    qa = (rng.random(SOURCE.shape.yx) * 10).astype(np.uint8)
    picked = resample_at(qa, np.array([-1.0, 0.2, 299.9]), np.array([0.5, 0.5, 299.9]), resampling="cubic", fill=255)
    assert picked.dtype == np.uint8 and picked.tolist() == [255, qa[0, 0], qa[299, 299]]
    with pytest.raises(ValueError, match="lanczos"):
        resample_at(src, u, v, resampling="lanczos", fill=np.nan)


def test_local_field_and_reprojection_in_one_resampling(l1b_local):  # noqa: F811
    """The scene (UTM 29N) into UTM 30N with its local field: the content lands where the truth is."""
    out = l2a.run(l1b_local.scene, _ctx(coreg_local=True, target_epsg=32630)).scene
    assert out.attrs["l2a_coreg_mapping"] == "local field" and out.attrs["epsg"] == 32630
    band = out["r10m"].to_dataset()["B03"]
    gbox = band.odc.geobox
    xx, yy = np.meshgrid(band["x"].values, band["y"].values)
    x29, y29 = Transformer.from_crs(32630, 32629, always_xy=True).transform(xx, yy)
    truth = georeferenced(LANDSCAPE("B03", x29, y29), gbox.affine, str(gbox.crs))
    image = georeferenced(band.values, gbox.affine, str(gbox.crs))
    table = tie_points(truth, image, grid_res=64, window_size=96, min_reliability=0)
    matched = table[~table["REASON"].str.startswith("failed")]
    assert len(matched) >= 50
    rmse = float(np.sqrt(np.mean(matched["X_SHIFT_PX"] ** 2 + matched["Y_SHIFT_PX"] ** 2)))
    assert rmse < 0.1, rmse
