"""The library internals the project relies on (``weatherstream/internals.py``) are there in the installed versions,
and a missing one is a clear error, not a silent misbehaviour."""

from __future__ import annotations

import asyncio
import gc
import inspect
from importlib import metadata
from types import SimpleNamespace

import aiokafka
import faust
import pytest
from aiokafka.protocol.metadata import MetadataResponse_v0
from faust.streams import current_event
from faust.types import TP

from weatherstream import internals


class Event:
    """Stands for a faust event: the context variable holds a weak reference to it."""


def test_the_installed_libraries_are_of_the_series_the_internals_were_checked_with() -> None:
    checked = dict(part.rsplit(" ", 1) for part in internals.CHECKED_WITH.split(", "))
    series = {name: ".".join(version.split(".")[:2]) for name, version in checked.items()}
    installed = {name: ".".join(metadata.version(name).split(".")[:2]) for name in checked}
    assert installed == series, (
        f"installed {installed}, weatherstream/internals.py was checked with {checked}: check each internal it "
        "uses against the installed versions, then update CHECKED_WITH and the bounds in setup.cfg"
    )


def test_the_faust_internals_are_there() -> None:
    app = faust.App("internals-test", broker="kafka://127.0.0.1:1")
    assert internals.committed_offset(app.consumer, TP("raw", 0)) is None  # before any commit
    assert internals.attachments_enabled(app) in (True, False)
    event = Event()
    with internals.acting_for(event):
        assert current_event() is event
    assert current_event() is None


def test_the_aiokafka_fetch_settings_are_there() -> None:
    async def preset() -> tuple[int, int]:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        internals.preset_consumer_fetch(consumer, 20, 65536)
        return consumer._fetch_max_wait_ms, consumer._fetch_min_bytes

    assert asyncio.run(preset()) == (20, 65536)


def test_the_key_partitioner_chooses_as_aiokafkas_producer_does() -> None:
    async def both() -> list[tuple[int, int]]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
        producer._metadata.update_metadata(  # what a metadata response for a 6-partition topic leaves there
            MetadataResponse_v0([(0, "127.0.0.1", 1)], [(0, "t", [(0, p, 0, [0], [0]) for p in range(6)])])
        )
        choose = internals.key_partitioner(producer, "t")
        keys = [b"%d" % city for city in range(0, 200_000, 997)]
        return [(choose(key), producer._partition("t", None, None, None, key, None)) for key in keys]

    pairs = asyncio.run(both())
    assert all(mine == theirs for mine, theirs in pairs) and len({mine for mine, _ in pairs}) == 6


def test_a_missing_internal_says_what_to_do() -> None:
    with pytest.raises(internals.InternalsChanged, match=r"install versions within the bounds setup\.cfg gives"):
        internals.committed_offset(SimpleNamespace(), TP("raw", 0))
    with pytest.raises(internals.InternalsChanged, match="_attachments is missing"):
        internals.attachments_enabled(SimpleNamespace())  # type: ignore[arg-type]


def test_the_faust_methods_the_transport_overrides_are_still_called_by_faust() -> None:
    # weatherstream/transport.py subclasses faust's aiokafka driver: a hook renamed upstream would no longer be
    # called, silently. Each must still exist on the class faust uses and be overridden by ours.
    from faust.transport.drivers import aiokafka as faust_aiokafka

    from weatherstream import transport

    hooks = [(transport._ConsumerThread, faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"),
             (transport.Consumer, faust_aiokafka.Consumer, "_new_consumer_thread"),
             (transport.Consumer, faust_aiokafka.Consumer, "seek_to_committed"),
             (transport.Producer, faust_aiokafka.Producer, "_settings_extra")]  # fmt: skip
    for ours, theirs, name in hooks:
        assert callable(getattr(theirs, name, None)), (
            f"faust's {theirs.__name__} has no {name}: {internals.CHECKED_WITH}"
        )
        assert name in vars(ours), (ours, name)
    assert transport.Transport.Consumer is transport.Consumer and transport.Transport.Producer is transport.Producer
    # HandsOnAtOnce.wait_first saves the tasks of faust's hand-on of each message only while faust hands it on so
    assert "wait_first" in vars(transport.HandsOnAtOnce) and issubclass(transport.Consumer, transport.HandsOnAtOnce)
    drain = inspect.getsource(faust_aiokafka.Consumer._drain_messages)
    assert "self.wait_first(" in drain and "callback(message)" in drain, internals.CHECKED_WITH


def test_state_databases_keep_no_write_ahead_log_and_keep_their_data_when_closed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    internals.share_rocksdb_memory(8 << 20, 8 << 20)
    options = internals._SharedCacheOptions(use_rocksdict=True)
    db = options.open(tmp_path / "p0")
    for i in range(2_000):
        db[b"c:%d" % i] = bytes(2_000)
    logs = list((tmp_path / "p0").glob("*.log"))
    assert logs and all(log.stat().st_size == 0 for log in logs)  # 4 MB written, none of it to a log
    del db  # faust drops a revoked partition's database the same way (it never calls close)
    gc.collect()
    db = options.open(tmp_path / "p0")
    assert db[b"c:1999"] == bytes(2_000)  # the memtables were flushed when the database closed


def test_state_databases_compress_with_lz4(tmp_path) -> None:  # type: ignore[no-untyped-def]
    internals.share_rocksdb_memory(8 << 20, 8 << 20)
    db = internals._SharedCacheOptions(use_rocksdict=True).open(tmp_path / "p0")
    for i in range(2_000):
        db[b"c:%d" % i] = b"%d" % i * 200
    db.flush()
    stored = [line.strip() for f in (tmp_path / "p0").glob("OPTIONS-*") for line in f.read_text().splitlines()]
    assert "compression=kLZ4Compression" in stored  # what RocksDB says it uses (the file it keeps)
    assert db[b"c:1999"] == b"1999" * 200
