"""Cubes on object storage: ``path_procdata_MGRS = "s3://bucket/cubes"`` against a local S3 API (moto server mode
on 127.0.0.1, started by the fixture)."""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from gmsdask.config import JobConfig
from gmsdask.io.cube import cube_log, open_cube
from gmsdask.io.cube_storage import CubeStorageOptions, repository_exists
from gmsdask.levels.l2a import geometric_homogenization
from gmsdask.levels.l2c import cube_path, write_scene_to_tiles

from .cube_helpers import assert_slot_holds, write
from .scene_factory import random_values, s2_scene


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A moto S3 server on a free loopback port with the bucket ``bucket``; credentials and endpoint in the
    environment, as a user would set them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bucket")
    try:
        yield endpoint
    finally:
        server.stop()


def test_l2c_writes_and_reads_a_cube_on_s3(s3_endpoint):
    cfg = JobConfig(path_procdata_MGRS="s3://bucket/cubes", mgrs_pixel_buffer=0, tiling_block_size_XY=(512, 512))
    scene = s2_scene(values=random_values(0), attrs={"acquisition_time": "2022-10-05T11:54:11.024Z"})
    l2a = geometric_homogenization(scene, cfg)
    [tile] = write_scene_to_tiles(l2a, cfg, scene_id="S2A_A", tiles=["29UNU"], job_id=3)
    assert tile.path == cube_path(cfg, "29UNU") == "s3://bucket/cubes/SENTINEL_2A/29UNU.icechunk"
    keys = [obj["Key"] for obj in boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
            .list_objects_v2(Bucket="bucket", Prefix="cubes/SENTINEL_2A/29UNU.icechunk/")["Contents"]]
    assert any("/snapshots/" in key for key in keys) and any("/chunks/" in key for key in keys)
    assert not Path("s3:").exists()  # nothing went to a local folder named after the folded URL "s3:/bucket"

    cube = open_cube(tile.path)
    expected = l2a["r30m"].to_dataset()
    inside = cube.isel(time=0).sel(x=expected.x, y=expected.y)
    np.testing.assert_allclose(inside.B02.values, expected.B02.values, rtol=0, atol=0.5e-4 + 1e-7)
    np.testing.assert_array_equal(inside.nodata.values, expected.nodata.values)
    assert cube.rio.crs.to_epsg() == 32629
    assert cube_log(tile.path)[0].message == "job 3: scene S2A_A into 29UNU"


def test_explicit_storage_options_on_s3(s3_endpoint):
    options = CubeStorageOptions(endpoint_url=s3_endpoint, region="us-east-1", force_path_style=True)
    location = "s3://bucket/small/29UNU.icechunk"
    assert not repository_exists(location, options)
    for scene_id in ("A", "B"):
        write(location, scene_id, options=options)
    cube = open_cube(location, options=options)
    for scene_id in ("A", "B"):
        assert_slot_holds(cube, scene_id)
