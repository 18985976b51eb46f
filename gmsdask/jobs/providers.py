"""Where a routine's tasks get their products: a small provider plugin interface.

A provider answers :meth:`Provider.search` (the products of a tile, dates, level and maximum cloud cover) and
:meth:`Provider.fetch` (make one product available as a local path). Built in:

``local`` (default)
    Scans the ``path_archive`` folder with the catalogue's product discovery; fetching is a no-op.
``stac``
    Any STAC API (``pystac-client``) or static STAC catalogue on disk (``pystac``); the product asset (a SAFE
    folder or archive) is copied into ``<path_archive>/<provider>/<tile>/`` through ``fsspec``.
``cop_dataspace``, ``peps``
    The STAC provider on the public endpoints of the Copernicus Data Space Ecosystem and of CNES (GEODES,
    the successor of PEPS). Downloading from them needs credentials that fsspec's HTTP layer must be given.

More providers (or other URLs/collections for these names) are declared in ``gmsdask.toml`` or
``job_<jid>.toml``: ``[routine.providers.<name>] kind = "stac", url = "...", collections = {l1c = [...]}``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol

# The catalogue's product discovery, imported in this one place (it may move to gmsdask.io.discovery).
from ..catalog import find_products, is_product_name
from ..errors import JobError
from .product_names import parse_product_name

__all__ = [
    "PUBLIC_STAC_ENDPOINTS",
    "LocalProvider",
    "ProductQuery",
    "ProductRef",
    "Provider",
    "ProviderError",
    "fetch_with_retries",
    "find_products",
    "is_product_name",
    "make_provider",
]

log = logging.getLogger("gmsdask.jobs.providers")

#: Public STAC endpoints and collections behind the provider names Sen2Chain users know. Checked against:
#: - cop_dataspace: https://documentation.dataspace.copernicus.eu/APIs/STAC.html (the STAC 1.1 catalogue served under
#:   /v1; the legacy https://catalogue.dataspace.copernicus.eu/stac with its mission-level "SENTINEL-2" collection is
#:   deprecated since 17 November 2025) and its per-level collections "sentinel-2-l1c"/"sentinel-2-l2a";
#: - peps: CNES moved PEPS into GEODES, whose STAC landing page is https://geodes-portal.cnes.fr/api/stac
#:   (https://geodes.cnes.fr/support/api); its Sentinel-2 L1C tiles are the collection "PEPS_S2_L1C"
#:   (https://geodes.cnes.fr/en/get-started-with-geodatahub-api). "PEPS_S2_L2A" follows the same naming but was not
#:   found in that documentation: PEPS distributes Level-1C; a search of a missing collection fails naming it.
PUBLIC_STAC_ENDPOINTS: dict[str, dict[str, Any]] = {
    "cop_dataspace": {"url": "https://stac.dataspace.copernicus.eu/v1",
                      "collections": {"l1c": ["sentinel-2-l1c"], "l2a": ["sentinel-2-l2a"]}},
    "peps": {"url": "https://geodes-portal.cnes.fr/api/stac",
             "collections": {"l1c": ["PEPS_S2_L1C"], "l2a": ["PEPS_S2_L2A"]}},
}


class ProviderError(JobError):
    """A provider cannot be built, searched, or cannot deliver a product (the message names which)."""


@dataclass(frozen=True)
class ProductQuery:
    """What a task asks for: ``level`` products of ``tile`` acquired ``start`` .. ``end`` (inclusive days)."""

    tile: str
    start: date
    end: date | None
    level: Literal["l1c", "l2a"]
    max_clouds: float = 100.0

    def accepts_day(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class ProductRef:
    """One product a provider offers: its name (``product_id``), where it is, and what is known of it."""

    product_id: str
    location: str
    cloud_cover: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """The plugin interface of product providers."""

    name: str

    def search(self, query: ProductQuery) -> list[ProductRef]:
        """The products matching ``query`` (no download)."""
        ...

    def fetch(self, ref: ProductRef) -> Path:
        """A local path of the product of ``ref``; raises on failure (the caller retries)."""
        ...


class LocalProvider:
    """Products already on disk in the archive folders (``path_archive``).

    Sentinel-2 names are pre-selected by tile, day and level; Landsat names by day and level (their MGRS tiles
    are known once the catalogue has opened them). Names that say nothing are never offered.
    """

    def __init__(self, folders: list[Path], name: str = "local") -> None:
        self.name = name
        self.folders = [Path(folder) for folder in folders]

    def search(self, query: ProductQuery) -> list[ProductRef]:
        refs: list[ProductRef] = []
        for folder in self.folders:
            if not folder.is_dir():
                log.warning("%s: archive folder %s does not exist", self.name, folder)
                continue
            for path in find_products(folder):
                info = parse_product_name(path.name)
                if info is None or info.level != query.level or not query.accepts_day(info.acquired):
                    continue
                if info.tile is not None and info.tile != query.tile:
                    continue
                refs.append(ProductRef(info.stem, str(path)))
        return refs

    def fetch(self, ref: ProductRef) -> Path:
        path = Path(ref.location)
        if not path.exists():
            raise ProviderError(f"{self.name}: {path} has disappeared")
        return path


def make_provider(name: str, providers: Mapping[str, Mapping[str, Any]], archive: Path) -> Provider:
    """The provider called ``name``: a declared ``[routine.providers.<name>]`` or a built-in one.

    Raises
    ------
    ProviderError
        For an unknown name or kind (listing the known ones).
    """
    settings = dict(PUBLIC_STAC_ENDPOINTS.get(name, {})) | dict(providers.get(name, {}))
    kind = settings.get("kind", "stac" if name in PUBLIC_STAC_ENDPOINTS else name)
    if kind == "local":
        folders = [Path(f) for f in settings.get("folders", [archive])]
        return LocalProvider(folders, name)
    if kind == "stac":
        if "url" not in settings:
            raise ProviderError(f"provider {name!r}: a STAC provider needs a 'url' ([routine.providers.{name}])")
        from .stac_provider import StacProvider

        return StacProvider(name, str(settings["url"]), settings.get("collections", {}),
                            Path(settings.get("download_folder", archive / name)))
    known = sorted({"local", *PUBLIC_STAC_ENDPOINTS, *providers})
    raise ProviderError(f"unknown provider {name!r} (kind {kind!r}); known: {', '.join(known)}")


def fetch_with_retries(provider: Provider, refs: list[ProductRef], *, tries: int, sleep_minutes: float,
                       logger: logging.Logger, sleep: Callable[[float], None] = time.sleep,
                       ) -> tuple[list[Path], dict[str, str]]:
    """Fetch ``refs``, retrying the failed ones up to ``tries`` rounds ``sleep_minutes`` apart.

    Returns the local paths and, for products that never arrived, product id -> last error.
    """
    pending = list(refs)
    fetched: list[Path] = []
    errors: dict[str, str] = {}
    for attempt in range(1, max(1, tries) + 1):
        failed: list[ProductRef] = []
        for ref in pending:
            try:
                fetched.append(provider.fetch(ref))
                errors.pop(ref.product_id, None)
            except (OSError, ProviderError, ValueError) as error:
                errors[ref.product_id] = f"{type(error).__name__}: {error}"
                failed.append(ref)
                logger.warning("%s: fetch %d/%d of %s failed: %s", provider.name, attempt, tries, ref.product_id,
                               error)
        pending = failed
        if not pending or attempt >= tries:
            break
        sleep(sleep_minutes * 60.0)
    return fetched, errors


def copy_product(source: str, destination: Path, opener: Callable[[str], tuple[Any, str]]) -> Path:
    """Copy product ``source`` (file or folder, any fsspec URL) to ``destination`` via a partial name."""
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    fs, path = opener(source)
    partial = destination.with_name(destination.name + ".part")
    if partial.exists():
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(partial), recursive=True)
    else:
        fs.get(path, str(partial))
    partial.rename(destination)
    return destination
