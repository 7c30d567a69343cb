import asyncio
import datetime as dt
import time

import pytest

from weatherstream.web.catalog import LOAD_SHARE, Snapshot, StationCatalog, snapshot_of

UTC = dt.timezone.utc


def rows(n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        out.append({
            "city_id": 1000 + i, "city_name": f"Station {i:05d}" if i % 7 else None,
            "country": ["DE", "US", "FR"][i % 3],
            "observed_at": None if i % 11 == 0 else dt.datetime.fromtimestamp(1_790_000_000 - i * 60, UTC),
            "temp_c": None if i % 5 == 0 else float(i % 40) - 10, "humidity_pct": 50.0, "pressure_hpa": 1000.0,
            "wind_speed_ms": 1.5, "condition_main": "Clear", "condition_description": "clear sky",
        })  # fmt: skip
    return out


def test_pages_cover_every_station_once_in_order() -> None:
    snap = Snapshot.of(rows(1234), loaded_at=0.0)
    seen: list[int] = []
    for offset in range(0, 1300, 100):
        page = snap.page("", "id", False, offset, 100, now=1_790_000_000.0)
        assert page["total"] == 1234
        seen += [r["city_id"] for r in page["cities"]]
    assert seen == sorted(seen) == list(range(1000, 2234))
    assert [r["city_id"] for r in snap.page("", "id", True, 0, 3, now=0)["cities"]] == [2233, 2232, 2231]


def test_sorts_put_missing_values_last() -> None:
    snap = Snapshot.of(rows(100), loaded_at=0.0)
    by_age = snap.page("", "age", False, 0, 100, now=1_790_000_000.0)["cities"]
    ages = [r["age_s"] for r in by_age]
    known = [a for a in ages if a is not None]
    assert known == sorted(known) and ages[len(known) :] == [None] * (len(ages) - len(known))
    temps = [r["temp_c"] for r in snap.page("", "temp", False, 0, 100, now=0)["cities"]]
    assert [t for t in temps if t is not None] == sorted(t for t in temps if t is not None) and temps[-1] is None
    names = [(r["city_name"] or "").casefold() for r in snap.page("", "name", False, 0, 100, now=0)["cities"]]
    assert names == sorted(names)


def test_search_by_name_id_prefix_and_country() -> None:
    snap = Snapshot.of(rows(300), loaded_at=0.0)
    found = {r["city_id"] for r in snap.page("Station 0012", "id", False, 0, 50, now=0)["cities"]}
    assert found == {1000 + i for i in range(120, 130) if i % 7}  # every 7th has no name
    by_id = {r["city_id"] for r in snap.page("11", "id", False, 0, 500, now=0)["cities"]}
    assert by_id >= set(range(1100, 1200))  # an id prefix (and names holding "11": Station 00011, 00211)
    assert by_id - set(range(1100, 1200)) == {1011, 1211}
    assert snap.page("fr", "id", False, 0, 500, now=0)["total"] == 100


def test_the_page_values_are_text_and_numbers_only() -> None:
    snap = Snapshot.of([{"city_id": 1, "city_name": "<script>x</script>", "country": None, "observed_at": None}], 0.0)
    (row,) = snap.page("script", "name", False, 0, 10, now=0)["cities"]
    assert row["city_name"] == "<script>x</script>" and row["temp_c"] is None and row["age_s"] is None


def test_a_page_of_100000_stations_is_fast() -> None:
    """The benchmark measures it through the worker; this only guards against an accidental quadratic path."""
    snap = Snapshot.of(rows(100_000), loaded_at=0.0)
    started = time.perf_counter()
    for sort in ("name", "age", "temp", "country"):
        snap.order(sort)
    snap.page("station 0999", "name", False, 0, 50, now=0)
    assert time.perf_counter() - started < 10


def test_the_catalog_loads_once_and_reloads_in_the_background_when_stale() -> None:
    loads: list[float] = []

    async def load() -> Snapshot:
        loads.append(time.time())
        await asyncio.sleep(0.001)
        return snapshot_of(rows(10 + len(loads)))

    async def scenario() -> None:
        catalog = StationCatalog(load, refresh_s=0.05)
        first = await catalog.current()
        assert len(first) == 11 and await catalog.current() is first
        await asyncio.sleep(max(0.06, catalog.keep_s + 0.01))
        assert await catalog.current() is first  # stale: served while a reload runs
        assert catalog.loading is not None
        await catalog.loading
        assert len(await catalog.current()) == 12 and len(loads) == 2

    asyncio.run(scenario())


def test_a_snapshot_that_was_slow_to_load_is_kept_longer() -> None:
    async def load() -> Snapshot:
        await asyncio.sleep(0.02)
        return snapshot_of(rows(5))

    async def scenario() -> None:
        catalog = StationCatalog(load, refresh_s=0.01)
        first = await catalog.current()
        assert 0.02 * LOAD_SHARE <= catalog.keep_s < 0.2 * LOAD_SHARE
        await asyncio.sleep(0.03)  # older than refresh_s, younger than LOAD_SHARE load times
        assert await catalog.current() is first and catalog.loading is None

    asyncio.run(scenario())


def test_a_failed_reload_keeps_the_previous_snapshot() -> None:
    calls = 0

    async def load() -> Snapshot:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("Cassandra is down")
        return snapshot_of(rows(3))

    async def scenario() -> None:
        catalog = StationCatalog(load, refresh_s=0.0)
        first = await catalog.current()
        await asyncio.sleep(catalog.keep_s + 0.001)  # stale: kept 10 times as long as the load took
        await catalog.current()
        with pytest.raises(ConnectionError):
            await catalog.loading  # type: ignore[misc]
        await asyncio.sleep(0)
        assert await catalog.current() is first

    asyncio.run(scenario())


def test_search_finds_what_a_scan_of_every_station_finds_in_the_same_order() -> None:
    """The joined-text search against the plain rule, on awkward names (newlines, repeats, case, digits)."""
    import random

    rng = random.Random(3)
    odd = ["Ber\nlin", "BERLIN berlin", "Kraków", "ß-Straße", "11th Street", "", "de", "München 11"]
    data = [
        {"city_id": rng.randrange(1, 3_000_000), "city_name": rng.choice(odd) + rng.choice(["", " Nord", "11"]),
         "country": rng.choice(["DE", "US", "PL", ""]), "observed_at": None}
        for _ in range(500)
    ]  # fmt: skip
    snap = Snapshot.of(data, loaded_at=0.0)
    for query in ("ber", "berlin", "11", "1", "de", "pl", "ß", "straße", "n\nx", "München", "2", "zzz"):
        text = query.strip().casefold()
        for sort, descending in (("name", False), ("id", True), ("age", False), ("temp", True)):
            order = snap.order(sort)
            scan = [
                i for i in (order[::-1] if descending else order)
                if text in snap.lowered[i] or snap.countries[i] == text.upper() or str(snap.ids[i]).startswith(text)
            ]  # fmt: skip
            page = snap.page(query, sort, descending, 0, 500, now=0)
            assert page["total"] == len(scan), (query, sort)
            assert [r["city_id"] for r in page["cities"]] == [snap.ids[i] for i in scan], (query, sort)


def test_freshness_counts_every_station_once_with_never_heard_from_as_silent() -> None:
    now = 1_790_000_000.0
    ages = [0, 3599, 3600, 6 * 3600 - 1, 6 * 3600, 10 * 86400, None]
    snap = Snapshot.of([{"city_id": i, "observed_at": None if a is None else now - a} for i, a in enumerate(ages)], 0.0)
    assert snap.freshness(now) == {"reporting": 2, "stale": 2, "silent": 3}
    assert snap.freshness(now + 3600) == {"reporting": 0, "stale": 3, "silent": 4}


def test_map_points_skip_stations_without_a_position_and_give_observation_times_for_ages() -> None:
    now = 1_790_000_000.0
    snap = Snapshot.of([
        {"city_id": 1, "city_name": "A", "lat": 51.50853, "lon": -0.12574, "temp_c": 12.34, "observed_at": now - 90},
        {"city_id": 2, "city_name": "B", "lat": None, "lon": 13.4, "temp_c": 1.0, "observed_at": now},
        {"city_id": 3, "city_name": "C", "lat": -33.9, "lon": 151.2, "temp_c": None, "observed_at": None},
    ], 0.0)  # fmt: skip
    temp = snap.points("temp")
    assert temp == {"ids": [1, 3], "names": ["A", "C"], "lat": [51.509, -33.9], "lon": [-0.126, 151.2],
                    "values": [12.3, None]}  # fmt: skip
    assert snap.points("temp") is temp  # once per snapshot
    assert snap.points("age")["values"] == [now - 90, None]
