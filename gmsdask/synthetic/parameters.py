"""Validation of the writers' parameters, and the error they raise.

Every check names the parameter and says what is wrong, so a failing benchmark script points at its own
argument rather than at a traceback deep inside the renderer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import GmsdaskError

__all__ = ["SyntheticParameterError", "check_fraction", "check_size", "check_shift", "check_positive", "check_seed"]


class SyntheticParameterError(GmsdaskError, ValueError):
    """A synthetic-product parameter that cannot be used.

    Parameters
    ----------
    parameter
        The keyword argument's name (``size``, ``cloud_fraction`` ...).
    problem
        What is wrong with the value, including the allowed range.
    """

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"parameter {parameter!r}: {problem}")


def check_fraction(name: str, value: float) -> float:
    """A float in [0, 1]."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise SyntheticParameterError(name, f"must lie in [0, 1], got {value!r}")
    return value


def check_positive(name: str, value: float, *, upper: float = math.inf) -> float:
    """A finite float in (0, upper]."""
    value = float(value)
    if not (0.0 < value <= upper) or not math.isfinite(value):
        raise SyntheticParameterError(name, f"must lie in (0, {upper}], got {value!r}")
    return value


def check_size(name: str, size: int | Sequence[int], *, multiple_of: int = 1, maximum: int | None = None
               ) -> tuple[int, int]:
    """``(rows, cols)`` of positive ints (an int means a square), each a multiple of ``multiple_of``."""
    if isinstance(size, int):
        size = (size, size)
    try:
        rows, cols = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SyntheticParameterError(name, f"must be an int or a (rows, cols) pair, got {size!r}") from None
    for value in (rows, cols):
        if value <= 0 or value % multiple_of:
            raise SyntheticParameterError(
                name, f"rows and cols must be positive multiples of {multiple_of}, got {(rows, cols)}")
        if maximum is not None and value > maximum:
            raise SyntheticParameterError(name, f"rows and cols must be at most {maximum}, got {(rows, cols)}")
    return rows, cols


def check_shift(name: str, shift: Sequence[float]) -> tuple[float, float]:
    """A finite ``(dx, dy)`` pair in metres."""
    try:
        dx, dy = (float(v) for v in shift)
    except (TypeError, ValueError):
        raise SyntheticParameterError(name, f"must be a (dx, dy) pair in metres, got {shift!r}") from None
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise SyntheticParameterError(name, f"must be finite, got {shift!r}")
    return dx, dy


def check_seed(name: str, seed: int) -> int:
    """An integer seed (numpy integers too; not bools or floats)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SyntheticParameterError(name, f"must be an integer, got {seed!r}")
    return int(seed)
