"""The known truth that comes back with a synthetic product.

Arrays go to a Zarr store ``<product id>_truth.zarr`` beside the product (groups
``<kind>/<grid>``, e.g. ``surface_reflectance/r10m``, with CF/rioxarray grid mapping so ``ds.rio.crs``
works), scalars to ``<product id>_truth.json`` beside it, and both to the returned ``SyntheticProduct``,
whose datasets are opened lazily from the store (a full tile's truth does not fit comfortably in memory).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
from pyproj import CRS
from zarr.codecs import BloscCodec

from ..sensors import get_sensor
from .atmosphere import ANGSTROM_EXPONENT
from .grid import PixelGrid
from .spectra import MATERIAL_NAMES

__all__ = ["SyntheticProduct", "TruthStore", "TRUTH_KINDS", "write_truth_json", "truth_paths", "CHUNK_ROWS"]

#: The groups of the truth store: what each holds.
TRUTH_KINDS = {
    "surface_reflectance": "ground surface reflectance per band, without clouds or shadows (unitless); with a "
                           "BRDF (writer option brdf=True) the directional reflectance at the pixel's sun and view "
                           "angles",
    "nbar": "BRDF products only: the surface reflectance at nadir view and HLS's normalized solar zenith",
    "toa": "top-of-atmosphere reflectance the Level-1 product encodes (thermal bands: brightness temperature, K)",
    "boa": "bottom-of-atmosphere reflectance the Level-2A product encodes (the exact inverse of the TOA)",
    "scene": "land_cover (class codes), cloud, shadow, nodata (bool), cloud_opacity, shadow_fraction",
}
#: Chunk height; the renderer uses it as its strip height, so concurrent strips never share a chunk.
#: Small strips also keep each temporary array under glibc's 32 MB mmap threshold (a full-tile row of
#: 10980 float64 is 88 kB), which halves the time spent in page faults.
CHUNK_ROWS = 256
_CHUNK = (CHUNK_ROWS, 2048)
#: Byte-shuffled LZ4: ~1 GB/s, 70-80 % of the raw size on float32 reflectances (zstd saves another 5-10 %
#: at a fifth of the speed, which would make the truth the slowest part of a full tile), deterministic.
_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)


class TruthStore:
    """Writes truth arrays block by block into a Zarr store (float32 NaN or integer/bool fill)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            shutil.rmtree(path)
        self._root = zarr.open_group(str(path), mode="w", zarr_format=3)
        self._arrays: dict[tuple[str, str, str], zarr.Array] = {}

    def add_grid(self, kind: str, group: str, grid: PixelGrid, variables: dict[str, tuple[str, dict[str, Any]]]
                 ) -> None:
        """Create ``kind/group`` with coordinates of ``grid`` and ``variables`` = name -> (dtype, attrs)."""
        node = self._root.require_group(kind).require_group(group)
        node.create_array("x", data=grid.x_centres(), dimension_names=("x",),
                          attributes={"units": "m", "standard_name": "projection_x_coordinate"})
        node.create_array("y", data=grid.y_centres(), dimension_names=("y",),
                          attributes={"units": "m", "standard_name": "projection_y_coordinate"})
        crs = CRS.from_epsg(grid.epsg)
        node.create_array("spatial_ref", shape=(), dtype="int32", fill_value=0,
                          attributes={**crs.to_cf(), "crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt(),
                                      "GeoTransform": " ".join(str(v) for v in grid.transform.to_gdal())})
        chunks = (min(_CHUNK[0], grid.rows), min(_CHUNK[1], grid.cols))
        for name, (dtype, attrs) in variables.items():
            fill = np.nan if np.dtype(dtype).kind == "f" else 0
            self._arrays[kind, group, name] = node.create_array(
                name, shape=grid.shape, chunks=chunks, dtype=dtype, fill_value=fill, dimension_names=("y", "x"),
                compressors=_COMPRESSORS,
                attributes={**attrs, "grid_mapping": "spatial_ref", "coordinates": "spatial_ref"})

    def write(self, kind: str, group: str, name: str, row_start: int, values: np.ndarray) -> None:
        """Store rows ``row_start:row_start + len(values)`` of one variable."""
        array = self._arrays[kind, group, name]
        array[row_start:row_start + values.shape[0], :] = values.astype(array.dtype, copy=False)

    def open(self, kind: str) -> dict[str, xr.Dataset]:
        """The lazily loaded datasets of ``kind``, keyed by grid group (``r10m`` ...)."""
        datasets = {}
        for group in sorted({group for k, group, _ in self._arrays if k == kind}):
            dataset = xr.open_dataset(self.path, group=f"{kind}/{group}", engine="zarr", chunks={},
                                      consolidated=False)
            # in band order, as created (a store lists its arrays in no particular order)
            datasets[group] = dataset[[name for k, g, name in self._arrays if k == kind and g == group]]
        return datasets


