"""A deterministic synthetic weather source for many cities, with labelled anomalies.

Same seed, same bytes. Each city gets a climate from its latitude (annual mean and seasonal swing by
hemisphere), a diurnal cycle peaking mid-afternoon local solar time, moving pressure systems (a few
waves of several days per city) that drive wind and rain, and autocorrelated noise.

Injected anomalies are recorded as :class:`AnomalyLabel` s so detection can be scored:

==================  ==============================================================  ============
kind                what is injected                                                 expected
==================  ==============================================================  ============
heat_spike          temperature +12..16 °C over the normal for 3 h                  alert
cold_snap           temperature -12..16 °C under the normal for 3 h                 alert
pressure_drop       pressure falling 15..25 hPa within 3 h, recovering over 6 h     alert
wind_gust           gusts of 32..40 m/s, wind 20+ m/s for 1 h                        alert
stuck_sensor        every reading repeated unchanged for 10 observations            alert
silent_station      no observation for 12 steps                                      alert
impossible_value    one observation with humidity 140 % or temperature 95 °C        deadletter
==================  ==============================================================  ============

Normal weather never reaches the physical alert thresholds; the extremes come from the injected
anomalies only. Observations are emitted time step by time step, every city at each step (a silent city skips its
steps), until ``count`` payloads have been produced.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from models import RawRecord
from weatherstream.core.payload import Conditions, dumps, owm_payload
from weatherstream.sources.cities import BUILTIN_CITIES, City

ANOMALY_KINDS = (
    "heat_spike", "cold_snap", "pressure_drop", "wind_gust", "stuck_sensor", "silent_station", "impossible_value",
)  # fmt: skip
SECONDS_PER_YEAR = 365.2422 * 86400
MAX_CITIES = 200_000
#: the station count the spacing of extra stations was laid out for (beyond it, rings grow wider)
_RING_LAYOUT_CITIES = 5000
#: ids of the extra stations start here, far above OpenWeatherMap's city ids
EXTRA_STATION_ID_BASE = 90_000_000


def synthetic_cities(n: int) -> list[City]:
    """``n`` cities: the built-in ones first, then stations near them (for load beyond the built-in list).

    Station ``i`` (counting from the end of the built-in list) lies up to half a degree from built-in city
    ``i mod len``, in its time zone, with id ``EXTRA_STATION_ID_BASE + i``.
    """
    out = list(BUILTIN_CITIES[:n])
    for i in range(max(0, n - len(BUILTIN_CITIES))):
        base = BUILTIN_CITIES[i % len(BUILTIN_CITIES)]
        ring = i // len(BUILTIN_CITIES) + 1
        angle = 2.399963 * i  # the golden angle: stations of one city spread around it
        radius = 0.5 * math.sqrt(ring / (_RING_LAYOUT_CITIES / len(BUILTIN_CITIES)))
        out.append(dataclasses.replace(
            base, city_id=EXTRA_STATION_ID_BASE + i, name=f"{base.name} station {ring}",
            lat=max(-89.9, min(89.9, base.lat + radius * math.sin(angle))),
            lon=(base.lon + radius * math.cos(angle) + 180.0) % 360.0 - 180.0,
        ))  # fmt: skip
    return out


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate.

    Attributes:
        cities: how many cities: the first N of the built-in list, then (beyond its length, up to
            :data:`MAX_CITIES`) stations near them, see :func:`synthetic_cities`.
        count: how many payloads in all.
        start: event time of the first step, UTC epoch seconds.
        step_s: event-time spacing of one city's observations, seconds.
        seed: random seed; the same config always gives the same payloads.
        anomalies: how many incidents to inject (spread over kinds, cities and time).
    """

    cities: int = 50
    count: int = 10_000
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    step_s: float = 600.0
    seed: int = 42
    anomalies: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.cities <= MAX_CITIES:
            raise ValueError(f"cities must be 1..{MAX_CITIES}, got {self.cities}")
        if self.count < 0 or self.step_s <= 0 or self.anomalies < 0:
            raise ValueError("count and anomalies must be >= 0 and step_s > 0")


