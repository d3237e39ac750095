"""An actor whose HostedInbox runs a bound PeerTransport: frames in, sends out, messages from
other threads and its own timed Tick all reach it on its one thread."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import zmq

from orion.actors import hosted_inbox
from orion.actors.hosted_inbox import HostedInbox
from orion.actors.messages import Tick
from orion.testing.localcluster import wait_for
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport
from tests.transport.test_peer import Inbox

wait_until = functools.partial(wait_for, timeout=10.0, interval=0.01)


class Echo(pykka.ThreadingActor):
    """Answers each frame with ``echo:`` + payload to ``reply_to``; records threads and ticks."""

    actor_inbox: HostedInbox

    @staticmethod
    def _create_actor_inbox() -> HostedInbox:  # type: ignore[override]
        return HostedInbox(Tick)

    def __init__(self, transport: PeerTransport, reply_to: str) -> None:
        super().__init__()
        self.transport = transport
        self.reply_to = reply_to
        self.threads: set[int] = set()
        self.ticks = 0
        self.actor_inbox.host(transport)

    def on_frame(self, channel: Channel, payload: bytes) -> None:
        self.threads.add(threading.get_ident())  # the transport's callback: which thread runs it
        self.actor_ref.tell(("frame", payload))

    def on_stop(self) -> None:
        self.actor_inbox.close()

    def on_receive(self, message: Any) -> Any:
        self.threads.add(threading.get_ident())
        match message:
            case ("frame", payload):
                self.transport.send(self.reply_to, Channel.RAFT, b"echo:" + payload)
            case Tick():
                self.ticks += 1
            case ("tick_at", when):
                self.actor_inbox.tick_at(when)
            case "state":
                return len(self.threads), self.ticks
        return None


@pytest.fixture
def echo() -> Iterator[tuple[pykka.ActorRef, PeerTransport, Inbox]]:
    frames: list[Any] = []
    hosted = PeerTransport("127.0.0.1", 0, lambda c, p: frames[0](c, p) if frames else None, name="h")
    peer_inbox = Inbox()
    peer = PeerTransport("127.0.0.1", 0, peer_inbox, name="peer")
    hosted.bind()
    peer.start()
    ref = Echo.start(hosted, peer.address)
    frames.append(ref.proxy().on_frame)
    try:
        yield ref, peer, peer_inbox
    finally:
        ref.stop()
        hosted.stop()
        peer.stop()


def test_frames_are_handled_and_answered_on_the_actors_thread(echo) -> None:
    ref, peer, peer_inbox = echo
    address = ref.proxy().transport.get().address
    peer.send(address, Channel.RAFT, b"one")
    wait_until(lambda: peer_inbox.payloads() == [b"echo:one"])
    # An ask from this thread ends the actor's wait in the poll (through the mailbox's pipe).
    threads, ticks = ref.ask("state")
    assert threads == 1 and ticks == 0


def test_the_inboxs_own_deadline_ticks_the_actor(echo) -> None:
    ref, _, _ = echo
    ref.tell(("tick_at", time.monotonic() + 0.05))
    wait_until(lambda: ref.ask("state")[1] == 1)


def test_only_a_bound_transport_can_be_hosted() -> None:
    transport = PeerTransport("127.0.0.1", 0, lambda c, p: None, name="x")
    with pytest.raises(ValueError, match="bind"):
        HostedInbox(Tick).host(transport)


def test_a_busy_inbox_still_reads_its_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages keep the queue full; a frame that comes meanwhile is read and queued anyway."""
    monkeypatch.setattr(hosted_inbox, "BUSY_TURN_S", 0.0)  # read the sockets before every message
    frames: list[bytes] = []
    hosted = PeerTransport("127.0.0.1", 0, lambda c, p: frames.append(p), name="busy")
    peer = PeerTransport("127.0.0.1", 0, lambda c, p: None, name="peer")
    hosted.bind()
    peer.start()
    inbox = HostedInbox(Tick)
    inbox.host(hosted)
    try:
        inbox.put("work")
        inbox.get()  # this thread owns the inbox (and hosts the transport) from now on
        peer.send(hosted.address, Channel.RAFT, b"while-busy")

        def one_more_message() -> bool:
            inbox.put("work")  # the queue is never empty when get() looks at it
            inbox.get()
            return frames == [b"while-busy"]

        wait_until(one_more_message)
    finally:
        inbox.close()
        hosted.stop()
        peer.stop()


@pytest.fixture
def stamped() -> Iterator[tuple[HostedInbox, PeerTransport, PeerTransport, list[float]]]:
    """An inbox hosting a transport; each frame is queued to the inbox as ``("frame", payload)``
    and its ``frame_time`` recorded, as the Raft actor's frame handler stamps its frames."""
    stamps: list[float] = []
    inbox = HostedInbox(Tick)

    def on_frame(channel: Channel, payload: bytes) -> None:
        stamps.append(inbox.frame_time())
        inbox.put(("frame", payload))

    hosted = PeerTransport("127.0.0.1", 0, on_frame, name="h")
    peer = PeerTransport("127.0.0.1", 0, lambda c, p: None, name="peer")
    hosted.bind()
    peer.start()
    inbox.host(hosted)
    try:
        yield inbox, hosted, peer, stamps
    finally:
        inbox.close()
        hosted.stop()
        peer.stop()


def test_a_frame_read_after_a_hold_is_stamped_with_the_last_read_before_it(stamped) -> None:
    """The owner was held (a long commit) while a frame came: read once a Tick is due, the
    frame is stamped no later than the hold's start, so the ticks owed up to its stamp leave
    the hold out (the Raft actor pays them before its core sees the frame), and it goes first."""
    inbox, hosted, peer, stamps = stamped
    inbox.put("work")
    assert inbox.get() == "work"  # this thread owns the inbox; the sockets were read just now
    held_from = time.monotonic()
    peer.send(hosted.address, Channel.RAFT, b"heartbeat")
    router = hosted._router
    assert router is not None
    wait_until(lambda: bool(router.getsockopt(zmq.EVENTS) & zmq.POLLIN))  # it waits unread
    inbox.tick_at(time.monotonic())  # the hold outlasted the next deadline
    assert inbox.get() == ("frame", b"heartbeat")
    assert isinstance(inbox.get().message, Tick)  # the inbox queues Pykka envelopes
    assert len(stamps) == 1 and stamps[0] <= held_from


def test_a_frame_read_by_a_wait_is_stamped_when_read(stamped) -> None:
    """A wait ends as soon as a frame is readable: its read time is when it came."""
    inbox, hosted, peer, stamps = stamped
    inbox.put("work")
    assert inbox.get() == "work"
    inbox.tick_at(time.monotonic() + 60.0)
    sent_at = time.monotonic()
    peer.send(hosted.address, Channel.RAFT, b"one")
    assert inbox.get(timeout=10.0) == ("frame", b"one")
    assert len(stamps) == 1 and stamps[0] >= sent_at
