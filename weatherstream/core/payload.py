"""Build OpenWeatherMap-shaped current-weather payloads (metric units) from plain values.

Used by the synthetic source and by CSV replays, so that everything entering ``{ns}.raw`` has the
shape of the real API. Missing values stay missing: their keys are left out, as the API does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Conditions:
    """Values of one observation, metric; None means not measured."""

    temp_c: float | None = None
    humidity_pct: float | None = None
    pressure_hpa: float | None = None
    wind_speed_ms: float | None = None
    wind_deg: float | None = None
    wind_gust_ms: float | None = None
    clouds_pct: float | None = None
    rain_1h_mm: float | None = None
    snow_1h_mm: float | None = None
    visibility_m: float | None = None


def feels_like_c(temp_c: float, wind_ms: float, humidity_pct: float | None) -> float:
    """Apparent temperature: wind chill below 10 °C, heat index above 27 °C, else the air temperature."""
    kmh = wind_ms * 3.6
    if temp_c <= 10.0 and kmh > 4.8:
        v = kmh**0.16
        return max(13.12 + 0.6215 * temp_c - 11.37 * v + 0.3965 * temp_c * v, temp_c - 30.0)
    if temp_c >= 27.0 and humidity_pct is not None:
        t, rh = temp_c * 9 / 5 + 32, humidity_pct
        # Rothfusz regression of the US National Weather Service heat index (°F, %).
        hi = (-42.379 + 2.04901523 * t + 10.14333127 * rh - 0.22475541 * t * rh - 6.83783e-3 * t * t
              - 5.481717e-2 * rh * rh + 1.22874e-3 * t * t * rh + 8.5282e-4 * t * rh * rh
              - 1.99e-6 * t * t * rh * rh)  # fmt: skip
        return min((hi - 32) * 5 / 9, temp_c + 15.0)  # the regression runs away outside its fitted range
    return temp_c


def sun_times(lat: float, lon: float, at: float) -> tuple[float | None, float | None]:
    """Approximate sunrise and sunset (UTC epoch seconds) of the UTC day containing ``at``; None in polar day/night."""
    day_start = at - at % 86400
    doy = int(day_start // 86400 + 4) % 365  # day of year, close enough for a declination
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    x = -math.tan(math.radians(lat)) * math.tan(decl)
    if not -1.0 <= x <= 1.0:
        return None, None
    half_day_h = math.degrees(math.acos(x)) / 15.0
    noon_utc_h = 12.0 - lon / 15.0
    return day_start + (noon_utc_h - half_day_h) * 3600, day_start + (noon_utc_h + half_day_h) * 3600


def _condition(c: Conditions) -> dict[str, Any]:
    if c.snow_1h_mm:
        snow_id = 601 if c.snow_1h_mm > 1 else 600
        return {"id": snow_id, "main": "Snow", "description": "snow", "icon": "13d"}
    if c.rain_1h_mm:
        heavy = c.rain_1h_mm >= 4
        return {"id": 502 if heavy else 500, "main": "Rain", "description": "heavy intensity rain" if heavy
                else "light rain", "icon": "10d"}  # fmt: skip
    clouds = c.clouds_pct or 0
    if clouds >= 85:
        return {"id": 804, "main": "Clouds", "description": "overcast clouds", "icon": "04d"}
    if clouds >= 25:
        return {"id": 802, "main": "Clouds", "description": "scattered clouds", "icon": "03d"}
    return {"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"}


def owm_payload(
    *,
    city_id: int,
    name: str,
    country: str | None,
    lat: float,
    lon: float,
    observed_at: float,
    timezone_offset_s: int,
    conditions: Conditions,
) -> dict[str, Any]:
    """An OpenWeatherMap current-weather document (``units=metric``) for these values."""
    c = conditions
    main: dict[str, Any] = {}
    if c.temp_c is not None:
        feels = feels_like_c(c.temp_c, c.wind_speed_ms or 0.0, c.humidity_pct)
        main.update(temp=round(c.temp_c, 2), feels_like=round(feels, 2),
                    temp_min=round(c.temp_c - 0.6, 2), temp_max=round(c.temp_c + 0.6, 2))  # fmt: skip
    if c.pressure_hpa is not None:
        main.update(pressure=round(c.pressure_hpa), sea_level=round(c.pressure_hpa))
    if c.humidity_pct is not None:
        main["humidity"] = round(c.humidity_pct)
    doc: dict[str, Any] = {
        "coord": {"lon": round(lon, 4), "lat": round(lat, 4)},
        "weather": [_condition(c)],
        "base": "stations",
        "main": main,
    }
    if c.visibility_m is not None:
        doc["visibility"] = round(c.visibility_m)
    wind: dict[str, Any] = {}
    if c.wind_speed_ms is not None:
        wind["speed"] = round(c.wind_speed_ms, 2)
    if c.wind_deg is not None:
        wind["deg"] = round(c.wind_deg) % 360
    if c.wind_gust_ms is not None:
        wind["gust"] = round(c.wind_gust_ms, 2)
    if wind:
        doc["wind"] = wind
    if c.rain_1h_mm:
        doc["rain"] = {"1h": round(c.rain_1h_mm, 2)}
    if c.snow_1h_mm:
        doc["snow"] = {"1h": round(c.snow_1h_mm, 2)}
    if c.clouds_pct is not None:
        doc["clouds"] = {"all": round(c.clouds_pct)}
    sunrise, sunset = sun_times(lat, lon, observed_at)
    sys_: dict[str, Any] = {}
    if country:
        sys_["country"] = country
    if sunrise is not None and sunset is not None:
        sys_.update(sunrise=int(sunrise), sunset=int(sunset))
    doc.update(dt=int(observed_at), sys=sys_, timezone=timezone_offset_s, id=city_id, name=name, cod=200)
    return doc


def dumps(doc: dict[str, Any]) -> bytes:
    """Serialize a payload document compactly."""
    return orjson.dumps(doc)