@dataclass(frozen=True)
class AnomalyLabel:
    """One injected incident.

    Attributes:
        incident_id: "<kind>-<city>-<start>".
        start, end: event-time span of the incident, UTC epoch seconds (end inclusive).
        expected: "alert" when a detector should raise one, "deadletter" when ingestion must reject it.
        events: how many payloads the incident touches (0 for a silent station).
    """

    incident_id: str
    kind: str
    city_id: int
    start: float
    end: float
    expected: str
    events: int
    detail: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _duration_steps(kind: str, step_s: float) -> int:
    seconds = {
        "heat_spike": 3 * 3600, "cold_snap": 3 * 3600, "pressure_drop": 9 * 3600, "wind_gust": 3600,
    }.get(kind)  # fmt: skip
    if seconds is not None:
        return max(1, round(seconds / step_s))
    return {"stuck_sensor": 10, "silent_station": 12, "impossible_value": 1}[kind]


@dataclass
class _Incident:
    label: AnomalyLabel
    first_step: int
    steps: int
    magnitude: float


class _CityModel:
    """The weather of one city: deterministic functions of time plus seeded noise."""

    def __init__(self, city: City, rng: random.Random) -> None:
        self.city = city
        self.rng = rng
        lat = city.lat
        self.annual_mean_c = 29.0 - 0.0072 * lat * lat + rng.uniform(-1.5, 1.5)
        self.seasonal_amp_c = 0.2 * abs(lat)
        self.diurnal_amp_c = rng.uniform(3.0, 6.0)
        self.north = lat >= 0
        self.waves = [(rng.uniform(2.5, 7.0) * 86400, rng.uniform(4.0, 11.0), rng.uniform(0, 2 * math.pi))
                      for _ in range(3)]  # fmt: skip
        self.base_wind = rng.uniform(2.0, 5.0)
        self.noise_c = 0.0

    def climate_temp_c(self, t: float) -> float:
        """Temperature without noise or anomaly: annual mean + season + local-solar diurnal cycle."""
        year_phase = 2 * math.pi * ((t - 1_767_225_600.0) % SECONDS_PER_YEAR) / SECONDS_PER_YEAR
        # Northern summer peaks around 20 July (phase ~ 0.55 of the year); the south is opposite.
        season = -math.cos(year_phase - 2 * math.pi * 0.05)
        season = season if self.north else -season
        solar_hour = ((t % 86400) / 3600 + self.city.lon / 15.0) % 24
        diurnal = math.cos(2 * math.pi * (solar_hour - 15.0) / 24)
        return self.annual_mean_c + self.seasonal_amp_c * season + self.diurnal_amp_c * diurnal

    def pressure_hpa(self, t: float) -> float:
        return 1013.0 + sum(a * math.sin(2 * math.pi * t / p + ph) for p, a, ph in self.waves)

    def conditions(self, t: float, step_s: float) -> Conditions:
        rng = self.rng
        self.noise_c = 0.8 * self.noise_c + rng.gauss(0.0, 0.45)
        pressure = self.pressure_hpa(t) + rng.gauss(0.0, 0.3)
        tendency = (self.pressure_hpa(t) - self.pressure_hpa(t - 3 * 3600)) / 3.0  # hPa per hour
        temp = self.climate_temp_c(t) + self.noise_c + 0.08 * (pressure - 1013.0)
        humidity = max(8.0, min(100.0, 72.0 - 2.0 * (temp - self.annual_mean_c) - 0.8 * (pressure - 1013.0)
                                + rng.gauss(0.0, 3.0)))  # fmt: skip
        wind = max(0.0, self.base_wind + 1.6 * abs(tendency) + rng.gauss(0.0, 0.8))
        gust = wind * rng.uniform(1.3, 1.7) + max(0.0, rng.gauss(0.0, 0.8)) if wind > 3 else None
        clouds = max(0.0, min(100.0, 50.0 - 3.0 * (pressure - 1013.0) + rng.gauss(0.0, 15.0)))
        precipitation = 0.0
        if pressure < 1006.0 and rng.random() < 0.35:
            precipitation = rng.expovariate(1 / 1.4)
        # Normal weather stays below the alert thresholds (heavy rain 10 mm/h, heavy snow 5 mm/h): the only
        # extremes in the data are the labelled injected anomalies, so detection can be scored against them.
        rain, snow = (0.0, min(precipitation, 2.5)) if temp < 0.5 else (min(precipitation, 6.0), 0.0)
        return Conditions(
            temp_c=temp,
            humidity_pct=humidity,
            pressure_hpa=pressure,
            wind_speed_ms=wind,
            wind_deg=(180.0 + 90.0 * math.sin(2 * math.pi * t / (4 * 86400)) + rng.gauss(0, 20)) % 360,
            wind_gust_ms=gust,
            clouds_pct=clouds,
            rain_1h_mm=rain or None,
            snow_1h_mm=snow or None,
            visibility_m=10000.0 if precipitation < 2 else max(800.0, 10000.0 - 2500.0 * precipitation),
        )


