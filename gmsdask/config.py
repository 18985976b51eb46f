"""Typed job configuration with the option names and defaults of GeoMultiSens' ``set_config``.

Precedence: keyword arguments > JSON/TOML configuration file or string > defaults. A ``JobConfig`` is
immutable; pass it down explicitly (there is no global configuration object).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = ["JobConfig", "ExecFlags", "set_config", "load_config_file", "gmsdask_home", "default_cache_dir",
           "LEVELS", "DEFAULT_EXEC_FLAGS", "VIRTUAL_SENSOR_IDS", "DATASET_IDS"]

#: The built-in processing levels, in chain order (the registry, :func:`gmsdask.levels.default_registry`, is the
#: authority and may hold plugin levels too).
LEVELS: tuple[str, ...] = ("L1A", "L1B", "L1C", "L2A", "L2B", "L2C")

#: ``[run processor, write output, delete output if not needed anymore]``
ExecFlags = Annotated[tuple[bool, bool, bool], Field(description="[run, write, delete]")]
#: The flags of a level that has no ``exec_<level>P`` option (a plugin level).
DEFAULT_EXEC_FLAGS: tuple[bool, bool, bool] = (True, False, True)

#: GeoMultiSens' numeric virtual sensor ids: (sensor name, GSD in metres).
VIRTUAL_SENSOR_IDS: dict[int, tuple[str, float]] = {1: ("LANDSAT_8", 30.0), 10: ("SENTINEL_2A", 10.0),
                                                   11: ("SENTINEL_2A", 20.0)}
#: GeoMultiSens' numeric dataset ids of reference platforms.
DATASET_IDS: dict[int, str] = {104: "LANDSAT_8", 108: "LANDSAT_5", 112: "LANDSAT_7", 249: "SENTINEL_2A",
                               250: "SENTINEL_2B"}
#: The eleven surface-reflectance bands of Sentinel-2 (without B09 water vapour and B10 cirrus).
SENTINEL2_SR_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def gmsdask_home() -> Path:
    """``$GMSDASK_HOME``, default ``~/gmsdask_data``, absolute: where default paths and the catalogue live."""
    return Path(os.environ.get("GMSDASK_HOME") or Path.home() / "gmsdask_data").expanduser().resolve()


def default_cache_dir() -> Path:
    """``$GMSDASK_CACHE`` (one cache shared by several homes), else ``<GMSDASK_HOME>/cache``."""
    return Path(os.environ.get("GMSDASK_CACHE") or gmsdask_home() / "cache").expanduser().resolve()


def _home(sub: str):
    return lambda: gmsdask_home() / sub


class JobConfig(BaseModel):
    """Every option of a gmsdask job.

    The names follow GeoMultiSens (``exec_L1AP``, ``tiling_block_size_XY``, ``path_procdata_MGRS`` ...) so that
    existing configurations keep working. ``configs/default.toml`` documents each option.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # --- job and execution -------------------------------------------------------------------------
    job_ID: int | None = None
    reset_status: bool = False
    inmem_serialization: bool = False
    parallelization_level: Literal["scenes", "tiles"] = "scenes"
    CPUs: int | None = Field(default=None, ge=1)
    allow_subMultiprocessing: bool = True
    disable_exception_handler: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: 2046, not GeoMultiSens's 2048: a multiple of 6 px, so that a block of a Sentinel-2 tile's 10, 20 and 60 m
    #: bands and of the 30 m output covers the same ground and L2A's output blocks nest in the source's
    #: (``docs/performance.md``, memory).
    tiling_block_size_XY: tuple[int, int] = (2046, 2046)
    is_test: bool = False
    profiling: bool = False
    benchmark_global: bool = False
    scheduler_address: str | None = None
    memory_limit_per_worker: str = "auto"
    retries: int = Field(default=2, ge=0)
    scene_task_max_mb: float = Field(default=16.0, ge=0)
    whole_scene_task_max_mb: float = Field(default=2000.0, ge=0)

    exec_L1AP: ExecFlags = (True, False, True)
    exec_L1BP: ExecFlags = (True, False, True)
    exec_L1CP: ExecFlags = (True, False, True)
    exec_L2AP: ExecFlags = (True, False, True)
    exec_L2BP: ExecFlags = (True, True, False)
    exec_L2CP: ExecFlags = (True, True, False)

    # --- paths -----------------------------------------------------------------------------------
    path_archive: Path = Field(default_factory=_home("archive"))
    path_procdata_scenes: Path = Field(default_factory=_home("processed_scenes"))
    path_procdata_MGRS: str = Field(default_factory=lambda: str(gmsdask_home() / "processed_mgrs_tiles"))
    path_job_logs: Path = Field(default_factory=_home("logs"))
    path_cache: Path = Field(default_factory=lambda: default_cache_dir())  # 6S lookup tables, reused by every job
    db_url: str = Field(default_factory=lambda: f"sqlite:///{gmsdask_home() / 'catalog.sqlite'}")
    delete_old_output: bool = False
    # GeoMultiSens server settings: gmsdask needs no database or index server (accepted, with a warning)
    db_host: str = "localhost"
    spatial_index_server_host: str = "localhost"
    spatial_index_server_port: int = 8654

    # --- L1A: import --------------------------------------------------------------------------------
    skip_thermal: bool = True
    skip_pan: bool = True
    decode_once: bool = True
    sort_bands_by_cwl: bool = True
    scale_factor_TOARef: int = 10000
    scale_factor_BOARef: int = 10000

    # --- L1B: co-registration -----------------------------------------------------------------------
    skip_coreg: bool = False
    spatial_ref_min_overlap: float = Field(default=20.0, ge=0, le=100)
    spatial_ref_min_cloudcov: float = Field(default=0.0, ge=0, le=100)
    spatial_ref_max_cloudcov: float = Field(default=20.0, ge=0, le=100)
    spatial_ref_plusminus_days: int = Field(default=30, ge=0)
    spatial_ref_plusminus_years: int = Field(default=10, ge=0)
    datasetid_spatial_ref: str = "SENTINEL_2"
    coreg_band_wavelength_for_matching: float = Field(default=550.0, gt=0)
    coreg_max_shift_allowed: float = Field(default=5.0, gt=0)
    coreg_window_size: tuple[int, int] = (256, 256)
    coreg_local: bool = False
    coreg_grid_res: int = Field(default=200, ge=16)

    # --- L1C: atmospheric correction ------------------------------------------------------------------
    skip_ac: bool = False
    aot550: float = Field(default=0.2, ge=0, le=5)
    path_dem: str = ""
    cloud_masking_algorithm: dict[Literal["LANDSAT", "SENTINEL_2"], Literal["FMASK", "PRODUCT_QA"]] = Field(
        default_factory=lambda: {"LANDSAT": "FMASK", "SENTINEL_2": "FMASK"}
    )
    cloud_buffer_m: float = Field(default=300.0, ge=0)
    shadow_buffer_m: float = Field(default=90.0, ge=0)
    snow_buffer_m: float = Field(default=30.0, ge=0)
    ac_estimate_accuracy: bool = True
    ac_landsat_view_angles: bool = False
    ac_bandwise_accuracy: bool = True
    ac_fillnonclear_areas: bool = False
    ac_clear_area_labels: tuple[int, ...] = (1, 4, 5)

    # --- L2A: geometric homogenization ------------------------------------------------------------------
    spatial_resamp_alg_default: Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"] = "cubic"
    mask_clouds_l2a: bool = True

    # --- L2B: spectral homogenization ----------------------------------------------------------------
    skip_spechomo: bool = False
    spechomo_method: Literal["LI", "LR", "QR", "bandpass", "none", "RFR"] = "LR"
    spechomo_n_clusters: int = Field(default=50, ge=1)
    spechomo_classif_alg: Literal["MinDist", "kNN", "kNN_MinDist", "SAM", "kNN_SAM", "SID", "kNN_SID", "RF"] = "MinDist"
    spechomo_kNN_n_neighbors: int = Field(default=10, ge=1)
    spechomo_estimate_accuracy: bool = True
    spechomo_bandwise_accuracy: bool = True
    brdf_correction: bool = True

    # --- virtual (target) sensor ---------------------------------------------------------------------
    virtual_sensor_id: int | None = None
    virtual_sensor_name: str = "SENTINEL_2A"
    target_bands: tuple[str, ...] = SENTINEL2_SR_BANDS
    target_gsd: float = Field(default=30.0, gt=0)
    target_epsg: int | None = None

    # --- L2C: MGRS tiling ---------------------------------------------------------------------------------
    mgrs_pixel_buffer: int = Field(default=10, ge=0)
    target_mgrs_tiles: tuple[str, ...] = ()
    output_compressor: Literal["zstd", "lz4", "none"] = "zstd"

    @model_validator(mode="before")
    @classmethod
    def _geomultisens_ids(cls, values: Any) -> Any:
        """GeoMultiSens' numeric ids: ``virtual_sensor_id`` sets the virtual sensor and its GSD, a numeric
        ``datasetid_spatial_ref`` names the reference platform, ``spechomo_method = "Linear"`` is ``LI``."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        sensor_id = values.get("virtual_sensor_id")
        if sensor_id is not None:
            if int(sensor_id) not in VIRTUAL_SENSOR_IDS:
                known = ", ".join(f"{k} ({n} {g:g} m)" for k, (n, g) in VIRTUAL_SENSOR_IDS.items())
                raise ValueError(f"virtual_sensor_id {sensor_id} is unknown; known: {known}")
            name, gsd = VIRTUAL_SENSOR_IDS[int(sensor_id)]
            values.setdefault("virtual_sensor_name", name)
            values.setdefault("target_gsd", gsd)
        ref = values.get("datasetid_spatial_ref")
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            if int(ref) not in DATASET_IDS:
                raise ValueError(f"datasetid_spatial_ref {ref} is unknown; known: {DATASET_IDS}")
            values["datasetid_spatial_ref"] = DATASET_IDS[int(ref)]
        if values.get("spechomo_method") == "Linear":
            values["spechomo_method"] = "LI"
        masking = values.get("cloud_masking_algorithm")
        if isinstance(masking, dict) and "CLASSIFIER" in masking.values():
            # GeoMultiSens' Sentinel-2 classifier (and gmsdask 0.1's default) is Fmask here
            values["cloud_masking_algorithm"] = {k: "FMASK" if v == "CLASSIFIER" else v for k, v in masking.items()}
        return values

    @field_validator("path_procdata_MGRS", mode="before")
    @classmethod
    def _path_or_url(cls, value: Any) -> Any:
        """A local path (``Path`` or str) or an object-store URL such as ``s3://bucket/prefix``."""
        return str(value) if isinstance(value, os.PathLike) else value

    @field_validator("tiling_block_size_XY", "coreg_window_size")
    @classmethod
    def _positive_pair(cls, value: tuple[int, int]) -> tuple[int, int]:
        if any(v < 16 for v in value):
            raise ValueError(f"both sizes must be >= 16 pixels, got {value}")
        return value

    @property
    def chunks(self) -> dict[str, int]:
        """Dask chunk sizes ``{"y": ..., "x": ...}`` for scene arrays (``tiling_block_size_XY`` is X, Y)."""
        block_x, block_y = self.tiling_block_size_XY
        return {"y": block_y, "x": block_x}

    def exec_flags(self, level: str) -> tuple[bool, bool, bool]:
        """``(run, write, delete)`` of a processing level such as ``"L2A"`` (a level without an
        ``exec_<level>P`` option, i.e. a plugin level, runs and writes nothing: :data:`DEFAULT_EXEC_FLAGS`).

        ``skip_coreg``, ``skip_ac`` and ``skip_spechomo`` are the GeoMultiSens aliases of the run flag of L1B,
        L1C and L2B: true turns the level off.
        """
        if not level or not level[0].isalpha():
            raise ConfigError(f"exec_{level}P", "a processing level name such as 'L2A' is required")
        run, write, delete = getattr(self, f"exec_{level}P", DEFAULT_EXEC_FLAGS)
        if getattr(self, _SKIP_ALIASES.get(level, ""), False):
            run = False
        return run, write, delete

    def replace(self, **changes: Any) -> "JobConfig":
        """A new, validated configuration with ``changes`` applied."""
        return _build(self.model_dump() | changes)


