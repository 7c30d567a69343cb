import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weatherstream.core.aggregator import (
    Aggregator,
    AggregatorConfig,
    Changes,
    Verdict,
    WindowState,
    confirm,
    runs_add,
    runs_contains,
    runs_take_below,
    runs_within,
)
from weatherstream.core.codec import CityRecord, decode_record, decode_slice, encode_record, encode_slice
from weatherstream.core.slices import Slice
from weatherstream.core.summary import Sample
from weatherstream.core.windows import WindowSpec

H = 3600
T0 = 1_790_000_000 - 1_790_000_000 % 86400  # a UTC midnight
HOURS_ONLY = WindowSpec(tumbling_s=(H,), local_day=False, hopping_size_s=0)


class Sim:
    """Applies batches to an in-memory table (a record and cold slices), as the pipeline does."""

    def __init__(self, *, owned: bool = False, check_shared: bool = False, **cfg: Any) -> None:
        self.agg = Aggregator(AggregatorConfig(**cfg))
        self.owned = owned  # each batch gets its own decoded copy of the state and changes it in place
        self.check_shared = check_shared  # (not owned) check that a batch leaves the state it read as it was
        self.state: WindowState | None = None
        self.cold: dict[int, Slice] = {}
        self.emitted: list[dict[str, Any]] = []
        self.offset = 0
        self.writes: list[list[tuple[str, Any]]] = []  # per batch: ("slice", (start, Slice)), ("state", ...)

    def batch(self, events: list[tuple[float, float, int]], *, durable: bool = True, wall: float = 0.0,
              tz: int = 0) -> tuple[list[Verdict], Changes]:  # fmt: skip
        """Apply ``events`` (time, temperature, offset) as one batch, then write its changes."""
        read = self.state
        if self.owned and read is not None:  # as the pipeline reads a record that is not cached
            read = decode_record(encode_record(CityRecord(windows=read))).windows
        stored = encode_record(CityRecord(windows=read)) if self.check_shared else b""
        city = self.agg.begin(7, read, self.cold.get, owned=self.owned)
        verdicts = [city.apply(Sample(t, offset, tz, temp_c=temp), wall_now=wall) for t, temp, offset in events]
        changes = city.end(durable=durable)
        if self.check_shared:
            assert encode_record(CityRecord(windows=read)) == stored, "the state read (shared) was changed"
        self.commit(changes)
        self.emitted.extend(city.emissions)
        return verdicts, changes

    def commit(self, changes: Changes) -> None:
        """Cold slices, then the record, then the deletes: the order of the writes in the changelog."""
        writes: list[tuple[str, Any]] = [("slice", item) for item in changes.cold_writes.items()]
        writes.append(("state", changes.state))
        writes += [("delete", start) for start in changes.deletes]
        self.writes.append(writes)
        apply_writes(self, writes)

    def obs(self, t: float, temp: float = 1.0, offset: int | None = None, wall: float = 0.0,
            tz: int = 0) -> tuple[Verdict, list[dict[str, Any]]]:  # fmt: skip
        if offset is None:
            self.offset += 1
            offset = self.offset
        before = len(self.emitted)
        (verdict,), _ = self.batch([(float(t), temp, offset)], wall=wall, tz=tz)
        return verdict, self.emitted[before:]

    def hours(self) -> list[tuple[float, int, int]]:
        return [(e["window_start"], e["revision"], e["count"]) for e in self.emitted if e["kind"] == "tumbling-1h"]


def apply_writes(sim: Sim, writes: list[tuple[str, Any]]) -> None:
    for what, item in writes:
        if what == "slice":
            sim.cold[item[0]] = item[1]
        elif what == "state":
            sim.state = item
        else:
            sim.cold.pop(item, None)


