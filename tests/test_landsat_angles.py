"""Landsat sun and view angles from the USGS ANG.txt coefficients (gmsdask.algorithms.landsat_angles,
gmsdask.io.landsat_ang): conventions on hand-made models, physics and the MTL's sun on every real ANG file
(OLI Collection 1 and 2, Landsat 9, TM, ETM+), and the reader's angles group as NBAR and L1C use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gmsdask
from gmsdask.algorithms.brdf import ground_track_azimuth
from gmsdask.algorithms.landsat_angles import (BandAngleModel, DetectorMapping, VectorPolynomials, band_angles,
                                               l1t_line_sample)
from gmsdask.atmosphere.aerosol import CellGrid
from gmsdask.atmosphere.inputs import cell_geometry
from gmsdask.errors import MetadataError
from gmsdask.io.archive import ProductFiles
from gmsdask.io.landsat_ang import ang_angles_at, read_band_angle_model
from gmsdask.io.mtl import LandsatMetadata, parse_odl
from gmsdask.spectral.angles import angles_on_grid, footprint_centre

from .conftest import data_path

C1, C2 = ("landsat", "collection1"), ("landsat", "collection2")
#: name -> (collection folder, product (folder, archive or metadata stem), red band number)
REAL_ANG = {
    "LC08 C2 L2 001/070": (C2, "LC08_L2SP_001070_20190114_20200830_02_T2", 4),
    "LC08 C2 047/027": (C2, "metadata_only/LC08_L2SP_047027_20201204_20210313_02_T1", 4),
    "LC08 C2 084/024": (C2, "metadata_only/LC08_L2SR_084024_20160111_20201016_02_T1", 4),
    "LC09 C2 010/065": (C2, "metadata_only/LC09_L2SP_010065_20220129_20220131_02_T1", 4),
    "LC08 C1 090/084 (tar.gz)": (C1, "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz", 4),
    "LE07 C1 104/078 (tar)": (C1, "LE07_L1TP_104078_20130429_20161124_01_T1.tar", 3),
    "LT05 C1 090/085 (tar.gz)": (C1, "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz", 3),
}
SCENES = [name for name in REAL_ANG if "metadata_only" not in REAL_ANG[name][1]]


def _metadata(name: str) -> tuple[LandsatMetadata, LandsatMetadata, int]:
    """(ANG, MTL, red band) of one of REAL_ANG, read where they lie (folder or archive)."""
    collection, stem, band = REAL_ANG[name]
    if stem.startswith("metadata_only/"):
        folder, prefix = data_path(*collection, "metadata_only"), stem.split("/")[1]
        ang, mtl = (str(folder / f"{prefix}_{kind}.txt") for kind in ("ANG", "MTL"))
        read = {path: Path(path).read_text() for path in (ang, mtl)}
    else:
        files = ProductFiles.open(data_path(*collection, stem))
        ang, mtl = files.find("*_ANG.txt")[0], files.find("*_MTL.txt")[0]
        read = {path: files.read_text(path) for path in (ang, mtl)}
    return (LandsatMetadata(parse_odl(read[ang], ang), ang), LandsatMetadata(parse_odl(read[mtl], mtl), mtl), band)


# --- the model's conventions, on hand-made coefficients --------------------------------------------------------

def _constant_model(zenith_deg: float, azimuth_deg: float, *, scas: int = 1, samples: int = 100) -> BandAngleModel:
    """A model whose satellite vector is the same everywhere; L1R = L1T within each SCA's strip of samples."""
    z, a = np.deg2rad(zenith_deg), np.deg2rad(azimuth_deg)
    vector = (float(np.sin(z) * np.sin(a)), float(np.sin(z) * np.cos(a)), float(np.cos(z)))
    zeros = VectorPolynomials(vector, ((0.0,) * 10,) * 3, ((0.0,) * 9,) * 3)  # type: ignore[arg-type]
    mappings = tuple(DetectorMapping(l1t_mean=(0.0, sca * samples), l1r_mean=(0.0, 0.0), mean_height_m=0.0,
                                     line_numerator=(0.0, 1.0, 0.0, 0.0, 0.0), line_denominator=(0.0,) * 4,
                                     sample_numerator=(0.0, 0.0, 1.0, 0.0, 0.0), sample_denominator=(0.0,) * 4,
                                     l1r_sample_offset=sca * samples) for sca in range(scas))
    return BandAngleModel((0.0, 0.0), (0.0, 0.0), 0.0, 50, samples, mappings, zeros, zeros)


