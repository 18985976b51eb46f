"""Finding Landsat and Sentinel-2 products on disk by their names (directories, ``.SAFE`` folders, archives).

Only names are looked at here; opening a product is :func:`gmsdask.io.open_scene`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import UnknownProductError

__all__ = ["ARCHIVE_SUFFIXES", "find_products", "is_product_name", "product_paths"]

#: Landsat Collection 1/2 product identifiers (``LC08_L1TP_016037_20170813_20170814_01_RT``).
LANDSAT_PRODUCT_NAME = re.compile(r"L[CTEO]0[4-9]_[A-Z0-9]{4}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}")
#: Sentinel-2 product names (compact SAFE names, and the older ``OPER`` product/tile names).
SENTINEL2_PRODUCT_NAME = re.compile(r"S2[ABC]_(?:MSIL1C|MSIL2A)_\d{8}T\d{6}_\w+|S2[ABC]_OPER_[\w.\-]+")
#: Archive suffixes a product may be delivered in, longest first.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".zip")


def _product_stem(name: str) -> str:
    """``name`` without an archive suffix and without ``.SAFE``."""
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len(".SAFE")] if name.upper().endswith(".SAFE") else name


def is_product_name(path: str | Path, *, is_dir: bool | None = None) -> bool:
    """Whether ``path`` is named like a Landsat or Sentinel-2 product (directory, ``.SAFE`` or archive).

    Files must be archives (``.tar``, ``.tar.gz``, ``.tgz``, ``.zip``); directories must not carry another
    suffix than ``.SAFE``. ``is_dir`` defaults to what the file system says.
    """
    path = Path(path)
    name = path.name
    directory = path.is_dir() if is_dir is None else is_dir
    if not directory and not name.lower().endswith(ARCHIVE_SUFFIXES):
        return False
    stem = _product_stem(name)
    if directory and stem != name and not name.upper().endswith(".SAFE"):
        return False
    return bool(LANDSAT_PRODUCT_NAME.fullmatch(stem) or SENTINEL2_PRODUCT_NAME.fullmatch(stem))


def find_products(folder: str | Path) -> list[Path]:
    """The products below ``folder``, sorted; product directories are not searched further, hidden entries
    are skipped."""
    found: list[Path] = []
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        for entry in sorted(current.iterdir()):
            if entry.name.startswith("."):
                continue
            if is_product_name(entry):
                found.append(entry)
            elif entry.is_dir():
                pending.append(entry)
    return sorted(found)


def product_paths(paths: Iterable[str | Path] | str | Path) -> list[Path]:
    """The products named by ``paths``: products (or any file) as given, other folders searched with
    :func:`find_products`. A path that does not exist raises :class:`UnknownProductError` naming it."""
    given = [paths] if isinstance(paths, (str, Path)) else list(paths)
    products: list[Path] = []
    for raw in given:
        path = Path(raw)
        if not path.exists():
            raise UnknownProductError(path, "no such product or folder")
        if path.is_dir() and not is_product_name(path):
            products.extend(find_products(path))
        else:
            products.append(path)
    return products
