"""The network-wide views: the station list, the overview's summary, the map's points and the alerts.

They read Cassandra (every worker's sink writes there), never the pipeline's tables, so any worker answers
them for the whole network. The station list and the open incidents are snapshots kept fresh on demand
(:class:`weatherstream.web.catalog.KeptFresh`): a request costs a page, not a read of every station.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson
from faust.web import Request, Response, View

from weatherstream.queries import read_alerts, read_latest, read_network_alerts
from weatherstream.web.alertquery import BadQuery, parse_alert_query
from weatherstream.web.catalog import FIELDS as CATALOG_COLUMNS
from weatherstream.web.catalog import FRESHNESS, MAP_QUANTITIES, MAX_LIMIT, SORTS, KeptFresh, Snapshot, snapshot_of
from weatherstream.web.incidents import DAYS as INCIDENT_DAYS
from weatherstream.web.incidents import IncidentBoard
from weatherstream.web.responses import CassandraReader, problem, respond, unreachable

#: the most alert messages one network-wide read takes (its answer says when it stopped there)
NETWORK_ALERT_ROWS = 20_000
#: the open incidents the overview lists
LISTED_INCIDENTS = 20
#: what the map may colour stations by besides :data:`MAP_QUANTITIES`
MAP_CHOICES = (*MAP_QUANTITIES, "incidents")


def load_catalog(session: Any, keyspace: str) -> Snapshot:
    """The station list's snapshot, read and built in the thread that runs the query (not on the event loop)."""
    return snapshot_of(read_latest(session, keyspace, CATALOG_COLUMNS))


def load_incidents(session: Any, keyspace: str) -> IncidentBoard:
    """The open incidents of the last :data:`INCIDENT_DAYS` days (in the query's thread)."""
    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(days=INCIDENT_DAYS)
    rows, truncated = read_network_alerts(session, keyspace, start, now + dt.timedelta(days=1), NETWORK_ALERT_ROWS)
    return IncidentBoard.of(rows, since=start.timestamp(), truncated=truncated)


class NetworkViews:
    """What the network-wide views answer, from Cassandra through ``db``."""

    def __init__(self, db: CassandraReader) -> None:
        self.db = db
        self.catalog = KeptFresh(lambda: db.run(load_catalog))
        self.incidents = KeptFresh(lambda: db.run(load_incidents), refresh_s=5.0, what="open incidents")

    async def cities(self, view: View, request: Request) -> Response:
        """A page of the stations (``?q=`` search, ``sort=`` one of SORTS, ``order=desc``, ``offset``, ``limit``)."""
        query = request.query
        sort, order = query.get("sort", "name"), query.get("order", "asc")
        if sort not in SORTS or order not in ("asc", "desc"):
            return problem(view, 400, f"sort must be one of {', '.join(SORTS)} and order asc or desc")
        try:
            offset, limit = int(query.get("offset", "0")), int(query.get("limit", "50"))
        except ValueError:
            return problem(view, 400, "offset and limit must be whole numbers")
        if offset < 0 or not 1 <= limit <= MAX_LIMIT:
            return problem(view, 400, f"offset must be 0 or more and limit between 1 and {MAX_LIMIT}")
        try:
            snapshot = await self.catalog.current()
        except Exception as exc:  # noqa: BLE001 - said to the caller, not raised
            return unreachable(view, exc)
        return respond(view, snapshot.page(query.get("q", "")[:100], sort, order == "desc", offset, limit,
                                           now=time.time()))  # fmt: skip

    async def summary(self, view: View, request: Request) -> Response:
        """The overview: stations by freshness, open incidents by kind and severity, the newest alerts."""
        try:
            snapshot, board = await self.catalog.current(), await self.incidents.current()
        except Exception as exc:  # noqa: BLE001
            return unreachable(view, exc)
        now = time.time()
        return respond(view, {
            "stations": {"total": len(snapshot), **snapshot.freshness(now)},
            "freshness_edges_s": {name: edge for name, edge in FRESHNESS[:-1]},
            "incidents": board.summary(LISTED_INCIDENTS),
            "as_of": snapshot.loaded_at,
            "now": now,
        })  # fmt: skip

    async def map_points(self, view: View, request: Request) -> Response:
        """Every station with a position and the value of ``?quantity=`` (one of MAP_CHOICES), as columns."""
        quantity = request.query.get("quantity", "temp")
        if quantity not in MAP_CHOICES:
            return problem(view, 400, f"quantity must be one of {', '.join(MAP_CHOICES)}")
        try:
            snapshot = await self.catalog.current()
            board = await self.incidents.current() if quantity == "incidents" else None
        except Exception as exc:  # noqa: BLE001
            return unreachable(view, exc)
        points = dict(snapshot.points("age" if board is not None else quantity))
        if board is not None:
            points["values"] = [board.by_city.get(city, 0) for city in points["ids"]]
        points.update(quantity=quantity, as_of=snapshot.loaded_at, now=time.time())
        # orjson: at 100,000 stations the body is megabytes, and faust's encoder is several times slower
        return view.bytes(orjson.dumps(points), content_type="application/json")

    async def alerts(self, view: View, request: Request) -> Response:
        """Alert messages, newest first: of one city (``city=``) or of the whole network, filtered and paged
        (:mod:`weatherstream.web.alertquery`)."""
        try:
            query = parse_alert_query(request.query, now=time.time())
        except BadQuery as exc:
            return problem(view, 400, str(exc))
        try:
            if query.city_id is not None:
                rows, truncated = await self.db.run(read_alerts, query.city_id, query.start, query.end), False
            else:
                rows, truncated = await self.db.run(read_network_alerts, query.start, query.end, NETWORK_ALERT_ROWS)
        except Exception as exc:  # noqa: BLE001
            return unreachable(view, exc)
        return respond(view, query.page(rows, truncated))
