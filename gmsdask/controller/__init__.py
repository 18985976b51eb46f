"""Running jobs: the GeoMultiSens ``ProcessController`` on a Dask cluster."""

from .process_controller import JobSummary, ProcessController
from .scene_chain import SceneResult

__all__ = ["ProcessController", "SceneResult", "JobSummary"]
