"""RGB quicklook PNGs of MGRS tile datacubes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["rgb_variables", "write_quicklook"]

_RGB = ("red", "green", "blue")


def rgb_variables(cube: xr.Dataset, time_index: int) -> tuple[str, str, str]:
    """Names of the red, green and blue bands that hold data at ``time_index`` (by STAC common name)."""
    chosen = []
    for colour in _RGB:
        candidates = [name for name, var in cube.data_vars.items()
                      if var.attrs.get("common_name") == colour and "time" in var.dims]
        with_data = [name for name in candidates if bool(cube[name].isel(time=time_index).notnull().any())]
        if not with_data:
            raise ValueError(f"the cube has no {colour} band with data at time index {time_index}")
        chosen.append(with_data[0])
    return tuple(chosen)  # type: ignore[return-value]


def write_quicklook(cube: xr.Dataset, png_path: str | Path, *, time_index: int = -1, max_size: int = 1024) -> Path:
    """Write an RGB PNG of one time slot (2-98 % stretch per band, NaN black), at most ``max_size`` px wide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(1, int(np.ceil(max(cube.sizes["y"], cube.sizes["x"]) / max_size)))
    channels = []
    for name in rgb_variables(cube, time_index):
        values = cube[name].isel(time=time_index, y=slice(None, None, step), x=slice(None, None, step)).values
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
        channels.append(np.clip((values - low) / max(high - low, 1e-6), 0, 1))
    rgb = np.nan_to_num(np.dstack(channels), nan=0.0)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(png_path, rgb)
    return png_path
