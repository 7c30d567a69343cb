"""An alert about one incident in one city, as sent on ``{ns}.alerts`` (key: city id)."""

from typing import Optional

import faust


class Alert(faust.Record, serializer="json", include_metadata=False):
    """One message of an incident's lifecycle.

    An incident (``alert_id`` = ``city:kind:start``) produces one ``open``, an ``update`` each time its
    severity rises, and one ``resolved``. ``seq`` numbers its messages; a message repeated after a crash
    has the same ``(alert_id, seq)``.

    Attributes:
        kind: temp_high, temp_low (against the city's baseline for that hour), heat, frost, storm, gust,
            heavy_rain, heavy_snow (physical thresholds), pressure_drop, temp_jump (rate of change),
            stuck_sensor, silent_station (data quality).
        severity: "info", "warning" or "critical" (the incident's highest so far).
        observed_value, reference, unit: what was measured, and the baseline or threshold it was held against.
        score: standard scores for the statistical kinds; the change for rate kinds.
        incident_start, observed_at: UTC epoch seconds of the incident's first and of this observation.
        detected_at: wall-clock time of detection, UTC epoch seconds.
        historical: the observation was older than the historical limit when detected (a replay).
        message: the alert in one line for people: what changed, by how much, over what span, against which
            reference and threshold (``weatherstream.core.anomaly.texts``).
    """

    alert_id: str
    seq: int
    city_id: int
    kind: str
    severity: str
    state: str
    incident_start: float
    observed_at: float
    detected_at: float
    message: str
    city_name: Optional[str] = None
    observed_value: Optional[float] = None
    reference: Optional[float] = None
    score: Optional[float] = None
    unit: Optional[str] = None
    historical: bool = False
