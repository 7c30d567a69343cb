"""Records that flow through weatherstream.

- :class:`Observation`: a normalized observation on ``{ns}.observations`` (key: city id).
- :class:`DeadLetter` and :class:`Reason`: rejected inputs on ``{ns}.deadletter``.
- :class:`Aggregate`: a window's final or corrected aggregate on ``{ns}.aggregates`` (key: city id).
- :class:`Alert`: one message of an incident's lifecycle on ``{ns}.alerts`` (key: city id).
- :class:`RawRecord`: what a source hands to the producer for ``{ns}.raw``.
"""

from models.aggregate import Aggregate
from models.alert import Alert
from models.deadletter import DeadLetter, Reason
from models.observation import Observation
from models.raw import RawRecord, city_key

__all__ = ["Aggregate", "Alert", "DeadLetter", "Observation", "RawRecord", "Reason", "city_key"]
