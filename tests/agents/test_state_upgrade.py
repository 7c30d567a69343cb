"""A city whose record was written in state format 2 goes on from it: the pipeline reads the converted record,
learns the new observation into the same baseline, and writes the record back in the current format."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agents import pipeline
from models import Observation
from tests.core.test_codec import as_version_2
from weatherstream.app import create_app
from weatherstream.core.anomaly.baseline import buckets
from weatherstream.core.codec import FORMAT_VERSION, decode_latest, decode_record, encode_record
from weatherstream.settings import load_settings

CITY, T0 = 2950159, 1_790_000_000 - 1_790_000_000 % 86400


def event(offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(offset=offset, timestamp=time.time(), partition=0))


def observation(hour: int, temp_c: float) -> Observation:
    return Observation(city_id=CITY, observed_at=T0 + hour * 3600.0, city_name="Berlin", temp_c=temp_c,
                       pressure_hpa=1012.0, timezone_offset_s=0)  # fmt: skip


def test_a_record_of_format_2_is_read_continued_and_written_in_the_current_format(tmp_path: Path) -> None:
    settings = load_settings(store="memory://", namespace="unit", data_dir=tmp_path)
    app = create_app(settings)
    steps = pipeline.register(app, settings, app.weather_topics).pipeline
    first = steps.apply_city(CITY, [(event(0), observation(0, 10.0)), (event(1), observation(1, 12.5))]).record
    old = decode_record(as_version_2(encode_record(first)))  # what a worker reads from a format 2 table
    assert old == first

    steps.state.records.put(CITY, old)
    out = steps.apply_city(CITY, [(event(2), observation(24, 11.0))])
    value = encode_record(out.record)
    assert value[0] == FORMAT_VERSION and out.write
    stored = decode_record(value)
    assert stored.windows is not None and stored.windows.last_offset == 2 and stored.newest == T0 + 24 * 3600.0
    assert decode_latest(stored.latest)["temp_c"] == 11.0  # type: ignore[arg-type]
    hour_0 = buckets(stored.anomaly["baseline"])[0]  # type: ignore[index]
    assert hour_0[0] == 2 and hour_0[1] == 10.5, "hour 0 has learned 10.0 (read from format 2) and 11.0"
    assert buckets(stored.anomaly["baseline"])[1][:2] == (1, 12.5)  # type: ignore[index]
