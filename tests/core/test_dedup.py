import pytest

from weatherstream.core.dedup import DedupMemory, Verdict


def feed(memory: DedupMemory, times: list[float]) -> list[str]:
    state = None
    out = []
    for t in times:
        verdict, state = memory.check(state, t)
        out.append(verdict.value)
    return out


def test_repeats_are_recognised_in_any_order() -> None:
    memory = DedupMemory(horizon_s=3600)
    assert feed(memory, [100, 200, 100, 150, 200, 150, 300]) == [
        "new", "new", "duplicate", "new", "duplicate", "duplicate", "new",
    ]  # fmt: skip


def test_older_than_the_horizon_is_too_late_not_counted() -> None:
    memory = DedupMemory(horizon_s=3600)
    assert feed(memory, [10_000, 10_000 - 3600, 10_000 - 3601]) == ["new", "new", "too_late"]


def test_state_stays_bounded_by_horizon() -> None:
    memory = DedupMemory(horizon_s=600)
    state = None
    for t in range(0, 100_000, 60):
        _, state = memory.check(state, float(t))
    assert state is not None and len(state["seen"]) <= 11


def test_entry_cap_turns_forgotten_times_into_too_late() -> None:
    memory = DedupMemory(horizon_s=10**9, max_entries=3)
    state = None
    for t in (1.0, 2.0, 3.0, 4.0):
        _, state = memory.check(state, t)
    assert memory.check(state, 1.0)[0] is Verdict.TOO_LATE  # forgotten: cannot tell, so not counted twice
    assert memory.check(state, 2.0)[0] is Verdict.DUPLICATE
    assert memory.check(state, 2.5)[0] is Verdict.NEW


def test_state_survives_a_json_round_trip() -> None:
    import orjson

    memory = DedupMemory(horizon_s=3600)
    _, state = memory.check(None, 1000.0)
    _, state = memory.check(state, 1060.0)
    restored = orjson.loads(orjson.dumps(state))
    assert memory.check(restored, 1000.0)[0] is Verdict.DUPLICATE


@pytest.mark.parametrize("horizon", [60.0, 3600.0, 172800.0])
def test_floor_is_newest_minus_horizon(horizon: float) -> None:
    memory = DedupMemory(horizon_s=horizon)
    _, state = memory.check(None, 1e6)
    assert memory.floor(state) == 1e6 - horizon


def test_the_same_message_again_is_a_redelivery_not_a_duplicate() -> None:
    memory = DedupMemory(horizon_s=3600)
    _, state = memory.check(None, 1000.0, offset=5)
    assert memory.check(state, 1000.0, offset=5)[0] is Verdict.REDELIVERED  # after a crash: send it again
    assert memory.check(state, 1000.0, offset=9)[0] is Verdict.DUPLICATE  # another message, same city and time
