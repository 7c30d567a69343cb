"""The binary format of the pipeline's table values: a city's record and its cold slices.

Every value starts with one byte, the format version (:data:`FORMAT_VERSION`), followed by a msgpack
document (compact, and several times faster to read and write than JSON for these shapes). Observation
times and input offsets are packed arrays of 8-byte numbers; exact sums too large for 64 bits are
little-endian signed bytes. In a record, the anomaly baseline is the packed bytes of
:mod:`weatherstream.core.anomaly.baseline`, and the newest observation's values (for the web view only) stay
an encoded msgpack map until something reads them (:func:`decode_latest`): the pipeline replaces them, it
never reads them.

Version 2 (before 2026-12) differs only in those two: the baseline was 24 ``[n, mean, mad]`` lists and the
newest values a map inside the document. Such a record is converted as it is read, and written back in the
current version with the city's next change; slices are the same in both. A value of any other version
raises :class:`StateFormatError`, which says what to do.

Keys: ``c:{city}`` for a city's record and ``s:{city}:{slice start}`` for a cold slice (bytes), so a city's
records sort apart from the slices and can be listed from the ``c:`` prefix on.

Example:
    >>> record = CityRecord(gen=7)
    >>> decode_record(encode_record(record)).gen
    7
    >>> record_key(2950159), slice_key(2950159, 3600)
    (b'c:2950159', b's:2950159:3600')
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Any

import msgpack

from weatherstream.core.aggregator import WindowState
from weatherstream.core.anomaly import baseline
from weatherstream.core.slices import Slice
from weatherstream.core.summary import Summary
from weatherstream.errors import WeatherStreamError

#: the current format; stored as the first byte of every value
FORMAT_VERSION = 3
#: the older format this version converts as it reads (see the module docstring)
CONVERTED_VERSION = 2
_READABLE = (CONVERTED_VERSION, FORMAT_VERSION)
_VERSION_BYTE = bytes([FORMAT_VERSION])
RECORD_PREFIX = b"c:"
SLICE_PREFIX = b"s:"
_I64 = 2**63


class StateFormatError(WeatherStreamError):
    """A table value this version of weatherstream cannot read."""


@dataclass(slots=True)
class CityRecord:
    """Everything the pipeline keeps of one city, stored as one value.

    Attributes:
        gen: the generation of the worker that wrote it (a record of the current generation is durable:
            see :mod:`weatherstream.core.aggregator`).
        due: when (wall clock) the city next needs a tick (None: not before new input); read alone by
            :func:`peek_record` when a worker rebuilds its index of cities.
        newest: the time of the city's newest observation (None: none yet).
        windows: window state (None: no observation yet).
        anomaly: the anomaly engine's state (None: no observation yet).
        latest: the newest observation's values for the web view, encoded (:func:`encode_latest`,
            :func:`decode_latest`).
    """

    gen: int = 0
    due: float | None = None
    newest: float | None = None
    windows: WindowState | None = None
    anomaly: dict[str, Any] | None = None
    latest: bytes | None = None


def record_key(city_id: int) -> bytes:
    return b"c:%d" % city_id


def slice_key(city_id: int, start: int) -> bytes:
    return b"s:%d:%d" % (city_id, start)


def city_of_record_key(key: bytes) -> int:
    return int(key[2:])


# -- values -------------------------------------------------------------------------------------------
def encode_record(record: CityRecord) -> bytes:
    w = record.windows
    windows = None if w is None else [
        w.last_offset, w.max_t, w.wm, w.last_wall, w.tz, w.open, w.rev, w.slices,
        [_slice_doc(s) for s in w.hot.values()], w.cooled, w.drop, w.outbox,
    ]  # fmt: skip
    return _VERSION_BYTE + msgpack.packb([record.gen, record.due, record.newest, windows, record.anomaly,
                                          record.latest])  # fmt: skip


def encode_latest(values: dict[str, Any]) -> bytes:
    """The newest observation's values as a record keeps them."""
    return msgpack.packb(values)


def decode_latest(value: bytes) -> dict[str, Any]:
    values: dict[str, Any] = msgpack.unpackb(value)
    return values


def peek_record(value: bytes) -> tuple[float | None, float | None]:
    """(due, newest) of an encoded record, without decoding the rest."""
    _check_version(value, "city record")
    unpacker = msgpack.Unpacker()
    unpacker.feed(memoryview(value)[1:])
    try:
        unpacker.read_array_header()
        unpacker.skip()  # gen
        return unpacker.unpack(), unpacker.unpack()
    except (ValueError, msgpack.UnpackException) as exc:
        raise _damaged("city record", exc) from exc