@pytest.mark.parametrize("zenith, azimuth", [(7.0, 100.0), (7.0, 280.0), (30.0, 5.0), (30.0, 355.0)])
def test_vector_components_are_east_north_up_and_azimuth_is_clockwise_from_north(zenith, azimuth):
    got_zenith, got_azimuth = band_angles(_constant_model(zenith, azimuth), 10.0, 20.0)
    assert got_zenith == pytest.approx(zenith, abs=1e-9)
    assert got_azimuth == pytest.approx(azimuth, abs=1e-9)


def test_pixels_outside_every_module_are_nan_and_modules_tile_the_focal_plane():
    model = _constant_model(5.0, 90.0, scas=3, samples=100)
    line = np.array([10.0, 10.0, 10.0, 10.0, -1.0, 60.0])
    sample = np.array([5.0, 150.0, 299.0, 300.5, 5.0, 5.0])  # SCA 1, 2, 3, beyond SCA 3, above, below
    zenith, _ = band_angles(model, line, sample)
    assert np.isfinite(zenith[:3]).all() and np.isnan(zenith[3:]).all()
    near, _ = band_angles(model, line, sample, extrapolate_px=1.5)  # 1.5 and 1 pixel outside: extrapolated
    assert np.isfinite(near[:5]).all() and np.isnan(near[5])


def test_l1t_line_sample_counts_from_the_upper_left_pixel_centre():
    line, sample = l1t_line_sample(np.array([528300.0, 528330.0]), np.array([-1482300.0, -1482360.0]),
                                   ul_x=528300.0, ul_y=-1482300.0, pixel_size_m=30.0)
    np.testing.assert_allclose(line, [0.0, 2.0])
    np.testing.assert_allclose(sample, [0.0, 1.0])


def test_an_ang_file_without_satellite_coefficients_gives_none_and_a_truncated_one_names_the_file(tmp_path):
    ang, _, band = _metadata("LC09 C2 010/065")
    group = ang.tree[f"RPC_BAND{band:02d}"]
    without = {key: value for key, value in group.items() if "_SAT_" not in key}
    assert read_band_angle_model(LandsatMetadata({f"RPC_BAND{band:02d}": without}, "x_ANG.txt"), band) is None
    truncated = dict(group, BAND04_SAT_Y_DEN_COEF=group["BAND04_SAT_Y_DEN_COEF"][:5])
    with pytest.raises(MetadataError, match="broken_ANG.txt.*BAND04_SAT_Y_DEN_COEF has 5 values"):
        read_band_angle_model(LandsatMetadata({f"RPC_BAND{band:02d}": truncated}, "broken_ANG.txt"), band)


# --- every real ANG file ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(REAL_ANG))
def test_ang_sun_at_the_scene_centre_is_the_mtl_sun(name):
    """The SUN vectors' frame and azimuth convention, checked against USGS's own scene-centre sun angles."""
    ang, mtl, band = _metadata(name)
    model = read_band_angle_model(ang, band)
    assert model is not None
    zenith, azimuth = band_angles(model, *model.l1t_mean, target="sun")
    assert zenith == pytest.approx(90.0 - mtl.number("SUN_ELEVATION"), abs=0.05)
    assert azimuth == pytest.approx(mtl.number("SUN_AZIMUTH"), abs=0.05)


