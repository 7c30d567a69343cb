"""weatherstream: a real-time weather stream processor.

Observations flow from Kafka through Faust agents into windowed RocksDB tables, alerts and Apache
Cassandra. This package holds the application side: settings, the local Kafka + Cassandra stack and
the command line. Records live in :mod:`models`, agents in :mod:`agents`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
