"""Connecting to Cassandra with the project's defaults (protocol v5, token-aware routing in the local DC, quick
reconnection).

Credentials and TLS come from the settings; neither the password nor the key material is ever logged.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    LoadBalancingPolicy,
    TokenAwarePolicy,
    WhiteListRoundRobinPolicy,
)

if TYPE_CHECKING:
    from weatherstream.settings import Settings

logger = logging.getLogger(__name__)

LOCAL_DC = "datacenter1"  # SimpleSnitch's datacenter, as used by the local stack


def reconnection_policy() -> ExponentialReconnectionPolicy:
    """Try a node that went down again after 0.5 s, doubling up to every 10 s, for as long as it takes.

    The driver's default gives up after 64 tries (about 12 minutes at these delays): a sink whose only node was
    down longer would then get NoHostAvailable for every write until restarted, even with the node back.
    """
    return ExponentialReconnectionPolicy(base_delay=0.5, max_delay=10.0, max_attempts=None)


def connect(
    hosts: Sequence[str],
    port: int,
    *,
    local_dc: str = LOCAL_DC,
    connect_timeout_s: float = 5.0,
    request_timeout_s: float = 10.0,
    consistency: str = "LOCAL_QUORUM",
    username: str | None = None,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    only_contact_points: bool = False,
) -> tuple[Cluster, Session]:
    """Open a driver session; the caller owns the cluster and must call ``cluster.shutdown()``.

    A request goes first to the node that owns its partition (token-aware routing), so that node coordinates
    it without a hop to another. A node that goes away is tried again every 0.5 s at first, at most every
    10 s, so writes resume soon after an outage. Statements are prepared on one node, and on the others when
    they first need them.
    ``only_contact_points``: send every request to ``hosts`` only (e.g. to ask one node of a cluster about
    itself).

    Raises:
        cassandra.cluster.NoHostAvailable: no contact point answered (or the credentials were refused).
    """
    policy: LoadBalancingPolicy = (
        WhiteListRoundRobinPolicy(list(hosts))
        if only_contact_points
        # the first replica, not a random one: the sink packs partitions that share their first replica
        else TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc), shuffle_replicas=False)
    )
    profile = ExecutionProfile(
        load_balancing_policy=policy,
        request_timeout=request_timeout_s,
        consistency_level=ConsistencyLevel.name_to_value[consistency],
    )
    auth = PlainTextAuthProvider(username=username, password=password) if username else None
    cluster = Cluster(
        contact_points=list(hosts),
        port=port,
        protocol_version=5,
        connect_timeout=connect_timeout_s,
        control_connection_timeout=connect_timeout_s,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        reconnection_policy=reconnection_policy(),
        auth_provider=auth,
        ssl_context=ssl_context,
        # A statement is prepared on the node that first runs it, and again on each other node when that node
        # first answers "unprepared" (the driver does it by itself). Preparing on every node at once fails, and
        # logs a traceback, for a node that has not yet heard of a table another worker just created.
        prepare_on_all_hosts=False,
    )
    try:
        session = cluster.connect()
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session


def connect_settings(settings: Settings, *, connect_timeout_s: float = 5.0) -> tuple[Cluster, Session]:
    """:func:`connect` with everything the settings say (contact points, DC, consistency, auth, TLS)."""
    context = None
    if settings.cassandra_tls:
        context = ssl.create_default_context(
            cafile=str(settings.cassandra_tls_ca_file) if settings.cassandra_tls_ca_file else None
        )
    password = settings.cassandra_password.get_secret_value() if settings.cassandra_password else None
    return connect(
        settings.cassandra_hosts,
        settings.cassandra_port,
        local_dc=settings.cassandra_local_dc,
        connect_timeout_s=connect_timeout_s,
        request_timeout_s=settings.cassandra_request_timeout_s,
        consistency=settings.cassandra_consistency,
        username=settings.cassandra_username,
        password=password,
        ssl_context=context,
    )
