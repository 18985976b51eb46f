"""Co-registration of one scene tree to a reference scene tree: what the L1B level calls.

Per pair: the matching band of each scene (nearest ``wavelength_nm``; for a cross-sensor pair also the NIR bands,
keeping the better match), masked by no data and by the product's own QA cloud flags (L1B runs before the L1C
cloud masks exist), then a global window (AROSICS's ``COREG``) and a tie-point grid (``CoRegPoints_grid``). The
scene's shift is the median of the valid tie points when there are at least ``min_valid_points`` of them (robust
to clouds and to a single unlucky window), else the global window's. A failed match is a named status, never an
exception: the scene goes on unshifted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import pandas as pd
import xarray as xr
from odc.geo.xr import xr_reproject

from ..algorithms.phase_correlation import single_threaded_blas
from ..algorithms.quality import CLOUD_DECODERS
from ..errors import ProcessingError
from ..geometry.scene_grid import nested_nearest
from .points import plan_tie_points
from .shift import ShiftResult, plan_global_window, prepare_pair

__all__ = ["CoregResult", "matching_band", "cloud_masked_band", "coregister_scene", "NIR_NM"]

#: Central wavelength used for cross-sensor pairs (Landsat OLI B5, Sentinel-2 B8A: both ~865 nm).
NIR_NM = 865.0


@dataclass(frozen=True)
class CoregResult:
    """The outcome of co-registering a target scene to a reference scene.

    Shifts follow AROSICS (see :mod:`gmsdask.coregistration.shift`): ``x_shift_px``/``y_shift_px`` in pixels of
    the target's matching band (x right, y down), ``x_shift_m``/``y_shift_m`` the correction to the target's map
    origin (x east, y north), NaN when failed. ``status``: ``"success"`` or ``"failed:<reason>"``. ``method``:
    ``"tie_points"`` (median of the valid tie points) or ``"global_window"``. ``reliability``: percent.
    ``global_window``: the single-window result; ``points``: the tie-point table (AROSICS columns). ``local``:
    whether L2A should warp with a local field (:func:`gmsdask.coregistration.shift_field`) rather than translate.
    """

    status: str
    method: str
    x_shift_px: float
    y_shift_px: float
    x_shift_m: float
    y_shift_m: float
    reliability: float
    reference_band: str
    target_band: str
    global_window: ShiftResult
    points: pd.DataFrame = field(repr=False)
    reference_id: str = ""
    local: bool = False

    @property
    def success(self) -> bool:
        return self.status == "success"

    @property
    def l1b_shift_m(self) -> tuple[float, float]:
        """What L2A applies (root attr ``l1b_shift_m``): the displacement of the target's content, (dx east,
        dy north) metres = ``(-x_shift_m, -y_shift_m)``; (0, 0) when the match failed."""
        if not self.success:
            return (0.0, 0.0)
        return (-self.x_shift_m, -self.y_shift_m)

    @property
    def valid_points(self) -> pd.DataFrame:
        """The tie points that passed the three outlier filters."""
        return self.points[~self.points["OUTLIER"]]

    def facts(self) -> dict[str, Any]:
        """Small JSON-able record for the catalogue and the scene's ``l1b`` attrs."""
        valid = self.valid_points
        def stat(column: str, how: str) -> float:
            return float(getattr(valid[column], how)()) if len(valid) else math.nan
        dx, dy = self.l1b_shift_m
        return {
            "coreg_status": self.status, "coreg_method": self.method, "coreg_local": self.local,
            "reference_id": self.reference_id,
            "reference_band": self.reference_band, "target_band": self.target_band,
            "x_shift_px": self.x_shift_px, "y_shift_px": self.y_shift_px,
            "x_shift_m": self.x_shift_m, "y_shift_m": self.y_shift_m,
            "l1b_shift_m": [dx, dy], "shift_reliability": self.reliability,
            "global_status": self.global_window.status, "global_x_shift_m": self.global_window.x_shift_m,
            "global_y_shift_m": self.global_window.y_shift_m, "global_reliability": self.global_window.reliability,
            "tie_points_total": int(len(self.points)), "tie_points_valid": int(len(valid)),
            "tie_points_x_shift_m_std": stat("X_SHIFT_M", "std"), "tie_points_y_shift_m_std": stat("Y_SHIFT_M", "std"),
            "tie_points_reliability_mean": stat("RELIABILITY", "mean"),
        }


