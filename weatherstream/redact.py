"""Keep secrets out of logs: a logging filter that replaces known secret values in every record.

The command line installs it with every secret the settings hold (:func:`settings_secrets`) as soon as it
reads them, and the worker again once faust has set up its own log handlers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weatherstream.settings import Settings

MASK = "***"


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """Masks the given secrets in a record's message and arguments (urllib3 logs URLs with their query)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: list[str]) -> None:
        """Mask these too (longest first, so a secret that contains another is masked whole)."""
        self.secrets = sorted({*self.secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = redact(message, self.secrets)
        if masked != message or record.exc_info:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def install_secret_filter(secrets: list[str]) -> SecretFilter:
    """Attach a :class:`SecretFilter` to every handler of the root logger (and to the root logger itself).

    Safe to call again: the one filter learns the new secrets and reaches handlers added since.
    """
    root = logging.getLogger()
    secret_filter = next((f for f in root.filters if isinstance(f, SecretFilter)), None)
    if secret_filter is None:
        secret_filter = SecretFilter(secrets)
        root.addFilter(secret_filter)
    else:
        secret_filter.add(secrets)
    for handler in root.handlers:
        if secret_filter not in handler.filters:
            handler.addFilter(secret_filter)
    return secret_filter


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value ``settings`` hold: the Kafka and Cassandra passwords and the OpenWeatherMap key."""
    from weatherstream.errors import SettingsError

    values = [settings.kafka_password, settings.cassandra_password]
    secrets = [v.get_secret_value().strip() for v in values if v is not None]
    try:
        secrets.append(settings.owm_key() or "")  # from the variable, or the key file's content
    except SettingsError:
        pass  # unreadable: nothing of it can be shown; the command that needs it says so
    return list(dict.fromkeys(s for s in secrets if s))
