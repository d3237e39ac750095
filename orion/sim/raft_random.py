"""Randomized simulator runs: one seed picks a cluster size, a configuration and a fault mix,
throws faults for a while, heals and requires the cluster to converge. Every step is checked
(safety invariants, linearizable reads, no fork); a failure names the seed, and
``random_run(seed)`` replays it exactly.

    .venv/bin/python -m orion.sim.raft_random --seeds 1000 [--start 0] [--ticks 150]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from orion.raft.core import LEADER, ConfigChangeInProgress, NotLeaderError, RaftConfig
from orion.raft.types import Membership
from orion.sim.raft_cluster import SimCluster, address

MID_WRITE_CRASH = 0.1  # per fault tick, with write-behind: crash a leader with writes in flight


def random_run(
    seed: int,
    fault_ticks: int = 150,
    heal_ticks: int = 300,
    membership_changes: bool = True,
    value_bytes: int = 0,
    max_frame: int = 0,
    keys: int = 5,
    disk_loss: bool = True,
    write_behind: bool = False,
) -> SimCluster:
    """One randomized run: crashes (some between a leader's send and its write), restarts,
    disk loss (the leader replaces the wiped member, as production's policy does), partitions,
    drops, duplicates, reordering, proposals, snapshots (taken in the background, streamed in
    chunks), reads, transfers and membership changes for ``fault_ticks``; then heal and require
    progress (liveness). ``value_bytes`` pads each written value (big entries, big snapshots:
    about ``keys * value_bytes``); ``max_frame`` drops frames over that size as the transport
    does, and any such drop fails the run. Few keys, so reads see values overwritten.
    ``disk_loss`` lets the seeds that draw it (about 30%) wipe members; the draw is made either
    way, so a seed replays the same other faults without it. ``write_behind``: leaders hand
    their writes to a writer that takes up to 0-4 ticks per write (drawn from a generator of its own,
    so the seed's other draws are unchanged), crashes lose what it still holds, and leaders are
    also crashed on purpose while their writes are in flight."""
    rng = random.Random(seed ^ 0x5EED)
    # Write-behind draws come from a generator of their own: the seed's other draws stay as
    # they are with it on or off.
    write_rng = random.Random(seed ^ 0xB1D)
    # So do the in-memory log windows (RaftConfig.memory_entries: 0 = every entry in memory;
    # 2 and 16 make most entries cold, read back from the store for lagging followers).
    memory_entries = random.Random(seed ^ 0xC01D).choice((0, 2, 16, 1024))
    n = rng.choice((3, 3, 5))
    wipes = rng.random() < 0.3 and disk_loss  # healed by the membership policy
    # Tiny chunks stream even a small state in many pieces; with big values they grow with
    # them, or a multi-MiB snapshot would take tens of thousands of round trips.
    small = 128 + value_bytes
    chunk_bytes, window_bytes = rng.choice(((1 << 20, 4 << 20), (small, 4 * small), (small, small)))
    cluster = SimCluster(
        n,
        seed,
        RaftConfig(
            election_ticks=10,
            heartbeat_ticks=2,
            max_append_entries=rng.choice((4, 64)),
            max_inflight=rng.choice((2, 64)),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            max_size_per_msg=rng.choice((1 << 20, 64 + value_bytes)),
            max_inflight_bytes=rng.choice((0, 4 * (64 + value_bytes), 32 << 20)),
            trailing_entries=rng.choice((0, 8, 5000)),
            memory_entries=memory_entries,
        ),
        drop=rng.choice((0.0, 0.05, 0.2)),
        duplicate=rng.choice((0.0, 0.05)),
        max_delay=rng.choice((0, 1, 3)),
        long_delay=rng.choice((0.0, 0.02)),
        snapshots=True,
        snapshot_threshold=rng.choice((8, 32)),
        snapshot_delay=rng.choice((0, 0, 3)),
        chunk_bytes=chunk_bytes,
        window_bytes=window_bytes,
        max_frame=max_frame,
        crash_after_send=rng.choice((0.0, 0.0, 0.005)),
        write_delay=write_rng.choice((0, 1, 2, 4)) if write_behind else None,
        membership_policy=wipes,
    )
    padding = b"." * value_bytes
    key_names = [b"k%d" % i for i in range(keys)]
    ids = cluster.ids
    counter = 0
    for _ in range(fault_ticks):
        r = rng.random()
        if r < 0.03:
            victim = rng.choice(ids)
            if cluster.nodes[victim].alive and sum(n.alive for n in cluster.nodes.values()) > 1:
                cluster.crash(victim)
        elif r < 0.08:
            for node_id in ids:
                if not cluster.nodes[node_id].alive:
                    cluster.start(node_id)
                    break
        elif r < 0.11:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            cluster.net.partition(shuffled[:cut], shuffled[cut:])
        elif r < 0.15:
            cluster.net.heal()
        elif r < 0.17:
            leader = cluster.leader()
            if leader is not None:
                try:
                    cluster.core(leader).transfer_leadership()
                except (NotLeaderError, ValueError):
                    pass
        elif r < 0.20:
            # A burst: every key read at every node that believes it leads.
            for node in cluster.nodes.values():
                if node.core is not None and node.core.role == LEADER:
                    for key in key_names:
                        cluster.read(node.id, key)
        elif r < 0.22 and wipes:
            _wipe_one(cluster, rng)
        elif r < 0.23 and wipes:
            cluster.readdress(rng.choice(ids))
        elif r < 0.23 and membership_changes:
            _change_membership(cluster, rng)
        for node in cluster.nodes.values():
            core = node.core
            if core is None or core.role != LEADER:
                continue
            if rng.random() < 0.5:
                size = rng.randint(1, 4)
                batch = [b"%s=v%d%s" % (rng.choice(key_names), counter + i, padding) for i in range(size)]
                counter += len(batch)
                try:
                    core.propose_batch(batch)
                except NotLeaderError:
                    pass
            if rng.random() < 0.3:
                # Any node that believes it leads, even a deposed one cut off in a minority.
                try:
                    cluster.read(node.id, rng.choice(key_names))
                except NotLeaderError:
                    pass
        if write_behind and write_rng.random() < MID_WRITE_CRASH:
            _crash_a_leader_mid_write(cluster)
        cluster.tick()
    # Heal everything and require the cluster to converge.
    cluster.net.heal()
    cluster.net.drop = cluster.net.duplicate = cluster.net.long_delay = 0.0
    cluster.crash_after_send = 0.0
    for node_id in ids:
        if not cluster.nodes[node_id].alive:
            cluster.start(node_id)
    try:
        _converge(cluster, seed, heal_ticks)
    except AssertionError as exc:
        if cluster.net.oversize:
            oversize = cluster.net.oversize
            raise AssertionError(f"{exc}; frames dropped for exceeding max_frame: {oversize}") from exc
        raise
    if cluster.net.oversize:
        # The senders' limits (bytes per append, chunked snapshots) must make these impossible.
        raise AssertionError(f"seed={seed}: frames dropped for exceeding max_frame: {cluster.net.oversize}")
    return cluster


def _crash_a_leader_mid_write(cluster: SimCluster) -> None:
    """Crash a leader whose writer still holds writes (its followers may already hold and
    have acknowledged them): the moment a leader counting its unwritten copy would lose a
    committed entry."""
    alive = sum(n.alive for n in cluster.nodes.values())
    for node in cluster.nodes.values():
        core = node.core
        if core is not None and core.role == LEADER and node.writes and alive > 1:
            cluster.crash(node.id)
            return


def _converge(cluster: SimCluster, seed: int, heal_ticks: int) -> None:
    """A leader appears; with the membership policy, every node is a member again with its
    current incarnation; a new entry commits; every member of the final configuration applies
    it."""
    leader = cluster.wait_leader(heal_ticks)
    if cluster.membership_policy and not cluster.run_until(lambda: _membership_healed(cluster), heal_ticks):
        leader = cluster.leader() or leader
        raise AssertionError(
            f"seed={seed}: the membership did not heal: {cluster.core(leader).membership} "
            f"(incarnations now: { {i: n.incarnation for i, n in cluster.nodes.items()} })"
        )
    leader = cluster.wait_leader(heal_ticks)
    quorum = len(cluster.core(leader).membership.voters) // 2 + 1
    index = cluster.one(f"final={seed}".encode(), quorum, retry=True, max_ticks=heal_ticks)
    # Any configuration entry before the final one is committed now: its members must apply.
    members = next(
        n.core.membership
        for n in cluster.nodes.values()
        if n.core is not None and n.fsm.applied_index >= index
    ).all_ids()
    if not cluster.run_until(
        lambda: all(cluster.nodes[m].fsm.applied_index >= index for m in members if m in cluster.nodes),
        heal_ticks,
    ):
        raise AssertionError(f"seed={seed}: members {members} did not all apply index {index}")


def _membership_healed(cluster: SimCluster) -> bool:
    leader = cluster.leader()
    return leader is not None and _complete(cluster, cluster.core(leader).membership, leader)


def _wipe_one(cluster: SimCluster, rng: random.Random) -> None:
    """Disk loss at one member, only while every node is up and sees a complete, current
    configuration: Raft keeps committed entries (and can repair its membership) through the
    loss of a minority of voters, not through a second loss before the first is repaired."""
    for node in cluster.nodes.values():
        core = node.core
        if core is None or not _complete(cluster, core.membership, core.leader_id):
            return
    cluster.wipe(rng.choice(cluster.ids))


def _complete(cluster: SimCluster, membership: Membership, leader: str) -> bool:
    """Every node a voter, with its current incarnation and its current address (but the
    leader's: the policy re-addresses others, never the leader itself)."""
    return len(membership.voters) == cluster.max_voters and all(
        membership.incarnations.get(node_id) == node.incarnation
        and (
            node_id == leader
            or membership.address_of(node_id) == cluster.addresses.get(node_id, address(node_id))
        )
        for node_id, node in cluster.nodes.items()
    )


def _change_membership(cluster: SimCluster, rng: random.Random) -> None:
    """One single-server change at the leader: remove a member (keeping two voters), add a
    removed node back as a non-voter, or promote a non-voter."""
    leader = cluster.leader()
    if leader is None:
        return
    core = cluster.core(leader)
    membership = core.membership
    outsiders = [i for i in cluster.ids if i not in membership.all_ids()]
    try:
        if membership.non_voters and rng.random() < 0.6:
            core.promote(rng.choice(sorted(membership.non_voters)))
        elif outsiders and rng.random() < 0.6:
            node_id = rng.choice(outsiders)
            core.add_non_voter(node_id, address(node_id), cluster.nodes[node_id].incarnation)
        elif len(membership.voters) > 2:
            core.remove(rng.choice(membership.all_ids()))
    except (ConfigChangeInProgress, NotLeaderError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run randomized Raft simulations.")
    parser.add_argument("--seeds", type=int, default=1000, help="number of seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--ticks", type=int, default=150, help="fault ticks per run")
    parser.add_argument(
        "--no-disk-loss", dest="disk_loss", action="store_false", help="never wipe members' stores"
    )
    parser.add_argument(
        "--write-behind",
        action="store_true",
        help="leaders write behind their sends (a writer, up to 0-4 ticks a write)",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    failures = 0
    for seed in range(args.start, args.start + args.seeds):
        try:
            random_run(seed, fault_ticks=args.ticks, disk_loss=args.disk_loss, write_behind=args.write_behind)
        except Exception as exc:
            failures += 1
            print(f"FAIL seed={seed}: {exc!r}", flush=True)
    elapsed = time.perf_counter() - began
    print(f"{args.seeds - failures}/{args.seeds} seeds passed in {elapsed:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
