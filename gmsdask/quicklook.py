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
    """Write an RGB PNG of one time slot's valid extent (2-98 % stretch, NaN black), <= ``max_size`` px."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = rgb_variables(cube, time_index)
    # crop to the slot's valid pixels: a scene often covers a small part of its tile
    valid = cube[names[0]].isel(time=time_index).notnull()
    rows = np.flatnonzero(valid.any("x").values)
    cols = np.flatnonzero(valid.any("y").values)
    window = {"y": slice(rows[0], rows[-1] + 1), "x": slice(cols[0], cols[-1] + 1)}
    step = max(1, int(np.ceil(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / max_size)))
    channels = []
    for name in names:
        values = cube[name].isel(time=time_index, **window).isel(y=slice(None, None, step),
                                                                  x=slice(None, None, step)).values
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
        channels.append(np.clip((values - low) / max(high - low, 1e-6), 0, 1))
    rgb = np.nan_to_num(np.dstack(channels), nan=0.0)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(png_path, rgb)
    return png_path
