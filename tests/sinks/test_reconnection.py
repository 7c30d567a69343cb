"""The Cassandra driver keeps trying a node that went down, however long it stays down."""

from itertools import islice

from weatherstream.db import reconnection_policy


def test_a_node_down_for_hours_is_still_tried_every_ten_seconds() -> None:
    # The driver's default schedule ends after 64 tries (about 12 minutes here), after which a sink on a
    # single node got NoHostAvailable for every write until restarted, with the node long back.
    delays = list(islice(reconnection_policy().new_schedule(), 2000))
    assert len(delays) == 2000, "the schedule does not end"
    assert delays[0] <= 1.0 and max(delays) <= 10.0 * 1.2  # the driver adds up to 15 % jitter
    assert sum(delays) > 4 * 3600
