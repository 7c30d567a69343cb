"""The open incidents of the overview and the map, from the network's alert messages (newest first)."""

from typing import Any

from weatherstream.web.incidents import NEWEST, IncidentBoard


def message(alert_id: str, seq: int, state: str, severity: str = "warning", city_id: int = 1) -> dict[str, Any]:
    return {"alert_id": alert_id, "seq": seq, "state": state, "kind": alert_id.split(":")[1], "severity": severity,
            "city_id": city_id}  # fmt: skip


def test_an_incident_is_open_until_its_newest_message_resolves_it() -> None:
    rows = [
        message("1:storm:9", 2, "update", "critical"),  # raised to critical, still open
        message("2:heat:5", 1, "resolved", city_id=2),
        message("1:storm:9", 1, "update"),
        message("2:heat:5", 0, "open", city_id=2),
        message("1:storm:9", 0, "open"),
        message("3:frost:1", 0, "open", "info", city_id=3),
    ]
    board = IncidentBoard.of(rows, since=0.0, truncated=False)
    opened = [(row["alert_id"], row["severity"]) for row in board.open]
    assert opened == [("1:storm:9", "critical"), ("3:frost:1", "info")]
    assert board.by_kind == {"storm": {"critical": 1}, "frost": {"info": 1}}
    assert board.by_city == {1: 1, 3: 1}
    summary = board.summary(listed=1)
    assert summary["open"] == 2 and len(summary["list"]) == 1 and summary["newest_alerts"] == rows


def test_messages_seen_out_of_order_still_leave_the_newest_one_standing() -> None:
    # two messages with the same observation time may come back in either order: seq decides
    rows = [message("1:gust:0", 0, "open"), message("1:gust:0", 1, "resolved")]
    assert IncidentBoard.of(rows, since=0.0, truncated=False).open == []
    assert len(IncidentBoard.of(rows[::-1], since=0.0, truncated=False)) == 0


def test_the_newest_messages_are_capped() -> None:
    rows = [message(f"{i}:storm:0", 0, "open", city_id=i) for i in range(NEWEST + 5)]
    board = IncidentBoard.of(rows, since=0.0, truncated=True)
    assert len(board.newest) == NEWEST and len(board.open) == NEWEST + 5 and board.summary(3)["truncated"]
