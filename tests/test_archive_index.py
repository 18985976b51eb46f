"""A product archive is indexed once per open: a ``.tar.gz`` is decompressed by one pass, not once per metadata
read, and what comes out is what the unpacked product gives."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from gmsdask.errors import MetadataError, ProductError
from gmsdask.io import open_scene
from gmsdask.io.archive import ProductFiles

from .conftest import data_path

LANDSAT_TAR_GZ = ("landsat", "collection1", "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz")
LANDSAT_TAR = ("landsat", "collection1", "LE07_L1TP_104078_20130429_20161124_01_T1.tar")


@pytest.fixture()
def tar_opens(monkeypatch) -> list[str]:
    """The modes of every ``tarfile.open`` call made while the test runs."""
    calls: list[str] = []
    real_open = tarfile.open

    def counting_open(name=None, mode="r", *args, **kwargs):
        calls.append(mode)
        return real_open(name, mode, *args, **kwargs)

    monkeypatch.setattr(tarfile, "open", counting_open)
    return calls


def test_opening_a_tar_gz_product_scans_the_archive_once(tar_opens):
    scene = open_scene(data_path(*LANDSAT_TAR_GZ))
    # the MTL and the ANG file (footprint) are both read, from the one pass
    assert scene.attrs["footprint_source"].startswith("ANG.txt")
    assert len(tar_opens) == 1


def test_a_tar_gz_product_reads_as_its_unpacked_folder(tmp_path):
    archive = data_path(*LANDSAT_TAR_GZ)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    packed, unpacked = open_scene(archive), open_scene(tmp_path / "unpacked")
    differing = {k for k in packed.attrs if k != "product_path" and packed.attrs[k] != unpacked.attrs[k]}
    assert differing == set()
    for group in ("r30m", "r15m"):
        for name in packed[group].data_vars:
            np.testing.assert_array_equal(packed[group][name].values, unpacked[group][name].values)


@pytest.mark.parametrize("parts", [LANDSAT_TAR_GZ, LANDSAT_TAR], ids=["tar.gz", "tar"])
def test_every_member_reads_as_tarfile_extracts_it(parts, tar_opens):
    files = ProductFiles.open(data_path(*parts))
    contents = {member: files.read_bytes(member) for member in files.members if not member.endswith(".TIF")}
    assert len(tar_opens) == 1  # metadata members come from the index: kept content, or a seek into a plain tar
    with tarfile.open(files.path) as tar:
        expected = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name in contents}
    assert contents == expected and any(name.endswith("_MTL.txt") for name in contents)
    raster = next(m for m in files.members if m.endswith("_B1.TIF"))
    assert files.read_bytes(raster)[:2] in (b"II", b"MM")  # a raster member is still readable, if not kept


def test_a_member_not_in_the_archive_is_named_as_missing():
    files = ProductFiles.open(data_path(*LANDSAT_TAR_GZ))
    with pytest.raises(MetadataError, match="nothing_MTL.txt.*missing"):
        files.read_bytes("nothing_MTL.txt")


def test_a_truncated_tar_gz_is_refused_when_indexed(tmp_path):
    archive = data_path(*LANDSAT_TAR_GZ)
    truncated = tmp_path / archive.name
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ProductError, match=f"{truncated.name}.*truncated or corrupt tar"):
        ProductFiles.open(truncated)


def test_an_uncompressed_tar_whose_member_was_cut_off_names_it(tmp_path):
    source = data_path(*LANDSAT_TAR)
    files = ProductFiles.open(source)
    mtl = next(m for m in files.members if m.endswith("_MTL.txt"))
    offset, size = files._tar_index.offsets[mtl]
    copy = Path(tmp_path / source.name)
    copy.write_bytes(source.read_bytes())
    indexed = ProductFiles.open(copy)
    with copy.open("r+b") as raw:
        raw.truncate(offset + size // 2)
    with pytest.raises(MetadataError, match="_MTL.txt.*cannot be read"):
        indexed.read_bytes(mtl)
