"""The worker's web server as configured: loopback only unless told otherwise, no CORS, and the security
headers added to every response (faust's own pages and error answers too)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from weatherstream.app import create_app
from weatherstream.settings import load_settings
from weatherstream.web.api import SECURITY_HEADERS, _add_security_headers
from weatherstream.worker import build_worker

pytestmark = pytest.mark.usefixtures("no_weatherstream_env")


def test_binds_to_loopback_by_default(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.web_bind == "127.0.0.1"
    app = create_app(settings)
    assert (app.conf.web_bind, app.conf.web_host) == ("127.0.0.1", "127.0.0.1")
    assert not app.conf.web_cors_options


def test_every_response_gets_the_security_headers(tmp_path: Path) -> None:
    from aiohttp import web

    app, _ = build_worker(load_settings(data_dir=tmp_path))
    assert _add_security_headers in app.web.web_app.on_response_prepare
    response = web.Response(status=404, headers={"Cache-Control": "max-age=5"})
    asyncio.run(_add_security_headers(None, response))
    assert response.headers["Cache-Control"] == "max-age=5"  # a view's own choice is kept
    for header, value in SECURITY_HEADERS.items():
        if header != "Cache-Control":
            assert response.headers[header] == value
