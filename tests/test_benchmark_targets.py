"""The benchmarks' target checks (pure functions over recorded runs; no servers)."""

from benchmarks import drain, keyscale


def drain_run(system: str, repetition: int, cpu_us: float, ok: bool = True) -> drain.Run:
    return drain.Run(system, repetition, 1000, cpu_us_per_event=cpu_us, ok=ok)


def test_drain_ratios_pair_runs_of_one_round_and_leave_out_failed_ones() -> None:
    runs = [
        drain_run("weatherstream-nosink", 1, 250.0), drain_run("faust-floor", 1, 100.0),
        drain_run("weatherstream-nosink", 2, 300.0), drain_run("faust-floor", 2, 200.0),
        drain_run("weatherstream-nosink", 3, 500.0), drain_run("faust-floor", 3, 100.0, ok=False),
        drain_run("weatherstream-nosink", 4, 180.0),  # its floor run is missing
        drain_run("weatherstream-nosink", 5, 100.0, ok=False), drain_run("faust-floor", 5, 100.0),
    ]  # fmt: skip
    assert drain.round_ratios(runs, "weatherstream-nosink", "faust-floor") == [2.5, 1.5]
    (target,) = drain.check_targets(runs)
    assert target["system"] == "weatherstream-nosink" and target["against"] == "faust-floor"
    assert target["median"] == 2.0 and target["met"]  # the median of 2.5 and 1.5 is exactly the limit


def test_drain_targets_cover_the_baseline_and_fail_above_the_limit() -> None:
    runs = [
        drain_run("weatherstream", 1, 400.0), drain_run("weatherstream@baseline", 1, 300.0),
        drain_run("quix", 1, 800.0),
    ]  # fmt: skip
    by_system = {t["system"]: t for t in drain.check_targets(runs)}
    assert by_system["weatherstream"]["median"] == 0.5 and not by_system["weatherstream"]["met"]
    assert by_system["weatherstream@baseline"]["median"] == 0.375 and by_system["weatherstream@baseline"]["met"]


def test_drain_targets_are_judged_unrounded() -> None:
    runs = [drain_run("weatherstream-nosink", 1, 200.08), drain_run("faust-floor", 1, 100.0)]
    (target,) = drain.check_targets(runs)
    assert target["median"] == 2.001 and not target["met"]  # 2.0008 is over 2, though it shows as 2.001


def scale(stations: int, repeat: int, cpu_us: float, **figures: float) -> keyscale.Scale:
    run = keyscale.Scale(stations, 200_000, cpu_us_per_event=cpu_us, ok=True, repeat=repeat)
    for name, value in figures.items():
        setattr(run, name, value)
    return run


def test_keyscale_targets_take_the_median_ratio_and_the_largest_rss() -> None:
    runs = [
        scale(50, 1, 500.0, idle_cpu_pct=0.8), scale(100_000, 1, 800.0, peak_rss_mb=300.0, idle_cpu_pct=2.0),
        scale(50, 2, 500.0, idle_cpu_pct=1.2), scale(100_000, 2, 600.0, peak_rss_mb=360.0, idle_cpu_pct=1.0),
        scale(50, 3, 400.0, idle_cpu_pct=0.9), scale(100_000, 3, 500.0, peak_rss_mb=310.0, idle_cpu_pct=1.5),
    ]  # fmt: skip
    targets = {(t["stations"], t["target"]): t for t in keyscale.check_targets(runs)}
    ratio = targets[100_000, "CPU per event vs 50 stations"]
    assert (ratio["value"], ratio["low"], ratio["high"], ratio["met"]) == (1.25, 1.2, 1.6, True)
    rss = targets[100_000, "peak RSS, MB"]
    assert rss["value"] == 360.0 and not rss["met"]  # the largest of the runs, not their median
    assert targets[50, "idle CPU, % of a core"]["value"] == 0.9 and targets[50, "idle CPU, % of a core"]["met"]
    assert targets[100_000, "idle CPU, % of a core"]["value"] == 1.5


def test_keyscale_has_no_ratio_target_without_a_50_station_run() -> None:
    runs = [scale(5_000, 1, 500.0), scale(100_000, 1, 800.0)]
    names = [t["target"] for t in keyscale.check_targets(runs)]
    assert "CPU per event vs 50 stations" not in names and "peak RSS, MB" in names


def test_keyscale_ratios_are_to_the_rounds_smallest_count_and_leave_out_failed_runs() -> None:
    base, big, failed = scale(50, 1, 400.0), scale(100_000, 1, 520.0), scale(50_000, 1, 100.0)
    failed.ok = False
    assert [(r.stations, ratio) for r, ratio in keyscale.round_ratios([big, failed, base])] == [
        (100_000, 1.3),
        (50, 1.0),
    ]
    base.ok = False  # nothing to compare with
    assert keyscale.round_ratios([big, base]) == []
    # 1.3025 is over 1.3, although the summary shows it rounded to 1.3
    runs = [scale(50, 1, 400.0), scale(100_000, 1, 521.0)]
    (ratio,) = [t for t in keyscale.check_targets(runs) if t["target"]
                .startswith("CPU")]  # fmt: skip
    assert ratio["value"] == 1.302 and not ratio["met"]
