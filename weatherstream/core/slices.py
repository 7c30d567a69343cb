"""Slices: a city's observations cut at every window edge, each kept as exact summaries, not rows.

Every window of every kind is a union of whole slices, so a window's aggregate is the merge of the slices it
covers, and overlapping windows (the 24 open hopping windows of a day) share them. A slice is
:attr:`~weatherstream.core.windows.WindowSpec.slice_s` of UTC time (one hour with the default windows),
except that local days have edges of their own (local midnight, at the city's UTC offset): a slice keeps
one :class:`~weatherstream.core.summary.Summary` per local date it holds observations of. An observation
therefore updates one summary of one slice, whatever windows are kept.

Example:
    >>> from weatherstream.core.summary import Sample
    >>> s = Slice(3600)
    >>> s.add(Sample(t=3700.0, offset=5, tz=0, temp_c=2.0), day=0)
    >>> (s.count, s.find(3700.0), s.find(3701.0))
    (1, 5, None)
"""

from __future__ import annotations

from collections.abc import Iterator

from weatherstream.core.summary import Sample, Summary


class Slice:
    """One slice of one city's observations.

    Attributes:
        start: UTC epoch seconds (inclusive); the slice ends ``slice_s`` later.
        parts: local date (days since 1970-01-01, or 0 when no local-day windows are kept) -> the summary
            of the slice's observations made on that date.
    """

    __slots__ = ("parts", "start")

    def __init__(self, start: int, parts: dict[int, Summary] | None = None) -> None:
        self.start = start
        self.parts: dict[int, Summary] = parts if parts is not None else {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Slice):
            return NotImplemented
        return self.start == other.start and self.parts == other.parts

    def __repr__(self) -> str:
        return f"Slice({self.start}, {self.parts!r})"

    @property
    def count(self) -> int:
        return sum(len(p.times) for p in self.parts.values())

    def find(self, t: float) -> int | None:
        """The input offset of the observation at time ``t`` (None: there is none in this slice)."""
        for part in self.parts.values():
            offset = part.find(t)
            if offset is not None:
                return offset
        return None

    def add(self, sample: Sample, day: int) -> None:
        """Take in an observation made on local date ``day`` (its time must not be in the slice yet)."""
        part = self.parts.get(day)
        if part is None:
            part = self.parts[day] = Summary()
        part.add(sample)

    def copy(self) -> Slice:
        return Slice(self.start, {day: part.copy() for day, part in self.parts.items()})

    def summaries(self, day: int | None = None) -> Iterator[Summary]:
        """The summaries of all observations, or of those made on local date ``day``."""
        if day is None:
            yield from self.parts.values()
        else:
            part = self.parts.get(day)
            if part is not None:
                yield part
