"""The tutorial pipeline this project replaces, re-implemented for the benchmark (do not use it).

kafka-python consumer with auto-commit, ``pandas.json_normalize`` on every message, one synchronous
prepared insert per message, and hourly aggregates kept in a dict and inserted when the next hour of a
city starts (no watermark, no late data, no dedup: the shortcuts the tutorials take).

    python -m benchmarks.systems.naive TOPIC GROUP KEYSPACE [--no-sink]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

import pandas as pd
from kafka import KafkaConsumer

from weatherstream.db import connect_settings
from weatherstream.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("keyspace")
    parser.add_argument("--no-sink", action="store_true")
    args = parser.parse_args()
    settings = load_settings(keyspace=args.keyspace)
    session = None
    if not args.no_sink:
        _, session = connect_settings(settings)
        insert_obs = session.prepare(
            f"INSERT INTO {args.keyspace}.observations_by_city_day (city_id, day, observed_at, temp_c, humidity_pct, "  # noqa: S608
            "pressure_hpa, wind_speed_ms, city_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        insert_agg = session.prepare(
            f"INSERT INTO {args.keyspace}.aggregates_by_city (city_id, kind, window_start, revision, window_end, "  # noqa: S608
            "count, temp_mean_c, temp_min_c, temp_max_c) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=1000,
    )
    print("consuming", flush=True)
    hours: dict[int, dict] = {}  # type: ignore[type-arg]
    for message in consumer:
        frame = pd.json_normalize(json.loads(message.value))
        row = frame.iloc[0]
        city, t = int(row["id"]), float(row["dt"])
        at = dt.datetime.fromtimestamp(t, dt.timezone.utc)
        if session is not None:
            values = (float(row["main.temp"]), float(row["main.humidity"]), float(row["main.pressure"]))
            session.execute(insert_obs, (city, at.date(), at, *values, float(row["wind.speed"]), str(row["name"])))
        hour = int(t // 3600 * 3600)
        current = hours.get(city)
        if current is not None and current["start"] != hour:
            if session is not None:
                start = dt.datetime.fromtimestamp(current["start"], dt.timezone.utc)
                temps = current["temps"]
                session.execute(insert_agg, (city, "tumbling-1h", start, 1, start + dt.timedelta(hours=1), len(temps),
                                             sum(temps) / len(temps), min(temps), max(temps)))  # fmt: skip
            current = None
        if current is None:
            current = hours[city] = {"start": hour, "temps": []}
        current["temps"].append(float(row["main.temp"]))
    sys.exit(0)


if __name__ == "__main__":
    main()
