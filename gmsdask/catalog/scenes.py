"""Catalogue operations on scenes: adding them (from attrs or product folders) and selecting them in SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from ..errors import CatalogError, UnknownProductError
from .database import CatalogDatabase
from .engine import upsert
from .records import SceneRecord
from .schema import JobSceneRow, SceneRow, SceneTileRow
from .values import catalog_tile, chunks, cloud_cover, now, parse_time, time_bound

__all__ = ["REQUIRED_SCENE_ATTRS", "SceneOperations"]

#: Scene attrs (docs/scene-model.md) the catalogue needs.
REQUIRED_SCENE_ATTRS: tuple[str, ...] = (
    "product_id", "product_path", "platform", "sensor", "processing_level", "acquisition_time", "footprint",
)


class SceneOperations(CatalogDatabase):
    """Scene methods of :class:`gmsdask.catalog.Catalog` (one part of it)."""

    def add_scene(self, attrs: Mapping[str, Any], mgrs_tiles: Sequence[str]) -> int:
        """Add a scene from its root attrs (docs/scene-model.md) and return its id.

        A product already catalogued (same ``product_id``) keeps its id; its path, metadata and tiles are
        updated. A Sentinel-2 scene's own ``mgrs_tile`` is always among its tiles.
        """
        values, tiles = _scene_values(attrs, mgrs_tiles)

        def add(session: Session) -> int:
            scene_id = upsert(session, SceneRow.__table__, {**values, "added_at": now()}, ["product_id"],
                              values)
            session.execute(delete(SceneTileRow).where(SceneTileRow.scene_id == scene_id))
            if tiles:
                session.execute(insert(SceneTileRow), [{"scene_id": scene_id, "tile": tile} for tile in tiles])
            return int(scene_id)

        return self._write(add, retry_on_conflict=True)

    def add_products(
        self,
        paths: Iterable[str | Path] | str | Path,
        *,
        open_scene: Callable[[Path], Any] | None = None,
        tiles_for_footprint: Callable[[str], Iterable[str]] | None = None,
    ) -> list[int]:
        """Catalogue products and return their scene ids (each once, in the order found).

        ``paths`` are products (directories, ``.SAFE`` folders, ``.tar``/``.tar.gz``/``.zip`` archives) or
        folders searched with :func:`gmsdask.io.discovery.find_products`; other files are ignored. Each
        product is opened with ``open_scene(path)`` (default :func:`gmsdask.io.open_scene`) for its root
        attrs, and its MGRS tiles are ``tiles_for_footprint(footprint_wkt)`` (default
        :func:`gmsdask.mgrs_grid.tiles_intersecting`). A product that cannot be opened raises (naming it);
        the products added before it stay catalogued. A missing path raises :class:`CatalogError`.
        """
        from ..io.discovery import product_paths  # lazy: gmsdask.io imports the raster stack

        if open_scene is None:
            from ..io import open_scene as default_open_scene
            open_scene = default_open_scene
        if tiles_for_footprint is None:
            from ..mgrs_grid import tiles_intersecting
            tiles_for_footprint = tiles_intersecting
        try:
            products = product_paths(paths)
        except UnknownProductError as err:
            raise CatalogError(str(err)) from None
        scene_ids: list[int] = []
        for product in products:
            attrs = dict(open_scene(product).attrs)
            attrs.setdefault("product_path", str(product))
            if not attrs.get("footprint"):
                raise CatalogError(f"scene {product}: attrs lack footprint")
            scene_id = self.add_scene(attrs, list(tiles_for_footprint(str(attrs["footprint"]))))
            if scene_id not in scene_ids:
                scene_ids.append(scene_id)
        return scene_ids

    def scene(self, scene_id: int) -> SceneRecord:
        """The scene with id ``scene_id``."""

        rows = self._statements(lambda connection: list(connection.execute(_SCENE_WITH_TILES, {"scene_id": scene_id})),
                                write=False)
        if not rows:
            raise CatalogError(f"no scene with id {scene_id} in the catalogue")
        row = rows[0]
        return SceneRecord(row.id, row.product_id, row.product_path, row.platform, row.sensor, row.processing_level,
                           row.acquisition_time, row.cloud_cover_pct, row.footprint,
                           [found.tile for found in rows if found.tile is not None], row.added_at)

    def scene_id(self, product_id: str) -> int:
        """The id of the scene of product ``product_id``."""

        def find(session: Session) -> int:
            found = session.scalars(select(SceneRow.id).where(SceneRow.product_id == product_id)).one_or_none()
            if found is None:
                raise CatalogError(f"no scene of product {product_id!r} in the catalogue")
            return found

        return self._read(find)

    def scenes(
        self,
        ids: Iterable[int] | None = None,
        *,
        tile: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        max_cloud: float | None = None,
        platform: str | Iterable[str] | None = None,
        job_id: int | None = None,
    ) -> list[SceneRecord]:
        """Scenes matching every given filter, by acquisition time (then id).

        ``start``/``end`` are inclusive (a bare date as ``end`` includes that whole day; naive times are UTC),
        ``max_cloud`` keeps scenes with a known cloud cover <= it (percent), ``tile`` those touching that
        MGRS tile, ``platform`` one platform or several (``"LANDSAT_8"``), ``job_id`` the scenes of that job.
        Unknown ``ids`` or ``job_id`` raise :class:`CatalogError`.
        """
        wanted_ids = None if ids is None else list(dict.fromkeys(int(i) for i in ids))
        query = select(SceneRow).order_by(SceneRow.acquisition_time, SceneRow.id)
        if tile is not None:
            wanted_tile = catalog_tile(tile)
            query = query.where(SceneRow.id.in_(
                select(SceneTileRow.scene_id).where(SceneTileRow.tile == wanted_tile)))
        if job_id is not None:
            query = query.where(SceneRow.id.in_(select(JobSceneRow.scene_id).where(JobSceneRow.job_id == job_id)))
        if start is not None:
            query = query.where(SceneRow.acquisition_time >= time_bound(start, upper=False)[0])
        if end is not None:
            bound, inclusive = time_bound(end, upper=True)
            query = query.where(SceneRow.acquisition_time <= bound if inclusive else SceneRow.acquisition_time < bound)
        if max_cloud is not None:
            query = query.where(SceneRow.cloud_cover_pct <= float(max_cloud))
        if platform is not None:
            platforms = [platform] if isinstance(platform, str) else list(platform)
            query = query.where(SceneRow.platform.in_(platforms))

        def find(session: Session) -> list[SceneRecord]:
            if job_id is not None:
                self._job_row(session, job_id)
            if wanted_ids is None:
                return _records(session, query)
            missing = self._missing_scene_ids(session, wanted_ids)
            if missing:
                raise CatalogError(f"no scene with id {', '.join(map(str, missing))} in the catalogue")
            records = [record for chunk in chunks(wanted_ids)
                       for record in _records(session, query.where(SceneRow.id.in_(chunk)))]
            return sorted(records, key=lambda record: (record.acquisition_time, record.id))

        return self._read(find)


#: One scene and its tiles in one prepared statement (a row per tile; one row with tile NULL if it has none).
_SCENE_WITH_TILES = (select(SceneRow.__table__, SceneTileRow.tile)
                     .outerjoin(SceneTileRow, SceneTileRow.scene_id == SceneRow.id)
                     .where(SceneRow.id == bindparam("scene_id")).order_by(SceneTileRow.tile))


def _records(session: Session, query: Any) -> list[SceneRecord]:
    """The scenes ``query`` selects, with their tiles (one more query)."""
    rows = list(session.scalars(query))
    tiles: dict[int, list[str]] = {row.id: [] for row in rows}
    for chunk in chunks(list(tiles)):
        tile_query = (select(SceneTileRow.scene_id, SceneTileRow.tile)
                      .where(SceneTileRow.scene_id.in_(chunk)).order_by(SceneTileRow.tile))
        for scene_id, tile in session.execute(tile_query):
            tiles[scene_id].append(tile)
    return [SceneRecord(row.id, row.product_id, row.product_path, row.platform, row.sensor, row.processing_level,
                        row.acquisition_time, row.cloud_cover_pct, row.footprint, tiles[row.id], row.added_at)
            for row in rows]


def _scene_values(attrs: Mapping[str, Any], mgrs_tiles: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The ``scenes`` columns from a scene's root attrs, validated, and its sorted tiles."""
    product = str(attrs.get("product_id") or attrs.get("product_path") or "<unnamed scene>")
    missing = [key for key in REQUIRED_SCENE_ATTRS if attrs.get(key) in (None, "")]
    if missing:
        raise CatalogError(f"scene {product}: attrs lack {', '.join(missing)}")
    footprint = str(attrs["footprint"])
    try:
        shapely.from_wkt(footprint)
    except shapely.errors.ShapelyError as err:
        raise CatalogError(f"scene {product}: footprint is not valid WKT ({err})") from None
    try:
        cover = cloud_cover(attrs.get("cloud_cover_pct"))
    except (TypeError, ValueError):
        raise CatalogError(f"scene {product}: cloud_cover_pct {attrs.get('cloud_cover_pct')!r} "
                           "is not a number") from None
    tiles = [catalog_tile(tile, f"scene {product}") for tile in mgrs_tiles]
    if attrs.get("mgrs_tile"):
        tiles.append(catalog_tile(str(attrs["mgrs_tile"]), f"scene {product}"))
    values = {
        "product_id": product,
        "product_path": str(attrs["product_path"]),
        "platform": str(attrs["platform"]),
        "sensor": str(attrs["sensor"]),
        "processing_level": str(attrs["processing_level"]),
        "acquisition_time": parse_time(attrs["acquisition_time"], f"scene {product}: acquisition_time"),
        "cloud_cover_pct": cover,
        "footprint": footprint,
    }
    return values, sorted(set(tiles))
