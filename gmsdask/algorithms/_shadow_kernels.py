"""Compiled scoring of a cloud object's shadow at each candidate height (:func:`.fmask_shadow.match_shadows`).

A Landsat scene's 60 m Fmask grid holds ~6 000 cloud objects, most of a few pixels. numpy paid its per-call
overhead a dozen times per object and height batch (index arrays, masks, sums): 3.1 s of the scene-wide shadow
task, which every later block waits for while the other workers idle. This loop does the same arithmetic per
projected pixel (the shift in float64, rounded half to even) and counts as it goes, so the scores are identical.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["height_scores"]


@numba.njit(cache=True, nogil=True)
def height_scores(rows: np.ndarray, cols: np.ndarray, heights: np.ndarray, per_metre_row: float,
                  per_metre_col: float, label: int, labels: np.ndarray, valid: np.ndarray, target: np.ndarray,
                  shade: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """For each height (m): the share of the object's pixels (``rows``, ``cols``), projected by ``height *
    per_metre`` pixels, that land on ``target`` (potential shadow or cloud), and the evidence, projected pixels on
    ``shade`` minus those on neither. Only projections inside the grid, on ``valid`` pixels and off the object
    itself count; a height where none does scores 0."""
    n_rows, n_cols = labels.shape
    similarity = np.zeros(heights.size, dtype=np.float64)
    evidence = np.zeros(heights.size, dtype=np.int64)
    for k in range(heights.size):
        shift_row = heights[k] * per_metre_row
        shift_col = heights[k] * per_metre_col
        total = 0
        hits = 0
        shaded = 0
        for p in range(rows.size):
            r = np.int64(np.rint(rows[p] + shift_row))
            c = np.int64(np.rint(cols[p] + shift_col))
            if r < 0 or r >= n_rows or c < 0 or c >= n_cols:
                continue
            if not valid[r, c] or labels[r, c] == label:
                continue
            total += 1
            if target[r, c]:
                hits += 1
            if shade[r, c]:
                shaded += 1
        evidence[k] = shaded - (total - hits)
        if total > 0:
            similarity[k] = hits / total
    return similarity, evidence

