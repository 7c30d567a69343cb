"""A window's aggregate of one city's observations, as sent on ``{ns}.aggregates`` (key: city id)."""

from typing import Optional

import faust


class Aggregate(faust.Record, serializer="json", include_metadata=False):
    """The final (or corrected) aggregate of one window.

    One window is identified by ``(city_id, kind, window_start)`` (``window_id`` spells it). The first
    aggregate of a window has ``revision`` 1; data arriving after the window closed (within the
    correction horizon) produces a new aggregate with ``revision`` + 1 that replaces it. The same
    ``(window_id, revision)`` may be delivered twice after a crash; it is then the same aggregate.

    Times are UTC epoch seconds; ``closed_at`` and ``watermark_passed_at`` describe processing, not data.

    Attributes:
        kind: "tumbling-1h", "day-local" (local midnight to midnight; 23 or 25 h across a DST change),
            "hopping-24h-1h", ...
        count: observations in the window; ``expected_count`` at the window's median cadence, and
            ``coverage`` = count / expected.
        rain_total_mm, snow_total_mm: estimated from the 1-hour rates as sum(rate) * cadence / 3600.
        condition: the most frequent ``weather[0].main`` (ties: alphabetical).
        late: True when the window received its first data after it had closed.
        watermark_passed_at: when the observation that closed the window appeared in Kafka (None: an idle tick).
    """

    city_id: int
    kind: str
    window_id: str
    window_start: float
    window_end: float
    revision: int
    count: int
    expected_count: int
    coverage: float
    cadence_s: float
    temp_min_c: Optional[float] = None
    temp_max_c: Optional[float] = None
    temp_mean_c: Optional[float] = None
    temp_std_c: Optional[float] = None
    feels_like_mean_c: Optional[float] = None
    humidity_min_pct: Optional[float] = None
    humidity_max_pct: Optional[float] = None
    humidity_mean_pct: Optional[float] = None
    pressure_min_hpa: Optional[float] = None
    pressure_max_hpa: Optional[float] = None
    pressure_mean_hpa: Optional[float] = None
    pressure_first_hpa: Optional[float] = None
    pressure_last_hpa: Optional[float] = None
    wind_mean_ms: Optional[float] = None
    wind_max_ms: Optional[float] = None
    gust_max_ms: Optional[float] = None
    rain_total_mm: Optional[float] = None
    snow_total_mm: Optional[float] = None
    condition: Optional[str] = None
    first_observed_at: Optional[float] = None
    last_observed_at: Optional[float] = None
    late: bool = False
    closed_at: Optional[float] = None
    watermark_passed_at: Optional[float] = None
    eid: Optional[str] = None
