from agents.cityindex import CityIndex


def test_only_the_cities_due_are_popped_and_each_gets_a_retry() -> None:
    index = CityIndex()
    for city in range(1000):
        index.update(city, city % 8, due=1000.0 + city, newest=float(city))
    assert index.pop_due(1004.5, retry_after_s=30) == [0, 1, 2, 3, 4]
    assert index.pop_due(1004.5, retry_after_s=30) == []
    later = index.pop_due(1034.6, retry_after_s=30)
    assert later == [*range(5, 35), 0, 1, 2, 3, 4], "those not updated since are due again after the retry delay"


def test_a_later_due_time_or_none_replaces_the_earlier() -> None:
    index = CityIndex()
    index.update(7, 0, due=10.0, newest=None)
    index.update(7, 0, due=50.0, newest=None)
    index.update(8, 0, due=10.0, newest=None)
    index.update(8, 0, due=None, newest=None)
    assert index.pop_due(20.0, 5) == [] and index.pop_due(60.0, 5) == [7]


def test_partitions_it_loses_are_forgotten() -> None:
    index = CityIndex()
    index.update(1, 0, due=1.0, newest=100.0)
    index.update(2, 1, due=1.0, newest=200.0)
    assert index.keep([1, 2]) == [2]
    assert len(index) == 1 and index.pop_due(5.0, 5) == [2] and index.oldest_newest() == 200.0


def test_ages_count_stations_by_their_newest_observation() -> None:
    index = CityIndex()
    now = 100_000.0
    for city, age in enumerate([10, 3599, 3601, 7200, 30_000, 90_000, 90_000]):
        index.update(city, 0, due=None, newest=now - age)
    index.update(0, 0, due=None, newest=now - 20)  # a city's newer observation replaces its older one
    assert index.ages(now, (3600.0, 21600.0, 86400.0)) == [2, 2, 1, 2]
    assert index.oldest_newest() == now - 90_000


def test_a_failed_send_makes_a_city_due_again_sooner_never_later() -> None:
    index = CityIndex()
    index.update(1, 0, due=None, newest=5.0)
    index.update(2, 0, due=100.0, newest=5.0)
    index.due_again(1, 20.0)
    index.due_again(2, 200.0)
    index.due_again(3, 20.0)  # not this worker's
    assert index.pop_due(30.0, 5) == [1] and index.pop_due(150.0, 5) == [1, 2]
