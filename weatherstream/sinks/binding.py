"""Row values -> the bytes a prepared insert sends, as the driver's ``bind`` makes them, at a fraction of its cost.

cassandra-driver 3.30's ``BoundStatement.bind`` builds a column description (a named tuple) for every value
to ask the column encryption policy about it, and serializes timestamps through ``calendar.timegm``: about
74 µs for a row of ``observations_by_city_day`` (31 columns), more than everything else the sink does with it.
:class:`Binder` serializes each value with one function chosen per column once, from the prepared statement's
column types: the driver's own packers (:mod:`cassandra.marshal`) for numbers and booleans, UTF-8 for text,
and for timestamps and dates the same arithmetic as the driver's, without the time tuples. A value of any
other type or column goes through the driver's serializer for that column, so the bytes are always the
driver's. :class:`~weatherstream.sinks.writer.CassandraWriter` binds each table's first row both ways and
uses the driver's ``bind`` from then on if they differ.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import Any

from cassandra.marshal import double_pack, int8_pack, int32_pack, int64_pack, uint32_pack
from cassandra.query import UNSET_VALUE

_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DATE_OFFSET = 2**31  # CQL dates are unsigned days with the epoch in the middle of the range


def _timestamp(v: Any) -> bytes:
    """An aware datetime as CQL timestamp milliseconds: ``int(seconds * 1e3 + microsecond / 1e3)`` with the
    driver's float arithmetic, the seconds as ``calendar.timegm(v.utctimetuple())`` counts them (whole seconds
    since the epoch, rounded down)."""
    if v.tzinfo is not _UTC:  # another offset: the driver's way (it refuses what would leave years 1-9999)
        raise TypeError("not a UTC datetime")
    since = v - _EPOCH
    return int64_pack(int((since.days * 86400 + since.seconds) * 1e3 + v.microsecond / 1e3))


def _date(v: Any) -> bytes:
    return uint32_pack(v.toordinal() - _EPOCH_ORDINAL + _DATE_OFFSET)


def _text(v: Any) -> bytes:
    return v.encode("utf-8")


# CQL type name -> {Python type: serializer}, for the exact types given; a value of another type (a bool in an int
# column, a date string) goes through the driver's serializer of the column.
_FAST: dict[str, dict[type, Callable[[Any], bytes]]] = {
    "double": {float: double_pack, int: double_pack},
    "int": {int: int32_pack},
    "bigint": {int: int64_pack},
    "counter": {int: int64_pack},
    "boolean": {bool: int8_pack},
    "varchar": {str: _text},
    "text": {str: _text},
    "timestamp": {dt.datetime: _timestamp},  # not UTC: TypeError, and the row is bound by the driver
    "date": {dt.date: _date},
}


class Binder:
    """Serializes whole rows for one prepared statement (its ``column_metadata``, ``routing_key_indexes`` and
    ``protocol_version``)."""

    def __init__(self, columns: Sequence[Any], routing_key_indexes: Sequence[int] | None,
                 protocol_version: int) -> None:  # fmt: skip
        self.names = [c.name for c in columns]
        self.fast = [_FAST.get(getattr(c.type, "typename", ""), {}) for c in columns]
        self.driver = [functools.partial(_driver_serialize, c.type, protocol_version) for c in columns]
        self.routing = tuple(routing_key_indexes or ())

    def serialize(self, values: Sequence[Any], *, nulls_unset: bool = False) -> list[Any]:
        """The values' bytes, in column order (``nulls_unset``: a None is left unset, not written as null).

        Raises:
            ValueError: not one value per column, or a partition key value unset.
            TypeError, struct.error: a value its column's type cannot take (the driver's ``bind`` says which).
        """
        if len(values) != len(self.fast):
            raise ValueError(f"{len(values)} values for {len(self.fast)} bound columns")
        null = UNSET_VALUE if nulls_unset else None
        out = [
            null if v is None else v if v is UNSET_VALUE else (fast.get(type(v)) or driver)(v)
            for fast, driver, v in zip(self.fast, self.driver, values, strict=True)
        ]  # fmt: skip
        self.check_routing(out)
        return out

    def check_routing(self, serialized: Sequence[Any]) -> None:
        """Raise ValueError, in the driver's words, if a partition key value of ``serialized`` is unset."""
        for i in self.routing:
            if serialized[i] is UNSET_VALUE:
                raise ValueError(f"Cannot bind UNSET_VALUE as a part of the routing key '{self.names[i]}'")


class Reuse:
    """Serializes rows of one prepared statement taking some columns' bytes from a row already serialized for
    another: the same record written to two tables (a ``latest_by_city`` row repeats most of its observation
    row). :attr:`picks` maps each column to the source's column of the same name and type (None: serialized here,
    by ``binder``); an unset value in the source is a null here unless ``nulls_unset``.
    """

    def __init__(self, binder: Binder, columns: Sequence[Any], source_columns: Sequence[Any]) -> None:
        by_name = {c.name: (j, _type_name(c.type)) for j, c in enumerate(source_columns)}
        picks = []
        for c in columns:
            j, type_name = by_name.get(c.name, (None, None))
            picks.append(j if j is not None and type_name == _type_name(c.type) else None)
        self.binder = binder
        self.picks: tuple[int | None, ...] = tuple(picks)
        self.gather = [0 if j is None else j for j in picks]  # own columns are filled in afterwards
        self.own = [i for i, j in enumerate(picks) if j is None]

    def serialize(self, values: Sequence[Any], source: Sequence[Any], *, nulls_unset: bool = False) -> list[Any]:
        """As :meth:`Binder.serialize`, with ``source`` the serialized values of the other row.

        Raises:
            ValueError, TypeError, struct.error: as :meth:`Binder.serialize`, for the columns serialized here.
        """
        if len(values) != len(self.picks):
            raise ValueError(f"{len(values)} values for {len(self.picks)} bound columns")
        taken = map(source.__getitem__, self.gather)
        out = list(taken) if nulls_unset else [None if v is UNSET_VALUE else v for v in taken]
        null = UNSET_VALUE if nulls_unset else None
        binder = self.binder
        for i in self.own:
            v = values[i]
            out[i] = (
                null if v is None else v if v is UNSET_VALUE else (binder.fast[i].get(type(v)) or binder.driver[i])(v)
            )
        binder.check_routing(out)
        return out


def _type_name(cql_type: Any) -> str:
    return str(cql_type.cql_parameterized_type())


def _driver_serialize(cql_type: Any, protocol_version: int, v: Any) -> bytes:
    return cql_type.serialize(v, protocol_version)
