"""Turn one raw OpenWeatherMap current-weather payload into a validated, metric :class:`Observation`.

Pure: bytes in, an observation or an :class:`InvalidPayload` (with a stable reason code) out. Physical
ranges are checked here because faust's field validators ignore a bound of 0.

Example:
    >>> obs = normalize(b'{"id": 2950159, "dt": 1700000000, "main": {"temp": 4.5}}', now=1700000100.0)
    >>> obs.city_id, obs.temp_c
    (2950159, 4.5)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from models import Observation, Reason
from weatherstream.errors import WeatherStreamError
from weatherstream.internals import new_record

MAX_PAYLOAD_BYTES = 32 * 1024
FUTURE_TOLERANCE_S = 15 * 60  # clocks disagree a little; more than this is a wrong timestamp
MAX_NAME_CHARS = 200
UNITS = ("metric", "standard", "imperial")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class InvalidPayload(WeatherStreamError):
    """The payload cannot become an observation.

    Attributes:
        reason: stable reason code for the dead letter.
        message: one line saying what is wrong (and, where it helps, what to do).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a physical quantity in metric units."""

    low: float
    high: float
    unit: str


# Bounds are wider than any record observation, narrow enough to catch unit and sign mix-ups.
RANGES: dict[str, Range] = {
    "temp_c": Range(-90.0, 60.0, "°C"),
    "feels_like_c": Range(-100.0, 70.0, "°C"),
    "temp_min_c": Range(-90.0, 60.0, "°C"),
    "temp_max_c": Range(-90.0, 60.0, "°C"),
    "pressure_hpa": Range(850.0, 1090.0, "hPa"),
    "sea_level_hpa": Range(850.0, 1090.0, "hPa"),
    "grnd_level_hpa": Range(300.0, 1090.0, "hPa"),  # ground level is lower at altitude
    "humidity_pct": Range(0.0, 100.0, "%"),
    "wind_speed_ms": Range(0.0, 113.0, "m/s"),
    "wind_gust_ms": Range(0.0, 150.0, "m/s"),
    "wind_deg": Range(0.0, 360.0, "°"),
    "clouds_pct": Range(0.0, 100.0, "%"),
    "rain_1h_mm": Range(0.0, 500.0, "mm"),
    "snow_1h_mm": Range(0.0, 300.0, "mm"),
    "visibility_m": Range(0.0, 100_000.0, "m"),
    "lat": Range(-90.0, 90.0, "°"),
    "lon": Range(-180.0, 180.0, "°"),
    "timezone_offset_s": Range(-14 * 3600, 14 * 3600, "s"),
}

# Observation field, payload section ("" for the top level), key, and the unit conversion it needs.
FIELDS = (
    ("temp_c", "main", "temp", "temperature"),
    ("feels_like_c", "main", "feels_like", "temperature"),
    ("temp_min_c", "main", "temp_min", "temperature"),
    ("temp_max_c", "main", "temp_max", "temperature"),
    ("pressure_hpa", "main", "pressure", None),
    ("sea_level_hpa", "main", "sea_level", None),
    ("grnd_level_hpa", "main", "grnd_level", None),
    ("humidity_pct", "main", "humidity", None),
    ("wind_speed_ms", "wind", "speed", "speed"),
    ("wind_gust_ms", "wind", "gust", "speed"),
    ("wind_deg", "wind", "deg", None),
    ("clouds_pct", "clouds", "all", None),
    ("rain_1h_mm", "rain", "1h", None),
    ("snow_1h_mm", "snow", "1h", None),
    ("visibility_m", "", "visibility", None),
    ("lat", "coord", "lat", None),
    ("lon", "coord", "lon", None),
    ("timezone_offset_s", "", "timezone", "seconds"),
)

#: FIELDS with each value's path in the payload (for messages) and its bounds, worked out once
_RULES = tuple(
    (field, section, key, f"{section}.{key}" if section else key, convert, RANGES[field])
    for field, section, key, convert in FIELDS
)

MEASUREMENTS = (
    "temp_c", "feels_like_c", "pressure_hpa", "humidity_pct", "wind_speed_ms", "wind_gust_ms",
    "clouds_pct", "rain_1h_mm", "snow_1h_mm", "visibility_m",
)  # fmt: skip
_MEASURED = frozenset(MEASUREMENTS)


def _temp_to_c(value: float, units: str) -> float:
    if units == "standard":
        return value - 273.15
    if units == "imperial":
        return (value - 32.0) * 5.0 / 9.0
    return value


def _speed_to_ms(value: float, units: str) -> float:
    return value * 0.44704 if units == "imperial" else value


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPayload(Reason.BAD_TYPE, f"'{key}' must be an object, got {_type_name(value)}")
    return value


def _number(section: Mapping[str, Any], key: str, path: str) -> float | None:
    value = section.get(key)
    return None if value is None else _finite(value, path)


def _finite(value: Any, path: str) -> float:
    """``value`` as a finite float, or :class:`InvalidPayload`."""
    if value.__class__ is not float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InvalidPayload(Reason.BAD_TYPE, f"'{path}' must be a number, got {_type_name(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidPayload(Reason.OUT_OF_RANGE, f"'{path}' is not a finite number")
    return number


def _text(section: Mapping[str, Any], key: str, path: str, max_chars: int = MAX_NAME_CHARS) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPayload(Reason.BAD_TYPE, f"'{path}' must be a string, got {_type_name(value)}")
    if len(value) > max_chars:
        raise InvalidPayload(Reason.BAD_VALUE, f"'{path}' is {len(value)} characters long (at most {max_chars})")
    if _CONTROL.search(value):
        raise InvalidPayload(Reason.BAD_VALUE, f"'{path}' contains control characters")
    return value or None


def _out_of_range(bounds: Range, value: float, path: str) -> NoReturn:
    raise InvalidPayload(
        Reason.OUT_OF_RANGE,
        f"'{path}' = {value:g} {bounds.unit} is outside {bounds.low:g}..{bounds.high:g} {bounds.unit}",
    )


def _city_id(doc: Mapping[str, Any]) -> int:
    if "id" not in doc or doc["id"] is None:
        raise InvalidPayload(Reason.MISSING_FIELD, "no city 'id'")
    value = doc["id"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(Reason.BAD_TYPE, f"'id' must be an integer, got {_type_name(value)}")
    if value <= 0 or value >= 2**53:
        raise InvalidPayload(Reason.BAD_VALUE, f"'id' must be a positive city id, got {value}")
    return value


def _observed_at(doc: Mapping[str, Any], now: float) -> float:
    if "dt" not in doc or doc["dt"] is None:
        raise InvalidPayload(Reason.MISSING_FIELD, "no observation time 'dt'")
    value = doc["dt"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPayload(Reason.BAD_TYPE, f"'dt' must be unix seconds (a number), got {_type_name(value)}")
    if value <= 0:
        raise InvalidPayload(Reason.BAD_TIMESTAMP, f"'dt' = {value} is not a time (zero or negative)")
    if value > 1e11:
        raise InvalidPayload(Reason.BAD_TIMESTAMP, f"'dt' = {value} looks like milliseconds; send unix seconds")
    if value > now + FUTURE_TOLERANCE_S:
        raise InvalidPayload(
            Reason.BAD_TIMESTAMP, f"'dt' = {value} is {value - now:.0f} s in the future (check the source clock)"
        )
    return float(value)


def parse_json_object(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Decode ``payload`` as one JSON object, or raise :class:`InvalidPayload`."""
    if len(payload) > max_bytes:
        raise InvalidPayload(Reason.TOO_LARGE, f"{len(payload)} bytes is over the {max_bytes}-byte limit")
    if not payload.strip():
        raise InvalidPayload(Reason.EMPTY, "the payload is empty")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(Reason.NOT_JSON, f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidPayload(Reason.NOT_OBJECT, f"expected a JSON object, got {_type_name(doc)}")
    return doc


def normalize(
    payload: bytes,
    *,
    now: float,
    units: str = "metric",
    source: str = "unknown",
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Observation:
    """Validate and convert one current-weather payload.

    Args:
        payload: the message value exactly as received.
        now: the current time, UTC epoch seconds (timestamps later than ``now`` + 15 min are rejected).
        units: what the payload's numbers are in: "metric" (°C, m/s), "standard" (K, m/s) or
            "imperial" (°F, mph), as the producer declared in the ``units`` header.
        source: the producer's ``source`` header, copied into the observation.

    Raises:
        InvalidPayload: with the reason code and a one-line message.
    """
    if units not in UNITS:
        raise InvalidPayload(Reason.BAD_VALUE, f"unknown units {units!r}: use one of {', '.join(UNITS)}")
    doc = parse_json_object(payload, max_bytes)

    cod = doc.get("cod")
    if cod is not None and str(cod) != "200":
        raise InvalidPayload(Reason.API_ERROR, f"an API error body (cod {cod}): {str(doc.get('message'))[:200]}")
    if "list" in doc and "id" not in doc:
        raise InvalidPayload(Reason.MISSING_FIELD, "a group response: send each item of 'list' as its own message")

    city_id = _city_id(doc)
    observed_at = _observed_at(doc, now)
    main, wind, coord = _section(doc, "main"), _section(doc, "wind"), _section(doc, "coord")
    clouds, rain, snow, sys_ = (
        _section(doc, "clouds"),
        _section(doc, "rain"),
        _section(doc, "snow"),
        _section(doc, "sys"),
    )

    sections = {"main": main, "wind": wind, "coord": coord, "clouds": clouds, "rain": rain, "snow": snow, "": doc}
    values: dict[str, Any] = {}
    measured = False
    for field, section, key, path, convert, bounds in _RULES:
        raw = sections[section].get(key)
        if raw is None:
            values[field] = None
            continue
        if raw.__class__ is not float or not math.isfinite(raw):  # the usual float needs no more checks
            raw = _finite(raw, path)
        if convert is not None:
            if convert == "temperature":
                if units == "metric" and 173.0 <= raw <= 343.0:
                    raise InvalidPayload(
                        Reason.SUSPECT_UNITS,
                        f"'{path}' = {raw:g} looks like Kelvin but the payload is marked metric; "
                        "send it with units=standard",
                    )
                raw = _temp_to_c(raw, units)
            elif convert == "speed":
                raw = _speed_to_ms(raw, units)
            else:
                raw = int(raw)
        if not bounds.low <= raw <= bounds.high:
            _out_of_range(bounds, raw, path)
        values[field] = raw
        measured = measured or field in _MEASURED
    if not measured:
        raise InvalidPayload(Reason.MISSING_FIELD, "no measurement at all (temperature, pressure, wind, ...)")

    condition: Mapping[str, Any] = {}
    weather = doc.get("weather")
    if weather is not None:
        if not isinstance(weather, list) or not all(isinstance(w, dict) for w in weather):
            raise InvalidPayload(Reason.BAD_TYPE, "'weather' must be an array of objects")
        condition = weather[0] if weather else {}
    condition_id = _number(condition, "id", "weather[0].id")

    sunrise, sunset = _number(sys_, "sunrise", "sys.sunrise"), _number(sys_, "sunset", "sys.sunset")
    country = _text(sys_, "country", "sys.country", max_chars=8)
    values.update(
        city_id=city_id,
        observed_at=observed_at,
        city_name=_text(doc, "name", "name"),
        country=country,
        condition_id=None if condition_id is None else int(condition_id),
        condition_main=_text(condition, "main", "weather[0].main"),
        condition_description=_text(condition, "description", "weather[0].description"),
        sunrise=sunrise if sunrise and sunrise > 0 else None,
        sunset=sunset if sunset and sunset > 0 else None,
        source=source,
        ingested_at=now,
        payload_json=payload.decode("utf-8"),
    )
    return new_record(Observation, values)
