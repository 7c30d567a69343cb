"""Prometheus metrics of weatherstream. Every name has the ``weatherstream_`` prefix.

Labels are bounded: topic suffixes and reason codes, never free text.
"""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("weatherstream_events_in_total", "Messages consumed, by topic suffix.", ["topic"])
EVENTS_OUT = Counter("weatherstream_events_out_total", "Messages produced, by topic suffix.", ["topic"])
DEAD_LETTERS = Counter(
    "weatherstream_dead_letters_total", "Inputs sent to the dead-letter topic, by reason.", ["reason"]
)
REKEYED = Counter(
    "weatherstream_raw_rekeyed_total", "Raw messages whose key was not their city id, re-sent with the right key."
)
WINDOWS_FINALIZED = Counter(
    "weatherstream_windows_finalized_total", "Final aggregates emitted, by window kind.", ["kind"]
)
WINDOWS_CORRECTED = Counter(
    "weatherstream_windows_corrected_total", "Corrected aggregates (revision > 1) emitted, by window kind.", ["kind"]
)
REPEATS = Counter(
    "weatherstream_repeats_total",
    "Observations dropped as repeats, by reason: duplicate (the same city and time was already accepted) or "
    "too_late (older than the correction horizon: it can change nothing, and whether it repeats cannot be told).",
    ["reason"],
)
REBALANCE_SKIPPED = Counter(
    "weatherstream_rebalance_skipped_messages_total",
    "Messages fetched before a rebalance that no agent handled; left uncommitted so they are delivered again.",
)
BATCH_EVENTS = Histogram(
    "weatherstream_batch_events",
    "Events per batch an agent handles at once (more per batch: fewer state writes per event), by agent.",
    ["agent"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
REDELIVERED = Counter(
    "weatherstream_redelivered_total",
    "Observations delivered again after a worker stopped or crashed, recognised by their offsets.",
)
OFFSET_REWINDS = Counter(
    "weatherstream_offset_rewinds_total",
    "Times an agent saw a partition jump past offsets it had not handled and sought back to them.",
)
AGENT_RESTARTS = Counter(
    "weatherstream_agent_restarts_total",
    "Times the pipeline agent started again on its stream, after a crash or a batch whose output did not reach "
    "the brokers (the worker's log says which); the events its earlier run held are fetched again.",
)
AGENT_ERRORS = Counter("weatherstream_agent_errors_total", "Unexpected errors inside an agent, by agent.", ["agent"])
ALERTS = Counter(
    "weatherstream_alerts_total", "Alert messages sent, by kind, severity and state.", ["kind", "severity", "state"]
)
SINK_ROWS = Counter("weatherstream_sink_rows_total", "Rows written to Cassandra, by table.", ["table"])
SINK_WRITE_SECONDS = Histogram(
    "weatherstream_sink_write_seconds",
    "Latency of one Cassandra write request (a row or a batch), by table: a batch holding rows of several tables "
    "is observed once for each of them.",
    ["table"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SINK_RETRIES = Counter(
    "weatherstream_sink_retries_total", "Failed Cassandra writes that will be retried, by error type.", ["error"]
)
SINK_CONNECTED = Gauge("weatherstream_sink_connected", "1 while the sink has a Cassandra session, else 0.")
SINK_PARTITIONS = Gauge(
    "weatherstream_sink_partitions",
    "Partitions of the sink's topics this worker reads now (the sink group shares them among its workers).",
)
MEMORY_RELEASED = Counter(
    "weatherstream_memory_released_bytes_total",
    "About how many resident bytes the worker's periodic malloc_trim gave back to the operating system.",
)
GC_FULL_SECONDS = Histogram(
    "weatherstream_gc_full_seconds",
    "Duration of the worker's timed full garbage collections (WEATHERSTREAM_GC_FULL_INTERVAL_S).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
EVENT_LOOP_DELAY_SECONDS = Histogram(
    "weatherstream_event_loop_delay_seconds",
    "How late the worker's event loop woke a timer due every 0.25 s: the time other work held the loop (a batch, "
    "a garbage collection, a blocking call). Anything the worker does waits this long at most on top of its own work.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
