"""The dashboard's own files: nothing from another origin, and no way for data to become markup."""

import re
from importlib import resources

from weatherstream.web.api import STATIC

FILES = {name: resources.files("weatherstream.web").joinpath("static", name).read_text() for name in STATIC}


def test_every_served_file_exists_and_nothing_else_is_served() -> None:
    on_disk = {p.name for p in resources.files("weatherstream.web").joinpath("static").iterdir()}
    assert set(STATIC) == on_disk


def test_no_resource_comes_from_another_origin() -> None:
    for name, text in FILES.items():
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), name
        assert 'fetch("http' not in text and "fetch(`http" not in text, name


def test_values_reach_the_page_only_as_text() -> None:
    script = FILES["dashboard.js"]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "textContent" in script


def test_pages_load_their_script_from_this_server_without_inline_code() -> None:
    for name in ("index.html", "city.html"):
        html = FILES[name]
        assert '<script src="/static/dashboard.js" defer></script>' in html
        assert not re.search(r"<script>(?!</script>)", html)  # no inline script (the CSP forbids it anyway)
        assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
