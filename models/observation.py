"""The normalized weather observation: one per (city id, observation time)."""

import datetime as dt

import faust


class Observation(faust.Record, serializer="json", include_metadata=False):
    """One validated, metric-unit observation of one city, as it travels on ``{ns}.observations``.

    Times are UTC epoch seconds (floats). Optional measurements are ``None`` when the source did not
    report them; they are never filled in.

    Attributes:
        city_id: OpenWeatherMap city id (a GeoNames id); the message key.
        observed_at: observation time ``dt`` of the payload, UTC epoch seconds.
        timezone_offset_s: the city's offset from UTC in seconds at that time (east positive).
        temp_c: air temperature, °C (-90..60). ``feels_like_c``, ``temp_min_c``, ``temp_max_c`` likewise;
            min/max are the spread across the city area now, not the day's extremes.
        pressure_hpa: sea-level pressure, hPa (850..1090).
        humidity_pct: relative humidity, % (0..100).
        wind_speed_ms, wind_gust_ms: m/s; wind_deg: meteorological direction, degrees (0..360).
        clouds_pct: cloud cover, %; visibility_m: metres.
        rain_1h_mm, snow_1h_mm: precipitation of the last hour, mm.
        pressure_tendency_3h_hpa: the change of ``pressure_hpa`` over the 3 h before (from the station's
            reading 2.5-3 h earlier, if the pipeline holds one), hPa; set by the pipeline, not by sources.
        source: where it came from ("owm", "synthetic", "replay", or what a foreign producer said).
        ingested_at: when the pipeline agent accepted it, UTC epoch seconds.
        payload_json: the original payload text exactly as received.
    """

    city_id: int
    observed_at: float
    city_name: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    timezone_offset_s: int | None = None
    temp_c: float | None = None
    feels_like_c: float | None = None
    temp_min_c: float | None = None
    temp_max_c: float | None = None
    pressure_hpa: float | None = None
    sea_level_hpa: float | None = None
    grnd_level_hpa: float | None = None
    humidity_pct: float | None = None
    wind_speed_ms: float | None = None
    wind_deg: float | None = None
    wind_gust_ms: float | None = None
    clouds_pct: float | None = None
    rain_1h_mm: float | None = None
    snow_1h_mm: float | None = None
    pressure_tendency_3h_hpa: float | None = None
    visibility_m: float | None = None
    condition_id: int | None = None
    condition_main: str | None = None
    condition_description: str | None = None
    sunrise: float | None = None
    sunset: float | None = None
    source: str = "unknown"
    ingested_at: float | None = None
    payload_json: str | None = None

    @property
    def observed_at_utc(self) -> dt.datetime:
        """:attr:`observed_at` as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.observed_at, tz=dt.timezone.utc)


#: what a station's newest observation keeps: the pipeline's city record (for the web view) and, with the
#: station's position, the ``latest_by_city`` table
LATEST_FIELDS = ("observed_at", "city_name", "country", "timezone_offset_s", "temp_c", "feels_like_c", "humidity_pct",
                 "pressure_hpa", "pressure_tendency_3h_hpa", "wind_speed_ms", "wind_gust_ms", "rain_1h_mm",
                 "snow_1h_mm", "condition_main", "condition_description", "source")  # fmt: skip