def decode_record(value: bytes) -> CityRecord:
    doc = _document(value, "city record")
    try:
        gen, due, newest, windows, anomaly, latest = doc
        if value[0] == CONVERTED_VERSION:
            anomaly, latest = _converted(anomaly, latest)
        elif anomaly is not None and len(anomaly["baseline"]) != len(baseline.EMPTY):
            raise ValueError(f"an anomaly baseline of {len(anomaly['baseline'])} bytes")
        state = None
        if windows is not None:
            last_offset, max_t, wm, last_wall, tz, open_runs, rev, slices, hot, cooled, drop, outbox = windows
            hot_slices = [_slice_of(doc) for doc in hot]
            state = WindowState(last_offset, max_t, wm, last_wall, tz, open_runs, rev, slices,
                                {s.start: s for s in hot_slices}, cooled, drop, outbox)  # fmt: skip
    except (ValueError, TypeError, IndexError, KeyError, struct.error) as exc:
        raise _damaged("city record", exc) from exc
    return CityRecord(gen, due, newest, state, anomaly, latest)


def _converted(anomaly: dict[str, Any] | None, latest: dict[str, Any] | None) -> tuple[Any, bytes | None]:
    """A version 2 record's anomaly state and newest values, as version 3 keeps them."""
    if anomaly is not None:
        anomaly = {**anomaly, "baseline": baseline.from_lists(anomaly["baseline"])}
    return anomaly, None if latest is None else encode_latest(latest)


def encode_slice(s: Slice) -> bytes:
    return _VERSION_BYTE + msgpack.packb(_slice_doc(s))


def decode_slice(value: bytes) -> Slice:
    doc = _document(value, "slice")  # a slice's layout is the same in both
    try:
        return _slice_of(doc)
    except (ValueError, TypeError, IndexError) as exc:
        raise _damaged("slice", exc) from exc


def _document(value: bytes, what: str) -> Any:
    _check_version(value, what)
    try:
        return msgpack.unpackb(value[1:], strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise _damaged(what, exc) from exc


def _check_version(value: bytes, what: str) -> None:
    if not value or value[0] not in _READABLE:
        found = f"version {value[0]}" if value and value[0] < 32 else "an older (JSON) format"
        raise StateFormatError(
            f"a {what} in the state table is in {found}, not version {FORMAT_VERSION} (or {CONVERTED_VERSION}, which "
            "it converts): this worker cannot read it. Run `weatherstream state reset` to rebuild the state from the "
            "retained input topics."
        )


def _damaged(what: str, exc: Exception) -> StateFormatError:
    return StateFormatError(
        f"a {what} in the state table is damaged ({type(exc).__name__}: {exc}); run `weatherstream state reset` "
        "to rebuild the state from the retained input topics"
    )


def _slice_doc(s: Slice) -> list[Any]:
    return [s.start, [[day, *_summary_doc(part)] for day, part in s.parts.items()]]


def _slice_of(doc: list[Any]) -> Slice:
    start, parts = doc
    return Slice(start, {part[0]: _summary_of(part[1:]) for part in parts})


def _summary_doc(s: Summary) -> list[Any]:
    return [
        array("d", s.times).tobytes(), array("q", s.offsets).tobytes(), s.bits, s.n, [_int_doc(v) for v in s.sums],
        s.lows, s.highs, _int_doc(s.temp_squares), s.gust_max, s.pressure_first, s.pressure_last, s.conditions,
        s.tz_first, s.tz_last,
    ]  # fmt: skip


def _summary_of(doc: list[Any]) -> Summary:
    s = Summary.__new__(Summary)
    times, offsets, s.bits, s.n, sums, s.lows, s.highs, squares, s.gust_max, first, last, s.conditions, \
        s.tz_first, s.tz_last = doc  # fmt: skip
    s.times = array("d", times).tolist()
    s.offsets = array("q", offsets).tolist()
    s.sums = [_int_of(v) for v in sums]
    s.temp_squares = _int_of(squares)
    s.pressure_first = tuple(first) if first is not None else None
    s.pressure_last = tuple(last) if last is not None else None
    return s


def _int_doc(v: int) -> int | bytes:
    if -_I64 <= v < _I64:
        return v
    return v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)


def _int_of(v: int | bytes) -> int:
    return v if isinstance(v, int) else int.from_bytes(v, "little", signed=True)
