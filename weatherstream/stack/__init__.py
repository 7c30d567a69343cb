"""The local Kafka + Cassandra stack assembled from Maven Central jars (``weatherstream stack``)."""

from weatherstream.stack.errors import (
    JarFetchError,
    PortInUseError,
    ServerStartError,
    ServerUnhealthyError,
    StackError,
    ToolNotFoundError,
)
from weatherstream.stack.local import LocalStack, Progress, ServerStatus

__all__ = [
    "JarFetchError",
    "LocalStack",
    "PortInUseError",
    "Progress",
    "ServerStartError",
    "ServerStatus",
    "ServerUnhealthyError",
    "StackError",
    "ToolNotFoundError",
]
