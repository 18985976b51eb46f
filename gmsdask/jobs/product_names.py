"""What a product's name tells before it is opened: level, acquisition day, MGRS tile, processing baseline.

Used to pre-select products of a task's tile and dates in archive folders and provider listings without
opening each one, and for Sen2Chain's processing-baseline filter (``filter_max_pb``, ``pb_min``, ``pb_max``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, TypeVar

from ..io.product_name import product_stem

__all__ = ["NameInfo", "baseline_filter", "level_group", "parse_product_name"]

_S2_COMPACT = re.compile(r"S2[ABC]_MSI(?P<level>L1C|L2A)_(?P<day>\d{8})T\d{6}_N(?P<pb>\d{4})_R\d{3}_T(?P<tile>\d{2}[A-Z]{3})")
_S2_OPER = re.compile(r"S2[ABC]_OPER_\w*?(?P<level>L1C|L2A)\w*?_(?P<day>\d{8})T\d{6}\w*?_T(?P<tile>\d{2}[A-Z]{3})"
                      r"(?:_N(?P<pb>\d{2}\.\d{2}))?")
_LANDSAT = re.compile(r"L[CTEO]0[4-9]_(?P<level>L[12])[A-Z0-9]{2}_\d{6}_(?P<day>\d{8})_\d{8}_\d{2}_[A-Z0-9]{2}")

T = TypeVar("T")


@dataclass(frozen=True)
class NameInfo:
    """Facts read from a product name; None where the name does not say (Landsat names carry no MGRS tile)."""

    stem: str
    family: Literal["sentinel2", "landsat"]
    level: Literal["l1c", "l2a"]
    acquired: date
    tile: str | None
    baseline: float | None


def _stem(name: str) -> str:
    return product_stem(name).removesuffix(".AWSPDS")


def _day(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


def parse_product_name(name: str) -> NameInfo | None:
    """The facts in a Sentinel-2 or Landsat product name (file or folder name), or None if unrecognised.

    Level ``l1c`` stands for every Level-1 product (Sentinel-2 L1C, Landsat L1TP/L1GT ...) and ``l2a`` for
    every Level-2 product (Sentinel-2 L2A, Landsat L2SP ...). Baselines: ``N0400`` -> 4.0, ``N02.06`` -> 2.06.
    """
    stem = _stem(name)
    for pattern in (_S2_COMPACT, _S2_OPER):
        match = pattern.search(stem)
        if match:
            pb = match["pb"]
            baseline = None if pb is None else float(pb) if "." in pb else int(pb) / 100
            return NameInfo(stem, "sentinel2", match["level"].lower(), _day(match["day"]), match["tile"], baseline)
    match = _LANDSAT.search(stem)
    if match:
        level = "l1c" if match["level"] == "L1" else "l2a"
        return NameInfo(stem, "landsat", level, _day(match["day"]), None, None)
    return None


def level_group(processing_level: str) -> Literal["l1c", "l2a"]:
    """``l1c`` for a Level-1 ``processing_level`` of the catalogue (``L1C``, ``L1TP`` ...), else ``l2a``."""
    return "l1c" if processing_level.upper().startswith("L1") else "l2a"


def baseline_filter(items: Sequence[T], names: Iterable[str], *, pb_min: float, pb_max: float,
                    only_max: bool) -> list[T]:
    """The ``items`` whose product ``names`` pass Sen2Chain's processing-baseline filter.

    ``pb_min <= baseline <= pb_max`` (inclusive); with ``only_max`` only the highest baseline of each
    acquisition (same tile, level and day) is kept. Products without a baseline (Landsat) always pass.
    """
    infos = [parse_product_name(name) for name in names]
    kept = [(item, info) for item, info in zip(items, infos)
            if info is None or info.baseline is None or pb_min <= info.baseline <= pb_max]
    if not only_max:
        return [item for item, _info in kept]
    best: dict[tuple, float] = {}
    for _item, info in kept:
        if info is not None and info.baseline is not None:
            key = (info.tile, info.level, info.acquired)
            best[key] = max(best.get(key, info.baseline), info.baseline)
    return [item for item, info in kept if info is None or info.baseline is None
            or info.baseline == best[(info.tile, info.level, info.acquired)]]
