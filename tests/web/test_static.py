"""The dashboard's own files: nothing from another origin, and no way for data to become markup."""

import re
from importlib import resources

from weatherstream.web import assets
from weatherstream.web.pages import STATIC

FILES = {name: resources.files("weatherstream.web").joinpath("static", name).read_text() for name in STATIC}
PAGES = [name for name in STATIC if name.endswith(".html")]
SCRIPTS = [name for name in STATIC if name.endswith(".js")]


def test_every_served_file_exists_and_nothing_else_is_served() -> None:
    on_disk = {p.name for p in resources.files("weatherstream.web").joinpath("static").iterdir() if p.is_file()}
    assert set(STATIC) == on_disk


def test_no_resource_comes_from_another_origin() -> None:
    for name, text in FILES.items():
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), name
        assert 'fetch("http' not in text and "fetch(`http" not in text, name
        assert "url(" not in text or name == "style.css", name
    assert "url(" not in FILES["style.css"]


def test_values_reach_the_page_only_as_text() -> None:
    for name in SCRIPTS:
        script = FILES[name]
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "setAttribute(\"style\"", "javascript:"):  # fmt: skip
            assert sink not in script, (name, sink)
    assert all("textContent" in FILES[name] or "el(" in FILES[name] for name in SCRIPTS)


def test_pages_load_only_scripts_of_this_server_without_inline_code() -> None:
    served = set(SCRIPTS) | {f"vendor/{name}" for name in assets.names()}
    for name in PAGES:
        html = FILES[name]
        scripts = re.findall(r'<script src="/static/([^"]+)" defer></script>', html)
        assert scripts and scripts[0] in ("common.js", "vendor/uPlot.iife.min.js"), name
        assert set(scripts) <= served, name
        assert len(scripts) == html.count("<script"), name  # no other script element
        assert not re.search(r"\son[a-z]+\s*=", html), name  # no inline event handlers


def test_every_page_links_to_every_other() -> None:
    for name in PAGES:
        for target in ('href="/"', 'href="/map"', 'href="/alerts"'):
            assert target in FILES[name], (name, target)
