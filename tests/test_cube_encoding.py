"""The cube's integer encoding of a block (``cube_schema.encode_block``) against a pixel-by-pixel reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gmsdask.io.cube_schema import _SCALED, FILL_INT16, VariableSpec, encode_block


def _reference(value: float, scale: float, offset: float) -> int:
    if not math.isfinite(value):
        return FILL_INT16
    code = round((float(value) - offset) / scale)  # Python's round: half to even, like numpy's
    return int(min(max(code, FILL_INT16 + 1), 32767))


@pytest.mark.parametrize("kind", sorted(_SCALED))
@pytest.mark.parametrize("rows", [64, 300])  # 300: several row strips, the last one short
def test_blocks_are_scaled_rounded_clipped_and_filled_pixel_by_pixel(kind, rows):
    rng = np.random.default_rng(7)
    scale, offset = float(_SCALED[kind][0]), float(_SCALED[kind][1])
    block = (offset + scale * rng.uniform(-40_000, 40_000, (rows, 48))).astype(np.float32)
    block[:10] = np.nan  # rows and columns of the window the scene does not reach
    block[:, 40:] = np.nan
    block[rng.random(block.shape) < 0.2] = np.nan
    block[20, 5], block[21, 6] = np.inf, -np.inf
    block[30, 7] = offset + scale * 12.5  # a tie, rounded to even
    encoded = encode_block(VariableSpec(kind, "int16", FILL_INT16), block)
    expected = np.vectorize(lambda v: _reference(v, scale, offset), otypes=[np.int16])(block)
    assert encoded.dtype == np.int16
    np.testing.assert_array_equal(encoded, expected)
    assert (encoded[:10] == FILL_INT16).all() and (encoded[np.isfinite(block) & (block > offset + scale * 33_000)] == 32767).all()


def test_a_block_without_data_is_all_fill():
    encoded = encode_block(VariableSpec("reflectance", "int16", FILL_INT16), np.full((8, 8), np.nan, np.float32))
    assert (encoded == FILL_INT16).all()
