"""The ``gmsdask`` command: archive add, job create, run, status, and --help of each."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from gmsdask.catalog import Catalog
from gmsdask.cli import app
from gmsdask.io.cube import open_cube

from .conftest import data_path

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["demo"], ["archive", "add"], ["job", "create"], ["run"], ["status"]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_archive_job_run_status_end_to_end(tmp_path):
    config = tmp_path / "job.toml"
    config.write_text(f'db_url = "sqlite:///{tmp_path / "catalog.sqlite"}"\n'
                      f'path_procdata_MGRS = "{tmp_path / "cubes"}"\npath_job_logs = "{tmp_path / "logs"}"\n'
                      "target_gsd = 3660.0\nmgrs_pixel_buffer = 0\ntiling_block_size_XY = [64, 64]\n")
    product = data_path("landsat", "collection1", "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz")
    added = runner.invoke(app, ["archive", "add", str(product), "--config", str(config)])
    assert added.exit_code == 0, added.output
    assert "catalogued 1 scene" in added.output
    created = runner.invoke(app, ["job", "create", "--max-cloud", "95", "--comment", "cli test",
                                  "--config", str(config)])
    assert created.exit_code == 0, created.output
    job_id = int(re.search(r"created job (\d+)", created.output).group(1))
    ran = runner.invoke(app, ["run", str(job_id), "--config", str(config), "--cpus", "1"])
    assert ran.exit_code == 0, ran.output
    assert "finished" in ran.output and "L2C" in ran.output
    status = runner.invoke(app, ["status", str(job_id), "--config", str(config)])
    assert status.exit_code == 0 and "finished" in status.output and "L2A" in status.output
    written = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}").tiles_written(job_id)
    assert written and all(open_cube(t.path).sizes["time"] == 1 for t in written)
    assert all(f"cube {t.tile}" in ran.output for t in written)  # the run prints the cubes it wrote


def test_errors_are_reported_with_the_culprit(tmp_path):
    config = tmp_path / "job.toml"
    config.write_text(f'db_url = "sqlite:///{tmp_path / "catalog.sqlite"}"\n')
    no_catalogue = runner.invoke(app, ["status", "99", "--config", str(config)])
    # rich wraps the message at the console's width, so where its lines break depends on the path's length
    assert no_catalogue.exit_code == 2 and "does not exist" in " ".join(no_catalogue.output.split())
    assert not (tmp_path / "catalog.sqlite").exists()  # a read command never creates a catalogue
    Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}").close()
    missing = runner.invoke(app, ["status", "99", "--config", str(config)])
    assert missing.exit_code == 2 and "99" in missing.output
    bad = runner.invoke(app, ["archive", "add", str(tmp_path / "nothing_here"), "--config", str(config)])
    # a path longer than the console is folded anywhere, even inside a name: compare without the white space
    assert bad.exit_code == 1 and "nothing_here:nosuchfileorfolder" in "".join(bad.output.split())
    typo = runner.invoke(app, ["status", "1", "--config", str(config), "--db-url", "sqlite:///:memory:"])
    assert typo.exit_code == 2


def test_unknown_level_names_the_allowed_levels(tmp_path):
    result = runner.invoke(app, ["run", "1", "--level", "L3A", "--db-url", f"sqlite:///{tmp_path / 'c.sqlite'}"])
    assert result.exit_code == 2 and "L3A" in result.output and "L1A, L1B" in result.output


def test_job_create_takes_days_and_says_which_filter_matched_nothing(tmp_path):
    config = tmp_path / "job.toml"
    config.write_text(f'db_url = "sqlite:///{tmp_path / "catalog.sqlite"}"\n')
    product = data_path("landsat", "collection1", "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz")
    assert runner.invoke(app, ["archive", "add", str(product), "--config", str(config)]).exit_code == 0
    day = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}").scenes()[0].acquisition_time.strftime("%Y-%m-%d")
    # --end is a day, and that whole day is included (the scene was acquired during it, not at midnight)
    created = runner.invoke(app, ["job", "create", "--start", day, "--end", day, "--config", str(config)])
    assert created.exit_code == 0 and "with 1 scene" in created.output, created.output
    reversed_range = runner.invoke(app, ["job", "create", "--start", "2016-02-01", "--end", "2016-01-01",
                                         "--config", str(config)])
    assert reversed_range.exit_code == 2 and "before --start" in reversed_range.output
    cloud = runner.invoke(app, ["job", "create", "--max-cloud", "140", "--config", str(config)])
    assert cloud.exit_code == 2 and "between 0 and 100" in cloud.output
    nothing = runner.invoke(app, ["job", "create", "--tile", "33UUU", "--config", str(config)])
    assert nothing.exit_code == 1 and "--tile 33UUU" in nothing.output
    listed = runner.invoke(app, ["job", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "pending" in listed.output
    scenes = runner.invoke(app, ["archive", "list", "--config", str(config)])
    assert scenes.exit_code == 0 and "LANDSAT_8" in scenes.output


def test_demo_refuses_a_folder_that_is_not_a_previous_demo(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "thesis.tex").write_text("\\documentclass{article}")
    refused = runner.invoke(app, ["demo", "--workdir", str(precious)])
    assert refused.exit_code == 2 and "not a previous demo" in refused.output
    assert (precious / "thesis.tex").read_text() == "\\documentclass{article}"


def test_a_job_whose_controller_died_shows_as_interrupted(tmp_path):
    from gmsdask import set_config
    from gmsdask.catalog.records import JobOwner

    config = tmp_path / "job.toml"
    config.write_text(f'db_url = "sqlite:///{tmp_path / "catalog.sqlite"}"\n')
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    scene_ids = catalog.add_products([data_path("landsat", "collection1",
                                                "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz")])
    job_id = catalog.create_job(scene_ids, set_config())
    dead = JobOwner(JobOwner.this_process().host, 2**22 + 7)  # no such process on this host
    catalog.set_job_status(job_id, "running", owner=dead)
    shown = runner.invoke(app, ["status", str(job_id), "--config", str(config)])
    assert shown.exit_code == 0 and "interrupted" in shown.output, shown.output
