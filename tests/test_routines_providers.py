"""Routine providers (local, static STAC catalogue, public endpoint names), retries, baselines, removal rules."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pystac
import pytest
from distributed import Client

from gmsdask.catalog import Catalog, SceneRecord
from gmsdask.io.cube import open_cube
from gmsdask.jobs import Job
from gmsdask.jobs.model import RemoveItem, Task
from gmsdask.jobs.product_names import baseline_filter, parse_product_name
from gmsdask.jobs.providers import (
    PUBLIC_STAC_ENDPOINTS,
    ProductQuery,
    ProductRef,
    ProviderError,
    fetch_with_retries,
    make_provider,
)
from gmsdask.jobs.removal import (
    NeededBy,
    clean_folders,
    delete_product,
    select_for_removal,
)
from gmsdask.jobs.validation import parse_day_bound
from gmsdask.mgrs_grid import tile_polygon

from .conftest import data_path

L1C_56JMM = ("sentinel2", "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
L1C_55JGF = ("sentinel2", "S2B_OPER_MSI_L1C_TL_EPAE_20180617T013729_A006677_T55JGF_N02.06.AWSPDS.zip")
LOG = logging.getLogger("test_routines_providers")


def _item(product: Path, tile: str, when: datetime, cloud: float) -> pystac.Item:
    polygon = tile_polygon(tile)
    item = pystac.Item(id=parse_product_name(product.name).stem, geometry=polygon.__geo_interface__,
                       bbox=list(polygon.bounds), datetime=when,
                       properties={"eo:cloud_cover": cloud, "grid:code": f"MGRS-{tile}"})
    item.add_asset("product", pystac.Asset(href=str(product), media_type="application/zip"))
    return item


def test_static_stac_catalogue_provider_fetches_the_tiles_products_into_the_archive(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("GMSDASK_HOME", str(home))
    catalog = pystac.Catalog(id="shared", description="the shared Sentinel-2 L1C products")
    wanted, other = data_path(*L1C_56JMM), data_path(*L1C_55JGF)
    catalog.add_item(_item(wanted, "56JMM", datetime(2018, 6, 29, 0, 2, 41, tzinfo=UTC), 12.0))
    catalog.add_item(_item(other, "55JGF", datetime(2018, 6, 17, 1, 37, 29, tzinfo=UTC), 3.0))
    catalog.normalize_hrefs(str(tmp_path / "stac"))
    catalog.save(pystac.CatalogType.ABSOLUTE_PUBLISHED)
    (home / "config" / "jobs").mkdir(parents=True)
    (home / "config" / "jobs" / "job_stac.toml").write_text(
        f'target_gsd = 600.0\nmgrs_pixel_buffer = 0\n[routine.providers.shared]\nkind = "stac"\n'
        f'url = "{tmp_path / "stac" / "catalog.json"}"\n')
    job = Job("stac")
    job.task_add({"tile": "56JMM", "download": "l1c", "provider": "shared", "date_min": "2018-06-01",
                  "date_max": "2018-06-30", "max_clouds": 50})
    job.task_add({"tile": "56JMM", "download": "l1c", "provider": "shared", "date_min": "2018-06-01",
                  "max_clouds": 10})  # the product's cloud cover (12 %) is above this task's maximum
    job.save()
    report = Job("stac").run(sleep=lambda seconds: pytest.fail("nothing to retry"))
    first, cloudy = report.tasks
    assert first.found == [wanted.name.removesuffix(".zip")] and first.errors == []
    fetched = home / "archive" / "shared" / "56JMM" / wanted.name
    assert fetched.read_bytes() == wanted.read_bytes()
    assert len(first.new_scene_ids) == 1 and first.selected == []  # L1C without compute_l2a: fetched only
    assert first.status == "done" and report.catalog_job_ids == []
    assert cloudy.found == [] and cloudy.status == "empty"
    # compute_l2a admits the Level-1C product: gmsdask's own chain takes it into the tile cube
    job = Job("stac")
    job.task_edit(0, compute_l2a=True)
    job.task_remove(1)
    job.save()
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        report = job.run(client=client)
    (task,) = report.tasks
    assert task.found == first.found and task.new_scene_ids == set()  # found again, already catalogued
    assert task.selected == task.processed == first.found and task.status == "done", task.errors
    (job_id,) = report.catalog_job_ids
    catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    assert catalog.job(job_id).status == "finished"
    (tile,) = catalog.tiles_written(job_id)
    assert tile.tile == "56JMM" and open_cube(tile.path).sizes["x"] == 183  # 109.8 km at 600 m


def test_public_provider_names_map_to_the_stac_provider_without_contacting_them(tmp_path):
    provider = make_provider("cop_dataspace", {}, tmp_path)
    assert provider.url == PUBLIC_STAC_ENDPOINTS["cop_dataspace"]["url"] == "https://stac.dataspace.copernicus.eu/v1"
    assert provider.collections["l2a"] == ["sentinel-2-l2a"] and provider.download_folder == tmp_path / "cop_dataspace"
    assert make_provider("peps", {}, tmp_path).url.startswith("https://")
    overridden = make_provider("peps", {"peps": {"url": "/srv/stac/catalog.json"}}, tmp_path)
    assert overridden.url == "/srv/stac/catalog.json"
    assert make_provider("local", {}, tmp_path).folders == [tmp_path]
    with pytest.raises(ProviderError, match="unknown provider 'scihub'.*cop_dataspace, local, peps"):
        make_provider("scihub", {}, tmp_path)


class _Flaky:
    """A provider whose product is offline at the first attempt."""

    name = "flaky"

    def __init__(self) -> None:
        self.attempts = 0

    def search(self, query: ProductQuery) -> list[ProductRef]:
        return [ProductRef("P1", "/nowhere/P1.zip")]

    def fetch(self, ref: ProductRef) -> Path:
        self.attempts += 1
        if self.attempts == 1:
            raise ProviderError("P1 is offline (being restored from the long-term archive)")
        return Path("/archive/P1.zip")


def test_fetch_retries_tries_times_sleep_minutes_apart():
    waits: list[float] = []
    provider = _Flaky()
    paths, errors = fetch_with_retries(provider, provider.search(None), tries=3, sleep_minutes=4, logger=LOG,
                                       sleep=waits.append)
    assert paths == [Path("/archive/P1.zip")] and errors == {} and waits == [240.0]
    provider = _Flaky()
    paths, errors = fetch_with_retries(provider, provider.search(None), tries=1, sleep_minutes=4, logger=LOG,
                                       sleep=waits.append)
    assert paths == [] and "offline" in errors["P1"] and waits == [240.0]


def test_processing_baseline_filter_inclusive_and_highest_per_acquisition():
    names = ["S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454",
             "S2A_MSIL2A_20221005T115411_N0509_R023_T29UNU_20240101T000000",
             "S2A_MSIL2A_20221015T115411_N0400_R023_T29UNU_20221015T164454",
             "LC08_L2SP_001070_20190114_20200830_02_T2"]
    assert parse_product_name(names[1]).baseline == 5.09 and parse_product_name(names[3]).tile is None
    assert parse_product_name(L1C_55JGF[1]).baseline == 2.06
    assert baseline_filter(names, names, pb_min=4.0, pb_max=4.0, only_max=False) == [names[0], names[2], names[3]]
    assert baseline_filter(names, names, pb_min=0, pb_max=98, only_max=True) == names[1:]


def _scene(scene_id: int, level: str, cloud: float | None, day: date = date(2022, 10, 5)) -> SceneRecord:
    when = datetime(day.year, day.month, day.day, 11, tzinfo=UTC)
    return SceneRecord(scene_id, f"P{scene_id}", f"/archive/P{scene_id}", "SENTINEL-2A", "MSI", level, when, cloud,
                       "POLYGON EMPTY", ["29UNU"], when)


def test_remove_items_new_all_and_inclusive_cloud_threshold():
    scenes = [_scene(1, "L1C", 80.0), _scene(2, "L1C", 79.9), _scene(3, "L2A", 95.0), _scene(4, "L1C", None)]
    assert [s.id for s in select_for_removal(RemoveItem("l1c", "new", 80.0), "29UNU", scenes, {1, 2, 4})] == [1]
    assert [s.id for s in select_for_removal(RemoveItem("l1c", "all"), "29UNU", scenes, set())] == [1, 2, 4]
    assert [s.id for s in select_for_removal(RemoveItem("l2a", "new"), "29UNU", scenes, {1})] == []
    assert select_for_removal(RemoveItem("l1c", "all"), "31UFS", scenes, set()) == []


def test_products_another_routine_still_needs_are_kept():
    other = Task("29UNU", date_min=parse_day_bound("2022-10-01"), compute_l2a=True)
    needed = NeededBy([("routine other", other)], date(2022, 11, 1), frozenset({7}), frozenset({("29UNU", 2)}))
    assert needed.reason(_scene(1, "L1C", 10.0)) == "routine other (tile 29UNU) has not processed it yet"
    assert needed.reason(_scene(2, "L1C", 10.0)) is None  # already in the other routine's cube
    assert needed.reason(_scene(3, "L1C", 10.0, date(2022, 9, 30))) is None  # before its date_min
    assert needed.reason(_scene(7, "L1C", 10.0, date(2021, 1, 1))) == "an unfinished catalogue job holds it"
    inactive = NeededBy([("routine other", other.edited(active=False))], date(2022, 11, 1), frozenset(), frozenset())
    assert inactive.reason(_scene(1, "L1C", 10.0)) is None


def test_deletion_only_inside_managed_folders_and_links_never_followed(tmp_path):
    archive, outside = tmp_path / "archive", tmp_path / "outside"
    archive.mkdir()
    outside.mkdir()
    target = outside / "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip"
    target.write_bytes(b"data")
    link = archive / target.name
    link.symlink_to(target)
    assert not delete_product(target, [archive], LOG, "test")  # outside: kept
    assert delete_product(link, [archive], LOG, "test")
    assert not link.is_symlink() and target.read_bytes() == b"data"


def test_clean_removes_corrupt_products_and_partial_fetches_of_the_tile(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    corrupt = archive / "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip"
    corrupt.write_bytes(b"not a zip")
    other_tile = archive / "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMN_20180629T012042.zip"
    other_tile.write_bytes(b"not a zip either, but not this task's tile")
    good = archive / L1C_55JGF[1]
    good.symlink_to(data_path(*L1C_55JGF))
    partial = archive / "shared" / "56JMM" / "S2A_x.zip.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"")
    removed = clean_folders("56JMM", [archive], LOG)
    assert sorted(removed) == sorted([corrupt, partial])
    assert other_tile.exists() and good.is_symlink()
    assert clean_folders("55JGF", [archive], LOG) == []  # a real product opens: kept


def test_stac_api_search_asks_for_the_tile_footprint_dates_and_level_collections(tmp_path, monkeypatch):
    import pystac_client

    wanted = data_path(*L1C_56JMM)
    items = [_item(wanted, "56JMM", datetime(2018, 6, 29, 0, 2, 41, tzinfo=UTC), 12.0),
             _item(wanted, "56JMN", datetime(2018, 6, 29, 0, 2, 41, tzinfo=UTC), 12.0)]  # a neighbour's item
    asked = {}

    class _Search:
        def items(self):
            return iter(items)

    class _Api:
        def search(self, **kwargs):
            asked.update(kwargs)
            return _Search()

    monkeypatch.setattr(pystac_client.Client, "open", staticmethod(lambda url: asked.update(url=url) or _Api()))
    provider = make_provider("cop_dataspace", {}, tmp_path)
    refs = provider.search(ProductQuery("56JMM", date(2018, 6, 1), date(2018, 6, 30), "l1c", 20.0))
    assert [ref.product_id for ref in refs] == [items[0].id] and refs[0].cloud_cover == 12.0
    assert asked["url"] == "https://stac.dataspace.copernicus.eu/v1"
    assert asked["collections"] == ["sentinel-2-l1c"]
    assert asked["datetime"] == "2018-06-01T00:00:00Z/2018-06-30T23:59:59Z"
    assert asked["intersects"] == tile_polygon("56JMM").__geo_interface__
    assert provider.fetch(refs[0]) == tmp_path / "cop_dataspace" / "56JMM" / wanted.name


def test_a_stac_api_refusing_a_collection_is_a_provider_error_naming_it(tmp_path, monkeypatch):
    import pystac_client
    from pystac_client.exceptions import APIError

    def refuse(cls, url, *args, **kwargs):
        raise APIError("Collection PEPS_S2_L2A not found")

    monkeypatch.setattr(pystac_client.Client, "open", classmethod(refuse))  # no network in tests
    provider = make_provider("peps", {}, tmp_path)
    with pytest.raises(ProviderError, match=r"peps: https://geodes-portal\.cnes\.fr/api/stac refused the search of "
                                            r"collections \['PEPS_S2_L2A'\] \(l2a\): Collection PEPS_S2_L2A not found"):
        provider.search(ProductQuery("31UFS", date(2024, 1, 1), None, "l2a"))
