"""The pieces of scene tasks that need no cluster (the tasks themselves run on the real cluster of
``test_cluster_faults.py``): product sizes, failures as picklable reports, the synchronous scheduler's scope."""

from __future__ import annotations

import pickle
import threading

import dask
import dask.array as da
import pytest

from gmsdask.catalog import ErrorReport
from gmsdask.controller.scene_task import _synchronous_dask, product_megabytes
from gmsdask.errors import ProcessingError


def test_product_size_counts_every_file_of_a_folder_and_an_archive_as_it_is(tmp_path):
    folder = tmp_path / "S2B_MSIL1C_X.SAFE"
    (folder / "GRANULE" / "IMG_DATA").mkdir(parents=True)
    (folder / "MTD_MSIL1C.xml").write_bytes(b"x" * 250_000)
    (folder / "GRANULE" / "IMG_DATA" / "B01.jp2").write_bytes(b"x" * 1_750_000)
    (folder / "GRANULE" / "IMG_DATA" / "B02.jp2").symlink_to(tmp_path / "missing.jp2")  # a broken link: 0
    assert product_megabytes(folder) == pytest.approx(2.0)
    archive = tmp_path / "LC08_X.tar"
    archive.write_bytes(b"x" * 3_000_000)
    assert product_megabytes(archive) == pytest.approx(3.0)


def _raise_named() -> None:
    raise ProcessingError("S2B_X", "L1C", "a band file is truncated")


def test_an_error_report_keeps_type_message_and_traceback_through_pickling():
    with pytest.raises(ProcessingError) as caught:
        _raise_named()
    # the report is plain text: it reaches the client whole whatever the exception's class pickles like
    report = pickle.loads(pickle.dumps(ErrorReport.of(caught.value)))
    assert report.type_name == "ProcessingError"
    assert report.message == "S2B_X: L1C failed: a band file is truncated"
    assert "_raise_named" in report.traceback and "raise ProcessingError" in report.traceback
    assert ErrorReport.of(report) is report


def test_scene_tasks_compute_synchronously_and_restore_the_scheduler_when_the_last_ends():
    array = da.ones((4, 4), chunks=2)
    threads: set[str] = set()

    def record(block):
        threads.add(threading.current_thread().name)
        return block

    with dask.config.set(scheduler="threads"):
        with _synchronous_dask():
            with _synchronous_dask():  # a second task of the same worker process
                assert dask.config.get("scheduler") == "sync"
            assert dask.config.get("scheduler") == "sync"  # the first task still runs
            assert float(array.map_blocks(record).sum().compute()) == 16.0
        assert dask.config.get("scheduler") == "threads"
    assert threads == {threading.current_thread().name}
