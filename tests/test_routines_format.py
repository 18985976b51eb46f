"""Routines (Sen2Chain jobs): the job_<jid>.cfg format, typed values, validation and the Job/Jobs API."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from gmsdask.jobs import Job, Jobs, RoutineConfigError, RoutineIdError
from gmsdask.jobs.cfg_format import read_routine, write_routine
from gmsdask.jobs.model import DayBound, RemoveItem

# The example job file of Sen2Chain's documentation (seed 001), verbatim.
SEED_EXAMPLE = """\
logs = True
timing = 0 20 * * *
provider = cop_dataspace
tries = 2
sleep = 4
nb_proc = 18
copy_L2A_sideproducts = False
clean_before = True
clean_after = True

tile;date_min;date_max;max_clouds;provider;filter_max_pb;download;compute_l2a;cloudmasks;indices;remove;comments
40KCB;;today;80;cop_dataspace;True;l2a;True;CM004-CSH1-CMP1-CHP1-TCI1-ITER1;NDVI/NDWIGAO/MNDWI/NDRE/IRECI/BIGR/BIRNIR/BIBG/EVI/NBR;l2a;Reunion
"""

# An older Sen2Chain file: comment header, legacy columns l1c/l2a/cloudmask, a task commented out with '!'.
LEGACY = """\
# logs: True | False
# timing: in cron format
logs = False
timing = 0 0 * * *
tries = 1
sleep = 0
nb_proc = 8
copy_l2a_sideproducts = False
clean_before = False
clean_after = False

tile;date_min;date_max;max_clouds;l1c;l2a;cloudmask;indices;remove;comments
40KCB;2020-01-01;2020-12-31;60;True;True;CM001/CM003-PRB1-ITER5;All;l1c-new-cc80/l2a-all;Reunion
!38KQE;today-10;;;False;False;False;False;False;Mayotte
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path))
    monkeypatch.setenv("GMSDASK_CRONTAB", str(tmp_path / "crontab"))
    return tmp_path


def test_seed_example_reads_typed_and_saves_back_equal(home):
    routine = read_routine(SEED_EXAMPLE)
    assert write_routine(routine) == SEED_EXAMPLE
    s = routine.settings
    assert (s.logs, s.timing, s.provider, s.tries, s.sleep, s.nb_proc) == (True, "0 20 * * *", "cop_dataspace", 2, 4, 18)
    assert (s.copy_l2a_sideproducts, s.clean_before, s.clean_after, s.process_by_line) == (False, True, True, None)
    (task,) = routine.tasks
    assert task.tile == "40KCB" and task.active
    assert task.date_min == DayBound(date(2015, 1, 1)) and task.date_max == DayBound(None, 0)
    assert task.dates(date(2024, 3, 1)) == (date(2015, 1, 1), date(2024, 3, 1))  # 'today' includes today
    assert (task.max_clouds, task.provider, task.filter_max_pb, task.download, task.compute_l2a) == (
        80, "cop_dataspace", True, "l2a", True)
    assert task.cloudmasks == ("CM004-CSH1-CMP1-CHP1-TCI1-ITER1",)
    assert task.indices[:3] == ("NDVI", "NDWIGAO", "MNDWI") and len(task.indices) == 10
    assert task.remove == (RemoveItem("l2a", "new"),) and task.comments == "Reunion"
    # through a Job and a file on disk: still equal
    path = home / "config" / "jobs" / "job_seed.cfg"
    path.parent.mkdir(parents=True)
    path.write_text(SEED_EXAMPLE)
    job = Job("seed")
    assert job.logs is True and job.nb_proc == 18
    job.save()
    assert path.read_text() == SEED_EXAMPLE


def test_legacy_columns_and_commented_task_read_and_save_with_todays_names(home):
    routine = read_routine(LEGACY)
    first, second = routine.tasks
    assert (first.download, first.compute_l2a, first.cloudmasks) == ("l1c", True, ("CM001", "CM003-PRB1-ITER5"))
    assert first.indices == ("All",) and len(first.index_names(("A", "B"))) == 2
    assert first.remove == (RemoveItem("l1c", "new", 80.0), RemoveItem("l2a", "all"))
    assert not second.active and second.tile == "38KQE"
    assert second.date_min == DayBound(None, 10) and second.dates(date(2024, 3, 11)) == (date(2024, 3, 1), None)
    assert (second.download, second.compute_l2a, second.cloudmasks, second.indices, second.remove) == (
        None, False, (), (), ())
    assert second.max_clouds == 100  # empty = 100
    text = write_routine(routine)
    assert text.startswith("# logs: True | False\n# timing: in cron format\nlogs = False\n")
    header = "tile;date_min;date_max;max_clouds;provider;filter_max_pb;download;compute_l2a;cloudmasks;indices;remove;comments"
    assert header in text
    assert "\n!38KQE;today-10;" in text
    assert read_routine(text) == routine  # the upgraded file means the same


