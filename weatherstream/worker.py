"""The composition root: a worker's faust app, the agents of its role and the web views, built from settings.

:func:`weatherstream.app.create_app` declares the application and its topics; :func:`agents.register_all`
declares the pipeline and the sink on it (as ``WEATHERSTREAM_WORKER_ROLE`` says) and returns their parts;
:func:`weatherstream.web.register` adds the views, which read those parts. Nothing below this module imports
it, so the layers import in one direction only (``tests/test_imports.py``).
"""

from __future__ import annotations

from agents import WorkerParts, register_all
from weatherstream.app import WeatherStreamApp, create_app
from weatherstream.settings import Settings
from weatherstream.web import register as register_web


def build_worker(settings: Settings) -> tuple[WeatherStreamApp, WorkerParts]:
    """The app of a ``weatherstream worker`` for ``settings``, with its agents and views, and their parts."""
    app = create_app(settings)
    parts = register_all(app)
    register_web(app, parts)
    return app, parts