def _bands(scene: xr.DataTree) -> list[tuple[str, str, float, float]]:
    """(group, band, central wavelength nm, pixel size) of every reflective band in the scene."""
    out = []
    for group_name, child in scene.children.items():
        if not group_name.startswith("r"):
            continue
        ds = child.to_dataset()
        for name, var in ds.data_vars.items():
            cwl = var.attrs.get("central_wavelength_nm")
            if cwl is None or var.attrs.get("units", "1") != "1" or var.dims != ("y", "x"):
                continue
            gsd = abs(float(ds["x"][1] - ds["x"][0])) if ds.sizes["x"] > 1 else math.inf
            out.append((group_name, str(name), float(cwl), gsd))
    return out


def matching_band(scene: xr.DataTree, wavelength_nm: float = 550, *, cross_sensor: bool = False) -> tuple[str, str]:
    """(group, band) used to match a scene: the reflective band nearest ``wavelength_nm`` (ties: the finer
    grid), or for ``cross_sensor`` pairs the band nearest :data:`NIR_NM` (Landsat OLI B5 and Sentinel-2 B8A
    have nearly the same response there, and vegetation contrast is strongest)."""
    bands = _bands(scene)
    if not bands:
        raise ProcessingError(str(scene.attrs.get("product_id") or "scene"), "L1B",
                              "no reflective band with a central_wavelength_nm attr to match on")
    wanted = NIR_NM if cross_sensor else float(wavelength_nm)
    group, band, _, _ = min(bands, key=lambda b: (round(abs(b[2] - wanted), 1), b[3]))
    return group, band


def cloud_masked_band(scene: xr.DataTree, group: str, band: str) -> xr.DataArray:
    """The band (float32, lazy) with NaN where the product's own QA layers flag cloud, cirrus or cloud shadow
    (``QA_PIXEL``, ``BQA``, ``SCL``, ``MSK_CLASSI_*``, from any resolution group, nearest-resampled)."""
    ds = scene[group].to_dataset()
    image = ds[band].astype(np.float32)
    gbox = image.odc.geobox
    clear = None
    for group_name, child in scene.children.items():
        layers = child.to_dataset()
        for qa_name, decode in CLOUD_DECODERS.items():
            if qa_name not in layers.data_vars:
                continue
            qa = layers[qa_name]
            flagged = xr.apply_ufunc(decode, qa, dask="parallelized", output_dtypes=[bool])
            if group_name != group:
                # decoded on the QA layer's own grid, then brought onto the band's: on nested grids each block of
                # the band makes its part of the mask in its own task (nested_nearest), not ahead of it
                nested = nested_nearest(flagged, gbox, chunks=image.chunks)
                if nested is None:
                    fill = int(np.iinfo(qa.dtype).max) if np.issubdtype(qa.dtype, np.integer) else 0
                    qa = xr_reproject(qa, gbox, resampling="nearest", dst_nodata=fill)
                    nested = xr.apply_ufunc(decode, qa, dask="parallelized", output_dtypes=[bool])
                flagged = nested
            flagged = flagged.data
            clear = ~flagged if clear is None else clear & ~flagged
    if clear is None:
        return image
    # by position (the grids are equal), so that float noise in reprojected coordinates cannot misalign them
    return image.where(xr.DataArray(clear, dims=image.dims))


def _is_cross_sensor(a: xr.DataTree, b: xr.DataTree) -> bool:
    family = lambda scene: str(scene.attrs.get("platform", "")).split("_")[0]  # noqa: E731
    return family(a) != family(b)


def coregister_scene(target_scene: xr.DataTree, reference_scene: xr.DataTree, *,
                     window_size: int | tuple[int, int] = (256, 256), max_shift: float = 5, local: bool = False,
                     grid_res: int = 200, wavelength_nm: float = 550, min_reliability: float = 60,
                     min_valid_points: int = 5, cross_sensor: bool | None = None) -> CoregResult:
    """Co-register ``target_scene`` to ``reference_scene`` (both scene trees, docs/scene-model.md).

    Parameters map onto the job options: ``window_size`` = ``coreg_window_size`` (x, y px), ``max_shift`` =
    ``coreg_max_shift_allowed`` (px of the common grid), ``local`` = ``coreg_local``, ``grid_res`` =
    ``coreg_grid_res`` (px), ``wavelength_nm`` = ``coreg_band_wavelength_for_matching``. ``cross_sensor``:
    None decides from the platforms (Landsat vs Sentinel-2). ``local`` does not change what is
    computed (tie points are always computed, for the statistics and the robust shift); it is recorded in the
    result so that L2A warps with :func:`gmsdask.coregistration.shift_field` of :attr:`CoregResult.points`.
    A cross-sensor pair is matched on the bands nearest ``wavelength_nm`` and on the NIR bands, and the better
    match is kept (success, then more valid tie points, then higher reliability); ``reference_band`` and
    ``target_band`` say which.

    Returns a :class:`CoregResult`; ``status`` is ``"failed:<reason>"`` (no overlap, too few valid tie points,
    shift exceeds max_shift, flat window, fully clouded target) instead of an exception for content problems.
    """
    cross = _is_cross_sensor(target_scene, reference_scene) if cross_sensor is None else cross_sensor
    settings = _PairSettings(window_size, max_shift, grid_res, min_reliability, min_valid_points, bool(local),
                             str(reference_scene.attrs.get("product_id", "")))
    results = [_match(target_scene, reference_scene, wavelength_nm, False, settings)]
    if cross:  # the NIR bands too, and keep whichever matches better
        results.append(_match(target_scene, reference_scene, wavelength_nm, True, settings))
    return max(results, key=_quality)


