"""The lazy scene step of spectral homogenization: per chunk, no compute, same numbers as the array API."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from gmsdask.errors import ConfigError, ProductError
from gmsdask.spectral import SpectralHomogenizer, homogenize_dataset
from gmsdask.synthetic.spectra import MATERIALS, band_reflectance

L9, S2A = "LANDSAT_9", "SENTINEL_2A"


class _Counter:
    def __init__(self) -> None:
        self.blocks = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        self.blocks += block.size > 0  # dask probes with empty arrays for metadata; those hold no data
        return block


def _mixtures(platform: str, fractions: np.ndarray) -> np.ndarray:
    """Band reflectance ``(band, y, x)`` of mixtures of the synthetic landscape's materials."""
    bands = SpectralHomogenizer(platform, platform).source_bands
    return np.stack([fractions @ band_reflectance(platform, band) for band in bands]).astype(np.float32)


def _fractions() -> np.ndarray:
    return np.random.default_rng(7).dirichlet(np.full(len(MATERIALS), 0.3), size=(40, 50))


def _scene(counter: _Counter) -> tuple[xr.Dataset, np.ndarray]:
    reflectance = _mixtures(L9, _fractions())
    reflectance[:, 3, 4] = np.nan
    reflectance[2, 5, 6] = np.nan  # one band missing at one pixel
    bands = SpectralHomogenizer(L9, S2A).source_bands
    data = {band: (("y", "x"), da.from_array(reflectance[i], chunks=(16, 32)).map_blocks(counter, dtype=np.float32),
                   {"common_name": "?"})
            for i, band in enumerate(bands)}
    data["B10"] = (("y", "x"), da.full((40, 50), 290.0, chunks=(16, 32), dtype=np.float32))  # thermal (TIRS)
    data["B11"] = (("y", "x"), da.full((40, 50), 288.0, chunks=(16, 32), dtype=np.float32))  # thermal, not SWIR
    data["nodata"] = (("y", "x"), da.zeros((40, 50), chunks=(16, 32), dtype=bool))
    ds = xr.Dataset(data, coords={"y": 1e6 - 30.0 * np.arange(40), "x": 3e5 + 30.0 * np.arange(50)},
                    attrs={"platform": L9, "product_id": "LC09_TEST"})
    return ds, np.moveaxis(reflectance, 0, -1)


def test_homogenize_dataset_is_lazy_and_equals_the_array_api():
    counter = _Counter()
    ds, reflectance = _scene(counter)
    out = homogenize_dataset(ds, source_platform=L9, virtual_sensor=S2A, method="LR")
    assert counter.blocks == 0, "building the L2B graph computed data"
    s2_bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    assert [v for v in out.data_vars if not v.startswith("spechomo_error_") and v != "nodata"] == s2_bands
    assert out["B05"].chunks == ((16, 16, 8), (32, 18))
    assert "B10" not in out and "nodata" in out  # thermal bands go, masks stay
    computed = out.compute()
    expected, error = SpectralHomogenizer(L9, S2A, "LR").predict_with_error(reflectance)
    for i, band in enumerate(s2_bands):
        np.testing.assert_allclose(computed[band].values, expected[..., i], atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(computed[f"spechomo_error_{band}"].values, error[..., i], equal_nan=True)
        assert computed[band].dtype == np.float32 and computed[f"spechomo_error_{band}"].dtype == np.float32
    truth = _mixtures(S2A, _fractions())  # what Sentinel-2A would have seen of the same ground
    for i, band in enumerate(s2_bands):
        rmse = float(np.sqrt(np.nanmean((computed[band].values - truth[i]) ** 2)))
        assert rmse < 0.01, f"{band}: RMSE {rmse:.4f} against the Sentinel-2A truth"
    assert np.isnan(computed["B11"].values[3, 4]) and np.isnan(computed["B01"].values[5, 6])
    assert 0.01 < float(computed["B11"].mean()) < 0.45  # Sentinel-2 SWIR, not Landsat's 288 K thermal B11
    assert out["B05"].attrs["common_name"] == "rededge071"
    assert out["B05"].attrs["central_wavelength_nm"] == pytest.approx(704.1, abs=0.5)
    assert out["B8A"].attrs["common_name"] == "nir08"
    assert out.attrs["spechomo_method"] == "LR" and out.attrs["virtual_sensor_name"] == S2A
    assert out.attrs["product_id"] == "LC09_TEST"


def test_options_restrict_bands_and_drop_accuracy_layers():
    ds, reflectance = _scene(_Counter())
    out = homogenize_dataset(ds, source_platform=L9, virtual_sensor=S2A, target_bands=["B04", "B8A"],
                             method="none", estimate_accuracy=False)
    assert sorted(out.data_vars) == ["B04", "B8A", "nodata"]
    np.testing.assert_array_equal(out["B8A"].values, reflectance[..., 4])  # OLI B5 renamed


def test_missing_band_and_bad_method_are_named():
    ds, _ = _scene(_Counter())
    with pytest.raises(ProductError, match="LC09_TEST.*B6"):
        homogenize_dataset(ds.drop_vars("B6"), source_platform=L9)
    with pytest.raises(ConfigError, match="spechomo_method"):
        homogenize_dataset(ds, source_platform=L9, method="cubic")


def test_a_large_chunk_is_predicted_in_strips_with_bounded_memory():
    """One chunk's prediction allocates little beyond its output (issue 13's memory figure: an 11-band chunk of
    a whole tile took ~1 GB of temporaries), and the strips give the same values as one whole-array call."""
    import tracemalloc

    from gmsdask.spectral.dataset import _STRIP_PIXELS, _apply

    homogenizer = SpectralHomogenizer(L9, S2A, "LR")
    fractions = np.random.default_rng(3).dirichlet(np.full(len(MATERIALS), 0.3), size=(1024, 512))
    block = np.moveaxis(_mixtures(L9, fractions), 0, -1)
    block[5, :40] = np.nan  # no-data pixels inside one strip
    assert block.shape[0] * block.shape[1] > 4 * _STRIP_PIXELS
    output_bytes = block.shape[0] * block.shape[1] * 2 * len(homogenizer.target_bands) * 4
    tracemalloc.start()
    try:
        out = _apply(*np.moveaxis(block, -1, 0), homogenizer=homogenizer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # beside its output, a strip's temporaries (~15 MiB), whatever the chunk size (one call on the whole block: ~70 here)
    assert peak - output_bytes < 24 * 2**20, f"peak {peak / 2**20:.0f} MiB for an output of {output_bytes / 2**20:.0f} MiB"
    # one C-contiguous array per band: a band is never gathered out of an array of all of them
    assert len(out) == 22 and all(band.shape == block.shape[:2] and band.flags.c_contiguous for band in out)
    expected, error = homogenizer.predict_with_error(block)
    np.testing.assert_array_equal(np.stack(out[:11], axis=-1), expected)
    np.testing.assert_array_equal(np.stack(out[11:], axis=-1), error)
    assert np.isnan(out[0][5, :40]).all() and np.isfinite(out[0][6]).all()
