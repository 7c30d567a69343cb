"""Dead letters: inputs the pipeline could not accept, kept byte for byte with the reason.

On ``{ns}.deadletter`` the message value is the original payload bytes, the key is the original key,
and the reason and origin travel in headers (``ws-reason``, ``ws-message``, ``ws-topic``,
``ws-partition``, ``ws-offset``, ``ws-source``, ``ws-detected-at``). :class:`DeadLetter` converts both ways.
"""

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Union


class Reason(str, enum.Enum):
    """Stable reason codes. Codes are never renamed; new ones may be added."""

    EMPTY = "empty"  # zero bytes, or only white space
    TOO_LARGE = "too_large"  # over the size limit
    NOT_JSON = "not_json"  # not UTF-8 JSON (includes NaN/Infinity literals and too deep nesting)
    NOT_OBJECT = "not_object"  # valid JSON, but not an object
    API_ERROR = "api_error"  # an OpenWeatherMap error body (cod != 200)
    MISSING_FIELD = "missing_field"  # no city id, no dt, or no measurement at all
    BAD_TYPE = "bad_type"  # a field of the wrong JSON type
    BAD_VALUE = "bad_value"  # a field of the right type with an unusable value (empty id, control characters)
    OUT_OF_RANGE = "out_of_range"  # a physical quantity outside its possible range
    SUSPECT_UNITS = "suspect_units"  # e.g. a Kelvin temperature in a payload marked metric
    BAD_TIMESTAMP = "bad_timestamp"  # zero, negative, milliseconds, or in the future
    DUPLICATE = "duplicate"  # the same (city id, dt) was already accepted
    TOO_LATE = "too_late"  # older than the horizon within which duplicates can still be recognised
    INTERNAL_ERROR = "internal_error"  # a bug: the input is kept so it can be replayed after the fix
    SINK_REJECTED = "sink_rejected"  # Cassandra refused the row itself (not an outage): kept for a replay


HeadersArg = Union[Mapping[str, bytes], Iterable[tuple[str, bytes]], None]


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One rejected input.

    Attributes:
        payload: the original bytes, unchanged.
        key: the original message key (bytes) or None.
        reason: the stable reason code.
        message: one human-readable line saying what is wrong.
        topic, partition, offset: where the input was read from.
        source: the producer's ``source`` header ("owm", "synthetic", "replay", ...), if any.
        detected_at: when it was rejected, UTC epoch seconds.
    """

    payload: bytes
    reason: Reason
    message: str
    topic: str
    partition: int
    offset: int
    detected_at: float
    key: bytes | None = None
    source: str | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers that carry everything but the payload and key."""
        h = [
            ("ws-reason", self.reason.value.encode()),
            ("ws-message", self.message.encode("utf-8", "replace")[:1000]),
            ("ws-topic", self.topic.encode()),
            ("ws-partition", str(self.partition).encode()),
            ("ws-offset", str(self.offset).encode()),
            ("ws-detected-at", repr(self.detected_at).encode()),
        ]
        if self.source:
            h.append(("ws-source", self.source.encode("utf-8", "replace")))
        return h

    @classmethod
    def from_message(cls, key: bytes | None, value: bytes, headers: HeadersArg) -> "DeadLetter":
        """Rebuild a dead letter read back from ``{ns}.deadletter``."""
        h = dict(headers.items() if isinstance(headers, Mapping) else (headers or []))

        def text(name: str) -> str:
            raw = h.get(name)
            return raw.decode("utf-8", "replace") if raw is not None else ""

        return cls(
            payload=value,
            key=key,
            reason=Reason(text("ws-reason")),
            message=text("ws-message"),
            topic=text("ws-topic"),
            partition=int(text("ws-partition") or -1),
            offset=int(text("ws-offset") or -1),
            detected_at=float(text("ws-detected-at") or 0.0),
            source=text("ws-source") or None,
        )
