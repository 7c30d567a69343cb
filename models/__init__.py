"""Records that flow through weatherstream.

- :class:`Observation`: a normalized observation on ``{ns}.observations`` (key: city id).
- :class:`DeadLetter` and :class:`Reason`: rejected inputs on ``{ns}.deadletter``.
"""

from models.deadletter import DeadLetter, Reason
from models.observation import Observation

__all__ = ["DeadLetter", "Observation", "Reason"]
