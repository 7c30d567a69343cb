"""Replay recorded observations: JSON lines of OpenWeatherMap payloads, or CSV with a column mapping.

- **JSON lines** (``.jsonl``/``.json``, optionally ``.gz``): each non-empty line is one payload and is
  sent byte for byte; its ``dt`` stays its event time. Lines that are not valid payloads are still sent,
  so the worker dead-letters them with the reason (nothing is dropped on the producer side).
- **CSV**: a header row, one observation per row; ``--map field=column`` names the columns
  (fields: ``time``, ``city_id``, ``name``, and the metric measurements of :class:`Conditions`).
  Each row becomes an OpenWeatherMap-shaped payload.
- **TMY3** (``--format tmy3``): the hourly typical-meteorological-year files of the US NSRDB (pvlib ships
  ``723170TYA.CSV``, Greensboro NC). Its months come from different years, so the rows are placed on one
  ``year`` (a typical year), in local standard time converted to UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from models import RawRecord
from weatherstream.core.payload import Conditions, dumps, owm_payload
from weatherstream.sources.errors import ReplayFormatError

CONDITION_FIELDS = tuple(f for f in Conditions.__dataclass_fields__)
CSV_FIELDS = ("time", "city_id", "name", "country", "lat", "lon", *CONDITION_FIELDS)


class ByteCounter(io.RawIOBase):
    """Wraps a binary file and counts the bytes read from it (progress of compressed files too)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass
class ReplayFile:
    """An opened replay input with its size for progress reporting."""

    path: Path
    total_bytes: int
    counter: ByteCounter
    text: IO[str] | None = None
    binary: IO[bytes] | None = None

    @property
    def bytes_read(self) -> int:
        return self.counter.bytes_read

    def close(self) -> None:
        for handle in (self.text, self.binary):
            if handle is not None:
                handle.close()
        self.counter.close()


def open_replay(path: Path, *, text: bool) -> ReplayFile:
    """Open ``path`` (transparently gunzipping ``.gz``) and count the bytes read for progress."""
    if not path.is_file():
        raise ReplayFormatError(f"replay file {path} does not exist")
    counter = ByteCounter(path.open("rb"))
    buffered: IO[bytes] = io.BufferedReader(counter)
    if path.suffix == ".gz":
        buffered = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
    handle = ReplayFile(path=path, total_bytes=path.stat().st_size, counter=counter)
    if text:
        handle.text = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
    else:
        handle.binary = buffered
    return handle


