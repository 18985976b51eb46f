"""gmsdask's readers as an xarray backend: ``xr.open_datatree(path, engine="gmsdask")`` opens a Landsat or
Sentinel-2 product exactly as :func:`gmsdask.open_scene` does (and ``xr.open_dataset(path, engine="gmsdask",
group="r10m")`` one of its resolution groups)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from .open import open_scene
from .product_name import is_product_stem, product_stem

__all__ = ["GmsdaskBackendEntrypoint"]

def _drop(tree: xr.DataTree, drop_variables: str | Iterable[str] | None) -> xr.DataTree:
    if not drop_variables:
        return tree
    names = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables)
    return tree.map_over_datasets(lambda ds: ds.drop_vars([n for n in names if n in ds.variables]))


class GmsdaskBackendEntrypoint(BackendEntrypoint):
    """Landsat Collection 1/2 and Sentinel-2 L1C/L2A products (folders, archives, ``.SAFE``, MTL files)."""

    description = "Landsat and Sentinel-2 products as gmsdask scene trees (lazy, chunked, homogenized metadata)"
    url = "https://github.com/gmsdask/gmsdask"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group", "chunks")
    supports_groups = True

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = Path(filename_or_obj)
        return path.name.endswith(("_MTL.txt", "_MTL.xml")) or is_product_stem(product_stem(path.name))

    def open_datatree(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                      chunks: Any = None, **_: Any) -> xr.DataTree:
        return _drop(open_scene(filename_or_obj, chunks=chunks), drop_variables)

    def open_groups_as_dict(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                            chunks: Any = None, **_: Any) -> dict[str, xr.Dataset]:
        tree = self.open_datatree(filename_or_obj, drop_variables=drop_variables, chunks=chunks)
        return {node.path: node.to_dataset() for node in tree.subtree}

    def open_dataset(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                     group: str | None = None, chunks: Any = None, **_: Any) -> xr.Dataset:
        """One group of the scene (default: the finest resolution group), with the root attrs."""
        tree = self.open_datatree(filename_or_obj, drop_variables=drop_variables, chunks=chunks)
        if group is None:
            from ..geometry import resolution_groups

            group = next(iter(resolution_groups(tree, "open_dataset")))
        dataset = tree[group.strip("/")].to_dataset()
        return dataset.assign_attrs({**tree.attrs, **dataset.attrs})
