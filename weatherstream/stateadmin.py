"""The pipeline's state as a whole: telling an older format apart, and rebuilding the state from the input.

The state lives in one faust table (``agents/pipeline.py``, :data:`STATE_TABLE`): local RocksDB folders under
the data directory and a compacted changelog topic. Before version 2 of the format, it lived in two tables,
``city_state`` and ``window_panes`` (JSON rows), which this version cannot read. A worker that finds their
changelogs holding data and no state of the current format refuses to start (:func:`check_state_format`),
since it would otherwise start from nothing: windows open at the upgrade would never close and repeats
would not be recognised.

:func:`reset_state` (``weatherstream state reset``) deletes the state of every format and sets the pipeline's
consumer group back to the start of ``{ns}.raw``: the next worker rebuilds every city's state from the input
the topic still retains. Its outputs are sent again with the same ids and revisions (consumers and the
Cassandra sink treat a repeat as the same record); windows older than the topic's retention are not rebuilt.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition

from weatherstream import kafka_clients
from weatherstream.core.codec import FORMAT_VERSION, StateFormatError
from weatherstream.errors import WeatherStreamError
from weatherstream.settings import Settings
from weatherstream.topics import _admin

logger = logging.getLogger(__name__)

#: the faust table of the current format
STATE_TABLE = "station_state"
#: the tables of format 1
OLD_TABLES = ("city_state", "window_panes")


class StateResetError(WeatherStreamError):
    """The state cannot be reset now."""


def changelog_topic(settings: Settings, table: str) -> str:
    """The changelog topic faust gives ``table`` of the namespace's app."""
    return f"{settings.app_id}-{table}-changelog"


async def _messages(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Messages each existing topic of ``topics`` holds now (a missing topic is left out)."""
    admin = await _admin(settings)
    try:
        existing = set(await admin.list_topics()) & set(topics)
        described = await admin.describe_topics(sorted(existing)) if existing else []
    finally:
        await admin.close()
    tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d.get("partitions", [])]
    if not tps:
        return {}
    consumer = kafka_clients.consumer(settings, enable_auto_commit=False)
    await kafka_clients.start(consumer, settings)
    try:
        begin, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    out = dict.fromkeys(existing, 0)
    for tp in tps:
        out[tp.topic] += end[tp] - begin[tp]
    return out


async def check_state_format(settings: Settings) -> None:
    """Raise :class:`StateFormatError` if the namespace holds state of an older format and none of this one."""
    old = [changelog_topic(settings, t) for t in OLD_TABLES]
    current = changelog_topic(settings, STATE_TABLE)
    counts = await _messages(settings, [*old, current])
    found = [t for t in old if counts.get(t)]
    if found and not counts.get(current):
        raise StateFormatError(
            f"namespace {settings.namespace} holds pipeline state of an older format ({', '.join(found)}), which "
            f"this version (state format {FORMAT_VERSION}) cannot read. Stop every worker of the namespace and run "
            f"`weatherstream state reset` (--namespace {settings.namespace}): it deletes the old state and the "
            f"workers rebuild it from what {settings.topic_raw} retains."
        )


@dataclass
class ResetReport:
    deleted_topics: list[str] = field(default_factory=list)
    deleted_folders: list[Path] = field(default_factory=list)
    raw_partitions: int = 0
    raw_messages: int = 0


async def reset_state(settings: Settings, data_dir: Path) -> ResetReport:
    """Delete the pipeline's state (every format) and rewind the pipeline's group to the start of the input.

    Refuses while a worker of the namespace runs (its group has members).
    """
    report = ResetReport()
    admin = await _admin(settings)
    try:
        # DescribeGroups v0+: per group (error, id, state, protocol type, protocol, members, ...)
        responses = await admin.describe_consumer_groups([settings.app_id])
        members = [m for response in responses for group in response.groups for m in group[5]]
        if members:
            raise StateResetError(
                f"{len(members)} worker(s) of namespace {settings.namespace} are running (consumer group "
                f"{settings.app_id}); stop them all, then run `weatherstream state reset` again"
            )
        changelogs = [changelog_topic(settings, t) for t in (*OLD_TABLES, STATE_TABLE)]
        doomed = sorted(set(await admin.list_topics()) & set(changelogs))
        if doomed:
            await admin.delete_topics(doomed)
        report.deleted_topics = doomed
        described = await admin.describe_topics([settings.topic_raw, settings.topic_ticks])
    finally:
        await admin.close()
    raw = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d.get("partitions", [])
           if d["topic"] == settings.topic_raw]  # fmt: skip
    ticks = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d.get("partitions", [])
             if d["topic"] == settings.topic_ticks]  # fmt: skip
    # The group's next worker reads the raw input from its start; old ticks mean nothing for rebuilt state.
    committer = kafka_clients.consumer(settings, enable_auto_commit=False, group_id=settings.app_id)
    await kafka_clients.start(committer, settings)
    try:
        begin = await committer.beginning_offsets(raw) if raw else {}
        end = await committer.end_offsets([*raw, *ticks]) if raw or ticks else {}
        committer.assign([*raw, *ticks])
        offsets = {tp: begin[tp] for tp in raw} | {tp: end[tp] for tp in ticks}
        if offsets:
            await committer.commit(offsets)
    finally:
        await committer.stop()
    report.raw_partitions = len(raw)
    report.raw_messages = sum(end[tp] - begin[tp] for tp in raw)
    for folder in sorted(data_dir.glob(f"{settings.namespace}-*")):
        if folder.is_dir():
            shutil.rmtree(folder)
            report.deleted_folders.append(folder)
    logger.info("state reset: deleted %s and %s; %s rewound to its start", report.deleted_topics,
                report.deleted_folders, settings.topic_raw)  # fmt: skip
    return report
