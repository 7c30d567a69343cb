"""Keep secrets out of logs: a logging filter that replaces known secret values in every record."""

from __future__ import annotations

import logging

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
        self.secrets = [s for s in secrets if s]

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
    """Attach a :class:`SecretFilter` to every handler of the root logger (and to the root logger itself)."""
    secret_filter = SecretFilter(secrets)
    root = logging.getLogger()
    root.addFilter(secret_filter)
    for handler in root.handlers:
        handler.addFilter(secret_filter)
    return secret_filter
