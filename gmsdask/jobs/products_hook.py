"""The hook through which a routine run writes Sen2Chain's cloud masks and indices into a tile cube.

Interface (:data:`ProductsHook`), called once per task after the chain when the task asks for masks or indices::

    compute_products(tile, cube_path, cloudmasks, indices, *, scenes, config) -> ProductsResult | Mapping

``tile`` is the task's MGRS tile (``"29UNU"``); ``cube_path`` the location of the tile cube the chain wrote (an
Icechunk repository ``<path_procdata_MGRS>/<virtual_sensor_name>/<TILE>.icechunk``: a Path, or a URL string);
``cloudmasks`` validated mask names (``("CM001", "CM004-CSH1-CMP1-CHP1-TCI1-ITER0")``); ``indices`` index names
with ``All`` expanded; ``scenes`` ``{product_id (the cube's scene_id): product path, or None when the product
is gone}`` for every selected scene in the cube (the writer may skip slots that already hold the variables);
``config`` the run's :class:`~gmsdask.config.JobConfig`. A returned ``failed`` mapping (what -> reason) makes
the task failed with those reasons; an exception does too.

The default hook adapts ``write_indices_to_cube(cube, scenes, cloudmasks, indices)`` of :mod:`gmsdask.indices`
(imported lazily, so routines work without it as long as no task asks for masks or indices).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import JobConfig
from ..errors import GmsdaskError

__all__ = ["ProductsHook", "ProductsResult", "failures_of", "indices_hook"]

ProductsHook = Callable[..., Any]


@dataclass(frozen=True)
class ProductsResult:
    """What a products hook did: variables written per scene, failures (what -> reason), notes for the log."""

    written: Mapping[str, Sequence[str]] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()


def failures_of(result: ProductsResult | Mapping[str, Any] | None) -> dict[str, str]:
    """The ``failed`` mapping of a hook's result (a :class:`ProductsResult` or a mapping with ``failed``)."""
    if result is None:
        return {}
    if isinstance(result, ProductsResult):
        return dict(result.failed)
    return dict(result.get("failed", {}))


def _import_writer() -> Callable[..., Any]:
    try:
        from ..indices import write_indices_to_cube
    except ImportError:
        try:
            from ..indices.cube import write_indices_to_cube
        except ImportError as error:
            raise GmsdaskError("cloud masks and indices need gmsdask.indices.write_indices_to_cube, "
                               f"which is not available: {error}") from None
    return write_indices_to_cube


def indices_hook(write: Callable[..., Any] | None = None) -> ProductsHook:
    """The products hook over ``write(cube_path, scenes, cloudmasks, indices)`` (default: gmsdask.indices').

    The writer's report is read by attribute: ``failures`` (items with ``scene_id``, ``name``, ``reason``),
    ``variables`` (scene -> names written) and ``notes``.
    """

    def compute_products(tile: str, cube_path: Path | str, cloudmasks: Sequence[str], indices: Sequence[str], *,
                         scenes: Mapping[str, str | None], config: JobConfig) -> ProductsResult:
        writer = write or _import_writer()
        report = writer(cube_path, dict(scenes), list(cloudmasks), list(indices))
        failed = {f"{failure.scene_id}: {failure.name}": str(failure.reason)
                  for failure in getattr(report, "failures", [])}
        return ProductsResult(written=dict(getattr(report, "variables", {})), failed=failed,
                              notes=list(getattr(report, "notes", [])))

    return compute_products