@dataclass(frozen=True)
class _PairSettings:
    window_size: int | tuple[int, int]
    max_shift: float
    grid_res: int
    min_reliability: float
    min_valid_points: int
    local: bool
    reference_id: str


def _quality(result: CoregResult) -> tuple[bool, int, float]:
    """Order of preference between matches of one pair on different bands: success, valid points, reliability."""
    return result.success, len(result.valid_points), result.reliability


def _match(target_scene: xr.DataTree, reference_scene: xr.DataTree, wavelength_nm: float, nir: bool,
           settings: _PairSettings) -> CoregResult:
    """Co-registration on one pair of bands (nearest ``wavelength_nm``, or the NIR bands)."""
    ref_group, ref_band = matching_band(reference_scene, wavelength_nm, cross_sensor=nir)
    tgt_group, tgt_band = matching_band(target_scene, wavelength_nm, cross_sensor=nir)
    reference = cloud_masked_band(reference_scene, ref_group, ref_band)
    target = cloud_masked_band(target_scene, tgt_group, tgt_band)
    pair = prepare_pair(reference, target)  # one common grid for both plans
    window_plan = plan_global_window(pair, window_size=settings.window_size, max_shift=settings.max_shift)
    point_plan = plan_tie_points(pair, grid_res=settings.grid_res, window_size=settings.window_size,
                                 max_shift=settings.max_shift)
    # one computation: the blocks under the global window are read once, and the workers wait for one round trip
    regions = window_plan.first_regions
    with single_threaded_blas():  # process-wide, so it covers the scheduler's threads too
        *region_values, matches = dask.compute(*regions, point_plan.graph)  # a None graph computes to None
    global_window = window_plan.finish(region_values)
    points = point_plan.table(matches, settings.min_reliability)
    valid = points[~points["OUTLIER"]]
    common = dict(reference_band=f"{ref_group}/{ref_band}", target_band=f"{tgt_group}/{tgt_band}",
                  global_window=global_window, points=points, reference_id=settings.reference_id,
                  local=settings.local)
    if len(valid) >= settings.min_valid_points:
        return CoregResult("success", "tie_points", float(valid["X_SHIFT_PX"].median()),
                           float(valid["Y_SHIFT_PX"].median()), float(valid["X_SHIFT_M"].median()),
                           float(valid["Y_SHIFT_M"].median()), float(valid["RELIABILITY"].median()), **common)
    if global_window.success and global_window.reliability >= settings.min_reliability:
        g = global_window
        return CoregResult("success", "global_window", g.x_shift_px, g.y_shift_px, g.x_shift_m, g.y_shift_m,
                           g.reliability, **common)
    return CoregResult(_failure(global_window, points, settings.min_valid_points), "none", math.nan, math.nan,
                       math.nan, math.nan, 0.0, **common)


def _failure(global_window: ShiftResult, points: pd.DataFrame, min_valid_points: int) -> str:
    """One named reason for a failed scene match, the most telling first."""
    reason = global_window.status.removeprefix("failed:") if not global_window.success else ""
    if reason == "no overlap":
        return "failed:no overlap"
    if "target: no valid data" in reason and len(points) == 0:
        return "failed:fully clouded (no valid target data in the overlap)"
    failures = Counter(r.removeprefix("failed:") for r in points["REASON"] if r.startswith("failed:"))
    common_failure = failures.most_common(1)[0][0] if failures else ""
    for named in ("shift exceeds max_shift", "flat window"):
        if named in reason or named in common_failure:
            return f"failed:{named}"
    detail = reason or (f"global window reliability {global_window.reliability:.0f} %"
                        if global_window.success else "")
    n_valid = int((~points["OUTLIER"]).sum()) if len(points) else 0
    return f"failed:too few valid tie points ({n_valid} < {min_valid_points}; global window: {detail or 'n/a'})"