#: GeoMultiSens' ``skip_*`` options, aliases of the run flag of their level.
_SKIP_ALIASES = {"L1B": "skip_coreg", "L1C": "skip_ac", "L2B": "skip_spechomo"}


def _allowed_values(field_name: str) -> str:
    if field_name not in JobConfig.model_fields:
        return ""
    annotation = JobConfig.model_fields[field_name].annotation
    literals = [a for a in typing.get_args(annotation)] if typing.get_origin(annotation) is Literal else []
    return f"; allowed values: {', '.join(map(repr, literals))}" if literals else ""


def _build(values: dict[str, Any]) -> JobConfig:
    known = JobConfig.model_fields
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(key, f"unknown option{hint} (see configs/default.toml for all options)")
    try:
        built = JobConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        detail = str(first["msg"]).removeprefix("Value error, ")
        # a model-level check (GeoMultiSens ids) has no location: its message starts with the option's name
        key = ".".join(str(part) for part in first["loc"][:1]) or detail.split(" ")[0]
        raise ConfigError(key, f"{detail} (got {first.get('input')!r}){_allowed_values(key)}") from None
    from .options import check_options

    check_options({k: getattr(built, k) for k in values if k in known}, _DEFAULTS)
    return built


#: The defaults, to tell which options a configuration changes (path defaults depend on GMSDASK_HOME and are
#: never compared).
_DEFAULTS: dict[str, Any] = {name: field.get_default(call_default_factory=True)
                             for name, field in JobConfig.model_fields.items()}


