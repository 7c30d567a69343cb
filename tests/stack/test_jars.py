import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from weatherstream.stack.cassandra import CASSANDRA
from weatherstream.stack.errors import JarFetchError, ToolNotFoundError
from weatherstream.stack.jars import COMPLETE_MARKER, Distribution, ensure_jars, is_cached, lib_dir
from weatherstream.stack.kafka import KAFKA

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _fake_mvn(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    mvn = bin_dir / "mvn"
    mvn.write_text("#!/bin/sh\n" + script)
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)


def test_pom_lists_exactly_the_distribution_artifacts() -> None:
    root = ET.fromstring(KAFKA.pom())
    deps = [
        ":".join(d.find(f"m:{tag}", NS).text for tag in ("groupId", "artifactId", "version"))  # type: ignore[union-attr]
        for d in root.iterfind("m:dependencies/m:dependency", NS)
    ]
    assert deps == list(KAFKA.artifacts)
    assert "org.apache.kafka:kafka_2.13:3.9.1" in deps
    assert CASSANDRA.version.startswith("5.0.")


def test_cached_jars_need_no_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = Distribution("demo", "1.0", ("g:a:1",))
    target = lib_dir(tmp_path, dist)
    target.mkdir(parents=True)
    (target / "g.a-1.jar").write_bytes(b"jar")
    (target / COMPLETE_MARKER).write_text("g.a-1.jar\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no mvn anywhere
    assert ensure_jars(tmp_path, dist) == target


def test_missing_maven_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ToolNotFoundError, match="Install Maven"):
        ensure_jars(tmp_path, Distribution("demo", "1.0", ("g:a:1",)))


def test_unreachable_maven_central_is_a_clear_error_and_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_mvn(tmp_path / "bin", 'echo "[ERROR] Could not transfer artifact: Connection refused" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    dist = Distribution("demo", "1.0", ("g:a:1",))
    with pytest.raises(JarFetchError) as info:
        ensure_jars(tmp_path / "cache", dist)
    message = str(info.value)
    assert "Maven Central" in message and "Connection refused" in message and "exit code 1" in message
    assert not is_cached(tmp_path / "cache", dist)


def test_successful_fetch_is_cached_and_not_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    # The fake mvn behaves like copy-dependencies: writes a jar into -DoutputDirectory and logs the call.
    _fake_mvn(
        tmp_path / "bin",
        f'echo call >> "{calls}"\n'
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) d="${a#-DoutputDirectory=}";; esac; done\n'
        'mkdir -p "$d" && echo jar > "$d/g.a-1.jar"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    dist = Distribution("demo", "1.0", ("g:a:1",))
    first = ensure_jars(tmp_path / "cache", dist)
    second = ensure_jars(tmp_path / "cache", dist)
    assert first == second and (first / "g.a-1.jar").is_file()
    assert calls.read_text().count("call") == 1