@pytest.mark.parametrize("name", list(REAL_ANG))
def test_ang_view_angles_have_the_landsat_swath_geometry(name):
    """Nadir inside the scene, ~8.3 degrees at the 92.5 km half swath (7.5 degrees look angle + 0.8 degree of
    Earth curvature), the sensor perpendicular to the descending ground track (~100 / ~280 degrees)."""
    ang, mtl, band = _metadata(name)
    group = f"RPC_BAND{band:02d}"
    lines, samples = (int(ang.number(f"BAND{band:02d}_NUM_L1T_{k}", (group,))) for k in ("LINES", "SAMPS"))
    line, sample = np.meshgrid(np.linspace(0, lines - 1, 80), np.linspace(0, samples - 1, 80), indexing="ij")
    zenith, azimuth = band_angles(read_band_angle_model(ang, band), line, sample)
    seen = np.isfinite(zenith)
    assert 0.6 < seen.mean() < 0.8  # the tilted data area within the map grid
    assert np.nanmin(zenith) < 0.3 and 8.2 < np.nanmax(zenith) < 9.3
    lat = mtl.number("CORNER_UL_LAT_PRODUCT") / 2 + mtl.number("CORNER_LR_LAT_PRODUCT") / 2
    track = ground_track_azimuth(lat)
    off_nadir = seen & (zenith > 3.0)
    from_perpendicular = np.abs((azimuth[off_nadir] - track + 180.0) % 180.0 - 90.0)
    assert np.median(from_perpendicular) < 8.0
    sensor_on_the_left = ((azimuth[off_nadir] - track) % 360.0) > 180.0
    assert 0.3 < sensor_on_the_left.mean() < 0.7  # both sides of the track are seen


# --- the reader's angles group, NBAR's per-pixel angles and L1C's cell geometry ---------------------------------

@pytest.fixture(scope="module", params=SCENES)
def real_scene(request):
    collection, stem, band = REAL_ANG[request.param]
    return request.param, gmsdask.open_scene(data_path(*collection, stem)), band


def test_reader_puts_ang_view_angles_on_the_sun_nodes_and_nbar_uses_them(real_scene):
    name, scene, band = real_scene
    angles = scene["angles"].to_dataset()
    assert angles.attrs["view_angles_source"] == f"ANG.txt coefficients (band B{band}, 5 km nodes)"
    assert angles["view_zenith"].shape == angles["sun_zenith"].shape
    # the sun computed per node (solar ephemeris) and the ANG SUN vectors agree: same frame, true north
    ang, _, _ = _metadata(name)
    x, y = np.meshgrid(angles["x"].values, angles["y"].values)
    from_ang = ang_angles_at(ang, band, x, y)
    seen = np.isfinite(from_ang["sun_zenith"])
    assert np.abs(from_ang["sun_zenith"] - angles["sun_zenith"].values)[seen].max() < 0.1
    assert np.abs((from_ang["sun_azimuth"] - angles["sun_azimuth"].values + 180) % 360 - 180)[seen].max() < 0.1
    np.testing.assert_allclose(angles["view_zenith"].values[seen], from_ang["view_zenith"][seen], atol=1e-4)
    # nodes next to the swath carry extrapolated angles (so pixels at the swath edge interpolate), nodes
    # beyond them none
    node_has_view = np.isfinite(angles["view_zenith"].values)
    assert (node_has_view & ~seen).any()
    far = np.isnan(ang_angles_at(ang, band, x, y, extrapolate_m=7500.0)["view_zenith"])
    assert np.array_equal(~node_has_view, far) and far.any()

    red = f"B{band}"
    grid = scene["r30m"].to_dataset()[[red]]
    product = angles_on_grid(angles, grid, footprint_wkt=scene.attrs["footprint"], epsg=scene.attrs["epsg"])
    assert product.attrs["view_angles_source"].startswith("ANG.txt coefficients")
    track = angles_on_grid(angles.drop_vars(["view_zenith", "view_azimuth"]), grid,
                           footprint_wkt=scene.attrs["footprint"], epsg=scene.attrs["epsg"])
    assert track.attrs["view_angles_source"].startswith("approximated")
    valid = np.isfinite(grid[red].values)
    vz, approx = product["view_zenith"].values[valid], track["view_zenith"].values[valid]
    assert vz.min() < 0.5 and 8.0 < vz.max() < 9.3
    # the track approximation (spherical Earth) stays within 0.6 degree of the model (flat, it was 1.1 degree off)
    assert np.abs(vz - approx).max() < 0.7 and np.abs(vz - approx).mean() < 0.2
    # against the model evaluated at every pixel: the 5 km grid is exact to 0.05 degree at the swath edges; only
    # the jumps at OLI's SCA seams (odd and even SCAs look ~0.6 degree fore and aft) are smoothed out
    pixel_x, pixel_y = np.meshgrid(grid["x"].values, grid["y"].values)
    exact = ang_angles_at(ang, band, pixel_x, pixel_y)["view_zenith"][valid]
    error = np.abs(vz - exact)
    assert error[exact > 7.0].max() < 0.05 and error.mean() < 0.03 and error.max() < 0.6


