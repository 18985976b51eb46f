"""The :class:`Catalog`: one object with every catalogue operation (scenes, jobs, level states, tiles)."""

from __future__ import annotations

from .database import CatalogDatabase
from .jobs import JobOperations
from .levels import LevelOperations
from .scenes import SceneOperations

__all__ = ["Catalog"]


class Catalog(SceneOperations, JobOperations, LevelOperations, CatalogDatabase):
    """The scene/job catalogue in one database.

    Parameters
    ----------
    url
        Any SQLAlchemy URL: ``sqlite:///relative/path.sqlite`` (relative to the working directory, made
        absolute), ``sqlite:////absolute/path.sqlite``, ``sqlite://`` (in memory),
        ``postgresql+psycopg://user@host/db`` (install ``gmsdask[postgres]``). Default: ``JobConfig().db_url``.
        A catalogue of an older gmsdask is upgraded when opened (see :mod:`gmsdask.catalog.migrate`).
    create
        Whether a missing catalogue is created (a SQLite file and its folder; the tables). Read-only commands
        pass False, so that a mistyped path is an error instead of a new empty catalogue.

    Raises
    ------
    CatalogError
        If the URL is invalid, its driver is missing, the file is not a database, or the catalogue does not
        exist and ``create`` is False; the message names the file or URL (never a password).

    Notes
    -----
    ``url``, ``repr()`` and pickles carry the URL without its password: a process that unpickles a
    PostgreSQL catalogue authenticates as libpq does (``PGPASSWORD``, ``~/.pgpass``). A catalogue pickles as
    its URL, so it can be handed to Dask tasks.
    """
