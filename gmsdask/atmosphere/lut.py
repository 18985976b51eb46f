"""6S lookup tables per sensor band over aerosol optical thickness and a small sun/view geometry grid.

A table holds, for one band and one atmosphere (water vapour, ozone, elevation), the Lambertian coefficients
(path reflectance, transmittance, spherical albedo; see ``sixs``) at every AOT node of ``AOT_NODES`` and every
node of a geometry grid. Geometry nodes lie on one global lattice (sun zenith and view zenith every
``ZENITH_STEP_DEG``, relative azimuth every ``AZIMUTH_STEP_DEG``), so a scene uses the lattice nodes that
bracket its own angles, and the next scene with similar angles finds them in the cache.

Cache: one ``.npz`` per (platform, band, atmosphere, geometry node), holding the coefficients at all AOT
nodes, under ``<cache_dir>/sixs/<platform>/<sha1 of the key>.npz`` (the key is stored inside and checked on
reading). Missing nodes are computed as Dask tasks (``dask.delayed``, one task = one node = ``len(AOT_NODES)``
6S runs), in parallel on whatever scheduler is active. Writes go to a temporary name and are renamed, so
concurrent workers never read a half-written entry.

Interpolation (``BandTable.coefficients``): multilinear over (AOT, sec(sun zenith), sec(view zenith),
cos(relative azimuth)); the secant makes the path terms (~1/mu) nearly linear, the cosine follows the
scattering angle. Points beyond the outer nodes are extrapolated linearly from the outermost segment (scene
angles may exceed the bracketing nodes by up to ``_NODE_TOLERANCE_DEG``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import default_cache_dir
from .sixs import AtmosphereState, run_sixs, sixs_cpu_seconds

__all__ = ["AOT_NODES", "ZENITH_STEP_DEG", "AZIMUTH_STEP_DEG", "GeometryGrid", "BandTable", "TableStats",
           "default_cache_dir", "geometry_grid_for", "build_tables", "COEFFICIENTS"]

#: Aerosol optical thickness at 550 nm of the table's nodes.
AOT_NODES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
ZENITH_STEP_DEG = 5.0
AZIMUTH_STEP_DEG = 30.0
#: Names of the stored coefficients, in the order of a table's first axis.
COEFFICIENTS = ("path_reflectance", "transmittance", "spherical_albedo", "direct_fraction")
#: A scene's angle range may pass a lattice node by this much before the next node is added.
_NODE_TOLERANCE_DEG = 0.5
#: Rounding of the atmosphere in cache keys (g cm-2, cm-atm, km).
_KEY_DIGITS = {"water_vapour_gcm2": 2, "ozone_cm_atm": 3, "elevation_km": 2}
#: Version of the table layout and of the 6S set-up; bump it when either changes.
_TABLE_VERSION = 1


@dataclass(frozen=True)
class GeometryGrid:
    """Lattice nodes (degrees) a table is computed at; each axis ascending."""

    sun_zenith: tuple[float, ...]
    view_zenith: tuple[float, ...]
    relative_azimuth: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.sun_zenith), len(self.view_zenith), len(self.relative_azimuth)

    def nodes(self) -> list[tuple[int, int, int, float, float, float]]:
        """``(i, j, k, sun zenith, view zenith, relative azimuth)`` of every node."""
        return [(i, j, k, s, v, a) for i, s in enumerate(self.sun_zenith) for j, v in enumerate(self.view_zenith)
                for k, a in enumerate(self.relative_azimuth)]


def _bracket(low: float, high: float, step: float, lower_limit: float, upper_limit: float) -> tuple[float, ...]:
    first = np.floor((low + _NODE_TOLERANCE_DEG) / step) * step
    last = np.ceil((high - _NODE_TOLERANCE_DEG) / step) * step
    first, last = max(first, lower_limit), min(max(last, first), upper_limit)
    return tuple(float(v) for v in np.arange(first, last + step / 2, step))


def geometry_grid_for(sun_zenith_deg: np.ndarray, view_zenith_deg: np.ndarray,
                      relative_azimuth_deg: np.ndarray) -> GeometryGrid:
    """The lattice nodes that bracket a scene's angles (degrees; NaN ignored).

    Where the view is (near) nadir the relative azimuth does not matter and one azimuth node is used.
    """
    sz, vz, ra = (np.asarray(a, dtype=float) for a in (sun_zenith_deg, view_zenith_deg, relative_azimuth_deg))
    sun = _bracket(np.nanmin(sz), np.nanmax(sz), ZENITH_STEP_DEG, 0.0, 80.0)
    view = _bracket(np.nanmin(vz), np.nanmax(vz), ZENITH_STEP_DEG, 0.0, 60.0)
    if view == (0.0,):
        azimuth: tuple[float, ...] = (0.0,)
    else:
        azimuth = _bracket(np.nanmin(ra), np.nanmax(ra), AZIMUTH_STEP_DEG, 0.0, 180.0)
    return GeometryGrid(sun, view, azimuth)


@dataclass(frozen=True)
class TableStats:
    """What building tables cost: 6S runs made and their CPU seconds, and entries found in the cache."""

    runs: int = 0
    cpu_seconds: float = 0.0
    cached_nodes: int = 0
    computed_nodes: int = 0

    def __add__(self, other: "TableStats") -> "TableStats":
        return TableStats(self.runs + other.runs, self.cpu_seconds + other.cpu_seconds,
                          self.cached_nodes + other.cached_nodes, self.computed_nodes + other.computed_nodes)


@dataclass(frozen=True)
class BandTable:
    """Coefficients of one band: ``values[c, aot, sun zenith, view zenith, relative azimuth]``."""

    platform: str
    band: str
    atmosphere: AtmosphereState
    grid: GeometryGrid
    aot: tuple[float, ...]
    values: np.ndarray

    def coefficients(self, aot550: np.ndarray, sun_zenith_deg: np.ndarray, view_zenith_deg: np.ndarray,
                     relative_azimuth_deg: np.ndarray) -> dict[str, np.ndarray]:
        """Interpolated coefficients (``COEFFICIENTS``) at points given by same-shaped (broadcastable) arrays.

        Angles in degrees, AOT unitless; float64 arrays of the broadcast shape.
        """
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in
                                       (aot550, sun_zenith_deg, view_zenith_deg, relative_azimuth_deg)))
        shape = arrays[0].shape
        points = [a.ravel() for a in arrays]
        axes = [np.asarray(self.aot), 1.0 / np.cos(np.radians(self.grid.sun_zenith)),
                1.0 / np.cos(np.radians(self.grid.view_zenith)), np.cos(np.radians(self.grid.relative_azimuth))]
        coords = [points[0], 1.0 / np.cos(np.radians(points[1])), 1.0 / np.cos(np.radians(points[2])),
                  np.cos(np.radians(points[3]))]
        result = np.zeros((self.values.shape[0], points[0].size))
        corners = [_segment(axis, coord) for axis, coord in zip(axes, coords)]
        for corner in np.ndindex(*(len(c) for c in corners)):
            weight = np.ones(points[0].size)
            index = []
            for axis_corners, choice in zip(corners, corner):
                node, w = axis_corners[choice]
                weight = weight * w
                index.append(node)
            result += weight * self.values[(slice(None), *index)]
        return {name: result[c].reshape(shape) for c, name in enumerate(COEFFICIENTS)}

    def coefficients_along_aot(self, aot550: np.ndarray, sun_zenith_deg: np.ndarray, view_zenith_deg: np.ndarray,
                               relative_azimuth_deg: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`coefficients` at every one of ``aot550`` (1-D) for each of ``n`` geometries (1-D angle arrays
        in degrees): float64 arrays of shape ``(n, len(aot550))``, the same values.

        The interpolation is multilinear, so it separates: the geometry is interpolated at the table's AOT
        nodes (``n x 8`` points), then every AOT node row is interpolated along the AOT axis by one matrix
        product. Interpolating all ``n x len(aot550)`` points at once (a 3 km cell grid of a tile against 401
        AOT values) cost ~0.3 s per band in the client, on the job's critical path."""
        geometry = [np.asarray(a, dtype=np.float64).ravel() for a in
                    (sun_zenith_deg, view_zenith_deg, relative_azimuth_deg)]
        nodes = np.asarray(self.aot, dtype=np.float64)
        at_nodes = self.coefficients(nodes[None, :], *(a[:, None] for a in geometry))
        weights = np.zeros((np.size(aot550), nodes.size))
        rows = np.arange(np.size(aot550))
        for index, weight in _segment(nodes, np.asarray(aot550, dtype=np.float64).ravel()):
            np.add.at(weights, (rows, index), weight)
        return {name: values @ weights.T for name, values in at_nodes.items()}


