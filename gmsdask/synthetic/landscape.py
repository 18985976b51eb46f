"""The synthetic ground: a landscape defined in world (UTM) coordinates, rendered on any pixel grid.

Layers, bottom to top: a patchwork of fields (crop, grass, stubble, bare soil; rectangles of 100-450 m in a
rotated frame), forests (broadleaf and coniferous), lakes, towns (street grid with roofs and gardens), a
meandering river and straight roads. Every layer is a pure function of (x, y) and the seed, so every
sensor grid samples the same ground.

Each pixel is the area average of the ground under it, computed analytically: an edge at distance d from
the pixel centre contributes the covered part of a box of the pixel's size (``pixel_m``), and noise octaves
finer than the pixel are damped. So each band grid is rendered directly, without a fine master grid, and a
60 m pixel is (to that approximation) the mean of the 10 m pixels inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .noise import derive_seed, fbm, hash_uniform, value_noise
from .spectra import MATERIALS

__all__ = ["Landscape", "SurfaceSample", "MATERIAL_INDEX"]

#: Row of each material in the fraction array.
MATERIAL_INDEX: dict[str, int] = {m.name: i for i, m in enumerate(MATERIALS)}
_SOIL = MATERIAL_INDEX["bare_soil"]
_TOWN_PROBABILITY = 0.6
_TOWN_RADIUS_MIN_M, _TOWN_RADIUS_MAX_M = 700.0, 1800.0
#: Field types of the patchwork with their probability and the range of their vegetation cover (rest soil).
_FIELD_TYPES: tuple[tuple[str, float, float, float], ...] = (
    ("cropland", 0.35, 0.55, 1.0),
    ("grassland", 0.25, 0.70, 1.0),
    ("dry_vegetation", 0.15, 0.60, 1.0),
    ("bare_soil", 0.25, 1.0, 1.0),
)


@dataclass(frozen=True)
class SurfaceSample:
    """The ground of one block of pixels.

    ``fractions`` (material, rows, cols): area fraction of each material times its local brightness
    (parcels and canopies vary by +-15 %), so a band value is a dot product with the materials' band
    reflectances. ``texture`` (rows, cols): a fine multiplicative texture common to all materials.
    """

    fractions: np.ndarray
    texture: np.ndarray

    def reflectance(self, material_reflectance: np.ndarray) -> np.ndarray:
        """Surface reflectance (float32) for per-material band values: ``(E,)`` -> 2-D, ``(B, E)`` -> 3-D."""
        table = np.atleast_2d(np.asarray(material_reflectance, dtype=np.float32))
        n_materials, rows, cols = self.fractions.shape
        values = table @ self.fractions.reshape(n_materials, rows * cols)
        values = values.reshape(len(table), rows, cols) * self.texture
        np.clip(values, 0.0, 1.0, out=values)
        return values[0] if np.ndim(material_reflectance) == 1 else values

    def land_cover(self) -> np.ndarray:
        """Land-cover code (``MATERIALS[i].code``) of the dominant material per pixel (uint8)."""
        # a running maximum is several times faster than argmax over the (strided) first axis
        best = self.fractions[0].copy()
        code = np.full(best.shape, MATERIALS[0].code, dtype=np.uint8)
        for material, fraction in zip(MATERIALS[1:], self.fractions[1:]):
            larger = fraction > best
            np.copyto(best, fraction, where=larger)
            code[larger] = material.code
        return code

    def surface_temperature(self) -> np.ndarray:
        """Area-weighted surface temperature, K (float32)."""
        temperatures = np.array([m.surface_temperature_k for m in MATERIALS], dtype=np.float32)
        n_materials, rows, cols = self.fractions.shape
        flat = self.fractions.reshape(n_materials, rows * cols)
        weighted = (temperatures[None, :] @ flat)[0] / np.maximum(flat.sum(axis=0), 1e-6)
        return (weighted.reshape(rows, cols) + (self.texture - 1.0) * 20.0).astype(np.float32)


def _box_coverage(distance: np.ndarray, width: float, pixel_m: float) -> np.ndarray:
    """Fraction of a pixel (box of ``pixel_m``) at ``distance`` from the centre line of a strip ``width`` wide."""
    half_pixel = pixel_m / 2.0
    overlap = np.minimum(distance + half_pixel, width / 2.0) - np.maximum(distance - half_pixel, -width / 2.0)
    return (np.clip(overlap, 0.0, None) / pixel_m).astype(np.float32)


def _soft_threshold(value: np.ndarray, threshold: float, softness: float) -> np.ndarray:
    return np.clip((value - np.float32(threshold)) / np.float32(softness) + np.float32(0.5), 0.0, 1.0)


class _Params:
    """Scalar parameters of the landscape, drawn once from the seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, label: str, low: float, high: float) -> float:
        return low + (high - low) * float(hash_uniform(derive_seed(self.seed, "param", label), np.zeros(1))[0])

    def sub_seed(self, label: str) -> int:
        return derive_seed(self.seed, label)


