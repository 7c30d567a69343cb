"""Sources of raw payloads for ``{ns}.raw``: synthetic, replay and the OpenWeatherMap API.

Each source is an iterator of :class:`models.RawRecord`; :mod:`weatherstream.sources.producer` sends
them to Kafka and :mod:`weatherstream.sources.runner` wires both to the ``produce`` command.
"""
