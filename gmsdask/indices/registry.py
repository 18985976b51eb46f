"""The 12 Sen2Chain indices (FACTS.md section 7), declared once: name, formula, bands, valid range.

Bands are named by their STAC ``eo:common_name`` as in :mod:`gmsdask.sensors` (Sentinel-2 MSI: ``coastal`` B01,
``blue`` B02, ``green`` B03, ``red`` B04, ``rededge071`` B05, ``rededge075`` B06, ``rededge078`` B07, ``nir`` B08,
``nir08`` B8A, ``swir16`` B11, ``swir22`` B12), so any dataset of harmonized bands (a Landsat slot of the cube
as much as a Sentinel-2 one) can be looked up. Inputs are reflectances (unitless, 0-1); outputs are unitless.

Each formula is a small expression object that evaluates with plain arithmetic, so the same declaration works on
numpy arrays, Dask arrays and xarray DataArrays alike (lazily for the latter two).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["IndexSpec", "NormalizedDifference", "Brightness", "Expression", "INDICES", "get_index",
           "parse_indices"]


@dataclass(frozen=True)
class _TwoBands:
    """A formula of two bands ``a`` and ``b`` (by common name)."""

    a: str
    b: str

    @property
    def bands(self) -> tuple[str, ...]:
        return self.a, self.b


@dataclass(frozen=True)
class NormalizedDifference(_TwoBands):
    """``(a - b) / (a + b)``."""

    @property
    def text(self) -> str:
        return f"({self.a} - {self.b}) / ({self.a} + {self.b})"

    def __call__(self, bands: Mapping[str, Any]) -> Any:
        a, b = bands[self.a], bands[self.b]
        return (a - b) / (a + b)


@dataclass(frozen=True)
class Brightness(_TwoBands):
    """``sqrt((a^2 + b^2) / 2)``."""

    @property
    def text(self) -> str:
        return f"sqrt(({self.a}^2 + {self.b}^2) / 2)"

    def __call__(self, bands: Mapping[str, Any]) -> Any:
        a, b = bands[self.a], bands[self.b]
        return ((a * a + b * b) / 2) ** 0.5


@dataclass(frozen=True)
class Expression:
    """Any other formula: its text, the bands it reads, and the function of a ``{common name: array}`` map."""

    text: str
    bands: tuple[str, ...]
    function: Callable[[Mapping[str, Any]], Any]

    def __call__(self, bands: Mapping[str, Any]) -> Any:
        return self.function(bands)


Formula = NormalizedDifference | Brightness | Expression


@dataclass(frozen=True)
class IndexSpec:
    """One index: Sen2Chain's ``name``, what it is, its ``formula`` and the range of meaningful values.

    Values outside ``valid_range`` (inclusive) are treated as no data: they come from near-zero denominators
    or broken reflectances, and the int16 x 10 000 store holds only [-3.2767, 3.2767].
    """

    name: str
    long_name: str
    formula: Formula
    valid_range: tuple[float, float]

    @property
    def bands(self) -> tuple[str, ...]:
        """The common names of the bands the formula reads."""
        return self.formula.bands


_NDR_RANGE = (-1.0, 1.0)
_STORE_RANGE = (-3.2767, 3.2767)


def _ireci(b: Mapping[str, Any]) -> Any:
    return b["rededge075"] * (b["rededge078"] - b["red"]) / b["rededge071"]


def _evi(b: Mapping[str, Any]) -> Any:
    return 2.5 * (b["nir"] - b["red"]) / (b["nir"] + 6.0 * b["red"] - 7.5 * b["blue"] + 1.0)


_SPECS = (
    IndexSpec("NDVI", "normalized difference vegetation index", NormalizedDifference("nir", "red"), _NDR_RANGE),
    IndexSpec("NDWIMCF", "normalized difference water index (McFeeters)", NormalizedDifference("green", "nir"),
              _NDR_RANGE),
    IndexSpec("NDWIGAO", "normalized difference water index (Gao)", NormalizedDifference("nir", "swir16"),
              _NDR_RANGE),
    IndexSpec("MNDWI", "modified normalized difference water index", NormalizedDifference("green", "swir16"),
              _NDR_RANGE),
    IndexSpec("NDRE", "normalized difference red edge index", NormalizedDifference("nir", "rededge071"),
              _NDR_RANGE),
    IndexSpec("IRECI", "inverted red-edge chlorophyll index",
              Expression("rededge075 * (rededge078 - red) / rededge071", ("rededge071", "rededge075",
                                                                          "rededge078", "red"), _ireci),
              _STORE_RANGE),
    IndexSpec("BIGR", "brightness index green-red", Brightness("green", "red"), (0.0, _STORE_RANGE[1])),
    IndexSpec("BIRNIR", "brightness index red-near infrared", Brightness("nir", "red"), (0.0, _STORE_RANGE[1])),
    IndexSpec("BIBG", "brightness index blue-green", Brightness("blue", "green"), (0.0, _STORE_RANGE[1])),
    IndexSpec("EVI", "enhanced vegetation index",
              Expression("2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)", ("nir", "red", "blue"), _evi),
              _STORE_RANGE),
    IndexSpec("NBR", "normalized burn ratio", NormalizedDifference("nir", "swir22"), _NDR_RANGE),
    IndexSpec("NDBI", "normalized difference built-up index", NormalizedDifference("swir16", "nir"), _NDR_RANGE),
)

#: Every index by name, in Sen2Chain's order.
INDICES: Mapping[str, IndexSpec] = {spec.name: spec for spec in _SPECS}


def get_index(name: str) -> IndexSpec:
    """The index ``name`` (case-insensitive); ``ConfigError`` (key ``indices``) listing the known ones."""
    spec = INDICES.get(str(name).strip().upper())
    if spec is None:
        raise ConfigError("indices", f"unknown index {name!r}; known: {', '.join(INDICES)}")
    return spec


def parse_indices(text: str | list[str] | tuple[str, ...]) -> list[IndexSpec]:
    """A ``/``-separated list (``NDVI/MNDWI``) or a sequence of names; ``All`` = every index; empty/False = none."""
    items = text.split("/") if isinstance(text, str) else list(text)
    items = [item.strip() for item in items if item.strip()]
    if not items or [i.upper() for i in items] == ["FALSE"]:
        return []
    if any(item.upper() == "ALL" for item in items):
        return list(INDICES.values())
    return [get_index(item) for item in dict.fromkeys(i.upper() for i in items)]