@dataclass(frozen=True)
class SyntheticProduct:
    """A written synthetic product and its truth.

    The datasets are keyed by grid group (``r10m``, ``r20m``, ``r60m``; Landsat ``r30m``, ``r15m``) and
    hold one variable per band: ``surface_reflectance`` (the ground, no clouds or shadows), ``toa`` (what a
    Level-1 product encodes; Landsat thermal bands as brightness temperature in K), ``boa`` (L2A only: what
    it encodes) and ``scene`` (``land_cover``, ``cloud``, ``shadow``, ``nodata``, ``cloud_opacity``,
    ``shadow_fraction``; Landsat ``r30m`` also ``surface_temperature``) and, for a product written with
    ``brdf=True``, ``nbar`` (the surface reflectance at nadir view and HLS's normalized solar zenith; then
    ``surface_reflectance`` is the directional reflectance at each pixel's angles). Outside the data footprint the
    reflectances are NaN and ``nodata`` is True. Angles in degrees (view azimuth: towards the sensor).
    ``extra`` holds the sensor's own identifiers (WRS-2 path/row; MGRS tile and orbit numbers).
    """

    path: Path
    product_id: str
    platform: str
    processing_level: str
    acquisition_time: datetime
    seed: int
    shift_m: tuple[float, float]
    aot550: float
    cloud_fraction: float
    cloud_cover_pct: float
    cloud_shadow_pct: float
    cloud_height_m: float
    sun_zenith_deg: float
    sun_azimuth_deg: float
    view_zenith_deg: float
    view_azimuth_deg: float
    epsg: int
    footprint_wkt: str
    grids: dict[str, PixelGrid]
    truth_json: Path
    truth_store: Path
    surface_reflectance: dict[str, xr.Dataset] = field(repr=False)
    toa: dict[str, xr.Dataset] = field(repr=False)
    scene: dict[str, xr.Dataset] = field(repr=False)
    boa: dict[str, xr.Dataset] = field(default_factory=dict, repr=False)
    nbar: dict[str, xr.Dataset] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sun_elevation_deg(self) -> float:
        return 90.0 - self.sun_zenith_deg


def truth_paths(directory: str | Path, product_id: str) -> tuple[Path, Path]:
    """``(<id>_truth.json, <id>_truth.zarr)`` beside the product: named by product, so several products can
    share a directory."""
    directory = Path(directory)
    return directory / f"{product_id}_truth.json", directory / f"{product_id}_truth.zarr"


def write_truth_json(product: SyntheticProduct) -> None:
    """The product's scalars as sorted, indented JSON (byte-identical for identical products)."""
    scalars = {
        "product": product.path.name, "product_id": product.product_id, "platform": product.platform,
        "sensor": get_sensor(product.platform).sensor, "processing_level": product.processing_level,
        "acquisition_time": product.acquisition_time, "seed": product.seed, "shift_m": list(product.shift_m),
        "aot550": product.aot550, "angstrom_exponent": ANGSTROM_EXPONENT,
        "cloud_fraction_requested": product.cloud_fraction, "cloud_cover_pct": product.cloud_cover_pct,
        "cloud_shadow_pct": product.cloud_shadow_pct, "cloud_height_m": product.cloud_height_m,
        "sun_zenith_deg": product.sun_zenith_deg, "sun_azimuth_deg": product.sun_azimuth_deg,
        "view_zenith_deg": product.view_zenith_deg, "view_azimuth_deg": product.view_azimuth_deg,
        "epsg": product.epsg, "footprint": product.footprint_wkt,
        "grids": {name: {"epsg": g.epsg, "transform": list(g.transform)[:6], "shape": list(g.shape)}
                  for name, g in product.grids.items()},
        "land_cover_classes": {str(code): name for code, name in MATERIAL_NAMES.items()},
        "truth_arrays": product.truth_store.name,
        "truth_groups": {kind: sorted(datasets) for kind, datasets in
                         (("surface_reflectance", product.surface_reflectance), ("toa", product.toa),
                          ("boa", product.boa), ("nbar", product.nbar), ("scene", product.scene)) if datasets},
        "atmosphere_model": ("gmsdask.synthetic.atmosphere: 6S, continental aerosol, 2 g/cm2 water vapour, "
                             "0.33 cm-atm ozone, Lambertian coupling"),
        **product.extra,
    }
    product.truth_json.write_text(json.dumps(scalars, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {value!r}")
