"""Sen2Chain's cloud masks CM001-CM004 (FACTS.md section 7), in numpy, rule for rule.

All masks are computed on the 20 m grid of a Sentinel-2 L2A product (or its 60 m grid when it has no 20 m
layers) and are ``uint8`` with 1 = masked (cloud, shadow, ... and their dilated surroundings), 0 = clear.

- ``CM001``: cloud probability (``MSK_CLDPRB``, %) > 25, eroded once with the 3x3 cross, dilated once with the
  11x11 disc.
- ``CM002``: CM001, minus the pixels over dark SWIR (B11 surface reflectance < 0.15, i.e. water, turbid rivers,
  beaches: the dark-SWIR mask dilated once with the 11x11 disc), then dilated once with the 13x13 disc.
- ``CM003-PRBp-ITERi``: cloud probability >= p (default 1), dilated i times (default 5) with the 5x5 square
  without its four corners.
- ``CM004-CSHa-CMPb-CHPc-TCId-ITERi``: the Scene Classification (``SCL``) classes switched on by the flags
  (CSH 3 cloud shadow, CMP 8 cloud medium probability, CHP 9 cloud high probability, TCI 10 thin cirrus;
  default all on), dilated i times (default 5) with the same 5x5 kernel.

Conventions, where Sen2Chain is silent or wrong:

- ``ITER0`` means no dilation. (Sen2Chain passes ``iterations=0`` to ``scipy.ndimage.binary_dilation``, which
  then dilates until nothing changes and masks the whole image.)
- B11 enters CM002 as surface reflectance, threshold 0.15. Sen2Chain compares the raw JPEG 2000 DN with 1500,
  which is reflectance 0.15 only for processing baselines < 04.00; from baseline 04.00 (``BOA_ADD_OFFSET``
  -1000) the same DN is reflectance 0.05. gmsdask keeps the documented physical threshold for every baseline.
  B11 "no data" (NaN) counts as dark, as Sen2Chain's DN 0 < 1500 does.
- Outside the image nothing is cloud: erosion and dilation use ``border_value=0`` (scipy's default, so Sen2Chain's
  full-image results are reproduced at the image borders, too).

Blockwise evaluation: every function takes an optional ``inside`` mask (True = pixel of the image). A block cut
out of a larger image with a margin of :func:`overlap_depth` pixels (the margin beyond the image's true edges
filled with zeros and ``inside`` = False there) gives exactly the full-image result on the block's core:
``inside`` keeps the padding at 0 between morphological steps, as the outside of a full image is.

Morphology is ``scipy.ndimage`` (the library Sen2Chain uses); kernels are built here because they are part of
the rules (the disc is scikit-image's ``disk``: offsets with dx^2 + dy^2 <= r^2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import ConfigError

__all__ = [
    "CloudMaskSpec",
    "parse_cloud_mask",
    "overlap_depth",
    "disc",
    "CROSS_3X3",
    "KERNEL_5X5_NO_CORNERS",
    "cm001",
    "cm002",
    "cm003",
    "cm004",
    "cloud_mask",
    "SCL_CLASSES",
    "CM001_PROBABILITY_PCT",
    "CM002_DARK_SWIR_REFLECTANCE",
]

#: CM001/CM002: cloud when the probability is strictly above this, percent.
CM001_PROBABILITY_PCT = 25
#: CM002: B11 surface reflectance below this is dark SWIR (Sen2Chain: DN 1500 at quantification 10000, no offset).
CM002_DARK_SWIR_REFLECTANCE = 0.15
#: CM004 flags and the Sen2Cor SCL classes they select.
SCL_CLASSES: dict[str, int] = {"CSH": 3, "CMP": 8, "CHP": 9, "TCI": 10}


def disc(diameter: int) -> np.ndarray:
    """A boolean disc of odd ``diameter`` pixels: offsets with dx^2 + dy^2 <= r^2, r = (diameter - 1) / 2."""
    if diameter < 1 or diameter % 2 == 0:
        raise ValueError(f"a disc needs an odd diameter >= 1, got {diameter}")
    radius = diameter // 2
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return dx * dx + dy * dy <= radius * radius


#: CM001's erosion kernel: the 3x3 cross (4-connectivity).
CROSS_3X3 = ndimage.generate_binary_structure(2, 1)
#: CM003/CM004's dilation kernel: the 5x5 square without its four corner pixels.
KERNEL_5X5_NO_CORNERS = np.ones((5, 5), dtype=bool)
KERNEL_5X5_NO_CORNERS[[0, 0, -1, -1], [0, -1, 0, -1]] = False

_DISC_11, _DISC_13 = disc(11), disc(13)


# --- mask strings ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CloudMaskSpec:
    """A parsed cloud-mask string. ``name`` is canonical (every parameter spelled out: ``CM003-PRB1-ITER5``).

    Attributes
    ----------
    version
        ``CM001`` .. ``CM004``.
    probability
        CM003: the cloud probability threshold p in percent (mask where probability >= p).
    iterations
        CM003/CM004: how many dilations with the 5x5 kernel (0 = none).
    classes
        CM004: the SCL classes masked.
    """

    version: str
    probability: int = 1
    iterations: int = 5
    classes: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        if self.version == "CM003":
            return f"CM003-PRB{self.probability}-ITER{self.iterations}"
        if self.version == "CM004":
            flags = "-".join(f"{flag}{int(cls in self.classes)}" for flag, cls in SCL_CLASSES.items())
            return f"CM004-{flags}-ITER{self.iterations}"
        return self.version

    @property
    def needs(self) -> tuple[str, ...]:
        """The input layers: ``probability`` (MSK_CLDPRB, %), ``scl`` (SCL classes), ``swir16`` (B11)."""
        return {"CM001": ("probability",), "CM002": ("probability", "swir16"),
                "CM003": ("probability",), "CM004": ("scl",)}[self.version]


_TOKEN = re.compile(r"^(PRB|ITER|CSH|CMP|CHP|TCI)(\d+)$")
_ALLOWED = {"CM001": set(), "CM002": set(), "CM003": {"PRB", "ITER"}, "CM004": {"CSH", "CMP", "CHP", "TCI", "ITER"}}


def parse_cloud_mask(text: str) -> CloudMaskSpec:
    """Parse ``CM001``, ``CM002``, ``CM003[-PRBp][-ITERi]`` or ``CM004[-CSHa][-CMPb][-CHPc][-TCId][-ITERi]``.

    Case-insensitive; parameters in any order, each at most once; missing ones take Sen2Chain's defaults
    (PRB 1, ITER 5, every CM004 flag 1). Raises ``ConfigError`` (key ``cloudmasks``) naming the problem.
    """
    parts = str(text).strip().upper().split("-")
    version = parts[0]
    if version not in _ALLOWED:
        raise ConfigError("cloudmasks", f"unknown cloud mask {text!r}: it must start with one of "
                                        f"{', '.join(_ALLOWED)} (e.g. CM003-PRB1-ITER5, "
                                        "CM004-CSH1-CMP1-CHP1-TCI1-ITER0)")
    values: dict[str, int] = {}
    for part in parts[1:]:
        match = _TOKEN.match(part)
        if match is None or match.group(1) not in _ALLOWED[version]:
            allowed = ", ".join(sorted(_ALLOWED[version])) or "none"
            raise ConfigError("cloudmasks", f"cloud mask {text!r}: invalid parameter {part!r} "
                                            f"(parameters of {version}: {allowed})")
        key, value = match.group(1), int(match.group(2))
        if key in values:
            raise ConfigError("cloudmasks", f"cloud mask {text!r}: parameter {key} given twice")
        values[key] = value
    for flag in ("CSH", "CMP", "CHP", "TCI"):
        if values.get(flag, 1) not in (0, 1):
            raise ConfigError("cloudmasks", f"cloud mask {text!r}: {flag} must be 0 or 1")
    if not 0 <= values.get("PRB", 1) <= 100:
        raise ConfigError("cloudmasks", f"cloud mask {text!r}: PRB must be a probability 0-100 %")
    classes = tuple(cls for flag, cls in SCL_CLASSES.items() if values.get(flag, 1) == 1)
    if version == "CM004" and not classes:
        raise ConfigError("cloudmasks", f"cloud mask {text!r}: every SCL class is switched off")
    return CloudMaskSpec(version=version, probability=values.get("PRB", 1), iterations=values.get("ITER", 5),
                         classes=classes if version == "CM004" else ())


def overlap_depth(spec: CloudMaskSpec) -> int:
    """Pixels of margin a block needs so that its core equals the full-image result (sum of kernel radii)."""
    if spec.version == "CM001":
        return 1 + 5  # erosion by the 3x3 cross, then dilation by the 11x11 disc
    if spec.version == "CM002":
        return max(1 + 5, 5) + 6  # (CM001 | dark-SWIR disc 11), then the 13x13 disc
    return 2 * spec.iterations  # radius 2 per dilation by the 5x5 kernel


# --- the masks ----------------------------------------------------------------------------------------------
def _inside_or_all(shape: tuple[int, ...], inside: np.ndarray | None) -> np.ndarray:
    return np.ones(shape, dtype=bool) if inside is None else np.asarray(inside, dtype=bool)


def _dilate(mask: np.ndarray, structure: np.ndarray, iterations: int, inside: np.ndarray) -> np.ndarray:
    """``iterations`` dilations (0 = none); pixels outside the image stay 0 after each, as scipy's border."""
    for _ in range(iterations):
        mask = ndimage.binary_dilation(mask, structure=structure) & inside
    return mask


