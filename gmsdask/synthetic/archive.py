"""Deterministic archives: the same files give the same bytes (sorted members, fixed times and owners)."""

from __future__ import annotations

import tarfile
import zipfile
from datetime import datetime
from pathlib import Path

__all__ = ["write_tar", "write_zip"]

_STORED_SUFFIXES = {".jp2", ".tif", ".zip"}  # already compressed: deflating them costs time for nothing


def write_tar(archive: Path, folder: Path, mtime: datetime) -> None:
    """A plain tar of the files in ``folder`` at the archive root (as USGS delivers Landsat)."""
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            info = tarfile.TarInfo(file.name)
            info.size = file.stat().st_size
            info.mtime = int(mtime.timestamp())
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with file.open("rb") as handle:
                tar.addfile(info, handle)


def write_zip(archive: Path, folder: Path, mtime: datetime) -> None:
    """A zip of ``folder`` with the folder itself as the top entry (as ESA delivers a SAFE)."""
    stamp = (max(mtime.year, 1980), mtime.month, mtime.day, mtime.hour, mtime.minute, mtime.second - mtime.second % 2)
    entries = sorted([folder, *folder.rglob("*")], key=lambda p: p.relative_to(folder.parent).as_posix())
    with zipfile.ZipFile(archive, "w") as zf:
        for path in entries:
            name = path.relative_to(folder.parent).as_posix()
            if path.is_dir():
                info = zipfile.ZipInfo(name + "/", date_time=stamp)
                info.external_attr = (0o40755 << 16) | 0x10
                info.create_system = 3
                zf.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            stored = path.suffix.lower() in _STORED_SUFFIXES
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with path.open("rb") as src, zf.open(info, "w", force_zip64=path.stat().st_size > 2**31) as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
