"""Finding Landsat and Sentinel-2 products on disk by their names (directories, ``.SAFE`` folders, archives).

Only names are looked at here; opening a product is :func:`gmsdask.io.open_scene`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import UnknownProductError
from .product_name import ARCHIVE_SUFFIXES, is_product_stem, product_stem

__all__ = ["ARCHIVE_SUFFIXES", "find_products", "is_product_name", "product_paths"]

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
    stem = product_stem(name)
    if directory and stem != name and not name.upper().endswith(".SAFE"):
        return False
    return is_product_stem(stem)


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
