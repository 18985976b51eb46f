"""Scaled int16 variables decode straight to float32 (level products, cubes), as the float64 route did."""

import dask.array as da
import numpy as np
import xarray as xr

from gmsdask.io.float32_decoding import decode_float32


def _raw(values: np.ndarray, **attrs) -> xr.DataArray:
    # as a Zarr v3 store gives them with mask_and_scale=False: JSON numbers, i.e. Python floats and ints
    return xr.DataArray(da.from_array(values, chunks=64), dims=("y", "x"), attrs=attrs)


def test_reflectance_decodes_to_float32_with_nan_for_the_fill():
    rng = np.random.default_rng(3)
    stored = rng.integers(-500, 12000, (128, 128)).astype(np.int16)
    stored[:5] = -9999
    ds = xr.Dataset({"B04": _raw(stored, scale_factor=float(np.float32(1e-4)), add_offset=0.0, _FillValue=-9999,
                                 units="1"),
                     "fmask": _raw(rng.integers(0, 6, (128, 128)).astype(np.uint8))})
    out = decode_float32(ds)
    assert out["B04"].dtype == np.float32 and out["fmask"].dtype == np.uint8
    values = out["B04"].values
    assert np.isnan(values[:5]).all() and not np.isnan(values[5:]).any()
    float64_route = (stored[5:].astype(np.float64) * float(np.float32(1e-4))).astype(np.float32)
    assert np.max(np.abs(values[5:].view(np.int32) - float64_route.view(np.int32))) <= 1  # float32 ulps
    # encoded again, every pixel gives back its integer
    assert np.array_equal(np.rint(values[5:].astype(np.float64) / np.float32(1e-4)).astype(np.int16), stored[5:])
    assert out["B04"].encoding["scale_factor"] == np.float32(1e-4) and out["B04"].attrs["units"] == "1"
    assert np.array_equal(out["fmask"].values, ds["fmask"].values)


def test_an_offset_float32_cannot_hold_still_gives_float32_from_the_exact_route():
    stored = np.array([[0, 100, -9999], [2500, -2000, 1]], dtype=np.int16)
    ds = xr.Dataset({"B10": _raw(stored, scale_factor=float(np.float32(0.01)), add_offset=273.15, _FillValue=-9999,
                                 units="K")})
    out = decode_float32(ds)["B10"]
    assert out.dtype == np.float32 and np.isnan(out.values[0, 2])
    expected = (stored.astype(np.float64) * float(np.float32(0.01)) + 273.15).astype(np.float32)
    assert np.array_equal(out.values[stored != -9999], expected[stored != -9999])


def test_lazy_blocks_decode_in_one_task_each_to_the_bits_of_xarrays_coders():
    rng = np.random.default_rng(5)
    stored = rng.integers(-32768, 32767, (200, 130)).astype(np.int16)
    stored[::7, ::3] = -9999
    attrs = {"scale_factor": float(np.float32(2e-3)), "add_offset": -1.5, "_FillValue": -9999}
    out = decode_float32(xr.Dataset({"view_zenith": _raw(stored, **attrs)}))["view_zenith"]
    # xarray's own coders on the same float32 factor and offset, block by block
    coders = xr.decode_cf(xr.Dataset({"v": (("y", "x"), stored, {**attrs, "scale_factor": np.float32(2e-3),
                                                                     "add_offset": np.float32(-1.5)})}))["v"]
    assert coders.dtype == out.dtype == np.float32
    assert np.array_equal(out.values.view(np.int32), coders.values.view(np.int32))  # NaN bits included
    assert np.isnan(out.values[::7, ::3]).all() and np.isfinite(out.values).sum() == (stored != -9999).sum()
    graph = dict(out.data.__dask_graph__())
    assert len(graph) == 2 * out.data.npartitions  # a stored block and its decoding, nothing between
    assert out.encoding["scale_factor"] == np.float32(2e-3) and "scale_factor" not in out.attrs


def test_numpy_backed_variables_still_decode():
    stored = np.array([[-9999, 10], [20, 30]], dtype=np.int16)
    ds = xr.Dataset({"B02": (("y", "x"), stored, {"scale_factor": 1e-4, "_FillValue": -9999})})
    out = decode_float32(ds)["B02"].values
    assert out.dtype == np.float32 and np.isnan(out[0, 0])
    assert np.allclose(out.ravel()[1:], [1e-3, 2e-3, 3e-3])


def test_a_fill_value_given_as_a_float_still_masks():
    stored = np.array([[-9999, 7], [8, -9999]], dtype=np.int16)
    ds = xr.Dataset({"B03": _raw(stored, scale_factor=float(np.float32(1e-4)), _FillValue=-9999.0)})
    out = decode_float32(ds)["B03"].values
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 1]) and np.isfinite(out[0, 1]) and np.isfinite(out[1, 0])
