"""Where tile cubes live: a local directory or an object-store URL, opened as Icechunk repositories.

A cube's location is ``<path_procdata_MGRS>/<virtual_sensor_name>/<TILE>.icechunk``; ``path_procdata_MGRS`` may be a
local path or a URL (``s3://bucket/prefix``, ``gs://bucket/prefix``). The storage backend follows the URL scheme.
Object-store endpoints and regions come from :class:`CubeStorageOptions` (by default from the usual
``AWS_ENDPOINT_URL``/``AWS_REGION`` environment variables); credentials always come from the environment or the
instance profile through Icechunk's ``from_env`` (gmsdask never stores credentials).

Icechunk commits are optimistic: a commit fails with a conflict when the branch moved since the session started,
and gmsdask then retries (:mod:`gmsdask.io.cube_writer`). That check needs an atomic compare-and-swap of the branch
reference, which object stores provide but Icechunk's local file-system storage does not yet (it warns "not safe for
concurrent commits", earth-mover/icechunk#804 and #1494). :func:`commit_guard` therefore makes the few milliseconds
of a local commit (read the branch tip, compare, write) exclusive with ``fcntl.flock`` on ``<TILE>.icechunk.commit``;
slot allocation and the pixel writes stay lock-free, and object stores need no lock at all.

A new local cube is written in a hidden staging directory beside its location and renamed into place once it holds
its first commit (:func:`staged_repository`), so a tile never shows up half-created or empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import icechunk

from ..errors import ConfigError, CubeWriteError, ProcessingError

__all__ = ["CubeStorageOptions", "cube_location", "is_url", "open_repository", "repository_exists",
           "commit_guard", "write_guard", "normalize_location", "staged_repository",
           "quiet_handled_icechunk_warnings"]

_SCHEMES = ("s3", "gs")
_logger = logging.getLogger(__name__)
#: Icechunk's log filter for gmsdask's processes: its warnings that gmsdask handles are not shown. The local
#: storage warns at every open that it has no atomic commits (:func:`commit_guard` makes them exclusive), and a
#: session warns when a rebase fails (the cube writer then writes the scene again on a new session).
_ICECHUNK_LOG = "warn,icechunk::storage::object_store=error,icechunk::session=error"


def quiet_handled_icechunk_warnings() -> None:
    """Set Icechunk's log filter (process-wide) so that the warnings gmsdask handles stay silent; a filter in
    the ``ICECHUNK_LOG`` environment variable wins. The CLI and the process controller call it, and so does each
    scene task on a worker (a worker writes many cubes: one warning per open floods its log)."""
    icechunk.set_logs_filter(os.environ.get("ICECHUNK_LOG", _ICECHUNK_LOG))


@dataclass(frozen=True)
class CubeStorageOptions:
    """How to reach an object store (ignored for local cubes).

    ``endpoint_url``: a non-AWS S3 API (MinIO, a local test server); ``allow_http`` is implied for ``http://``
    endpoints; ``region``: the bucket's region; ``force_path_style``: ``bucket`` in the path, not the host name
    (needed by most S3 APIs other than AWS).
    """

    endpoint_url: str | None = None
    region: str | None = None
    force_path_style: bool = False

    @classmethod
    def from_env(cls) -> CubeStorageOptions:
        """Options from ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) and ``AWS_REGION``/``AWS_DEFAULT_REGION``."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
        return cls(endpoint_url=endpoint, region=region, force_path_style=endpoint is not None)


def normalize_location(location: str | os.PathLike[str]) -> str:
    """A cube location as text: URLs keep their ``scheme://`` (``pathlib.Path`` folds it to ``scheme:/``),
    local paths become absolute."""
    text = os.fspath(location)
    for scheme in _SCHEMES:
        if text.startswith(f"{scheme}:/") and not text.startswith(f"{scheme}://"):
            return f"{scheme}://" + text[len(scheme) + 2:]
        if text.startswith(f"{scheme}://"):
            return text.rstrip("/")
    if "://" in text:
        raise ConfigError("path_procdata_MGRS", f"{text!r}: unsupported URL scheme; use a local path, "
                                                f"{', '.join(s + '://' for s in _SCHEMES)}")
    return str(Path(text).expanduser().absolute())


def is_url(location: str | os.PathLike[str]) -> bool:
    """True when the location is an object-store URL rather than a local path."""
    return "://" in normalize_location(location)


def cube_location(root: str | os.PathLike[str], sensor: str, tile: str) -> str:
    """``<root>/<sensor>/<TILE>.icechunk`` for a local root or a URL root."""
    base = normalize_location(root)
    if is_url(base):
        return f"{base}/{sensor}/{tile}.icechunk"
    return str(Path(base) / sensor / f"{tile}.icechunk")


