"""A real multi-process Dask cluster for tests, started the way users start one.

``dask scheduler`` and ``dask worker`` run as subprocesses of the test on 127.0.0.1 only (each in its own process
group, so that stopping one also stops the nanny's worker process). Workers import gmsdask from this checkout
(``PYTHONPATH``), so they run the code under test. Everything is stopped when the context ends, also when a
test fails. ``distributed.LocalCluster`` is not used on purpose: its workers share the test's process tree and
configuration, while these tests kill single worker processes and run jobs through ``scheduler_address``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client

REPO = Path(__file__).resolve().parents[1]
_DASK = Path(sys.executable).with_name("dask")
_START_TIMEOUT_S = 120.0


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of processes that must import gmsdask (and ``tests``) from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    # one thread per process: the test machine has few cores and the workers have one thread each
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


@dataclass
class RealCluster:
    """A running scheduler and its worker processes (see :func:`real_cluster`)."""

    scheduler_address: str
    directory: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def client(self) -> Client:
        """A client that is NOT the process's default (a job must find the cluster via ``scheduler_address``)."""
        return Client(self.scheduler_address, set_as_default=False, timeout=30)

    def worker_pids(self) -> dict[str, int]:
        """``{worker address: pid of the worker process}`` of the workers registered now."""
        with self.client() as client:
            return client.run(os.getpid) if client.scheduler_info()["workers"] else {}

    def wait_for_workers(self, n_workers: int, timeout: float = _START_TIMEOUT_S) -> dict[str, int]:
        """Block until ``n_workers`` workers are registered; their pids."""
        deadline = time.monotonic() + timeout
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"cluster process {process.args} exited with {process.returncode}; "
                                       f"logs in {self.directory}")
            pids = self.worker_pids()
            if len(pids) >= n_workers:
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(pids)} of {n_workers} Dask workers registered after {timeout} s; "
                                   f"logs in {self.directory}")
            time.sleep(0.2)


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=log.parent)


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process's group (nanny and worker), SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a worker left behind by a dead nanny
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _scheduler_address(scheduler_file: Path, scheduler: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if scheduler.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {scheduler.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            address = json.loads(scheduler_file.read_text())["address"]
            if address:
                return address
        if time.monotonic() > deadline:
            raise TimeoutError(f"dask scheduler wrote no {scheduler_file} in {_START_TIMEOUT_S} s")
        time.sleep(0.1)


@contextlib.contextmanager
def real_cluster(directory: Path, n_workers: int = 2, memory_limit: str = "1.5GiB",
                 env: dict[str, str] | None = None) -> Iterator[RealCluster]:
    """``dask scheduler`` plus ``n_workers`` ``dask worker`` processes (one thread, nanny) on 127.0.0.1, with
    ``env`` added to their environment.

    Yields once every worker is registered; stops all of them on exit, whatever happened.
    """
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    env = subprocess_env(**(env or {}))
    cluster = RealCluster("", directory)
    try:
        log = directory / "scheduler.log"
        scheduler = _start([str(_DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                            "--scheduler-file", str(scheduler_file)], log, env)
        cluster.processes.append(scheduler)
        cluster.scheduler_address = _scheduler_address(scheduler_file, scheduler, log)
        for index in range(n_workers):
            cluster.processes.append(_start(
                [str(_DASK), "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                 "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--memory-limit", memory_limit,
                 "--death-timeout", "60", "--local-directory", str(directory / f"worker{index}")],
                directory / f"worker{index}.log", env))
        cluster.wait_for_workers(n_workers)
        yield cluster
    finally:
        for process in reversed(cluster.processes):
            _stop(process)