def final(emitted: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Emissions by id, without the processing times (a repeat must be the same aggregate)."""
    out: dict[str, dict[str, Any]] = {}
    for e in emitted:
        values = {k: v for k, v in e.items() if k not in ("closed_at", "watermark_passed_at")}
        assert out.setdefault(e["eid"], values) == values, f"two different aggregates with id {e['eid']}"
    return out


# -- the rules --------------------------------------------------------------------------------------------
def test_window_closes_only_when_the_watermark_passes_its_end() -> None:
    sim = Sim(spec=HOURS_ONLY, lateness_s=600)
    for m in range(0, 60, 10):
        sim.obs(T0 + m * 60)
    sim.obs(T0 + H + 300)  # watermark at 10:55-equivalent: the first hour is still open
    assert sim.hours() == []
    sim.obs(T0 + H + 600)  # watermark reaches the end
    assert sim.hours() == [(T0, 1, 6)]


def test_out_of_order_within_lateness_is_in_the_first_result() -> None:
    sim = Sim(spec=HOURS_ONLY, lateness_s=600)
    sim.obs(T0 + 10)
    sim.obs(T0 + H + 200)
    sim.obs(T0 + 3000)  # earlier than the newest, but the window is still open
    sim.obs(T0 + H + 700)
    assert sim.hours() == [(T0, 1, 2)]


def test_late_data_corrects_a_final_window_with_a_new_revision() -> None:
    sim = Sim(spec=HOURS_ONLY, lateness_s=600)
    sim.obs(T0 + 60, temp=1.0)
    sim.obs(T0 + 2 * H)  # closes hour 0
    _, emitted = sim.obs(T0 + 120, temp=5.0)  # late for hour 0
    assert [(e["revision"], e["count"], e["temp_mean_c"], e["late"]) for e in emitted] == [(2, 2, 3.0, True)]
    sim.obs(T0 + 180, temp=6.0)
    assert sim.hours()[-1][:2] == (T0, 3)


def test_first_data_for_an_already_closed_window_is_emitted_late_as_revision_1() -> None:
    sim = Sim(spec=HOURS_ONLY, lateness_s=600)
    sim.obs(T0 + 5 * H)
    _, emitted = sim.obs(T0 + 2 * H + 5)
    assert [(e["window_start"], e["revision"], e["late"]) for e in emitted] == [(T0 + 2 * H, 1, True)]


def test_older_than_the_correction_horizon_is_too_late() -> None:
    sim = Sim(retention_s=48 * H)
    sim.obs(T0 + 100 * H)
    verdict, emitted = sim.obs(T0 + 100 * H - 600 - 48 * H - 1)
    assert verdict is Verdict.TOO_LATE and emitted == []
    assert sim.obs(T0 + 100 * H - 600 - 48 * H + 1)[0] is Verdict.APPLIED


def test_same_time_other_message_is_a_duplicate_and_changes_nothing() -> None:
    sim = Sim()
    sim.obs(T0 + 60, temp=1.0)
    state = sim.state
    verdict, emitted = sim.obs(T0 + 60, temp=9.0)
    assert verdict is Verdict.DUPLICATE and emitted == []
    assert sim.state is not None and state is not None and sim.state.hot == state.hot


def test_a_redelivery_is_judged_from_its_slice_as_the_first_time() -> None:
    sim = Sim(spec=HOURS_ONLY, retention_s=2 * H)
    sim.obs(T0, offset=1)
    sim.obs(T0 + 600, offset=2)
    sim.obs(T0 + 600, offset=3)  # a duplicate: never in a slice
    assert sim.obs(T0 + 600, offset=2)[0] is Verdict.REDELIVERED
    assert sim.obs(T0 + 600, offset=3)[0] is Verdict.DUPLICATE
    sim.obs(T0 + 5 * H, offset=4)  # the first slices age out behind the watermark
    sim.obs(T0 + 5 * H + 60, offset=5)  # (deleted once the record that dropped them is durable)
    assert T0 not in sim.cold and sim.state is not None and T0 not in sim.state.hot
    assert sim.obs(T0, offset=1)[0] is Verdict.FORGOTTEN


def test_idle_tick_moves_the_watermark_with_the_wall_clock_and_due_at_says_when() -> None:
    sim = Sim(spec=HOURS_ONLY, lateness_s=600, idle_timeout_s=1800)
    sim.obs(T0 + 60, wall=1000.0)
    due = sim.agg.due_at(sim.state)
    assert due == 1000.0 + (T0 + H + 600 - (T0 + 60)) + 1  # when max_t + silence - lateness reaches the end
    city = sim.agg.begin(7, sim.state, sim.cold.get)
    city.tick(wall_now=1000.0 + 1700)
    assert city.emissions == []  # not idle long enough
    city.tick(wall_now=due - 2)
    assert city.emissions == []
    city.tick(wall_now=due)
    assert [(e["window_start"], e["revision"]) for e in city.emissions] == [(T0, 1)]
    assert city.state.wm == T0 + 60 + due - 1000.0 - 600
    assert sim.agg.due_at(city.state) is None  # nothing open any more


def test_outbox_keeps_emissions_until_confirmed() -> None:
    sim = Sim(spec=HOURS_ONLY)
    sim.obs(T0)
    sim.obs(T0 + 2 * H)
    assert sim.state is not None
    assert [e["eid"] for e in sim.state.outbox] == [f"7/tumbling-1h:{T0}#1"]
    assert confirm(sim.state, {f"7/tumbling-1h:{T0}#1"}).outbox == []
    assert sim.state.outbox, "confirm returns a copy; the state read stays as it was"


def test_old_slices_are_deleted_and_state_stays_bounded() -> None:
    sim = Sim(retention_s=48 * H)
    for m in range(0, 7 * 24 * 6):
        sim.obs(T0 + m * 600)
    newest = T0 + (7 * 24 * 6 - 1) * 600
    state = sim.state
    assert state is not None
    kept = set(sim.cold) | set(state.hot)
    assert min(kept) >= newest - 600 - 48 * H - sim.agg.spec.max_span_s - H
    assert len(kept) <= (48 * H + sim.agg.spec.max_span_s) / H + 3
    assert len(state.hot) <= 3, "slices the watermark has passed move out of the record"
    assert len(state.rev) == 0 and sum(len(runs) for runs in state.open.values()) == 3  # one run per kind
    assert len(encode_record(CityRecord(gen=1, windows=confirm(state, {e["eid"] for e in state.outbox})))) < 4000


def test_hopping_and_day_windows_close_with_expected_counts() -> None:
    sim = Sim()
    for m in range(0, 3 * 24 * 6):
        sim.obs(T0 + m * 600)
    days = [(e["window_start"], e["count"]) for e in sim.emitted if e["kind"] == "day-local"]
    hops = [e["count"] for e in sim.emitted if e["kind"] == "hopping-24h-1h"]
    assert days[:2] == [(T0, 144), (T0 + 86400, 144)]
    assert max(hops) == 144 and hops[:3] == [6, 12, 18]


@pytest.mark.parametrize("tz", [0, 3600, -18000, 19800, 20700])
def test_day_windows_follow_the_local_offset(tz: int) -> None:
    sim = Sim()
    for m in range(0, 2 * 24 * 6 + 30):
        sim.obs(T0 + m * 600, tz=tz)
    first_full = next(e for e in sim.emitted if e["kind"] == "day-local" and e["count"] == 144)
    assert (first_full["window_start"] + tz) % 86400 == 0


# -- order, batches and restarts change no number ----------------------------------------------------
def _events(seed: int, n: int = 300) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(T0 + m * 600 + 13, round(rng.uniform(-5, 25), 2)) for m in range(n)]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), within=st.integers(1, 5), batch=st.integers(1, 40))
def test_arrival_order_within_lateness_and_batch_cuts_do_not_change_any_number(seed: int, within: int,
                                                                              batch: int) -> None:  # fmt: skip
    """Shuffle arrival order, each observation at most ``within`` places (< the lateness) from its own, and cut
    the input into batches of ``batch``: every aggregate is the same, bit for bit."""
    events = _events(seed)
    rng = random.Random(seed)
    keyed = sorted(range(len(events)), key=lambda i: i + rng.uniform(0, within))
    ordered, shuffled = Sim(lateness_s=4 * H), Sim(lateness_s=4 * H)
    for t, temp in events:
        ordered.obs(t, temp)
    arrivals = [(*events[i], k + 1) for k, i in enumerate(keyed)]
    for i in range(0, len(arrivals), batch):
        shuffled.batch(arrivals[i : i + batch])
    a, b = final(ordered.emitted), final(shuffled.emitted)
    assert len(a) > 50 and a == b


def test_a_state_that_went_through_the_codec_gives_the_same_aggregates() -> None:
    """A worker that takes over reads the state from the table: every value survives the codec exactly."""
    events = _events(3)
    straight, restarted = Sim(), Sim()
    for t, temp in events:
        straight.obs(t, temp)
    for k, (t, temp) in enumerate(events):
        restarted.obs(t, temp)
        if k % 17 == 0 and restarted.state is not None:
            restarted.state = decode_record(encode_record(CityRecord(gen=1, windows=restarted.state))).windows
            restarted.cold = {s: decode_slice(encode_slice(v)) for s, v in restarted.cold.items()}
    assert final(straight.emitted) == final(restarted.emitted)


def _crash_input() -> list[tuple[float, float]]:
    rng = random.Random(11)
    events: list[tuple[float, float]] = []
    for m in range(300):
        events.append((T0 + m * 600 + 13, rng.uniform(-5, 25)))
        if m % 7 == 6:  # late: lands in a window that closed a little while ago (a corrected revision)
            events.append((T0 + (m - rng.randint(9, 14)) * 600 + 301, rng.uniform(-5, 25)))
        if m % 11 == 10:  # the same time as an applied one: a duplicate
            events.append((events[-1][0], 99.0))
    events.append((T0 + 330 * 600, 5.0))  # a jump of five hours: many slices dropped at once
    events.extend((T0 + 330 * 600 + k * 600 + 7, 6.0) for k in range(1, 30))
    return events


CRASH_CFG = {"spec": WindowSpec(tumbling_s=(H,), local_day=False, hopping_size_s=2 * H, hopping_step_s=H),
             "lateness_s": 1200, "retention_s": 3 * H}  # fmt: skip  # old slices are dropped all along the run


def _clean_run(batch: int) -> tuple[Sim, list[list[tuple[float, float, int]]]]:
    events = _crash_input()
    arrivals = [(t, temp, k + 1) for k, (t, temp) in enumerate(events)]
    batches = [arrivals[i : i + batch] for i in range(0, len(arrivals), batch)]
    clean = Sim(**CRASH_CFG)
    for b in batches:
        clean.batch(b)
    return clean, batches


def test_the_input_really_corrects_and_drops() -> None:
    clean, _ = _clean_run(3)
    assert {e["revision"] for e in clean.emitted} >= {1, 2}
    assert any(w[0] == "delete" for b in clean.writes for w in b)
    assert any(w[0] == "slice" for b in clean.writes for w in b)


def _replay(sim: Sim, batches: list[list[tuple[float, float, int]]]) -> None:
    """Deliver ``batches`` again to a restarted worker: first what its outbox holds (it sends that first),
    then the batches, each durable when its first observation is new to the record (as the pipeline judges)."""
    sim.emitted = list(sim.state.outbox) if sim.state is not None else []
    for b in batches:
        sim.batch(b, durable=sim.state is None or b[0][2] > sim.state.last_offset)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_a_rebuild_from_any_prefix_of_the_changelog_replays_to_the_same_aggregates(batch: int) -> None:
    """A worker that lost its RocksDB folder rebuilds the table from the changelog, which may end anywhere
    inside the batch that was being written (its input is then delivered again, from that batch on)."""
    clean, batches = _clean_run(batch)
    want = final(clean.emitted)
    for j in range(0, len(batches), 5):
        for cut in range(len(clean.writes[j]) + 1):
            crashed = Sim(**CRASH_CFG)
            for writes in clean.writes[:j]:
                apply_writes(crashed, writes)
            apply_writes(crashed, clean.writes[j][:cut])
            _replay(crashed, batches[j:])
            assert final(crashed.emitted) == want, (j, cut)


@pytest.mark.parametrize("batch", [1, 4])
def test_a_record_set_back_by_one_batch_over_newer_local_slices_replays_to_the_same_aggregates(batch: int) -> None:
    """A worker restarted on its own RocksDB folder: recovery replays the changelog from the last persisted
    offset over the local values, which can set the record back to the previous batch's while slices and
    deletes written only locally stay."""
    clean, batches = _clean_run(batch)
    want = final(clean.emitted)
    for j in range(1, len(batches) - 1, 3):
        crashed = Sim(**CRASH_CFG)
        for writes in clean.writes[: j + 1]:
            apply_writes(crashed, writes)  # the local store has batch j
        crashed.state = clean_states(clean)[j - 1]  # but the record came back as batch j-1 wrote it
        _replay(crashed, batches[j:])
        assert final(crashed.emitted) == want, j


def clean_states(clean: Sim) -> list[WindowState]:
    return [next(item for what, item in writes if what == "state") for writes in clean.writes]


def test_a_record_kept_locally_but_never_delivered_is_written_again_with_what_its_batch_moved_out() -> None:
    """Restarted on its own folder with a record whose batch was never delivered: its input comes again (as
    re-deliveries), and the record is rewritten together with the slices its batch moved out, which may exist
    only locally. A worker rebuilt from the changelog afterwards has them."""
    clean, batches = _clean_run(2)
    want = final(clean.emitted)
    checked = 0
    for j in range(2, len(batches) - 2):
        cooled = {w[1][0] for w in clean.writes[j] if w[0] == "slice"}
        if not cooled:
            continue
        checked += 1
        local = Sim(**CRASH_CFG)
        for writes in clean.writes[: j + 1]:
            apply_writes(local, writes)
        _replay(local, [])
        verdicts, changes = local.batch(batches[j], durable=False)
        assert set(verdicts) <= {Verdict.REDELIVERED, Verdict.DUPLICATE, Verdict.TOO_LATE, Verdict.FORGOTTEN}
        assert changes.rewrite and set(changes.cold_writes) >= cooled
        rebuilt = Sim(**CRASH_CFG)
        for writes in [*clean.writes[:j], local.writes[-1]]:  # the changelog lacks batch j's own writes
            apply_writes(rebuilt, writes)
        emitted = local.emitted
        _replay(rebuilt, batches[j + 1 :])
        assert final(emitted + rebuilt.emitted) == want, j
    assert checked > 5


# -- runs ----------------------------------------------------------------------------------------------
def test_runs() -> None:
    runs: list[list[int]] = []
    for first, last in [(10, 12), (20, 20), (14, 16), (13, 13), (30, 40), (18, 19)]:
        runs_add(runs, first, last, 1)
    assert runs == [[10, 16], [18, 20], [30, 40]]
    assert runs_contains(runs, 15, 1) and not runs_contains(runs, 17, 1) and not runs_contains(runs, 41, 1)
    assert list(runs_within(runs, 15, 19, 1)) == [15, 16, 18]
    assert runs_take_below(runs, 19, 1) == [10, 11, 12, 13, 14, 15, 16, 18] and runs == [[19, 20], [30, 40]]
    hours: list[list[int]] = []
    runs_add(hours, 3600, 7200, 3600)
    runs_add(hours, 14400, 14400, 3600)
    runs_add(hours, 10800, 10800, 3600)
    assert hours == [[3600, 14400]]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.tuples(st.integers(0, 80), st.integers(-20, 30)), min_size=1, max_size=6), st.booleans()),
        min_size=1,
        max_size=14,
    )
)
def test_a_state_changed_in_place_gives_what_a_copy_of_it_gives(
    batches: list[tuple[list[tuple[int, int]], bool]],
) -> None:
    """The pipeline changes a record it read from the table in place, hot slices included, and copies a cached
    one (whose state must stay as it was: checked by Sim): both give the same aggregates, state and slices."""
    sims = [Sim(spec=HOURS_ONLY, owned=False, check_shared=True), Sim(spec=HOURS_ONLY, owned=True)]
    offset = 0
    for events, durable in batches:
        batch = [(float(T0 + tenth * 600), float(temp), offset + i) for i, (tenth, temp) in enumerate(events)]
        offset += len(events)
        for sim in sims:
            sim.batch(batch, durable=durable)
    copied, owned = sims
    assert final(owned.emitted) == final(copied.emitted)
    assert encode_record(CityRecord(windows=owned.state)) == encode_record(CityRecord(windows=copied.state))
    assert {k: encode_slice(v) for k, v in owned.cold.items()} == {k: encode_slice(v) for k, v in copied.cold.items()}
