"""The dashboard's vendored files: pinned, checked against the registry's integrity, and a clear error when absent."""

import base64
import hashlib
from pathlib import Path

import pytest

from weatherstream.web import assets


def test_the_installed_files_are_the_pinned_versions() -> None:
    # make install fetched them (the pages and the browser tests need them)
    assert assets.missing() == []
    assert (assets.vendor_dir() / assets.MARKER).read_text() == "uplot 1.6.32\nworld-atlas 2.0.2\n"
    assert assets.read("uPlot.iife.min.js").startswith(b"/*!") and b"uPlot" in assets.read("uPlot.iife.min.js")
    assert b'"Topology"' in assets.read("land-110m.json")[:100]


def test_a_folder_of_other_versions_counts_as_missing(tmp_path: Path) -> None:
    for name in assets.names():
        (tmp_path / name).write_text("x")
    assert assets.missing(tmp_path) == assets.names()  # no marker
    (tmp_path / assets.MARKER).write_text("uplot 1.6.0\nworld-atlas 2.0.2\n")
    assert assets.missing(tmp_path) == assets.names()
    (tmp_path / assets.MARKER).write_text(assets._versions())
    assert assets.missing(tmp_path) == []
    assert assets.fetch(tmp_path) == []  # nothing to fetch: no network asked


def test_a_tarball_that_does_not_match_its_integrity_is_refused() -> None:
    package = assets.VENDORED["uplot"]
    with pytest.raises(assets.AssetsMissing, match="integrity"):
        assets._checked("uplot", package, b"not the tarball")
    good = b"some bytes"
    pinned = assets.Vendored(package.version, package.licence,
                             "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode(), {})  # fmt: skip
    assert assets._checked("uplot", pinned, good) == good


def test_reading_a_file_not_installed_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(assets.AssetsMissing, match="weatherstream web-assets"):
        assets.read("uPlot.min.css", tmp_path)
    with pytest.raises(KeyError):
        assets.read("../../settings.py")
