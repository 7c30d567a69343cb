"""Alert texts for people: what changed, by how much, over what span, against which reference and threshold.

One line per alert, the same in the Kafka message (``Alert.message``), in Cassandra, in ``alerts tail`` and on
the dashboard, e.g. ``London: temperature rose 12.1 °C in 50 min (0.3 -> 12.4 °C); critical at a change of
12 °C within 1 h``. The machine-readable values stay in fields of their own.
"""

from __future__ import annotations

import datetime as dt

from weatherstream.core.anomaly.detectors import Signal

#: what each kind is, in words
WHAT = {
    "temp_high": "temperature far above usual", "temp_low": "temperature far below usual",
    "heat": "extreme heat", "frost": "severe frost", "storm": "storm-force wind", "gust": "damaging gusts",
    "heavy_rain": "heavy rain", "heavy_snow": "heavy snow", "pressure_drop": "rapidly falling pressure",
    "temp_jump": "sudden temperature change", "stuck_sensor": "readings stuck at the same values",
    "silent_station": "station silent",
}  # fmt: skip
#: how the end of an incident reads, where "<what> is over" does not
OVER = {"stuck_sensor": "the readings change again", "silent_station": "observations come in again"}
#: the quantity a threshold kind measures, and on which side of its thresholds danger lies
MEASURED = {
    "heat": ("temperature", "above"), "frost": ("temperature", "below"), "storm": ("wind", "above"),
    "gust": ("gusts", "above"), "heavy_rain": ("rain", "above"), "heavy_snow": ("snow", "above"),
}  # fmt: skip
#: the span a rate kind measures its change over
RATE_SPAN = {"temp_jump": "within 1 h", "pressure_drop": "within 3 h"}


def describe(city: str, kind: str, state: str, signal: Signal, severity: str, observed_at: float,
             historical: bool = False) -> str:  # fmt: skip
    """The alert's line: ``city: what happened; the rule it broke`` (``resolved``: what is over, and where the
    value is now). Historical alerts (about observations older than the historical limit) say so first."""
    if state == "resolved":
        text = (
            f"{city}: {OVER[kind]}" if kind in OVER else f"{city}: {WHAT.get(kind, kind)} is over{_now(kind, signal)}"
        )
    else:
        text = f"{city}: {_what_happened(kind, signal, observed_at)}{_rule(kind, signal, severity)}"
    if historical:
        when = dt.datetime.fromtimestamp(observed_at, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = f"Historical (observed {when}): {text}"
    return text


def _what_happened(kind: str, s: Signal, t: float) -> str:
    what = WHAT.get(kind, kind)
    if s.value is None:
        return what
    if kind in MEASURED:
        quantity, _ = MEASURED[kind]
        if kind in ("heavy_rain", "heavy_snow"):
            return f"{what}, {_num(s.value)} mm in the last hour"
        return f"{what}, {quantity} {_num(s.value)} {s.unit}"
    if kind in ("temp_high", "temp_low") and s.reference is not None:
        side = "above" if s.value >= s.reference else "below"
        return (f"temperature {_num(s.value)} °C, {_num(abs(s.value - s.reference))} °C {side} its usual "
                f"{_num(s.reference)} °C for this hour of the day")  # fmt: skip
    if kind in RATE_SPAN and s.reference is not None:
        quantity = _quantity(kind)
        moved = "rose" if s.value > s.reference else "fell"
        span = f" in {duration(t - s.since)}" if s.since is not None else ""
        return (f"{quantity} {moved} {_num(abs(s.value - s.reference))} {s.unit}{span} "
                f"({_num(s.reference)} -> {_num(s.value)} {s.unit})")  # fmt: skip
    if kind == "stuck_sensor":
        return f"the same readings {s.value:.0f} times in a row (temperature, pressure, humidity, wind)"
    if kind == "silent_station" and s.reference is not None and s.limit:
        usual = s.reference / s.limit
        ratio = s.value / usual
        return f"no observation for {duration(s.value)}, {ratio:.1f} times the usual interval of {duration(usual)}"
    return f"{what}, {_num(s.value)} {s.unit}".rstrip()


def _rule(kind: str, s: Signal, severity: str) -> str:
    if s.limit is None:
        return f" [{severity}]"
    if kind in MEASURED:
        unit = "mm/h" if kind in ("heavy_rain", "heavy_snow") else s.unit
        side = "and above" if MEASURED[kind][1] == "above" else "and below"
        return f"; {severity} at {_limit(s.limit)} {unit} {side}"
    if kind in ("temp_high", "temp_low") and s.score is not None:
        return f" ({abs(s.score):.1f} times its usual spread; {severity} from {_limit(s.limit)} times)"
    if kind in RATE_SPAN:
        change = "a change" if kind == "temp_jump" else "a fall"
        return f"; {severity} at {change} of {_limit(s.limit)} {s.unit} {RATE_SPAN[kind]}"
    if kind == "stuck_sensor":
        return f"; {severity} from {_limit(s.limit)} in a row"
    if kind == "silent_station":
        return f"; {severity} after {_limit(s.limit)} times the usual interval"
    return f" [{severity}]"


def _now(kind: str, s: Signal) -> str:
    """Where the value is now, for a resolved incident."""
    return "" if s.value is None else f" ({_quantity(kind)} {_num(s.value)} {s.unit})"


def _quantity(kind: str) -> str:
    """What a kind's value measures."""
    if kind in MEASURED:
        return MEASURED[kind][0]
    return "pressure" if kind == "pressure_drop" else "temperature"


def duration(seconds: float) -> str:
    """``45 s``, ``50 min``, ``2 h 40 min``, ``3 d 4 h`` (rounded to the unit shown last)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(round(minutes / 60), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _num(value: float) -> str:
    return f"{value:.1f}"


def _limit(value: float) -> str:
    return f"{value:g}"
