"""What a source hands to the producer: one payload for ``{ns}.raw``."""

import dataclasses
from typing import Optional

import orjson


@dataclasses.dataclass(frozen=True)
class RawRecord:
    """One raw payload, before Kafka.

    Attributes:
        payload: OpenWeatherMap current-weather JSON, sent byte for byte.
        city_id: the message key (None when the payload has no readable city id: the worker will
            dead-letter it with the reason, rather than the producer dropping it).
        source: "owm", "synthetic" or "replay" (``source`` header).
        units: what the numbers are in: "metric", "standard" or "imperial" (``units`` header).
        event_time: observation time, UTC epoch seconds, when known (for pacing replays).
    """

    payload: bytes
    city_id: Optional[int]
    source: str
    units: str = "metric"
    event_time: Optional[float] = None

    @classmethod
    def from_payload(cls, payload: bytes, source: str, units: str = "metric") -> "RawRecord":
        """A record for ``payload`` as received, keyed by its ``id`` and timed by its ``dt`` when they
        are readable. An unreadable payload is still a record: the worker dead-letters it with the reason."""
        city_id: Optional[int] = None
        event_time: Optional[float] = None
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            if isinstance(doc.get("id"), int) and not isinstance(doc.get("id"), bool):
                city_id = doc["id"]
            if isinstance(doc.get("dt"), (int, float)) and not isinstance(doc.get("dt"), bool):
                event_time = float(doc["dt"])
        return cls(payload=payload, city_id=city_id, source=source, units=units, event_time=event_time)

    def headers(self) -> list[tuple[str, bytes]]:
        return [("source", self.source.encode()), ("units", self.units.encode())]


def city_key(city_id: int) -> bytes:
    """The message key of a city on every weatherstream topic: its id as JSON (``2950159`` -> ``b"2950159"``)."""
    return str(int(city_id)).encode()
