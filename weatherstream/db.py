"""Connecting to Cassandra with the project's defaults (prepared statements, protocol v5, local DC)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy

logger = logging.getLogger(__name__)

LOCAL_DC = "datacenter1"  # SimpleSnitch's datacenter, as used by the local stack


def connect(
    hosts: Sequence[str],
    port: int,
    *,
    local_dc: str = LOCAL_DC,
    connect_timeout_s: float = 5.0,
    request_timeout_s: float = 10.0,
) -> tuple[Cluster, Session]:
    """Open a driver session; the caller owns the cluster and must call ``cluster.shutdown()``.

    Raises:
        cassandra.cluster.NoHostAvailable: no contact point answered.
    """
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=local_dc),
        request_timeout=request_timeout_s,
    )
    cluster = Cluster(
        contact_points=list(hosts),
        port=port,
        protocol_version=5,
        connect_timeout=connect_timeout_s,
        control_connection_timeout=connect_timeout_s,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        session = cluster.connect()
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session
