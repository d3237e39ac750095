"""The piggyback queue (memberlist's TransmitLimitedQueue, simplified).

One pending update per member: a newer update about a member replaces the older one. The least
transmitted updates go first (newest first among equals), each at most ``limit`` times, within a
byte budget per message. Updates sit in buckets by transmit count, so taking a handful for one
message touches a handful, even with hundreds queued (a 512-member join queues 511 at once).

Each bucket is a stack (a list, newest at the end): a take pops what it looks at off the end and
puts back what did not fit. A replaced update is only marked dead and dropped when a take reaches
it. (The buckets were dicts: deleting the newest entries leaves holes at the end of a dict's entry
table, which every later reverse walk stepped over again; a take at 1,000 queued cost 33 us.)
"""

from __future__ import annotations

from orion.gossip.messages import MAX_UPDATES, Update, encoded_size

_MIN_USEFUL_BYTES = 48  # smaller than any update: stop looking once less than this is free
_MAX_MISSES = 4  # updates skipped for not fitting before we stop looking
_COMPACT_SLACK = 256  # dead entries tolerated beyond the live ones before the buckets are swept


class _Broadcast:
    __slots__ = ("live", "size", "transmits", "update")

    def __init__(self, update: Update, size: int) -> None:
        self.update = update
        self.size = size
        self.transmits = 0
        self.live = True


class BroadcastQueue:
    def __init__(self) -> None:
        self._items: dict[str, _Broadcast] = {}
        # _buckets[t]: updates sent t times, oldest first (a take reads from the end).
        self._buckets: list[list[_Broadcast]] = [[]]
        self._dead = 0  # replaced entries still sitting in a bucket

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def queue(self, update: Update, size: int | None = None) -> None:
        """Queue ``update`` (``size``: its encoded size when the caller knows it)."""
        node_id = update.node_id
        old = self._items.get(node_id)
        if old is not None:
            old.live = False
            self._dead += 1
            if self._dead > len(self._items) + _COMPACT_SLACK:
                self._compact()
        item = _Broadcast(update, encoded_size(update) if size is None else size)
        self._items[node_id] = item
        self._buckets[0].append(item)

    def take(self, budget: int, limit: int) -> list[Update]:
        """Updates for one message, counting one transmission each; spent ones leave the queue.
        At most MAX_UPDATES, what a receiver decodes, whatever the budget."""
        if not self._items:
            return []
        chosen: list[_Broadcast] = []
        used = 0
        misses = 0
        done = False
        for bucket in self._buckets:
            skipped: list[_Broadcast] = []
            while bucket:
                item = bucket.pop()
                if not item.live:
                    self._dead -= 1
                    continue
                if used + item.size > budget:
                    skipped.append(item)
                    misses += 1
                    if misses >= _MAX_MISSES:
                        done = True
                        break
                    continue
                used += item.size
                chosen.append(item)
                if budget - used < _MIN_USEFUL_BYTES or len(chosen) >= MAX_UPDATES:
                    done = True
                    break
            if skipped:
                skipped.reverse()
                bucket.extend(skipped)
            if done:
                break
        buckets = self._buckets
        items = self._items
        for item in chosen:
            item.transmits += 1
            if item.transmits >= limit:
                item.live = False
                del items[item.update.node_id]
                continue
            if item.transmits == len(buckets):
                buckets.append([])
            buckets[item.transmits].append(item)
        return [item.update for item in chosen]

    def _compact(self) -> None:
        for index, bucket in enumerate(self._buckets):
            self._buckets[index] = [item for item in bucket if item.live]
        self._dead = 0