def _segment(axis: np.ndarray, coord: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(node index, weight) pairs of linear interpolation along one axis; one pair for a one-node axis.

    The axis may be descending (cos of azimuth); points outside are extrapolated from the outer segment.
    """
    if len(axis) == 1:
        return [(np.zeros(coord.size, dtype=int), np.ones(coord.size))]
    descending = axis[-1] < axis[0]
    ordered = axis[::-1] if descending else axis
    index = np.clip(np.searchsorted(ordered, coord) - 1, 0, len(axis) - 2)
    fraction = (coord - ordered[index]) / (ordered[index + 1] - ordered[index])
    if descending:
        index, fraction = len(axis) - 2 - index, 1.0 - fraction
    return [(index, 1.0 - fraction), (index + 1, fraction)]


def _rounded(atmosphere: AtmosphereState) -> AtmosphereState:
    return AtmosphereState(aot550=0.0, **{name: round(getattr(atmosphere, name), digits)
                                          for name, digits in _KEY_DIGITS.items()})


def _node_key(platform: str, band: str, atmosphere: AtmosphereState, node: tuple[float, float, float]) -> dict:
    return {"version": _TABLE_VERSION, "platform": platform, "band": band, "aot": list(AOT_NODES),
            "water_vapour_gcm2": atmosphere.water_vapour_gcm2, "ozone_cm_atm": atmosphere.ozone_cm_atm,
            "elevation_km": atmosphere.elevation_km, "sun_zenith": node[0], "view_zenith": node[1],
            "relative_azimuth": node[2]}


def _node_path(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir / "sixs" / key["platform"] / f"{digest}.npz"


def _read_node(path: Path, key: dict) -> np.ndarray | None:
    if not path.exists():
        return None
    with np.load(path) as stored:
        if json.loads(str(stored["key"])) != key:
            return None  # a hash collision or an old layout: recompute
        return stored["values"]


def _compute_node(platform: str, band: str, atmosphere: AtmosphereState, node: tuple[float, float, float],
                  path: Path, key: dict) -> tuple[np.ndarray, float]:
    """All AOT nodes at one geometry node: ``(values[c, aot], CPU seconds)``; stored at ``path``."""
    values = np.zeros((len(COEFFICIENTS), len(AOT_NODES)))
    cpu = 0.0
    for a, aot in enumerate(AOT_NODES):
        state = AtmosphereState(aot, atmosphere.water_vapour_gcm2, atmosphere.ozone_cm_atm, atmosphere.elevation_km)
        result = run_sixs(platform, band, state, sun_zenith_deg=node[0], view_zenith_deg=node[1],
                          relative_azimuth_deg=node[2])
        values[:, a] = [getattr(result, name) for name in COEFFICIENTS]
        cpu += result.cpu_seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.part", delete=False) as part:
        np.savez(part, values=values, key=json.dumps(key, sort_keys=True), cpu_seconds=cpu)
    os.replace(part.name, path)
    return values, cpu


def build_tables(platform: str, bands: list[str], atmosphere: AtmosphereState, grid: GeometryGrid, *,
                 cache_dir: str | Path | None = None) -> tuple[dict[str, BandTable], TableStats]:
    """Tables of ``bands`` at the nodes of ``grid``, from the cache or computed as parallel Dask tasks.

    Returns the tables by band and what it cost (6S CPU seconds of the computed nodes).
    """
    import dask

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    atmosphere = _rounded(atmosphere)
    values = {band: np.zeros((len(COEFFICIENTS), len(AOT_NODES), *grid.shape)) for band in bands}
    pending, cached = [], 0
    for band in bands:
        for i, j, k, sz, vz, ra in grid.nodes():
            key = _node_key(platform, band, atmosphere, (sz, vz, ra))
            path = _node_path(cache, key)
            stored = _read_node(path, key)
            if stored is not None:
                values[band][:, :, i, j, k] = stored
                cached += 1
            else:
                task = dask.delayed(_compute_node, pure=True)(platform, band, atmosphere, (sz, vz, ra), path, key)
                pending.append((band, (i, j, k), task))
    cpu = 0.0
    if pending:
        before = sixs_cpu_seconds()
        results = dask.compute(*(task for _, _, task in pending))
        for (band, (i, j, k), _), (node_values, node_cpu) in zip(pending, results):
            values[band][:, :, i, j, k] = node_values
            cpu += node_cpu
        # runs in this process's threads: the children's total is exact (per-run deltas overlap between
        # threads); runs on other processes' workers: the sum the tasks measured there
        here = sixs_cpu_seconds() - before
        cpu = here if here > 0 else cpu
    tables = {band: BandTable(platform, band, atmosphere, grid, AOT_NODES, values[band]) for band in bands}
    stats = TableStats(runs=len(pending) * len(AOT_NODES), cpu_seconds=cpu, cached_nodes=cached,
                       computed_nodes=len(pending))
    return tables, stats