def test_false_strings_are_false_everywhere():
    text = SEED_EXAMPLE.replace("clean_before = True", "clean_before = False").replace(
        ";True;l2a;True;", ";False;False;False;")
    routine = read_routine(text)
    assert routine.settings.clean_before is False
    (task,) = routine.tasks
    assert (task.filter_max_pb, task.download, task.compute_l2a) == (False, None, False)


def test_every_invalid_value_is_listed_with_its_line_in_one_error():
    bad = SEED_EXAMPLE.replace("timing = 0 20 * * *", "timing = 0 25 * *").replace(
        "40KCB;;today;80", "40KCB;2020-13-01;today;80").replace("NDVI/NDWIGAO", "NDVI/NDXX").replace(
        "CM004-CSH1-CMP1-CHP1-TCI1-ITER1", "CM005") + "99ZZZ;;;;;;;;;;l1c-old;x\n" + (
        "29UNU;2022-02-01;2022-01-31;;;;;;;;;x\n")
    with pytest.raises(RoutineConfigError) as caught:
        read_routine(bad, "job_bad.cfg")
    problems = {(p.where, p.field) for p in caught.value.problems}
    assert problems == {("line 2", "timing"), ("line 12", "date_min"), ("line 12", "cloudmasks"),
                        ("line 12", "indices"), ("line 13", "tile"), ("line 13", "remove"),
                        ("line 14", "date_min")}
    message = str(caught.value)
    assert message.startswith("job_bad.cfg: 7 invalid value(s)")
    assert "'NDXX'" in message and "'CM005'" in message and "'l1c-old'" in message and "'0 25 * *'" in message
    assert "date_min 2022-02-01 is after date_max 2022-01-31" in message


@pytest.mark.parametrize("jid", ["../x", "/abs/path", "", "a/b", "a b", "..", "x.cfg"])
def test_unsafe_job_ids_raise_a_named_error_and_touch_nothing(home, jid):
    with pytest.raises(RoutineIdError, match="routine id"):
        Job(jid)
    assert not (home / "config").exists() and not (home.parent / "x.cfg").exists()


def test_job_api_add_edit_remove_save_and_list(home):
    job = Job("reunion")
    assert job.task_add() == 0  # Sen2Chain's template task
    job.task_add(pd.DataFrame([{"tile": "T29UNU", "date_min": date(2022, 1, 1), "indices": ["MNDWI", "BIGR"]}]))
    job.task_edit(0, tile="38KQE", remove=["l1c-new-cc80", "l2a-all"], active=False)
    job.task_edit(1, max_clouds=60, cloudmasks="CM001/CM004-CSH1-CMP1-CHP1-TCI1-ITER0")
    job.timing = "30 2 * * 1"
    job.logs = "False"
    job.process_by_line = 5
    job.process_by_line = None  # back to the whole table at once
    with pytest.raises(RoutineConfigError, match="NOPE"):
        job.task_edit(1, indices="NDVI/NOPE")
    with pytest.raises(RoutineConfigError, match="cron"):
        job.timing = "every day"
    job.save()
    again = Job("reunion")
    first, second = again.task_list
    assert (first.tile, first.active) == ("38KQE", False)
    assert first.remove == (RemoveItem("l1c", "new", 80.0), RemoveItem("l2a", "all"))  # edited remove survives
    assert (second.tile, second.date_min, second.max_clouds, second.indices) == (
        "29UNU", DayBound(date(2022, 1, 1)), 60, ("MNDWI", "BIGR"))
    assert second.cloudmasks == ("CM001", "CM004-CSH1-CMP1-CHP1-TCI1-ITER0")
    assert (again.timing, again.logs, again.process_by_line) == ("30 2 * * 1", False, None)
    assert "process_by_line =" not in again.config_file.read_text()
    assert list(again.tasks["remove"]) == ["l1c-new-cc80/l2a-all", ""]
    again.task_remove(0)
    assert [t.tile for t in again.task_list] == ["29UNU"]
    Job("other").save()
    jobs = Jobs()
    assert isinstance(jobs, pd.DataFrame) and list(jobs.columns) == [
        "job_id", "config_file", "python_script", "logging", "timing", "cron_status", "cron_timing"]
    assert jobs.list == ["other", "reunion"]
    assert jobs.loc[1].tolist() == ["reunion", True, False, False, "30 2 * * 1", "absent", None]
    jobs.remove("other")
    assert Jobs().list == ["reunion"]


def test_a_broken_file_is_listed_and_does_not_stop_the_others(home):
    folder = home / "config" / "jobs"
    folder.mkdir(parents=True)
    (folder / "job_bad.cfg").write_text(SEED_EXAMPLE.replace("NDVI/", "NOPE/"))
    Job("good").save()
    assert Jobs().list == ["bad", "good"]
    with pytest.raises(RoutineConfigError, match="line 12, indices"):
        Job("bad")
