"""Run one source into Kafka for ``weatherstream produce``: progress on screen, a summary at the end."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from models import RawRecord
from weatherstream.redact import install_secret_filter
from weatherstream.settings import Settings
from weatherstream.sources import owm, replay, synthetic
from weatherstream.sources.cities import CitySelector, parse_city_spec
from weatherstream.sources.errors import SourceError
from weatherstream.sources.producer import Pacing, ProduceStats, produce

logger = logging.getLogger(__name__)

PVLIB_DATASETS = {"pvlib-greensboro": ("723170TYA.CSV", 4469146, "Greensboro")}


def _synthetic(options: dict[str, Any]) -> tuple[Iterator[RawRecord], int, str]:
    start = options["start"]
    count, n_cities, step_s = options["count"], options["n_cities"], options["step_s"]
    if math.isnan(start):  # end the run at the present, aligned to the step
        steps = math.ceil(count / max(1, n_cities))
        now = time.time()
        start = now - now % step_s - steps * step_s
    try:
        cfg = synthetic.SyntheticConfig(
            cities=n_cities, count=count, start=start, step_s=step_s, seed=options["seed"],
            anomalies=options["anomalies"],
        )  # fmt: skip
        labels = synthetic.plan_anomalies(cfg)
    except ValueError as exc:
        raise SourceError(f"synthetic source: {exc}") from None
    if options.get("labels"):
        path: Path = options["labels"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            for label in labels:
                fh.write(orjson.dumps(label.as_dict()) + b"\n")
    elif labels:
        logger.info("%d anomalies injected (pass --labels FILE to keep their list)", len(labels))
    description = f"synthetic: {cfg.cities} cities, {len(labels)} anomalies"
    return synthetic.generate(cfg), count, description


def _replay(options: dict[str, Any]) -> tuple[Iterator[RawRecord], replay.ReplayFile, str]:
    path: Path | None = options.get("file_")
    fmt: str = options["fmt"]
    city_id, city_name = options.get("city_id"), options.get("city_name")
    if options.get("dataset"):
        filename, default_id, default_name = PVLIB_DATASETS[options["dataset"]]
        path = replay.pvlib_dataset(filename)
        fmt, city_id, city_name = "tmy3", city_id or default_id, city_name or default_name
    if path is None:
        raise SourceError("replay needs --file PATH or --dataset NAME")
    if fmt == "auto":
        fmt = replay.detect_format(path)
    if fmt == "jsonl":
        handle = replay.open_replay(path, text=False)
        return replay.read_jsonl(handle, units=options["units"]), handle, f"replay {path.name}"
    handle = replay.open_replay(path, text=True)
    if fmt == "tmy3":
        if city_id is None:
            raise SourceError("a TMY3 replay needs --city-id (the OpenWeatherMap id of the station's city)")
        records = replay.read_tmy3(handle, city_id=city_id, name=city_name, year=options["year"])
        return records, handle, f"replay {path.name} (TMY3)"
    constants: dict[str, Any] = {}
    if city_id is not None:
        constants["city_id"] = city_id
    if city_name is not None:
        constants["name"] = city_name
    mapping = replay.CsvMapping(
        columns=replay.parse_mapping(list(options.get("mapping") or ())),
        time_format=options["time_format"],
        utc_offset_s=options["utc_offset_s"],
        constants=constants,
    )
    return replay.read_csv(handle, mapping), handle, f"replay {path.name} (CSV)"


def _owm_cities(options: dict[str, Any]) -> list[CitySelector]:
    specs = list(options.get("city_specs") or ())
    if options.get("cities_file"):
        for line in Path(options["cities_file"]).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                specs.append(line)
    if not specs:
        raise SourceError("give the cities to poll with --city (repeatable) or --cities-file")
    try:
        return [parse_city_spec(s) for s in specs]
    except ValueError as exc:
        raise SourceError(f"bad city: {exc}") from None


def run(
    settings: Settings, source: str, *, rate: float | None, options: dict[str, Any], console: Console
) -> ProduceStats:
    """Produce from ``source`` until it ends (or Ctrl-C), showing progress; returns the counts."""
    stats = ProduceStats()
    pacing = Pacing(rate=rate, speedup=options.get("speedup"))
    handle: replay.ReplayFile | None = None
    owm_stats: owm.OwmStats | None = None
    blocking = False
    if source == "synthetic":
        records, total, description = _synthetic(options)
    elif source == "replay":
        records, handle, description = _replay(options)
        total = handle.total_bytes
    else:
        key = settings.owm_key()
        if key is None:
            raise SourceError(
                "no OpenWeatherMap API key: set WEATHERSTREAM_OWM_API_KEY, or WEATHERSTREAM_OWM_API_KEY_FILE to a "
                "file holding it"
            )
        install_secret_filter([key])
        owm_stats = owm.OwmStats()
        client = owm.OwmClient(settings.owm_base_url, key)
        records = owm.poll(
            client, _owm_cities(options), period_s=settings.owm_update_period_s,
            rate_per_min=settings.owm_rate_limit_per_min, use_group=options["use_group"],
            rounds=options.get("rounds"), duration_s=options.get("duration_s"), stats=owm_stats,
        )  # fmt: skip
        total, description, blocking = 0, "owm", True

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip
    progress = Progress(*columns, console=console, disable=not console.is_terminal, transient=False)
    task = progress.add_task(description, total=total or None, rate="")
    last_log = [time.monotonic()]

    def on_record(s: ProduceStats) -> None:
        done = handle.bytes_read if handle is not None else s.queued
        progress.update(task, completed=done, rate=f"{s.queued / max(s.elapsed_s, 1e-9):,.0f} rec/s")
        if not console.is_terminal and time.monotonic() - last_log[0] > 10:
            last_log[0] = time.monotonic()
            console.print(f"{description}: {s.queued} queued, {s.sent} sent, {s.failed} failed", highlight=False)

    interrupted = False
    try:
        with progress:
            asyncio.run(produce(records, settings, pacing=pacing, blocking=blocking, on_record=on_record, stats=stats))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if handle is not None:
            handle.close()
    rate_now = stats.sent / max(stats.elapsed_s, 1e-9)
    summary = (
        f"{'interrupted: ' if interrupted else ''}sent {stats.sent}, failed {stats.failed} to {settings.topic_raw} "
        f"in {stats.elapsed_s:.1f} s ({rate_now:,.0f}/s)"
    )
    if stats.errors:
        summary += " errors: " + ", ".join(f"{k} x{v}" for k, v in stats.errors.items())
    if owm_stats is not None:
        summary += (
            f"; API calls {owm_stats.calls}, unchanged {owm_stats.unchanged}, cities not found {owm_stats.not_found}, "
            f"rate limited {owm_stats.rate_limited}, unavailable {owm_stats.unavailable}"
        )
    console.print(summary, highlight=False)
    return stats
