"""Errors of the sources (``weatherstream produce``). Messages say what to do; none contains the API key."""

from __future__ import annotations

from weatherstream.errors import WeatherStreamError


class SourceError(WeatherStreamError):
    """A source cannot go on."""


class ReplayFormatError(SourceError):
    """A replay file cannot be read as the format it was given as."""


class OwmError(SourceError):
    """Talking to OpenWeatherMap failed."""


class OwmAuthError(OwmError):
    """401: the API key is missing, wrong or not yet active. Fatal for the whole source."""


class OwmCityNotFoundError(OwmError):
    """404 for one city: that city is disabled, the others go on."""


class OwmRateLimitedError(OwmError):
    """429: the account is over its call limit; retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OwmUnavailableError(OwmError):
    """5xx or a network failure that outlasted the retries; the city is tried again next period."""
