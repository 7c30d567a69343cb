"""The root of weatherstream's exceptions.

Every error the project raises on purpose derives from :class:`WeatherStreamError`, and its message
says what to do about it. Each area keeps its specific exceptions next to its code
(``weatherstream.stack.errors`` for the local stack, for example).
"""


class WeatherStreamError(Exception):
    """Base class for every error weatherstream raises on purpose."""


class SettingsError(WeatherStreamError):
    """A setting (environment variable ``WEATHERSTREAM_*``) has a value that cannot be used."""
