"""Prometheus metrics of weatherstream. Every name has the ``weatherstream_`` prefix.

Labels are bounded: topic suffixes and reason codes, never free text.
"""

from prometheus_client import Counter

EVENTS_IN = Counter("weatherstream_events_in_total", "Messages consumed, by topic suffix.", ["topic"])
EVENTS_OUT = Counter("weatherstream_events_out_total", "Messages produced, by topic suffix.", ["topic"])
DEAD_LETTERS = Counter(
    "weatherstream_dead_letters_total", "Inputs sent to the dead-letter topic, by reason.", ["reason"]
)
REKEYED = Counter(
    "weatherstream_raw_rekeyed_total", "Raw messages whose key was not their city id, re-sent with the right key."
)
