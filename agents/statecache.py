"""A bounded write-through cache in front of a table that only this worker's agent writes.

Reading a table is a RocksDB get plus a JSON decode; the pipeline reads the same city state and the
same panes over and over (a 24 h window closes every hour and reads 96 panes). Every write goes to the
table first and then to the cache, so the cache never holds anything the table does not. It is
emptied whenever partitions are assigned or revoked: after a rebalance the table may have been
changed by another worker (and recovered from the changelog), and the cache knows nothing of that.
Values are shared, not copied: the rules in :mod:`weatherstream.core` never mutate their inputs.

It also keeps the changelog record of every write until :meth:`CachedTable.take_changelog_sends` hands
them over: a batch's input offsets may be committed only once the table changes it made are in the
changelog. faust commits after a producer flush that can return while table writes still wait in its
buffer; a crash then loses those writes for every copy rebuilt from the changelog (a standby, a new
owner, a worker whose RocksDB folder was lost), while their input is never delivered again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from faust.types import AppT, TableT

logger = logging.getLogger(__name__)

_MISSING = object()


class CachedTable:
    """Write-through cache of at most ``max_entries`` keys of ``table`` (least recently used go first)."""

    def __init__(self, app: AppT, table: TableT, max_entries: int) -> None:
        self.table = table
        self.max_entries = max_entries
        self.entries: OrderedDict[Any, Any] = OrderedDict()
        self.changelog_sends: list[Any] = []
        send_changelog = table.send_changelog

        def send_and_keep(*args: Any, **kwargs: Any) -> Any:
            fut = send_changelog(*args, **kwargs)
            self.changelog_sends.append(fut)
            return fut

        table.send_changelog = send_and_keep  # type: ignore[method-assign]
        app.on_partitions_assigned.connect(self._forget)
        app.on_partitions_revoked.connect(self._forget)

    async def _forget(self, *args: Any, **kwargs: Any) -> None:
        logger.info("rebalance: forgetting %d cached entries of table %s", len(self.entries), self.table.name)
        self.clear()

    def take_changelog_sends(self) -> list[Any]:
        """Futures of the changelog records written since the last call (done once the broker has them)."""
        sends, self.changelog_sends = self.changelog_sends, []
        return sends

    def clear(self) -> None:
        self.entries.clear()

    def _remember(self, key: Any, value: Any) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def get(self, key: Any) -> Any:
        value = self.entries.get(key, _MISSING)
        if value is _MISSING:
            value = self.table.get(key)
            self._remember(key, value)
        else:
            self.entries.move_to_end(key)
        return value

    def set(self, key: Any, value: Any) -> None:
        self.table[key] = value
        self._remember(key, value)

    def delete(self, key: Any) -> None:
        """Delete ``key`` from the table (a no-op if the cache knows it is absent)."""
        if self.entries.get(key, _MISSING) is not None and key in self.table:
            del self.table[key]
        self._remember(key, None)
