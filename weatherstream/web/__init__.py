"""The worker's web server: read-only JSON API, dashboard, health checks and Prometheus metrics."""

from weatherstream.web.api import register

__all__ = ["register"]
