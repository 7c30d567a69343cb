"""Every WEATHERSTREAM_* variable named anywhere under deploy/ (manifests, Compose file, Dockerfile, README)
is a real setting: a misspelt one would be ignored silently by pydantic-settings (extra="ignore")."""

from __future__ import annotations

import re

from tests.deploy.conftest import DEPLOY
from weatherstream.settings import ENV_PREFIX, Settings

NAME = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]\b")


def test_every_weatherstream_variable_in_deploy_is_a_setting() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()]
    assert len(files) >= 10, files
    seen: dict[str, set[str]] = {}
    for path in files:
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            seen.setdefault(name, set()).add(str(path.relative_to(DEPLOY)))
    assert len(seen) >= 10, sorted(seen)
    unknown = {n: sorted(w) for n, w in seen.items() if n.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields}
    assert not unknown, f"not settings (see weatherstream/settings.py): {unknown}"
