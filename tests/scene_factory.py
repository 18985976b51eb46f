"""Small in-memory scene trees following docs/scene-model.md, for tests of the processing levels.

Scenes are placed inside real MGRS tiles/UTM zones with small extents. Pixel values come from a function of the
pixel-centre map coordinates, so a test knows the truth at every position (and after a shift).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from pyproj import Transformer

from gmsdask.mgrs_grid import tile_origin

#: value(band, x, y) -> reflectance; x, y are pixel-centre map coordinates (2-D arrays, metres).
ValueFunction = Callable[[str, np.ndarray, np.ndarray], np.ndarray]

# Approximate central wavelengths (nm): enough to order bands; the real values come from the readers.
CWL_NM = {
    "B01": 443, "B02": 492, "B03": 560, "B04": 665, "B05": 704, "B06": 740, "B07": 783, "B08": 833,
    "B8A": 865, "B09": 945, "B11": 1614, "B12": 2202,
    "B1": 443, "B2": 482, "B3": 561, "B4": 655, "B5": 865, "B6": 1609, "B7": 2201,
}
S2_GROUPS = {"r10m": ("B02", "B03", "B04", "B08"), "r20m": ("B05", "B8A", "B11", "B12"), "r60m": ("B01",)}


def random_values(seed: int = 0) -> ValueFunction:
    """Reproducible pseudo-random reflectance in 0.01..0.6, a function of position and band."""
    def value(band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        h = np.sin(x * 0.0123 + y * 0.0371 + seed) * 43758.5453 + np.cos(x * 0.0777 - y * 0.0059 + len(band))
        return (0.01 + 0.59 * (h - np.floor(h))).astype(np.float32)
    return value


def ramp_values(per_metre: float = 1e-5, offset: float = 0.2) -> ValueFunction:
    """Reflectance rising linearly to the east: ``offset + per_metre * (x - x_ref)`` (x_ref per call)."""
    def value(band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (offset + per_metre * (x - 400_000.0) + 0.0 * y).astype(np.float32)
    return value


@dataclass
class GroupSpec:
    """One resolution group: its name, pixel size (m), bands and extra integer QA layers (name -> dtype)."""

    name: str
    gsd: float
    bands: Sequence[str]
    qa: Mapping[str, str] = field(default_factory=dict)


def make_scene(groups: Sequence[GroupSpec], *, epsg: int, ulx: float, uly: float, width_m: float,
               height_m: float, values: ValueFunction | None = None, chunks: int = 64,
               nodata_box: tuple[float, float, float, float] | None = None,
               attrs: Mapping[str, object] | None = None,
               band_array: Callable[[str, tuple[int, int], int], da.Array] | None = None) -> xr.DataTree:
    """A scene tree covering ``width_m`` x ``height_m`` from upper-left (ulx, uly) in EPSG ``epsg``.

    ``nodata_box`` = (left, bottom, right, top) in map units sets every band to NaN there. ``band_array``, if
    given, makes each band's Dask array (name, shape, chunks) instead of ``values`` (e.g. one that must not be
    computed).
    """
    values = values or random_values()
    children: dict[str, xr.DataTree] = {}
    for spec in groups:
        nx, ny = int(round(width_m / spec.gsd)), int(round(height_m / spec.gsd))
        transform = Affine(spec.gsd, 0, ulx, 0, -spec.gsd, uly)
        x = ulx + (np.arange(nx) + 0.5) * spec.gsd
        y = uly - (np.arange(ny) + 0.5) * spec.gsd
        xx, yy = np.meshgrid(x, y)
        outside = np.zeros((ny, nx), dtype=bool)
        if nodata_box is not None:
            left, bottom, right, top = nodata_box
            outside = (xx >= left) & (xx < right) & (yy >= bottom) & (yy < top)
        variables: dict[str, xr.DataArray] = {}
        for band in spec.bands:
            if band_array is not None:
                data = band_array(band, (ny, nx), chunks)
            else:
                arr = values(band, xx, yy).astype(np.float32)
                arr[outside] = np.nan
                data = da.from_array(arr, chunks=chunks)
            variables[band] = xr.DataArray(data, dims=("y", "x"), attrs={
                "central_wavelength_nm": float(CWL_NM.get(band, 1000)), "fwhm_nm": 20.0, "common_name": "",
                "native_gsd_m": float(spec.gsd), "units": "1", "long_name": f"surface reflectance {band}"})
        variables["nodata"] = xr.DataArray(da.from_array(outside, chunks=chunks), dims=("y", "x"))
        variables["saturated"] = xr.DataArray(da.zeros((ny, nx), dtype=bool, chunks=chunks), dims=("y", "x"))
        for qa_name, dtype in spec.qa.items():
            fill, clear = (1, 21824) if qa_name.startswith("QA_") else (0, 4)  # fill flag / clear land
            qa = np.where(outside, fill, clear).astype(dtype)
            variables[qa_name] = xr.DataArray(da.from_array(qa, chunks=chunks), dims=("y", "x"))
        ds = xr.Dataset(variables, coords={"x": ("x", x), "y": ("y", y)})
        children[spec.name] = xr.DataTree(ds.rio.write_crs(f"EPSG:{epsg}").rio.write_transform(transform))
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    corners = [to_lonlat.transform(cx, cy) for cx, cy in
               [(ulx, uly), (ulx + width_m, uly), (ulx + width_m, uly - height_m), (ulx, uly - height_m)]]
    footprint = "POLYGON((" + ", ".join(f"{lon:.8f} {lat:.8f}" for lon, lat in [*corners, corners[0]]) + "))"
    root = {
        "platform": "SENTINEL_2A", "sensor": "MSI", "product_id": "FACTORY_SCENE", "product_path": "",
        "processing_level": "L2A", "acquisition_time": "2022-10-05T11:54:11.024Z", "sun_elevation_deg": 30.0,
        "sun_azimuth_deg": 170.0, "earth_sun_distance_au": 1.0, "cloud_cover_pct": 0.0, "footprint": footprint,
        "footprint_source": "factory", "processing_baseline": "04.00", "epsg": epsg, "mgrs_tile": "",
        "wrs_path": 0, "wrs_row": 0, "collection": 0,
        "band_names": [b for spec in groups for b in spec.bands],
    }
    root.update(attrs or {})
    return xr.DataTree(dataset=xr.Dataset(attrs=root), children=children)


def s2_scene(tile: str = "29UNU", *, offset_m: tuple[float, float] = (30_000.0, 30_000.0),
             size_m: tuple[float, float] = (3_600.0, 2_400.0), groups: Mapping[str, Sequence[str]] | None = None,
             **kwargs) -> xr.DataTree:
    """A Sentinel-2-like scene (10/20/60 m groups, SCL at 20 m) inside ``tile``.

    ``offset_m`` = (east, south) of the scene's upper-left corner from the tile's upper-left corner; multiples
    of 60 m keep every group nested in the tile grid.
    """
    epsg, ulx, uly = tile_origin(tile)
    gsd = {"r10m": 10.0, "r20m": 20.0, "r60m": 60.0}
    specs = [GroupSpec(name, gsd[name], bands, qa={"SCL": "uint8"} if name == "r20m" else {})
             for name, bands in (groups or S2_GROUPS).items()]
    attrs = {"mgrs_tile": tile.lstrip("T"), "epsg": epsg, **kwargs.pop("attrs", {})}
    return make_scene(specs, epsg=epsg, ulx=ulx + offset_m[0], uly=uly - offset_m[1], width_m=size_m[0],
                      height_m=size_m[1], attrs=attrs, **kwargs)


def landsat_scene(*, epsg: int = 32629, ulx: float = 530_115.0, uly: float = 5_870_085.0,
                  size_m: tuple[float, float] = (3_000.0, 2_400.0),
                  bands: Sequence[str] = ("B2", "B3", "B4", "B5", "B6", "B7"), **kwargs) -> xr.DataTree:
    """A Landsat-8-like scene: one 30 m group with QA_PIXEL; its pixel corners sit at odd multiples of 15 m."""
    attrs = {"platform": "LANDSAT_8", "sensor": "OLI_TIRS", "processing_level": "L2SP", "mgrs_tile": "",
             "wrs_path": 205, "wrs_row": 23, "collection": 2, "processing_baseline": "",
             **kwargs.pop("attrs", {})}
    spec = GroupSpec("r30m", 30.0, bands, qa={"QA_PIXEL": "uint16"})
    return make_scene([spec], epsg=epsg, ulx=ulx, uly=uly, width_m=size_m[0], height_m=size_m[1],
                      attrs=attrs, **kwargs)
