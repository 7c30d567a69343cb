"""Score alerts against labelled incidents (the synthetic source's ``--labels`` file), per incident.

An injected incident counts as found when an alert of a matching kind opened for its city between
``before_s`` before its start and ``after_s`` after its end (the end of a spike shows as a sudden
change just after it; a silent station is seen when it speaks again). Precision counts alert incidents
(distinct alert ids): each is right when it matches some labelled incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MATCHING_KINDS: dict[str, frozenset[str]] = {
    "heat_spike": frozenset({"temp_high", "heat", "temp_jump"}),
    "cold_snap": frozenset({"temp_low", "frost", "temp_jump"}),
    "pressure_drop": frozenset({"pressure_drop"}),
    "wind_gust": frozenset({"storm", "gust"}),
    "stuck_sensor": frozenset({"stuck_sensor"}),
    "silent_station": frozenset({"silent_station"}),
}


@dataclass
class Score:
    incidents: int
    found: int
    alert_incidents: int
    correct_alerts: int
    missed: list[dict[str, Any]] = field(default_factory=list)
    false_alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.incidents if self.incidents else 1.0

    @property
    def precision(self) -> float:
        return self.correct_alerts / self.alert_incidents if self.alert_incidents else 1.0

    def summary(self) -> str:
        return (f"recall {self.recall:.3f} ({self.found}/{self.incidents} incidents), precision "
                f"{self.precision:.3f} ({self.correct_alerts}/{self.alert_incidents} alert incidents)")  # fmt: skip


def score(labels: Iterable[dict[str, Any]], alerts: Iterable[dict[str, Any]], *, before_s: float = 3600.0,
          after_s: float = 7200.0) -> Score:  # fmt: skip
    """Per-incident recall and precision of ``alerts`` (dicts of :class:`models.Alert`) against ``labels``."""
    expected = [lb for lb in labels if lb.get("expected") == "alert"]
    opens: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        if alert["state"] == "open":
            opens.setdefault(alert["alert_id"], alert)

    def matches(label: dict[str, Any], alert: dict[str, Any]) -> bool:
        return (alert["city_id"] == label["city_id"] and alert["kind"] in MATCHING_KINDS.get(label["kind"], ())
                and label["start"] - before_s <= alert["incident_start"] <= label["end"] + after_s)  # fmt: skip

    found = [lb for lb in expected if any(matches(lb, a) for a in opens.values())]
    correct = [a for a in opens.values() if any(matches(lb, a) for lb in expected)]
    result = Score(len(expected), len(found), len(opens), len(correct))
    result.missed = [lb for lb in expected if lb not in found]
    result.false_alerts = [a for a in opens.values() if a not in correct]
    return result