def plan_anomalies(cfg: SyntheticConfig) -> list[AnomalyLabel]:
    """The incidents a config injects (the same list :func:`generate` uses).

    Raises:
        ValueError: not all requested anomalies fit in the generated time span.
    """
    return [i.label for i in _plan(cfg)]


def _total_steps(cfg: SyntheticConfig) -> int:
    # Enough steps for `count` payloads even though silent stations skip some.
    return math.ceil(cfg.count / cfg.cities) + 12 * cfg.anomalies // max(1, cfg.cities) + 13


def _plan(cfg: SyntheticConfig) -> list[_Incident]:
    rng = random.Random(f"anomalies-{cfg.seed}")
    cities = synthetic_cities(cfg.cities)
    usable_steps = math.ceil(cfg.count / cfg.cities)
    warmup = min(usable_steps // 4, max(1, round(2 * 86400 / cfg.step_s)))  # a clean stretch first, for baselines
    busy: dict[int, list[tuple[int, int]]] = {}
    incidents: list[_Incident] = []
    for n in range(cfg.anomalies):
        kind = ANOMALY_KINDS[n % len(ANOMALY_KINDS)]
        steps = _duration_steps(kind, cfg.step_s)
        gap = max(steps, round(12 * 3600 / cfg.step_s))  # keep incidents of one city apart
        for _ in range(200):
            city = cities[rng.randrange(len(cities))]
            last_start = usable_steps - steps - 2
            if last_start <= warmup:
                break
            first = rng.randrange(warmup, last_start)
            spans = busy.setdefault(city.city_id, [])
            if all(first + steps + gap <= s or e + gap <= first for s, e in spans):
                spans.append((first, first + steps))
                break
        else:
            continue
        if last_start <= warmup:
            break
        start = cfg.start + first * cfg.step_s
        end = cfg.start + (first + steps - 1) * cfg.step_s
        magnitude = {
            "heat_spike": rng.uniform(12, 16), "cold_snap": rng.uniform(12, 16), "pressure_drop": rng.uniform(15, 25),
            "wind_gust": rng.uniform(32, 40), "stuck_sensor": 0.0, "silent_station": 0.0,
            "impossible_value": float(rng.choice((140, 95))),
        }[kind]  # fmt: skip
        detail = {
            "heat_spike": f"+{magnitude:.1f} °C", "cold_snap": f"-{magnitude:.1f} °C",
            "pressure_drop": f"-{magnitude:.1f} hPa in 3 h", "wind_gust": f"gusts {magnitude:.1f} m/s",
            "stuck_sensor": f"{steps} identical observations", "silent_station": f"{steps} steps without data",
            "impossible_value": "humidity 140 %" if magnitude == 140 else "temperature 95 °C",
        }[kind]  # fmt: skip
        label = AnomalyLabel(
            incident_id=f"{kind}-{city.city_id}-{int(start)}",
            kind=kind,
            city_id=city.city_id,
            start=start,
            end=end,
            expected="deadletter" if kind == "impossible_value" else "alert",
            events=0 if kind == "silent_station" else steps,
            detail=detail,
        )
        incidents.append(_Incident(label, first, steps, magnitude))
    if len(incidents) < cfg.anomalies:
        raise ValueError(
            f"only {len(incidents)} of {cfg.anomalies} anomalies fit into {usable_steps} steps of {cfg.step_s:g} s "
            f"per city (incidents of one city stay 12 h apart, after a 2-day warm-up): raise --count, "
            f"lower --cities or --anomalies"
        )
    return incidents


def _apply(incident: _Incident, step: int, c: Conditions, stuck: dict[int, Conditions]) -> Conditions:
    kind, k, n, m = incident.label.kind, step - incident.first_step, incident.steps, incident.magnitude
    if kind == "heat_spike" and c.temp_c is not None:
        humidity = None if c.humidity_pct is None else max(8.0, c.humidity_pct - 3 * m)  # hot air is dry air
        return dataclasses.replace(c, temp_c=min(c.temp_c + m, 55.0), humidity_pct=humidity)
    if kind == "cold_snap" and c.temp_c is not None:
        return dataclasses.replace(c, temp_c=max(c.temp_c - m, -89.0))
    if kind == "pressure_drop" and c.pressure_hpa is not None:
        fall = n / 3  # the first third falls, the rest recovers
        depth = m * (k + 1) / fall if k < fall else m * max(0.0, 1 - (k + 1 - fall) / (n - fall + 1))
        return dataclasses.replace(c, pressure_hpa=max(c.pressure_hpa - depth, 851.0))
    if kind == "wind_gust":
        return dataclasses.replace(c, wind_speed_ms=max(c.wind_speed_ms or 0, 20.0 + m / 10), wind_gust_ms=m)
    if kind == "stuck_sensor":
        return stuck.setdefault(incident.label.city_id, c)
    if kind == "impossible_value":
        return dataclasses.replace(c, humidity_pct=140.0) if m == 140 else dataclasses.replace(c, temp_c=95.0)
    return c


def generate(cfg: SyntheticConfig) -> Iterator[RawRecord]:
    """Yield ``cfg.count`` raw payloads, step by step across cities, with the planned anomalies."""
    cities = synthetic_cities(cfg.cities)
    models = {c.city_id: _CityModel(c, random.Random(f"{cfg.seed}-{c.city_id}")) for c in cities}
    by_city: dict[int, list[_Incident]] = {}
    for incident in _plan(cfg):
        by_city.setdefault(incident.label.city_id, []).append(incident)
    stuck: dict[int, Conditions] = {}
    produced = 0
    for step in range(_total_steps(cfg)):
        t = cfg.start + step * cfg.step_s
        for city in cities:
            if produced >= cfg.count:
                return
            conditions = models[city.city_id].conditions(t, cfg.step_s)
            active = [i for i in by_city.get(city.city_id, ()) if i.first_step <= step < i.first_step + i.steps]
            if any(i.label.kind == "silent_station" for i in active):
                continue
            for incident in active:
                conditions = _apply(incident, step, conditions, stuck)
            if not any(i.label.kind == "stuck_sensor" for i in active):
                stuck.pop(city.city_id, None)
            doc = owm_payload(
                city_id=city.city_id, name=city.name, country=city.country, lat=city.lat, lon=city.lon,
                observed_at=t, timezone_offset_s=city.utc_offset_s(t), conditions=conditions,
            )  # fmt: skip
            produced += 1
            yield RawRecord(payload=dumps(doc), city_id=city.city_id, source="synthetic", event_time=t)
