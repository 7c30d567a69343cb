"""The package builds without setuptools warnings and carries its data files (dashboard, schema migrations)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_quietly_with_the_dashboard_and_the_migrations(tmp_path: Path) -> None:
    # a copy of the sources: setuptools builds in the source folder
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    # with pip's build isolation, as `make install` builds it (setuptools as pyproject.toml asks)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(source)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    output = built.stdout + built.stderr
    for warning in ("would be ignored", "is absent from the `packages` configuration", "SetuptoolsDeprecationWarning"):
        assert warning not in output, output[output.find(warning) - 1500 : output.find(warning) + 500]
    (wheel,) = tmp_path.glob("weatherstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # the dashboard's own files and the vendored ones (make install fetched them: weatherstream web-assets)
    folder = ROOT / "weatherstream/web/static"
    static = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert any(name.startswith("vendor/") for name in static)
    migrations = {p.name for p in (ROOT / "weatherstream/sinks/migrations").glob("*.cql")}
    assert {f"weatherstream/web/static/{n}" for n in static} <= names
    assert {f"weatherstream/sinks/migrations/{n}" for n in migrations} <= names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_an_editable_install_prints_nothing(tmp_path: Path) -> None:
    # as `make install` installs it (pip install --quiet -e .), into an empty environment of its own
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    venv.create(tmp_path / "env", with_pip=False)
    python = tmp_path / "env/bin/python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                           "-e", str(source)], capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout + done.stderr == "", done.stdout + done.stderr
    found = subprocess.run([str(python), "-c", "import weatherstream.sinks.migrations as m; print(m.__path__[0])"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True)  # fmt: skip
    assert found.stdout.strip() == str(source / "weatherstream/sinks/migrations")
