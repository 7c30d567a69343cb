"""The same job in Quix Streams, for the side-by-side benchmark (the closest Python peer).

What it shares with weatherstream: the validation (``weatherstream.core.normalize``: the same records are
accepted, the rest go to the dead-letter topic), the aggregate arithmetic (a ``Summary`` of each window's
observations and ``finish``), the anomaly engine (per-city state in Quix's RocksDB state) and the Cassandra
rows (the same tables, columns, prepared inserts and TTLs). What Quix Streams provides: the consumer and
producer (confluent-kafka), event-time windows (``set_timestamp`` from the observation time, grace = the
allowed lateness), changelogged state (values packed with msgpack, as weatherstream packs its own),
checkpoints and batching sinks.

Windows: tumbling 1 h and hopping 24 h every 1 h, collected and summarised when final. Quix Streams has no
per-key time-zone windows, so the local-day window is not computed here; late data past the grace
period is dropped by Quix (no corrected revisions, no duplicate detection).

    python -m benchmarks.systems.quix TOPIC GROUP KEYSPACE STATE_DIR [--no-sink]
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import timedelta
from typing import Any

import msgpack
from cassandra.concurrent import execute_concurrent_with_args
from quixstreams import Application, message_context
from quixstreams.sinks import BatchingSink, SinkBatch
from quixstreams.state.rocksdb import RocksDBOptions

from agents.pipeline import engine_config, sample_of
from models import Alert, Observation
from weatherstream.core.anomaly import engine as anomaly
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.core.summary import Sample, Summary, finish
from weatherstream.db import connect_settings
from weatherstream.settings import Settings, load_settings
from weatherstream.sinks import rows

ALERT_FIELDS = set(Alert._options.fields)


class CassandraSink(BatchingSink):
    """Writes each checkpoint's records to one table with the prepared insert, 64 requests in flight."""

    def __init__(self, settings: Settings, tables: list[rows.Table], ttl_s: int, enabled: bool) -> None:
        super().__init__()
        self.settings, self.tables, self.ttl_s, self.enabled = settings, tables, ttl_s, enabled
        self.session: Any = None
        self.statements: dict[str, Any] = {}

    def setup(self) -> None:
        if self.enabled:
            _, self.session = connect_settings(self.settings)
            for table in self.tables:
                self.statements[table.name] = self.session.prepare(table.insert_cql(self.settings.keyspace))

    def write(self, batch: SinkBatch) -> None:
        if not self.enabled:
            return
        records = [item.value for item in batch]
        for table in self.tables:
            params = []
            for record in records:
                values = rows.row(table, record)
                params.append((*values, table.using_value(values, self.ttl_s)))
            for ok, result in execute_concurrent_with_args(self.session, self.statements[table.name], params,
                                                          concurrency=64, raise_on_first_error=True):  # fmt: skip
                if not ok:
                    raise result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("keyspace")
    parser.add_argument("state_dir")
    parser.add_argument("--no-sink", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(keyspace=args.keyspace)
    sink_on = not args.no_sink
    engine = anomaly.AnomalyEngine(engine_config(settings))
    grace = timedelta(seconds=settings.allowed_lateness_s)

    app = Application(
        broker_address=",".join(settings.bootstrap_servers),
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=1.0,
        loglevel="WARNING",
        # State values as msgpack, not Quix's JSON: the anomaly engine's state holds bytes (its baseline).
        rocksdb_options=RocksDBOptions(dumps=msgpack.packb, loads=msgpack.unpackb),
    )
    raw = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    deadletter = app.topic(settings.topic_deadletter, value_serializer="json")
    alerts_topic = app.topic(settings.topic_alerts, value_serializer="json")

    def validate(payload: bytes) -> dict[str, Any]:
        try:
            obs = normalize(payload, now=time.time(), units="metric", source="synthetic",
                            max_bytes=settings.max_payload_bytes)  # fmt: skip
        except InvalidPayload as exc:
            return {"dead": exc.reason.value, "message": exc.message}
        # Quix's window state keeps each value as JSON: the observation as a list of the Sample's fields
        return {"obs": obs, "row": list(sample_of(obs, message_context().offset))}

    sdf = app.dataframe(raw).apply(validate)
    sdf[sdf.apply(lambda v: "dead" in v)].to_topic(deadletter)
    good = sdf[sdf.apply(lambda v: "obs" in v)]
    good = good.set_timestamp(lambda v, key, ts, headers: int(v["obs"].observed_at * 1000))

    good.apply(lambda v: v["obs"].to_representation()).sink(
        CassandraSink(settings, [rows.OBSERVATIONS], settings.observations_ttl_s, sink_on)
    )

    def aggregate(kind: str) -> Any:
        def close(window: dict[str, Any], key: bytes) -> dict[str, Any]:
            summary = Summary()
            for row in window["value"]:
                if summary.find(row[0]) is None:
                    summary.add(Sample(*row))
            start, end = window["start"] / 1000, window["end"] / 1000
            values = finish(summary, start, end, settings.default_cadence_s)
            city = int(key)
            values.update(city_id=city, kind=kind, window_start=start, window_end=end, revision=1,
                          window_id=f"{kind}:{int(start)}", late=False, closed_at=time.time())  # fmt: skip
            return values

        return close

    rows_only = good.apply(lambda v: v["row"])
    hourly = rows_only.tumbling_window(timedelta(hours=1), grace_ms=grace).collect().final()
    daily = rows_only.hopping_window(timedelta(hours=24), step_ms=timedelta(hours=1), grace_ms=grace).collect().final()
    aggregate_sink = CassandraSink(settings, [rows.AGGREGATES], settings.aggregates_ttl_s, sink_on)
    hourly_close, daily_close = aggregate("tumbling-1h"), aggregate("hopping-24h-1h")
    hourly.apply(lambda w, key, ts, headers: hourly_close(w, key), metadata=True).sink(aggregate_sink)
    daily.apply(lambda w, key, ts, headers: daily_close(w, key), metadata=True).sink(aggregate_sink)

    def detect(v: dict[str, Any], state: Any) -> list[dict[str, Any]]:
        obs: Observation = v["obs"]
        outcome = engine.apply(state.get("anomaly"), obs, message_context().offset, wall_now=time.time())
        new_state = anomaly.confirm(outcome.state, {anomaly.outbox_id(a) for a in outcome.state["outbox"]})
        state.set("anomaly", new_state)
        return [{k: a[k] for k in a if k in ALERT_FIELDS} for a in outcome.alerts]

    alerts = good.apply(detect, stateful=True, expand=True)
    alerts.to_topic(alerts_topic)
    alerts.sink(CassandraSink(settings, [rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY], settings.alerts_ttl_s, sink_on))
    print("consuming", flush=True)
    app.run()


if __name__ == "__main__":
    main()
