"""The metadata of a Landsat Collection 2 L1 product: calibration constants, ``MTL`` (text and XML) and
``ANG.txt``, modelled on real C2 MTL/ANG files (LC08 047/027, LC09 010/065)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .odl import Raw, Tree, number, to_odl

if TYPE_CHECKING:  # the plan is built by the writer, which imports this module
    from .landsat import LandsatPlan

__all__ = ["Calibration", "CALIBRATION", "REFLECTANCE_MULT", "REFLECTANCE_ADD", "THERMAL_RADIANCE_ADD",
           "mtl_tree", "ang_text"]


@dataclass(frozen=True)
class Calibration:
    """Per-platform constants, read off real Collection 2 MTLs (LC08 047/027 2020, LC09 010/065 2022).

    ``radiance_mult_1au`` is RADIANCE_MULT_BAND_n * d^2 of those files: the radiance per DN at 1 AU, from
    which each scene's RADIANCE_MULT/ADD follow for its Earth-Sun distance (REFLECTANCE_MULT/ADD are fixed).
    """

    mission: str
    radiance_mult_1au: tuple[float, ...]
    thermal_k: dict[str, tuple[float, float]]
    thermal_radiance_mult: dict[str, float]
    thermal_radiance_max: dict[str, float]


def _per_1au(d: float, mults: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(m * d * d for m in mults)


CALIBRATION = {
    "LANDSAT_8": Calibration(
        "8", _per_1au(0.9854607, (1.2929e-2, 1.3239e-2, 1.2200e-2, 1.0288e-2, 6.2956e-3, 1.5657e-3, 5.2771e-4,
                                  1.1643e-2, 2.4605e-3)),
        {"B10": (774.8853, 1321.0789), "B11": (480.8883, 1201.1442)}, {"B10": 3.342e-4, "B11": 3.342e-4},
        {"B10": 22.00180, "B11": 22.00180}),
    "LANDSAT_9": Calibration(
        "9", _per_1au(0.9849984, (1.2925e-2, 1.3275e-2, 1.2198e-2, 1.0339e-2, 6.3429e-3, 1.5846e-3, 5.3504e-4,
                                  1.1703e-2, 2.6313e-3)),
        {"B10": (799.0284, 1329.2405), "B11": (475.6581, 1198.3494)}, {"B10": 3.8e-4, "B11": 3.49e-4},
        {"B10": 25.00330, "B11": 22.97172}),
}
REFLECTANCE_MULT, REFLECTANCE_ADD, THERMAL_RADIANCE_ADD = 2.0e-5, -0.1, 0.1


def mtl_tree(plan: LandsatPlan, cloud_cover: float, cloud_cover_land: float) -> Tree:
    """The MTL of a Collection 2 L1TP product (written as MTL.txt and MTL.xml)."""
    product_id, scene_id, platform, path, row = plan.product_id, plan.scene_id, plan.platform, plan.path, plan.row
    acquired, processed, grid30, grid15 = plan.acquired, plan.processed, plan.grid30, plan.grid15
    sun_azimuth, sun_elevation = plan.scene.geometry.sun_azimuth_deg, plan.scene.geometry.sun_elevation_deg
    d_au, calibration, to_lonlat = plan.earth_sun_distance_au, CALIBRATION[plan.platform], plan.to_lonlat
    bands = range(1, 12)
    fname = {b: f"{product_id}_B{b}.TIF" for b in bands}
    doi_l1 = "https://doi.org/10.5066/P975CC9B"
    origin = "Image courtesy of the U.S. Geological Survey"
    files: Tree = [(f"FILE_NAME_BAND_{b}", fname[b]) for b in bands] + [
        ("FILE_NAME_QUALITY_L1_PIXEL", f"{product_id}_QA_PIXEL.TIF"),
        ("FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION", f"{product_id}_QA_RADSAT.TIF"),
        ("FILE_NAME_ANGLE_COEFFICIENT", f"{product_id}_ANG.txt"),
        ("FILE_NAME_METADATA_ODL", f"{product_id}_MTL.txt"),
        ("FILE_NAME_METADATA_XML", f"{product_id}_MTL.xml"),
    ]
    # grid corners as USGS gives them: the centres of the corner pixels
    x_left, y_top = grid30.x0 + 15.0, grid30.y0 - 15.0
    x_right, y_bottom = x_left + (grid30.cols - 1) * 30.0, y_top - (grid30.rows - 1) * 30.0
    corners = {"UL": (x_left, y_top), "UR": (x_right, y_top), "LL": (x_left, y_bottom), "LR": (x_right, y_bottom)}
    corner_items: Tree = []
    for key, (x, y) in corners.items():
        lon, lat = to_lonlat.transform(x, y)
        corner_items += [(f"CORNER_{key}_LAT_PRODUCT", number(lat, ".5f")),
                         (f"CORNER_{key}_LON_PRODUCT", number(lon, ".5f"))]
    for key, (x, y) in corners.items():
        corner_items += [(f"CORNER_{key}_PROJECTION_X_PRODUCT", number(x, ".3f")),
                         (f"CORNER_{key}_PROJECTION_Y_PRODUCT", number(y, ".3f"))]
    reflective = range(1, 10)
    radiance_mult = {b: calibration.radiance_mult_1au[b - 1] / (d_au * d_au) for b in reflective}
    radiance_add = {b: radiance_mult[b] / REFLECTANCE_MULT * REFLECTANCE_ADD for b in reflective}
    thermal_mult = {10: calibration.thermal_radiance_mult["B10"], 11: calibration.thermal_radiance_mult["B11"]}
    max_radiance = {b: radiance_add[b] + radiance_mult[b] * 65535 for b in reflective}
    min_radiance = {b: radiance_add[b] + radiance_mult[b] for b in reflective}
    for b in (10, 11):
        max_radiance[b] = calibration.thermal_radiance_max[f"B{b}"]
        min_radiance[b] = THERMAL_RADIANCE_ADD + thermal_mult[b]
    projection: Tree = [("MAP_PROJECTION", "UTM"), ("DATUM", "WGS84"), ("ELLIPSOID", "WGS84"),
                        ("UTM_ZONE", Raw(str(grid30.epsg % 100)))]
    return [("LANDSAT_METADATA_FILE", [
        ("PRODUCT_CONTENTS", [
            ("ORIGIN", origin), ("DIGITAL_OBJECT_IDENTIFIER", doi_l1), ("LANDSAT_PRODUCT_ID", product_id),
            ("PROCESSING_LEVEL", "L1TP"), ("COLLECTION_NUMBER", Raw("02")), ("COLLECTION_CATEGORY", "T1"),
            ("OUTPUT_FORMAT", "GEOTIFF"), *files,
            *[(f"DATA_TYPE_BAND_{b}", "UINT16") for b in bands],
            ("DATA_TYPE_QUALITY_L1_PIXEL", "UINT16"), ("DATA_TYPE_QUALITY_L1_RADIOMETRIC_SATURATION", "UINT16"),
        ]),
        ("IMAGE_ATTRIBUTES", [
            ("SPACECRAFT_ID", platform), ("SENSOR_ID", "OLI_TIRS"), ("WRS_TYPE", Raw("2")),
            ("WRS_PATH", Raw(str(path))), ("WRS_ROW", Raw(str(row))), ("NADIR_OFFNADIR", "NADIR"),
            ("TARGET_WRS_PATH", Raw(str(path))), ("TARGET_WRS_ROW", Raw(str(row))),
            ("DATE_ACQUIRED", Raw(f"{acquired:%Y-%m-%d}")),
            ("SCENE_CENTER_TIME", acquired.strftime("%H:%M:%S.%f") + "0Z"), ("STATION_ID", "LGN"),
            ("CLOUD_COVER", number(cloud_cover, ".2f")), ("CLOUD_COVER_LAND", number(cloud_cover_land, ".2f")),
            ("IMAGE_QUALITY_OLI", Raw("9")), ("IMAGE_QUALITY_TIRS", Raw("9")),
            *[(f"SATURATION_BAND_{b}", "N") for b in reflective],
            ("ROLL_ANGLE", Raw("-0.001")), ("SUN_AZIMUTH", number(sun_azimuth, ".8f")),
            ("SUN_ELEVATION", number(sun_elevation, ".8f")), ("EARTH_SUN_DISTANCE", number(d_au, ".7f")),
            ("TRUNCATION_OLI", "UPPER"), ("TIRS_SSM_MODEL", "FINAL"), ("TIRS_SSM_POSITION_STATUS", "ESTIMATED"),
        ]),
        ("PROJECTION_ATTRIBUTES", [
            *projection,
            ("GRID_CELL_SIZE_PANCHROMATIC", Raw("15.00")), ("GRID_CELL_SIZE_REFLECTIVE", Raw("30.00")),
            ("GRID_CELL_SIZE_THERMAL", Raw("30.00")),
            ("PANCHROMATIC_LINES", Raw(str(grid15.rows))), ("PANCHROMATIC_SAMPLES", Raw(str(grid15.cols))),
            ("REFLECTIVE_LINES", Raw(str(grid30.rows))), ("REFLECTIVE_SAMPLES", Raw(str(grid30.cols))),
            ("THERMAL_LINES", Raw(str(grid30.rows))), ("THERMAL_SAMPLES", Raw(str(grid30.cols))),
            ("ORIENTATION", "NORTH_UP"), *corner_items,
        ]),
        ("LEVEL1_PROCESSING_RECORD", [
            ("ORIGIN", origin), ("DIGITAL_OBJECT_IDENTIFIER", doi_l1), ("REQUEST_ID", f"SYN{processed:%Y%m%d}_00001"),
            ("LANDSAT_SCENE_ID", scene_id), ("LANDSAT_PRODUCT_ID", product_id), ("PROCESSING_LEVEL", "L1TP"),
            ("COLLECTION_CATEGORY", "T1"), ("OUTPUT_FORMAT", "GEOTIFF"),
            ("DATE_PRODUCT_GENERATED", f"{processed:%Y-%m-%dT%H:%M:%SZ}"),
            ("PROCESSING_SOFTWARE_VERSION", "gmsdask.synthetic"), *files,
            ("DATA_SOURCE_ELEVATION", "GLS2000"), ("GROUND_CONTROL_POINTS_VERSION", Raw("5")),
            ("GROUND_CONTROL_POINTS_MODEL", Raw("500")), ("GEOMETRIC_RMSE_MODEL", Raw("5.000")),
            ("GEOMETRIC_RMSE_MODEL_Y", Raw("3.500")), ("GEOMETRIC_RMSE_MODEL_X", Raw("3.500")),
        ]),
        ("LEVEL1_MIN_MAX_RADIANCE", [item for b in bands for item in (
            (f"RADIANCE_MAXIMUM_BAND_{b}", number(max_radiance[b], ".5f")),
            (f"RADIANCE_MINIMUM_BAND_{b}", number(min_radiance[b], ".5f")))]),
        ("LEVEL1_MIN_MAX_REFLECTANCE", [item for b in reflective for item in (
            (f"REFLECTANCE_MAXIMUM_BAND_{b}", number(REFLECTANCE_ADD + REFLECTANCE_MULT * 65535, ".6f")),
            (f"REFLECTANCE_MINIMUM_BAND_{b}", number(REFLECTANCE_ADD + REFLECTANCE_MULT, ".6f")))]),
        ("LEVEL1_MIN_MAX_PIXEL_VALUE", [item for b in bands for item in (
            (f"QUANTIZE_CAL_MAX_BAND_{b}", Raw("65535")), (f"QUANTIZE_CAL_MIN_BAND_{b}", Raw("1")))]),
        ("LEVEL1_RADIOMETRIC_RESCALING", [
            *[(f"RADIANCE_MULT_BAND_{b}", number(radiance_mult[b], ".4E")) for b in reflective],
            *[(f"RADIANCE_MULT_BAND_{b}", number(thermal_mult[b], ".4E")) for b in (10, 11)],
            *[(f"RADIANCE_ADD_BAND_{b}", number(radiance_add[b], ".5f")) for b in reflective],
            *[(f"RADIANCE_ADD_BAND_{b}", number(THERMAL_RADIANCE_ADD, ".5f")) for b in (10, 11)],
            *[(f"REFLECTANCE_MULT_BAND_{b}", number(REFLECTANCE_MULT, ".4E")) for b in reflective],
            *[(f"REFLECTANCE_ADD_BAND_{b}", number(REFLECTANCE_ADD, ".6f")) for b in reflective],
        ]),
        ("LEVEL1_THERMAL_CONSTANTS", [
            (f"K{k}_CONSTANT_BAND_{b}", number(calibration.thermal_k[f"B{b}"][k - 1], ".4f"))
            for b in (10, 11) for k in (1, 2)]),
        ("LEVEL1_PROJECTION_PARAMETERS", [
            *projection, ("GRID_CELL_SIZE_PANCHROMATIC", Raw("15.00")), ("GRID_CELL_SIZE_REFLECTIVE", Raw("30.00")),
            ("GRID_CELL_SIZE_THERMAL", Raw("30.00")), ("ORIENTATION", "NORTH_UP"),
            ("RESAMPLING_OPTION", "CUBIC_CONVOLUTION")]),
    ])]


def ang_text(plan: LandsatPlan) -> str:
    """``ANG.txt``: header groups and, per band, the image size and the true data corners (line, sample)."""
    scene_id, platform, grid30, footprint = plan.scene_id, plan.platform, plan.grid30, plan.footprint
    acquired, d_au = plan.acquired, plan.earth_sun_distance_au
    def pixel(x: float, y: float, res: float, x0: float, y0: float) -> tuple[float, float]:
        return (y0 - res / 2 - y) / res, (x - (x0 + res / 2)) / res

    corners30 = [pixel(x, y, 30.0, grid30.x0, grid30.y0) for x, y in footprint.corners()]
    # USGS order: the top, right, bottom and left vertices of the tilted data area
    ordered = [min(corners30, key=lambda c: c[0]), max(corners30, key=lambda c: c[1]),
               max(corners30, key=lambda c: c[0]), min(corners30, key=lambda c: c[1])]
    x_left, y_top = grid30.x0 + 15.0, grid30.y0 - 15.0
    x_right, y_bottom = x_left + (grid30.cols - 1) * 30.0, y_top - (grid30.rows - 1) * 30.0
    seconds = acquired.hour * 3600 + acquired.minute * 60 + acquired.second + acquired.microsecond / 1e6

    def tuple_text(values: list[float], fmt: str) -> Raw:
        return Raw("(" + ", ".join(format(v, fmt) for v in values) + ")")

    tree: Tree = [
        ("FILE_HEADER", [("LANDSAT_SCENE_ID", scene_id), ("SPACECRAFT_ID", platform), ("NUMBER_OF_BANDS", Raw("11")),
                         ("BAND_LIST", Raw("(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)"))]),
        ("PROJECTION", [
            ("ELLIPSOID_AXES", Raw("(6378137.000000, 6356752.314200)")), ("MAP_PROJECTION", "UTM"),
            ("PROJECTION_UNITS", "METERS"), ("DATUM", "WGS84"), ("ELLIPSOID", "WGS84"),
            ("UTM_ZONE", Raw(str(grid30.epsg % 100))),
            ("PROJECTION_PARAMETERS", tuple_text([0.0] * 15, ".6f")),
            ("UL_CORNER", tuple_text([x_left, y_top], "11.3f")), ("UR_CORNER", tuple_text([x_right, y_top], "11.3f")),
            ("LL_CORNER", tuple_text([x_left, y_bottom], "11.3f")),
            ("LR_CORNER", tuple_text([x_right, y_bottom], "11.3f"))]),
        ("EPHEMERIS", [("EPHEMERIS_EPOCH_YEAR", Raw(f"{acquired:%Y}")),
                       ("EPHEMERIS_EPOCH_DAY", Raw(f"{acquired:%j}")),
                       ("EPHEMERIS_EPOCH_SECONDS", number(seconds, ".6f")), ("NUMBER_OF_POINTS", Raw("0"))]),
        ("SOLAR_VECTOR", [("SOLAR_EPOCH_YEAR", Raw(f"{acquired:%Y}")), ("SOLAR_EPOCH_DAY", Raw(f"{acquired:%j}")),
                          ("SOLAR_EPOCH_SECONDS", number(seconds, ".6f")),
                          ("EARTH_SUN_DISTANCE", number(d_au, ".8f")), ("NUMBER_OF_POINTS", Raw("0"))]),
    ]
    for b in range(1, 12):
        scale = 2.0 if b == 8 else 1.0  # the pan grid shares the corner pixel centres at twice the density
        lines, samples = (2 * grid30.rows - 1, 2 * grid30.cols - 1) if b == 8 else grid30.shape
        tree.append((f"RPC_BAND{b:02d}", [
            (f"BAND{b:02d}_NUMBER_OF_SCAS", Raw("14" if b < 10 else "3")),
            (f"BAND{b:02d}_NUM_L1T_LINES", Raw(str(lines))), (f"BAND{b:02d}_NUM_L1T_SAMPS", Raw(str(samples))),
            (f"BAND{b:02d}_L1T_IMAGE_CORNER_LINES", tuple_text([c[0] * scale for c in ordered], "12.6f")),
            (f"BAND{b:02d}_L1T_IMAGE_CORNER_SAMPS", tuple_text([c[1] * scale for c in ordered], "12.6f")),
            (f"BAND{b:02d}_PIXEL_SIZE", number(15.0 if b == 8 else 30.0, ".3f")),
        ]))
    return to_odl(tree)
