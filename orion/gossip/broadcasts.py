"""The piggyback queue (memberlist's TransmitLimitedQueue, simplified).

One pending update per member: a newer update about a member replaces the older one. The least
transmitted updates go first, each at most ``limit`` times, within a byte budget per message.
"""

from __future__ import annotations

from orion.gossip.messages import Update, encoded_size


class _Broadcast:
    __slots__ = ("order", "size", "transmits", "update")

    def __init__(self, update: Update, order: int) -> None:
        self.update = update
        self.size = encoded_size(update)
        self.transmits = 0
        self.order = order


class BroadcastQueue:
    def __init__(self) -> None:
        self._items: dict[str, _Broadcast] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, update: Update) -> None:
        self._order += 1
        self._items[update.node_id] = _Broadcast(update, self._order)

    def take(self, budget: int, limit: int) -> list[Update]:
        """Updates for one message, counting one transmission each; spent ones leave the queue."""
        items = self._items
        if not items:
            return []
        candidates = sorted(items.values(), key=lambda b: (b.transmits, -b.order))
        taken: list[Update] = []
        used = 0
        for item in candidates:
            if used + item.size > budget:
                continue
            used += item.size
            taken.append(item.update)
            item.transmits += 1
            if item.transmits >= limit:
                del items[item.update.node_id]
        return taken
