"""Cities known without any download: OpenWeatherMap ids (GeoNames ids), names, coordinates, time zones.

The ids, names and coordinates agree with the OpenWeatherMap city catalogue; the time zone is the IANA
name, so offsets (and daylight-saving changes) come from the system's time zone database.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class City:
    """A city the sources can report on.

    Attributes:
        city_id: OpenWeatherMap city id.
        lat, lon: degrees north and east.
        tz: IANA time zone name.
    """

    city_id: int
    name: str
    country: str
    lat: float
    lon: float
    tz: str

    def utc_offset_s(self, at: float) -> int:
        """The city's offset from UTC in seconds at UTC epoch second ``at``."""
        offset = dt.datetime.fromtimestamp(at, tz=ZoneInfo(self.tz)).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0


# fmt: off
BUILTIN_CITIES: tuple[City, ...] = tuple(City(*row) for row in (
    (2643743, "London", "GB", 51.5085, -0.1257, "Europe/London"),
    (2988507, "Paris", "FR", 48.8534, 2.3488, "Europe/Paris"),
    (2950159, "Berlin", "DE", 52.5244, 13.4105, "Europe/Berlin"),
    (3117735, "Madrid", "ES", 40.4165, -3.7026, "Europe/Madrid"),
    (3169070, "Rome", "IT", 41.8947, 12.4839, "Europe/Rome"),
    (524901, "Moscow", "RU", 55.7522, 37.6156, "Europe/Moscow"),
    (1850147, "Tokyo", "JP", 35.6895, 139.6917, "Asia/Tokyo"),
    (5128581, "New York City", "US", 40.7143, -74.0060, "America/New_York"),
    (5368361, "Los Angeles", "US", 34.0522, -118.2437, "America/Los_Angeles"),
    (4887398, "Chicago", "US", 41.8500, -87.6500, "America/Chicago"),
    (2147714, "Sydney", "AU", -33.8679, 151.2073, "Australia/Sydney"),
    (1275339, "Mumbai", "IN", 19.0144, 72.8479, "Asia/Kolkata"),
    (1273294, "Delhi", "IN", 28.6667, 77.2167, "Asia/Kolkata"),
    (1816670, "Beijing", "CN", 39.9075, 116.3972, "Asia/Shanghai"),
    (1796236, "Shanghai", "CN", 31.2222, 121.4581, "Asia/Shanghai"),
    (360630, "Cairo", "EG", 30.0626, 31.2497, "Africa/Cairo"),
    (2332459, "Lagos", "NG", 6.4531, 3.3958, "Africa/Lagos"),
    (184745, "Nairobi", "KE", -1.2833, 36.8167, "Africa/Nairobi"),
    (993800, "Johannesburg", "ZA", -26.2023, 28.0436, "Africa/Johannesburg"),
    (3448439, "São Paulo", "BR", -23.5475, -46.6361, "America/Sao_Paulo"),
    (3451190, "Rio de Janeiro", "BR", -22.9028, -43.2075, "America/Sao_Paulo"),
    (3435910, "Buenos Aires", "AR", -34.6132, -58.3772, "America/Argentina/Buenos_Aires"),
    (3530597, "Mexico City", "MX", 19.4285, -99.1277, "America/Mexico_City"),
    (6167865, "Toronto", "CA", 43.7001, -79.4163, "America/Toronto"),
    (6173331, "Vancouver", "CA", 49.2497, -123.1193, "America/Vancouver"),
    (5809844, "Seattle", "US", 47.6062, -122.3321, "America/Los_Angeles"),
    (5391959, "San Francisco", "US", 37.7749, -122.4194, "America/Los_Angeles"),
    (4164138, "Miami", "US", 25.7743, -80.1937, "America/New_York"),
    (5879400, "Anchorage", "US", 61.2181, -149.9003, "America/Anchorage"),
    (5856195, "Honolulu", "US", 21.3069, -157.8583, "Pacific/Honolulu"),
    (3413829, "Reykjavík", "IS", 64.1355, -21.8954, "Atlantic/Reykjavik"),
    (3143244, "Oslo", "NO", 59.9127, 10.7461, "Europe/Oslo"),
    (2673730, "Stockholm", "SE", 59.3326, 18.0649, "Europe/Stockholm"),
    (658225, "Helsinki", "FI", 60.1695, 24.9354, "Europe/Helsinki"),
    (2618425, "Copenhagen", "DK", 55.6759, 12.5655, "Europe/Copenhagen"),
    (2759794, "Amsterdam", "NL", 52.3740, 4.8897, "Europe/Amsterdam"),
    (2800866, "Brussels", "BE", 50.8504, 4.3488, "Europe/Brussels"),
    (2761369, "Vienna", "AT", 48.2085, 16.3721, "Europe/Vienna"),
    (2657896, "Zürich", "CH", 47.3667, 8.5500, "Europe/Zurich"),
    (756135, "Warsaw", "PL", 52.2298, 21.0118, "Europe/Warsaw"),
    (3067696, "Prague", "CZ", 50.0880, 14.4208, "Europe/Prague"),
    (264371, "Athens", "GR", 37.9795, 23.7162, "Europe/Athens"),
    (745044, "Istanbul", "TR", 41.0138, 28.9497, "Europe/Istanbul"),
    (292223, "Dubai", "AE", 25.2582, 55.3047, "Asia/Dubai"),
    (108410, "Riyadh", "SA", 24.6877, 46.7219, "Asia/Riyadh"),
    (112931, "Tehran", "IR", 35.6944, 51.4215, "Asia/Tehran"),
    (1174872, "Karachi", "PK", 24.9056, 67.0822, "Asia/Karachi"),
    (1185241, "Dhaka", "BD", 23.7104, 90.4074, "Asia/Dhaka"),
    (1609350, "Bangkok", "TH", 13.7500, 100.5167, "Asia/Bangkok"),
    (1880252, "Singapore", "SG", 1.2897, 103.8501, "Asia/Singapore"),
    (1642911, "Jakarta", "ID", -6.2146, 106.8451, "Asia/Jakarta"),
    (1701668, "Manila", "PH", 14.6042, 120.9822, "Asia/Manila"),
    (1819729, "Hong Kong", "HK", 22.2855, 114.1577, "Asia/Hong_Kong"),
    (1835848, "Seoul", "KR", 37.5683, 126.9778, "Asia/Seoul"),
    (1853909, "Osaka", "JP", 34.6937, 135.5022, "Asia/Tokyo"),
    (2158177, "Melbourne", "AU", -37.8140, 144.9633, "Australia/Melbourne"),
    (2193733, "Auckland", "NZ", -36.8667, 174.7667, "Pacific/Auckland"),
    (3936456, "Lima", "PE", -12.0432, -77.0282, "America/Lima"),
    (3688689, "Bogotá", "CO", 4.6097, -74.0817, "America/Bogota"),
    (3871336, "Santiago", "CL", -33.4569, -70.6483, "America/Santiago"),
    (2553604, "Casablanca", "MA", 33.5928, -7.6192, "Africa/Casablanca"),
    (2314302, "Kinshasa", "CD", -4.3246, 15.3215, "Africa/Kinshasa"),
    (344979, "Addis Ababa", "ET", 9.0250, 38.7469, "Africa/Addis_Ababa"),
    (2267057, "Lisbon", "PT", 38.7167, -9.1333, "Europe/Lisbon"),
    (2964574, "Dublin", "IE", 53.3440, -6.2672, "Europe/Dublin"),
    (2650225, "Edinburgh", "GB", 55.9521, -3.1965, "Europe/London"),
    (2028462, "Ulan Bator", "MN", 47.9077, 106.8832, "Asia/Ulaanbaatar"),
    (2013159, "Yakutsk", "RU", 62.0339, 129.7331, "Asia/Yakutsk"),
    (5308655, "Phoenix", "US", 33.4484, -112.0740, "America/Phoenix"),
    (5419384, "Denver", "US", 39.7392, -104.9847, "America/Denver"),
    (4469146, "Greensboro", "US", 36.0726, -79.7920, "America/New_York"),
))
# fmt: on