def test_a_product_without_ang_file_keeps_the_track_approximation():
    scene = gmsdask.open_scene(data_path(*C1, "LC08_L1TP_016037_20170813_20170814_01_RT"))
    angles = scene["angles"].to_dataset()
    assert "view_zenith" not in angles and "view_angles_source" not in angles.attrs
    on_grid = angles_on_grid(angles, scene["r30m"].to_dataset()[["B4"]], footprint_wkt=scene.attrs["footprint"],
                             epsg=scene.attrs["epsg"])
    assert on_grid.attrs["view_angles_source"].startswith("approximated")


def test_l1c_cell_geometry_takes_ang_view_angles_only_when_asked(real_scene):
    _, scene, _ = real_scene
    angles = scene["angles"].to_dataset()
    x, y = angles["x"].values, angles["y"].values
    cells = CellGrid.covering(x[0], y[0], x[-1] - x[0], y[0] - y[-1], 3000.0)
    nadir, note = cell_geometry(scene, cells)
    assert "nadir assumed" in note and not nadir["view_zenith"].any()
    geometry, note = cell_geometry(scene, cells, ang_view_angles=True)
    assert "ANG.txt coefficients" in note
    # cells cover the whole map grid; those beyond the swath (no data) take the nodes' extrapolated angles
    assert geometry["view_zenith"].min() < 0.5 and 8.0 < geometry["view_zenith"].max() < 10.0
    np.testing.assert_allclose(geometry["sun_zenith"], nadir["sun_zenith"])
    # the sensor lies on opposite sides for pixels right and left of the track and the sun's azimuth hardly
    # changes over a scene: the relative azimuths (folded into 0..180) of the two sides add up to ~180
    latitude, centre_x, centre_y = footprint_centre(scene.attrs["footprint"], scene.attrs["epsg"])
    heading = np.deg2rad(ground_track_azimuth(latitude))
    cell_x, cell_y = np.meshgrid(cells.x - centre_x, cells.y - centre_y)
    right = cell_x * np.cos(heading) - cell_y * np.sin(heading) > 0
    off_nadir = geometry["view_zenith"] > 4.0
    relative = geometry["relative_azimuth"]
    assert ((relative >= 0) & (relative <= 180)).all()
    assert np.median(relative[off_nadir & right]) + np.median(relative[off_nadir & ~right]) == pytest.approx(
        180.0, abs=15.0)


class _Geometry(Exception):
    """Raised by the patched ``cell_geometry`` with the flag it was called with."""


@pytest.mark.parametrize("flag", [False, True])
def test_option_ac_landsat_view_angles_reaches_the_6s_geometry(monkeypatch, flag):
    """``ac_landsat_view_angles`` goes from the job's configuration through L1C and ``correct_scene`` into
    ``cell_geometry`` (what each setting computes is tested above; running 6S at the ANG geometry here would
    cost the tables of a new geometry)."""
    from gmsdask.atmosphere import correct
    from gmsdask.config import set_config
    from gmsdask.levels import LevelContext, l1c

    def geometry(scene, cells, *, ang_view_angles=False):
        raise _Geometry(ang_view_angles)

    monkeypatch.setattr(correct, "cell_geometry", geometry)
    collection, stem, _ = REAL_ANG["LC08 C1 090/084 (tar.gz)"]  # a Level-1 scene: L1C corrects it
    scene = gmsdask.open_scene(data_path(*collection, stem))
    ctx = LevelContext(record=None, config=set_config(ac_landsat_view_angles=flag), job_id=1)
    with pytest.raises(_Geometry) as seen:
        l1c.run(scene, ctx)
    assert seen.value.args == (flag,)
    assert set_config().ac_landsat_view_angles is False  # Landsat is corrected at nadir unless asked
