"""The progress bar of a running job: one step per scene and level, with live done/skipped/failed counts."""

from __future__ import annotations

import threading
from collections import Counter

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["JobProgress"]


class JobProgress:
    """A rich progress bar over ``scenes x levels`` steps; ``level_finished`` is called from scene threads."""

    def __init__(self, job_id: int, target: str, n_scenes: int, n_levels: int) -> None:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[state]}"), TimeElapsedColumn())
        self._progress = Progress(*columns, transient=False)
        self._task = self._progress.add_task(f"job {job_id} -> {target}", total=n_scenes * n_levels, state="")
        self._n_levels = n_levels
        self._counts: Counter[str] = Counter()
        self._steps_of_scene: Counter[int] = Counter()
        self._lock = threading.Lock()

    def __enter__(self) -> "JobProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(*exc_info)

    def level_finished(self, scene_id: int, level: str, status: str) -> None:
        """One level of one scene ended with ``status`` (``running`` is ignored)."""
        if status == "running":
            return
        with self._lock:
            self._counts[status] += 1
            self._steps_of_scene[scene_id] += 1
            state = ", ".join(f"{key} {value}" for key, value in sorted(self._counts.items()))
        self._progress.update(self._task, advance=1, state=state)

    def scene_finished(self, scene_id: int) -> None:
        """A scene left the chain (finished, failed or cancelled): its remaining steps count as passed."""
        with self._lock:
            remaining = max(self._n_levels - self._steps_of_scene[scene_id], 0)
            self._steps_of_scene[scene_id] = self._n_levels
        if remaining:
            self._progress.update(self._task, advance=remaining)
