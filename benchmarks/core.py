"""The pipeline's rules in isolation: CPU per event of normalizing, windows and the anomaly engine, without Kafka.

The drain's input (``benchmarks/.work/workload-<events>-<cities>.jsonl``, made by ``benchmarks.drain`` if it
is missing) is normalized, then each city's observations go through :class:`~weatherstream.core.aggregator.
Aggregator` and :class:`~weatherstream.core.anomaly.engine.AnomalyEngine` in batches of ``--batch`` per city, as
the pipeline applies a backlog (a batch's state copied once, outboxes emptied as if confirmed). The garbage
collector is off while a stage runs. Each stage runs ``--repeat`` times; the table gives every run.

    .venv/bin/python -m benchmarks.core [--events 50000] [--cities 50] [--batch 100] [--repeat 3]
                                        [--profile STAGE]

``--profile STAGE`` (normalize, windows or engine) prints cProfile's 25 most costly functions of one run of it.
Needs no servers. Results are printed, not kept: it is for comparing changes on one machine, in one run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from collections.abc import Callable

from agents.pipeline import engine_config, sample_of, window_config
from benchmarks.drain import workload
from models import Observation
from weatherstream.core import aggregator
from weatherstream.core.anomaly import engine as anomaly
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.settings import load_settings


class Stages:
    """The three stages over one workload, with the settings' windows and detectors."""

    def __init__(self, payloads: list[bytes], batch: int) -> None:
        settings = load_settings()
        self.payloads = payloads
        self.batch = batch
        self.now = time.time()
        self.aggregator = aggregator.Aggregator(window_config(settings))
        self.anomaly_engine = anomaly.AnomalyEngine(engine_config(settings))
        self.by_city: dict[int, list[tuple[int, Observation]]] = {}
        for offset, obs in enumerate(self.normalize()):
            self.by_city.setdefault(obs.city_id, []).append((offset, obs))

    def normalize(self) -> list[Observation]:
        out = []
        for payload in self.payloads:
            try:
                out.append(normalize(payload, now=self.now, units="metric", source="bench", max_bytes=65536))
            except InvalidPayload:
                continue  # the workload's injected impossible values
        return out

    def windows(self) -> None:
        for city, items in self.by_city.items():
            state = None
            for first in range(0, len(items), self.batch):
                city_windows = self.aggregator.begin(city, state, lambda start: None)
                for offset, obs in items[first : first + self.batch]:
                    city_windows.apply(sample_of(obs, offset), wall_now=self.now)
                state = city_windows.end(durable=True).state
                state.outbox = []

    def engine(self) -> None:
        for items in self.by_city.values():
            state = None
            for first in range(0, len(items), self.batch):
                owned = False
                for offset, obs in items[first : first + self.batch]:
                    state = self.anomaly_engine.apply(state, obs, offset, wall_now=self.now, owned=owned).state
                    owned = True
                if state is not None:
                    state["outbox"] = []


def cpu_us_per_event(run: Callable[[], object], events: int) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        run()
        return (time.process_time() - started) / events * 1e6
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--cities", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100, help="Observations per city and batch.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", choices=("normalize", "windows", "engine"))
    args = parser.parse_args()
    payloads = [value for _, value in workload(args.events, args.cities)]
    stages = Stages(payloads, args.batch)
    runs: dict[str, Callable[[], object]] = {
        "normalize": stages.normalize, "windows": stages.windows, "engine": stages.engine,
    }  # fmt: skip
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(runs[args.profile])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    events = len(payloads)
    print(f"{events:,} events, {args.cities} cities, batches of {args.batch} per city; CPU us per event:")
    for name, run in runs.items():
        figures = [cpu_us_per_event(run, events) for _ in range(args.repeat)]
        print(f"  {name:10} " + "  ".join(f"{f:6.1f}" for f in figures))


if __name__ == "__main__":
    main()