def load_config_file(source: str | Path) -> dict[str, Any]:
    """Options from a JSON or TOML file, or a JSON string.

    TOML tables are flattened (``[L2A] spatial_resamp_alg_default = "cubic"`` is the option
    ``spatial_resamp_alg_default``) so a file can be organised by level.
    """
    text_source = str(source).strip()
    if text_source.startswith("{"):
        try:
            return dict(json.loads(text_source))
        except json.JSONDecodeError as err:
            raise ConfigError("json_config", f"not valid JSON: {err}") from None
    path = Path(source)
    if not path.is_file():
        raise ConfigError("json_config", f"{path} is neither a JSON string nor an existing file")
    raw = path.read_bytes()
    try:
        if path.suffix.lower() == ".toml":
            options = tomllib.loads(raw.decode())
        else:
            options = json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError("json_config", f"{path}: cannot parse: {err}") from None
    return _flatten(options, path)


def _flatten(options: dict[str, Any], path: Path) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict) and key not in JobConfig.model_fields:
            for sub_key, sub_value in _flatten(value, path).items():
                if sub_key in flat:
                    raise ConfigError(sub_key, f"{path}: given twice")
                flat[sub_key] = sub_value
        else:
            flat[key] = value
    return flat


def set_config(job_ID: int | None = None, json_config: str | Path = "", reset_status: bool = False,
               **kwargs: Any) -> JobConfig:
    """Set up the configuration of a gmsdask job (the GeoMultiSens signature).

    Parameters
    ----------
    job_ID
        The job's id in the catalogue, or None for a configuration not yet bound to a job.
    json_config
        Path of a JSON or TOML file, or a JSON string, with options. Empty: defaults only.
    reset_status
        Whether to reset the processing status of the job's scenes (a rerun from L1A).
    **kwargs
        Options; they override ``json_config``, which overrides the defaults.

    Raises
    ------
    ConfigError
        For an unknown option or an invalid value, naming the option and the allowed values.
    """
    options: dict[str, Any] = load_config_file(json_config) if str(json_config).strip() else {}
    options.update(kwargs)
    options["job_ID"] = job_ID if job_ID is not None else options.get("job_ID")
    options["reset_status"] = reset_status or bool(options.get("reset_status", False))
    return _build(options)