def detect_format(path: Path) -> str:
    """Guess the format from the file name: ``.csv`` is CSV (TMY3 when its second line says so), else JSON lines."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
            fh.readline()
            second = fh.readline()
        return "tmy3" if second.startswith("Date (MM/DD/YYYY)") else "csv"
    return "jsonl"


def read_jsonl(handle: ReplayFile, units: str = "metric") -> Iterator[RawRecord]:
    """One record per non-empty line, payload bytes unchanged."""
    assert handle.binary is not None
    for line in handle.binary:
        payload = line.rstrip(b"\r\n")
        if not payload.strip():
            continue
        yield RawRecord.from_payload(payload, source="replay", units=units)


@dataclass(frozen=True)
class CsvMapping:
    """How CSV columns become payload fields.

    Attributes:
        columns: payload field -> CSV column name (fields from :data:`CSV_FIELDS`).
        time_format: ``strptime`` format of the time column, or "epoch" for unix seconds; times without
            an offset are read in ``utc_offset_s``.
        constants: fields that are the same for every row (``city_id``, ``name``, ``lat``, ...).
    """

    columns: Mapping[str, str]
    time_format: str = "iso"
    utc_offset_s: int = 0
    constants: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(CSV_FIELDS)
        if unknown:
            raise ReplayFormatError(f"unknown field(s) {sorted(unknown)} in --map; known: {', '.join(CSV_FIELDS)}")
        if "time" not in self.columns:
            raise ReplayFormatError("--map needs a time column, e.g. --map time=timestamp")
        if "city_id" not in self.columns and "city_id" not in self.constants:
            raise ReplayFormatError("give the city: --map city_id=COLUMN or --city-id ID")


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """Parse ``field=column`` pairs from the command line."""
    mapping = {}
    for pair in pairs:
        if "=" not in pair:
            raise ReplayFormatError(f"--map {pair!r}: use FIELD=COLUMN, e.g. temp_c=Temperature")
        key, column = pair.split("=", 1)
        mapping[key.strip()] = column.strip()
    return mapping


def _parse_time(text: str, fmt: str, utc_offset_s: int) -> float:
    if fmt == "epoch":
        return float(text)
    parsed = dt.datetime.fromisoformat(text) if fmt == "iso" else dt.datetime.strptime(text, fmt)  # noqa: DTZ007
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone(dt.timedelta(seconds=utc_offset_s)))
    return parsed.timestamp()


def _float_or_none(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip()
    if not text or text.upper() in {"NA", "NAN", "NULL", "NONE", "-"}:
        return None
    return float(text)


def read_csv(handle: ReplayFile, mapping: CsvMapping) -> Iterator[RawRecord]:
    """One OpenWeatherMap-shaped payload per CSV row."""
    assert handle.text is not None
    reader = csv.DictReader(handle.text)
    missing = [c for c in mapping.columns.values() if reader.fieldnames is None or c not in reader.fieldnames]
    if missing:
        raise ReplayFormatError(f"{handle.path}: no column(s) {missing}; the header has {reader.fieldnames}")
    yield from _rows_to_records(reader, mapping, _value_getter(mapping), handle.path)


def _value_getter(mapping: CsvMapping) -> Callable[[Mapping[str, str], str], Any]:
    def get(row: Mapping[str, str], name: str) -> Any:
        if name in mapping.columns:
            return row.get(mapping.columns[name])
        return mapping.constants.get(name)

    return get


def _rows_to_records(
    rows: Any, mapping: CsvMapping, get: Callable[[Mapping[str, str], str], Any], path: Path, first_line: int = 2
) -> Iterator[RawRecord]:
    for line_no, row in enumerate(rows, start=first_line):
        try:
            observed_at = _parse_time(str(get(row, "time")), mapping.time_format, mapping.utc_offset_s)
            city_id = int(get(row, "city_id"))
            values = {f: _float_or_none(None if get(row, f) is None else str(get(row, f))) for f in CONDITION_FIELDS}
            lat, lon = get(row, "lat"), get(row, "lon")
        except (TypeError, ValueError) as exc:
            raise ReplayFormatError(f"{path} line {line_no}: {exc}") from None
        doc = owm_payload(
            city_id=city_id,
            name=str(get(row, "name") or ""),
            country=get(row, "country"),
            lat=float(lat or 0.0),
            lon=float(lon or 0.0),
            observed_at=observed_at,
            timezone_offset_s=mapping.utc_offset_s,
            conditions=Conditions(**values),
        )
        if lat is None or lon is None:
            doc.pop("coord", None)
        yield RawRecord(payload=dumps(doc), city_id=city_id, source="replay", event_time=observed_at)


# TMY3 column -> payload field; a value whose "source" flag column is "?" counts as missing.
TMY3_COLUMNS = {
    "temp_c": "Dry-bulb (C)",
    "humidity_pct": "RHum (%)",
    "pressure_hpa": "Pressure (mbar)",
    "wind_deg": "Wdir (degrees)",
    "wind_speed_ms": "Wspd (m/s)",
    "visibility_m": "Hvis (m)",
    "rain_1h_mm": "Lprecip depth (mm)",
    "clouds_pct": "TotCld (tenths)",
}


def read_tmy3(handle: ReplayFile, *, city_id: int, name: str | None = None, year: int = 2023) -> Iterator[RawRecord]:
    """Rows of an NSRDB TMY3 file as payloads of ``city_id``, placed on ``year``."""
    assert handle.text is not None
    meta = next(csv.reader([handle.text.readline()]), [])
    try:
        station_name, tz_hours, lat, lon = meta[1], float(meta[3]), float(meta[4]), float(meta[5])
    except (IndexError, ValueError):
        raise ReplayFormatError(f"{handle.path}: the first line is not a TMY3 station header") from None
    reader = csv.reader(handle.text)
    header = next(reader, [])
    try:
        date_i, time_i = header.index("Date (MM/DD/YYYY)"), header.index("Time (HH:MM)")
        cols = {f: header.index(c) for f, c in TMY3_COLUMNS.items()}
    except ValueError as exc:
        raise ReplayFormatError(f"{handle.path}: not a TMY3 column header ({exc})") from None
    offset_s = int(tz_hours * 3600)
    local = dt.timezone(dt.timedelta(seconds=offset_s))
    for line_no, row in enumerate(reader, start=3):
        if not row:
            continue
        try:
            month, day, _ = (int(x) for x in row[date_i].split("/"))
            hour = int(row[time_i].split(":")[0])
            # TMY3 hours run 01:00..24:00 and label the end of the hour.
            stamp = dt.datetime(year, month, day, tzinfo=local) + dt.timedelta(hours=hour)
            values: dict[str, float | None] = {}
            for f, i in cols.items():
                flag = row[i + 1] if i + 1 < len(row) else ""
                raw = _float_or_none(row[i]) if flag.strip() != "?" else None
                values[f] = raw
        except (IndexError, ValueError) as exc:
            raise ReplayFormatError(f"{handle.path} line {line_no}: {exc}") from None
        if values["clouds_pct"] is not None:
            values["clouds_pct"] *= 10.0  # tenths -> percent
        if values["visibility_m"] is not None and values["visibility_m"] < 0:
            values["visibility_m"] = None
        doc = owm_payload(
            city_id=city_id, name=name or station_name.title(), country=None, lat=lat, lon=lon,
            observed_at=stamp.timestamp(), timezone_offset_s=offset_s, conditions=Conditions(**values),
        )  # fmt: skip
        yield RawRecord(payload=dumps(doc), city_id=city_id, source="replay", event_time=stamp.timestamp())


def pvlib_dataset(name: str) -> Path:
    """Path of a data file shipped with the installed pvlib package (e.g. ``723170TYA.CSV``)."""
    try:
        import pvlib
    except ImportError:
        raise ReplayFormatError(
            f"the dataset {name} comes with pvlib, which is not installed: pip install pvlib"
        ) from None
    path = Path(pvlib.__file__).parent / "data" / name
    if not path.is_file():
        raise ReplayFormatError(f"pvlib {pvlib.__version__} has no data/{name}")
    return path
