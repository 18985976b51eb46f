"""Landsat ``_ANG.txt`` angle coefficient files: the band models of ``gmsdask.algorithms.landsat_angles``.

Both formats USGS ships are read: OLI/TIRS (Landsat 8/9; L1T -> L1R polynomials per SCA,
``BANDnn_SCAmm_*``) and TM/ETM+ (Landsat 4/5/7; per scan direction, ``BANDnn_DIRmm_*``). Files without the
satellite vector coefficients (e.g. the project's synthetic products, which carry only image sizes and
corners) give None, and callers keep their approximation.
"""

from __future__ import annotations

import numpy as np

from ..algorithms.landsat_angles import (BandAngleModel, DetectorMapping, VectorPolynomials, band_angles,
                                         l1t_line_sample)
from ..errors import MetadataError
from .mtl import LandsatMetadata

__all__ = ["read_band_angle_model", "ang_angles_at"]


def _tuple(meta: LandsatMetadata, group: str, key: str, length: int) -> tuple[float, ...]:
    values = meta.numbers(key, (group,))
    if len(values) != length:
        raise MetadataError(meta.source, f"{key} has {len(values)} values, expected {length}")
    return tuple(values)


def _vector(meta: LandsatMetadata, group: str, prefix: str, which: str) -> VectorPolynomials:
    mean = _tuple(meta, group, f"{prefix}_MEAN_{which}_VECTOR", 3)
    numerators = tuple(_tuple(meta, group, f"{prefix}_{which}_{axis}_NUM_COEF", 10) for axis in "XYZ")
    denominators = tuple(_tuple(meta, group, f"{prefix}_{which}_{axis}_DEN_COEF", 9) for axis in "XYZ")
    return VectorPolynomials(mean, numerators, denominators)  # type: ignore[arg-type]


def _mapping(meta: LandsatMetadata, group: str, prefix: str, sample_offset: float) -> DetectorMapping:
    return DetectorMapping(
        l1t_mean=_tuple(meta, group, f"{prefix}_MEAN_L1T_LINE_SAMP", 2),  # type: ignore[arg-type]
        l1r_mean=_tuple(meta, group, f"{prefix}_MEAN_L1R_LINE_SAMP", 2),  # type: ignore[arg-type]
        mean_height_m=meta.number(f"{prefix}_MEAN_HEIGHT", (group,)),
        line_numerator=_tuple(meta, group, f"{prefix}_LINE_NUM_COEF", 5),
        line_denominator=_tuple(meta, group, f"{prefix}_LINE_DEN_COEF", 4),
        sample_numerator=_tuple(meta, group, f"{prefix}_SAMP_NUM_COEF", 5),
        sample_denominator=_tuple(meta, group, f"{prefix}_SAMP_DEN_COEF", 4),
        l1r_sample_offset=sample_offset)


def read_band_angle_model(ang: LandsatMetadata, band: int) -> BandAngleModel | None:
    """The angle model of ``band`` (its number, e.g. 4 for OLI red) from a parsed ``ANG.txt``.

    None when the file has no satellite vector coefficients for the band; ``MetadataError`` naming the file
    when they are there but incomplete or malformed.
    """
    group, prefix = f"RPC_BAND{band:02d}", f"BAND{band:02d}"
    if ang.find(f"{prefix}_SAT_X_NUM_COEF", (group,)) is None:
        return None
    l1r_lines = int(ang.number(f"{prefix}_NUM_L1R_LINES", (group,)))
    l1r_samples = int(ang.number(f"{prefix}_NUM_L1R_SAMPS", (group,)))
    if ang.find(f"{prefix}_NUMBER_OF_SCAS", (group,)) is not None:  # OLI/TIRS: one mapping per SCA
        scas = [int(v) for v in ang.numbers(f"{prefix}_SCA_LIST", (group,))]
        mappings = tuple(_mapping(ang, group, f"{prefix}_SCA{sca:02d}", index * l1r_samples)
                         for index, sca in enumerate(scas))
    else:  # TM/ETM+: one mapping per scan direction
        directions = int(ang.number(f"{prefix}_NUMBER_OF_DIRECTIONS", (group,)))
        mappings = tuple(_mapping(ang, group, f"{prefix}_DIR{d:02d}", 0.0) for d in range(directions))
    if not mappings:
        raise MetadataError(ang.source, f"{group} has satellite coefficients but no detector modules")
    return BandAngleModel(
        l1t_mean=_tuple(ang, group, f"{prefix}_MEAN_L1T_LINE_SAMP", 2),  # type: ignore[arg-type]
        l1r_mean=_tuple(ang, group, f"{prefix}_MEAN_L1R_LINE_SAMP", 2),  # type: ignore[arg-type]
        mean_height_m=ang.number(f"{prefix}_MEAN_HEIGHT", (group,)),
        l1r_lines=l1r_lines, l1r_samples=l1r_samples, mappings=mappings,
        satellite=_vector(ang, group, prefix, "SAT"), sun=_vector(ang, group, prefix, "SUN"))


def ang_angles_at(ang: LandsatMetadata, band: int, x, y, *, extrapolate_m: float = 0.0
                  ) -> dict[str, np.ndarray] | None:
    """``view_zenith``, ``view_azimuth``, ``sun_zenith``, ``sun_azimuth`` (degrees, float64; azimuths
    clockwise from north towards the sensor/sun) of ``band`` at map coordinates ``x``, ``y`` (metres in the
    product's CRS, which the ANG file's UL_CORNER is in). NaN outside the imaged swath, except within
    ``extrapolate_m`` of it, where the polynomials are extrapolated.

    None when the file has no angle coefficients for the band.

    One band stands for all (the reader takes the red band, OLI B4, TM/ETM+ B3): OLI's band rows sit side by
    side on the focal plane, so its bands look 0.08-0.27 degree apart along track (B4 is in the middle; up to
    0.8 degree at SCA seams, where neighbouring bands fall in the other, staggered SCA). Near nadir that
    turns the view azimuth of another band by several degrees at an unchanged zenith; the view vector, which
    NBAR and 6S use, moves by those fractions of a degree. TM/ETM+ bands look < 0.002 degree apart.
    """
    model = read_band_angle_model(ang, band)
    if model is None:
        return None
    ul_x, ul_y = _tuple(ang, "PROJECTION", "UL_CORNER", 2)
    pixel = ang.number(f"BAND{band:02d}_PIXEL_SIZE", (f"RPC_BAND{band:02d}",))
    line, sample = l1t_line_sample(x, y, ul_x=ul_x, ul_y=ul_y, pixel_size_m=pixel)
    margin = extrapolate_m / pixel
    view_zenith, view_azimuth = band_angles(model, line, sample, target="satellite", extrapolate_px=margin)
    sun_zenith, sun_azimuth = band_angles(model, line, sample, target="sun", extrapolate_px=margin)
    return {"view_zenith": view_zenith, "view_azimuth": view_azimuth,
            "sun_zenith": sun_zenith, "sun_azimuth": sun_azimuth}
