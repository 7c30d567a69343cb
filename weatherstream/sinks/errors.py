"""Errors of the Cassandra sink and its schema. Messages say what to do; none contains a password."""

from __future__ import annotations

from weatherstream.errors import WeatherStreamError


class SinkError(WeatherStreamError):
    """The sink cannot go on."""


class CassandraUnavailableError(SinkError):
    """No Cassandra node answered (or the credentials were refused)."""


class SchemaError(SinkError):
    """The keyspace's schema cannot be brought to this version of weatherstream."""
