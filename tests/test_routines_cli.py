"""``gmsdask routine ...``: the typer sub-app the main CLI mounts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gmsdask.jobs import Job
from gmsdask.jobs.cli import routine_app

from .test_routines_format import LEGACY, SEED_EXAMPLE

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GMSDASK_CRONTAB", str(tmp_path / "crontab"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def _ok(*args: str) -> str:
    result = runner.invoke(routine_app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [[], ["list"], ["show"], ["create"], ["task"], ["task", "add"], ["task", "edit"],
                                     ["task", "remove"], ["run"], ["cron"], ["cron", "enable"], ["cron", "disable"],
                                     ["cron", "remove"], ["import"]])
def test_every_command_has_help(command):
    result = runner.invoke(routine_app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_create_tasks_cron_and_list(home, tmp_path):
    _ok("create", "reunion", "--timing", "0 20 * * *", "--logs", "--nb-proc", "2")
    _ok("task", "add", "reunion", "--tile", "40KCB", "--date-max", "today", "--indices", "NDVI/NBR",
        "--remove", "l1c-new-cc80/l2a-all", "--no-compute-l2a")
    _ok("task", "add", "reunion", "--tile", "38KQE", "--inactive")
    _ok("task", "edit", "reunion", "1", "--max-clouds", "40", "--active")
    job = Job("reunion")
    assert (job.timing, job.logs, job.nb_proc) == ("0 20 * * *", True, 2)
    assert [(t.tile, t.active, t.max_clouds) for t in job.task_list] == [("40KCB", True, 100), ("38KQE", True, 40)]
    assert [str(item) for item in job.task_list[0].remove] == ["l1c-new-cc80", "l2a-all"]
    _ok("task", "remove", "reunion", "1")
    assert "40KCB" in _ok("show", "reunion") and "38KQE" not in _ok("show", "reunion")
    assert "enabled" in _ok("cron", "enable", "reunion")
    assert "reunion" in (tmp_path / "crontab").read_text()
    listing = _ok("list")
    assert "reunion" in listing and "enabled" in listing and "0 20 * * *" in listing
    _ok("cron", "disable", "reunion")
    assert "disabled" in _ok("list")
    _ok("cron", "remove", "reunion")
    assert "absent" in _ok("list")


def test_bad_input_gives_named_errors_and_exit_code_2(home, tmp_path):
    result = runner.invoke(routine_app, ["create", "../x"])
    assert result.exit_code == 2 and "routine id '../x'" in result.output
    _ok("create", "a")
    result = runner.invoke(routine_app, ["task", "add", "a", "--tile", "40KCB", "--cloudmasks", "CM009"])
    assert result.exit_code == 2 and "unknown cloud mask 'CM009'" in result.output
    bad = tmp_path / "job_bad.cfg"
    bad.write_text(SEED_EXAMPLE.replace("0 20 * * *", "0 20 * *").replace("EVI/", "XYZ/"))
    result = runner.invoke(routine_app, ["import", str(bad)])
    assert result.exit_code == 2 and "line 2, timing" in result.output and "line 12, indices" in result.output
    assert not (home / "config" / "jobs" / "job_bad.cfg").exists()


def test_import_keeps_the_sen2chain_file_unchanged(home, tmp_path):
    source = tmp_path / "job_old.cfg"
    source.write_text(LEGACY)
    assert "2 task(s)" in _ok("import", str(source))
    assert (home / "config" / "jobs" / "job_old.cfg").read_text() == LEGACY
    assert runner.invoke(routine_app, ["import", str(source)]).exit_code == 2  # exists: needs --force
    _ok("import", str(source), "--jid", "copy")
    assert [t.active for t in Job("copy").task_list] == [True, False]


def test_run_of_a_routine_without_products_reports_empty_tasks(home):
    _ok("create", "empty")
    _ok("task", "add", "empty", "--tile", "31UFS", "--download", "l2a")
    output = _ok("run", "empty")
    assert "31UFS" in output and "empty" in output and "catalogue jobs none" in output
