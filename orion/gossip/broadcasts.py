"""The piggyback queue (memberlist's TransmitLimitedQueue, simplified).

One pending update per member: a newer update about a member replaces the older one. The least
transmitted updates go first (newest first among equals), each at most ``limit`` times, within a
byte budget per message. Updates sit in buckets by transmit count, so taking a handful for one
message touches a handful, even with hundreds queued (a 512-member join queues 511 at once).
"""

from __future__ import annotations

from orion.gossip.messages import MAX_UPDATES, Update, encoded_size

_MIN_USEFUL_BYTES = 48  # smaller than any update: stop looking once less than this is free
_MAX_MISSES = 4  # updates skipped for not fitting before we stop looking


class _Broadcast:
    __slots__ = ("size", "transmits", "update")

    def __init__(self, update: Update) -> None:
        self.update = update
        self.size = encoded_size(update)
        self.transmits = 0


class BroadcastQueue:
    def __init__(self) -> None:
        self._items: dict[str, _Broadcast] = {}
        # _buckets[t]: updates sent t times, in queueing order (dicts keep insertion order).
        self._buckets: list[dict[str, _Broadcast]] = [{}]

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, update: Update) -> None:
        node_id = update.node_id
        old = self._items.pop(node_id, None)
        if old is not None:
            del self._buckets[old.transmits][node_id]
        item = _Broadcast(update)
        self._items[node_id] = item
        self._buckets[0][node_id] = item

    def take(self, budget: int, limit: int) -> list[Update]:
        """Updates for one message, counting one transmission each; spent ones leave the queue.
        At most MAX_UPDATES, what a receiver decodes, whatever the budget."""
        if not self._items:
            return []
        chosen: list[_Broadcast] = []
        used = 0
        misses = 0
        for bucket in self._buckets:
            for item in reversed(bucket.values()):
                if used + item.size > budget:
                    misses += 1
                    if misses >= _MAX_MISSES:
                        break
                    continue
                used += item.size
                chosen.append(item)
                if budget - used < _MIN_USEFUL_BYTES or len(chosen) >= MAX_UPDATES:
                    break
            if misses >= _MAX_MISSES or budget - used < _MIN_USEFUL_BYTES or len(chosen) >= MAX_UPDATES:
                break
        buckets = self._buckets
        for item in chosen:
            node_id = item.update.node_id
            del buckets[item.transmits][node_id]
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[node_id]
                continue
            if item.transmits == len(buckets):
                buckets.append({})
            buckets[item.transmits][node_id] = item
        return [item.update for item in chosen]
