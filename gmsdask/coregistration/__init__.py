"""Co-registration of a target image to a reference image (global shift and local tie points), on xarray/Dask.

The phase-correlation engine is pure numpy (:mod:`gmsdask.algorithms.phase_correlation`); this package brings two
georeferenced images onto a common grid lazily, reads only the matching windows, and returns AROSICS-compatible
results; :func:`coregister_scene` does it for two scene trees (what the L1B level calls). See
docs/coregistration.md for the conventions and the measured accuracy.
"""

from .field import shift_field
from .grid import CoregInputError
from .local import FIELD_STATUS_LOCAL, LocalField, local_field
from .points import TIE_POINT_COLUMNS, tie_points
from .scene import CoregResult, cloud_masked_band, coregister_scene, matching_band
from .shift import ShiftResult, calculate_shift

__all__ = ["CoregInputError", "ShiftResult", "calculate_shift", "TIE_POINT_COLUMNS", "tie_points", "CoregResult",
           "coregister_scene", "matching_band", "cloud_masked_band", "shift_field", "local_field", "LocalField",
           "FIELD_STATUS_LOCAL"]
