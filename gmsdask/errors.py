"""The one exception hierarchy of gmsdask.

Every error names the file (or configuration key) it is about and what is wrong with it, so that a user
running a job over thousands of products can find the culprit from the message alone.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "GmsdaskError",
    "ConfigError",
    "ProductError",
    "UnknownProductError",
    "MetadataError",
    "BandFileError",
    "ProcessingError",
    "CubeWriteError",
    "CubeWriteCanceled",
    "DiskFullError",
    "CatalogError",
    "JobError",
]


class GmsdaskError(Exception):
    """Base class of every error raised on purpose by gmsdask."""


class ConfigError(GmsdaskError, ValueError):
    """An invalid or unknown configuration option.

    Parameters
    ----------
    key
        The option's name.
    problem
        What is wrong, including the allowed values where there is a closed set.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"configuration option {key!r}: {problem}")


class ProductError(GmsdaskError):
    """A satellite product that cannot be read.

    Parameters
    ----------
    path
        The product, or the file inside it, that is at fault.
    problem
        What is wrong with it.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnknownProductError(ProductError):
    """The path exists but is no product type gmsdask knows (or it does not exist)."""


class MetadataError(ProductError):
    """A metadata file (MTL, MTD_*.xml, ANG) is missing, corrupt, or lacks a required field."""


class BandFileError(ProductError):
    """A band file named by the metadata is missing or cannot be decoded."""


class ProcessingError(GmsdaskError):
    """A processing level failed for one scene."""

    def __init__(self, scene: str, level: str, problem: str) -> None:
        self.scene = scene
        self.level = level
        self.problem = problem
        super().__init__(f"{scene}: {level} failed: {problem}")


class CubeWriteError(ProcessingError):
    """A scene could not be written into a tile cube (storage full, unresolved conflicts, an old cube ...).

    Nothing of the failed write is visible: the cube keeps its last commit.
    """


class CubeWriteCanceled(CubeWriteError):
    """A cube write was canceled before its commit; the uncommitted transaction was dropped."""


class DiskFullError(ProcessingError):
    """A level's outputs (level products, cube slots) could not be written: no space left on the device
    (``ENOSPC``). The message names where the outputs go; free space there and rerun the job."""


class CatalogError(GmsdaskError):
    """The catalogue cannot be opened, or a record it is asked for does not exist."""


class JobError(GmsdaskError):
    """A job cannot be created, edited or run as asked."""
