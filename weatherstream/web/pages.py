"""The dashboard's files: its pages, scripts and style (``static/``) and the vendored chart library and map
outline (``static/vendor/``, :mod:`weatherstream.web.assets`). All come from this worker; none from another site."""

from __future__ import annotations

from importlib import resources

from faust.web import Response, View

from weatherstream.web import assets
from weatherstream.web.responses import problem

#: the dashboard's own files and their content types
STATIC = {
    "index.html": "text/html", "map.html": "text/html", "alerts.html": "text/html", "city.html": "text/html",
    "common.js": "application/javascript", "overview.js": "application/javascript",
    "map.js": "application/javascript", "city.js": "application/javascript", "alerts.js": "application/javascript",
    "style.css": "text/css",
}  # fmt: skip


class StaticFiles:
    """The dashboard's files, read once; vendored ones when first asked for."""

    def __init__(self) -> None:
        self.files = {name: resources.files("weatherstream.web").joinpath("static", name).read_bytes()
                      for name in STATIC}  # fmt: skip
        self.vendored: dict[str, bytes] = {}

    def page(self, view: View, name: str) -> Response:
        return view.bytes(self.files[name], content_type=STATIC[name])

    def static(self, view: View, name: str) -> Response:
        if name not in STATIC or name.endswith(".html"):
            return problem(view, 404, "no such file")
        return self.page(view, name)

    def vendor(self, view: View, name: str) -> Response:
        if name not in assets.names():
            return problem(view, 404, "no such file")
        if name not in self.vendored:
            try:
                self.vendored[name] = assets.read(name)
            except assets.AssetsMissing as exc:
                return problem(view, 503, str(exc))
        content_type = assets.CONTENT_TYPES[name[name.rindex(".") :]]
        return view.bytes(self.vendored[name], content_type=content_type)
