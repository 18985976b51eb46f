"""Access to the files of a product delivered as a directory, ``.tar``, ``.tar.gz`` or ``.zip``, in place.

Nothing is unpacked: metadata members are read with ``tarfile``/``zipfile`` and rasters are opened through
GDAL's virtual file systems (``/vsitar/``, ``/vsizip/``).

A tar archive is indexed once per open: the one pass over it records where each member's bytes start, and for a
compressed archive (``.tar.gz``, where reaching a member means decompressing everything before it) it also keeps
the small metadata members' content, so reading the MTL, ANG or XML files afterwards decompresses nothing again.
Rasters are left to GDAL, which keeps its own index of the archive.
"""

from __future__ import annotations

import fnmatch
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import MetadataError, ProductError, UnknownProductError

__all__ = ["ProductFiles"]

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
#: Members never kept in memory by the index of a compressed archive: rasters, which GDAL reads itself.
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".nc", ".h5")
#: Larger members are not kept either (a metadata file of the providers is at most a few MiB).
_MAX_KEPT_MEMBER_BYTES = 16 * 2**20
#: gzip, bzip2 and xz signatures: member offsets of such archives are offsets in the decompressed stream
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


@dataclass(frozen=True)
class _TarIndex:
    """Where each regular member's bytes sit in an uncompressed tar (offset, size), and the kept content of the
    metadata members of a compressed one."""

    offsets: dict[str, tuple[int, int]]
    kept: dict[str, bytes]
    compressed: bool


def _index_tar(path: Path) -> tuple[tuple[str, ...], _TarIndex]:
    """One pass over a tar archive: its regular members, and what reading them later needs."""
    with path.open("rb") as raw:
        compressed = raw.read(6).startswith(_COMPRESSED_MAGIC)  # whatever the name says
    names: list[str] = []
    offsets: dict[str, tuple[int, int]] = {}
    kept: dict[str, bytes] = {}
    # a compressed archive is streamed: members come in order and the small ones are read on the way
    with tarfile.open(path, "r|*" if compressed else "r:") as archive:
        for member in archive:
            if not member.isfile():
                continue
            name = member.name.lstrip("./")
            names.append(name)
            offsets[name] = (member.offset_data, member.size)
            if compressed and _keep(name, member.size):
                extracted = archive.extractfile(member)
                kept[name] = extracted.read() if extracted is not None else b""
    return tuple(names), _TarIndex(offsets, kept, compressed)


def _keep(name: str, size: int) -> bool:
    return size <= _MAX_KEPT_MEMBER_BYTES and not name.lower().endswith(_RASTER_SUFFIXES)


@dataclass(frozen=True)
class ProductFiles:
    """The member files of one product container.

    Attributes
    ----------
    path
        The directory or archive, absolute.
    kind
        ``"dir"``, ``"tar"`` or ``"zip"``.
    members
        Every regular file, as POSIX paths relative to the container.
    """

    path: Path
    kind: str
    members: tuple[str, ...] = field(repr=False)
    _tar_index: _TarIndex | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "ProductFiles":
        """List a container's files; a missing path or a truncated archive raises a ``ProductError``."""
        path = Path(path).expanduser().absolute()
        if not path.exists():
            raise UnknownProductError(path, "no such file or directory")
        if path.is_dir():
            members = tuple(sorted(
                PurePosixPath(os.path.relpath(os.path.join(root, name), path)).as_posix()
                for root, _, names in os.walk(path) for name in names
            ))
            return cls(path, "dir", members)
        name = path.name.lower()
        if name.endswith(_TAR_SUFFIXES):
            try:
                members, index = _index_tar(path)
            except (tarfile.TarError, EOFError, OSError, zlib_error()) as err:
                raise ProductError(path, f"truncated or corrupt tar archive ({err})") from None
            return cls(path, "tar", members, index)
        if name.endswith(".zip"):
            try:
                with zipfile.ZipFile(path) as archive:
                    members = tuple(i.filename for i in archive.infolist() if not i.is_dir())
                    bad = archive.testzip() if path.stat().st_size < 64 * 2**20 else None
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise ProductError(path, f"truncated or corrupt zip archive ({err})") from None
            if bad is not None:
                raise ProductError(path, f"corrupt zip archive: member {bad} fails its CRC check")
            return cls(path, "zip", members)
        raise UnknownProductError(path, "not a product directory, .tar, .tar.gz or .zip archive")

    def find(self, pattern: str) -> list[str]:
        """Members whose path matches a glob ``pattern`` (matched against the full relative path)."""
        return [m for m in self.members if fnmatch.fnmatch(m, pattern)]

    def find_one(self, pattern: str, what: str) -> str:
        """The single member matching ``pattern``; a ``MetadataError`` names ``what`` is missing or ambiguous."""
        found = self.find(pattern)
        if not found:
            raise MetadataError(self.path, f"no {what} found (looked for {pattern})")
        if len(found) > 1:
            raise MetadataError(self.path, f"more than one {what}: {', '.join(found)}")
        return found[0]

    def describe(self, member: str) -> str:
        """A human-readable name of a member for error messages (``archive.tar.gz!/x_MTL.txt``)."""
        return str(self.path / member) if self.kind == "dir" else f"{self.path}!/{member}"

    def read_bytes(self, member: str) -> bytes:
        """The content of a member; a missing or unreadable one raises ``MetadataError`` naming it."""
        try:
            if self.kind == "dir":
                return (self.path / member).read_bytes()
            if self.kind == "tar" and self._tar_index is not None:
                return self._read_indexed(member, self._tar_index)
            if self.kind == "tar":
                with tarfile.open(self.path) as archive:
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        raise KeyError(member)
                    return extracted.read()
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(member)
        except (KeyError, FileNotFoundError):
            raise MetadataError(self.describe(member), "file is missing") from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib_error()) as err:
            raise MetadataError(self.describe(member), f"cannot be read ({err})") from None

    def _read_indexed(self, member: str, index: _TarIndex) -> bytes:
        """A tar member through the index: kept content, or a seek in an uncompressed archive; only a large or
        raster member of a compressed archive needs another pass (GDAL reads those, not this method)."""
        if member in index.kept:
            return index.kept[member]
        if member not in index.offsets:
            raise KeyError(member)
        if index.compressed:
            with tarfile.open(self.path, "r|*") as archive:
                for entry in archive:
                    if entry.name.lstrip("./") == member:
                        extracted = archive.extractfile(entry)
                        return extracted.read() if extracted is not None else b""
            raise KeyError(member)
        offset, size = index.offsets[member]
        with self.path.open("rb") as raw:
            raw.seek(offset)
            content = raw.read(size)
        if len(content) != size:
            raise EOFError(f"{member} ends after {len(content)} of {size} bytes")
        return content

    def read_text(self, member: str) -> str:
        raw = self.read_bytes(member)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def gdal_path(self, member: str) -> str:
        """The path GDAL opens a member by, reading archives in place."""
        if self.kind == "dir":
            return str(self.path / member)
        prefix = "/vsitar/" if self.kind == "tar" else "/vsizip/"
        return f"{prefix}{self.path}/{member}"

    def has(self, member: str) -> bool:
        return member in self._member_set

    @property
    def _member_set(self) -> frozenset[str]:
        return frozenset(self.members)


def zlib_error() -> type[Exception]:
    """``zlib.error``, which gzip raises for corrupt data and which is no subclass of OSError."""
    import zlib

    return zlib.error