def _storage(location: str, options: CubeStorageOptions | None) -> icechunk.Storage:
    if not is_url(location):
        return icechunk.local_filesystem_storage(location)
    scheme, rest = location.split("://", 1)
    bucket, _, prefix = rest.partition("/")
    if not bucket or not prefix:
        raise ConfigError("path_procdata_MGRS", f"{location!r}: a cube URL needs a bucket and a prefix")
    if scheme == "gs":
        return icechunk.gcs_storage(bucket=bucket, prefix=prefix, from_env=True)
    options = options or CubeStorageOptions.from_env()
    endpoint = options.endpoint_url
    return icechunk.s3_storage(bucket=bucket, prefix=prefix, region=options.region, endpoint_url=endpoint,
                               allow_http=bool(endpoint and endpoint.startswith("http://")),
                               force_path_style=options.force_path_style, from_env=True)


def repository_exists(location: str | os.PathLike[str], options: CubeStorageOptions | None = None) -> bool:
    """True when an Icechunk repository is at ``location``."""
    location = normalize_location(location)
    if not is_url(location) and not Path(location).is_dir():
        return False
    return bool(icechunk.Repository.exists(_storage(location, options)))


def open_repository(location: str | os.PathLike[str], *, create: bool = False,
                    options: CubeStorageOptions | None = None) -> icechunk.Repository:
    """The Icechunk repository at ``location``; ``create`` makes an empty one where there is none.

    Raises :class:`~gmsdask.errors.ProcessingError` naming the location when there is no repository and
    ``create`` is false, or when the storage cannot be reached.
    """
    location = normalize_location(location)
    try:
        if not create:
            if not repository_exists(location, options):
                raise ProcessingError(location, "cube", "no Icechunk cube at this location")
            return icechunk.Repository.open(_storage(location, options))
        if not is_url(location):
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        with commit_guard(location):
            try:
                return icechunk.Repository.open_or_create(_storage(location, options))
            except icechunk.IcechunkError:
                # on object storage another process may have created it between the check and the create
                return icechunk.Repository.open(_storage(location, options))
    except icechunk.IcechunkError as error:
        raise ProcessingError(location, "cube", f"cannot open the Icechunk repository: {error}") from error


@contextlib.contextmanager
def commit_guard(location: str | os.PathLike[str]) -> Iterator[None]:
    """Makes a commit (or the creation of a repository) atomic on a local file system; no-op for object stores.

    The lock file ``<TILE>.icechunk.commit`` sits next to the repository, so it never becomes part of it.
    """
    with _file_lock(location, ".commit"):
        yield


@contextlib.contextmanager
def write_guard(location: str | os.PathLike[str]) -> Iterator[None]:
    """Makes a whole scene write (slot allocation to commit) exclusive among the writers of one local cube;
    no-op for object stores. The cube writer takes it for small writes only: two writers that append a slot at
    once collide at the commit (Icechunk cannot rebase two appends) and the loser writes its slot again, which
    costs more than waiting for a small write. Lock file: ``<TILE>.icechunk.write``, beside the repository."""
    with _file_lock(location, ".write"):
        yield


@contextlib.contextmanager
def _file_lock(location: str | os.PathLike[str], suffix: str) -> Iterator[None]:
    location = normalize_location(location)
    if is_url(location):
        yield
        return
    lock_path = PurePosixPath(location).with_name(PurePosixPath(location).name + suffix)
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _check_free(location: str) -> None:
    """Raises when something other than an empty directory is at ``location`` (``os.rename`` replaces only that)."""
    target = Path(location)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise CubeWriteError(location, "cube", "something that is no Icechunk repository is at this location; "
                                               "move it away to write the cube there")


@contextlib.contextmanager
def staged_repository(location: str | os.PathLike[str], options: CubeStorageOptions | None = None
                      ) -> Iterator[tuple[icechunk.Repository, Callable[[], bool] | None]]:
    """The repository a scene write goes to, and how to publish it (``None``: nothing to publish).

    An existing repository, and any object-store location, is written in place: ``(repository, None)``. A local
    location without a repository gets a new one in a private staging directory beside it,
    ``.<name>.staging-<pid>-<hex>`` (hidden, so a glob of ``*.icechunk`` never lists it); ``publish()`` then
    renames it to ``location`` under :func:`commit_guard` and returns True, or returns False, leaving it, when
    another writer created a repository there meanwhile (the caller moves its commit into that one). The staging
    directory is removed when the context exits, whatever happened, so a write that commits nothing, fails or is
    canceled leaves nothing at ``location``.
    """
    location = normalize_location(location)
    if is_url(location) or repository_exists(location, options):
        yield open_repository(location, create=True, options=options), None
        return
    _check_free(location)  # before the scene is computed, not only when it is published
    target = Path(location)
    staging = target.with_name(f".{target.name}.staging-{os.getpid()}-{uuid.uuid4().hex}")

    def publish() -> bool:
        with commit_guard(location):
            if repository_exists(location, options):
                return False
            _check_free(location)
            os.rename(staging, target)  # atomic on one file system; replaces an empty directory
            return True

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            repo = icechunk.Repository.create(_storage(str(staging), options))
        except icechunk.IcechunkError as error:
            raise ProcessingError(location, "cube", f"cannot create the Icechunk repository: {error}") from error
        yield repo, publish
    finally:
        try:
            if staging.exists():
                shutil.rmtree(staging)
        except OSError as error:  # never hide the write's own outcome behind a failed clean-up
            _logger.warning("cannot remove the staging directory %s: %s", staging, error)
