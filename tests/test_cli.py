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
    assert no_catalogue.exit_code == 2 and "does not exist" in no_catalogue.output
    assert not (tmp_path / "catalog.sqlite").exists()  # a read command never creates a catalogue
    Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}").close()
    missing = runner.invoke(app, ["status", "99", "--config", str(config)])
    assert missing.exit_code == 2 and "99" in missing.output
    bad = runner.invoke(app, ["archive", "add", str(tmp_path / "nothing_here"), "--config", str(config)])
    assert bad.exit_code == 1 and "nothing_here: no such file or folder" in bad.output
    typo = runner.invoke(app, ["status", "1", "--config", str(config), "--db-url", "sqlite:///:memory:"])
    assert typo.exit_code == 2


def test_unknown_level_names_the_allowed_levels(tmp_path):
    result = runner.invoke(app, ["run", "1", "--level", "L3A", "--db-url", f"sqlite:///{tmp_path / 'c.sqlite'}"])
    assert result.exit_code == 2 and "L3A" in result.output and "L1A, L1B" in result.output
