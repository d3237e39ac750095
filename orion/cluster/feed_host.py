"""A Raft member's side of the worker feed (issue 20): watches in, answers out, on the Raft thread.

Workers (nodes beyond ``[raft] max_members``) hold no replica; each watches one member for its
own tasks (``orion.cluster.feed_protocol``). Any member holding the FSM serves: this host keeps
the pure ``WorkerFeed`` (which parked watch an applied entry answers) fed with the nodes each
entry touched, and builds the answers from the local ``ClusterState``: the node's tasks, the
port holds it must release and the volume records it needs, at the applied index, with the
cluster facts a worker needs (the cluster id, the leader and its Raft address for writes, the
members that serve the feed, and whether the node is itself a member now).

When it answers:
- a watch that cannot wait (something of its node changed after its ``since``, an index this
  feed cannot vouch for, or ``wait_ms`` 0) is answered at once;
- a parked watch, after the drain whose entries touched its node; with nothing new at its
  deadline (the Raft actor's tick calls ``expire``); at once when the node joins or leaves the
  configuration or a new leader is known (what the answer says beside the tasks changed);
- every parked watch, whole (``changed``), when a snapshot replaced the state: the entries it
  stands for were not applied here, so the feed starts over at its index.

A node that is not a member holding the state (a worker itself, a member removed, even one
whose own log still names it, ``stood_down``, a new one still empty) answers ``FeedRedirect``
with the members it knows, as does a member with as many watches parked as it allows
(``max_parked``): the worker asks another member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from loguru import logger

from orion.cluster.feed_protocol import FeedAnswer, FeedRedirect, FeedWatch, encode_feed
from orion.cluster.worker_feed import Due, WorkerFeed, task_nodes
from orion.fsm.state import ClusterState
from orion.model import Task
from orion.raft.core import RaftCore
from orion.volumes.spec import Volume

MAX_PARKED = 10_000  # watches parked at one member: a thousand workers with room to spare
MAX_PARKED_PER_NODE = 4  # a worker that re-sent waits on its newest watch; older ones are answered


class FeedHost:
    """``address_of(node_id)``: a member's Raft address as this node knows it (None: unknown);
    ``send(frames)``: hand (address, payload) pairs to the peer transport's FEED channel."""

    def __init__(
        self,
        node_id: str,
        fsm: ClusterState,
        core: RaftCore,
        address_of: Callable[[str], str | None],
        send: Callable[[list[tuple[str, bytes]]], None],
        *,
        max_parked: int = MAX_PARKED,
        max_parked_per_node: int = MAX_PARKED_PER_NODE,
    ) -> None:
        self.node_id = node_id
        self.fsm = fsm
        self.core = core
        self.address_of = address_of
        self.send = send
        self.max_parked = max_parked
        self.max_parked_per_node = max_parked_per_node
        self.feed = self._new_feed()
        self._touched: dict[int, set[str]] = {}  # entry index -> nodes it touched, until drained
        self._membership = core.membership  # the configuration last seen (replaced on each change)
        self._members: frozenset[str] = frozenset(core.membership.all_ids())
        self._leader = core.leader_id or ""
        self.answered = 0  # answers and redirects sent (for tests and metrics)
        # Set while this node, still in its own configuration, learned from the feed that the
        # cluster removed it (orion/cluster/feed_worker.py): its replica is stale, so it redirects.
        self.stood_down = False
        # After whoever listened before (the leader's submit placer, built first).
        self._earlier_on_task = fsm.events.on_task
        fsm.events.on_task = self._on_task
        fsm.events.on_volume = self._on_volume

    # ------------------------------------------------------------------ the Raft actor's calls
    def on_watch(self, watch: FeedWatch, now: float) -> None:
        """A worker's watch arrived: answer it now, or park it until a change or its deadline."""
        self._catch_up()
        host, _, port = watch.origin.rpartition(":")
        if not host or not port.isdigit():  # the answer could go nowhere: not worth a socket
            logger.debug("feed: dropped a watch for {} from {!r}: not host:port", watch.node_id, watch.origin)
            return
        if not self.serving:
            self._send([(watch.origin, self._redirect(watch.node_id, "not a Raft member holding the state"))])
            return
        # since 0: the worker holds nothing yet, so it gets everything at once.
        changed = watch.since == 0 or self.feed.changed_since(watch.node_id, watch.since)
        if changed or watch.wait_ms == 0:
            self._send([(watch.origin, self._answer(watch.node_id, changed))])
            return
        if self.feed.full:
            reason = f"{self.feed.parked} watches parked here (the most a member keeps): ask another member"
            self._send([(watch.origin, self._redirect(watch.node_id, reason))])
            return
        due = self.feed.watch(watch.node_id, watch.since, now + watch.wait_ms / 1000, watch.origin)
        if due is not None:
            self._answer_due([due])

    def on_drained(self) -> None:
        """After each Ready drain: answer the watches its applied entries (and any change of
        the configuration or the leader) concern."""
        if self._touched or self.feed.parked:
            self._catch_up()
        # else nobody waits and no node was touched: what is left to catch up (the feed's
        # index, the members and the leader it last saw) answers no one, and ``on_watch``
        # catches up before it looks at any of it.

    def on_restored(self) -> None:
        """A snapshot replaced the state: start over at its index; everyone parked gets the
        whole list at once."""
        self._touched.clear()
        due = [Due(d.watch, True) for d in self.feed.cancel_all()]
        self.feed = self._new_feed()
        self._answer_due(due)

    def expire(self, now: float) -> None:
        """Answer the watches whose deadline passed (nothing new: a sign of life)."""
        if self._touched or self.feed.parked:  # as in on_drained (idle CPU: every tick)
            self._catch_up()
            self._answer_due(self.feed.expire(now))

    def next_deadline(self) -> float | None:
        """When ``expire`` has work next (None: nothing parked)."""
        return self.feed.next_deadline()

    def close(self) -> None:
        """This node stops: send everyone parked elsewhere now, rather than letting them wait
        out their deadline on a member that is gone."""
        due = self.feed.cancel_all()
        self._send(
            [(str(d.watch.reply_to), self._redirect(d.watch.node_id, "this member is stopping")) for d in due]
        )

    @property
    def serving(self) -> bool:
        """A member of the configuration that holds the state (a new member is empty until its
        snapshot or first entries arrive)."""
        # The configuration itself, not the members last caught up with (a quiet drain or tick
        # leaves those as they were).
        return (
            self.fsm.applied_index > 0
            and not self.stood_down
            and self.core.membership.address_of(self.node_id) is not None
        )

    # ------------------------------------------------------------------ inside
    def _new_feed(self) -> WorkerFeed:
        return WorkerFeed(
            self.fsm.applied_index,
            max_parked_per_node=self.max_parked_per_node,
            max_parked_total=self.max_parked,
        )

    def _on_task(self, index: int, old: Task | None, new: Task | None) -> None:
        if self._earlier_on_task is not None:
            self._earlier_on_task(index, old, new)
        nodes = task_nodes(old, new)
        if nodes:
            self._touched.setdefault(index, set()).update(nodes)

    def _on_volume(self, index: int, old: Volume | None, new: Volume | None) -> None:
        """A volume record changed (made, lost, removed): the node its data lives on and the
        nodes of the tasks mounting it hold a copy (``FeedAnswer.volumes``)."""
        nodes = {volume.node_id for volume in (old, new) if volume is not None and volume.node_id}
        changed = new if new is not None else old
        if changed is not None:
            nodes.update(task.node_id for task in self.fsm.volume_users(changed.name) if task.node_id)
        if nodes:
            self._touched.setdefault(index, set()).update(nodes)

    def _catch_up(self) -> None:
        """Feed the entries applied since the last call, then answer what they concern."""
        due: list[Due] = []
        feed = self.feed
        for index in sorted(self._touched):
            if index > feed.applied_index:
                due.extend(feed.on_touched(index, self._touched[index]))
        self._touched.clear()
        if self.fsm.applied_index > feed.applied_index:
            feed.on_touched(self.fsm.applied_index, ())
        membership = self.core.membership
        members = self._members if membership is self._membership else frozenset(membership.all_ids())
        self._membership = membership
        if members != self._members:
            joined_or_left = members ^ self._members
            self._members = members
            for node_id in sorted(joined_or_left):
                due.extend(feed.release(node_id))
        leader = self.core.leader_id or ""
        if leader != self._leader:
            self._leader = leader
            if leader:  # a new leader: workers' writes go there now
                due.extend(feed.cancel_all())
        if feed.parked and not self.serving:  # removed from the configuration: send them elsewhere
            due.extend(feed.cancel_all())
        self._answer_due(due)

    def _answer_due(self, due: Iterable[Due]) -> None:
        frames: list[tuple[str, bytes]] = []
        for item in due:
            origin = str(item.watch.reply_to)  # the watch's origin: where the worker listens
            if self.serving:
                frames.append((origin, self._answer(item.watch.node_id, item.changed)))
            else:
                frames.append((origin, self._redirect(item.watch.node_id, "no longer a Raft member")))
        self._send(frames)

    def _answer(self, node_id: str, changed: bool) -> bytes:
        fsm, membership = self.fsm, self.core.membership
        leader = self.core.leader_id or ""
        tasks = fsm.tasks_on_node(node_id) if changed else []
        answer = FeedAnswer(
            node_id=node_id,
            index=fsm.applied_index,
            changed=changed,
            tasks=tasks,
            held_ports=fsm.held_port_tasks(node_id) if changed else [],
            cluster_id=membership.cluster_id,
            leader_id=leader,
            leader_address=(self.address_of(leader) or "") if leader else "",
            servers=self._servers(),
            member=membership.address_of(node_id) is not None,
            volumes=fsm.node_volumes(node_id, tasks) if changed else [],
        )
        return encode_feed(answer)

    def _redirect(self, node_id: str, reason: str) -> bytes:
        others = [a for a in self._servers() if a != self.address_of(self.node_id)]
        return encode_feed(FeedRedirect(node_id=node_id, servers=others, reason=reason))

    def _servers(self) -> list[str]:
        return [address for m in self.core.membership.all_ids() if (address := self.address_of(m))]

    def _send(self, frames: list[tuple[str, bytes]]) -> None:
        if frames:
            self.answered += len(frames)
            self.send(frames)
