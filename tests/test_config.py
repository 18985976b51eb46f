"""JobConfig / set_config: GeoMultiSens names and defaults, precedence, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmsdask import ConfigError, JobConfig, set_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_follow_geomultisens():
    cfg = set_config()
    # the one departure: a multiple of 6 px (GeoMultiSens: 2048), so that Sentinel-2's blocks nest (JobConfig)
    assert cfg.tiling_block_size_XY == (2046, 2046)
    assert cfg.chunks == {"y": 2046, "x": 2046}
    assert cfg.exec_flags("L1A") == (True, False, True)
    assert cfg.exec_flags("L2C") == (True, True, False)
    assert cfg.spatial_resamp_alg_default == "cubic"
    assert cfg.scale_factor_BOARef == 10000
    assert cfg.coreg_max_shift_allowed == 5.0 and cfg.coreg_window_size == (256, 256)
    assert cfg.target_bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    assert (cfg.coreg_local, cfg.coreg_grid_res, cfg.aot550, cfg.retries, cfg.brdf_correction) == (False, 200, 0.2, 2,
                                                                                                    True)
    assert cfg.cloud_masking_algorithm == {"LANDSAT": "FMASK", "SENTINEL_2": "FMASK"}
    assert cfg.datasetid_spatial_ref == "SENTINEL_2" and cfg.ac_estimate_accuracy and cfg.spechomo_estimate_accuracy


def test_defaults_live_below_gmsdask_home_as_absolute_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("GMSDASK_HOME", str(tmp_path / "home"))
    cfg = set_config()
    assert cfg.db_url == f"sqlite:///{tmp_path / 'home' / 'catalog.sqlite'}"
    assert cfg.path_procdata_MGRS == str(tmp_path / "home" / "processed_mgrs_tiles")
    assert all(Path(p).is_absolute() for p in (cfg.path_archive, cfg.path_job_logs, cfg.path_procdata_scenes))


def test_geomultisens_numeric_ids_and_aliases():
    assert (set_config(virtual_sensor_id=11).virtual_sensor_name, set_config(virtual_sensor_id=11).target_gsd) == \
        ("SENTINEL_2A", 20.0)
    assert set_config(virtual_sensor_id=1).virtual_sensor_name == "LANDSAT_8"
    assert set_config(datasetid_spatial_ref=249).datasetid_spatial_ref == "SENTINEL_2A"
    assert set_config(spechomo_method="Linear").spechomo_method == "LI"
    with pytest.raises(ConfigError, match="virtual_sensor_id 7 is unknown"):
        set_config(virtual_sensor_id=7)
    # skip_* are the run flag of their level
    assert set_config(skip_coreg=True).exec_flags("L1B")[0] is False
    assert set_config(skip_spechomo=True).exec_flags("L2B") == (False, True, False)


def test_precedence_kwargs_over_file_over_defaults(tmp_path):
    toml_file = tmp_path / "job.toml"
    toml_file.write_text('CPUs = 3\nlog_level = "DEBUG"\n[L2A]\ntarget_gsd = 20.0\n')
    cfg = set_config(7, str(toml_file), CPUs=1)
    assert (cfg.job_ID, cfg.CPUs, cfg.log_level, cfg.target_gsd) == (7, 1, "DEBUG", 20.0)
    json_cfg = set_config(json_config=json.dumps({"exec_L2AP": [True, True, False]}))
    assert json_cfg.exec_L2AP == (True, True, False)
    json_file = tmp_path / "job.json"
    json_file.write_text(json.dumps({"parallelization_level": "tiles"}))
    assert set_config(json_config=json_file).parallelization_level == "tiles"


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(ConfigError, match=r"'CPUz'.*did you mean CPUs"):
        set_config(CPUz=2)


def test_invalid_value_names_allowed_values():
    with pytest.raises(ConfigError, match=r"'parallelization_level'.*'scenes', 'tiles'"):
        set_config(parallelization_level="pixels")
    with pytest.raises(ConfigError, match="tiling_block_size_XY"):
        set_config(tiling_block_size_XY=(4, 4))
    with pytest.raises(ConfigError, match="exec_L1BP"):
        set_config(exec_L1BP=[True, False])


def test_bad_config_file_is_named(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("CPUs = = 2")
    with pytest.raises(ConfigError, match="broken.toml"):
        set_config(json_config=broken)
    with pytest.raises(ConfigError, match="neither a JSON string nor an existing file"):
        set_config(json_config=tmp_path / "absent.json")


def test_config_is_immutable_and_replace_validates():
    cfg = JobConfig()
    with pytest.raises(Exception):
        cfg.CPUs = 4  # type: ignore[misc]
    assert cfg.replace(CPUs=4).CPUs == 4
    with pytest.raises(ConfigError, match="CPUs"):
        cfg.replace(CPUs=0)


def test_default_toml_documents_every_option_with_its_default():
    text = (REPO / "configs" / "default.toml").read_text()
    documented = set_config(json_config=REPO / "configs" / "default.toml")
    assert documented == JobConfig(), "configs/default.toml must hold the defaults"
    below_home = {"path_archive", "path_procdata_scenes", "path_procdata_MGRS", "path_job_logs", "path_cache", "db_url"}
    for name, field in JobConfig.model_fields.items():
        # options whose default is None (TOML has no null) or a path below GMSDASK_HOME are shown commented out
        prefix = "# " if field.default is None or name in below_home else ""
        assert f"\n{prefix}{name} = " in text, f"option {name} is not documented in configs/default.toml"
