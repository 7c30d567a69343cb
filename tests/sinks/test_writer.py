"""Which failed writes the sink tries again (never losing the rows) and which it dead-letters."""

from cassandra import InvalidRequest, OperationTimedOut

from weatherstream.sinks.writer import retryable


def refused(message: str) -> InvalidRequest:
    """An ``InvalidRequest`` as the driver raises it for an answer of the server."""
    return InvalidRequest(f'Error from server: code=2200 [Invalid query] message="{message}"')


def test_a_column_or_table_the_coordinator_does_not_know_yet_is_waited_for() -> None:
    # a node restarted while the migrations ran coordinates writes with its older schema until it catches up
    assert retryable(refused("Undefined column name pressure_tendency_3h_hpa in table ks.latest_by_city"))
    assert retryable(refused("unconfigured table observations_by_city_day"))
    assert retryable(refused("Keyspace ks does not exist"))


def test_a_row_the_schema_refuses_is_not_retried_but_an_outage_is() -> None:
    assert not retryable(refused("Invalid null value in condition for column city_id"))
    assert not retryable(refused("Key length of 70000 is longer than maximum of 65535"))
    assert retryable(OperationTimedOut("no answer in 10 s", "127.0.0.1:9042"))
