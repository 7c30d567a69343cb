"""Fetch server jars from Maven Central into a user cache folder, once.

A distribution (Kafka, Cassandra) is a list of Maven coordinates. The first ``stack up`` writes a
tiny pom naming them and runs ``maven-dependency-plugin:copy-dependencies`` into
``{cache_dir}/jars/{name}-{version}/``; a ``.complete`` marker written last makes every later call a
cache hit that downloads nothing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from weatherstream.stack.errors import JarFetchError, ToolNotFoundError

logger = logging.getLogger(__name__)

# Maven 3.8 would otherwise pick dependency-plugin 2.8, which lacks prependGroupId.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class Distribution:
    """A server assembled from Maven Central artifacts.

    Attributes:
        name: short name used for the cache folder ("kafka", "cassandra").
        version: the server's version, shown by ``stack status``.
        artifacts: ``group:artifact:version`` coordinates whose runtime closure makes up the classpath.
    """

    name: str
    version: str
    artifacts: Sequence[str]

    def pom(self) -> str:
        """A minimal pom whose dependencies are :attr:`artifacts`."""
        deps = []
        for coord in self.artifacts:
            group, artifact, version = coord.split(":")
            deps.append(
                f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version></dependency>"
            )
        return (
            '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
            "  <modelVersion>4.0.0</modelVersion>\n"
            f"  <groupId>weatherstream.stack</groupId><artifactId>{self.name}</artifactId>"
            f"<version>{self.version}</version><packaging>pom</packaging>\n"
            "  <dependencies>\n" + "\n".join(deps) + "\n  </dependencies>\n</project>\n"
        )


def lib_dir(cache_dir: Path, dist: Distribution) -> Path:
    """Where the jars of ``dist`` live in the cache."""
    return cache_dir / "jars" / f"{dist.name}-{dist.version}"


def is_cached(cache_dir: Path, dist: Distribution) -> bool:
    """True when a previous fetch of ``dist`` completed."""
    return (lib_dir(cache_dir, dist) / COMPLETE_MARKER).is_file()


def require_tool(name: str, install_hint: str) -> str:
    """Path of program ``name`` on PATH.

    Raises:
        ToolNotFoundError: it is not installed; the message says how to install it.
    """
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(f"`{name}` was not found on PATH. {install_hint}")
    return path


def ensure_jars(cache_dir: Path, dist: Distribution) -> Path:
    """Return the folder holding every jar of ``dist``, fetching them first if not cached.

    Raises:
        ToolNotFoundError: Maven is not installed.
        JarFetchError: Maven failed (no network to Maven Central, proxy, disk); carries Maven's output.
    """
    target = lib_dir(cache_dir, dist)
    if is_cached(cache_dir, dist):
        logger.debug("jars of %s %s are cached in %s", dist.name, dist.version, target)
        return target

    mvn = require_tool("mvn", "Install Maven 3.8 or newer (Debian: `apt-get install maven`).")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dist.name}-", dir=target.parent) as tmp:
        work = Path(tmp)
        pom = work / "pom.xml"
        pom.write_text(dist.pom())
        out_dir = work / "lib"
        cmd = [
            mvn, "-B", "-q", "-f", str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out_dir}",
            "-Dmdep.prependGroupId=true",
        ]  # fmt: skip
        logger.info("fetching %s %s jars from Maven Central into %s", dist.name, dist.version, target)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(out_dir.glob("*.jar")) if out_dir.is_dir() else []
        if proc.returncode != 0 or not jars:
            output = (proc.stdout + proc.stderr).strip().splitlines()
            tail = "\n".join(output[-25:]) or "(Maven printed nothing)"
            raise JarFetchError(
                f"could not fetch the {dist.name} {dist.version} jars from Maven Central "
                f"(mvn exit code {proc.returncode}).\n{tail}\n"
                "Check that this machine reaches Maven Central (or the mirror/proxy in ~/.m2/settings.xml) "
                "and that the disk has space, then run `weatherstream stack up` again."
            )
        (out_dir / COMPLETE_MARKER).write_text("\n".join(j.name for j in jars) + "\n")
        if target.exists():  # a half-finished folder from an interrupted run
            shutil.rmtree(target)
        out_dir.rename(target)
    logger.info("fetched %d jars for %s %s", len(jars), dist.name, dist.version)
    return target
