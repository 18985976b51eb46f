"""Running jobs whose controller died (owner, heartbeat, interrupted), and level implementation versions."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time

import pytest

from gmsdask.catalog import Catalog, JobOwner
from gmsdask.errors import CatalogError, JobError

from .fixtures.catalog_scenes import make_job


def die_while_running(url: str, job_id: int, scene_id: int) -> None:
    """A controller that starts a job and dies without a word (no finally, no atexit)."""
    catalog = Catalog(url, create=False)
    catalog.set_job_status(job_id, "running")
    catalog.record_level(job_id, scene_id, "L1A", "running")
    os._exit(0)


def test_a_running_job_records_its_owner_and_heartbeat(catalog: Catalog) -> None:
    job_id, _ = make_job(catalog, 1)
    assert catalog.job(job_id).owner is None
    catalog.set_job_status(job_id, "running")
    job = catalog.job(job_id)
    assert job.owner == JobOwner(socket.gethostname(), os.getpid()) and job.heartbeat_at is not None
    first_beat = job.heartbeat_at
    assert catalog.heartbeat(job_id) is True
    assert catalog.job(job_id).heartbeat_at > first_beat
    liveness = catalog.job_liveness(job_id)
    assert (liveness.status, liveness.interrupted, liveness.reason) == ("running", False, "")
    catalog.set_job_status(job_id, "canceled")
    assert catalog.job(job_id).owner is None
    assert catalog.heartbeat(job_id) is False                           # nothing to beat for: stop
    with pytest.raises(CatalogError, match="job with id 4242"):
        catalog.heartbeat(4242)


def test_keep_alive_beats_until_the_job_is_taken_away(catalog: Catalog) -> None:
    job_id, _ = make_job(catalog, 1)
    catalog.set_job_status(job_id, "running")
    first_beat = catalog.job(job_id).heartbeat_at
    with catalog.keep_alive(job_id, interval_s=0.05) as lost:
        deadline = time.monotonic() + 30
        while catalog.job(job_id).heartbeat_at == first_beat and time.monotonic() < deadline:
            time.sleep(0.02)
        assert catalog.job(job_id).heartbeat_at > first_beat and not lost.is_set()
        catalog.set_job_status(job_id, "canceled")                       # e.g. `gmsdask job cancel` elsewhere
        assert lost.wait(timeout=30)
    assert catalog.job(job_id).status == "canceled"


def test_a_job_whose_controller_died_is_interrupted_and_can_be_resumed(catalog: Catalog) -> None:
    job_id, [scene_id] = make_job(catalog, 1)
    dead = multiprocessing.get_context("fork").Process(target=die_while_running,
                                                       args=(catalog.url, job_id, scene_id))
    dead.start()
    dead.join(timeout=120)
    assert dead.exitcode == 0
    dead_pid = dead.pid
    assert catalog.job(job_id).status == "running"                      # what the catalogue still says
    liveness = catalog.job_liveness(job_id)
    assert liveness.status == "interrupted" and liveness.stored_status == "running"
    assert liveness.owner == JobOwner(socket.gethostname(), dead_pid)
    assert liveness.reason == f"its owner process {socket.gethostname()}:{dead_pid} is gone"
    assert [job.id for job in catalog.jobs("interrupted")] == [job_id]
    before = catalog.claim_job(job_id)                                  # the next run takes it over
    assert before.interrupted
    assert catalog.job(job_id).owner == JobOwner.this_process()
    assert catalog.job_liveness(job_id).status == "running" and catalog.jobs("interrupted") == []


def test_a_job_with_a_stale_heartbeat_is_interrupted_on_any_host(catalog: Catalog) -> None:
    job_id, _ = make_job(catalog, 1)
    elsewhere = JobOwner("another-machine.example.org", os.getpid())     # its pid cannot be checked from here
    catalog.set_job_status(job_id, "running", owner=elsewhere)
    assert catalog.job_liveness(job_id, stale_after_s=60).status == "running"
    stale = catalog.job_liveness(job_id, stale_after_s=0)
    assert stale.interrupted and "last heartbeat was" in stale.reason and "another-machine" in stale.reason
    assert catalog.heartbeat(job_id, owner=JobOwner.this_process()) is False   # not the owner
    assert catalog.heartbeat(job_id, owner=elsewhere) is True
    beat = catalog.job(job_id).heartbeat_at
    catalog.record_level(job_id, catalog.job(job_id).scene_ids[0], "L1A", "running")   # progress is a heartbeat too
    assert catalog.job(job_id).heartbeat_at > beat


def test_a_job_running_in_a_live_process_cannot_be_claimed(catalog: Catalog) -> None:
    job_id, _ = make_job(catalog, 1)
    parent = JobOwner(socket.gethostname(), os.getppid())                # alive, with a fresh heartbeat
    catalog.set_job_status(job_id, "running", owner=parent)
    with pytest.raises(JobError, match=f"job {job_id} is running in process {parent}"):
        catalog.claim_job(job_id)
    assert catalog.job(job_id).owner == parent
    catalog.claim_job(job_id, owner=parent)                              # its own owner may claim it again
    assert catalog.finish_job(job_id) == "finished" and catalog.job(job_id).owner is None


def test_levels_record_their_implementation_version_note_and_facts(catalog: Catalog) -> None:
    job_id, [first, second] = make_job(catalog, 2)
    for scene_id in (first, second):
        catalog.record_level(job_id, scene_id, "L1A", "done", version="1")
        catalog.record_level(job_id, scene_id, "L1B", "done", version="1", facts={"shift_x_m": 3.5, "reliability": 0.9})
        catalog.record_level(job_id, scene_id, "L1C", "skipped", version="1", note="L1C: skip_ac is set")
    catalog.record_level(job_id, second, "L1B", "done", version="2")
    catalog.record_level(job_id, second, "L2A", "done")                 # no version recorded
    records = {(r.scene_id, r.level): r for r in catalog.level_records(job_id)}
    assert records[(first, "L1B")].facts == {"shift_x_m": 3.5, "reliability": 0.9}
    assert records[(second, "L1B")].facts is None and records[(second, "L1B")].version == "2"
    assert records[(first, "L1C")].note == "L1C: skip_ac is set"

    outdated = catalog.outdated_levels({"L1B": "2", "L1C": "1", "L2A": "1"})
    assert [(r.scene_id, r.level, r.version) for r in outdated] == [(first, "L1B", "1"), (second, "L2A", "")]
    assert catalog.outdated_levels({"L1B": "2"}, job_id=job_id) == outdated[:1]
    assert catalog.outdated_levels({}) == []
    # a resume with the current versions starts at the first outdated level
    assert catalog.last_completed_level(job_id, first) == "L1C"
    assert catalog.last_completed_level(job_id, first, versions={"L1B": "2"}) == "L1A"
    assert catalog.last_completed_level(job_id, second, versions={"L1B": "2", "L1C": "1"}) == "L2A"
    assert catalog.last_completed_level(job_id, second, versions={"L1B": "2", "L2A": "1"}) == "L1C"
    with pytest.raises(CatalogError, match="L1B facts of scene .* are not JSON"):
        catalog.record_level(job_id, first, "L1B", "done", facts={"shift": object()})


def test_pending_and_canceled_level_states(catalog: Catalog) -> None:
    job_id, [scene_id] = make_job(catalog, 1)
    catalog.record_level(job_id, scene_id, "L1A", "done")
    catalog.record_level(job_id, scene_id, "L1B", "pending", note="to rerun")
    catalog.record_level(job_id, scene_id, "L1C", "canceled")
    assert catalog.level_status(job_id, scene_id) == {"L1A": "done", "L1B": "pending", "L1C": "canceled"}
    assert catalog.last_completed_level(job_id, scene_id) == "L1A"
    assert catalog.job(job_id).statistics["L1B"] == {"done": 0, "failed": 0, "skipped": 0}
