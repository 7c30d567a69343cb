"""The network's open incidents, from its recent alert messages: what the overview page and the map show.

An incident (``alert_id``) sends an ``open`` message, ``update`` messages and finally a ``resolved`` one (with
``seq`` counting them). An incident is open when its newest message is not ``resolved``. The board is built from
the messages of the last :data:`DAYS` days (Cassandra's ``alerts_by_day``): an incident opened earlier that has
said nothing since is not on it, and the board says how far back it read (``since``).

Example:
    >>> rows = [{"alert_id": "1:storm:0", "seq": 1, "state": "resolved", "kind": "storm", "severity": "warning",
    ...          "city_id": 1},
    ...         {"alert_id": "1:storm:0", "seq": 0, "state": "open", "kind": "storm", "severity": "warning",
    ...          "city_id": 1},
    ...         {"alert_id": "2:heat:0", "seq": 0, "state": "open", "kind": "heat", "severity": "critical",
    ...          "city_id": 2}]
    >>> board = IncidentBoard.of(rows, since=0.0, truncated=False)
    >>> [i["alert_id"] for i in board.open], board.by_city
    (['2:heat:0'], {2: 1})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: how far back the board reads alert messages
DAYS = 7
#: the newest alert messages the overview shows
NEWEST = 10


@dataclass
class IncidentBoard:
    """The open incidents (newest message first), their counts by kind and severity and by city, and the newest
    messages of all."""

    open: list[Mapping[str, Any]]
    by_kind: dict[str, dict[str, int]]
    by_city: dict[int, int]
    newest: list[Mapping[str, Any]]
    since: float
    truncated: bool
    messages: int = field(default=0)

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]], since: float, truncated: bool) -> IncidentBoard:
        """The board of ``rows`` (alert messages, newest first); ``truncated``: the read stopped at its limit,
        so incidents that only have older messages are missing."""
        latest: dict[str, Mapping[str, Any]] = {}
        for row in rows:
            known = latest.get(row["alert_id"])
            if known is None or row["seq"] > known["seq"]:
                latest[row["alert_id"]] = row
        still_open = [row for row in latest.values() if row["state"] != "resolved"]
        by_kind: dict[str, dict[str, int]] = {}
        by_city: dict[int, int] = {}
        for row in still_open:
            kinds = by_kind.setdefault(row["kind"], {})
            kinds[row["severity"]] = kinds.get(row["severity"], 0) + 1
            by_city[row["city_id"]] = by_city.get(row["city_id"], 0) + 1
        return cls(open=still_open, by_kind=by_kind, by_city=by_city, newest=list(rows[:NEWEST]), since=since,
                   truncated=truncated, messages=len(rows))  # fmt: skip

    def __len__(self) -> int:
        return len(self.open)

    def summary(self, listed: int) -> dict[str, Any]:
        """What ``/api/network`` says of incidents: counts, the ``listed`` newest open ones, the newest messages."""
        return {
            "open": len(self.open),
            "by_kind": self.by_kind,
            "list": self.open[:listed],
            "newest_alerts": self.newest,
            "since": self.since,
            "truncated": self.truncated,
        }
