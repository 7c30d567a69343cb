"""The dashboard's third-party files: fetched from the npm registry at install time, pinned and checked.

The pages draw their charts with uPlot and their map's coastlines from Natural Earth's 110 m land (public
domain), as the ``world-atlas`` package packs it in TopoJSON. Neither is kept in the repository: ``make install``
(or ``weatherstream web-assets``) downloads the pinned tarballs, checks each against the registry's SHA-512
integrity, and puts the few files the pages use, with their licences, into ``static/vendor/`` inside the package,
from where the worker serves them. Nothing is loaded from another site at run time.

Example:
    >>> sorted(VENDORED)
    ['uplot', 'world-atlas']
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import requests

from weatherstream.errors import WeatherStreamError


@dataclass(frozen=True)
class Vendored:
    """One npm package: its version, licence, tarball and the registry's integrity of it, and the files the
    pages use (path in the tarball -> name under ``static/vendor/``)."""

    version: str
    licence: str
    integrity: str
    files: dict[str, str]

    def tarball(self, name: str) -> str:
        return f"https://registry.npmjs.org/{name}/-/{name}-{self.version}.tgz"


VENDORED = {
    "uplot": Vendored(
        version="1.6.32",
        licence="MIT",
        integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        files={
            "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "package/dist/uPlot.min.css": "uPlot.min.css",
            "package/LICENSE": "uPlot.LICENSE.txt",
        },
    ),
    "world-atlas": Vendored(
        version="2.0.2",
        licence="ISC (the data: Natural Earth, public domain)",
        integrity="sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ==",
        files={"package/land-110m.json": "land-110m.json", "package/LICENSE": "world-atlas.LICENSE.txt"},
    ),
}
#: the served files and their content types
CONTENT_TYPES = {".js": "application/javascript", ".css": "text/css", ".json": "application/json",
                 ".txt": "text/plain"}  # fmt: skip


class AssetsMissing(WeatherStreamError):
    """The dashboard's vendored files are not installed."""


def vendor_dir() -> Path:
    """Where the fetched files go: ``weatherstream/web/static/vendor`` (in an editable install, the source tree)."""
    return Path(str(resources.files("weatherstream.web").joinpath("static", "vendor")))


def names() -> list[str]:
    """Every file the pages may ask for under ``/static/vendor/``."""
    return sorted(target for package in VENDORED.values() for target in package.files.values())


#: which versions the folder holds (a pin changed here fetches again)
MARKER = "versions.txt"


def _versions() -> str:
    return "".join(f"{name} {package.version}\n" for name, package in sorted(VENDORED.items()))


def missing(folder: Path | None = None) -> list[str]:
    """The files not there, or all of them when they are of other versions than pinned here."""
    folder = folder or vendor_dir()
    marker = folder / MARKER
    if not marker.is_file() or marker.read_text() != _versions():
        return names()
    return [name for name in names() if not (folder / name).is_file()]


def _checked(name: str, package: Vendored, data: bytes) -> bytes:
    algorithm, _, expected = package.integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise AssetsMissing(f"{package.tarball(name)} does not match its pinned {algorithm} integrity: the registry "
                            "served something else; try again, and report it if it persists")  # fmt: skip
    return data


def fetch(folder: Path | None = None, timeout_s: float = 60.0) -> list[str]:
    """Download what is missing into ``folder``; returns the names written (none when all are there)."""
    folder = folder or vendor_dir()
    if not missing(folder):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, package in VENDORED.items():
        url = package.tarball(name)
        try:
            response = requests.get(url, timeout=timeout_s)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise AssetsMissing(f"could not download {url} ({type(exc).__name__}: {exc}): the dashboard's chart "
                                "library and map come from the npm registry at install time; check the network "
                                "and run `weatherstream web-assets` again") from None  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(_checked(name, package, response.content)), mode="r:gz") as tar:
            for member, target in package.files.items():
                source = tar.extractfile(member)
                if source is None:
                    raise AssetsMissing(f"{url} has no {member}: the pinned version is wrong")
                (folder / target).write_bytes(source.read())
                written.append(target)
    (folder / MARKER).write_text(_versions())
    return written


def read(name: str, folder: Path | None = None) -> bytes:
    """One vendored file's bytes (``name`` out of :func:`names`)."""
    if name not in names():
        raise KeyError(name)
    path = (folder or vendor_dir()) / name
    if not path.is_file():
        raise AssetsMissing(f"{path} is not installed: run `weatherstream web-assets` (make install does)")
    return path.read_bytes()
