"""weatherstream.internals.new_record builds the same records as their classes' own __init__."""

import logging

import faust
import pytest

from models import Aggregate, Alert, Observation
from weatherstream import internals
from weatherstream.core.normalize import normalize

PAYLOAD = (b'{"id": 2950159, "dt": 1700000000, "name": "Berlin", "timezone": 3600, "main": {"temp": 4.5, '
           b'"pressure": 1012, "humidity": 80}, "wind": {"speed": 3.1}, "weather": [{"main": "Clouds"}]}')  # fmt: skip


def test_same_record_as_init() -> None:
    obs = normalize(PAYLOAD, now=1700000100.0)
    values = obs.asdict()
    built = internals.new_record(Observation, values)
    normal = Observation(**values)
    assert type(built) is Observation
    assert built == normal and built.__dict__ == normal.__dict__
    assert built.dumps() == normal.dumps()
    assert Observation.loads(built.dumps()) == normal


def test_defaults_filled() -> None:
    built = internals.new_record(Observation, {"city_id": 1, "observed_at": 2.0})
    assert built.__dict__ == Observation(city_id=1, observed_at=2.0).__dict__
    assert built.source == "unknown" and built.temp_c is None


def test_missing_or_unknown_fields_raise_as_faust_does() -> None:
    with pytest.raises(TypeError):
        internals.new_record(Observation, {"city_id": 1})
    with pytest.raises(TypeError):
        internals.new_record(Observation, {"city_id": 1, "observed_at": 2.0, "temperature": 3.0})


class Coerced(faust.Record, coerce=True):
    n: int
    x: float = 0.0


def test_a_class_that_converts_its_values_is_built_normally() -> None:
    built = internals.new_record(Coerced, {"n": "7"})
    assert built.n == 7 and isinstance(built.n, int)


class Checked(faust.Record):
    n: int

    def __post_init__(self) -> None:
        self.doubled = 2 * self.n


def test_a_class_with_post_init_is_built_normally() -> None:
    assert internals.new_record(Checked, {"n": 3}).doubled == 6


def test_a_difference_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class Odd(faust.Record):
        n: int

    layout = internals._RecordLayout(Odd)
    layout.defaults = {"extra": 1}  # what a changed faust might do differently
    monkeypatch.setitem(internals._LAYOUTS, Odd, layout)
    with caplog.at_level(logging.WARNING, logger="weatherstream.internals"):
        first = internals.new_record(Odd, {"n": 1})
        second = internals.new_record(Odd, {"n": 2})
    assert "extra" not in first.__dict__ and "extra" not in second.__dict__
    assert sum("builds Odd records differently" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("cls", [Aggregate, Alert])
def test_other_records_qualify(cls: type) -> None:
    assert internals._RecordLayout(cls).plain
