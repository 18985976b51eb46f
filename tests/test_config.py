"""JobConfig / set_config: GeoMultiSens names and defaults, precedence, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmsdask import ConfigError, JobConfig, set_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_follow_geomultisens():
    cfg = set_config()
    assert cfg.tiling_block_size_XY == (2048, 2048)
    assert cfg.chunks == {"y": 2048, "x": 2048}
    assert cfg.exec_flags("L1A") == (True, False, True)
    assert cfg.exec_flags("L2C") == (True, True, False)
    assert cfg.spatial_resamp_alg_default == "cubic"
    assert cfg.scale_factor_BOARef == 10000
    assert cfg.coreg_max_shift_allowed == 5.0 and cfg.coreg_window_size == (256, 256)


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
    for name, field in JobConfig.model_fields.items():
        # options whose default is None are shown commented out (TOML has no null)
        prefix = "# " if field.default is None else ""
        assert f"\n{prefix}{name} = " in text, f"option {name} is not documented in configs/default.toml"
