"""The level contract: what a processing level receives (:class:`LevelContext`), what it returns
(:class:`LevelOutcome`), and how it is declared (:class:`Level`).

Every level is ``run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome``. ``run`` executes on the client and
builds lazy graphs; pixel work happens when the controller computes the scene (or the outcome's ``work``) on the
cluster. A level never writes the catalogue or the job log: it returns what happened, and the client records it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from ..errors import GmsdaskError

if TYPE_CHECKING:  # the catalogue imports the configuration, which looks levels up lazily
    from ..catalog import SceneRecord
    from ..config import JobConfig

__all__ = ["LevelContext", "LevelOutcome", "TileOutput", "Level", "ReferenceSelector", "LevelCanceled",
           "product_stub"]

Status = Literal["done", "skipped"]


class LevelCanceled(GmsdaskError):
    """A level saw the job's stop request (``LevelContext.cancel_requested``) and dropped its uncommitted work."""


def _never() -> bool:
    return False


@dataclass(frozen=True)
class LevelContext:
    """Everything one level may know about one scene of one job; immutable and picklable.

    Attributes
    ----------
    record
        The scene's catalogue record (product id and path, platform, acquisition time, tiles, cloud cover).
    config
        The job's configuration.
    job_id
        The catalogue job id.
    references
        ``(role, record)`` pairs of other scenes this level needs, chosen by the level's
        :attr:`Level.select_references` before the job runs (L1B: ``("coreg_reference", <record>)``).
    output_dir
        Where this scene's level products go (``<path_procdata_scenes>/job_<id>/<product_id>``).
    cancel_requested
        True once the job is asked to stop; levels with long client-side loops (L2C's writes) poll it. It lives on
        the client: a pickled context (sent to a worker) never reports a stop.
    scene_before
        ``scene_before(level_name)`` gives the lazy scene as it entered that level of this run (L2C warps a tile of
        another UTM zone straight from the scene before L2A, so it is resampled once). Client-side like
        ``cancel_requested``: None in a pickled context and where the controller offers none.
    run_levels
        The names of the levels this run of the scene goes through, in the registry's order, up to the run's
        target (``run_L1A_processing`` ... ``run_L2C_processing``), so that a level can leave out work only later
        levels use (L1A's decoded copy); empty where unknown.
    """

    record: SceneRecord
    config: JobConfig
    job_id: int
    references: tuple[tuple[str, SceneRecord], ...] = ()
    output_dir: Path = Path(".")
    cancel_requested: Callable[[], bool] = _never
    scene_before: Callable[[str], xr.DataTree] | None = None
    run_levels: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["cancel_requested"] = _never  # the stop flag is the client's (a thread event is not picklable)
        state["scene_before"] = None  # it closes over the client-side chain
        return state

    def reference(self, role: str) -> SceneRecord | None:
        """The record of the scene chosen for ``role``, or None when none was found."""
        return next((record for name, record in self.references if name == role), None)


@dataclass(frozen=True)
class TileOutput:
    """One datacube a level wrote into: the tile, the cube's path or URL, and the scene's time slot."""

    tile: str
    path: str
    time_index: int = -1


@dataclass(frozen=True)
class LevelOutcome:
    """What a level did to one scene.

    Attributes
    ----------
    scene
        The (lazy) scene after the level; the next level's input.
    status
        ``done``, or ``skipped`` with the reason in ``note`` (disabled, not applicable to this product).
    note
        One line for the catalogue and the job log.
    outputs
        Paths or URLs written.
    facts
        Small JSON-serializable results recorded in the catalogue (L1B: the shift and its reliability).
    tiles
        The datacubes written (L2C), recorded by the client.
    work
        Dask collections (delayed writes) the controller computes on the cluster with retries before the level
        counts as done; computing them must have no visible effect until ``finish`` runs.
    finish
        Called on the client with the results of ``work``; returns the final outcome (e.g. after committing a
        transaction). Not called when the job is cancelled, so uncommitted work is dropped.
    """

    scene: xr.DataTree
    status: Status = "done"
    note: str = ""
    outputs: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    tiles: tuple[TileOutput, ...] = ()
    work: tuple[Any, ...] = ()
    finish: Callable[[list[Any]], LevelOutcome] | None = None


#: ``(job_scenes, catalogue_scenes, config) -> {scene_id: [(role, record), ...]}``: the other scenes a level needs
#: for each scene of a job, chosen for the whole job at once so that choices are consistent (no two scenes
#: referencing each other). ``catalogue_scenes`` are the catalogue's scenes of the same tiles outside the job.
ReferenceSelector = Callable[[Sequence["SceneRecord"], Sequence["SceneRecord"], "JobConfig"],
                             Mapping[int, list[tuple[str, "SceneRecord"]]]]


@dataclass(frozen=True)
class Level:
    """The declaration of one processing level (the registry holds these; see :mod:`gmsdask.levels.registry`).

    Attributes
    ----------
    name
        ``L1A`` ... ``L2C`` (a plugin picks its own, e.g. ``L1D``).
    order
        Position in the chain (levels run in increasing order).
    title
        What the level does, in a few words (CLI help, docs, ``run_<name>_processing`` docstrings).
    run
        ``run(scene, ctx) -> LevelOutcome``.
    reads, adds
        What the level reads from the scene and adds to it (documentation, and the docs' level table).
    options
        The configuration options it honours.
    accuracy_layers
        The accuracy layers it produces for L2C.
    version
        Version of the implementation; a scene processed by an older version is processed again on rerun.
    select_references
        Chooses the other scenes the level needs, for a whole job at once (:data:`ReferenceSelector`), or None.
    reference_level
        The level a reference must have completed before this level runs for a scene that needs it.
    writes_scene
        Whether the level's scene can be written as a level product (``exec_<name>P`` write flag); False for
        levels whose outputs are elsewhere (L2C writes cubes).
    rebuild_when_done
        Whether a completed level is run again (without recording) to rebuild the lazy scene for the next level
        on a resumed job. False for levels with side effects (L2C).
    end_of_chain
        Called by the controller when a scene's chain ends, whatever its outcome, with the scene's context:
        removes what the level left for the later levels of the run (L1A's decoded bands). None: nothing.
    """

    name: str
    order: int
    title: str
    run: Callable[[xr.DataTree, LevelContext], LevelOutcome]
    reads: tuple[str, ...] = ()
    adds: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    accuracy_layers: tuple[str, ...] = ()
    version: str = "1"
    select_references: ReferenceSelector | None = None
    reference_level: str | None = None
    writes_scene: bool = True
    rebuild_when_done: bool = True
    end_of_chain: Callable[[LevelContext], None] | None = None


def product_stub(record: SceneRecord) -> xr.DataTree:
    """The scene handed to the first level: no data yet, only the product it will be imported from."""
    return xr.DataTree(xr.Dataset(attrs={"product_id": record.product_id, "product_path": str(record.product_path),
                                         "platform": record.platform}))