class Landscape:
    """The seeded synthetic ground.

    Parameters
    ----------
    seed
        Selects the landscape; the same seed is the same ground for every product and grid.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        p = _Params(self.seed)
        self._p = p
        self.field_angle = math.radians(p.uniform("field_angle", 5.0, 35.0))
        self.field_spacing = (p.uniform("field_w", 220.0, 320.0), p.uniform("field_h", 150.0, 240.0))
        self.river_along_x = p.uniform("river_axis", 0.0, 1.0) < 0.5
        self.river_period = 14_000.0
        self.river_offset = p.uniform("river_offset", 0.0, self.river_period)
        self.river_waves = ((p.uniform("river_a1", 400.0, 800.0), p.uniform("river_l1", 4000.0, 7000.0),
                             p.uniform("river_p1", 0.0, 2 * math.pi)),
                            (p.uniform("river_a2", 100.0, 200.0), p.uniform("river_l2", 1000.0, 1800.0),
                             p.uniform("river_p2", 0.0, 2 * math.pi)))
        self.river_width = p.uniform("river_width", 45.0, 80.0)
        self.roads = tuple((math.radians(p.uniform(f"road{k}_angle", 0.0, 180.0)),
                            p.uniform(f"road{k}_spacing", 2500.0, 4500.0),
                            p.uniform(f"road{k}_offset", 0.0, 4500.0)) for k in range(2))
        self.road_width = 9.0
        self.town_cell = 9000.0

    # ------------------------------------------------------------------------------------------------
    def sample(self, x: np.ndarray, y: np.ndarray, pixel_m: float) -> SurfaceSample:
        """The ground on the grid of column eastings ``x`` and row northings ``y`` (pixel centres, m),
        area-averaged over pixels of ``pixel_m`` metres."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        fractions = self._fields(x, y, pixel_m)
        self._composite(fractions, *self._forest(x, y, pixel_m))
        self._composite(fractions, *self._lakes(x, y, pixel_m))
        self._town(fractions, x, y, pixel_m)
        self._composite(fractions, *self._river(x, y, pixel_m))
        self._composite(fractions, *self._roads(x, y, pixel_m))
        texture = fbm(x, y, (45.0, 18.0), (0.6, 0.4), self._p.sub_seed("texture"), pixel_m)
        texture = np.float32(1.0) + np.float32(0.10) * (texture - np.float32(0.5))
        return SurfaceSample(fractions, texture)

    @staticmethod
    def _composite(fractions: np.ndarray, alpha: np.ndarray | None, mix: dict[int, np.ndarray | float]) -> None:
        """Lay a layer of coverage ``alpha`` over ``fractions``; ``mix`` maps materials to their share."""
        if alpha is None:
            return
        fractions *= (np.float32(1.0) - alpha)[None]
        for material, share in mix.items():
            fractions[material] += alpha * share

    # ------------------------------------------------------------------------------------------------
    def _fields(self, x: np.ndarray, y: np.ndarray, pixel_m: float) -> np.ndarray:
        """The patchwork of fields, with each pixel split between the up to four parcels it overlaps."""
        cos_a, sin_a = math.cos(self.field_angle), math.sin(self.field_angle)
        ku, ku_nb, wu, ku_ref = self._parcel_axis(x * cos_a, y * sin_a, self.field_spacing[0], pixel_m, "u")
        kv, kv_nb, wv, kv_ref = self._parcel_axis(-x * sin_a, y * cos_a, self.field_spacing[1], pixel_m, "v")
        ku_min, kv_min = int(min(ku.min(), ku_nb.min())), int(min(kv.min(), kv_nb.min()))
        n_u = int(max(ku.max(), ku_nb.max())) - ku_min + 1
        n_v = int(max(kv.max(), kv_nb.max())) - kv_min + 1
        kind, cover, brightness = self._parcel_table(np.arange(kv_min, kv_min + n_v) + kv_ref,
                                                     np.arange(ku_min, ku_min + n_u) + ku_ref)
        rows, cols = ku.shape
        fractions = np.zeros((len(MATERIALS), rows, cols), dtype=np.float32)
        # the parcel under the pixel centre, weighted by the part of the pixel inside it
        own = (kv - kv_min) * n_u + (ku - ku_min)
        own_kind = kind[own]
        scaled = (1.0 - wu) * (1.0 - wv) * brightness[own]
        vegetation = scaled * cover[own]
        for name, *_ in _FIELD_TYPES:
            material = MATERIAL_INDEX[name]
            np.multiply(vegetation, own_kind == material, out=fractions[material])
        fractions[_SOIL] += scaled - vegetation
        del own, own_kind, scaled, vegetation
        # the neighbours, only for the pixels that straddle a parcel edge
        edge = np.flatnonzero((wu > 0) | (wv > 0))
        if edge.size:
            ku_e, kv_e = ku.ravel()[edge], kv.ravel()[edge]
            kun_e, kvn_e = ku_nb.ravel()[edge], kv_nb.ravel()[edge]
            wu_e, wv_e = wu.ravel()[edge], wv.ravel()[edge]
            for parcel_u, parcel_v, w in ((kun_e, kv_e, wu_e * (1 - wv_e)), (ku_e, kvn_e, (1 - wu_e) * wv_e),
                                          (kun_e, kvn_e, wu_e * wv_e)):
                index = (parcel_v - kv_min) * n_u + (parcel_u - ku_min)
                self._add_parcels(fractions.reshape(len(MATERIALS), -1), edge, index, w, kind, cover, brightness)
        return fractions

    def _parcel_axis(self, along_x: np.ndarray, along_y: np.ndarray, spacing: float, pixel_m: float, axis: str
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Parcel index along one rotated axis, the index of the nearer neighbour, the pixel's share in it,
        and the index offset that makes the (int32, relative) indices absolute.

        The axis coordinate is ``along_x[None, :] + along_y[:, None]`` (m). Boundaries sit at ``k * spacing``
        jittered by up to +-25 %, so parcels are 0.5-1.5 spacings wide. The 2-D work is done in float32
        relative to a whole number of spacings, which keeps centimetre precision at UTM magnitudes.
        """
        k_ref = int(math.floor((along_x[0] + along_y[0]) / spacing))
        origin = k_ref * spacing
        # both float32 terms small (the block's extent): splitting the origin in halves left each term at UTM
        # magnitude, where float32 steps are 0.25 m, so parcel edges moved with the block's extent
        coord = (along_x - along_x[0]).astype(np.float32)[None, :] + \
            (along_y - (origin - along_x[0])).astype(np.float32)[:, None]
        k0 = np.floor(coord * np.float32(1.0 / spacing)).astype(np.int32)
        k_first = int(k0.min()) - 1
        ks = np.arange(k_first, int(k0.max()) + 3)
        boundaries = ((ks + 0.5 * (hash_uniform(self._p.sub_seed(f"parcel_{axis}"), ks + k_ref) - 0.5)) * spacing
                      ).astype(np.float32)
        k = k0 - (coord < boundaries[k0 - k_first]) + (coord >= boundaries[k0 + 1 - k_first])
        del k0
        to_low = coord - boundaries[k - k_first]
        to_high = boundaries[k + 1 - k_first] - coord
        neighbour = k + np.where(to_low < to_high, np.int32(-1), np.int32(1))
        share = np.minimum(to_low, to_high)
        share *= np.float32(-1.0 / pixel_m)
        share += np.float32(0.5)
        np.clip(share, 0.0, 0.5, out=share)
        return k, neighbour, share, k_ref

    def _parcel_table(self, kv: np.ndarray, ku: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Material, vegetation cover and brightness of every parcel (flattened ``(kv, ku)`` table)."""
        seed = self._p.sub_seed("parcel_kind")
        draw = hash_uniform(seed, kv[:, None], ku[None, :]).ravel()
        cover_draw = hash_uniform(derive_seed(seed, "cover"), kv[:, None], ku[None, :]).ravel()
        bright_draw = hash_uniform(derive_seed(seed, "brightness"), kv[:, None], ku[None, :]).ravel()
        kind = np.empty(draw.shape, dtype=np.intp)
        cover = np.empty(draw.shape, dtype=np.float32)
        lower = 0.0
        for name, probability, cover_min, cover_max in _FIELD_TYPES:
            chosen = (draw >= lower) & (draw < lower + probability)
            kind[chosen] = MATERIAL_INDEX[name]
            cover[chosen] = cover_min + (cover_max - cover_min) * cover_draw[chosen]
            lower += probability
        kind[draw >= lower] = _SOIL
        cover[draw >= lower] = 1.0
        brightness = (0.85 + 0.30 * bright_draw).astype(np.float32)
        return kind, cover, brightness

    @staticmethod
    def _add_parcels(flat_fractions: np.ndarray, pixels: np.ndarray, parcel: np.ndarray, weight: np.ndarray,
                     kind: np.ndarray, cover: np.ndarray, brightness: np.ndarray) -> None:
        scaled = weight * brightness[parcel]
        vegetation = cover[parcel]
        # each pixel appears once per call, so plain fancy-index accumulation is exact
        flat = flat_fractions.reshape(-1)
        n_pixels = flat_fractions.shape[1]
        flat[kind[parcel] * n_pixels + pixels] += scaled * vegetation
        flat[_SOIL * n_pixels + pixels] += scaled * (1.0 - vegetation)

    # ------------------------------------------------------------------------------------------------
    def _forest(self, x: np.ndarray, y: np.ndarray, pixel_m: float):
        noise = fbm(x, y, (3200.0, 1300.0, 500.0), (0.55, 0.3, 0.15), self._p.sub_seed("forest"), pixel_m)
        # a box-filtered edge: the ramp spans one pixel (+5 m of natural fringe) times the noise's median
        # gradient (measured: 1/5700 per m), so a coarse pixel is the mean of the fine ones across the edge
        alpha = _soft_threshold(noise, 0.585, (pixel_m + 5.0) / 5700.0)
        if not alpha.any():
            return None, {}
        conifer = np.clip((value_noise(x, y, 6000.0, self._p.sub_seed("conifer")) - 0.35) / 0.3, 0.0, 1.0)
        canopy = fbm(x, y, (60.0, 25.0), (0.6, 0.4), self._p.sub_seed("canopy"), pixel_m)
        canopy = np.float32(1.0) + np.float32(0.3) * (canopy - np.float32(0.5))
        return alpha, {MATERIAL_INDEX["broadleaf_forest"]: (1.0 - conifer) * canopy,
                       MATERIAL_INDEX["coniferous_forest"]: conifer * canopy}

    def _lakes(self, x: np.ndarray, y: np.ndarray, pixel_m: float):
        noise = fbm(x, y, (2500.0, 900.0, 350.0), (0.55, 0.3, 0.15), self._p.sub_seed("lakes"), pixel_m)
        alpha = _soft_threshold(noise, 0.74, (pixel_m + 5.0) / 3700.0)  # median gradient 1/3700 per m
        return (alpha, {MATERIAL_INDEX["water"]: 1.0}) if alpha.any() else (None, {})

    def _river(self, x: np.ndarray, y: np.ndarray, pixel_m: float):
        along, across = (x, y) if self.river_along_x else (y, x)
        centre = np.full(along.shape, self.river_offset)
        slope = np.zeros(along.shape)
        for amplitude, wavelength, phase in self.river_waves:
            angle = 2 * math.pi * along / wavelength + phase
            centre += amplitude * np.sin(angle)
            slope += amplitude * 2 * math.pi / wavelength * np.cos(angle)
        period = self.river_period
        offset = across[:, None] - centre[None, :] if self.river_along_x else across[None, :] - centre[:, None]
        offset = np.abs(offset - period * np.round(offset / period))
        # distance across the channel: the vertical offset times the cosine of the meander's slope
        cos_slope = 1.0 / np.sqrt(1.0 + slope * slope)
        distance = offset * (cos_slope[None, :] if self.river_along_x else cos_slope[:, None])
        alpha = _box_coverage(distance, self.river_width, pixel_m)
        return (alpha, {MATERIAL_INDEX["water"]: 1.0}) if alpha.any() else (None, {})

    def _roads(self, x: np.ndarray, y: np.ndarray, pixel_m: float):
        alpha = None
        for angle, spacing, offset in self.roads:
            position = x[None, :] * math.cos(angle) + y[:, None] * math.sin(angle) - offset
            coverage = _box_coverage(np.abs(position - spacing * np.round(position / spacing)), self.road_width,
                                     pixel_m)
            alpha = coverage if alpha is None else np.float32(1.0) - (1.0 - alpha) * (1.0 - coverage)
        return alpha, {MATERIAL_INDEX["asphalt"]: 1.0}

    def _town(self, fractions: np.ndarray, x: np.ndarray, y: np.ndarray, pixel_m: float) -> None:
        """Towns: at most one per 9 km cell, a disc of 0.7-1.8 km with a frayed edge and a street grid.

        Only the window of pixels around each town is computed: towns cover a few percent of the ground.
        """
        cell = self.town_cell
        seed = self._p.sub_seed("town")
        margin = _TOWN_RADIUS_MAX_M * 1.2 + 200.0
        for cj in range(int(np.floor(y.min() / cell)), int(np.floor(y.max() / cell)) + 1):
            for ci in range(int(np.floor(x.min() / cell)), int(np.floor(x.max() / cell)) + 1):
                draws = [float(hash_uniform(derive_seed(seed, label), np.array([cj]), np.array([ci]))[0])
                         for label in ("present", "radius", "cx", "cy", "angle")]
                if draws[0] >= _TOWN_PROBABILITY:
                    continue
                radius = _TOWN_RADIUS_MIN_M + (_TOWN_RADIUS_MAX_M - _TOWN_RADIUS_MIN_M) * draws[1]
                centre = (ci * cell + margin + (cell - 2 * margin) * draws[2],
                          cj * cell + margin + (cell - 2 * margin) * draws[3])
                reach = radius * 1.15 + pixel_m + 40.0
                cols = np.flatnonzero(np.abs(x - centre[0]) <= reach)
                rows = np.flatnonzero(np.abs(y - centre[1]) <= reach)
                if cols.size and rows.size:
                    window = np.s_[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
                    self._one_town(fractions[window], x[window[2]], y[window[1]], pixel_m, radius, centre,
                                   math.pi / 2 * draws[4], derive_seed(seed, ci, cj))

    def _one_town(self, fractions: np.ndarray, x: np.ndarray, y: np.ndarray, pixel_m: float, radius: float,
                  centre: tuple[float, float], angle: float, seed: int) -> None:
        dx = (x - centre[0])[None, :]
        dy = (y - centre[1])[:, None]
        frayed = radius * (0.85 + 0.3 * value_noise(x, y, 700.0, derive_seed(seed, "edge")))
        alpha = np.clip((frayed - np.hypot(dx, dy)) / (pixel_m + 40.0) + 0.5, 0.0, 1.0).astype(np.float32)
        if not alpha.any():
            return
        street_spacing, street_width = 95.0, 12.0
        streets = np.zeros(alpha.shape, dtype=np.float32)
        for along in (dx * math.cos(angle) + dy * math.sin(angle), dy * math.cos(angle) - dx * math.sin(angle)):
            distance = np.abs(along - street_spacing * np.round(along / street_spacing))
            coverage = _box_coverage(distance, street_width, pixel_m)
            streets = np.float32(1.0) - (1.0 - streets) * (1.0 - coverage)
        roofs = fbm(x, y, (40.0, 16.0), (0.7, 0.3), derive_seed(seed, "roofs"), pixel_m)
        roof_share = np.clip(0.5 + 1.2 * (roofs - 0.5), 0.15, 0.95) * (1.0 - streets)
        self._composite(fractions, alpha, {MATERIAL_INDEX["asphalt"]: streets,
                                           MATERIAL_INDEX["roof"]: roof_share,
                                           MATERIAL_INDEX["grassland"]: 1.0 - streets - roof_share})
