"""L2B: BRDF normalization to nadir (NASA HLS c-factor) and spectral homogenization to the virtual sensor.

After L2B every scene carries the virtual sensor's bands (``target_bands`` of ``virtual_sensor_name``), named as
that sensor names them, with ``spechomo_error_<band>`` accuracy layers and the per-pixel sun and view angles
(degrees) on the same grid, whatever sensor it came from. Everything stays lazy (one task per chunk).
"""

from __future__ import annotations

import xarray as xr

from ..geometry import resolution_groups
from ..spectral import angles_on_grid, homogenize_dataset, nbar_dataset, surface_reflectance_bands
from ..spectral.angles import footprint_centre
from ..spectral.bands import central_wavelengths_nm
from ._contract import LevelContext, LevelOutcome

__all__ = ["run", "VERSION"]

#: Implementation version: scenes recorded with an older one are processed again on rerun.
VERSION = "2"

_ANGLES = ("sun_zenith", "sun_azimuth", "view_zenith", "view_azimuth")


def _fill_missing_bands(ds: xr.Dataset, platform: str) -> tuple[xr.Dataset, list[str]]:
    """Surface-reflectance bands the product does not ship (a Sentinel-2 L2A product's 60 m folder has no B08),
    interpolated linearly in wavelength between their nearest shipped neighbours, so the homogenization models
    see a whole spectrum. A band without a shipped neighbour on both sides stays missing (homogenization then
    names it). Returns the filled names."""
    bands = surface_reflectance_bands(platform)
    wavelength = dict(zip(bands, central_wavelengths_nm(platform, bands)))
    present = [b for b in bands if b in ds.data_vars]
    missing = [b for b in bands if b not in ds.data_vars]
    if not missing or not present:
        return ds, []
    filled = {}
    for band in missing:
        below = [b for b in present if wavelength[b] < wavelength[band]]
        above = [b for b in present if wavelength[b] > wavelength[band]]
        if not (below and above):
            continue
        lo = max(below, key=wavelength.get)
        hi = min(above, key=wavelength.get)
        weight = (wavelength[band] - wavelength[lo]) / (wavelength[hi] - wavelength[lo])
        values = ds[lo] * (1 - weight) + ds[hi] * weight
        source = [lo, hi]
        filled[band] = values.astype("float32").assign_attrs(
            units="1", central_wavelength_nm=wavelength[band], interpolated_from=source,
            long_name=f"{band} interpolated in wavelength from {' and '.join(source)} (not shipped by the product)")
    return ds.assign(filled), list(filled)


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L2B of one scene (after L2A: one target-grid group)."""
    cfg = ctx.config
    attrs = dict(scene.attrs)
    product = str(attrs.get("product_id", ctx.record.product_id))
    (group_name, ds), = resolution_groups(scene, "L2B").items()
    brdf_normalized = False
    if "angles" in scene.children:
        angles = angles_on_grid(scene["angles"].to_dataset(), ds, footprint_wkt=str(attrs.get("footprint", "")),
                                epsg=int(attrs.get("epsg", 0)), scene=product)
        if cfg.brdf_correction:
            latitude, _x, _y = footprint_centre(str(attrs["footprint"]), int(attrs["epsg"]))
            ds = nbar_dataset(ds, angles, platform=str(attrs["platform"]), latitude=latitude)
            brdf_normalized = bool(ds.attrs.get("brdf_normalized", False))
        ds = ds.assign({name: angles[name] for name in _ANGLES if name in angles})
    ds, interpolated = _fill_missing_bands(ds, str(attrs["platform"]))
    ds = homogenize_dataset(ds, source_platform=str(attrs["platform"]), virtual_sensor=cfg.virtual_sensor_name,
                            target_bands=cfg.target_bands, method=cfg.spechomo_method,
                            n_clusters=cfg.spechomo_n_clusters, estimate_accuracy=cfg.spechomo_estimate_accuracy)
    attrs.update(brdf_normalized=brdf_normalized, virtual_sensor_name=cfg.virtual_sensor_name,
                 spechomo_method=cfg.spechomo_method, band_names=[b for b in cfg.target_bands if b in ds])
    children = {group_name: xr.DataTree(ds)}
    if "angles" in scene.children:
        children["angles"] = xr.DataTree(scene["angles"].to_dataset())
    note = f"{attrs['platform']} -> {cfg.virtual_sensor_name} ({cfg.spechomo_method}" + \
        (", NBAR)" if brdf_normalized else ")") + \
        (f"; {', '.join(interpolated)} interpolated in wavelength (not in the product)" if interpolated else "")
    attrs["spechomo_interpolated_bands"] = interpolated
    return LevelOutcome(xr.DataTree(xr.Dataset(attrs=attrs), children=children), note=note,
                        facts={"brdf_normalized": brdf_normalized, "spechomo_method": cfg.spechomo_method,
                               "interpolated_bands": interpolated})
