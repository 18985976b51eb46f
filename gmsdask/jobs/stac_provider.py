"""The STAC provider: products from a STAC API (``pystac-client``) or a static catalogue (``pystac``).

Items are searched by the tile's footprint and the task's dates, then kept when they belong to the tile
(``grid:code`` ``MGRS-<tile>``, ``s2:mgrs_tile``, ``mgrs:*`` properties, or ``_T<tile>_`` in the id), have the
wanted level and a cloud cover (``eo:cloud_cover``) within the task's maximum. The product asset (key
``product``, or the first asset named like a product: a ``.SAFE`` folder or an archive) is copied through
``fsspec`` into the provider's download folder, where the local archive and the catalogue find it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec
import pystac

from ..mgrs_grid import tile_polygon
from .product_names import parse_product_name
from .providers import (
    ProductQuery,
    ProductRef,
    ProviderError,
    copy_product,
    is_product_name,
)

__all__ = ["StacProvider"]

log = logging.getLogger("gmsdask.jobs.providers")


def _is_static(url: str) -> bool:
    """A catalogue file on disk (or any ``.json`` document) rather than a STAC API root."""
    parsed = urlparse(url)
    return parsed.scheme in ("", "file") or url.endswith(".json")


def _item_tile(item: pystac.Item) -> str | None:
    props = item.properties
    code = str(props.get("grid:code", ""))
    if code.startswith("MGRS-"):
        return code.removeprefix("MGRS-")
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"]).removeprefix("T")
    if all(props.get(key) is not None for key in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square")):
        return f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    info = parse_product_name(item.id)
    return info.tile if info else None


def _item_level(item: pystac.Item) -> str | None:
    info = parse_product_name(item.id)
    if info is not None:
        return info.level
    text = " ".join(str(item.properties.get(k, "")) for k in ("processing:level", "s2:product_type", "product:type"))
    text += f" {item.collection_id or ''}"
    lowered = text.lower()
    return "l1c" if "l1c" in lowered else "l2a" if "l2a" in lowered else None


def _product_asset(item: pystac.Item) -> str:
    if "product" in item.assets:
        return item.assets["product"].get_absolute_href() or item.assets["product"].href
    for asset in item.assets.values():
        href = asset.get_absolute_href() or asset.href
        name = href.rstrip("/").rsplit("/", 1)[-1]
        if is_product_name(name, is_dir=name.upper().endswith(".SAFE")):
            return href
    raise ProviderError(f"STAC item {item.id}: no product asset (key 'product', or a .SAFE/.zip/.tar asset)")


class StacProvider:
    """Products of a STAC API or static STAC catalogue.

    Parameters
    ----------
    name
        The provider's name in the task table.
    url
        STAC API root (``https://...``) or static catalogue (``/path/catalog.json``).
    collections
        Level (``l1c``/``l2a``) -> collection ids to search on an API (ignored for static catalogues).
    download_folder
        Where products are copied; products are stored under ``<download_folder>/<tile>/``.
    """

    def __init__(self, name: str, url: str, collections: Mapping[str, Sequence[str]], download_folder: Path) -> None:
        self.name = name
        self.url = url
        self.collections = {level: list(ids) for level, ids in collections.items()}
        self.download_folder = Path(download_folder)
        self._tiles: dict[str, str] = {}

    def _items(self, query: ProductQuery) -> Iterable[pystac.Item]:
        try:
            if _is_static(self.url):
                return list(pystac.Catalog.from_file(self.url).get_items(recursive=True))
            from pystac_client import Client
            from pystac_client.exceptions import APIError

            end = query.end.isoformat() + "T23:59:59Z" if query.end else ".."
            collections = self.collections.get(query.level) or None
            try:
                search = Client.open(self.url).search(
                    collections=collections,
                    intersects=tile_polygon(query.tile).__geo_interface__,
                    datetime=f"{query.start.isoformat()}T00:00:00Z/{end}",
                )
                return list(search.items())
            except APIError as error:  # e.g. a collection the API does not have
                raise ProviderError(f"{self.name}: {self.url} refused the search of collections {collections} "
                                    f"({query.level}): {error}") from error
        except (OSError, pystac.STACError, ValueError) as error:
            raise ProviderError(f"{self.name}: cannot search {self.url}: {error}") from error

    def search(self, query: ProductQuery) -> list[ProductRef]:
        refs: list[ProductRef] = []
        for item in self._items(query):
            day: date | None = item.datetime.date() if item.datetime else None
            cloud = item.properties.get("eo:cloud_cover")
            if _item_tile(item) != query.tile or _item_level(item) != query.level:
                continue
            if day is None or not query.accepts_day(day):
                continue
            if cloud is not None and float(cloud) > query.max_clouds:
                continue
            href = _product_asset(item)
            self._tiles[href] = query.tile
            refs.append(ProductRef(item.id, href, None if cloud is None else float(cloud),
                                   {"collection": item.collection_id}))
        log.info("%s: %d product(s) of %s %s in %s", self.name, len(refs), query.tile, query.level, self.url)
        return refs

    def fetch(self, ref: ProductRef) -> Path:
        name = ref.location.rstrip("/").rsplit("/", 1)[-1]
        tile = self._tiles.get(ref.location, "unknown_tile")
        return copy_product(ref.location, self.download_folder / tile / name, _open_url)


def _open_url(url: str) -> tuple[Any, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path
