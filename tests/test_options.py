"""Honest options: a walk over every option of ``configs/default.toml``. Each one is honoured (and a named test
sets it and checks what it changes), refused with "not implemented yet", or a GeoMultiSens server setting that
warns once."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from gmsdask import ConfigError, JobConfig, set_config
from gmsdask.options import GEOMULTISENS_NOOPS, NOT_IMPLEMENTED, GeoMultiSensCompatibilityWarning

TESTS = Path(__file__).parent

#: Where each honoured option is set to a non-default value and its effect asserted.
HONOURED = {
    "job_ID": "test_config.py::test_precedence_kwargs_over_file_over_defaults",
    "reset_status": "test_option_effects.py::test_run_control_options",
    "CPUs": "test_option_effects.py::test_cluster_options",
    "disable_exception_handler": "test_option_effects.py::test_run_control_options",
    "log_level": "test_option_effects.py::test_cluster_options",
    "tiling_block_size_XY": "test_l2c_cube.py::test_dask_chunks_that_do_not_match_zarr_chunks_lose_no_data",
    "profiling": "test_controller.py::test_profiling_writes_a_dask_performance_report",
    "benchmark_global": "test_controller.py::test_profiling_writes_a_dask_performance_report",
    "scheduler_address": "test_option_effects.py::test_cluster_options",
    "memory_limit_per_worker": "test_option_effects.py::test_cluster_options",
    "retries": "test_option_effects.py::test_cluster_options",
    "scene_task_max_mb": "test_cluster_faults.py::test_job_on_a_real_cluster_writes_the_cubes_of_an_in_process_run",
    "whole_scene_task_max_mb": "test_cluster_faults.py::test_whole_scenes_wait_for_their_reference_inside_their_tasks",
    "exec_L1AP": "test_controller.py::test_level_products_are_written_where_asked",
    "exec_L1BP": "test_option_effects.py::test_run_flags_turn_levels_off",
    "exec_L1CP": "test_option_effects.py::test_run_flags_turn_levels_off",
    "exec_L2AP": "test_option_effects.py::test_run_flags_turn_levels_off",
    "exec_L2BP": "test_option_effects.py::test_run_flags_turn_levels_off",
    "exec_L2CP": "test_option_effects.py::test_run_flags_turn_levels_off",
    "path_archive": "test_option_effects.py::test_archive_add_without_arguments_scans_path_archive",
    "path_procdata_scenes": "test_controller.py::test_level_products_are_written_where_asked",
    "path_procdata_MGRS": "test_cli.py::test_archive_job_run_status_end_to_end",
    "path_job_logs": "test_controller.py::test_profiling_writes_a_dask_performance_report",
    "path_cache": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "db_url": "test_cli.py::test_archive_job_run_status_end_to_end",
    "delete_old_output": "test_option_effects.py::test_run_control_options",
    "skip_thermal": "test_option_effects.py::test_l1a_band_selection",
    "skip_pan": "test_option_effects.py::test_l1a_band_selection",
    "decode_once": "test_decoded_copy.py::test_l1a_decodes_once_and_fmask_reads_its_20m_bands_from_the_copy",
    "sort_bands_by_cwl": "test_l2a.py::test_explicit_target_grid_and_unsorted_bands",
    "skip_coreg": "test_option_effects.py::test_run_flags_turn_levels_off",
    "spatial_ref_min_overlap": "test_option_effects.py::test_reference_options",
    "spatial_ref_min_cloudcov": "test_option_effects.py::test_reference_options",
    "spatial_ref_max_cloudcov": "test_option_effects.py::test_reference_options",
    "spatial_ref_plusminus_days": "test_option_effects.py::test_reference_options",
    "spatial_ref_plusminus_years": "test_option_effects.py::test_reference_options",
    "datasetid_spatial_ref": "test_option_effects.py::test_reference_options",
    "coreg_band_wavelength_for_matching": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "coreg_max_shift_allowed": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "coreg_window_size": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "coreg_local": "test_coreg_local.py::test_local_mode_leaves_under_01_px_where_global_leaves_over_03_px",
    "coreg_grid_res": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "skip_ac": "test_option_effects.py::test_run_flags_turn_levels_off",
    "aot550": "test_atmosphere_roundtrip.py::test_a_scene_without_dark_targets_uses_the_default_aot_and_says_so",
    "path_dem": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "cloud_masking_algorithm": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "cloud_buffer_m": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "shadow_buffer_m": "test_fmask_scenes.py::test_buffers_grow_clouds_by_their_distance_in_metres",
    "snow_buffer_m": "test_fmask_scenes.py::test_buffers_grow_clouds_by_their_distance_in_metres",
    "ac_estimate_accuracy": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "ac_landsat_view_angles": "test_landsat_angles.py::test_option_ac_landsat_view_angles_reaches_the_6s_geometry",
    "spatial_resamp_alg_default": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "mask_clouds_l2a": "test_pipeline_real.py::test_sentinel2_l2a_tile_lands_on_its_own_grid_in_the_29unu_cube",
    "skip_spechomo": "test_option_effects.py::test_run_flags_turn_levels_off",
    "spechomo_method": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "spechomo_estimate_accuracy": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "brdf_correction": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "virtual_sensor_id": "test_config.py::test_geomultisens_numeric_ids_and_aliases",
    "virtual_sensor_name": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "target_bands": "test_option_effects.py::test_level_options_change_l1b_l1c_l2b",
    "target_gsd": "test_cli.py::test_archive_job_run_status_end_to_end",
    "target_epsg": "test_l2a.py::test_target_epsg_reprojects_in_one_step",
    "mgrs_pixel_buffer": "test_l2c_cube.py::test_buffered_tile_grid_and_default_tiles",
    "target_mgrs_tiles": "test_pipeline_real.py::test_sentinel2_l2a_tile_lands_on_its_own_grid_in_the_29unu_cube",
    "output_compressor": "test_l2c_cube.py::test_compressors",
}

#: A non-default value each not-implemented option refuses.
REFUSED_VALUES = {"spechomo_method": "RFR", "spechomo_classif_alg": "kNN", "spechomo_kNN_n_neighbors": 5,
                  "spechomo_n_clusters": 20, "ac_fillnonclear_areas": True, "ac_bandwise_accuracy": False,
                  "spechomo_bandwise_accuracy": False, "ac_clear_area_labels": (1,), "scale_factor_TOARef": 100,
                  "scale_factor_BOARef": 100}
NOOP_VALUES = {"inmem_serialization": True, "parallelization_level": "tiles", "db_host": "db.example",
               "spatial_index_server_host": "index.example", "spatial_index_server_port": 1,
               "allow_subMultiprocessing": False, "is_test": True}


def test_every_option_is_honoured_refused_or_a_documented_no_op():
    for name in JobConfig.model_fields:
        kinds = [name in HONOURED, name in NOT_IMPLEMENTED and name not in HONOURED, name in GEOMULTISENS_NOOPS]
        assert sum(kinds) >= 1, f"option {name} is neither honoured (with a test), refused, nor a documented no-op"
    assert set(REFUSED_VALUES) == set(NOT_IMPLEMENTED) and set(NOOP_VALUES) == set(GEOMULTISENS_NOOPS)


@pytest.mark.parametrize("name", sorted(HONOURED))
def test_an_honoured_option_is_set_and_checked_by_its_test(name):
    file_name, test_name = HONOURED[name].split("::")
    source = (TESTS / file_name).read_text()
    match = re.search(rf"^def {test_name}\(.*?(?=^def |\Z)", source, flags=re.S | re.M)
    assert match, f"{HONOURED[name]} (the test of option {name}) does not exist"
    assert re.search(rf"\b{name}\b", match.group(0)), f"{HONOURED[name]} does not set option {name}"


@pytest.mark.parametrize("name", sorted(REFUSED_VALUES))
def test_a_not_implemented_value_is_refused_naming_the_option(name):
    with pytest.raises(ConfigError, match=rf"{name}.*not implemented"):
        set_config(**{name: REFUSED_VALUES[name]})


@pytest.mark.parametrize("name", sorted(NOOP_VALUES))
def test_a_geomultisens_server_setting_warns_and_changes_nothing(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = set_config(**{name: NOOP_VALUES[name]})
    assert any(issubclass(w.category, GeoMultiSensCompatibilityWarning) and name in str(w.message) for w in caught)
    assert cfg.replace(**{name: JobConfig.model_fields[name].default}) == set_config()
