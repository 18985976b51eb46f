"""Shared helpers of the benchmarks: timing, result files, and where the real data is."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GMSDASK_TEST_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"


def best_of(function: Callable[[], Any], repeat: int = 3) -> float:
    """Fastest of ``repeat`` wall-clock runs, seconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def report(name: str, results: dict[str, Any]) -> dict[str, Any]:
    """Print and store one benchmark's results as ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    print(f"== {name}")
    for key, value in results.items():
        print(f"  {key:<40} {value:.3f}" if isinstance(value, float) else f"  {key:<40} {value}")
    return results


class PeakMemory:
    """Peak resident memory of this process above its level at start, sampled in a thread."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.process = psutil.Process()

    def __enter__(self) -> "PeakMemory":
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return (self.peak - self.start) / 2**20