def _cm001_bool(probability: np.ndarray, inside: np.ndarray) -> np.ndarray:
    cloud = (np.asarray(probability) > CM001_PROBABILITY_PCT) & inside
    cloud = ndimage.binary_erosion(cloud, structure=CROSS_3X3, border_value=0) & inside
    return _dilate(cloud, _DISC_11, 1, inside)


def cm001(probability: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """CM001 from the cloud probability in percent (``uint8``, 1 = masked)."""
    return _cm001_bool(probability, _inside_or_all(np.shape(probability), inside)).astype(np.uint8)


def cm002(probability: np.ndarray, swir16: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """CM002 from the cloud probability (%) and B11 surface reflectance (float, NaN = no data) on one grid."""
    inside = _inside_or_all(np.shape(probability), inside)
    dark = ~(np.asarray(swir16) >= CM002_DARK_SWIR_REFLECTANCE) & inside  # NaN is dark, as DN 0 < 1500
    dark = _dilate(dark, _DISC_11, 1, inside)
    cloud = _cm001_bool(probability, inside) & ~dark
    return _dilate(cloud, _DISC_13, 1, inside).astype(np.uint8)


def cm003(probability: np.ndarray, threshold_pct: int = 1, iterations: int = 5,
          inside: np.ndarray | None = None) -> np.ndarray:
    """CM003: cloud probability >= ``threshold_pct``, dilated ``iterations`` times (0 = not at all)."""
    inside = _inside_or_all(np.shape(probability), inside)
    cloud = (np.asarray(probability) >= threshold_pct) & inside
    return _dilate(cloud, KERNEL_5X5_NO_CORNERS, iterations, inside).astype(np.uint8)


def cm004(scl: np.ndarray, classes: tuple[int, ...] = (3, 8, 9, 10), iterations: int = 5,
          inside: np.ndarray | None = None) -> np.ndarray:
    """CM004: SCL in ``classes``, dilated ``iterations`` times (0 = not at all)."""
    inside = _inside_or_all(np.shape(scl), inside)
    flagged = np.isin(np.asarray(scl), classes) & inside
    return _dilate(flagged, KERNEL_5X5_NO_CORNERS, iterations, inside).astype(np.uint8)


def cloud_mask(spec: CloudMaskSpec, *, probability: np.ndarray | None = None, scl: np.ndarray | None = None,
               swir16: np.ndarray | None = None, inside: np.ndarray | None = None) -> np.ndarray:
    """The mask ``spec`` from the layers it needs (see :attr:`CloudMaskSpec.needs`)."""
    given = {"probability": probability, "scl": scl, "swir16": swir16}
    missing = [name for name in spec.needs if given[name] is None]
    if missing:
        raise ValueError(f"{spec.name} needs {', '.join(missing)}")
    if spec.version == "CM001":
        return cm001(probability, inside)
    if spec.version == "CM002":
        return cm002(probability, swir16, inside)
    if spec.version == "CM003":
        return cm003(probability, spec.probability, spec.iterations, inside)
    return cm004(scl, spec.classes, spec.iterations, inside)