@dataclass(frozen=True)
class CitySelector:
    """How to ask the API for one city: by id, by name (``q=``) or by coordinates."""

    city_id: int | None = None
    name: str | None = None
    lat: float | None = None
    lon: float | None = None

    def params(self) -> dict[str, str]:
        """The query parameters that select this city."""
        if self.city_id is not None:
            return {"id": str(self.city_id)}
        if self.name is not None:
            return {"q": self.name}
        return {"lat": f"{self.lat:.4f}", "lon": f"{self.lon:.4f}"}

    def __str__(self) -> str:
        if self.city_id is not None:
            return f"id {self.city_id}"
        if self.name is not None:
            return repr(self.name)
        return f"{self.lat:.4f},{self.lon:.4f}"


_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[,:]\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_city_spec(spec: str) -> CitySelector:
    """Parse a city given on the command line or in a file: ``2950159``, ``Berlin,DE`` or ``52.52:13.41``.

    Raises:
        ValueError: empty, or coordinates out of range.
    """
    text = spec.strip()
    if not text:
        raise ValueError("empty city")
    if text.isdigit():
        return CitySelector(city_id=int(text))
    match = _LATLON.match(text)
    if match:
        lat, lon = float(match.group(1)), float(match.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"coordinates {text!r} are out of range (lat -90..90, lon -180..180)")
        return CitySelector(lat=lat, lon=lon)
    return CitySelector(name=text)
