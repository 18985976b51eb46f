"""Routines in cron: enable, disable, remove on a crontab file (never the user's crontab)."""

from __future__ import annotations

import pytest
from crontab import CronTab

from gmsdask.jobs import Job, Jobs, RoutineConfigError
from gmsdask.jobs.cron import CronUnavailableError


def _state(tabfile, jid):
    row = Jobs(crontab=tabfile).set_index("job_id").loc[jid]
    return row["cron_status"], row["cron_timing"]


def test_cron_round_trip_on_a_tabfile(tmp_path, monkeypatch):
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path / "home"))
    tabfile = tmp_path / "crontab"
    tabfile.write_text("# someone else's entry stays\n5 4 * * * /usr/bin/true # other\n")
    job = Job("reunion", crontab=tabfile)
    job.timing = "0 20 * * *"
    job.task_add({"tile": "40KCB"})
    assert job.cron_status == "absent" and job.cron_timing is None
    job.cron_enable()
    assert (job.cron_status, job.cron_timing) == ("enabled", "0 20 * * *")
    assert _state(tabfile, "reunion") == ("enabled", "0 20 * * *")
    (entry,) = CronTab(tabfile=str(tabfile)).find_comment("gmsdask routine reunion")
    assert entry.command.endswith("routine run reunion")
    assert f"GMSDASK_HOME={tmp_path / 'home'}" in entry.command
    job.timing = "15 3 * * 1-5"
    job.cron_enable()  # updates, never duplicates
    assert _state(tabfile, "reunion") == ("enabled", "15 3 * * 1-5")
    assert len(list(CronTab(tabfile=str(tabfile)).find_comment("gmsdask routine reunion"))) == 1
    job.cron_disable()
    assert _state(tabfile, "reunion") == ("disabled", "15 3 * * 1-5")
    assert "#15 3 * * 1-5" in tabfile.read_text().replace("# ", "#")
    job.cron_remove()
    assert _state(tabfile, "reunion") == ("absent", None)
    assert "/usr/bin/true # other" in tabfile.read_text()
    assert "reunion" not in tabfile.read_text()


def test_invalid_timing_never_reaches_the_crontab(tmp_path, monkeypatch):
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path))
    tabfile = tmp_path / "crontab"
    job = Job("x", crontab=tabfile)
    with pytest.raises(RoutineConfigError, match="timing"):
        job.timing = "61 * * * *"
    assert job.timing == "0 0 * * *"
    job.cron_enable()
    assert job.cron_timing == "0 0 * * *"


def test_an_unreadable_crontab_is_reported_not_fatal_for_listings(tmp_path, monkeypatch):
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path))
    folder_as_tabfile = tmp_path / "not_a_file"
    folder_as_tabfile.mkdir()
    job = Job("x", crontab=folder_as_tabfile)
    job.save()
    assert job.cron_status == "unavailable"
    assert Jobs(crontab=folder_as_tabfile)["cron_status"].tolist() == ["unavailable"]
    with pytest.raises(CronUnavailableError, match="not_a_file.*GMSDASK_CRONTAB"):
        job.cron_enable()
    Jobs(crontab=folder_as_tabfile).remove("x")  # files go even when cron cannot be edited
    assert Jobs(crontab=folder_as_tabfile).list == []
