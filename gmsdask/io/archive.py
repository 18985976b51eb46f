"""Access to the files of a product delivered as a directory, ``.tar``, ``.tar.gz`` or ``.zip``, in place.

Nothing is unpacked: metadata members are read with ``tarfile``/``zipfile`` and rasters are opened through
GDAL's virtual file systems (``/vsitar/``, ``/vsizip/``).
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
                with tarfile.open(path) as archive:
                    members = tuple(m.name.lstrip("./") for m in archive.getmembers() if m.isfile())
            except (tarfile.TarError, EOFError, OSError, zlib_error()) as err:
                raise ProductError(path, f"truncated or corrupt tar archive ({err})") from None
            return cls(path, "tar", members)
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
